/* Monotonic time, the only clock deadlines and timers use. */
#ifndef AF_RUNTIME_CLOCK_H
#define AF_RUNTIME_CLOCK_H

#include <stdint.h>

int64_t af__now_ms(void);
int64_t af__now_us(void);
/* Milliseconds left until deadline_us (a time of af__now_us), 0 when it has
 * passed, -1 when deadline_us is -1 (no deadline). */
int64_t af__remaining_ms(int64_t deadline_us);

#endif
