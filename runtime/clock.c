#include "clock.h"

#include <time.h>

int64_t af__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t af__now_ms(void)
{
	return af__now_us() / 1000;
}

int64_t af__clamp_ms(int64_t ms)
{
	return ms > AF__MS_MAX ? AF__MS_MAX : ms;
}

int64_t af__after_ms(int64_t ms)
{
	return af__now_us() + af__clamp_ms(ms) * 1000;
}

int64_t af__remaining_ms(int64_t deadline_us)
{
	int64_t left;

	if (deadline_us < 0)
		return -1;
	left = (deadline_us - af__now_us()) / 1000;
	return left > 0 ? left : 0;
}
