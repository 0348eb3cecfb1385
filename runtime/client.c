/*
 * A client is a context without a mailbox, driven by the thread that waits
 * on it: a blocking request runs the context's loop until the request's
 * continuation has run.
 */
#include <stdlib.h>
#include <zmq.h>

#include "actorflow/client.h"
#include "clock.h"
#include "ctx.h"
#include "curve.h"
#include "system.h"

/* Answers a client may have waiting per actor; more wait in the actor. */
#define CLIENT_INBOX_CAPACITY 1000

struct af_client {
	af_ctx ctx;
	void *own_zctx;         /* a standalone client's ZeroMQ context */
	af__curve_client curve; /* its own keys, when ctx.curve is set */
	bool done;
	int status;
	af_msg *reply;
	af_stream *streams; /* open streams, detached when the client goes */
};

/* A chunk waiting for the reader. */
typedef struct chunk_node {
	struct chunk_node *next;
	af_msg *msg;
} chunk_node;

struct af_stream {
	af_client *client; /* NULL once the client is destroyed */
	uint64_t id;
	chunk_node *head;
	chunk_node *tail;
	bool ended;    /* the end or error arrived */
	bool reported; /* ... and was handed to the reader */
	int status;
	af_msg *last; /* the end or error message */
	af_stream *prev;
	af_stream *next;
};

af_err af_client_new(af_client **out, af_system *sys)
{
	return af_client_new_opts(out, sys, NULL);
}

af_err af_client_new_opts(af_client **out, af_system *sys,
			  const af_client_opts *opts)
{
	af_client *c;
	void *zctx;
	af_err err;

	if (out == NULL)
		return AF_EINVAL;
	if (opts != NULL && opts->curve != NULL && !af_curve_available())
		return AF_ENOTSUP;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return AF_ENOMEM;
	if (opts != NULL && opts->curve != NULL) {
		err = af__curve_client_set(&c->curve, opts->curve);
		if (err != AF_OK) {
			af__curve_wipe(&c->curve, sizeof(c->curve));
			free(c);
			return err;
		}
	}
	if (sys != NULL) {
		zctx = sys->zctx;
	} else {
		zctx = c->own_zctx = zmq_ctx_new();
		if (zctx == NULL) {
			free(c);
			return AF_ESYS;
		}
	}
	err = af__ctx_init(&c->ctx, sys, zctx,
			   sys != NULL ? sys->max_msg : AF__DEFAULT_MAX_MESSAGE,
			   "client");
	/* Local actors answer a client in its own inbox; remote ones on the
	 * connection the request went out on. */
	if (err == AF_OK && sys != NULL) {
		err = af__system_add_inbox(sys, c->ctx.inbox_name,
					   sizeof(c->ctx.inbox_name));
		if (err == AF_OK)
			err = af__ctx_open_inbox(&c->ctx,
						 CLIENT_INBOX_CAPACITY);
		if (err != AF_OK) {
			if (c->ctx.inbox_name[0] != '\0')
				af__system_remove_inbox(sys, c->ctx.inbox_name);
			af__ctx_fini(&c->ctx, AF_ECANCELED);
		}
	}
	if (err != AF_OK) {
		if (c->own_zctx != NULL)
			zmq_ctx_term(c->own_zctx);
		af__curve_wipe(&c->curve, sizeof(c->curve));
		free(c);
		return err;
	}
	if (opts != NULL && opts->curve != NULL)
		c->ctx.curve = &c->curve;
	*out = c;
	return AF_OK;
}

static void abandon(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
}

void af_client_destroy(af_client **cp)
{
	af_client *c;
	af__outreq *o;
	size_t pos = 0;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	*cp = NULL;
	/* Nobody waits for what is still outstanding. */
	while ((o = af__idmap_next(&c->ctx.outreqs, &pos, NULL)) != NULL)
		o->fn = abandon;
	for (af_stream *s = c->streams; s != NULL; s = s->next)
		s->client = NULL;
	af__ctx_fini(&c->ctx, AF_ECANCELED);
	if (c->ctx.sys != NULL)
		af__system_remove_inbox(c->ctx.sys, c->ctx.inbox_name);
	if (c->own_zctx != NULL)
		zmq_ctx_term(c->own_zctx);
	af__curve_wipe(&c->curve, sizeof(c->curve));
	free(c);
}

static void on_outcome(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	af_client *c = arg;

	c->status = status;
	c->reply = NULL;
	if (reply != NULL) {
		af_err err = af__msg_clone(reply, &c->reply);
		if (err != AF_OK)
			c->status = err;
	}
	c->done = true;
}

af_err af_client_request(af_client *c, const char *addr, const char *type,
			 const af_payload *payload, int64_t timeout_ms,
			 af_msg **reply)
{
	af__request_opts opts = {.block_ms = timeout_ms};
	af_err err;

	if (c == NULL || reply == NULL || timeout_ms <= 0)
		return AF_EINVAL;
	*reply = NULL;
	c->done = false;
	err = af__ctx_request(&c->ctx, addr, type, payload, timeout_ms, &opts,
			      on_outcome, c, NULL);
	if (err != AF_OK)
		return err;
	/* The request's deadline timer guarantees an outcome. */
	while (!c->done) {
		err = af__loop_run_once(&c->ctx.loop, -1);
		if (err != AF_OK)
			return err;
	}
	*reply = c->reply;
	c->reply = NULL;
	return c->status;
}

af_err af_client_tell(af_client *c, const char *addr, const char *type,
		      const af_payload *payload, int64_t timeout_ms)
{
	af__envelope env = {.kind = AF_KIND_TELL};

	if (c == NULL || timeout_ms < 0)
		return AF_EINVAL;
	return af__ctx_send(&c->ctx, addr, &env, type, payload, timeout_ms,
			    NULL);
}

/* ---- streams ----------------------------------------------------------- */

static void stream_on_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	af_stream *s = arg;
	chunk_node *n = malloc(sizeof(*n));

	/* The window bounds what waits here. Without memory for it the
	 * chunk cannot be kept, and the stream must not go on without it. */
	if (n == NULL || af__msg_clone(chunk, &n->msg) != AF_OK) {
		free(n);
		s->status = AF_ENOMEM;
		af_cancel(ctx, s->id);
		return;
	}
	n->next = NULL;
	if (s->tail != NULL)
		s->tail->next = n;
	else
		s->head = n;
	s->tail = n;
}

static void stream_on_end(af_ctx *ctx, int status, af_msg *last, void *arg)
{
	af_stream *s = arg;

	/* A producer's code that af_stream_next gives a meaning of its own
	 * would hide the failure: AF_EAGAIN reads as "nothing yet" (a reader
	 * waiting for more would wait forever), AF_EOF as a stream that
	 * ended well. The error message keeps the producer's code. */
	if (status == AF_EAGAIN || status == AF_EOF)
		status = AF_EREMOTE;
	s->ended = true;
	if (s->status == AF_OK)
		s->status = status;
	if (last != NULL && af__msg_clone(last, &s->last) != AF_OK &&
	    s->status == AF_OK)
		s->status = AF_ENOMEM;
}

af_err af_client_stream(af_client *c, const char *addr, const char *type,
			const af_payload *payload, int64_t timeout_ms,
			af_stream **out)
{
	af__request_opts opts = {.block_ms = timeout_ms,
				 .on_chunk = stream_on_chunk,
				 .manual_credit = true};
	af_stream *s;
	af_err err;

	if (c == NULL || out == NULL || timeout_ms <= 0)
		return AF_EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return AF_ENOMEM;
	s->client = c;
	err = af__ctx_request(&c->ctx, addr, type, payload, timeout_ms, &opts,
			      stream_on_end, s, &s->id);
	if (err != AF_OK) {
		free(s);
		return err;
	}
	s->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = s;
	c->streams = s;
	*out = s;
	return AF_OK;
}

af_err af_stream_next(af_stream *s, int64_t timeout_ms, af_msg **msg)
{
	int64_t deadline_us;

	if (s == NULL || msg == NULL || timeout_ms < 0)
		return AF_EINVAL;
	*msg = NULL;
	/* A client destroyed under the stream took its answers with it. */
	if (s->client == NULL && !s->ended)
		return AF_ECANCELED;
	/* A huge timeout_ms (INT64_MAX) is a wait without end in practice. */
	deadline_us = af__after_ms(timeout_ms);
	for (;;) {
		if (s->head != NULL) {
			chunk_node *n = s->head;
			s->head = n->next;
			if (s->head == NULL)
				s->tail = NULL;
			*msg = n->msg;
			free(n);
			if (s->client != NULL)
				af__stream_taken(&s->client->ctx, s->id, 1);
			return AF_OK;
		}
		if (s->ended) {
			if (!s->reported) {
				s->reported = true;
				*msg = s->last;
				s->last = NULL;
			}
			return s->status == AF_OK ? AF_EOF : s->status;
		}
		{
			int64_t left = deadline_us - af__now_us();
			if (left <= 0 && timeout_ms > 0)
				return AF_EAGAIN;
			if (af__loop_run_once(&s->client->ctx.loop,
					      left > 0 ? left : 0) != AF_OK)
				return AF_ESYS;
			if (timeout_ms == 0 && s->head == NULL && !s->ended)
				return AF_EAGAIN;
		}
	}
}

void af_stream_close(af_stream **sp)
{
	af_stream *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	*sp = NULL;
	if (s->client != NULL) {
		af_client *c = s->client;
		if (!s->ended)
			af_cancel(&c->ctx, s->id);
		if (s->prev != NULL)
			s->prev->next = s->next;
		else
			c->streams = s->next;
		if (s->next != NULL)
			s->next->prev = s->prev;
	}
	while (s->head != NULL) {
		chunk_node *n = s->head;
		s->head = n->next;
		af_msg_destroy(&n->msg);
		free(n);
	}
	af_msg_destroy(&s->last);
	free(s);
}
