/* Monotonic time, the only clock deadlines and timers use. */
#ifndef AF_RUNTIME_CLOCK_H
#define AF_RUNTIME_CLOCK_H

#include <stdint.h>

int64_t af__now_ms(void);
int64_t af__now_us(void);

#endif
