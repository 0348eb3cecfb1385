/*
 * Ollama's native chat API: POST {base}/api/chat. A stream is
 * newline-delimited JSON: each line's message.content carries text, and
 * the last has "done": true with done_reason and the token counts
 * (prompt_eval_count, eval_count). An {"error": ...} line is the server
 * failing mid-answer. With "stream": false the whole answer is one object
 * of the same shape.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"

static af_err read_line_object(chat_call *c, const cJSON *obj)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(obj, "error");
	const char *text = af__json_str(
		cJSON_GetObjectItemCaseSensitive(obj, "message"), "content");
	af_err rc = AF_OK;

	if (!cJSON_IsObject(obj))
		return af__chat_fail(c, AF_EPROTO,
				     "ollama: an answer that is not an object");
	if (err != NULL && !cJSON_IsNull(err)) {
		const char *msg = cJSON_IsString(err)
					  ? err->valuestring
					  : af__json_str(err, "message");

		return af__chat_fail(c, AF_EREMOTE,
				     "ollama: error in the stream: %s",
				     msg != NULL ? msg : "(no message)");
	}
	af__chat_set_model(c, af__json_str(obj, "model"));
	if (text != NULL)
		rc = af__chat_delta(c, text, strlen(text));
	if (rc == AF_OK &&
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "done"))) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(
			obj, "prompt_eval_count");
		const cJSON *k =
			cJSON_GetObjectItemCaseSensitive(obj, "eval_count");
		const char *reason = af__json_str(obj, "done_reason");

		c->done_seen = true;
		af__chat_set_finish(c, reason != NULL ? reason : "stop");
		if (cJSON_IsNumber(p) || cJSON_IsNumber(k))
			af__chat_set_usage(c, (int64_t)cJSON_GetNumberValue(p),
					   (int64_t)cJSON_GetNumberValue(k));
	}
	return rc;
}

static int on_line(void *arg, const char *line, size_t len)
{
	chat_call *c = arg;
	const char *why;
	cJSON *obj;
	af_err err;

	if (c->done_seen)
		return AF_OK;
	obj = af__json_parse(line, len, &why);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "ollama: malformed JSON in the stream: %s",
				     why);
	err = read_line_object(c, obj);
	cJSON_Delete(obj);
	return err;
}

static af_err feed(chat_call *c, const char *buf, size_t len)
{
	int rc = af__ndjson_feed(&c->parse.ndjson, buf, len, on_line, c);

	if (rc != AF_OK && c->err == NULL)
		af__chat_fail(c, rc, "ollama: reading the stream: %s",
			      af_strerror(rc));
	return rc;
}

static af_err end(chat_call *c)
{
	int rc;

	if (c->http_stream) {
		rc = af__ndjson_finish(&c->parse.ndjson, on_line, c);
		if (rc != AF_OK && c->err == NULL)
			af__chat_fail(c, rc, "ollama: reading the stream: %s",
				      af_strerror(rc));
		if (rc != AF_OK)
			return rc;
	} else {
		rc = on_line(c, c->body != NULL ? c->body : "", c->body_len);
		if (rc != AF_OK)
			return rc;
	}
	if (!c->done_seen)
		return af__chat_fail(c, AF_EPROTO,
				     "ollama: the answer ended without "
				     "\"done\": true");
	return AF_OK;
}

static af_err start(chat_call *c, cJSON *messages)
{
	cJSON *body = af__chat_body(c, messages);
	cJSON *options;

	if (body == NULL)
		goto nomem;
	if (c->temperature >= 0 || c->max_tokens > 0) {
		options = cJSON_AddObjectToObject(body, "options");
		if (options == NULL ||
		    (c->temperature >= 0 &&
		     cJSON_AddNumberToObject(options, "temperature",
					     c->temperature) == NULL) ||
		    (c->max_tokens > 0 &&
		     cJSON_AddNumberToObject(options, "num_predict",
					     c->max_tokens) == NULL))
			goto nomem;
	}
	if (c->http_stream)
		af__ndjson_init(&c->parse.ndjson, 0);
	return af__chat_post(c, "/api/chat", body);
nomem:
	cJSON_Delete(body);
	return af__chat_fail(c, AF_ENOMEM, "ollama: out of memory");
}

static void release(chat_call *c)
{
	if (c->http_stream)
		af__ndjson_free(&c->parse.ndjson);
}

const chat_provider chat__ollama = {
	.name = "ollama",
	.default_base_url = "http://127.0.0.1:11434",
	.default_model = "llama3.2",
	.start = start,
	.feed = feed,
	.end = end,
	.release = release,
};
