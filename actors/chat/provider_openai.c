/*
 * The OpenAI-compatible chat completions API: POST {base}/chat/completions.
 * A stream is Server-Sent Events: each event's data is a JSON chunk whose
 * choices[0].delta.content carries text and whose choices[0].finish_reason
 * says why it ended; with stream_options.include_usage a last chunk has
 * "usage" and no choices; "data: [DONE]" ends it. An "error" object in an
 * event is the server failing mid-answer.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

/* What a chunk, or a whole answer, is read for. */
enum {
	CHOICES,
	CHOICE,
	DELTA,
	MESSAGE,
	FINISH,
	ERROR,
	ERROR_MESSAGE,
	USAGE,
	PROMPT_TOKENS,
	COMPLETION_TOKENS,
	MODEL,
	NPICKS
};

static const char *const picks[NPICKS] = {
	[CHOICES] = "choices",
	[CHOICE] = "choices.0",
	[DELTA] = "choices.0.delta.content",
	[MESSAGE] = "choices.0.message.content",
	[FINISH] = "choices.0.finish_reason",
	[ERROR] = "error",
	[ERROR_MESSAGE] = "error.message",
	[USAGE] = "usage",
	[PROMPT_TOKENS] = "usage.prompt_tokens",
	[COMPLETION_TOKENS] = "usage.completion_tokens",
	[MODEL] = "model",
};

/* One chunk of a stream (text at DELTA), or the whole answer (text at
 * MESSAGE). */
static af_err read_answer(chat_call *c, const char *json, size_t len,
			  int text_at)
{
	af_json_pick v[NPICKS];
	af_err err = af__chat_read(c, json, len, v);

	if (err == AF_OK)
		err = af__chat_server_error(c, &v[ERROR], &v[ERROR_MESSAGE]);
	if (err != AF_OK)
		return err;
	if (v[MODEL].kind == AF_JSON_STRING)
		af__chat_set_model(c, v[MODEL].str);
	/* Usage is told only with a count in it, as before. */
	if (v[USAGE].kind == AF_JSON_OBJECT &&
	    (v[PROMPT_TOKENS].kind == AF_JSON_NUMBER ||
	     v[COMPLETION_TOKENS].kind == AF_JSON_NUMBER))
		af__chat_set_usage(c, af__chat_count(&v[PROMPT_TOKENS]),
				   af__chat_count(&v[COMPLETION_TOKENS]));
	if (v[CHOICE].kind == AF_JSON_ABSENT) {
		if (v[USAGE].kind == AF_JSON_OBJECT ||
		    v[CHOICES].kind == AF_JSON_ARRAY)
			return AF_OK;
		return af__chat_fail(c, AF_EPROTO,
				     "openai: an answer without choices");
	}
	if (v[FINISH].kind == AF_JSON_STRING)
		af__chat_set_finish(c, v[FINISH].str);
	if (v[text_at].kind == AF_JSON_STRING)
		return af__chat_delta(c, v[text_at].str, v[text_at].len);
	return AF_OK;
}

static int on_event(void *arg, const char *event, const char *data, size_t len)
{
	chat_call *c = arg;

	if (c->done_seen)
		return AF_OK; /* nothing counts after [DONE] */
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		c->done_seen = true;
		return AF_OK;
	}
	return read_answer(c, data, len, DELTA);
}

static af_err feed(chat_call *c, const char *buf, size_t len)
{
	int rc = af__sse_feed(&c->parse.sse, buf, len, on_event, c);

	if (rc != AF_OK && c->err == NULL)
		af__chat_fail(c, rc, "openai: reading the stream: %s",
			      af_strerror(rc));
	return rc;
}

static af_err end(chat_call *c)
{
	if (c->http_stream) {
		if (!c->done_seen)
			return af__chat_fail(c, AF_EPROTO,
					     "openai: the stream ended without "
					     "data: [DONE]");
		return AF_OK;
	}
	return read_answer(c, c->body != NULL ? c->body : "", c->body_len,
			   MESSAGE);
}

static af_err start(chat_call *c, cJSON *messages)
{
	cJSON *body = af__chat_body(c, messages);
	cJSON *options;

	if (body == NULL)
		goto nomem;
	if (c->http_stream) {
		options = cJSON_CreateObject();
		if (!af__chat_add(body, "stream_options", options) ||
		    !af__chat_add(options, "include_usage", cJSON_CreateTrue()))
			goto nomem;
		af__sse_init(&c->parse.sse, 0);
	}
	if (c->temperature >= 0 &&
	    !af__chat_add(body, "temperature",
			  cJSON_CreateNumber(c->temperature)))
		goto nomem;
	if (c->max_tokens > 0 &&
	    !af__chat_add(body, "max_tokens",
			  cJSON_CreateNumber(c->max_tokens)))
		goto nomem;
	return af__chat_post(c, "/chat/completions", body);
nomem:
	cJSON_Delete(body);
	return af__chat_fail(c, AF_ENOMEM, "openai: out of memory");
}

static void release(chat_call *c)
{
	if (c->http_stream)
		af__sse_free(&c->parse.sse);
}

const chat_provider chat__openai = {
	.name = "openai",
	.default_base_url = "https://api.openai.com/v1",
	.default_model = "gpt-4o-mini",
	.picks = picks,
	.npicks = NPICKS,
	.start = start,
	.feed = feed,
	.end = end,
	.release = release,
};
