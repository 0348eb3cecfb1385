/* Monotonic time, the only clock deadlines and timers use. */
#ifndef AF_RUNTIME_CLOCK_H
#define AF_RUNTIME_CLOCK_H

#include <stdint.h>

int64_t af__now_ms(void);
int64_t af__now_us(void);

/* The longest time a timeout, delay or interval in milliseconds stands
 * for: 2^40 ms, about 35 years, the bound a message's ttl_ms has too
 * (AF__TTL_MAX_MS). The public API takes int64_t milliseconds and
 * documents a huge value as "effectively forever"; counted as this much,
 * it turns into microseconds of the monotonic clock, and adds to a reading
 * of that clock, without overflowing. */
#define AF__MS_MAX (INT64_C(1) << 40)

/* ms, at most AF__MS_MAX; a negative ms is returned as it is. */
int64_t af__clamp_ms(int64_t ms);
/* The time of af__now_us ms milliseconds from now, ms clamped to
 * AF__MS_MAX; ms must not be negative. */
int64_t af__after_ms(int64_t ms);
/* Milliseconds left until deadline_us (a time of af__now_us), 0 when it has
 * passed, -1 when deadline_us is -1 (no deadline). */
int64_t af__remaining_ms(int64_t deadline_us);

#endif
