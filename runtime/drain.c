/*
 * af_system_drain: a system stops taking work from other processes and
 * waits for what it took to be done.
 */
#include <errno.h>
#include <time.h>

#include "clock.h"
#include "stats.h"
#include "system.h"

/* How often a drain looks again without being woken. */
#define DRAIN_POLL_US 5000

/* An actor asked to drain that has not yet done so. Under sys->mu. */
static bool drain_outstanding(af_system *sys)
{
	for (af__actor *a = sys->actors; a != NULL; a = a->next)
		if (a->drain_requested && !a->drain_done &&
		    a->phase == AF__ACTOR_RUNNING)
			return true;
	return false;
}

/* Requests in flight on every actor. Under sys->mu. */
static uint64_t in_flight(af_system *sys)
{
	uint64_t n = 0;

	for (af__actor *a = sys->actors; a != NULL; a = a->next)
		if (!a->inbox_only && a->phase != AF__ACTOR_EXITED)
			n += atomic_load_explicit(&a->stats.in_flight,
						  memory_order_acquire);
	return n;
}

/* Waits on sys->cv for at most us microseconds. */
static void wait_for(af_system *sys, int64_t us)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += us / 1000000;
	until.tv_nsec += (long)(us % 1000000) * 1000;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&sys->cv, &sys->mu, &until);
}

af_err af_system_drain(af_system *sys, int64_t timeout_ms, uint64_t *left)
{
	int64_t deadline;
	uint64_t n;

	if (sys == NULL)
		return AF_EINVAL;
	deadline = af__after_ms(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&sys->mu);
	atomic_store(&sys->draining, true);
	for (af__actor *a = sys->actors; a != NULL; a = a->next) {
		if (a->inbox_only || a->phase != AF__ACTOR_RUNNING ||
		    a->drain_requested || a->wake_fd < 0)
			continue;
		a->drain_requested = true;
		af__wake_fd(a->wake_fd);
	}
	/* Once every actor has removed its files and refuses new remote
	 * requests, nothing new comes in. Handlers never block, so this is
	 * quick. */
	while (drain_outstanding(sys))
		pthread_cond_wait(&sys->cv, &sys->mu);
	for (;;) {
		int64_t now = af__now_us();
		n = in_flight(sys);
		if (n == 0 || now >= deadline)
			break;
		wait_for(sys, deadline - now < DRAIN_POLL_US ? deadline - now
							     : DRAIN_POLL_US);
	}
	pthread_mutex_unlock(&sys->mu);
	if (left != NULL)
		*left = n;
	return AF_OK;
}
