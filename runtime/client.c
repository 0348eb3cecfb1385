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
#include "system.h"

/* Answers a client may have waiting per actor; more wait in the actor. */
#define CLIENT_INBOX_CAPACITY 1000

struct af_client {
	af_ctx ctx;
	void *own_zctx; /* a standalone client's ZeroMQ context */
	bool done;
	int status;
	af_msg *reply;
};

af_err af_client_new(af_client **out, af_system *sys)
{
	af_client *c = calloc(1, sizeof(*c));
	void *zctx;
	af_err err;

	if (c == NULL)
		return AF_ENOMEM;
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
		free(c);
		return err;
	}
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
	af__ctx_fini(&c->ctx, AF_ECANCELED);
	if (c->ctx.sys != NULL)
		af__system_remove_inbox(c->ctx.sys, c->ctx.inbox_name);
	if (c->own_zctx != NULL)
		zmq_ctx_term(c->own_zctx);
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
	af_err err;

	if (c == NULL || reply == NULL || timeout_ms <= 0)
		return AF_EINVAL;
	*reply = NULL;
	c->done = false;
	err = af__ctx_request(&c->ctx, addr, type, payload, timeout_ms,
			      timeout_ms, on_outcome, c, NULL);
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
	if (c == NULL || timeout_ms < 0)
		return AF_EINVAL;
	return af__ctx_send(&c->ctx, addr, AF_KIND_TELL, 0, type, payload, 0,
			    timeout_ms, NULL);
}
