/*
 * The pacer: suspends libmicrohttpd connections until a time, or until
 * their client goes away, and resumes them from its own thread.
 *
 * A paced answer must not hold a thread or spin: its connection is
 * suspended (MHD_suspend_connection) while it waits, and the pacer resumes
 * it when it is due. Due times sit in a binary heap; the pacer thread sleeps
 * in epoll_wait until the earliest. Due times are rounded up to a multiple
 * of the caller's tick, the same grid for every connection, so that many
 * connections come due together and libmicrohttpd's event thread wakes
 * once for a batch instead of once per chunk (each wake-up walks its list
 * of suspended connections).
 *
 * A connection suspended with no due time (a stalled answer) has its socket
 * watched for the client's close (EPOLLRDHUP), which libmicrohttpd cannot
 * see while the connection is suspended.
 */
#ifndef MOCKLLM_PACER_H
#define MOCKLLM_PACER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "Until the client closes": a due time that never comes. */
#define PACER_FOREVER UINT64_MAX

/* One connection's place in the pacer; owned by the caller, who must not
 * free it while it is suspended. Zero it (or pacer_wait_init) before use. */
typedef struct pacer_wait {
	struct MHD_Connection *conn;
	uint64_t due_ns;
	size_t heap_idx;
	int watched_fd; /* -1 unless in the pacer's epoll set */
	bool suspended;
	/* Why the last wait ended: anything but PACER_DUE means the caller
	 * must end its answer. */
	enum pacer_end { PACER_DUE, PACER_PEER_CLOSED, PACER_STOPPED } ended;
	struct pacer_wait *prev, *next; /* the pacer's suspended waits */
} pacer_wait;

typedef struct pacer {
	pthread_mutex_t mu;
	pthread_t thread;
	int epfd;
	int wakefd; /* eventfd: the heap's head moved earlier, or stop */
	pacer_wait **heap;
	size_t heap_len;
	size_t heap_cap;
	pacer_wait *suspended; /* every suspended wait, timed or not */
	uint64_t wake_at;      /* when the thread will next look at the heap */
	bool stopping;
} pacer;

/* Monotonic clock in nanoseconds. */
uint64_t pacer_now(void);

void pacer_wait_init(pacer_wait *w, struct MHD_Connection *conn);

/* Starts the pacer thread. Returns 0 or -1. */
int pacer_start(pacer *p);

/* Suspends w->conn until due_ns (rounded up to a multiple of tick_ns;
 * PACER_FOREVER: until the client closes). Must be called from the
 * libmicrohttpd callback that handles w->conn, which must then return
 * without answering (a content reader returns 0). Returns 0, or -1 (and
 * does not suspend) when the pacer is stopping or out of memory: the
 * caller ends the answer instead. */
int pacer_suspend(pacer *p, pacer_wait *w, uint64_t due_ns, uint64_t tick_ns);

/* Stops the thread and resumes every suspended connection with w->ended
 * set to PACER_STOPPED, so that libmicrohttpd may be stopped (it must not be
 * while any connection is suspended). Later pacer_suspend calls fail. */
void pacer_stop(pacer *p);

/* Frees what a stopped (or never started) pacer holds. */
void pacer_free(pacer *p);

#endif
