/*
 * The mock server's whole-body answers, built with jansson: non-streamed
 * chat answers, embeddings and error bodies. Each returns a malloc'ed
 * NUL-terminated JSON text (the caller frees it) or NULL when out of
 * memory.
 */
#ifndef MOCKLLM_ANSWER_H
#define MOCKLLM_ANSWER_H

#include "mockllm_internal.h"

#include <jansson.h>

/* OpenAI's {"error":{"message":..,"type":..,"param":null,"code":null}} or
 * Ollama's {"error":".."}. */
char *answer_error(dialect d, const char *message, const char *type);

/* A whole chat answer: c->o.chunks chunks of text, usage figures and, as
 * c->o.fault asks, broken JSON (MOCKLLM_MALFORMED) or an error object
 * (MOCKLLM_ERROR_EVENT). */
char *answer_chat(dialect d, const conf *c, const char *model,
		  int prompt_tokens, unsigned id);

/* The words in a chat request's messages: its prompt_tokens. */
int answer_prompt_tokens(json_t *messages);

/* Embeddings of input (a string or an array of strings) with c's
 * dimension. Returns NULL and sets *bad (when input has another shape)
 * or not (out of memory). */
char *answer_embeddings(dialect d, const conf *c, const char *model,
			json_t *input, bool *bad);

#endif
