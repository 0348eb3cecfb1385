/*
 * The chat actor: chat, stream_chat, complete and stream_complete requests,
 * answered by a provider (provider_*.c). Written against the public
 * runtime API only, as a user's actor would be.
 *
 * Each request becomes a call that lives until it is answered or its
 * requester gives up. Text reaches the requester as it arrives: a chunk per
 * delta for a stream, else gathered into one reply. When the requester's
 * credit window is full the call holds the deltas and pauses its HTTP
 * transfer, so a slow reader costs the actor at most one window plus what
 * libcurl buffers, not the whole answer.
 */
#define _GNU_SOURCE /* vasprintf */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "utf8.h"

/* A non-streamed answer larger than this is refused: no model's reply is
 * near it, and a broken server must not grow the actor without bound. */
#define BODY_MAX (64u * 1024 * 1024)

/* ---- configuration ----------------------------------------------------- */

static const chat_provider *provider_named(const char *name)
{
	static const chat_provider *const all[] = {
		&chat__extractive,
		&chat__openai,
		&chat__ollama,
	};

	if (name == NULL)
		return &chat__extractive;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	}
	return NULL;
}

void af_chat_config_init(af_chat_config *c, const char *provider)
{
	const chat_provider *p = provider_named(provider);

	memset(c, 0, sizeof(*c));
	c->provider = p != NULL ? p->name : provider;
	c->base_url = p != NULL ? p->default_base_url : NULL;
	c->model = p != NULL ? p->default_model : NULL;
	c->temperature = -1;
	c->max_retries = 3;
	if (p == &chat__openai)
		c->api_key_env = "OPENAI_API_KEY";
}

void af_chat_config_from_env(af_chat_config *c)
{
	const char *openai_url = getenv("OPENAI_BASE_URL");
	const char *openai_key = getenv("OPENAI_API_KEY");
	const char *ollama = getenv("OLLAMA_HOST");
	const char *ca_file = getenv("SSL_CERT_FILE");
	const char *model;

	if ((openai_url != NULL && *openai_url != '\0') ||
	    (openai_key != NULL && *openai_key != '\0')) {
		af_chat_config_init(c, "openai");
		if (openai_url != NULL && *openai_url != '\0')
			c->base_url = openai_url;
		model = getenv("OPENAI_MODEL");
	} else if (ollama != NULL && *ollama != '\0') {
		af_chat_config_init(c, "ollama");
		c->base_url = ollama;
		model = getenv("OLLAMA_MODEL");
	} else {
		af_chat_config_init(c, "extractive");
		return;
	}
	if (model != NULL && *model != '\0')
		c->model = model;
	if (ca_file != NULL && *ca_file != '\0')
		c->ca_file = ca_file;
}

/* "host:port" (as OLLAMA_HOST is often set) becomes "http://host:port";
 * a trailing '/' goes, so paths can be appended. */
static char *normalise_url(const char *url)
{
	size_t len = strlen(url);
	bool scheme = strstr(url, "://") != NULL;
	char *out = malloc(len + 8);

	if (out == NULL)
		return NULL;
	snprintf(out, len + 8, "%s%s", scheme ? "" : "http://", url);
	len = strlen(out);
	while (len > 0 && out[len - 1] == '/')
		out[--len] = '\0';
	return out;
}

/* ---- a call ------------------------------------------------------------ */

/* What c->err says when there was no memory for the message. */
static char no_memory[] = "out of memory";

af_err af__chat_fail(chat_call *c, af_err code, const char *fmt, ...)
{
	char text[256];
	char *whole;
	va_list ap;
	int n;

	/* Whole, then blanked, then cut: a server's message may quote the
	 * key, and a cut through the key would keep part of it. */
	va_start(ap, fmt);
	n = vasprintf(&whole, fmt, ap);
	va_end(ap);
	if (n >= 0) {
		af__http_redact(whole, (size_t)n, c->a->api_key, text,
				sizeof(text));
		free(whole);
	} else {
		snprintf(text, sizeof(text), "%s", no_memory);
	}
	if (c->err != no_memory)
		free(c->err);
	c->err = strdup(text);
	if (c->err == NULL)
		c->err = no_memory;
	c->err_code = code;
	return code;
}

static af_err append(char **buf, size_t *len, size_t *cap, const char *text,
		     size_t n, size_t max)
{
	if (n > max - *len)
		return AF_EMSGSIZE;
	if (*len + n + 1 > *cap) {
		size_t want = *cap ? *cap : 256;
		char *grown;

		while (want < *len + n + 1)
			want *= 2;
		grown = realloc(*buf, want);
		if (grown == NULL)
			return AF_ENOMEM;
		*buf = grown;
		*cap = want;
	}
	memcpy(*buf + *len, text, n);
	*len += n;
	(*buf)[*len] = '\0';
	return AF_OK;
}

static void free_call(chat_call *c)
{
	chat_actor *a = c->a;

	if (c->xfer != NULL)
		af__http_abort(a->http, &c->xfer);
	if (a->provider->release != NULL)
		a->provider->release(c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		a->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	for (size_t i = 0; i < c->held_count; i++)
		free(c->held[(c->held_head + i) % c->held_cap]);
	free(c->held);
	free(c->held_len);
	free(c->model);
	free(c->answer_model);
	if (c->err != no_memory)
		free(c->err);
	free(c->content);
	free(c->body);
	free(c);
}

static af_err pack_delta(chat_actor *a, const char *text, size_t len)
{
	af_payload_reset(a->out);
	af_pack_map(a->out, 1);
	af_pack_str(a->out, "delta");
	return af_pack_strn(a->out, text, len);
}

static af_err hold(chat_call *c, const char *text, size_t len)
{
	char *copy;

	if (c->held_count == c->held_cap) {
		size_t cap = c->held_cap ? c->held_cap * 2 : 16;
		char **h = malloc(cap * sizeof(*h));
		size_t *l = malloc(cap * sizeof(*l));

		if (h == NULL || l == NULL) {
			free(h);
			free(l);
			return AF_ENOMEM;
		}
		for (size_t i = 0; i < c->held_count; i++) {
			size_t at = (c->held_head + i) % c->held_cap;

			h[i] = c->held[at];
			l[i] = c->held_len[at];
		}
		free(c->held);
		free(c->held_len);
		c->held = h;
		c->held_len = l;
		c->held_cap = cap;
		c->held_head = 0;
	}
	copy = malloc(len + 1);
	if (copy == NULL)
		return AF_ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	c->held[(c->held_head + c->held_count) % c->held_cap] = copy;
	c->held_len[(c->held_head + c->held_count) % c->held_cap] = len;
	c->held_count++;
	return AF_OK;
}

static void on_writable(af_ctx *ctx, void *arg);

/* Sends one delta as a chunk. AF_OK; AF_EAGAIN when the consumer's window
 * is full (nothing sent; on_writable is set to run when it has room);
 * AF_ECANCELED when the consumer is gone (the cancel hook frees the call
 * on a later turn); another error with c->err filled. */
static af_err send_delta(chat_call *c, const char *text, size_t len)
{
	chat_actor *a = c->a;
	af_err err = pack_delta(a, text, len);

	if (err == AF_OK)
		err = af_pending_chunk(a->ctx, c->p, a->out);
	switch (err) {
	case AF_OK:
		return AF_OK;
	case AF_EAGAIN:
		af_pending_when_writable(a->ctx, c->p, on_writable, c);
		return AF_EAGAIN;
	case AF_ECANCELED:
		c->consumer_gone = true;
		return AF_ECANCELED;
	default:
		return af__chat_fail(c, err, "sending a chunk: %s",
				     af_strerror(err));
	}
}

/* Sends held chunks while the window has room. AF_EAGAIN when some are
 * still held; otherwise as send_delta. */
static af_err flush_held(chat_call *c)
{
	while (c->held_count > 0) {
		size_t at = c->held_head;
		af_err err = send_delta(c, c->held[at], c->held_len[at]);

		if (err == AF_EAGAIN)
			return AF_EAGAIN;
		free(c->held[at]);
		c->held_head = (c->held_head + 1) % c->held_cap;
		c->held_count--;
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

af_err af__chat_delta(chat_call *c, const char *text, size_t len)
{
	af_err err;

	if (len == 0 || c->consumer_gone)
		return AF_OK;
	if (!c->stream) {
		err = append(&c->content, &c->content_len, &c->content_cap,
			     text, len, BODY_MAX);
		if (err != AF_OK)
			return af__chat_fail(c, err, "answer too large");
		return AF_OK;
	}
	/* Deltas go out in order: behind held ones, a new one is held too. */
	if (c->held_count == 0) {
		err = send_delta(c, text, len);
		if (err == AF_ECANCELED)
			return AF_OK;
		if (err != AF_EAGAIN)
			return err;
	}
	err = hold(c, text, len);
	if (err != AF_OK)
		return af__chat_fail(c, err, "out of memory");
	if (!c->paused && c->xfer != NULL) {
		c->paused = true;
		af__http_pause(c->a->http, c->xfer, true);
	}
	return AF_OK;
}

void af__chat_set_finish(chat_call *c, const char *reason)
{
	if (reason != NULL)
		snprintf(c->finish_reason, sizeof(c->finish_reason), "%s",
			 reason);
}

void af__chat_set_model(chat_call *c, const char *model)
{
	/* A failed copy only leaves the model asked for in the ending. */
	if (model != NULL && c->answer_model == NULL)
		c->answer_model = strndup(model, 127);
}

af_err af__chat_read(chat_call *c, const char *json, size_t len,
		     af_json_pick *v)
{
	const char *name = c->a->provider->name;
	const char *why;
	af_err err = af__json_read(c->a->reader, json, len, v, &why);

	if (err == AF_ENOMEM)
		return af__chat_fail(c, err, "%s: out of memory", name);
	if (err != AF_OK)
		return af__chat_fail(
			c, err, "%s: malformed JSON %s: %s", name,
			c->http_stream ? "in the stream" : "answer", why);
	return AF_OK;
}

af_err af__chat_server_error(chat_call *c, const af_json_pick *error,
			     const af_json_pick *message)
{
	const af_json_pick *text =
		error->kind == AF_JSON_STRING ? error : message;

	if (error->kind == AF_JSON_ABSENT || error->kind == AF_JSON_NULL)
		return AF_OK;
	return af__chat_fail(
		c, AF_EREMOTE, "%s: error in the %s: %s", c->a->provider->name,
		c->http_stream ? "stream" : "answer",
		text->kind == AF_JSON_STRING ? text->str : "(no message)");
}

int64_t af__chat_count(const af_json_pick *v)
{
	/* A count from a server is untrusted: out of range, the conversion
	 * would be undefined. Under 2^53 (exact in a double), and two of
	 * them add up without overflow. */
	if (v->kind != AF_JSON_NUMBER || !(v->number >= 0) ||
	    !(v->number <= 9e15))
		return 0;
	return (int64_t)v->number;
}

void af__chat_set_usage(chat_call *c, int64_t prompt, int64_t completion)
{
	c->has_usage = true;
	c->prompt_tokens = prompt;
	c->completion_tokens = completion;
}

static void pack_ending(chat_call *c, af_payload *out, bool with_content)
{
	af_pack_map_begin(out);
	if (with_content) {
		af_pack_str(out, "content");
		af_pack_strn(out, c->content != NULL ? c->content : "",
			     c->content_len);
	}
	af_pack_str(out, "finish_reason");
	af_pack_str(out, c->finish_reason[0] ? c->finish_reason : NULL);
	af_pack_str(out, "model");
	af_pack_str(out, c->answer_model != NULL ? c->answer_model : c->model);
	af_pack_str(out, "usage");
	if (c->has_usage) {
		af_pack_map(out, 3);
		af_pack_str(out, "prompt_tokens");
		af_pack_int(out, c->prompt_tokens);
		af_pack_str(out, "completion_tokens");
		af_pack_int(out, c->completion_tokens);
		af_pack_str(out, "total_tokens");
		af_pack_int(out, c->prompt_tokens + c->completion_tokens);
	} else {
		af_pack_nil(out);
	}
	af_pack_map_end(out);
}

/* Answers c's request, with its answer or with err, and frees c. */
static void answer(chat_call *c, af_err err)
{
	chat_actor *a = c->a;

	if (c->consumer_gone)
		return; /* the cancel hook frees the call */
	if (err == AF_OK) {
		af_payload_reset(a->out);
		pack_ending(c, a->out, !c->stream);
		err = af_payload_status(a->out);
		if (err == AF_OK)
			err = c->stream
				      ? af_pending_end(a->ctx, &c->p, a->out)
				      : af_pending_reply(a->ctx, &c->p, a->out);
		/* Too large for the system's messages, say: the requester
		 * learns why rather than waiting for its deadline. */
		if (err != AF_OK)
			af__chat_fail(c, err,
				      "%s: the answer could not be sent: %s",
				      a->provider->name, af_strerror(err));
	}
	if (err != AF_OK &&
	    af_pending_error(a->ctx, &c->p, err, "%s",
			     c->err != NULL ? c->err : af_strerror(err)) !=
		    AF_OK) {
		/* Not even the error could go: the runtime keeps the request
		 * (a stop answers it), and its hooks must not find c. */
		af_pending_on_cancel(c->p, NULL, NULL);
		af_pending_when_writable(a->ctx, c->p, NULL, NULL);
	}
	free_call(c);
}

void af__chat_finish(chat_call *c, af_err err)
{
	if (c->held_count > 0 && !c->consumer_gone) {
		/* The end, or the error, goes after the chunks still held:
		 * text that came before a failure is not lost. */
		c->end_due = true;
		c->end_err = err;
		return;
	}
	answer(c, err);
}

static void on_writable(af_ctx *ctx, void *arg)
{
	chat_call *c = arg;
	af_err err = flush_held(c);

	if (err == AF_EAGAIN || c->consumer_gone)
		return;
	if (err != AF_OK) {
		/* The held chunks cannot go: the error goes now. */
		answer(c, err);
		return;
	}
	if (c->end_due) {
		answer(c, c->end_err);
		return;
	}
	if (c->paused && c->xfer != NULL) {
		c->paused = false;
		/* Resuming may hand over bytes libcurl held, which may fill
		 * the window again and pause once more. */
		af__http_pause(c->a->http, c->xfer, false);
	}
}

static void on_cancel(af_ctx *ctx, void *arg)
{
	chat_call *c = arg;

	/* The requester gave up: stop the transfer now. The runtime frees
	 * the pending request after this returns. */
	c->p = NULL;
	free_call(c);
}

/* ---- HTTP -------------------------------------------------------------- */

static af_err on_http_data(void *arg, const char *buf, size_t len)
{
	chat_call *c = arg;

	if (c->http_stream)
		return c->a->provider->feed(c, buf, len);
	if (append(&c->body, &c->body_len, &c->body_cap, buf, len, BODY_MAX) !=
	    AF_OK)
		return af__chat_fail(c, AF_EMSGSIZE,
				     "answer larger than %u bytes", BODY_MAX);
	return AF_OK;
}

static void on_http_done(af_ctx *ctx, void *arg, af_err err, long status,
			 const char *msg)
{
	chat_call *c = arg;

	c->xfer = NULL;
	if (err == AF_OK)
		err = c->a->provider->end(c);
	else if (c->err_code != err || c->err == NULL)
		af__chat_fail(c, err, "%s: %s", c->a->provider->name, msg);
	af__chat_finish(c, err);
}

/* The base URL followed by path, built once and kept: a provider posts
 * every request to the same path. NULL when memory ran out. */
static const char *url_of(chat_actor *a, const char *path)
{
	size_t base = strlen(a->base_url);
	size_t n = base + strlen(path) + 1;
	char *url;

	if (a->url != NULL && strcmp(a->url + base, path) == 0)
		return a->url;
	url = malloc(n);
	if (url == NULL)
		return NULL;
	snprintf(url, n, "%s%s", a->base_url, path);
	free(a->url);
	a->url = url;
	return url;
}

af_err af__chat_http_start(chat_call *c, const char *path, const char *body,
			   size_t len)
{
	static const af_http_cbs cbs = {
		.on_data = on_http_data,
		.on_done = on_http_done,
	};
	chat_actor *a = c->a;
	int64_t left = af_pending_remaining_ms(c->p);
	af_http_req r = {
		.body = body,
		.body_len = len,
		.bearer = a->api_key,
		.accept = c->http_stream ? "text/event-stream, "
					   "application/x-ndjson, "
					   "application/json"
					 : "application/json",
		.timeout_ms = a->timeout_ms,
		.stream = c->http_stream,
	};
	af_err err;

	r.url = url_of(a, path);
	if (r.url == NULL)
		return af__chat_fail(c, AF_ENOMEM, "out of memory");
	if (left >= 0 && (r.timeout_ms == 0 || left < r.timeout_ms))
		r.timeout_ms = left > 0 ? left : 1;
	err = af__http_start(a->http, &r, &cbs, c, &c->xfer);
	if (err != AF_OK)
		return af__chat_fail(c, err, "starting the request: %s",
				     af_strerror(err));
	return AF_OK;
}

bool af__chat_add(cJSON *obj, const char *key, cJSON *item)
{
	if (item == NULL)
		return false;
	if (!cJSON_AddItemToObjectCS(obj, key, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

/* A string item of len bytes of s (not NUL-terminated), copied once, into
 * memory of cJSON's allocator that cJSON_Delete frees: not first into a
 * temporary that cJSON would copy again, which for a long conversation
 * is kilobytes per message. */
static cJSON *string_item(const char *s, size_t len)
{
	char *copy = cJSON_malloc(len + 1);
	cJSON *item;

	if (copy == NULL)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	item = cJSON_CreateStringReference(copy);
	if (item == NULL) {
		cJSON_free(copy);
		return NULL;
	}
	/* No longer a reference: the item owns the copy. */
	item->type &= ~cJSON_IsReference;
	return item;
}

cJSON *af__chat_body(const chat_call *c, cJSON *messages)
{
	cJSON *body = cJSON_CreateObject();

	if (body == NULL ||
	    !af__chat_add(body, "model", cJSON_CreateString(c->model))) {
		cJSON_Delete(messages);
		cJSON_Delete(body);
		return NULL;
	}
	if (!af__chat_add(body, "messages", messages) ||
	    !af__chat_add(body, "stream", cJSON_CreateBool(c->http_stream))) {
		cJSON_Delete(body);
		return NULL;
	}
	return body;
}

af_err af__chat_post(chat_call *c, const char *path, cJSON *body)
{
	char *text = cJSON_PrintUnformatted(body);
	af_err err;

	cJSON_Delete(body);
	if (text == NULL)
		return af__chat_fail(c, AF_ENOMEM, "%s: out of memory",
				     c->a->provider->name);
	err = af__chat_http_start(c, path, text, strlen(text));
	cJSON_free(text);
	return err;
}

/* ---- requests ---------------------------------------------------------- */

/* Appends {"role": role, "content": content} to list. AF_EINVAL when a
 * text is not UTF-8 (or holds a NUL, which cJSON strings cannot). */
static af_err add_message(cJSON *list, const char *role, size_t role_len,
			  const char *content, size_t len)
{
	cJSON *m;
	bool ok;

	if (!af__utf8_text_ok(role, role_len) ||
	    !af__utf8_text_ok(content, len))
		return AF_EINVAL;
	m = cJSON_CreateObject();
	ok = m != NULL &&
	     af__chat_add(m, "role", string_item(role, role_len)) &&
	     af__chat_add(m, "content", string_item(content, len));
	if (!ok || !cJSON_AddItemToArray(list, m)) {
		cJSON_Delete(m);
		return AF_ENOMEM;
	}
	return AF_OK;
}

af_err af__chat_messages(const af_value *payload, cJSON **out, const char **why)
{
	const af_value *messages = af_value_get(payload, "messages");
	const af_value *prompt = af_value_get(payload, "prompt");
	cJSON *list = cJSON_CreateArray();
	const char *s;
	const char *role;
	size_t len;
	size_t role_len;
	af_err err = AF_OK;

	if (list == NULL)
		return AF_ENOMEM;
	*why = NULL;
	if (af_value_type(prompt) == AF_TYPE_STR) {
		af_value_str(prompt, &s, &len);
		err = add_message(list, "user", 4, s, len);
		if (err == AF_EINVAL)
			*why = "the prompt is not valid UTF-8 (or holds a NUL)";
	} else if (af_value_type(messages) == AF_TYPE_ARRAY &&
		   af_value_len(messages) > 0) {
		for (size_t i = 0; i < af_value_len(messages) && !err; i++) {
			const af_value *m = af_value_at(messages, i);

			if (af_value_str(af_value_get(m, "role"), &role,
					 &role_len) != AF_OK ||
			    af_value_str(af_value_get(m, "content"), &s,
					 &len) != AF_OK) {
				*why = "each message needs a role and a "
				       "content string";
				err = AF_EINVAL;
				break;
			}
			err = add_message(list, role, role_len, s, len);
			if (err == AF_EINVAL)
				*why = "a message is not valid UTF-8 (or holds "
				       "a NUL)";
		}
	} else {
		*why = "a request needs \"messages\" (a non-empty array) or "
		       "\"prompt\" (a string)";
		err = AF_EINVAL;
	}
	if (err != AF_OK) {
		cJSON_Delete(list);
		return err;
	}
	*out = list;
	return AF_OK;
}

static af_err handle(af_ctx *ctx, void *state, af_msg *m)
{
	chat_actor *a = state;
	const char *type = af_msg_type(m);
	const af_value *payload = af_msg_payload(m);
	bool want_stream;
	const af_value *model;
	cJSON *messages = NULL;
	const char *why;
	int64_t max_tokens;
	chat_call *c;
	af_err err;

	if (strcmp(type, "chat") == 0 || strcmp(type, "complete") == 0)
		want_stream = false;
	else if (strcmp(type, "stream_chat") == 0 ||
		 strcmp(type, "stream_complete") == 0)
		want_stream = true;
	else
		return AF_ENOTSUP;
	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK; /* a tell would have nowhere to send the text */
	if (af_value_type(payload) != AF_TYPE_MAP)
		return af_reply_error(ctx, m, AF_EINVAL,
				      "a %s request is a map", type);
	err = af__chat_messages(payload, &messages, &why);
	if (err != AF_OK)
		return af_reply_error(ctx, m, err, "%s",
				      why ? why : af_strerror(err));

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cJSON_Delete(messages);
		return AF_ENOMEM;
	}
	c->a = a;
	model = af_value_get(payload, "model");
	c->model = af_value_type(model) == AF_TYPE_STR ? af_value_strdup(model)
						       : strdup(a->model);
	c->temperature =
		af_value_get_double(payload, "temperature", a->temperature);
	max_tokens = af_value_get_int(payload, "max_tokens", a->max_tokens);
	if (max_tokens < INT_MIN || max_tokens > INT_MAX) {
		cJSON_Delete(messages);
		free(c->model);
		free(c);
		return af_reply_error(ctx, m, AF_EINVAL,
				      "max_tokens out of range: %lld",
				      (long long)max_tokens);
	}
	c->max_tokens = (int)max_tokens;
	if (c->model == NULL || af_defer(ctx, m, &c->p) != AF_OK) {
		cJSON_Delete(messages);
		free(c->model);
		free(c);
		return AF_ENOMEM;
	}
	c->stream = want_stream && af_pending_is_stream(c->p);
	c->http_stream = want_stream;
	c->next = a->calls;
	if (a->calls != NULL)
		a->calls->prev = c;
	a->calls = c;
	af_pending_on_cancel(c->p, on_cancel, c);

	err = a->provider->start(c, messages);
	if (err != AF_OK) {
		if (c->err == NULL)
			af__chat_fail(c, err, "%s", af_strerror(err));
		af__chat_finish(c, err);
	}
	return AF_OK;
}

/* ---- the actor --------------------------------------------------------- */

static void free_actor(chat_actor *a)
{
	af__http_destroy(&a->http);
	af__json_reader_destroy(&a->reader);
	af_payload_destroy(&a->out);
	free(a->base_url);
	free(a->url);
	free(a->model);
	if (a->api_key != NULL) {
		memset(a->api_key, 0, strlen(a->api_key));
		free(a->api_key);
	}
	free(a);
}

static af_err init(af_ctx *ctx, const void *config, void **state)
{
	const af_chat_config *cfg = config;
	af_chat_config dflt;
	chat_actor *a;
	af_http_opts http;
	const char *key;
	af_err err;

	if (cfg == NULL) {
		af_chat_config_from_env(&dflt);
		cfg = &dflt;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return AF_ENOMEM;
	a->ctx = ctx;
	a->provider = provider_named(cfg->provider);
	if (a->provider == NULL) {
		free(a);
		return af_init_fail(ctx, AF_EINVAL,
				    "chat: unknown provider \"%s\" (known: "
				    "extractive, openai, ollama)",
				    cfg->provider);
	}
	a->temperature = cfg->temperature;
	a->max_tokens = cfg->max_tokens;
	a->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 600000;
	err = AF_ENOMEM;
	a->base_url = normalise_url(cfg->base_url != NULL
					    ? cfg->base_url
					    : a->provider->default_base_url);
	a->model = strdup(cfg->model != NULL ? cfg->model
					     : a->provider->default_model);
	key = cfg->api_key_env != NULL ? getenv(cfg->api_key_env) : NULL;
	if (key != NULL && *key != '\0')
		a->api_key = strdup(key);
	if (a->base_url == NULL || a->model == NULL ||
	    (key != NULL && *key != '\0' && a->api_key == NULL))
		goto fail;
	err = af_payload_new(&a->out);
	if (err == AF_OK && a->provider->npicks > 0)
		err = af__json_reader_new(&a->reader, a->provider->picks,
					  a->provider->npicks);
	if (err != AF_OK)
		goto fail;
	http = (af_http_opts){
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.max_concurrent = cfg->max_concurrent,
		.max_retries = cfg->max_retries,
		.retry_base_ms = cfg->retry_base_ms,
		.retry_max_ms = cfg->retry_max_ms,
		.ca_file = cfg->ca_file,
	};
	err = af__http_new(&a->http, ctx, &http);
	if (err != AF_OK)
		goto fail;
	*state = a;
	return AF_OK;
fail:
	free_actor(a);
	return err;
}

static void stop(af_ctx *ctx, void *state)
{
	chat_actor *a = state;

	/* Deferred requests still open were answered AF_ESTOPPED by the
	 * runtime; what is left to free is their calls and transfers. */
	while (a->calls != NULL) {
		a->calls->p = NULL;
		free_call(a->calls);
	}
	free_actor(a);
}

const af_actor_ops af_chat_ops = {
	.type_name = "chat",
	.init = init,
	.handle = handle,
	.stop = stop,
};
