/*
 * Results. A slot is one item's outcome, a map (see gather.h); an item's
 * answer goes into it as the bytes it arrived as (af_pack_raw), never
 * unpacked and encoded again.
 *
 * In collect mode the reply is built as items finish. While they finish
 * in input order, the common case, each slot is packed straight into the
 * reply. A slot that comes early goes instead, as encoded bytes, into an
 * arena of slots in the order their items finished, and so do all later
 * ones; each item remembers where its slot lies, and when the last item
 * is done the slots follow in the reply in input order, copied as they
 * are.
 *
 * With as_completed each slot is sent as a chunk when its item finishes,
 * or queued while the reader's credit window is full and sent when credit
 * returns; the end follows the last one.
 *
 * Either way the slots a gather holds count against its byte limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gather_internal.h"

/* Starts the reply: {"results": [ and room for n slots. */
static af_err reply_begin(gather *g)
{
	if (g->out != NULL)
		return AF_OK;
	if (af_payload_new(&g->out) != AF_OK)
		return AF_ENOMEM;
	af_pack_map(g->out, 1);
	af_pack_str(g->out, "results");
	af_pack_array(g->out, g->n);
	af_payload_data(g->out, &g->out_header);
	g->out_len = g->out_header;
	return AF_OK;
}

af_payload *af__slot_writer(item *it)
{
	gather *g = it->g;

	if (g->as_completed || g->nslots > 0 || it->index != g->emitted)
		return af__gather_scratch(g->ga);
	return reply_begin(g) == AF_OK ? g->out : NULL;
}

/* The pack functions return the last call's result: the reply is an
 * unfinished array until its last slot, so af_payload_status would say
 * AF_EINVAL, while writer errors are sticky and show in any call. */
/* A slot opens with its index (as_completed only) and its "ok", then its
 * value or error: a map of that many entries. */
static void pack_slot_head(af_payload *p, const item *it, bool ok)
{
	bool index = it->g->as_completed;

	af_pack_map(p, index ? 3 : 2);
	if (index) {
		af_pack_str(p, "index");
		af_pack_uint(p, it->index);
	}
	af_pack_str(p, "ok");
	af_pack_bool(p, ok);
}

af_err af__slot_pack_raw(af_payload *p, const item *it, const void *value,
			 size_t len)
{
	pack_slot_head(p, it, true);
	af_pack_str(p, "value");
	return af_pack_raw(p, value, len);
}

af_err af__slot_pack_error(af_payload *p, const item *it, int code,
			   const char *text)
{
	pack_slot_head(p, it, false);
	af_pack_str(p, "error");
	af_pack_map(p, 2);
	af_pack_str(p, "code");
	af_pack_int(p, code);
	af_pack_str(p, "message");
	return af_pack_str(p, text);
}

/* Replaces a slot too large to hold or send by an AF_EMSGSIZE error, or
 * fails a fail_fast gather. False when the gather ended. */
static bool shrink_to_error(af_ctx *ctx, item *it, af_payload *slot,
			    size_t *len, const char *why)
{
	gather *g = it->g;
	char text[256];

	snprintf(text, sizeof(text), "its result of %zu bytes %s", *len, why);
	if (g->fail_fast) {
		af__gather_fail(ctx, g, AF_EMSGSIZE, "gather: item %u: %s",
				it->index, text);
		return false;
	}
	af_payload_reset(slot);
	if (af__slot_pack_error(slot, it, AF_EMSGSIZE, text) != AF_OK) {
		af__gather_fail(ctx, g, AF_ENOMEM,
				"gather: out of memory storing item %u",
				it->index);
		return false;
	}
	af_payload_data(slot, len);
	return true;
}

/* ---- collect mode ------------------------------------------------------ */

/* Makes room in the arena for len more bytes. */
static af_err arena_grow(gather *g, size_t len)
{
	size_t need = g->slots_len + len;
	size_t cap = g->slots_cap ? g->slots_cap : 256;
	char *slots;

	if (need <= g->slots_cap)
		return AF_OK;
	while (cap < need)
		cap *= 2;
	slots = realloc(g->slots, cap);
	if (slots == NULL)
		return AF_ENOMEM;
	g->slots = slots;
	g->slots_cap = cap;
	return AF_OK;
}

static af_err keep_slot(item *it, const af_payload *slot)
{
	gather *g = it->g;
	size_t len;
	const void *data = af_payload_data(slot, &len);

	if (arena_grow(g, len) != AF_OK)
		return AF_ENOMEM;
	memcpy(g->slots + g->slots_len, data, len);
	it->slot_off = g->slots_len;
	it->slot_len = len;
	g->slots_len += len;
	g->nslots++;
	g->held += len;
	return AF_OK;
}

/* A slot packed into the reply took it over the byte limit, and a writer
 * cannot take it back: the slots before it move to the arena (it is
 * empty while slots go to the reply), and the reply starts over at the
 * end. */
static af_err reply_to_arena(gather *g)
{
	const char *data = af_payload_data(g->out, NULL);
	size_t len = g->out_len - g->out_header;

	if (arena_grow(g, len) != AF_OK)
		return AF_ENOMEM;
	memcpy(g->slots, data + g->out_header, len);
	g->slots_len = len;
	/* Their places were noted in the reply's bytes. */
	for (uint32_t i = 0; i < g->emitted; i++)
		g->items[i].slot_off -= g->out_header;
	g->nslots = g->emitted;
	g->emitted = 0;
	af_payload_destroy(&g->out);
	return AF_OK;
}

/* Stores a slot packed straight into the reply. */
static bool store_in_reply(af_ctx *ctx, item *it, bool ok)
{
	gather *g = it->g;
	size_t limit = g->ga->cfg.max_bytes;
	size_t len;
	size_t grew;
	af_payload *p;

	af_payload_data(g->out, &len);
	grew = len - g->out_len;
	if (!ok || g->held + grew <= limit) {
		it->slot_off = g->out_len;
		it->slot_len = grew;
		g->out_len = len;
		g->held += grew;
		g->emitted++;
		return ok;
	}
	if (g->fail_fast) {
		af__gather_fail(ctx, g, AF_EMSGSIZE,
				"gather: item %u: its result of %zu bytes "
				"would take the gather over its limit",
				it->index, grew);
		return false;
	}
	p = af__gather_scratch(g->ga);
	if (reply_to_arena(g) != AF_OK || p == NULL ||
	    af__slot_pack_error(p, it, AF_EMSGSIZE,
				"its result would take the gather over its "
				"limit") != AF_OK ||
	    keep_slot(it, p) != AF_OK) {
		af__gather_fail(ctx, g, AF_ENOMEM,
				"gather: out of memory storing item %u",
				it->index);
	}
	return false;
}

/* Adds the slots in the arena, in input order, to the reply. */
static af_err pack_arena(gather *g)
{
	af_err err = AF_OK;

	for (uint32_t i = g->emitted; i < g->n && err == AF_OK; i++)
		err = af_pack_raw(g->out, g->slots + g->items[i].slot_off,
				  g->items[i].slot_len);
	return err;
}

static void reply_results(af_ctx *ctx, gather *g)
{
	af_err err;

	/* Without a reply yet when every slot came early, or the reply
	 * started over. */
	err = reply_begin(g);
	if (err == AF_OK && g->emitted < g->n)
		err = pack_arena(g);
	/* The reply holds its own copy: drop the arena before it is
	 * framed, which copies it once more. */
	free(g->slots);
	g->slots = NULL;
	if (err == AF_OK)
		err = af_payload_status(g->out);
	if (err == AF_OK)
		err = af_pending_reply(ctx, &g->req, g->out);
	if (err == AF_EMSGSIZE)
		af_pending_error(ctx, &g->req, AF_EMSGSIZE,
				 "gather: the results of %u items take more "
				 "than a message may carry: ask with "
				 "\"as_completed\": true to stream them",
				 g->n);
	else if (err != AF_OK)
		af_pending_error(ctx, &g->req, err,
				 "gather: cannot build the reply: %s",
				 af_strerror(err));
	af_payload_destroy(&g->out);
	af__gather_close(ctx, g);
}

/* ---- as_completed ------------------------------------------------------ */

static void stream_end(af_ctx *ctx, gather *g)
{
	af_payload *p = af__gather_scratch(g->ga);
	af_err err = AF_ENOMEM;

	if (p != NULL) {
		af_pack_map(p, 2);
		af_pack_str(p, "completed");
		af_pack_uint(p, g->done);
		af_pack_str(p, "failed");
		af_pack_uint(p, g->failed);
		err = af_pending_end(ctx, &g->req, p);
	}
	if (err != AF_OK)
		af_pending_error(ctx, &g->req, err, "gather: cannot end: %s",
				 af_strerror(err));
	af__gather_close(ctx, g);
}

/* Sends the queued slots while the reader's credit lasts; then the end,
 * once every item is done. */
static void stream_resume(af_ctx *ctx, void *arg)
{
	gather *g = arg;

	while (g->qlen > 0) {
		queued *q = &g->queue[g->qhead];
		af_err err = af_pending_chunk(ctx, g->req, q->slot);
		if (err == AF_EMSGSIZE && q->ok) {
			item *it = &g->items[q->index];
			size_t len = q->bytes;
			if (!shrink_to_error(ctx, it, q->slot, &len,
					     "is larger than a message may "
					     "carry"))
				return;
			g->held = g->held - q->bytes + len;
			q->bytes = len;
			q->ok = false;
			g->failed++;
			continue;
		}
		if (err == AF_EAGAIN) {
			af_pending_when_writable(ctx, g->req, stream_resume, g);
			return;
		}
		if (err == AF_ECANCELED)
			return; /* the reader is gone; the cancel hook follows
				 */
		if (err != AF_OK) {
			af__gather_fail(ctx, g, err,
					"gather: cannot stream item %u: %s",
					q->index, af_strerror(err));
			return;
		}
		g->held -= q->bytes;
		af_payload_destroy(&q->slot);
		g->qhead++;
		g->qlen--;
	}
	if (g->want_end)
		stream_end(ctx, g);
}

static bool stream_slot(af_ctx *ctx, item *it, af_payload **slot, bool ok,
			size_t len)
{
	gather *g = it->g;
	queued *q;
	af_err err;

	if (g->qlen == 0) {
		err = af_pending_chunk(ctx, g->req, *slot);
		if (err == AF_EMSGSIZE && ok) {
			if (!shrink_to_error(ctx, it, *slot, &len,
					     "is larger than a message may "
					     "carry"))
				return false;
			ok = false;
			err = af_pending_chunk(ctx, g->req, *slot);
		}
		/* AF_ECANCELED: the reader is gone; the cancel hook
		 * follows on the next turn. */
		if (err == AF_OK || err == AF_ECANCELED)
			return ok;
		if (err != AF_EAGAIN) {
			af__gather_fail(ctx, g, err,
					"gather: cannot stream item %u: %s",
					it->index, af_strerror(err));
			return false;
		}
	}
	if (ok && g->held + len > g->ga->cfg.max_bytes) {
		if (!shrink_to_error(ctx, it, *slot, &len,
				     "would take the slots waiting for the "
				     "reader over the gather's limit"))
			return false;
		ok = false;
	}
	if (g->queue == NULL) {
		g->queue = calloc(g->n, sizeof(*g->queue));
		if (g->queue == NULL) {
			af__gather_fail(
				ctx, g, AF_ENOMEM,
				"gather: out of memory queueing item %u",
				it->index);
			return false;
		}
	}
	q = &g->queue[g->qhead + g->qlen];
	q->slot = *slot;
	*slot = NULL;
	q->bytes = len;
	q->index = it->index;
	q->ok = ok;
	g->held += len;
	if (g->qlen++ == 0)
		af_pending_when_writable(ctx, g->req, stream_resume, g);
	return ok;
}

/* ---- both -------------------------------------------------------------- */

bool af__slot_store(af_ctx *ctx, item *it, af_payload **slot, bool ok)
{
	gather *g = it->g;
	size_t limit = g->ga->cfg.max_bytes;
	size_t len;

	if (slot == &g->out)
		return store_in_reply(ctx, it, ok);
	af_payload_data(*slot, &len);
	if (ok &&
	    (len > limit || (!g->as_completed && g->held + len > limit))) {
		if (!shrink_to_error(ctx, it, *slot, &len,
				     "would take the gather over its limit"))
			return false;
		ok = false;
	}
	if (g->as_completed)
		return stream_slot(ctx, it, slot, ok, len);
	if (keep_slot(it, *slot) != AF_OK) {
		af__gather_fail(ctx, g, AF_ENOMEM,
				"gather: out of memory storing item %u",
				it->index);
		return false;
	}
	return ok;
}

void af__slots_finish(af_ctx *ctx, gather *g)
{
	if (!g->as_completed) {
		reply_results(ctx, g);
		return;
	}
	g->want_end = true;
	if (g->qlen == 0)
		stream_end(ctx, g);
}

void af__slots_free(gather *g)
{
	af_payload_destroy(&g->out);
	free(g->slots);
	g->slots = NULL;
	for (uint32_t i = 0; i < g->qlen; i++)
		af_payload_destroy(&g->queue[g->qhead + i].slot);
	free(g->queue);
	g->queue = NULL;
	g->qlen = 0;
}
