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

/* What a line, or the whole answer, is read for. */
enum {
	ERROR,
	ERROR_MESSAGE,
	CONTENT,
	MODEL,
	DONE,
	DONE_REASON,
	PROMPT_COUNT,
	EVAL_COUNT,
	NPICKS
};

static const char *const picks[NPICKS] = {
	[ERROR] = "error",
	[ERROR_MESSAGE] = "error.message",
	[CONTENT] = "message.content",
	[MODEL] = "model",
	[DONE] = "done",
	[DONE_REASON] = "done_reason",
	[PROMPT_COUNT] = "prompt_eval_count",
	[EVAL_COUNT] = "eval_count",
};

static int on_line(void *arg, const char *line, size_t len)
{
	chat_call *c = arg;
	af_json_pick v[NPICKS];
	af_err err;

	if (c->done_seen)
		return AF_OK;
	err = af__chat_read(c, line, len, v);
	if (err == AF_OK)
		err = af__chat_server_error(c, &v[ERROR], &v[ERROR_MESSAGE]);
	if (err != AF_OK)
		return err;
	if (v[MODEL].kind == AF_JSON_STRING)
		af__chat_set_model(c, v[MODEL].str);
	if (v[CONTENT].kind == AF_JSON_STRING) {
		err = af__chat_delta(c, v[CONTENT].str, v[CONTENT].len);
		if (err != AF_OK)
			return err;
	}
	if (v[DONE].kind == AF_JSON_TRUE) {
		c->done_seen = true;
		af__chat_set_finish(c, v[DONE_REASON].kind == AF_JSON_STRING
					       ? v[DONE_REASON].str
					       : "stop");
		if (v[PROMPT_COUNT].kind == AF_JSON_NUMBER ||
		    v[EVAL_COUNT].kind == AF_JSON_NUMBER)
			af__chat_set_usage(c, af__chat_count(&v[PROMPT_COUNT]),
					   af__chat_count(&v[EVAL_COUNT]));
	}
	return AF_OK;
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
	.picks = picks,
	.npicks = NPICKS,
	.start = start,
	.feed = feed,
	.end = end,
	.release = release,
};
