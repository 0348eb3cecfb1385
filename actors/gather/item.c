/*
 * One item of a gather. Every item is sent with af_request_stream, so its
 * target may answer with one reply or with a stream; a stream is collected
 * whole into the item's slot as it arrives: its chunks, the text they
 * carry, then the end's payload. What a stream holds counts against the
 * gather's byte limit; one that grows past it is cancelled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gather_internal.h"

struct collect {
	/* The slot so far: a map holding "ok": true and an open "chunks"
	 * array; the end closes both. */
	af_payload *slot;
	size_t bytes; /* what it holds, part of the gather's held bytes */
	char *text;
	size_t text_len;
	size_t text_cap;
	bool text_ok; /* every chunk so far carried text */
};

static void collect_free(gather *g, collect **cp)
{
	collect *c = *cp;

	if (c == NULL)
		return;
	g->held -= c->bytes;
	af_payload_destroy(&c->slot);
	free(c->text);
	free(c);
	*cp = NULL;
}

static af_err collect_new(item *it)
{
	collect *c = calloc(1, sizeof(*c));
	af_err err;

	if (c == NULL || af_payload_new(&c->slot) != AF_OK) {
		free(c);
		return AF_ENOMEM;
	}
	c->text_ok = true;
	af_pack_map_begin(c->slot);
	if (it->g->as_completed) {
		af_pack_str(c->slot, "index");
		af_pack_uint(c->slot, it->index);
	}
	af_pack_str(c->slot, "ok");
	af_pack_bool(c->slot, true);
	af_pack_str(c->slot, "chunks");
	err = af_pack_array_begin(c->slot);
	if (err != AF_OK) {
		af_payload_destroy(&c->slot);
		free(c);
		return err;
	}
	it->stream = c;
	return AF_OK;
}

/* The text a chunk carries: the chunk itself when it is a string, or the
 * string under "delta" (an OpenAI-style streamed chat) or "text". */
static bool chunk_text(const af_value *v, const char **s, size_t *len)
{
	return af_value_str(v, s, len) == AF_OK ||
	       af_value_str(af_value_get(v, "delta"), s, len) == AF_OK ||
	       af_value_str(af_value_get(v, "text"), s, len) == AF_OK;
}

static af_err text_append(collect *c, const char *s, size_t len)
{
	if (c->text_len + len > c->text_cap) {
		size_t cap = c->text_cap ? c->text_cap : 64;
		char *text;
		while (cap < c->text_len + len)
			cap *= 2;
		text = realloc(c->text, cap);
		if (text == NULL)
			return AF_ENOMEM;
		c->text = text;
		c->text_cap = cap;
	}
	memcpy(c->text + c->text_len, s, len);
	c->text_len += len;
	return AF_OK;
}

/* Adds chunk to the stream being collected: its payload as it arrived,
 * and the text it carries. */
static af_err collect_chunk(gather *g, collect *c, const af_msg *chunk)
{
	const af_value *v;
	const char *s;
	const void *raw;
	size_t len;
	size_t bytes;
	af_err err = af_msg_payload_raw(chunk, &raw, &len);

	if (err == AF_OK)
		err = af_pack_raw(c->slot, raw, len);
	if (err != AF_OK)
		return err;
	/* Only a stream that may still have text needs its chunks
	 * unpacked; a payload that cannot be is out of memory. */
	if (!c->text_ok)
		v = NULL;
	else if ((v = af_msg_payload(chunk)) == NULL)
		return AF_ENOMEM;
	if (c->text_ok && chunk_text(v, &s, &len)) {
		err = text_append(c, s, len);
	} else if (c->text_ok) {
		/* One chunk without text: the stream has no text of its own,
		 * and what was gathered so far would mislead. */
		c->text_ok = false;
		free(c->text);
		c->text = NULL;
		c->text_len = c->text_cap = 0;
	}
	af_payload_data(c->slot, &bytes);
	bytes += c->text_len;
	g->held = g->held - c->bytes + bytes;
	c->bytes = bytes;
	return err;
}

static af_err collect_end(collect *c, const af_msg *end)
{
	const void *raw;
	size_t len;

	af_pack_array_end(c->slot);
	if (c->text_ok) {
		af_pack_str(c->slot, "text");
		af_pack_strn(c->slot, c->text, c->text_len);
	}
	af_pack_str(c->slot, "value");
	af_msg_payload_raw(end, &raw, &len);
	af_pack_raw(c->slot, raw, len);
	return af_pack_map_end(c->slot);
}

/* ---- outcomes ---------------------------------------------------------- */

static void item_failed(af_ctx *ctx, item *it, int code, const char *text)
{
	gather *g = it->g;
	af_payload *p;

	if (g->fail_fast) {
		af__gather_fail(
			ctx, g, code,
			"gather: item %u (\"%.*s\" to \"%.*s\") failed: "
			"%s",
			it->index, (int)it->type_len, it->type, (int)it->to_len,
			it->to, text);
		return;
	}
	p = af__slot_writer(it);
	if (p == NULL || af__slot_pack_error(p, it, code, text) != AF_OK) {
		af__gather_fail(ctx, g, AF_ENOMEM,
				"gather: out of memory storing item %u",
				it->index);
		return;
	}
	af__slot_store(ctx, it, p == g->out ? &g->out : &g->ga->scratch, false);
	if (!g->closed)
		af__gather_item_done(ctx, it, false);
}

static void item_answered(af_ctx *ctx, item *it, af_msg *answer)
{
	gather *g = it->g;
	af_payload **slot = NULL;
	af_err err;
	bool ok;

	if (it->stream != NULL || af_msg_kind(answer) == AF_KIND_END) {
		/* A stream of no chunks still says it was a stream. */
		err = it->stream != NULL ? AF_OK : collect_new(it);
		if (err == AF_OK)
			err = collect_end(it->stream, answer);
		if (err == AF_OK) {
			/* The slot is counted as itself from here on. */
			g->held -= it->stream->bytes;
			it->stream->bytes = 0;
			slot = &it->stream->slot;
		}
	} else {
		af_payload *p = af__slot_writer(it);
		const void *raw;
		size_t len;
		err = p != NULL ? af_msg_payload_raw(answer, &raw, &len)
				: AF_ENOMEM;
		if (err == AF_OK)
			err = af__slot_pack_raw(p, it, raw, len);
		slot = p == g->out ? &g->out : &g->ga->scratch;
	}
	if (err != AF_OK && slot == &g->out) {
		/* Half a slot in the reply cannot be taken back. */
		af__gather_fail(ctx, g, err, "gather: cannot store item %u: %s",
				it->index, af_strerror(err));
		return;
	}
	if (err != AF_OK) {
		collect_free(g, &it->stream);
		item_failed(ctx, it, err, "its answer could not be stored");
		return;
	}
	ok = af__slot_store(ctx, it, slot, true);
	collect_free(g, &it->stream);
	if (!g->closed)
		af__gather_item_done(ctx, it, ok);
}

/* Why an item failed, for causes that come with no message of their
 * own. */
static const char *describe(const item *it, int status, char *buf, size_t len)
{
	if (status == AF_ETIMEDOUT && it->timeout_ms > 0 &&
	    (it->g->deadline_ns == 0 || it->deadline_ns <= it->g->deadline_ns))
		snprintf(buf, len,
			 "no answer within the item's deadline of "
			 "%lld ms",
			 (long long)it->timeout_ms);
	else if (status == AF_ETIMEDOUT)
		snprintf(buf, len,
			 "the gather's deadline passed before the "
			 "item finished");
	else if (status == AF_EMSGSIZE)
		snprintf(buf, len,
			 "its streamed answer grew past the gather's limit of "
			 "%zu bytes",
			 it->g->ga->cfg.max_bytes);
	else
		snprintf(buf, len, "%s", af_strerror(status));
	return buf;
}

static void item_end(af_ctx *ctx, int status, af_msg *answer, void *arg)
{
	item *it = arg;
	gather *g = it->g;
	const char *text = NULL;
	char buf[256];

	it->req = 0;
	if (g->frozen) {
		/* Its gather is ending and cancelled it. */
		collect_free(g, &it->stream);
		return;
	}
	if (status == AF_OK) {
		item_answered(ctx, it, answer);
		return;
	}
	collect_free(g, &it->stream);
	if (it->abort_code != AF_OK)
		status = it->abort_code;
	else if (answer != NULL)
		af_msg_error(answer, &text);
	if (text == NULL)
		text = describe(it, status, buf, sizeof(buf));
	item_failed(ctx, it, status, text);
}

static void item_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	item *it = arg;
	gather *g = it->g;
	af_err err = AF_OK;

	if (g->frozen || it->abort_code != AF_OK)
		return;
	if (it->stream == NULL)
		err = collect_new(it);
	if (err == AF_OK)
		err = collect_chunk(g, it->stream, chunk);
	if (err == AF_OK && g->held > g->ga->cfg.max_bytes)
		err = AF_EMSGSIZE;
	if (err != AF_OK) {
		/* Its outcome, which the cancel delivers at once, reports
		 * this cause rather than the cancel. */
		it->abort_code = err;
		af_cancel(ctx, it->req);
	}
}

/* ---- sending ----------------------------------------------------------- */

static int64_t earliest(int64_t a, int64_t b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

bool af__item_expired(const item *it, int64_t now_ns)
{
	int64_t due = earliest(it->deadline_ns, it->g->deadline_ns);

	return due != 0 && due <= now_ns;
}

/* Sends it to the C strings to and type. */
static af_err send_to(af_ctx *ctx, item *it, const char *to, const char *type,
		      int64_t *now_ns)
{
	gather *g = it->g;
	int64_t due = earliest(it->deadline_ns, g->deadline_ns);
	int64_t timeout_ms = 0;
	af_payload *p = NULL;
	af_err err;

	/* The target hears the item's deadline, or else the gather's, as
	 * its request's deadline, rounded up so that the gather's own timer
	 * goes first. */
	if (due != 0) {
		int64_t left;
		if (*now_ns == 0)
			*now_ns = af__gather_now_ns();
		left = due - *now_ns;
		if (left <= 0)
			return AF_ETIMEDOUT;
		timeout_ms = (left + 999999) / 1000000;
	}
	if (it->payload != NULL) {
		p = af__gather_scratch(g->ga);
		if (p == NULL)
			return AF_ENOMEM;
		err = af_pack_raw(p, it->payload, it->payload_len);
		if (err != AF_OK)
			return err;
	}
	err = af_request_stream(ctx, to, type, p, timeout_ms, item_chunk,
				item_end, it, &it->req);
	if (err == AF_OK)
		it->state = ITEM_RUNNING;
	return err;
}

void af__item_unsent(af_ctx *ctx, item *it, af_err err)
{
	char text[320];

	if (err == AF_ETIMEDOUT)
		snprintf(text, sizeof(text),
			 "its deadline passed while \"%.*s\" had no room for "
			 "it",
			 (int)it->to_len, it->to);
	else
		snprintf(text, sizeof(text), "cannot send to \"%.*s\": %s",
			 (int)it->to_len, it->to, af_strerror(err));
	item_failed(ctx, it, err, text);
}

/* s as a C string, in the actor's buffer number which (overwritten by the
 * next call). */
static const char *as_c_string(gather *g, int which, const char *s,
			       uint32_t len)
{
	gather_actor *ga = g->ga;

	if (ga->cstr_cap[which] <= len) {
		size_t cap = (size_t)len + 1 > 256 ? (size_t)len + 1 : 256;
		char *buf = realloc(ga->cstr[which], cap);
		if (buf == NULL)
			return NULL;
		ga->cstr[which] = buf;
		ga->cstr_cap[which] = cap;
	}
	memcpy(ga->cstr[which], s, len);
	ga->cstr[which][len] = '\0';
	return ga->cstr[which];
}

af_err af__item_send(af_ctx *ctx, item *it, int64_t *now_ns)
{
	const char *to = as_c_string(it->g, 0, it->to, it->to_len);
	const char *type = as_c_string(it->g, 1, it->type, it->type_len);

	if (to == NULL || type == NULL)
		return AF_ENOMEM;
	return send_to(ctx, it, to, type, now_ns);
}

void af__item_start(af_ctx *ctx, item *it, int64_t *now_ns)
{
	target *busy = af__target_busy(it->g->ga, it->to, it->to_len);
	const char *to;
	const char *type;
	af_err err;

	if (it->timeout_ms > 0) {
		if (*now_ns == 0)
			*now_ns = af__gather_now_ns();
		it->deadline_ns = *now_ns + it->timeout_ms * 1000000;
	}
	if (busy != NULL) {
		af__target_join(it, busy);
		return;
	}
	to = as_c_string(it->g, 0, it->to, it->to_len);
	type = as_c_string(it->g, 1, it->type, it->type_len);
	if (to == NULL || type == NULL) {
		af__item_unsent(ctx, it, AF_ENOMEM);
		return;
	}
	err = send_to(ctx, it, to, type, now_ns);
	if (err == AF_EAGAIN)
		err = af__target_wait(ctx, it, to);
	if (err != AF_OK)
		af__item_unsent(ctx, it, err);
}

void af__item_abandon(af_ctx *ctx, item *it)
{
	if (it->state == ITEM_RUNNING && it->req != 0)
		af_cancel(ctx, it->req);
	else if (it->state == ITEM_BLOCKED)
		af__target_forget(ctx, it);
	collect_free(it->g, &it->stream);
}
