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

static af_err read_usage(chat_call *c, json_t *usage)
{
	json_t *p = json_object_get(usage, "prompt_tokens");
	json_t *k = json_object_get(usage, "completion_tokens");

	if (json_is_integer(p) || json_is_integer(k))
		af__chat_set_usage(c, json_integer_value(p),
				   json_integer_value(k));
	return AF_OK;
}

static af_err server_error(chat_call *c, json_t *err)
{
	const char *text = json_is_string(err)
				   ? json_string_value(err)
				   : json_string_value(
					     json_object_get(err, "message"));

	return af__chat_fail(c, AF_EREMOTE, "openai: error in the stream: %s",
			     text != NULL ? text : "(no message)");
}

/* One chunk object of a stream, or the whole answer (delta_key "message"). */
static af_err read_answer(chat_call *c, json_t *obj, const char *delta_key)
{
	json_t *choices = json_object_get(obj, "choices");
	json_t *choice = json_array_get(choices, 0);
	json_t *err = json_object_get(obj, "error");
	json_t *usage = json_object_get(obj, "usage");
	json_t *text;
	json_t *reason;

	if (!json_is_object(obj))
		return af__chat_fail(c, AF_EPROTO,
				     "openai: an answer that is not an object");
	if (err != NULL && !json_is_null(err))
		return server_error(c, err);
	af__chat_set_model(c, json_string_value(json_object_get(obj, "model")));
	if (json_is_object(usage))
		read_usage(c, usage);
	if (choice == NULL) {
		if (json_is_object(usage) || json_is_array(choices))
			return AF_OK;
		return af__chat_fail(c, AF_EPROTO,
				     "openai: an answer without choices");
	}
	text = json_object_get(json_object_get(choice, delta_key), "content");
	reason = json_object_get(choice, "finish_reason");
	if (json_is_string(reason))
		af__chat_set_finish(c, json_string_value(reason));
	if (json_is_string(text))
		return af__chat_delta(c, json_string_value(text),
				      json_string_length(text));
	return AF_OK;
}

static int on_event(void *arg, const char *event, const char *data,
		    size_t len)
{
	chat_call *c = arg;
	json_error_t jerr;
	json_t *obj;
	af_err err;

	if (c->done_seen)
		return AF_OK; /* nothing counts after [DONE] */
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		c->done_seen = true;
		return AF_OK;
	}
	obj = json_loadb(data, len, 0, &jerr);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "openai: malformed JSON in the stream: %s",
				     jerr.text);
	err = read_answer(c, obj, "delta");
	json_decref(obj);
	return err;
}

static af_err feed(chat_call *c, const char *buf, size_t len)
{
	int rc = af__sse_feed(&c->parse.sse, buf, len, on_event, c);

	if (rc != AF_OK && c->err[0] == '\0')
		af__chat_fail(c, rc, "openai: reading the stream: %s",
			      af_strerror(rc));
	return rc;
}

static af_err end(chat_call *c)
{
	json_error_t jerr;
	json_t *obj;
	af_err err;

	if (c->http_stream) {
		if (!c->done_seen)
			return af__chat_fail(c, AF_EPROTO,
					     "openai: the stream ended without "
					     "data: [DONE]");
		return AF_OK;
	}
	obj = json_loadb(c->body != NULL ? c->body : "", c->body_len, 0,
			 &jerr);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "openai: malformed JSON answer: %s",
				     jerr.text);
	err = read_answer(c, obj, "message");
	json_decref(obj);
	return err;
}

static af_err start(chat_call *c, const json_t *messages)
{
	json_t *body = json_object();
	char *text;
	af_err err;

	if (body == NULL)
		return AF_ENOMEM;
	json_object_set_new(body, "model", json_string(c->model));
	json_object_set(body, "messages", (json_t *)messages);
	json_object_set_new(body, "stream", json_boolean(c->http_stream));
	if (c->http_stream) {
		json_object_set_new(body, "stream_options",
				    json_pack("{s:b}", "include_usage", 1));
		af__sse_init(&c->parse.sse, 0);
	}
	if (c->temperature >= 0)
		json_object_set_new(body, "temperature",
				    json_real(c->temperature));
	if (c->max_tokens > 0)
		json_object_set_new(body, "max_tokens",
				    json_integer(c->max_tokens));
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return af__chat_fail(c, AF_ENOMEM, "openai: out of memory");
	err = af__chat_http_start(c, "/chat/completions", text, strlen(text));
	free(text);
	return err;
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
	.start = start,
	.feed = feed,
	.end = end,
	.release = release,
};
