/*
 * An actor's thread: its mailbox (a ROUTER socket), the dispatch of
 * tells and requests to its handler, replies, deferred requests, and the
 * stop sequence.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "ctx.h"
#include "system.h"

#define READ_BUDGET 1024
/* How long a stopping mailbox keeps undelivered replies (error answers to
 * the requests it drained) for their requesters. */
#define STOP_LINGER_MS 1000
#define BACKLOG_RETRY_US 1000

typedef struct af__ipc_file {
	struct af__ipc_file *next;
	dev_t dev;
	ino_t ino;
	char path[];
} af__ipc_file;

typedef struct af__backlog {
	struct af__backlog *next;
	int nroute;
	zmq_msg_t route[AF__MAX_ROUTE];
	zmq_msg_t body;
} af__backlog;

/* ---- replies ----------------------------------------------------------- */

static void backlog_free(af__backlog *b)
{
	for (int i = 0; i < b->nroute; i++)
		zmq_msg_close(&b->route[i]);
	zmq_msg_close(&b->body);
	free(b);
}

/* Sends route + body on the mailbox. The frames are copied for sending,
 * so the caller keeps them. AF_OK, AF_EAGAIN (requester's queue full),
 * AF_EPEERDOWN (requester gone), AF_ESYS. */
static af_err route_send(void *mailbox, zmq_msg_t *route, int nroute,
			 zmq_msg_t *body)
{
	for (int i = 0; i <= nroute; i++) {
		zmq_msg_t part;
		zmq_msg_t *src = i < nroute ? &route[i] : body;
		int flags = ZMQ_DONTWAIT | (i < nroute ? ZMQ_SNDMORE : 0);

		zmq_msg_init(&part);
		zmq_msg_copy(&part, src);
		if (zmq_msg_send(&part, mailbox, flags) < 0) {
			int e = errno;
			zmq_msg_close(&part);
			/* Only the first frame can fail: ZeroMQ routes a
			 * message as a whole once its first frame is taken. */
			if (e == EAGAIN)
				return AF_EAGAIN;
			return e == EHOSTUNREACH ? AF_EPEERDOWN : AF_ESYS;
		}
	}
	return AF_OK;
}

static void backlog_flush(af_ctx *ctx);

static void backlog_retry(af__timer *t)
{
	af_ctx *ctx = (af_ctx *)((char *)t - offsetof(af_ctx, backlog_timer));

	backlog_flush(ctx);
}

static void backlog_flush(af_ctx *ctx)
{
	af__actor *a = ctx->actor;

	while (ctx->backlog_head != NULL) {
		af__backlog *b = ctx->backlog_head;
		af_err err =
			route_send(a->mailbox, b->route, b->nroute, &b->body);
		if (err == AF_EAGAIN)
			break;
		if (err != AF_OK)
			ctx->counters.unroutable++;
		ctx->backlog_head = b->next;
		if (ctx->backlog_head == NULL)
			ctx->backlog_tail = NULL;
		backlog_free(b);
	}
	af__loop_kick(&ctx->loop, &a->mailbox_watch);
	/* ZeroMQ gives no writable signal per requester, so a full one is
	 * polled on a short timer until it drains. */
	if (ctx->backlog_head != NULL && ctx->backlog_timer.index == SIZE_MAX)
		af__loop_timer_add(&ctx->loop, &ctx->backlog_timer,
				   af__now_us() + BACKLOG_RETRY_US);
}

static af_err backlog_push(af_ctx *ctx, zmq_msg_t *route, int nroute,
			   zmq_msg_t *body)
{
	af__backlog *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return AF_ENOMEM;
	b->nroute = nroute;
	for (int i = 0; i < nroute; i++) {
		zmq_msg_init(&b->route[i]);
		zmq_msg_copy(&b->route[i], &route[i]);
	}
	zmq_msg_init(&b->body);
	zmq_msg_move(&b->body, body);
	if (ctx->backlog_tail != NULL)
		ctx->backlog_tail->next = b;
	else
		ctx->backlog_head = b;
	ctx->backlog_tail = b;
	backlog_flush(ctx);
	return AF_OK;
}

/* Sends a reply or error to the requester behind route. */
static af_err answer(af_ctx *ctx, zmq_msg_t *route, int nroute, af_kind kind,
		     uint64_t id, const af_payload *payload)
{
	af__envelope env = {.kind = kind, .id = id};
	zmq_msg_t body;
	af_err err = af__frame_build(&body, &env, payload, ctx->max_msg);

	if (err != AF_OK)
		return err;
	/* Keep replies in order behind ones already waiting. */
	err = ctx->backlog_head != NULL
		      ? AF_EAGAIN
		      : route_send(ctx->actor->mailbox, route, nroute, &body);
	/* The send may have consumed the mailbox's readiness signal. */
	af__loop_kick(&ctx->loop, &ctx->actor->mailbox_watch);
	if (err == AF_EAGAIN)
		return backlog_push(ctx, route, nroute, &body);
	zmq_msg_close(&body);
	if (err == AF_EPEERDOWN) {
		/* The requester is gone: nobody is left to tell. */
		ctx->counters.unroutable++;
		return AF_OK;
	}
	return err;
}

static af_err answer_error(af_ctx *ctx, zmq_msg_t *route, int nroute,
			   uint64_t id, int code, const char *fmt, va_list ap)
{
	char text[512];
	af_err err;

	if (fmt != NULL)
		vsnprintf(text, sizeof(text), fmt, ap);
	af_payload_reset(ctx->scratch);
	err = af__error_payload(ctx->scratch, code, fmt != NULL ? text : NULL);
	if (err != AF_OK)
		return err;
	return answer(ctx, route, nroute, AF_KIND_ERROR, id, ctx->scratch);
}

static af_err answer_error_text(af_ctx *ctx, zmq_msg_t *route, int nroute,
				uint64_t id, int code, const char *text)
{
	af_err err;

	af_payload_reset(ctx->scratch);
	err = af__error_payload(ctx->scratch, code, text);
	if (err != AF_OK)
		return err;
	return answer(ctx, route, nroute, AF_KIND_ERROR, id, ctx->scratch);
}

static af_err check_answerable(af_ctx *ctx, const af_msg *m)
{
	if (ctx->actor == NULL || m->env.kind != AF_KIND_REQUEST ||
	    m->route == NULL)
		return AF_EINVAL;
	if (m->answered || m->deferred)
		return AF_EINVAL;
	return AF_OK;
}

af_err af_reply(af_ctx *ctx, af_msg *m, const af_payload *payload)
{
	af_err err = check_answerable(ctx, m);

	if (err != AF_OK)
		return err;
	err = answer(ctx, m->route, m->nroute, AF_KIND_REPLY, m->env.id,
		     payload);
	/* A reply that could not be built (too large, unfinished payload)
	 * leaves the request open so the handler can answer with an error. */
	if (err == AF_OK)
		m->answered = true;
	return err;
}

af_err af_reply_error(af_ctx *ctx, af_msg *m, int code, const char *fmt, ...)
{
	af_err err = check_answerable(ctx, m);
	va_list ap;

	if (err != AF_OK)
		return err;
	va_start(ap, fmt);
	err = answer_error(ctx, m->route, m->nroute, m->env.id, code, fmt, ap);
	va_end(ap);
	if (err == AF_OK)
		m->answered = true;
	return err;
}

/* ---- deferred requests ------------------------------------------------- */

af_err af_defer(af_ctx *ctx, af_msg *m, af_pending **out)
{
	af_err err = check_answerable(ctx, m);
	af_pending *p;

	if (err != AF_OK)
		return err;
	if (m->nroute > AF__MAX_ROUTE)
		return AF_EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return AF_ENOMEM;
	p->id = m->env.id;
	p->deadline_us = m->deadline_us;
	p->nroute = m->nroute;
	for (int i = 0; i < m->nroute; i++) {
		zmq_msg_init(&p->route[i]);
		zmq_msg_copy(&p->route[i], &m->route[i]);
	}
	p->next = ctx->deferred;
	if (ctx->deferred != NULL)
		ctx->deferred->prev = p;
	ctx->deferred = p;
	m->deferred = true;
	*out = p;
	return AF_OK;
}

static void pending_free(af_ctx *ctx, af_pending **pp)
{
	af_pending *p = *pp;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		ctx->deferred = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	for (int i = 0; i < p->nroute; i++)
		zmq_msg_close(&p->route[i]);
	free(p);
	*pp = NULL;
}

af_err af_pending_reply(af_ctx *ctx, af_pending **pp, const af_payload *payload)
{
	af_err err;

	if (pp == NULL || *pp == NULL || ctx->actor == NULL)
		return AF_EINVAL;
	err = answer(ctx, (*pp)->route, (*pp)->nroute, AF_KIND_REPLY, (*pp)->id,
		     payload);
	if (err == AF_OK)
		pending_free(ctx, pp);
	return err;
}

af_err af_pending_error(af_ctx *ctx, af_pending **pp, int code, const char *fmt,
			...)
{
	af_err err;
	va_list ap;

	if (pp == NULL || *pp == NULL || ctx->actor == NULL)
		return AF_EINVAL;
	va_start(ap, fmt);
	err = answer_error(ctx, (*pp)->route, (*pp)->nroute, (*pp)->id, code,
			   fmt, ap);
	va_end(ap);
	if (err == AF_OK)
		pending_free(ctx, pp);
	return err;
}

int64_t af_pending_remaining_ms(const af_pending *p)
{
	int64_t left;

	if (p->deadline_us < 0)
		return -1;
	left = (p->deadline_us - af__now_us()) / 1000;
	return left > 0 ? left : 0;
}

/* ---- the mailbox ------------------------------------------------------- */

static bool name_is(const af_ctx *ctx, const char *s, size_t len)
{
	return strlen(ctx->name) == len && memcmp(ctx->name, s, len) == 0;
}

static void dispatch(af_ctx *ctx, af_msg *m)
{
	af__actor *a = ctx->actor;
	af_err err;

	switch (m->env.kind) {
	case AF_KIND_TELL:
		if (a->ops->handle != NULL && !ctx->stopping)
			(void)a->ops->handle(ctx, a->state, m);
		return;
	case AF_KIND_REQUEST:
		if (ctx->stopping) {
			answer_error_text(ctx, m->route, m->nroute, m->env.id,
					  AF_ESTOPPED, NULL);
			return;
		}
		if (m->env.to != NULL &&
		    !name_is(ctx, m->env.to, m->env.to_len)) {
			af_reply_error(ctx, m, AF_ENOTFOUND,
				       "no actor named '%.*s' at this endpoint",
				       (int)m->env.to_len, m->env.to);
			return;
		}
		if (a->ops->handle == NULL) {
			af_reply_error(ctx, m, AF_ENOTSUP,
				       "%s takes no requests",
				       a->ops->type_name);
			return;
		}
		err = a->ops->handle(ctx, a->state, m);
		if (!m->answered && !m->deferred) {
			if (err != AF_OK)
				af_reply_error(ctx, m, err, NULL);
			else
				af_reply_error(
					ctx, m, AF_ENOREPLY,
					"%s handled '%s' without replying",
					a->ops->type_name, m->type);
		}
		return;
	case AF_KIND_CANCEL:
	case AF_KIND_HEARTBEAT:
		/* Deadlines bound deferred work; cancellation of streams
		 * builds on this message. */
		return;
	default:
		ctx->counters.malformed++;
		return;
	}
}

/* A message too large to handle is still answered when it is a request
 * whose header can be read. */
static void reject_oversized(af_ctx *ctx, zmq_msg_t *route, int nroute,
			     zmq_msg_t *body)
{
	af__envelope env;

	if (af__envelope_decode_header(&env, zmq_msg_data(body),
				       zmq_msg_size(body), SIZE_MAX) == AF_OK &&
	    env.kind == AF_KIND_REQUEST) {
		char text[96];
		snprintf(text, sizeof(text),
			 "message of %zu bytes exceeds the limit of %zu",
			 zmq_msg_size(body), ctx->max_msg);
		answer_error_text(ctx, route, nroute, env.id, AF_EMSGSIZE,
				  text);
		return;
	}
	ctx->counters.malformed++;
}

static void mailbox_readable(af__watch *w, unsigned events)
{
	af__actor *a =
		(af__actor *)((char *)w - offsetof(af__actor, mailbox_watch));
	af_ctx *ctx = a->ctx;
	zmq_msg_t frames[AF__MAX_ROUTE + 1];

	for (int n = 0; n < READ_BUDGET; n++) {
		int nframes = 0;
		bool too_deep = false;
		af_msg m;
		af_err err;

		zmq_msg_init(&frames[0]);
		if (zmq_msg_recv(&frames[0], a->mailbox, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frames[0]);
			return;
		}
		nframes = 1;
		while (zmq_msg_more(&frames[nframes - 1])) {
			if (nframes == AF__MAX_ROUTE + 1) {
				/* Deeper than any route we make: drain it. */
				too_deep = true;
				zmq_msg_close(&frames[nframes - 1]);
				nframes--;
			}
			zmq_msg_init(&frames[nframes]);
			if (zmq_msg_recv(&frames[nframes], a->mailbox, 0) < 0)
				break;
			nframes++;
		}
		ctx->counters.received++;
		if (too_deep || nframes < 2) {
			ctx->counters.malformed++;
			goto next;
		}
		err = af__msg_decode(&m, zmq_msg_data(&frames[nframes - 1]),
				     zmq_msg_size(&frames[nframes - 1]),
				     ctx->max_msg, &ctx->zone);
		if (err == AF_OK) {
			m.route = frames;
			m.nroute = nframes - 1;
			dispatch(ctx, &m);
		} else if (err == AF_EMSGSIZE) {
			reject_oversized(ctx, frames, nframes - 1,
					 &frames[nframes - 1]);
		} else {
			ctx->counters.malformed++;
		}
		af__msg_clear(&m);
	next:
		msgpack_zone_clear(&ctx->zone);
		for (int i = 0; i < nframes; i++)
			zmq_msg_close(&frames[i]);
		if (a->stop_requested || a->self_stop)
			return;
	}
	af__loop_kick(&ctx->loop, w);
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

static af_err bind_endpoint(af__actor *a, const char *endpoint)
{
	if (a->mailbox == NULL)
		return AF_ESTOPPED;
	if (strncmp(endpoint, "ipc://", 6) == 0) {
		af_err err = check_ipc_path(endpoint + 6);
		if (err != AF_OK)
			return err;
	} else if (strncmp(endpoint, "tcp://", 6) != 0) {
		return AF_EADDR;
	}
	if (zmq_bind(a->mailbox, endpoint) == 0) {
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

static void on_wake(af_ctx *ctx)
{
	af__actor *a = ctx->actor;
	af_system *sys = a->sys;
	const char *endpoint = NULL;

	pthread_mutex_lock(&sys->mu);
	if (a->export_endpoint != NULL && !a->export_done)
		endpoint = a->export_endpoint;
	pthread_mutex_unlock(&sys->mu);
	if (endpoint == NULL)
		return;
	af_err err = bind_endpoint(a, endpoint);
	pthread_mutex_lock(&sys->mu);
	a->export_result = err;
	a->export_done = true;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
}

af_err af__actor_bind(af__actor *a, const char *endpoint)
{
	return bind_endpoint(a, endpoint);
}

/* ---- the thread -------------------------------------------------------- */

static void set_state(af__actor *a, af__actor_state state, af_err init)
{
	af_system *sys = a->sys;

	pthread_mutex_lock(&sys->mu);
	if (state == AF__ACTOR_RUNNING || !a->init_done) {
		a->init_done = true;
		a->init_result = init;
	}
	if (state == AF__ACTOR_EXITED) {
		a->wake_fd = -1;
		if (a->export_endpoint != NULL && !a->export_done) {
			a->export_result = AF_ESTOPPED;
			a->export_done = true;
		}
		af__system_bump_epoch(sys);
	}
	a->phase = state;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
}

static af_err open_mailbox(af__actor *a)
{
	char endpoint[AF__NAME_MAX + 16];
	int one = 1;
	int hwm = a->opts.mailbox_capacity;

	a->mailbox = zmq_socket(a->sys->zctx, ZMQ_ROUTER);
	if (a->mailbox == NULL)
		return AF_ESYS;
	snprintf(endpoint, sizeof(endpoint), "inproc://af/%s", a->name);
	if (zmq_setsockopt(a->mailbox, ZMQ_ROUTER_MANDATORY, &one,
			   sizeof(one)) != 0 ||
	    zmq_setsockopt(a->mailbox, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0)
		return AF_ESYS;
	if (zmq_bind(a->mailbox, endpoint) != 0)
		return errno == EADDRINUSE ? AF_EEXIST : AF_ESYS;
	return af__loop_add_zsock(&a->ctx->loop, &a->mailbox_watch, a->mailbox,
				  mailbox_readable);
}

/* Answers what is still queued, then everything still open. */
static void drain(af__actor *a)
{
	af_ctx *ctx = a->ctx;
	af_pending *p;

	ctx->stopping = true;
	a->stop_requested = false;
	a->self_stop = false;
	for (int i = 0; i < 64; i++) {
		/* Each pass answers what arrived during the previous one;
		 * senders still connected may keep sending, so it ends after a
		 * bounded number of passes. Later arrivals see the peer go. */
		uint64_t before = ctx->counters.received;
		mailbox_readable(&a->mailbox_watch, 0);
		if (ctx->counters.received == before)
			break;
	}
	while ((p = ctx->deferred) != NULL) {
		answer_error_text(ctx, p->route, p->nroute, p->id, AF_ESTOPPED,
				  NULL);
		pending_free(ctx, &p);
	}
	backlog_flush(ctx);
	af__ctx_fail_requests(ctx, AF_ECANCELED);
}

static void close_mailbox(af__actor *a)
{
	af_ctx *ctx = a->ctx;
	int linger = STOP_LINGER_MS;

	while (ctx->backlog_head != NULL) {
		af__backlog *b = ctx->backlog_head;
		ctx->backlog_head = b->next;
		backlog_free(b);
	}
	ctx->backlog_tail = NULL;
	af__loop_timer_del(&ctx->loop, &ctx->backlog_timer);
	if (a->mailbox_watch.cb != NULL)
		af__loop_del(&ctx->loop, &a->mailbox_watch, NULL);
	zmq_setsockopt(a->mailbox, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_close(a->mailbox);
	a->mailbox = NULL;
	remove_ipc_files(a);
}

void *af__actor_main(void *arg)
{
	af__actor *a = arg;
	af_ctx *ctx = calloc(1, sizeof(*ctx));
	af_err err = ctx == NULL ? AF_ENOMEM : AF_OK;

	char thread_name[16];

	/* Named threads make top -H, perf and gdb speak of actors. */
	memcpy(thread_name, "af:", 3);
	strncpy(thread_name + 3, a->name, sizeof(thread_name) - 4);
	thread_name[sizeof(thread_name) - 1] = '\0';
	pthread_setname_np(pthread_self(), thread_name);
	if (err == AF_OK)
		err = af__ctx_init(ctx, a->sys, a->sys->zctx, a->sys->max_msg,
				   a->name);
	if (err != AF_OK) {
		free(ctx);
		set_state(a, AF__ACTOR_EXITED, err);
		return NULL;
	}
	a->ctx = ctx;
	ctx->actor = a;
	ctx->on_wake = on_wake;
	ctx->backlog_timer.index = SIZE_MAX;
	ctx->backlog_timer.cb = backlog_retry;
	pthread_mutex_lock(&a->sys->mu);
	a->wake_fd = ctx->waker->fd;
	pthread_mutex_unlock(&a->sys->mu);
	err = open_mailbox(a);
	if (err == AF_OK && a->ops->init != NULL)
		err = a->ops->init(ctx, a->config, &a->state);
	if (err != AF_OK) {
		drain(a);
		close_mailbox(a);
		af__ctx_fini(ctx, AF_ESTOPPED);
		free(ctx);
		a->ctx = NULL;
		set_state(a, AF__ACTOR_EXITED, err);
		return NULL;
	}
	set_state(a, AF__ACTOR_RUNNING, AF_OK);
	while (!a->stop_requested && !a->self_stop)
		af__loop_run_once(&ctx->loop, -1);
	pthread_mutex_lock(&a->sys->mu);
	if (a->phase == AF__ACTOR_RUNNING)
		a->phase = AF__ACTOR_STOPPING;
	pthread_mutex_unlock(&a->sys->mu);
	drain(a);
	if (a->ops->stop != NULL)
		a->ops->stop(ctx, a->state);
	close_mailbox(a);
	pthread_mutex_lock(&a->sys->mu);
	a->wake_fd = -1;
	pthread_mutex_unlock(&a->sys->mu);
	af__ctx_fini(ctx, AF_ECANCELED);
	free(ctx);
	a->ctx = NULL;
	set_state(a, AF__ACTOR_EXITED, AF_OK);
	return NULL;
}

void af_stop_self(af_ctx *ctx)
{
	if (ctx->actor != NULL)
		ctx->actor->self_stop = true;
}
