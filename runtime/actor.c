/*
 * An actor's thread: its start and stop handshakes, the dispatch of tells
 * and requests to its handler, and the ROUTER that exports it to other
 * processes. Receiving lives in inbox.c, answering in reply.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "ctx.h"
#include "curve.h"
#include "system.h"

/* How long a stopping actor waits for its requesters to take the answers
 * it still holds (the error answers to requests drained at stop): first
 * those that met a full mailbox, then, its sockets closed, those ZeroMQ
 * still holds. */
#define STOP_LINGER_MS 1000

typedef struct af__ipc_file {
	struct af__ipc_file *next;
	dev_t dev;
	ino_t ino;
	char path[];
} af__ipc_file;

bool af__actor_stopping(const af_ctx *ctx)
{
	return ctx->actor->stop_requested || ctx->actor->self_stop;
}

void af_stop_self(af_ctx *ctx)
{
	if (ctx->actor != NULL)
		ctx->actor->self_stop = true;
}

/* ---- dispatch ---------------------------------------------------------- */

static bool name_is(const af_ctx *ctx, const char *s, size_t len)
{
	return strlen(ctx->name) == len && memcmp(ctx->name, s, len) == 0;
}

/* A message of a reserved type ("af.stats") meant for this actor: a
 * gateway's own are those that name no actor behind it. */
static bool reserved_here(const af__actor *a, const af_msg *m)
{
	return af__stats_reserved(m) && (!a->gateway || m->env.to == NULL);
}

/* A request taken (and counted) by the actor. */
static void handle_request(af_ctx *ctx, af__actor *a, af_msg *m)
{
	af_err err;

	/* A draining system takes no new work from other processes. */
	if (a->draining && m->route != NULL) {
		af_reply_error(ctx, m, AF_ESTOPPED,
			       "draining: no new requests are taken");
		return;
	}
	if (a->ops->handle == NULL) {
		af_reply_error(ctx, m, AF_ENOTSUP, "%s takes no requests",
			       a->ops->type_name);
		return;
	}
	err = a->ops->handle(ctx, a->state, m);
	if (!m->answered && !m->deferred) {
		if (err != AF_OK)
			af_reply_error(ctx, m, err, NULL);
		else
			af_reply_error(ctx, m, AF_ENOREPLY,
				       "%s handled '%s' without replying",
				       a->ops->type_name, m->type);
	}
}

void af__actor_dispatch(af_ctx *ctx, af_msg *m)
{
	af__actor *a = ctx->actor;

	switch (m->env.kind) {
	case AF_KIND_TELL:
		if (reserved_here(a, m))
			return;
		af__stat_add(&a->stats.tells, 1);
		if (a->ops->handle != NULL && !ctx->stopping)
			(void)a->ops->handle(ctx, a->state, m);
		return;
	case AF_KIND_REQUEST:
		if (ctx->stopping) {
			af_reply_error(ctx, m, AF_ESTOPPED, NULL);
			return;
		}
		if (m->env.to != NULL && !a->gateway &&
		    !name_is(ctx, m->env.to, m->env.to_len)) {
			af_reply_error(ctx, m, AF_ENOTFOUND,
				       "no actor named '%.*s' at this endpoint",
				       (int)m->env.to_len, m->env.to);
			return;
		}
		if (reserved_here(a, m)) {
			af__stats_answer_reserved(ctx, m);
			return;
		}
		af__stats_request_taken(ctx, m);
		handle_request(ctx, a, m);
		/* A deferred one stays in flight until its pending goes. */
		if (!m->deferred)
			af__stats_request_done(ctx);
		return;
	case AF_KIND_CANCEL:
		if (!ctx->stopping) {
			af_pending *p = af__pending_find(ctx, m);
			if (p != NULL)
				af__pending_cancel(ctx, p);
		}
		return;
	case AF_KIND_CREDIT:
		if (!ctx->stopping)
			af__stream_on_credit(ctx, m);
		return;
	case AF_KIND_HEARTBEAT:
		return;
	default:
		af__ctx_count(ctx, AF__STAT_DROPPED, 1);
		return;
	}
}

/* ---- exports ----------------------------------------------------------- */

/* A socket file that nobody accepts on was left by a process that died;
 * one that accepts belongs to a live process and must not be taken. */
static af_err check_ipc_path(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return AF_EADDR;
	if (lstat(path, &st) != 0)
		return AF_OK;
	if (!S_ISSOCK(st.st_mode))
		return AF_EEXIST;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return AF_ESYS;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (rc == 0)
		return AF_EEXIST;
	return unlink(path) == 0 || errno == ENOENT ? AF_OK : AF_ESYS;
}

/* Remembers which file the bind created, so that only that file (not one
 * a later process put at the same path) is removed on stop. */
static void remember_ipc_file(af__actor *a, const char *path)
{
	size_t len = strlen(path);
	af__ipc_file *f = malloc(sizeof(*f) + len + 1);
	struct stat st;

	if (f == NULL || lstat(path, &st) != 0) {
		free(f);
		return;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	memcpy(f->path, path, len + 1);
	f->next = a->ipc_files;
	a->ipc_files = f;
}

static void remove_ipc_files(af__actor *a)
{
	while (a->ipc_files != NULL) {
		af__ipc_file *f = a->ipc_files;
		struct stat st;
		a->ipc_files = f->next;
		if (lstat(f->path, &st) == 0 && st.st_dev == f->dev &&
		    st.st_ino == f->ino)
			unlink(f->path);
		free(f);
	}
}

static void router_readable(af__watch *w, unsigned events)
{
	af__actor *a = AF__CONTAINER(w, af__actor, router_watch);

	af__ctx_read(a->ctx, a->router, w, true, AF__READ_TURN);
}

/* The ROUTER is made on the first export: an actor only ever reached
 * in-process needs none. */
static af_err open_router(af__actor *a)
{
	int one = 1;
	int hwm = a->opts.mailbox_capacity;
	int64_t max = (int64_t)a->ctx->max_msg * 4;

	if (a->router != NULL)
		return AF_OK;
	a->router = zmq_socket(a->sys->zctx, ZMQ_ROUTER);
	if (a->router == NULL)
		return AF_ESYS;
	/* MANDATORY makes a full or vanished requester an error to handle
	 * rather than a silent drop; MAXMSGSIZE closes a connection that
	 * sends a frame far over the limit before it is read. */
	if (zmq_setsockopt(a->router, ZMQ_ROUTER_MANDATORY, &one,
			   sizeof(one)) != 0 ||
	    zmq_setsockopt(a->router, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
	    zmq_setsockopt(a->router, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
	    af__loop_add_zsock(&a->ctx->loop, &a->router_watch, a->router,
			       router_readable) != AF_OK) {
		zmq_close(a->router);
		a->router = NULL;
		return AF_ESYS;
	}
	return AF_OK;
}

af_err af__actor_bind(af__actor *a, const char *endpoint)
{
	af_err err;

	if (a->ctx == NULL)
		return AF_ESTOPPED;
	if (strncmp(endpoint, "ipc://", 6) == 0) {
		err = check_ipc_path(endpoint + 6);
		if (err != AF_OK)
			return err;
	} else if (strncmp(endpoint, "tcp://", 6) != 0) {
		return AF_EADDR;
	}
	err = open_router(a);
	if (err != AF_OK)
		return err;
	if (zmq_bind(a->router, endpoint) == 0) {
		if (strncmp(endpoint, "ipc://", 6) == 0)
			remember_ipc_file(a, endpoint + 6);
		return AF_OK;
	}
	switch (errno) {
	case EADDRINUSE:
		return AF_EEXIST;
	case EINVAL:
	case EPROTONOSUPPORT:
	case ENODEV:
	case ENOENT:
	case EADDRNOTAVAIL:
		return AF_EADDR;
	default:
		return AF_ESYS;
	}
}

af_err af__actor_bind_with(af__actor *a, const char *endpoint,
			   const struct af__curve_bind *curve)
{
	af_err err;

	if (curve == NULL)
		return af__actor_bind(a, endpoint);
	if (a->ctx == NULL)
		return AF_ESTOPPED;
	/* ZeroMQ copies a socket's options at each bind: set CURVE for this
	 * one, and take it off again for the endpoints bound later. */
	err = open_router(a);
	if (err == AF_OK) {
		err = af__curve_bind_on(a->router, curve);
		if (err == AF_OK)
			err = af__actor_bind(a, endpoint);
		af__curve_bind_off(a->router);
	}
	return err;
}

static void on_wake(af_ctx *ctx)
{
	af__actor *a = ctx->actor;
	af_system *sys = a->sys;
	const char *endpoint = NULL;
	const struct af__curve_bind *curve = NULL;
	af_err err;

	pthread_mutex_lock(&sys->mu);
	if (a->export_endpoint != NULL && !a->export_done) {
		endpoint = a->export_endpoint;
		curve = a->export_curve;
	}
	pthread_mutex_unlock(&sys->mu);
	if (endpoint == NULL)
		return;
	err = af__actor_bind_with(a, endpoint, curve);
	pthread_mutex_lock(&sys->mu);
	a->export_result = err;
	a->export_done = true;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
}

/* ---- the thread -------------------------------------------------------- */

/* af_system_drain asked the actor to take no new connections: the socket
 * files go. The listeners stay, since ZeroMQ would close the connections
 * they made with them, and answers in flight travel on those. */
static void take_drain(af__actor *a)
{
	af_system *sys = a->sys;
	bool drain;

	pthread_mutex_lock(&sys->mu);
	drain = a->drain_requested && !a->drain_done;
	pthread_mutex_unlock(&sys->mu);
	if (!drain)
		return;
	a->draining = true;
	remove_ipc_files(a);
	pthread_mutex_lock(&sys->mu);
	a->drain_done = true;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
}

/* The actor's wake-up: a drain, an export handed to its thread. */
static void on_actor_wake(af_ctx *ctx)
{
	take_drain(ctx->actor);
	on_wake(ctx);
}

static void set_phase(af__actor *a, af__actor_state phase, af_err init)
{
	af_system *sys = a->sys;

	pthread_mutex_lock(&sys->mu);
	if (phase == AF__ACTOR_RUNNING || !a->init_done) {
		a->init_done = true;
		a->init_result = init;
	}
	if (phase == AF__ACTOR_EXITED) {
		a->wake_fd = -1;
		if (a->export_endpoint != NULL && !a->export_done) {
			a->export_result = AF_ESTOPPED;
			a->export_done = true;
		}
		af__system_bump_epoch(sys);
	}
	a->phase = phase;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
}

/* Answers what is still queued, then everything still open. */
static void drain(af__actor *a)
{
	af_ctx *ctx = a->ctx;

	ctx->stopping = true;
	a->stop_requested = false;
	a->self_stop = false;
	/* Each pass answers what arrived during the previous one; senders
	 * still connected may keep sending, so it ends after a bounded number
	 * of passes. Later arrivals see the actor go (AF_EPEERDOWN). */
	for (int i = 0; i < 64; i++) {
		int n = 0;
		if (ctx->inbox != NULL)
			n += af__ctx_read(ctx, ctx->inbox, &ctx->inbox_watch,
					  false, AF__READ_PASS);
		if (a->router != NULL)
			n += af__ctx_read(ctx, a->router, &a->router_watch,
					  true, AF__READ_PASS);
		if (n == 0)
			break;
	}
	af__reply_settle_deferred(ctx);
	af__ctx_fail_requests(ctx, AF_ECANCELED);
}

static void close_router(af__actor *a)
{
	int linger = STOP_LINGER_MS;

	if (a->router == NULL)
		return;
	af__loop_del(&a->ctx->loop, &a->router_watch, NULL);
	zmq_setsockopt(a->router, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_close(a->router);
	a->router = NULL;
	remove_ipc_files(a);
}

/* Everything after the loop: settle, stop, close, free. */
static void finish(af__actor *a, af_err init_err)
{
	af_ctx *ctx = a->ctx;

	drain(a);
	if (init_err == AF_OK && a->ops->stop != NULL)
		a->ops->stop(ctx, a->state);
	af__reply_hand_over_backlog(ctx, STOP_LINGER_MS);
	close_router(a);
	pthread_mutex_lock(&a->sys->mu);
	a->wake_fd = -1;
	pthread_mutex_unlock(&a->sys->mu);
	af__ctx_fini(ctx, AF_ECANCELED);
	free(ctx);
	a->ctx = NULL;
	set_phase(a, AF__ACTOR_EXITED, init_err);
}

void *af__actor_main(void *arg)
{
	af__actor *a = arg;
	af_ctx *ctx = calloc(1, sizeof(*ctx));
	af_err err = ctx == NULL ? AF_ENOMEM : AF_OK;
	char thread_name[16];

	/* Named threads make top -H, perf and gdb speak of actors. */
	snprintf(thread_name, sizeof(thread_name), "af:%.12s", a->name);
	pthread_setname_np(pthread_self(), thread_name);
	if (err == AF_OK)
		err = af__ctx_init(ctx, a->sys, a->sys->zctx, a->sys->max_msg,
				   a->name);
	if (err != AF_OK) {
		free(ctx);
		set_phase(a, AF__ACTOR_EXITED, err);
		return NULL;
	}
	a->ctx = ctx;
	ctx->actor = a;
	ctx->on_wake = on_actor_wake;
	snprintf(ctx->inbox_name, sizeof(ctx->inbox_name), "%s", a->name);
	pthread_mutex_lock(&a->sys->mu);
	a->wake_fd = ctx->waker->fd;
	pthread_mutex_unlock(&a->sys->mu);
	err = af__ctx_open_inbox(ctx, a->opts.mailbox_capacity);
	if (err == AF_OK && a->ops->init != NULL) {
		a->in_init = true;
		err = a->ops->init(ctx, a->config, &a->state);
		a->in_init = false;
	}
	if (err != AF_OK) {
		finish(a, err);
		return NULL;
	}
	set_phase(a, AF__ACTOR_RUNNING, AF_OK);
	while (!a->stop_requested && !a->self_stop)
		af__loop_run_once(&ctx->loop, -1);
	pthread_mutex_lock(&a->sys->mu);
	if (a->phase == AF__ACTOR_RUNNING)
		a->phase = AF__ACTOR_STOPPING;
	pthread_mutex_unlock(&a->sys->mu);
	finish(a, AF_OK);
	return NULL;
}
