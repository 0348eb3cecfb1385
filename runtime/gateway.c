/*
 * The system gateway: one actor exported on an endpoint that forwards
 * what arrives for "endpoint#name" to the local actor called name, so a
 * whole system is reachable through one endpoint. It is an ordinary actor
 * written against the public API; the runtime only lets it see messages
 * addressed to other names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "system.h"

typedef struct forward {
	af_pending *pending;
	af_payload *out;
} forward;

static void forwarded(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	forward *f = arg;

	if (status == AF_OK) {
		af_payload_reset(f->out);
		if (af_pack_value(f->out, af_msg_payload(reply)) == AF_OK &&
		    af_pending_reply(ctx, &f->pending, f->out) == AF_OK)
			goto done;
		status = AF_ENOMEM;
	}
	{
		const char *text = NULL;
		if (reply != NULL)
			af_msg_error(reply, &text);
		af_pending_error(ctx, &f->pending, status, "%s",
				 text != NULL ? text : af_strerror(status));
	}
done:
	af_payload_destroy(&f->out);
	free(f);
}

static af_err gateway_handle(af_ctx *ctx, void *state, af_msg *m)
{
	char to[AF__NAME_MAX + 1];
	forward *f;
	af_payload *copy = NULL;
	af_err err;

	if (m->env.to == NULL) {
		if (af_msg_kind(m) == AF_KIND_REQUEST)
			return af_reply_error(ctx, m, AF_EADDR,
					      "address an actor of this "
					      "system as endpoint#name");
		return AF_OK;
	}
	memcpy(to, m->env.to, m->env.to_len);
	to[m->env.to_len] = '\0';
	err = af_payload_new(&copy);
	if (err == AF_OK)
		err = af_pack_value(copy, af_msg_payload(m));
	if (err != AF_OK || af_msg_kind(m) == AF_KIND_TELL) {
		if (err == AF_OK)
			err = af_tell(ctx, to, af_msg_type(m), copy);
		af_payload_destroy(&copy);
		return err;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		af_payload_destroy(&copy);
		return AF_ENOMEM;
	}
	f->out = copy;
	err = af_defer(ctx, m, &f->pending);
	if (err == AF_OK) {
		/* The requester's deadline carries over: what is left of it
		 * (at least 1 ms, so a passed deadline stays a deadline)
		 * bounds the forwarded request. */
		int64_t left = af_msg_remaining_ms(m);
		int64_t timeout = left < 0 ? 0 : left == 0 ? 1 : left;

		err = af_request(ctx, to, af_msg_type(m), copy, timeout,
				 forwarded, f, NULL);
		if (err == AF_OK)
			return AF_OK; /* forwarded() owns f now */
		af_pending_error(ctx, &f->pending, err, "cannot reach '%s': %s",
				 to, af_strerror(err));
		err = AF_OK;
	}
	af_payload_destroy(&f->out);
	free(f);
	return err;
}

static const af_actor_ops gateway_ops = {
	.type_name = "gateway",
	.handle = gateway_handle,
};

af_err af_system_export(af_system *sys, const char *endpoint)
{
	char name[64];
	af_err err;

	if (sys == NULL || endpoint == NULL)
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	snprintf(name, sizeof(name), "af.gateway.%llu",
		 (unsigned long long)++sys->next_gateway);
	pthread_mutex_unlock(&sys->mu);
	err = af__spawn_gateway(sys, name, &gateway_ops);
	if (err == AF_OK) {
		err = af_export(sys, name, endpoint);
		if (err != AF_OK)
			af_stop(sys, name);
	}
	return err;
}
