/*
 * The gather actor: fan-out and collect (the message format is in
 * include/actorflow/gather.h).
 *
 * Each "gather" request becomes a gather: one item per entry (with its
 * own copy of what it needs once the request is gone), and the slots
 * finished so far. All state
 * lives in the gather, so any number of gathers run side by side in one
 * actor, and the actor never waits: an item is a request with a
 * continuation, and a full mailbox, a full stream window and the deadline
 * are callbacks too.
 *
 * A gather ends once: answered (every item done, a fail_fast failure, the
 * deadline), or given up by its requester (the cancel hook of its
 * af_pending). Ending cancels the items still running. It usually ends
 * inside one of its own callbacks, so its memory is freed on the next turn
 * of the loop by the reaper, never from the callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gather_internal.h"

/* Deadlines beyond this are treated as this (about 34 years), so that
 * nanosecond arithmetic never overflows. */
#define TIMEOUT_MAX_MS ((int64_t)1 << 40)
/* When the requester's deadline bounds a gather, the gather ends this much
 * before it (a twentieth of the time left, within these bounds), so that
 * its answer arrives while the requester still waits. */
#define MARGIN_MIN_MS 1
#define MARGIN_MAX_MS 100

int64_t af__gather_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

af_payload *af__gather_scratch(gather_actor *ga)
{
	/* The as_completed queue may have taken the writer. */
	if (ga->scratch == NULL && af_payload_new(&ga->scratch) != AF_OK)
		return NULL;
	af_payload_reset(ga->scratch);
	return ga->scratch;
}

/* ---- a gather's life --------------------------------------------------- */

static void gather_free(gather *g)
{
	af__slots_free(g);
	free(g->request);
	free(g->items);
	free(g);
}

static void unlink_gather(gather **list, gather *g)
{
	if (g->prev != NULL)
		g->prev->next = g->next;
	else
		*list = g->next;
	if (g->next != NULL)
		g->next->prev = g->prev;
	g->prev = g->next = NULL;
}

static void push_gather(gather **list, gather *g)
{
	g->prev = NULL;
	g->next = *list;
	if (*list != NULL)
		(*list)->prev = g;
	*list = g;
}

static void reap(af_ctx *ctx, void *arg)
{
	gather_actor *ga = arg;

	ga->reap_armed = false;
	while (ga->dead != NULL) {
		gather *g = ga->dead;
		unlink_gather(&ga->dead, g);
		gather_free(g);
	}
	af__target_reap(ga, false);
}

void af__gather_reap_soon(af_ctx *ctx, gather_actor *ga)
{
	/* Without a timer the reaper runs at the next reap, or at stop. */
	if (!ga->reap_armed &&
	    af_timer_start(ctx, 0, 0, reap, ga, NULL) == AF_OK)
		ga->reap_armed = true;
}

/* Stops all work of g: no item starts, running ones are cancelled, blocked
 * ones leave their queues, the deadline no longer matters. The items'
 * states stay as they were, so that the deadline can tell which ones did
 * not finish. */
static void gather_freeze(af_ctx *ctx, gather *g)
{
	if (g->frozen)
		return;
	g->frozen = true;
	if (g->deadline_timer != 0) {
		af_timer_cancel(ctx, g->deadline_timer);
		g->deadline_timer = 0;
	}
	for (uint32_t i = 0; i < g->started; i++)
		af__item_abandon(ctx, &g->items[i]);
}

static void ignore(af_ctx *ctx, void *arg)
{
}

/* A gather ends answered; one whose answer could not be sent (memory ran
 * out) tries once more with a short error. A request that still cannot be
 * answered stays with the runtime, which answers it with AF_ESTOPPED when
 * the actor stops; it must then call nothing of g's, which is freed. */
static void release_pending(af_ctx *ctx, gather *g)
{
	if (g->req == NULL)
		return;
	if (af_pending_error(ctx, &g->req, AF_ENOMEM, NULL) == AF_OK)
		return;
	af_pending_on_cancel(g->req, NULL, NULL);
	if (af_pending_is_stream(g->req))
		af_pending_when_writable(ctx, g->req, ignore, NULL);
	g->req = NULL;
}

void af__gather_close(af_ctx *ctx, gather *g)
{
	gather_actor *ga = g->ga;

	if (g->closed)
		return;
	gather_freeze(ctx, g);
	g->closed = true;
	release_pending(ctx, g);
	unlink_gather(&ga->live, g);
	push_gather(&ga->dead, g);
	af__gather_reap_soon(ctx, ga);
}

void af__gather_fail(af_ctx *ctx, gather *g, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	if (g->closed)
		return;
	gather_freeze(ctx, g);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (g->req != NULL)
		af_pending_error(ctx, &g->req, code, "%s", text);
	af__gather_close(ctx, g);
}

/* Starts items while the concurrency limit allows. An item that fails at
 * once finishes inside this loop; it does not start the next one itself
 * (that would recurse once per item), the loop does. */
static void gather_pump(af_ctx *ctx, gather *g)
{
	int64_t now = 0;

	if (g->pumping)
		return;
	g->pumping = true;
	while (!g->frozen && g->started < g->n &&
	       (g->limit == 0 || g->active < g->limit)) {
		item *it = &g->items[g->started++];
		/* The clock is read once per batch of items. */
		if (g->started % 64 == 0)
			now = 0;
		g->active++;
		af__item_start(ctx, it, &now);
	}
	g->pumping = false;
}

static void gather_finish(af_ctx *ctx, gather *g)
{
	gather_freeze(ctx, g);
	af__slots_finish(ctx, g);
}

void af__gather_item_done(af_ctx *ctx, item *it, bool ok)
{
	gather *g = it->g;

	it->state = ITEM_DONE;
	g->active--;
	g->done++;
	if (!ok)
		g->failed++;
	if (g->done == g->n)
		gather_finish(ctx, g);
	else
		gather_pump(ctx, g);
}

static void gather_deadline(af_ctx *ctx, void *arg)
{
	gather *g = arg;
	uint32_t unfinished = g->n - g->done;

	g->deadline_timer = 0;
	if (g->fail_fast) {
		af__gather_fail(ctx, g, AF_ETIMEDOUT,
				"gather: deadline of %lld ms passed with %u of "
				"%u items unfinished",
				(long long)g->deadline_ms, unfinished, g->n);
		return;
	}
	/* Collect mode: what did not finish is a timeout in its slot, and
	 * the gather answers with what it has. */
	gather_freeze(ctx, g);
	for (uint32_t i = 0; i < g->n && !g->closed; i++) {
		item *it = &g->items[i];
		af_payload *p;
		if (it->state == ITEM_DONE)
			continue;
		p = af__slot_writer(it);
		if (p == NULL ||
		    af__slot_pack_error(
			    p, it, AF_ETIMEDOUT,
			    it->state == ITEM_WAITING
				    ? "the gather's deadline passed before "
				      "the item started"
				    : "the gather's deadline passed before "
				      "the item finished") != AF_OK) {
			af__gather_fail(
				ctx, g, AF_ENOMEM,
				"gather: out of memory at the deadline");
			return;
		}
		af__slot_store(ctx, it, p == g->out ? &g->out : &g->ga->scratch,
			       false);
		if (g->closed)
			return;
		it->state = ITEM_DONE;
		g->done++;
		g->failed++;
	}
	if (!g->closed)
		af__slots_finish(ctx, g);
}

static void gather_cancelled(af_ctx *ctx, void *arg)
{
	gather *g = arg;

	/* The runtime frees the request when this returns. */
	g->req = NULL;
	af__gather_close(ctx, g);
}

/* ---- reading a request ------------------------------------------------- */

/* The request is read in place, in one pass over its bytes (af_reader):
 * a gather of 10,000 items is a few hundred kilobytes, and unpacking it
 * into values first cost more than everything else the gather does
 * before its first item goes out. Its items keep pointers into those
 * bytes: their address, type and payload, the payload as the bytes it
 * came as, sent on with af_pack_raw. */

/* Skips a value; the request's bytes were checked on receipt, so this
 * fails only on a value that is not there. */
static bool skip(af_reader *r)
{
	const void *data;
	size_t len;

	return af_read_raw(r, &data, &len) == AF_OK;
}

/* An optional unsigned integer: nil leaves *out as it is. False for a
 * value of another type. The reader is past the value either way. */
static bool opt_uint(af_reader *r, int64_t max, int64_t *out)
{
	uint64_t u;

	if (af_reader_type(r) == AF_TYPE_NIL)
		return af_read_nil(r) == AF_OK;
	if (af_read_uint(r, &u) != AF_OK) {
		skip(r);
		return false;
	}
	*out = u > (uint64_t)max ? max : (int64_t)u;
	return true;
}

/* A string that is to become a C string: not empty, no NUL inside. The
 * reader is past the value either way. */
static bool cstring(af_reader *r, const char **s, uint32_t *len)
{
	size_t n;

	if (af_read_str(r, s, &n) != AF_OK) {
		skip(r);
		return false;
	}
	if (n == 0 || n > UINT32_MAX || memchr(*s, '\0', n) != NULL)
		return false;
	*len = (uint32_t)n;
	return true;
}

static bool key_is(const char *key, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(key, name, len) == 0;
}

#define REFUSE(...)                                                            \
	do {                                                                   \
		snprintf(why, why_len, __VA_ARGS__);                           \
		return AF_EINVAL;                                              \
	} while (0)

/* Reads the option under key (its value next in r) into g; AF_EINVAL with
 * why. A key that names no option is skipped. */
static af_err read_option(gather *g, af_reader *r, const char *key, size_t len,
			  char *why, size_t why_len)
{
	if (key_is(key, len, "concurrency")) {
		int64_t limit = g->limit;
		if (!opt_uint(r, UINT32_MAX, &limit))
			REFUSE("gather: \"concurrency\" must be an unsigned "
			       "integer");
		g->limit = (uint32_t)limit;
	} else if (key_is(key, len, "timeout_ms")) {
		if (!opt_uint(r, TIMEOUT_MAX_MS, &g->deadline_ms))
			REFUSE("gather: \"timeout_ms\" must be an unsigned "
			       "integer");
	} else if (key_is(key, len, "item_timeout_ms")) {
		if (!opt_uint(r, TIMEOUT_MAX_MS, &g->item_timeout_ms))
			REFUSE("gather: \"item_timeout_ms\" must be an "
			       "unsigned integer");
	} else if (key_is(key, len, "mode")) {
		const char *mode;
		size_t mode_len;
		if (af_reader_type(r) == AF_TYPE_NIL)
			return af_read_nil(r);
		if (af_read_str(r, &mode, &mode_len) != AF_OK ||
		    !(key_is(mode, mode_len, "collect") ||
		      key_is(mode, mode_len, "fail_fast")))
			REFUSE("gather: \"mode\" must be \"collect\" or "
			       "\"fail_fast\"");
		g->fail_fast = key_is(mode, mode_len, "fail_fast");
	} else if (key_is(key, len, "as_completed")) {
		if (af_reader_type(r) == AF_TYPE_NIL)
			return af_read_nil(r);
		if (af_read_bool(r, &g->as_completed) != AF_OK)
			REFUSE("gather: \"as_completed\" must be a bool");
	} else if (!skip(r)) {
		return AF_EPROTO;
	}
	return AF_OK;
}

/* Reads item i, a map, in one walk over its fields, the last of a name
 * deciding as with repeated keys: AF_OK, AF_EINVAL with why (the reader
 * is past the item either way), or AF_EPROTO. */
static af_err read_item(af_reader *r, item *it, size_t i, char *why,
			size_t why_len)
{
	bool to_ok = false;
	bool type_ok = false;
	bool timeout_ok = true;
	uint32_t n;

	if (af_read_map(r, &n) != AF_OK) {
		if (!skip(r))
			return AF_EPROTO;
		REFUSE("gather: item %zu is not a map", i);
	}
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		size_t len;
		if (af_read_str(r, &key, &len) != AF_OK) {
			if (!skip(r) || !skip(r))
				return AF_EPROTO;
			continue;
		}
		if (key_is(key, len, "to")) {
			to_ok = cstring(r, &it->to, &it->to_len);
		} else if (key_is(key, len, "type")) {
			type_ok = cstring(r, &it->type, &it->type_len);
		} else if (key_is(key, len, "payload")) {
			if (af_read_raw(r, &it->payload, &it->payload_len) !=
			    AF_OK)
				return AF_EPROTO;
		} else if (key_is(key, len, "timeout_ms")) {
			it->timeout_ms = 0;
			timeout_ok =
				opt_uint(r, TIMEOUT_MAX_MS, &it->timeout_ms);
		} else if (!skip(r)) {
			return AF_EPROTO;
		}
	}
	if (!to_ok)
		REFUSE("gather: item %zu has no \"to\" address string", i);
	if (!type_ok)
		REFUSE("gather: item %zu has no \"type\" string", i);
	if (!timeout_ok)
		REFUSE("gather: item %zu: \"timeout_ms\" must be an unsigned "
		       "integer",
		       i);
	return AF_OK;
}

/* Reads the items, the array next in r, into g: AF_OK, AF_EINVAL with
 * why, after which the reader is past the array, or AF_ENOMEM or
 * AF_EPROTO, after which it is not. */
static af_err read_items(gather *g, af_reader *r, char *why, size_t why_len)
{
	uint32_t n;
	af_err err = AF_OK;
	uint32_t i;

	if (af_read_array(r, &n) != AF_OK) {
		if (!skip(r))
			return AF_EPROTO;
		REFUSE("gather: \"items\" must be an array");
	}
	if (n > g->ga->cfg.max_items) {
		for (i = 0; i < n; i++)
			if (!skip(r))
				return AF_EPROTO;
		REFUSE("gather: %u items, more than the limit of %u", n,
		       g->ga->cfg.max_items);
	}
	g->n = n;
	if (n == 0)
		return AF_OK;
	g->items = calloc(n, sizeof(*g->items));
	if (g->items == NULL)
		return AF_ENOMEM;
	for (i = 0; i < n && err == AF_OK; i++) {
		item *it = &g->items[i];
		it->g = g;
		it->index = i;
		err = read_item(r, it, i, why, why_len);
	}
	if (err != AF_EINVAL)
		return err;
	/* Past the rest, so that the options after the items are read. */
	for (; i < n; i++)
		if (!skip(r))
			return AF_EPROTO;
	return err;
}

#undef REFUSE

/* Reads request payload (len bytes) into g; AF_EINVAL with why. Options
 * are judged before items, whatever their order in the map. */
static af_err read_request(gather *g, const void *payload, size_t len,
			   char *why, size_t why_len)
{
	af_reader r;
	char items_why[256];
	af_err items_err = AF_EINVAL;
	bool items_seen = false;
	/* A repeated key: the first one counts, as af_value_get finds it. */
	uint32_t seen = 0;
	static const char *const options[] = {
		"concurrency", "timeout_ms",   "item_timeout_ms",
		"mode",        "as_completed",
	};
	uint32_t n;

	g->limit = g->ga->cfg.concurrency;
	af_reader_init(&r, payload, len);
	if (af_read_map(&r, &n) != AF_OK) {
		snprintf(why, why_len, "gather: the payload must be a map");
		return AF_EINVAL;
	}
	snprintf(items_why, sizeof(items_why),
		 "gather: \"items\" must be an array");
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		size_t key_len;
		uint32_t bit = 0;
		af_err err;
		if (af_read_str(&r, &key, &key_len) != AF_OK) {
			if (!skip(&r) || !skip(&r))
				return AF_EPROTO;
			continue;
		}
		if (key_is(key, key_len, "items")) {
			if (items_seen) {
				if (!skip(&r))
					return AF_EPROTO;
				continue;
			}
			items_seen = true;
			items_err =
				read_items(g, &r, items_why, sizeof(items_why));
			if (items_err != AF_OK && items_err != AF_EINVAL)
				return items_err;
			continue;
		}
		for (uint32_t o = 0; o < sizeof(options) / sizeof(*options);
		     o++)
			if (key_is(key, key_len, options[o]))
				bit = 1u << o;
		if (bit != 0 && (seen & bit) != 0) {
			if (!skip(&r))
				return AF_EPROTO;
			continue;
		}
		seen |= bit;
		err = read_option(g, &r, key, key_len, why, why_len);
		if (err != AF_OK)
			return err;
	}
	if (items_err != AF_OK) {
		snprintf(why, why_len, "%s", items_why);
		return items_err;
	}
	for (uint32_t i = 0; i < g->n; i++)
		if (g->items[i].timeout_ms == 0)
			g->items[i].timeout_ms = g->item_timeout_ms;
	return AF_OK;
}

/* Makes a gather of request m, its items still pointing into m. */
/* A requester from another process names only this system's actors
 * (af_gather_config.remote_targets): an address holds "://", a name
 * never does. */
static bool is_address(const char *s, size_t len)
{
	for (size_t i = 0; i + 3 <= len; i++)
		if (memcmp(s + i, "://", 3) == 0)
			return true;
	return false;
}

/* How deep names_only looks into gathers nested in a request. */
#define NAMES_DEPTH_MAX 8

static af_err names_only(const gather *g, int depth, char *why, size_t why_len);

/* An item that is itself a gather: the gather actor sends it on as its
 * own, local, request, so its items are held to the same rule here. */
static af_err nested_names_only(const gather *g, const item *it, int depth,
				char *why, size_t why_len)
{
	gather *inner;
	af_err err;

	if (it->type_len != 6 || memcmp(it->type, "gather", 6) != 0 ||
	    it->payload == NULL)
		return AF_OK;
	if (depth == NAMES_DEPTH_MAX) {
		snprintf(why, why_len,
			 "gather: gathers nested more than %d deep, from "
			 "another process",
			 NAMES_DEPTH_MAX);
		return AF_EINVAL;
	}
	inner = calloc(1, sizeof(*inner));
	if (inner == NULL)
		return AF_ENOMEM;
	inner->ga = g->ga;
	err = read_request(inner, it->payload, it->payload_len, why, why_len);
	if (err == AF_OK)
		err = names_only(inner, depth + 1, why, why_len);
	else if (err == AF_EPROTO)
		snprintf(why, why_len,
			 "gather: a nested gather is not msgpack");
	gather_free(inner);
	return err;
}

static af_err names_only(const gather *g, int depth, char *why, size_t why_len)
{
	for (uint32_t i = 0; i < g->n; i++) {
		const item *it = &g->items[i];
		af_err err;
		if (is_address(it->to, it->to_len)) {
			snprintf(why, why_len,
				 "gather: item %u: \"to\" is the address "
				 "'%.*s'; a request from another process may "
				 "name only this system's actors "
				 "(remote_targets is off)",
				 i, (int)(it->to_len > 200 ? 200 : it->to_len),
				 it->to);
			return AF_EINVAL;
		}
		err = nested_names_only(g, it, depth, why, why_len);
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

static af_err gather_new(gather_actor *ga, af_msg *m, gather **out, char *why,
			 size_t why_len)
{
	gather *g = calloc(1, sizeof(*g));
	const void *payload;
	size_t len;
	af_err err;

	*why = '\0';
	if (g == NULL) {
		err = AF_ENOMEM;
		goto fail;
	}
	g->ga = ga;
	err = af_msg_payload_raw(m, &payload, &len);
	if (err == AF_OK)
		err = read_request(g, payload, len, why, why_len);
	if (err == AF_OK && !af_msg_is_local(m) && !ga->cfg.remote_targets)
		err = names_only(g, 0, why, why_len);
	if (err != AF_OK)
		goto fail;
	*out = g;
	return AF_OK;
fail:
	if (g != NULL)
		gather_free(g);
	if (*why == '\0')
		snprintf(why, why_len, "gather: %s", af_strerror(err));
	return err;
}

/* The request dies when its handler returns, and the items point into
 * its payload. This runs after the first items went out, while their
 * targets work: one copy of the payload's bytes, and every item moved
 * over to it. */
static af_err keep_items(gather *g, af_msg *m)
{
	const void *payload;
	const char *from;
	size_t len;

	af_msg_payload_raw(m, &payload, &len);
	from = payload;
	g->request = malloc(len);
	if (g->request == NULL)
		return AF_ENOMEM;
	memcpy(g->request, from, len);
	/* Each pointer keeps its offset into the payload. */
	for (uint32_t i = 0; i < g->n; i++) {
		item *it = &g->items[i];
		it->to = g->request + (it->to - from);
		it->type = g->request + (it->type - from);
		if (it->payload != NULL)
			it->payload =
				g->request + ((const char *)it->payload - from);
	}
	return AF_OK;
}

/* Sets the gather's deadline: the payload's timeout_ms or the request's
 * own deadline less a margin, whichever ends first. */
static af_err arm_deadline(af_ctx *ctx, gather *g)
{
	int64_t left = af_pending_remaining_ms(g->req);
	int64_t ms = g->deadline_ms;

	if (left > 0) {
		int64_t margin = left / 20;
		int64_t by_request;
		if (margin < MARGIN_MIN_MS)
			margin = MARGIN_MIN_MS;
		if (margin > MARGIN_MAX_MS)
			margin = MARGIN_MAX_MS;
		by_request = left - margin > 0 ? left - margin : 1;
		if (ms == 0 || by_request < ms)
			ms = by_request;
	}
	g->deadline_ms = ms;
	if (ms == 0)
		return AF_OK;
	g->deadline_ns = af__gather_now_ns() + ms * 1000000;
	return af_timer_start(ctx, ms, 0, gather_deadline, g,
			      &g->deadline_timer);
}

static af_err reply_empty(af_ctx *ctx, gather_actor *ga, af_msg *m)
{
	af_payload *p = af__gather_scratch(ga);

	if (p == NULL)
		return AF_ENOMEM;
	af_pack_map(p, 1);
	af_pack_str(p, "results");
	af_pack_array(p, 0);
	return af_reply(ctx, m, p);
}

static af_err gather_start(af_ctx *ctx, gather_actor *ga, af_msg *m)
{
	gather *g = NULL;
	char why[256];
	af_err err;

	if (af_msg_remaining_ms(m) == 0)
		return af_reply_error(ctx, m, AF_ETIMEDOUT,
				      "gather: the request's deadline passed "
				      "before it was read");
	err = gather_new(ga, m, &g, why, sizeof(why));
	if (err != AF_OK)
		return af_reply_error(ctx, m, err, "%s", why);
	if (g->n == 0 && !g->as_completed) {
		gather_free(g);
		return reply_empty(ctx, ga, m);
	}
	err = af_defer(ctx, m, &g->req);
	if (err != AF_OK) {
		gather_free(g);
		return err;
	}
	push_gather(&ga->live, g);
	if (g->as_completed && !af_pending_is_stream(g->req)) {
		af__gather_fail(ctx, g, AF_EINVAL,
				"gather: \"as_completed\" streams its results: "
				"send the request with af_request_stream or "
				"af_client_stream");
		return AF_OK;
	}
	af_pending_on_cancel(g->req, gather_cancelled, g);
	err = arm_deadline(ctx, g);
	if (err != AF_OK) {
		af__gather_fail(ctx, g, err, "gather: cannot set its deadline");
		return AF_OK;
	}
	if (g->n == 0) {
		af__slots_finish(ctx, g);
		return AF_OK;
	}
	gather_pump(ctx, g);
	if (!g->closed && (err = keep_items(g, m)) != AF_OK)
		af__gather_fail(ctx, g, err,
				"gather: cannot keep the items: %s",
				af_strerror(err));
	return AF_OK;
}

/* ---- the actor --------------------------------------------------------- */

static af_err gather_init(af_ctx *ctx, const void *config, void **state)
{
	gather_actor *ga = calloc(1, sizeof(*ga));

	if (ga == NULL)
		return AF_ENOMEM;
	if (config != NULL)
		ga->cfg = *(const af_gather_config *)config;
	if (ga->cfg.max_items == 0)
		ga->cfg.max_items = AF_GATHER_MAX_ITEMS;
	if (ga->cfg.max_bytes == 0)
		ga->cfg.max_bytes = AF_GATHER_MAX_BYTES;
	if (af_payload_new(&ga->scratch) != AF_OK) {
		free(ga);
		return AF_ENOMEM;
	}
	*state = ga;
	return AF_OK;
}

static af_err gather_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const char *type = af_msg_type(m);

	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK;
	if (strcmp(type, "gather") != 0)
		return af_reply_error(ctx, m, AF_ENOTSUP,
				      "gather: unknown message type '%s' (it "
				      "takes \"gather\")",
				      type);
	return gather_start(ctx, state, m);
}

/* By now the runtime has run the cancel hook of every gather still open
 * (each closed itself) and settled every item's request; what is left is
 * memory. */
static void gather_stop(af_ctx *ctx, void *state)
{
	gather_actor *ga = state;

	while (ga->live != NULL) {
		gather *g = ga->live;
		/* Not expected; its request is gone already, so only its
		 * items' leftovers are let go. */
		g->req = NULL;
		gather_freeze(ctx, g);
		unlink_gather(&ga->live, g);
		gather_free(g);
	}
	while (ga->dead != NULL) {
		gather *g = ga->dead;
		unlink_gather(&ga->dead, g);
		gather_free(g);
	}
	af__target_reap(ga, true);
	af_payload_destroy(&ga->scratch);
	free(ga->cstr[0]);
	free(ga->cstr[1]);
	free(ga);
}

const af_actor_ops af_gather_ops = {
	.type_name = "gather",
	.init = gather_init,
	.handle = gather_handle,
	.stop = gather_stop,
};
