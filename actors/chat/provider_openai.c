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

static void read_usage(chat_call *c, const cJSON *usage)
{
	const cJSON *p =
		cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
	const cJSON *k =
		cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");

	if (cJSON_IsNumber(p) || cJSON_IsNumber(k))
		af__chat_set_usage(c, (int64_t)cJSON_GetNumberValue(p),
				   (int64_t)cJSON_GetNumberValue(k));
}

static af_err server_error(chat_call *c, const cJSON *err)
{
	const char *text = cJSON_IsString(err) ? err->valuestring
					       : af__json_str(err, "message");

	return af__chat_fail(c, AF_EREMOTE, "openai: error in the stream: %s",
			     text != NULL ? text : "(no message)");
}

/* One chunk object of a stream (delta_key "delta"), or the whole answer
 * (delta_key "message"). */
static af_err read_answer(chat_call *c, const cJSON *obj, const char *delta_key)
{
	static const char *const keys[] = {"choices", "error", "usage",
					   "model"};
	const char *const choice_keys[] = {delta_key, "finish_reason"};
	const cJSON *top[4];
	const cJSON *in_choice[2];
	const cJSON *choices, *err, *usage, *model, *choice;
	const char *text;

	if (!cJSON_IsObject(obj))
		return af__chat_fail(c, AF_EPROTO,
				     "openai: an answer that is not an object");
	/* Every chunk is read: its members are found in one walk. */
	af__json_members(obj, keys, top, 4);
	choices = top[0];
	err = top[1];
	usage = top[2];
	model = top[3];
	if (err != NULL && !cJSON_IsNull(err))
		return server_error(c, err);
	if (cJSON_IsString(model))
		af__chat_set_model(c, model->valuestring);
	if (cJSON_IsObject(usage))
		read_usage(c, usage);
	choice = cJSON_GetArrayItem(choices, 0);
	if (choice == NULL) {
		if (cJSON_IsObject(usage) || cJSON_IsArray(choices))
			return AF_OK;
		return af__chat_fail(c, AF_EPROTO,
				     "openai: an answer without choices");
	}
	af__json_members(choice, choice_keys, in_choice, 2);
	text = af__json_str(in_choice[0], "content");
	if (cJSON_IsString(in_choice[1]))
		af__chat_set_finish(c, in_choice[1]->valuestring);
	if (text != NULL)
		return af__chat_delta(c, text, strlen(text));
	return AF_OK;
}

static int on_event(void *arg, const char *event, const char *data, size_t len)
{
	chat_call *c = arg;
	const char *why;
	cJSON *obj;
	af_err err;

	if (c->done_seen)
		return AF_OK; /* nothing counts after [DONE] */
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		c->done_seen = true;
		return AF_OK;
	}
	obj = af__json_parse(data, len, &why);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "openai: malformed JSON in the stream: %s",
				     why);
	err = read_answer(c, obj, "delta");
	cJSON_Delete(obj);
	return err;
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
	const char *why;
	cJSON *obj;
	af_err err;

	if (c->http_stream) {
		if (!c->done_seen)
			return af__chat_fail(c, AF_EPROTO,
					     "openai: the stream ended without "
					     "data: [DONE]");
		return AF_OK;
	}
	obj = af__json_parse(c->body != NULL ? c->body : "", c->body_len, &why);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "openai: malformed JSON answer: %s", why);
	err = read_answer(c, obj, "message");
	cJSON_Delete(obj);
	return err;
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
	.start = start,
	.feed = feed,
	.end = end,
	.release = release,
};
