#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "actorflow/actor.h"
#include "clock.h"

#define EVENTS_PER_TURN 256

af_err af__loop_init(af__loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return AF_ESYS;
	af__timerheap_init(&l->timers);
	l->ready_head = NULL;
	l->ready_tail = NULL;
	l->lazy_head = NULL;
	l->lazy_tail = NULL;
	l->lazy_since_us = 0;
	l->dead = NULL;
	return AF_OK;
}

static void reap(af__loop *l)
{
	while (l->dead != NULL) {
		af__watch *w = l->dead;
		l->dead = w->next_dead;
		if (w->release != NULL)
			w->release(w);
	}
}

void af__loop_fini(af__loop *l)
{
	reap(l);
	af__timerheap_fini(&l->timers);
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

static uint32_t to_epoll(unsigned events)
{
	uint32_t e = 0;

	if (events & AF_FD_READ)
		e |= EPOLLIN;
	if (events & AF_FD_WRITE)
		e |= EPOLLOUT;
	return e;
}

static unsigned from_epoll(uint32_t e)
{
	unsigned events = 0;

	if (e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		events |= AF_FD_READ;
	if (e & EPOLLOUT)
		events |= AF_FD_WRITE;
	if (e & EPOLLERR)
		events |= AF_FD_ERROR;
	return events;
}

static void watch_init(af__watch *w, int fd, void *zsock, unsigned events,
		       af__watch_cb cb)
{
	w->fd = fd;
	w->zsock = zsock;
	w->events = events;
	w->cb = cb;
	w->release = NULL;
	w->queued = false;
	w->lazy = false;
	w->dead = false;
	w->next_ready = NULL;
	w->next_dead = NULL;
}

af_err af__loop_add_fd(af__loop *l, af__watch *w, int fd, unsigned events,
		       af__watch_cb cb)
{
	struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};

	watch_init(w, fd, NULL, events, cb);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return errno == EEXIST ? AF_EEXIST : AF_ESYS;
	return AF_OK;
}

af_err af__loop_mod_fd(af__loop *l, af__watch *w, unsigned events)
{
	struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};

	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
		return AF_ESYS;
	w->events = events;
	return AF_OK;
}

af_err af__loop_add_zsock(af__loop *l, af__watch *w, void *zsock,
			  af__watch_cb cb)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = w};
	size_t len = sizeof(int);
	int fd;

	if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) != 0)
		return AF_ESYS;
	watch_init(w, fd, zsock, 0, cb);
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		return AF_ESYS;
	/* Messages may already be waiting: their signal may have been
	 * consumed before the fd joined the set. */
	af__loop_kick(l, w);
	return AF_OK;
}

/* The lazy watches join the ready list, in the order they were kicked. */
static void run_lazy_next(af__loop *l)
{
	if (l->lazy_head == NULL)
		return;
	for (af__watch *w = l->lazy_head; w != NULL; w = w->next_ready)
		w->lazy = false;
	if (l->ready_tail != NULL)
		l->ready_tail->next_ready = l->lazy_head;
	else
		l->ready_head = l->lazy_head;
	l->ready_tail = l->lazy_tail;
	l->lazy_head = NULL;
	l->lazy_tail = NULL;
}

void af__loop_kick(af__loop *l, af__watch *w)
{
	if (w->dead)
		return;
	if (w->queued) {
		if (w->lazy)
			run_lazy_next(l);
		return;
	}
	w->queued = true;
	w->next_ready = NULL;
	if (l->ready_tail != NULL)
		l->ready_tail->next_ready = w;
	else
		l->ready_head = w;
	l->ready_tail = w;
}

void af__loop_kick_lazy(af__loop *l, af__watch *w)
{
	if (w->queued || w->dead)
		return;
	w->queued = true;
	w->lazy = true;
	w->next_ready = NULL;
	if (l->lazy_tail != NULL) {
		l->lazy_tail->next_ready = w;
	} else {
		l->lazy_head = w;
		l->lazy_since_us = af__now_us();
	}
	l->lazy_tail = w;
}

void af__loop_del(af__loop *l, af__watch *w, af__watch_release release)
{
	if (w->dead)
		return;
	/* A closed fd has already left the epoll set; ignore that error. */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	if (w->queued) {
		/* Unlink it, or a later turn would read it after release. */
		af__watch **head = w->lazy ? &l->lazy_head : &l->ready_head;
		af__watch **tail = w->lazy ? &l->lazy_tail : &l->ready_tail;
		af__watch **pp = head;
		af__watch *prev = NULL;
		while (*pp != NULL && *pp != w) {
			prev = *pp;
			pp = &(*pp)->next_ready;
		}
		if (*pp == w) {
			*pp = w->next_ready;
			if (*tail == w)
				*tail = prev;
		}
		w->queued = false;
		w->lazy = false;
	}
	w->dead = true;
	w->release = release;
	w->next_dead = l->dead;
	l->dead = w;
}

af_err af__loop_timer_add(af__loop *l, af__timer *t, int64_t due_us)
{
	return af__timerheap_push(&l->timers, t, due_us);
}

void af__loop_timer_del(af__loop *l, af__timer *t)
{
	af__timerheap_remove(&l->timers, t);
}

static int wait_ms(af__loop *l, int64_t max_wait_us)
{
	af__timer *t = af__timerheap_peek(&l->timers);
	int64_t wait = max_wait_us;

	if (l->ready_head != NULL)
		return 0;
	if (t != NULL) {
		int64_t until = t->due_us - af__now_us();
		if (until < 0)
			until = 0;
		if (wait < 0 || until < wait)
			wait = until;
	}
	if (wait < 0)
		return -1;
	/* Round up: waking early would spin until the timer is due. */
	wait = (wait + 999) / 1000;
	return wait > 60000 ? 60000 : (int)wait;
}

static void run_ready(af__loop *l)
{
	/* Take the list as it is now: a socket that re-queues itself (budget
	 * spent) waits for the next turn, so others get their share. */
	af__watch *w = l->ready_head;

	l->ready_head = NULL;
	l->ready_tail = NULL;
	while (w != NULL) {
		af__watch *next = w->next_ready;
		w->queued = false;
		w->next_ready = NULL;
		if (!w->dead)
			w->cb(w, 0);
		w = next;
	}
}

static void run_timers(af__loop *l)
{
	int64_t now = af__now_us();
	af__timer *t;

	while ((t = af__timerheap_peek(&l->timers)) != NULL &&
	       t->due_us <= now) {
		af__timerheap_remove(&l->timers, t);
		t->cb(t);
	}
}

af_err af__loop_run_once(af__loop *l, int64_t max_wait_us)
{
	struct epoll_event evs[EVENTS_PER_TURN];
	/* Lazy watches wait while other work comes in: the loop looks for it
	 * without blocking, and runs them when none came (they must not wait
	 * for a blocking wait to end) or when they have waited long enough. */
	bool lazy = l->lazy_head != NULL;
	int n = epoll_wait(l->epfd, evs, EVENTS_PER_TURN,
			   lazy ? 0 : wait_ms(l, max_wait_us));

	if (n < 0 && errno != EINTR)
		return AF_ESYS;
	for (int i = 0; i < n; i++) {
		af__watch *w = evs[i].data.ptr;
		if (w->dead)
			continue;
		if (w->zsock != NULL)
			af__loop_kick(l, w);
		else
			w->cb(w, from_epoll(evs[i].events));
	}
	if (lazy &&
	    (n <= 0 || af__now_us() - l->lazy_since_us >= AF__LAZY_HOLD_US))
		run_lazy_next(l);
	run_ready(l);
	run_timers(l);
	reap(l);
	return AF_OK;
}
