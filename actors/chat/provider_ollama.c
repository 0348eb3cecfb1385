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

static af_err read_line_object(chat_call *c, json_t *obj)
{
	json_t *err = json_object_get(obj, "error");
	json_t *text = json_object_get(json_object_get(obj, "message"),
				       "content");
	af_err rc = AF_OK;

	if (!json_is_object(obj))
		return af__chat_fail(c, AF_EPROTO,
				     "ollama: an answer that is not an object");
	if (err != NULL && !json_is_null(err)) {
		const char *msg = json_is_string(err)
					  ? json_string_value(err)
					  : json_string_value(json_object_get(
						    err, "message"));

		return af__chat_fail(c, AF_EREMOTE,
				     "ollama: error in the stream: %s",
				     msg != NULL ? msg : "(no message)");
	}
	af__chat_set_model(c, json_string_value(json_object_get(obj, "model")));
	if (json_is_string(text))
		rc = af__chat_delta(c, json_string_value(text),
				    json_string_length(text));
	if (rc == AF_OK && json_is_true(json_object_get(obj, "done"))) {
		json_t *p = json_object_get(obj, "prompt_eval_count");
		json_t *k = json_object_get(obj, "eval_count");
		const char *reason =
			json_string_value(json_object_get(obj, "done_reason"));

		c->done_seen = true;
		af__chat_set_finish(c, reason != NULL ? reason : "stop");
		if (json_is_integer(p) || json_is_integer(k))
			af__chat_set_usage(c, json_integer_value(p),
					   json_integer_value(k));
	}
	return rc;
}

static int on_line(void *arg, const char *line, size_t len)
{
	chat_call *c = arg;
	json_error_t jerr;
	json_t *obj;
	af_err err;

	if (c->done_seen)
		return AF_OK;
	obj = json_loadb(line, len, 0, &jerr);
	if (obj == NULL)
		return af__chat_fail(c, AF_EPROTO,
				     "ollama: malformed JSON in the stream: %s",
				     jerr.text);
	err = read_line_object(c, obj);
	json_decref(obj);
	return err;
}

static af_err feed(chat_call *c, const char *buf, size_t len)
{
	int rc = af__ndjson_feed(&c->parse.ndjson, buf, len, on_line, c);

	if (rc != AF_OK && c->err[0] == '\0')
		af__chat_fail(c, rc, "ollama: reading the stream: %s",
			      af_strerror(rc));
	return rc;
}

static af_err end(chat_call *c)
{
	int rc;

	if (c->http_stream) {
		rc = af__ndjson_finish(&c->parse.ndjson, on_line, c);
		if (rc != AF_OK && c->err[0] == '\0')
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

static af_err start(chat_call *c, const json_t *messages)
{
	json_t *body = json_object();
	json_t *options = json_object();
	char *text;
	af_err err;

	if (body == NULL || options == NULL) {
		json_decref(body);
		json_decref(options);
		return AF_ENOMEM;
	}
	json_object_set_new(body, "model", json_string(c->model));
	json_object_set(body, "messages", (json_t *)messages);
	json_object_set_new(body, "stream", json_boolean(c->http_stream));
	if (c->temperature >= 0)
		json_object_set_new(options, "temperature",
				    json_real(c->temperature));
	if (c->max_tokens > 0)
		json_object_set_new(options, "num_predict",
				    json_integer(c->max_tokens));
	if (json_object_size(options) > 0)
		json_object_set(body, "options", options);
	json_decref(options);
	if (c->http_stream)
		af__ndjson_init(&c->parse.ndjson, 0);
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		return af__chat_fail(c, AF_ENOMEM, "ollama: out of memory");
	err = af__chat_http_start(c, "/api/chat", text, strlen(text));
	free(text);
	return err;
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
