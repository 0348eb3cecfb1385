/*
 * pacer.c - suspends libmicrohttpd connections until they are due and
 * resumes them from a timer thread (see pacer.h).
 */
#define _GNU_SOURCE

#include "pacer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define NO_HEAP_IDX SIZE_MAX

uint64_t pacer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pacer_wait_init(pacer_wait *w, struct MHD_Connection *conn)
{
	memset(w, 0, sizeof(*w));
	w->conn = conn;
	w->heap_idx = NO_HEAP_IDX;
	w->watched_fd = -1;
}

static bool earlier(const pacer_wait *a, const pacer_wait *b)
{
	return a->due_ns < b->due_ns;
}

static void heap_place(pacer *p, size_t i, pacer_wait *w)
{
	p->heap[i] = w;
	w->heap_idx = i;
}

static void heap_up(pacer *p, size_t i)
{
	pacer_wait *w = p->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!earlier(w, p->heap[parent]))
			break;
		heap_place(p, i, p->heap[parent]);
		i = parent;
	}
	heap_place(p, i, w);
}

static void heap_down(pacer *p, size_t i)
{
	pacer_wait *w = p->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= p->heap_len)
			break;
		if (child + 1 < p->heap_len &&
		    earlier(p->heap[child + 1], p->heap[child]))
			child++;
		if (!earlier(p->heap[child], w))
			break;
		heap_place(p, i, p->heap[child]);
		i = child;
	}
	heap_place(p, i, w);
}

static int heap_push(pacer *p, pacer_wait *w)
{
	if (p->heap_len == p->heap_cap) {
		size_t cap = p->heap_cap ? 2 * p->heap_cap : 256;
		pacer_wait **heap = realloc(p->heap, cap * sizeof(*heap));

		if (heap == NULL)
			return -1;
		p->heap = heap;
		p->heap_cap = cap;
	}
	p->heap[p->heap_len++] = w;
	heap_up(p, p->heap_len - 1);
	return 0;
}

static pacer_wait *heap_pop(pacer *p)
{
	pacer_wait *top = p->heap[0];

	p->heap_len--;
	if (p->heap_len > 0) {
		p->heap[0] = p->heap[p->heap_len];
		heap_down(p, 0);
	}
	top->heap_idx = NO_HEAP_IDX;
	return top;
}

static void list_add(pacer *p, pacer_wait *w)
{
	w->prev = NULL;
	w->next = p->suspended;
	if (p->suspended != NULL)
		p->suspended->prev = w;
	p->suspended = w;
}

static void list_remove(pacer *p, pacer_wait *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		p->suspended = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

/* Resumes w, which has left the heap (if it was there). Called with p->mu
 * held: w stays valid, as its owner frees it only once libmicrohttpd has
 * run it again. */
static void resume(pacer *p, pacer_wait *w, enum pacer_end why)
{
	if (w->watched_fd >= 0) {
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->watched_fd, NULL);
		w->watched_fd = -1;
	}
	list_remove(p, w);
	w->suspended = false;
	w->ended = why;
	MHD_resume_connection(w->conn);
}

static void wake(pacer *p)
{
	uint64_t one = 1;
	ssize_t rc;

	/* An eventfd write only fails when the counter would overflow, and
	 * then the thread is awake anyway. */
	rc = write(p->wakefd, &one, sizeof(one));
	(void)rc;
}

int pacer_suspend(pacer *p, pacer_wait *w, uint64_t due_ns, uint64_t tick_ns)
{
	int rc = -1;

	pthread_mutex_lock(&p->mu);
	if (p->stopping)
		goto out;
	if (due_ns == PACER_FOREVER) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			w->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = w};

		if (ci == NULL ||
		    epoll_ctl(p->epfd, EPOLL_CTL_ADD, ci->connect_fd, &ev) != 0)
			goto out;
		w->watched_fd = ci->connect_fd;
		w->due_ns = PACER_FOREVER;
	} else {
		if (tick_ns > 1)
			due_ns = (due_ns + tick_ns - 1) / tick_ns * tick_ns;
		w->due_ns = due_ns;
		if (heap_push(p, w) != 0)
			goto out;
		/* Only a wait that comes due before the thread's next look
		 * needs to wake it; most come after the head of the heap. */
		if (due_ns < p->wake_at) {
			p->wake_at = due_ns;
			wake(p);
		}
	}
	w->suspended = true;
	w->ended = PACER_DUE;
	list_add(p, w);
	/* Suspending under p->mu keeps the pacer thread from resuming w
	 * before it is suspended. */
	MHD_suspend_connection(w->conn);
	rc = 0;
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Milliseconds epoll_wait may sleep before due_ns, rounded up so that the
 * thread never wakes early and spins. */
static int timeout_ms(uint64_t due_ns, uint64_t now)
{
	uint64_t ms;

	if (due_ns == PACER_FOREVER)
		return -1;
	if (due_ns <= now)
		return 0;
	ms = (due_ns - now + 999999) / 1000000;
	return ms > 60000 ? 60000 : (int)ms;
}

static void *pacer_main(void *arg)
{
	pacer *p = arg;
	struct epoll_event evs[64];

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		uint64_t now = pacer_now();
		uint64_t wake_at;
		int n;

		while (p->heap_len > 0 && p->heap[0]->due_ns <= now)
			resume(p, heap_pop(p), PACER_DUE);
		wake_at = p->heap_len > 0 ? p->heap[0]->due_ns : PACER_FOREVER;
		p->wake_at = wake_at;
		pthread_mutex_unlock(&p->mu);
		n = epoll_wait(p->epfd, evs, 64, timeout_ms(wake_at, now));
		pthread_mutex_lock(&p->mu);
		for (int i = 0; i < n; i++) {
			pacer_wait *w = evs[i].data.ptr;

			if (w == NULL) {
				uint64_t count;
				ssize_t rc =
					read(p->wakefd, &count, sizeof(count));

				(void)rc;
				continue;
			}
			/* Only this thread removes a watched wait from the
			 * set while it runs, so w is still suspended. */
			if (w->suspended && w->watched_fd >= 0)
				resume(p, w, PACER_PEER_CLOSED);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int pacer_start(pacer *p)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	memset(p, 0, sizeof(*p));
	p->epfd = -1;
	p->wakefd = -1;
	p->wake_at = PACER_FOREVER;
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		return -1;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		goto fail;
	p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wakefd < 0)
		goto fail;
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->wakefd, &ev) != 0)
		goto fail;
	if (pthread_create(&p->thread, NULL, pacer_main, p) != 0)
		goto fail;
	return 0;
fail:
	p->stopping = true;
	pacer_free(p);
	return -1;
}

void pacer_stop(pacer *p)
{
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	p->stopping = true;
	wake(p);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);

	pthread_mutex_lock(&p->mu);
	while (p->heap_len > 0)
		heap_pop(p);
	while (p->suspended != NULL)
		resume(p, p->suspended, PACER_STOPPED);
	pthread_mutex_unlock(&p->mu);
}

void pacer_free(pacer *p)
{
	if (p->wakefd >= 0)
		close(p->wakefd);
	if (p->epfd >= 0)
		close(p->epfd);
	free(p->heap);
	pthread_mutex_destroy(&p->mu);
	memset(p, 0, sizeof(*p));
	p->epfd = -1;
	p->wakefd = -1;
}
