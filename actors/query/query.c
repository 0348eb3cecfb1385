/*
 * The query actor: retrieve, then synthesize (the message format is in
 * include/actorflow/query.h).
 *
 * Each query or stream_query request becomes a query, which lives until
 * it is answered or its requester gives up. It has at most one request of
 * its own outstanding at a time (the retrieve, then each chat call or
 * gather of chat calls in turn, synth.c), always with a continuation, so
 * the actor's loop never waits and any number of queries run side by
 * side. Each of those requests gets the config's timeout, or the time the
 * query has left when that is less.
 *
 * A query ends once: answered, failed, or given up by its requester (the
 * cancel hook of its af_pending), which cancels its outstanding request.
 * It usually ends inside one of its own continuations, so its memory is
 * freed on the next turn of the loop by the reaper, never from the
 * callback.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_internal.h"

#define DEFAULT_CONTEXT_WORDS 3000
#define DEFAULT_TIMEOUT_MS 120000
#define DEFAULT_EXCERPT_BYTES 1000
#define DEFAULT_EMPTY_RESPONSE "No context was found to answer the query."

void af_query_config_init(af_query_config *c)
{
	memset(c, 0, sizeof(*c));
}

static bool mode_named(const char *s, size_t len, response_mode *out)
{
	static const struct {
		const char *name;
		response_mode mode;
	} modes[] = {
		{"compact", MODE_COMPACT},
		{"refine", MODE_REFINE},
		{"tree_summarize", MODE_TREE},
		{"no_text", MODE_NO_TEXT},
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++) {
		if (strlen(modes[i].name) == len &&
		    memcmp(modes[i].name, s, len) == 0) {
			*out = modes[i].mode;
			return true;
		}
	}
	return false;
}

/* ---- a query's life ---------------------------------------------------- */

static void unlink_query(query **list, query *q)
{
	if (q->prev != NULL)
		q->prev->next_q = q->next_q;
	else
		*list = q->next_q;
	if (q->next_q != NULL)
		q->next_q->prev = q->prev;
	q->prev = q->next_q = NULL;
}

static void push_query(query **list, query *q)
{
	q->prev = NULL;
	q->next_q = *list;
	if (*list != NULL)
		(*list)->prev = q;
	*list = q;
}

static void query_free(query *q)
{
	af__sources_free(q);
	af__synth_free(q);
	af__relay_free(q);
	free(q->err_text);
	free(q->question);
	free(q);
}

static void reap(af_ctx *ctx, void *arg)
{
	query_actor *qa = arg;

	qa->reap_armed = false;
	while (qa->dead != NULL) {
		query *q = qa->dead;
		unlink_query(&qa->dead, q);
		query_free(q);
	}
}

bool af__query_sub_timeout(const query *q, int64_t *ms)
{
	int64_t left = q->req != NULL ? af_pending_remaining_ms(q->req) : -1;

	if (left == 0)
		return false;
	*ms = q->qa->timeout_ms;
	if (left > 0 && left < *ms)
		*ms = left;
	return true;
}

static void ignore(af_ctx *ctx, void *arg)
{
}

void af__query_close(af_ctx *ctx, query *q)
{
	query_actor *qa = q->qa;

	if (q->closed)
		return;
	q->closed = true;
	if (q->sub != 0) {
		uint64_t id = q->sub;
		/* Its continuation runs now, sees the query closed and does
		 * nothing more. */
		q->sub = 0;
		af_cancel(ctx, id);
	}
	if (q->req != NULL) {
		/* Only reached when no answer could be sent (memory ran
		 * out): the runtime answers it when the actor stops, and
		 * must then call nothing of q's, which will be freed. */
		af_pending_on_cancel(q->req, NULL, NULL);
		if (af_pending_is_stream(q->req))
			af_pending_when_writable(ctx, q->req, ignore, NULL);
		q->req = NULL;
	}
	unlink_query(&qa->live, q);
	push_query(&qa->dead, q);
	if (!qa->reap_armed &&
	    af_timer_start(ctx, 0, 0, reap, qa, NULL) == AF_OK)
		qa->reap_armed = true;
}

void af__query_succeed(af_ctx *ctx, query *q)
{
	af_payload *p = q->qa->out;
	af_err err;

	if (q->closed)
		return;
	if (af__relay_busy(q)) {
		q->end_due = true;
		return;
	}
	if (q->req == NULL) {
		af__query_close(ctx, q);
		return;
	}
	af_payload_reset(p);
	if (q->stream) {
		af_pack_map(p, 1);
	} else {
		af_pack_map(p, 2);
		af_pack_str(p, "response");
		af_pack_str(p, q->answer != NULL ? q->answer : "");
	}
	err = af__sources_pack(q, p);
	if (err == AF_OK)
		err = q->stream ? af_pending_end(ctx, &q->req, p)
				: af_pending_reply(ctx, &q->req, p);
	if (err != AF_OK && q->req != NULL)
		af_pending_error(ctx, &q->req, err,
				 "query: cannot send the answer: %s",
				 af_strerror(err));
	af__query_close(ctx, q);
}

void af__query_fail(af_ctx *ctx, query *q, int code, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (q->closed)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (af__relay_busy(q)) {
		/* The error goes after the text already on its way. */
		if (q->err_due == 0) {
			q->err_due = code;
			q->err_text = strdup(text);
		}
		return;
	}
	if (q->req != NULL)
		af_pending_error(ctx, &q->req, code, "%s", text);
	af__query_close(ctx, q);
}

void af__query_fail_sub(af_ctx *ctx, query *q, const char *prefix, int status,
			af_msg *reply)
{
	const char *text = NULL;
	size_t plen = strlen(prefix);

	if (reply != NULL)
		af_msg_error(reply, &text);
	if (text == NULL || *text == '\0')
		text = af_strerror(status);
	/* A message that already names the actor keeps its one prefix. */
	if (strncmp(text, prefix, plen) == 0 && text[plen] == ':')
		af__query_fail(ctx, q, status, "%s", text);
	else
		af__query_fail(ctx, q, status, "%s: %s", prefix, text);
}

static void query_cancelled(af_ctx *ctx, void *arg)
{
	query *q = arg;

	/* The runtime frees the request when this returns. */
	q->req = NULL;
	af__query_close(ctx, q);
}

static void on_retrieved(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	query *q = arg;
	char why[256];
	af_err err;

	q->sub = 0;
	if (q->closed)
		return;
	if (status != AF_OK) {
		af__query_fail_sub(ctx, q, "retrieve", status, reply);
		return;
	}
	err = af__sources_read(q, reply, why, sizeof(why));
	if (err != AF_OK) {
		af__query_fail(ctx, q, err, "retrieve: %s", why);
		return;
	}
	af__synth_start(ctx, q);
}

/* ---- requests ---------------------------------------------------------- */

/* What a request asks, its strings pointing into the request. */
typedef struct ask {
	const char *query;
	size_t query_len;
	int64_t top_k; /* 0: the config's */
	const char *mode;
	size_t mode_len;
	response_mode response_mode;
} ask;

#define REFUSE(...)                                                            \
	do {                                                                   \
		snprintf(why, why_len, __VA_ARGS__);                           \
		return AF_EINVAL;                                              \
	} while (0)

static af_err read_ask(const query_actor *qa, const af_value *v, ask *a,
		       char *why, size_t why_len)
{
	const af_value *f;
	const char *s;
	size_t len;

	memset(a, 0, sizeof(*a));
	a->top_k = qa->top_k;
	a->response_mode = qa->response_mode;
	if (qa->mode != NULL) {
		a->mode = qa->mode;
		a->mode_len = strlen(qa->mode);
	}
	if (af_value_type(v) != AF_TYPE_MAP)
		REFUSE("query: the payload must be a map");
	if (af_value_str(af_value_get(v, "query"), &a->query, &a->query_len) !=
		    AF_OK ||
	    a->query_len == 0)
		REFUSE("query: \"query\" must be a non-empty string");
	if (memchr(a->query, '\0', a->query_len) != NULL)
		REFUSE("query: \"query\" holds a NUL byte");
	f = af_value_get(v, "top_k");
	if (f != NULL && af_value_type(f) != AF_TYPE_NIL &&
	    (af_value_int(f, &a->top_k) != AF_OK || a->top_k < 1))
		REFUSE("query: \"top_k\" must be a positive integer");
	f = af_value_get(v, "mode");
	if (f != NULL && af_value_type(f) != AF_TYPE_NIL &&
	    af_value_str(f, &a->mode, &a->mode_len) != AF_OK)
		REFUSE("query: \"mode\" must be a string");
	f = af_value_get(v, "response_mode");
	if (f != NULL && af_value_type(f) != AF_TYPE_NIL) {
		if (af_value_str(f, &s, &len) != AF_OK ||
		    !mode_named(s, len, &a->response_mode))
			REFUSE("query: \"response_mode\" must be \"compact\", "
			       "\"refine\", \"tree_summarize\" or "
			       "\"no_text\"");
	}
	return AF_OK;
}

#undef REFUSE

static af_err send_retrieve(af_ctx *ctx, query *q, const ask *a)
{
	query_actor *qa = q->qa;
	af_payload *p = qa->out;
	int64_t ms;

	if (!af__query_sub_timeout(q, &ms))
		return AF_ETIMEDOUT;
	af_payload_reset(p);
	af_pack_map_begin(p);
	af_pack_str(p, "query");
	af_pack_strn(p, a->query, a->query_len);
	if (a->top_k > 0) {
		af_pack_str(p, "top_k");
		af_pack_int(p, a->top_k);
	}
	if (a->mode != NULL) {
		af_pack_str(p, "mode");
		af_pack_strn(p, a->mode, a->mode_len);
	}
	af_pack_map_end(p);
	return af_request(ctx, qa->retriever, "retrieve", p, ms, on_retrieved,
			  q, &q->sub);
}

static af_err query_start(af_ctx *ctx, query_actor *qa, af_msg *m,
			  bool want_stream)
{
	query *q;
	ask a;
	char why[256];
	af_err err;

	if (af_msg_remaining_ms(m) == 0)
		return af_reply_error(ctx, m, AF_ETIMEDOUT,
				      "query: the request's deadline passed "
				      "before it was read");
	err = read_ask(qa, af_msg_payload(m), &a, why, sizeof(why));
	if (err != AF_OK)
		return af_reply_error(ctx, m, err, "%s", why);
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return AF_ENOMEM;
	q->qa = qa;
	q->mode = a.response_mode;
	q->question = strndup(a.query, a.query_len);
	if (q->question == NULL) {
		free(q);
		return AF_ENOMEM;
	}
	err = af_defer(ctx, m, &q->req);
	if (err != AF_OK) {
		query_free(q);
		return err;
	}
	q->stream = want_stream && af_pending_is_stream(q->req);
	push_query(&qa->live, q);
	af_pending_on_cancel(q->req, query_cancelled, q);
	err = send_retrieve(ctx, q, &a);
	if (err == AF_ETIMEDOUT)
		af__query_fail(ctx, q, err,
			       "query: the deadline passed before the "
			       "retrieval");
	else if (err != AF_OK)
		af__query_fail(ctx, q, err, "retrieve: cannot send to '%s': %s",
			       qa->retriever, af_strerror(err));
	return AF_OK;
}

static af_err query_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const char *type = af_msg_type(m);
	bool want_stream;

	if (strcmp(type, "query") == 0)
		want_stream = false;
	else if (strcmp(type, "stream_query") == 0)
		want_stream = true;
	else if (af_msg_kind(m) == AF_KIND_REQUEST)
		return af_reply_error(ctx, m, AF_ENOTSUP,
				      "query: unknown message type '%s' (it "
				      "takes \"query\" and \"stream_query\")",
				      type);
	else
		return AF_OK;
	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK; /* a tell would have nowhere to send the answer */
	return query_start(ctx, state, m, want_stream);
}

/* ---- the actor --------------------------------------------------------- */

static void actor_free(query_actor *qa)
{
	free(qa->retriever);
	free(qa->chat);
	free(qa->gather);
	free(qa->mode);
	free(qa->qa_template);
	free(qa->refine_template);
	free(qa->summary_template);
	free(qa->system_prompt);
	free(qa->empty_response);
	af_payload_destroy(&qa->out);
	free(qa);
}

/* A copy of s, or of dflt when s is NULL; *ok turns false when memory ran
 * out. NULL stays NULL when dflt is NULL. */
static char *copy_or(const char *s, const char *dflt, bool *ok)
{
	const char *from = s != NULL ? s : dflt;
	char *copy;

	if (from == NULL)
		return NULL;
	copy = strdup(from);
	if (copy == NULL)
		*ok = false;
	return copy;
}

/* What init refuses in a configuration, said the way af_spawn passes on;
 * sets *mode to the response mode c names (compact when none). */
static af_err config_error(af_ctx *ctx, const af_query_config *c,
			   response_mode *mode)
{
	static const struct {
		const char *key;
		bool refine;
	} names[] = {{"qa_template", false},
		     {"refine_template", true},
		     {"summary_template", false}};
	const char *tmpls[] = {c->qa_template, c->refine_template,
			       c->summary_template};

	if (c->top_k < 0 || c->context_words < 0 || c->timeout_ms < 0)
		return af_init_fail(ctx, AF_EINVAL,
				    "query: top_k, context_words and "
				    "timeout_ms may not be negative");
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (tmpls[i] != NULL &&
		    af__prompt_check(tmpls[i], names[i].refine) != AF_OK)
			return af_init_fail(
				ctx, AF_EINVAL,
				"query: %s must hold {query_str} and "
				"{context_str}%s",
				names[i].key,
				names[i].refine ? " and {existing_answer}"
						: "");
	*mode = MODE_COMPACT;
	if (c->response_mode != NULL &&
	    !mode_named(c->response_mode, strlen(c->response_mode), mode))
		return af_init_fail(ctx, AF_EINVAL,
				    "query: unknown response_mode \"%s\" "
				    "(known: compact, refine, tree_summarize, "
				    "no_text)",
				    c->response_mode);
	return AF_OK;
}

static af_err query_init(af_ctx *ctx, const void *config, void **state)
{
	af_query_config dflt;
	const af_query_config *c = config;
	response_mode mode;
	query_actor *qa;
	bool ok = true;
	af_err err;

	if (c == NULL) {
		af_query_config_init(&dflt);
		c = &dflt;
	}
	err = config_error(ctx, c, &mode);
	if (err != AF_OK)
		return err;
	qa = calloc(1, sizeof(*qa));
	if (qa == NULL)
		return AF_ENOMEM;
	qa->response_mode = mode;
	qa->retriever = copy_or(c->retriever, "retrieval", &ok);
	qa->chat = copy_or(c->chat, "chat", &ok);
	qa->gather = copy_or(c->gather, "gather", &ok);
	qa->mode = copy_or(c->mode, NULL, &ok);
	qa->qa_template = copy_or(c->qa_template, af__prompt_qa, &ok);
	qa->refine_template =
		copy_or(c->refine_template, af__prompt_refine, &ok);
	qa->summary_template =
		copy_or(c->summary_template, af__prompt_summary, &ok);
	qa->system_prompt = copy_or(c->system_prompt, NULL, &ok);
	qa->empty_response =
		copy_or(c->empty_response, DEFAULT_EMPTY_RESPONSE, &ok);
	err = AF_ENOMEM;
	if (!ok || af_payload_new(&qa->out) != AF_OK)
		goto fail;
	qa->top_k = c->top_k;
	qa->context_words = c->context_words > 0 ? (size_t)c->context_words
						 : DEFAULT_CONTEXT_WORDS;
	qa->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;
	qa->excerpt_bytes =
		c->excerpt_bytes > 0 ? c->excerpt_bytes : DEFAULT_EXCERPT_BYTES;
	*state = qa;
	return AF_OK;
fail:
	actor_free(qa);
	return err;
}

/* By now the runtime has run the cancel hook of every query still open
 * (each closed itself) and settled its outstanding requests; what is left
 * is memory. */
static void query_stop(af_ctx *ctx, void *state)
{
	query_actor *qa = state;

	while (qa->live != NULL) {
		query *q = qa->live;
		unlink_query(&qa->live, q);
		query_free(q);
	}
	while (qa->dead != NULL) {
		query *q = qa->dead;
		unlink_query(&qa->dead, q);
		query_free(q);
	}
	actor_free(qa);
}

const af_actor_ops af_query_ops = {
	.type_name = "query",
	.init = query_init,
	.handle = query_handle,
	.stop = query_stop,
};
