/*
 * The answer's text on its way to a stream_query's requester.
 *
 * A chunk goes out at once while the requester's credit window has room.
 * Once it is full (af_pending_chunk gives AF_EAGAIN), chunks are held in
 * arrival order, behind one another, and sent when credit comes back
 * (af_pending_when_writable); the stream's end, or its error, waits for
 * them. Nothing is dropped or overtaken. The chat stream feeding the
 * relay is not paused meanwhile: what is held is at most the answer.
 */
#include <stdlib.h>
#include <string.h>

#include "query_internal.h"

static void on_writable(af_ctx *ctx, void *arg);

/* Sends one chunk. AF_OK (sent, or the requester is gone), AF_EAGAIN
 * (window full: on_writable is armed), or another error. */
static af_err send_chunk(af_ctx *ctx, query *q, const void *data, size_t len)
{
	af_payload *p = q->qa->out;
	af_err err;

	if (q->req == NULL)
		return AF_OK;
	af_payload_reset(p);
	err = af_pack_raw(p, data, len);
	if (err == AF_OK)
		err = af_pending_chunk(ctx, q->req, p);
	if (err == AF_EAGAIN)
		af_pending_when_writable(ctx, q->req, on_writable, q);
	/* AF_ECANCELED: the requester gave up; its cancel hook ends q. */
	return err == AF_ECANCELED ? AF_OK : err;
}

static af_err hold(query *q, const void *data, size_t len)
{
	held_chunk *h;

	if (q->held_count == q->held_cap) {
		size_t cap = q->held_cap ? q->held_cap * 2 : 16;
		held_chunk *grown = malloc(cap * sizeof(*grown));
		if (grown == NULL)
			return AF_ENOMEM;
		for (size_t i = 0; i < q->held_count; i++)
			grown[i] = q->held[(q->held_head + i) % q->held_cap];
		free(q->held);
		q->held = grown;
		q->held_cap = cap;
		q->held_head = 0;
	}
	h = &q->held[(q->held_head + q->held_count) % q->held_cap];
	h->data = malloc(len);
	if (h->data == NULL)
		return AF_ENOMEM;
	memcpy(h->data, data, len);
	h->len = len;
	q->held_count++;
	return AF_OK;
}

/* Sends held chunks while the window has room: AF_OK when none is left,
 * AF_EAGAIN when some still wait, or a send's error. */
static af_err flush(af_ctx *ctx, query *q)
{
	while (q->held_count > 0) {
		held_chunk *h = &q->held[q->held_head];
		af_err err = send_chunk(ctx, q, h->data, h->len);
		if (err == AF_EAGAIN)
			return AF_EAGAIN;
		free(h->data);
		h->data = NULL;
		q->held_head = (q->held_head + 1) % q->held_cap;
		q->held_count--;
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

static void on_writable(af_ctx *ctx, void *arg)
{
	query *q = arg;
	af_err err;

	if (q->closed)
		return;
	err = flush(ctx, q);
	if (err == AF_EAGAIN)
		return;
	if (err != AF_OK) {
		af__relay_free(q);
		af__query_fail(ctx, q, err, "query: sending a chunk: %s",
			       af_strerror(err));
		return;
	}
	if (q->err_due != 0)
		af__query_fail(ctx, q, q->err_due, "%s",
			       q->err_text != NULL ? q->err_text
						   : af_strerror(q->err_due));
	else if (q->end_due)
		af__query_succeed(ctx, q);
}

af_err af__relay_chunk(af_ctx *ctx, query *q, const void *data, size_t len)
{
	af_err err;

	if (q->held_count == 0) {
		err = send_chunk(ctx, q, data, len);
		if (err != AF_EAGAIN)
			return err;
	}
	return hold(q, data, len);
}

af_err af__relay_text(af_ctx *ctx, query *q, const char *text, size_t len)
{
	af_payload *p;
	const void *data;
	size_t n;
	af_err err;

	if (af_payload_new(&p) != AF_OK)
		return AF_ENOMEM;
	af_pack_map(p, 1);
	af_pack_str(p, "delta");
	err = af_pack_strn(p, text, len);
	if (err == AF_OK) {
		data = af_payload_data(p, &n);
		err = af__relay_chunk(ctx, q, data, n);
	}
	af_payload_destroy(&p);
	return err;
}

bool af__relay_busy(const query *q)
{
	return q->held_count > 0;
}

void af__relay_free(query *q)
{
	for (size_t i = 0; i < q->held_count; i++)
		free(q->held[(q->held_head + i) % q->held_cap].data);
	free(q->held);
	q->held = NULL;
	q->held_head = q->held_count = q->held_cap = 0;
}
