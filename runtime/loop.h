/*
 * The mailbox loop's engine: epoll over file descriptors and ZeroMQ
 * sockets, plus a timer heap. A turn costs what is ready, not what is
 * registered.
 *
 * ZeroMQ sockets join through ZMQ_FD, which signals "the socket's state may
 * have changed" rather than "a message is waiting": it is edge-triggered and
 * is reset by any zmq call on the socket, including a send. So a socket's
 * callback reads until EAGAIN (or a budget, after which the socket is
 * re-queued), and whoever sends on a socket kicks it so it is checked on the
 * next turn even if its fd never fires.
 *
 * Watches are embedded in their owners. A watch removed during a turn stays
 * allocated until the turn ends (its release callback runs then), because
 * events already fetched in that turn may still name it.
 */
#ifndef AF_RUNTIME_LOOP_H
#define AF_RUNTIME_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "actorflow/err.h"
#include "timerheap.h"

#include <stddef.h>

/* The struct of type that holds member at ptr: watches and timers are
 * embedded in their owners, and callbacks get back to them this way. */
#define AF__CONTAINER(ptr, type, member)                                       \
	((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct af__watch af__watch;
/* events: AF_FD_* bits for a plain fd; 0 for a ZeroMQ socket. */
typedef void (*af__watch_cb)(af__watch *w, unsigned events);
typedef void (*af__watch_release)(af__watch *w);

struct af__watch {
	int fd;
	void *zsock; /* non-NULL for a ZeroMQ socket */
	unsigned events;
	af__watch_cb cb;
	af__watch_release release;
	bool queued;
	bool lazy; /* queued to run when the loop idles (af__loop_kick_lazy) */
	bool dead;
	af__watch *next_ready;
	af__watch *next_dead;
};

typedef struct af__loop {
	int epfd;
	af__timerheap timers;
	af__watch *ready_head;
	af__watch *ready_tail;
	af__watch *lazy_head;
	af__watch *lazy_tail;
	int64_t lazy_since_us; /* when the first lazy watch was queued */
	af__watch *dead;
} af__loop;

af_err af__loop_init(af__loop *l);
/* Releases the watches still pending release; the owner must have removed
 * its watches. */
void af__loop_fini(af__loop *l);

/* Watches a plain fd, level-triggered. AF_OK, AF_EEXIST, AF_ESYS. */
af_err af__loop_add_fd(af__loop *l, af__watch *w, int fd, unsigned events,
		       af__watch_cb cb);
af_err af__loop_mod_fd(af__loop *l, af__watch *w, unsigned events);
/* Watches a ZeroMQ socket; it is checked once right away. */
af_err af__loop_add_zsock(af__loop *l, af__watch *w, void *zsock,
			  af__watch_cb cb);
/* Stops watching; release (may be NULL) runs at the end of the current (or
 * next) turn, or in af__loop_fini. The fd is not closed. */
void af__loop_del(af__loop *l, af__watch *w, af__watch_release release);
/* Makes the loop check a ZeroMQ socket on its next turn. */
void af__loop_kick(af__loop *l, af__watch *w);

/* Makes the loop check w once it has nothing else ready, or at the latest
 * AF__LAZY_HOLD_US after the first such kick: what a busy actor batches
 * for another (tells, chunks) goes out in fewer, larger messages, each
 * of which may wake the receiver's thread, and goes out at once from an
 * actor about to wait. A plain kick of w, or of any other lazy watch,
 * runs every lazy watch on the next turn. */
void af__loop_kick_lazy(af__loop *l, af__watch *w);
#define AF__LAZY_HOLD_US 500

af_err af__loop_timer_add(af__loop *l, af__timer *t, int64_t due_us);
void af__loop_timer_del(af__loop *l, af__timer *t);

/* Runs one turn: waits up to max_wait_us (-1: until something happens) for
 * events or the next timer, then dispatches. AF_OK or AF_ESYS. */
af_err af__loop_run_once(af__loop *l, int64_t max_wait_us);

#endif
