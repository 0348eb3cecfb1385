/*
 * The actor system: one ZeroMQ context, the registry of actors by name, and
 * the epoch that tells every context when an actor has stopped.
 */
#ifndef AF_RUNTIME_SYSTEM_H
#define AF_RUNTIME_SYSTEM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actorflow/actor.h"
#include "ctx.h"
#include "envelope.h"
#include "loop.h"
#include "stats.h"

/* System gateways are named with this prefix, which af_spawn refuses: a
 * message whose sender's inbox bears it came from another process through
 * the gateway (af_msg_is_local says so). */
#define AF__GATEWAY_PREFIX "af.gateway."

/* The largest message a system (or a standalone client) accepts unless
 * told otherwise. */
#define AF__DEFAULT_MAX_MESSAGE (16u << 20)

typedef enum af__actor_state {
	AF__ACTOR_STARTING,
	AF__ACTOR_RUNNING,
	AF__ACTOR_STOPPING,
	AF__ACTOR_EXITED
} af__actor_state;

typedef struct af__actor {
	af_system *sys;
	char name[AF__NAME_MAX + 1];
	const af_actor_ops *ops;
	const void *config;
	af_spawn_opts opts;
	pthread_t thread;
	uint64_t incarnation;
	af__actor_state phase; /* under sys->mu */
	bool init_done;        /* under sys->mu */
	int init_result;
	char *init_error; /* af_init_fail's text, NULL when it gave none */
	bool in_init;     /* ops->init is running (the actor's thread only) */
	atomic_bool stop_requested;
	int wake_fd; /* -1 once the actor's thread closed it */
	af_ctx *ctx;
	void *state; /* what ops->init returned */
	/* The ROUTER that remote requesters reach, made by the first export;
	 * local ones reach the context's inbox. */
	void *router;
	af__watch router_watch;
	bool self_stop;
	bool stop_claimed; /* an af_stop is joining this actor */
	bool spawning;     /* af_spawn still owns it */
	bool inbox_only;   /* a client's inbox: a name with no thread */
	bool gateway;      /* takes messages addressed to other names */
	/* ipc socket files this actor bound, removed when it stops. */
	struct af__ipc_file *ipc_files;
	/* A pending export, handed to the actor's thread (under sys->mu). */
	const char *export_endpoint;
	const struct af__curve_bind *export_curve; /* NULL: plain */
	bool export_done;
	int export_result;
	/* af_export calls holding this entry across a wait on sys->cv (under
	 * sys->mu): whoever frees the entry waits until there are none. */
	int export_waiters;
	/* af_system_drain asked this actor to refuse new remote requests
	 * and remove its socket files (under sys->mu); done once its thread
	 * has. draining is the thread's own copy. */
	bool drain_requested;
	bool drain_done;
	bool draining;
	/* Counters kept by the actor's thread, read by anyone under sys->mu
	 * (stats.c), and its mailbox gauge (NULL for a client's inbox). */
	af__actor_stats stats;
	af__gauge *gauge;
	struct af__actor *next;
} af__actor;

/* A context that wants to hear when actors stop (clients, actors). */
typedef struct af__waker {
	int fd;
	/* Set while the context has requests outstanding or waits for room
	 * in a mailbox: only those need waking when an actor stops; the
	 * others notice on their next send. */
	atomic_bool waiting;
	struct af__waker *prev;
	struct af__waker *next;
} af__waker;

struct af_system {
	void *zctx;
	size_t max_msg;
	int64_t peer_idle_ms; /* af_system_opts.peer_idle_ms, resolved */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	af__actor *actors; /* newest first */
	af__waker *wakers;
	uint64_t next_incarnation;
	uint64_t next_client;
	uint64_t next_gateway;
	atomic_uint_fast64_t epoch;
	/* The first request id not yet handed to a context (af__ctx_next_id).
	 */
	atomic_uint_fast64_t next_ids;
	/* af_system_stats, summed over every context of the system. */
	atomic_uint_fast64_t stats[AF__STAT_COUNT];
	/* CURVE (curve.c, zap.c), under mu: the ZAP handler, started by the
	 * first CURVE export, and the keys of outgoing connections. */
	struct af__zap *zap;
	struct af__curve_route *curve_routes;
	/* Set by af_system_drain: actors whose requests in flight drop to
	 * none broadcast cv. */
	atomic_bool draining;
};

/* The incarnation of the running actor called name, or 0. */
/* include_stopping: an actor that is draining its mailbox still counts (for
 * connections made before it began to stop). */
uint64_t af__system_lookup(af_system *sys, const char *name, size_t len,
			   bool include_stopping);
/* As af__system_lookup (running actors and inboxes only), also taking a
 * hold on the mailbox gauge of what it finds (*gauge NULL for none). */
uint64_t af__system_lookup_gauge(af_system *sys, const char *name, size_t len,
				 af__gauge **gauge);
/* Bumps the epoch and wakes every context so they revalidate their peers.
 * Called with sys->mu held. */
void af__system_bump_epoch(af_system *sys);
void af__system_add_waker(af_system *sys, af__waker *w);
void af__system_remove_waker(af_system *sys, af__waker *w);
/* Registers a client's inbox under a fresh name ("client#N", written to
 * name) so that actors can answer it. AF_OK or AF_ENOMEM. */
af_err af__system_add_inbox(af_system *sys, char *name, size_t cap);
/* Removes it and tells every context (its peers to it close). */
void af__system_remove_inbox(af_system *sys, const char *name);
/* Writes 1 to an eventfd. */
void af__wake_fd(int fd);

/* Spawns a system gateway (gateway.c): an actor that is handed messages
 * addressed to any name. */
af_err af__spawn_gateway(af_system *sys, const char *name,
			 const af_actor_ops *ops);
/* The actor thread's body (actor.c). */
void *af__actor_main(void *arg);
/* Binds a's mailbox to endpoint; on a's own thread only (actor.c). */
af_err af__actor_bind(af__actor *a, const char *endpoint);
/* The same with CURVE when curve is not NULL (actor.c). */
af_err af__actor_bind_with(af__actor *a, const char *endpoint,
			   const struct af__curve_bind *curve);
/* af_export and af_system_export, with CURVE when curve is not NULL
 * (system.c, gateway.c). */
af_err af__export(af_system *sys, const char *name, const char *endpoint,
		  const struct af__curve_bind *curve);
af_err af__system_export(af_system *sys, const char *endpoint,
			 const struct af__curve_bind *curve);

#endif
