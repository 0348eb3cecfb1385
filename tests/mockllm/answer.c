/*
 * answer.c - whole-body JSON answers of the mock server (see answer.h).
 */
#define _GNU_SOURCE

#include "answer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Floats with 7 significant digits are a float's worth. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(7))

static char *dump(json_t *root)
{
	char *text = NULL;

	if (root != NULL)
		text = json_dumps(root, DUMP_FLAGS);
	json_decref(root);
	return text;
}

char *answer_error(dialect d, const char *message, const char *type)
{
	if (d == DIALECT_OLLAMA)
		return dump(json_pack("{s:s}", "error", message));
	return dump(json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message",
			      message, "type", type, "param", "code"));
}

static void created_at(char *out, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The prompt's token count as sent; with MOCKLLM_HUGE_NUMBER, 1e39. */
static json_t *prompt_count(const conf *c, int prompt_tokens)
{
	if (c->o.fault == MOCKLLM_HUGE_NUMBER)
		return json_real(1e39);
	return json_integer(prompt_tokens);
}

char *answer_chat(dialect d, const conf *c, const char *model,
		  int prompt_tokens, unsigned id)
{
	buf content = {0};
	json_t *root;
	char *text;
	char when[40];
	char idstr[40];
	json_t *count;

	if (c->o.fault == MOCKLLM_ERROR_EVENT)
		return answer_error(d, c->o.error_message, "server_error");
	for (int i = 0; i < c->o.chunks; i++)
		chunk_text(&content, c, i, false);
	buf_put(&content, "", 0);
	if (content.failed) {
		buf_free(&content);
		return NULL;
	}
	count = prompt_count(c, prompt_tokens);
	if (d == DIALECT_OPENAI) {
		snprintf(idstr, sizeof(idstr), "chatcmpl-mock-%u", id);
		root = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:{s:s,s:s},s:s}],"
				 "s:{s:o,s:i,s:i}}",
				 "id", idstr, "object", "chat.completion",
				 "created", (json_int_t)time(NULL), "model",
				 model, "choices", "index", 0, "message",
				 "role", "assistant", "content", content.data,
				 "finish_reason", "stop", "usage",
				 "prompt_tokens", count, "completion_tokens",
				 c->o.chunks, "total_tokens",
				 prompt_tokens + c->o.chunks);
	} else {
		created_at(when, sizeof(when));
		root = json_pack("{s:s,s:s,s:{s:s,s:s},s:b,s:s,s:i,s:i,s:o,s:i,"
				 "s:i,s:i}",
				 "model", model, "created_at", when, "message",
				 "role", "assistant", "content", content.data,
				 "done", 1, "done_reason", "stop",
				 "total_duration", 0, "load_duration", 0,
				 "prompt_eval_count", count,
				 "prompt_eval_duration", 0, "eval_count",
				 c->o.chunks, "eval_duration", 0);
	}
	buf_free(&content);
	text = dump(root);
	/* A broken body: the answer cut in the middle. */
	if (text != NULL && c->o.fault == MOCKLLM_MALFORMED)
		text[strlen(text) / 2] = '\0';
	return text;
}

static int text_words(json_t *content)
{
	size_t i;
	json_t *part;
	int n = 0;

	if (json_is_string(content))
		return word_count(json_string_value(content));
	/* OpenAI's content parts: [{"type":"text","text":"..."}, ...]. */
	json_array_foreach(content, i, part)
	{
		const char *t =
			json_string_value(json_object_get(part, "text"));

		if (t != NULL)
			n += word_count(t);
	}
	return n;
}

int answer_prompt_tokens(json_t *messages)
{
	size_t i;
	json_t *msg;
	int n = 0;

	json_array_foreach(messages, i, msg)
	{
		n += text_words(json_object_get(msg, "content"));
	}
	return n;
}

static json_t *vector(const char *text, int dim)
{
	float *v = malloc((size_t)dim * sizeof(*v));
	json_t *arr = json_array();

	if (v == NULL || arr == NULL)
		goto fail;
	embed_text(text, v, dim);
	for (int i = 0; i < dim; i++)
		if (json_array_append_new(arr, json_real(v[i])) != 0)
			goto fail;
	free(v);
	return arr;
fail:
	free(v);
	json_decref(arr);
	return NULL;
}

char *answer_embeddings(dialect d, const conf *c, const char *model,
			json_t *input, bool *bad)
{
	json_t *texts;
	json_t *list = json_array();
	json_t *root = NULL;
	json_t *t;
	size_t i;
	int words = 0;

	*bad = false;
	if (json_is_string(input)) {
		texts = json_pack("[O]", input);
	} else if (json_is_array(input) && json_array_size(input) > 0) {
		texts = json_incref(input);
	} else {
		*bad = true;
		texts = NULL;
	}
	if (texts == NULL || list == NULL)
		goto out;
	json_array_foreach(texts, i, t)
	{
		json_t *vec;

		if (!json_is_string(t)) {
			*bad = true;
			goto out;
		}
		words += word_count(json_string_value(t));
		vec = vector(json_string_value(t), c->o.embed_dim);
		if (vec == NULL)
			goto out;
		if (c->o.fault == MOCKLLM_HUGE_NUMBER &&
		    json_array_set_new(vec, 0, json_real(1e39)) != 0) {
			json_decref(vec);
			goto out;
		}
		if (d == DIALECT_OPENAI)
			vec = json_pack("{s:s,s:i,s:o}", "object", "embedding",
					"index", (int)i, "embedding", vec);
		if (vec == NULL || json_array_append_new(list, vec) != 0)
			goto out;
	}
	if (d == DIALECT_OPENAI)
		root = json_pack("{s:s,s:O,s:s,s:{s:i,s:i}}", "object", "list",
				 "data", list, "model", model, "usage",
				 "prompt_tokens", words, "total_tokens", words);
	else
		root = json_pack("{s:s,s:O,s:i,s:i,s:i}", "model", model,
				 "embeddings", list, "total_duration", 0,
				 "load_duration", 0, "prompt_eval_count",
				 words);
out:
	json_decref(texts);
	json_decref(list);
	return dump(root);
}
