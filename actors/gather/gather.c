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
	af_doc_destroy(&g->doc);
	free(g->strings);
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

/* An optional unsigned integer v: absent or nil leaves *out as it is. */
static bool opt_uint(const af_value *v, int64_t max, int64_t *out)
{
	uint64_t u;

	if (af_value_type(v) == AF_TYPE_NONE || af_value_type(v) == AF_TYPE_NIL)
		return true;
	if (af_value_uint(v, &u) != AF_OK)
		return false;
	*out = u > (uint64_t)max ? max : (int64_t)u;
	return true;
}

/* A string that is to become a C string: not empty, no NUL inside. */
static bool cstring_ok(const af_value *v, const char **s, uint32_t *len)
{
	size_t n;

	if (af_value_str(v, s, &n) != AF_OK || n == 0 || n > UINT32_MAX ||
	    memchr(*s, '\0', n) != NULL)
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

/* Reads the options of the request root into g; AF_EINVAL with why. */
static af_err read_options(gather *g, const af_value *root, char *why,
			   size_t why_len)
{
	int64_t limit = g->ga->cfg.concurrency;
	const af_value *mode = af_value_get(root, "mode");
	const af_value *as_completed = af_value_get(root, "as_completed");

	if (!opt_uint(af_value_get(root, "concurrency"), UINT32_MAX, &limit))
		REFUSE("gather: \"concurrency\" must be an unsigned integer");
	g->limit = (uint32_t)limit;
	if (!opt_uint(af_value_get(root, "timeout_ms"), TIMEOUT_MAX_MS,
		      &g->deadline_ms))
		REFUSE("gather: \"timeout_ms\" must be an unsigned integer");
	if (!opt_uint(af_value_get(root, "item_timeout_ms"), TIMEOUT_MAX_MS,
		      &g->item_timeout_ms))
		REFUSE("gather: \"item_timeout_ms\" must be an unsigned "
		       "integer");
	if (af_value_type(mode) != AF_TYPE_NONE &&
	    af_value_type(mode) != AF_TYPE_NIL) {
		if (af_value_str_eq(mode, "fail_fast"))
			g->fail_fast = true;
		else if (!af_value_str_eq(mode, "collect"))
			REFUSE("gather: \"mode\" must be \"collect\" or "
			       "\"fail_fast\"");
	}
	if (af_value_type(as_completed) != AF_TYPE_NONE &&
	    af_value_type(as_completed) != AF_TYPE_NIL &&
	    af_value_bool(as_completed, &g->as_completed) != AF_OK)
		REFUSE("gather: \"as_completed\" must be a bool");
	return AF_OK;
}

/* Reads item i from its map v in one walk over its fields; its address,
 * type and payload still point into the request. */
static af_err read_item(gather *g, const af_value *v, item *it, size_t i,
			char *why, size_t why_len)
{
	const af_value *to = NULL;
	const af_value *type = NULL;
	const af_value *timeout = NULL;

	if (af_value_type(v) != AF_TYPE_MAP)
		REFUSE("gather: item %zu is not a map", i);
	for (size_t k = 0; k < af_value_len(v); k++) {
		const char *key;
		size_t len;
		if (af_value_str(af_value_key_at(v, k), &key, &len) != AF_OK)
			continue;
		if (key_is(key, len, "to"))
			to = af_value_val_at(v, k);
		else if (key_is(key, len, "type"))
			type = af_value_val_at(v, k);
		else if (key_is(key, len, "payload"))
			it->payload = af_value_val_at(v, k);
		else if (key_is(key, len, "timeout_ms"))
			timeout = af_value_val_at(v, k);
	}
	if (!cstring_ok(to, &it->to, &it->to_len))
		REFUSE("gather: item %zu has no \"to\" address string", i);
	if (!cstring_ok(type, &it->type, &it->type_len))
		REFUSE("gather: item %zu has no \"type\" string", i);
	if (!opt_uint(timeout, TIMEOUT_MAX_MS, &it->timeout_ms))
		REFUSE("gather: item %zu: \"timeout_ms\" must be an unsigned "
		       "integer",
		       i);
	if (it->timeout_ms == 0)
		it->timeout_ms = g->item_timeout_ms;
	it->g = g;
	it->index = (uint32_t)i;
	return AF_OK;
}

/* Reads the items of root into g; they point into the request. */
static af_err read_items(gather *g, const af_value *root, char *why,
			 size_t why_len)
{
	const af_value *items = af_value_get(root, "items");
	size_t n = af_value_len(items);
	af_err err;

	if (af_value_type(items) != AF_TYPE_ARRAY)
		REFUSE("gather: \"items\" must be an array");
	if (n > g->ga->cfg.max_items)
		REFUSE("gather: %zu items, more than the limit of %u", n,
		       g->ga->cfg.max_items);
	g->n = (uint32_t)n;
	if (n == 0)
		return AF_OK;
	g->items = calloc(n, sizeof(*g->items));
	if (g->items == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		err = read_item(g, af_value_at(items, i), &g->items[i], i, why,
				why_len);
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

#undef REFUSE

/* Makes a gather of request m, its items' payloads still in m. */
static af_err gather_new(gather_actor *ga, af_msg *m, gather **out, char *why,
			 size_t why_len)
{
	gather *g = calloc(1, sizeof(*g));
	const af_value *root = af_msg_payload(m);
	af_err err;

	*why = '\0';
	if (g == NULL) {
		err = AF_ENOMEM;
		goto fail;
	}
	g->ga = ga;
	if (af_value_type(root) != AF_TYPE_MAP) {
		snprintf(why, why_len, "gather: the payload must be a map");
		err = AF_EINVAL;
		goto fail;
	}
	err = read_options(g, root, why, why_len);
	if (err == AF_OK)
		err = read_items(g, root, why, why_len);
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
 * it. This runs after the first items went out, while their targets
 * work: it copies every unfinished item's address and type into one
 * block of C strings, and the payloads of the items not sent yet
 * (waiting for the concurrency limit or for room in a mailbox) into one
 * document, one copy and one parse for them all. */
static af_err keep_items(gather *g)
{
	af_payload *copy = af__gather_scratch(g->ga);
	size_t bytes = 0;
	uint32_t kept = 0;
	const af_value *all;
	const void *data;
	size_t len;
	af_err err;
	char *s;

	for (uint32_t i = 0; i < g->n; i++)
		bytes += (size_t)g->items[i].to_len + g->items[i].type_len + 2;
	g->strings = malloc(bytes);
	if (g->strings == NULL || copy == NULL)
		return AF_ENOMEM;
	s = g->strings;
	af_pack_array_begin(copy);
	for (uint32_t i = 0; i < g->n; i++) {
		item *it = &g->items[i];
		it->to = memcpy(s, it->to, it->to_len);
		s[it->to_len] = '\0';
		s += it->to_len + 1;
		it->type = memcpy(s, it->type, it->type_len);
		s[it->type_len] = '\0';
		s += it->type_len + 1;
		if (it->state != ITEM_WAITING && it->state != ITEM_BLOCKED) {
			it->payload = NULL;
		} else if (it->payload != NULL) {
			af_pack_value(copy, it->payload);
			kept++;
		}
	}
	g->kept = true;
	err = af_pack_array_end(copy);
	if (err != AF_OK || kept == 0)
		return err;
	data = af_payload_data(copy, &len);
	err = af_doc_parse(&g->doc, data, len);
	if (err != AF_OK)
		return err;
	all = af_doc_root(g->doc);
	kept = 0;
	for (uint32_t i = 0; i < g->n; i++) {
		item *it = &g->items[i];
		if (it->payload != NULL)
			it->payload = af_value_at(all, kept++);
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
	if (!g->closed && (err = keep_items(g)) != AF_OK)
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
