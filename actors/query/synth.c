/*
 * The response modes: how the answer is written from the retrieved nodes,
 * as a chain of chat calls, each sent from the continuation of the one
 * before, so the actor never waits for one.
 *
 * compact and refine are one sequence: the node texts are packed into
 * contexts (as many whole texts as fit context_words for compact, one
 * each for refine); the first context is asked with the QA template, each
 * later one with the refine template and the answer so far.
 *
 * tree_summarize works by levels: the texts of a level (the nodes', then
 * the summaries of the level before) are packed into contexts; when there
 * are several, all of them are summarised at once by one "gather" request
 * to the gather actor whose items are "chat" requests, and their answers
 * make the next level; when one context holds the whole level, a last
 * chat call on it gives the answer. A level that packs into no fewer
 * contexts than it has texts (summaries longer than the budget) would
 * never end: it, and any level past TREE_MAX_DEPTH, is asked in one call
 * whatever its size.
 *
 * Only the last call of a query is streamed to a streaming requester.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query_internal.h"

#define TREE_MAX_DEPTH 8

static void step(af_ctx *ctx, query *q);
static void tree_level(af_ctx *ctx, query *q);

/* {"messages": [system?, user]} for prompt into p. */
static af_err pack_chat(const query_actor *qa, af_payload *p,
			const char *prompt)
{
	af_pack_map(p, 1);
	af_pack_str(p, "messages");
	af_pack_array(p, qa->system_prompt != NULL ? 2 : 1);
	if (qa->system_prompt != NULL) {
		af_pack_map(p, 2);
		af_pack_str(p, "role");
		af_pack_str(p, "system");
		af_pack_str(p, "content");
		af_pack_str(p, qa->system_prompt);
	}
	af_pack_map(p, 2);
	af_pack_str(p, "role");
	af_pack_str(p, "user");
	af_pack_str(p, "content");
	return af_pack_str(p, prompt);
}

/* ---- chat calls -------------------------------------------------------- */

static void on_chat_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	query *q = arg;
	const void *data;
	size_t len;
	af_err err;

	if (q->closed)
		return;
	af_msg_payload_raw(chunk, &data, &len);
	err = af__relay_chunk(ctx, q, data, len);
	if (err != AF_OK)
		af__query_fail(ctx, q, err, "query: relaying the answer: %s",
			       af_strerror(err));
}

static void on_chat_end(af_ctx *ctx, int status, af_msg *end, void *arg)
{
	query *q = arg;
	const af_value *content;
	const char *text;
	size_t len;
	af_err err;

	q->sub = 0;
	if (q->closed)
		return;
	if (status != AF_OK) {
		af__query_fail_sub(ctx, q, "chat", status, end);
		return;
	}
	/* A chat actor may answer a stream request with one plain reply (a
	 * user's actor, another process's): its content is the answer's
	 * one delta. */
	if (af_msg_kind(end) == AF_KIND_REPLY) {
		content = af_value_get(af_msg_payload(end), "content");
		if (af_value_str(content, &text, &len) != AF_OK) {
			af__query_fail(ctx, q, AF_EPROTO,
				       "chat: the reply has no \"content\" "
				       "string");
			return;
		}
		if (len > 0 &&
		    (err = af__relay_text(ctx, q, text, len)) != AF_OK) {
			af__query_fail(ctx, q, err,
				       "query: relaying the answer: %s",
				       af_strerror(err));
			return;
		}
	}
	af__query_succeed(ctx, q);
}

static void on_chat_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	query *q = arg;
	const af_value *content;
	char *text;

	q->sub = 0;
	if (q->closed)
		return;
	if (status != AF_OK) {
		af__query_fail_sub(ctx, q, "chat", status, reply);
		return;
	}
	content = af_value_get(af_msg_payload(reply), "content");
	if (af_value_type(content) != AF_TYPE_STR) {
		af__query_fail(ctx, q, AF_EPROTO,
			       "chat: the reply has no \"content\" string");
		return;
	}
	text = af_value_strdup(content);
	if (text == NULL) {
		af__query_fail(ctx, q, AF_ENOMEM, "query: out of memory");
		return;
	}
	free(q->answer);
	q->answer = text;
	q->next++;
	step(ctx, q);
}

/* Sends prompt (taken: freed here) to the chat actor; the last call of a
 * streamed query as a stream. */
static void send_chat(af_ctx *ctx, query *q, char *prompt, bool last)
{
	query_actor *qa = q->qa;
	af_payload *p = qa->out;
	int64_t ms;
	af_err err;

	if (prompt == NULL) {
		af__query_fail(ctx, q, AF_ENOMEM, "query: out of memory");
		return;
	}
	if (!af__query_sub_timeout(q, &ms)) {
		free(prompt);
		af__query_fail(ctx, q, AF_ETIMEDOUT,
			       "query: the deadline passed before the answer");
		return;
	}
	af_payload_reset(p);
	pack_chat(qa, p, prompt);
	free(prompt);
	if (last && q->stream)
		err = af_request_stream(ctx, qa->chat, "stream_chat", p, ms,
					on_chat_chunk, on_chat_end, q, &q->sub);
	else
		err = af_request(ctx, qa->chat, "chat", p, ms, on_chat_reply, q,
				 &q->sub);
	if (err != AF_OK)
		af__query_fail(ctx, q, err, "chat: cannot send to '%s': %s",
			       qa->chat, af_strerror(err));
}

/* Sends the next context of the sequence, or answers after the last. */
static void step(af_ctx *ctx, query *q)
{
	query_actor *qa = q->qa;
	const char *tmpl;

	if (q->next >= q->packs.n) {
		af__query_succeed(ctx, q);
		return;
	}
	if (q->mode == MODE_TREE)
		tmpl = qa->summary_template;
	else if (q->next == 0)
		tmpl = qa->qa_template;
	else
		tmpl = qa->refine_template;
	send_chat(ctx, q,
		  af__prompt_fill(tmpl, q->packs.text[q->next], q->question,
				  q->answer),
		  q->next + 1 == q->packs.n);
}

/* ---- tree_summarize ---------------------------------------------------- */

static void free_level(query *q)
{
	for (size_t i = 0; i < q->nlevel; i++)
		free(q->level[i]);
	free(q->level);
	q->level = NULL;
	q->nlevel = 0;
}

/* The gather's results become the next level: every summary's text, or
 * the first failed item's error. */
static void on_gather_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	query *q = arg;
	const af_value *results;
	char **level;
	size_t n;

	q->sub = 0;
	if (q->closed)
		return;
	if (status != AF_OK) {
		af__query_fail_sub(ctx, q, "gather", status, reply);
		return;
	}
	results = af_value_get(af_msg_payload(reply), "results");
	n = af_value_len(results);
	if (af_value_type(results) != AF_TYPE_ARRAY || n != q->packs.n) {
		af__query_fail(ctx, q, AF_EPROTO,
			       "gather: the reply has no \"results\" for every "
			       "summary");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const af_value *slot = af_value_at(results, i);
		const af_value *error = af_value_get(slot, "error");
		const char *text = "failed";
		size_t len = 6;
		int64_t code;

		if (af_value_get_bool(slot, "ok", false))
			continue;
		af_value_str(af_value_get(error, "message"), &text, &len);
		code = af_value_get_int(error, "code", AF_EREMOTE);
		/* A failed item always fails the query, whatever its code
		 * says: 0 (AF_OK) would read as success. */
		af__query_fail(ctx, q,
			       code != AF_OK && code >= INT_MIN &&
					       code <= INT_MAX
				       ? (int)code
				       : AF_EREMOTE,
			       "chat: %.*s", (int)len, text);
		return;
	}
	level = calloc(n, sizeof(*level));
	if (level == NULL) {
		af__query_fail(ctx, q, AF_ENOMEM, "query: out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const af_value *value =
			af_value_get(af_value_at(results, i), "value");
		const af_value *content = af_value_get(value, "content");
		level[i] = af_value_type(content) == AF_TYPE_STR
				   ? af_value_strdup(content)
				   : strdup("");
		if (level[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(level[j]);
			free(level);
			af__query_fail(ctx, q, AF_ENOMEM,
				       "query: out of memory");
			return;
		}
	}
	free_level(q);
	q->level = level;
	q->nlevel = n;
	q->depth++;
	tree_level(ctx, q);
}

/* One "gather" request summarising every context of q->packs at once. */
static void send_gather(af_ctx *ctx, query *q)
{
	query_actor *qa = q->qa;
	af_payload *p = qa->out;
	int64_t ms;
	af_err err;

	if (!af__query_sub_timeout(q, &ms)) {
		af__query_fail(ctx, q, AF_ETIMEDOUT,
			       "query: the deadline passed before the answer");
		return;
	}
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "item_timeout_ms");
	af_pack_uint(p, (uint64_t)ms);
	af_pack_str(p, "items");
	af_pack_array(p, (uint32_t)q->packs.n);
	for (size_t i = 0; i < q->packs.n; i++) {
		char *prompt =
			af__prompt_fill(qa->summary_template, q->packs.text[i],
					q->question, NULL);
		if (prompt == NULL) {
			af__query_fail(ctx, q, AF_ENOMEM,
				       "query: out of memory");
			return;
		}
		af_pack_map(p, 3);
		af_pack_str(p, "to");
		af_pack_str(p, qa->chat);
		af_pack_str(p, "type");
		af_pack_str(p, "chat");
		af_pack_str(p, "payload");
		pack_chat(qa, p, prompt);
		free(prompt);
	}
	err = af_request(ctx, qa->gather, "gather", p, ms, on_gather_reply, q,
			 &q->sub);
	if (err != AF_OK)
		af__query_fail(ctx, q, err, "gather: cannot send to '%s': %s",
			       qa->gather, af_strerror(err));
}

static void tree_level(af_ctx *ctx, query *q)
{
	size_t n = q->depth == 0 ? q->nnodes : q->nlevel;
	const char **text = malloc((n ? n : 1) * sizeof(*text));
	size_t *len = malloc((n ? n : 1) * sizeof(*len));
	af_err err = AF_ENOMEM;

	af__packs_free(&q->packs);
	if (text != NULL && len != NULL) {
		for (size_t i = 0; i < n; i++) {
			text[i] =
				q->depth == 0 ? q->nodes[i].text : q->level[i];
			len[i] = q->depth == 0 ? q->nodes[i].text_len
					       : strlen(q->level[i]);
		}
		err = af__prompt_pack(text, len, n, q->qa->context_words, false,
				      &q->packs);
		/* Summaries that do not shrink, or too many levels: the
		 * rest goes in one call. */
		if (err == AF_OK && q->packs.n > 1 && q->depth > 0 &&
		    (q->packs.n >= n || q->depth >= TREE_MAX_DEPTH)) {
			af__packs_free(&q->packs);
			err = af__prompt_pack(text, len, n, SIZE_MAX, false,
					      &q->packs);
		}
	}
	free(text);
	free(len);
	if (err != AF_OK) {
		af__query_fail(ctx, q, err, "query: out of memory");
		return;
	}
	q->next = 0;
	if (q->packs.n <= 1)
		step(ctx, q);
	else
		send_gather(ctx, q);
}

/* ---- the start --------------------------------------------------------- */

void af__synth_start(af_ctx *ctx, query *q)
{
	query_actor *qa = q->qa;
	const char **text;
	size_t *len;
	af_err err = AF_ENOMEM;

	if (q->mode == MODE_NO_TEXT) {
		af__query_succeed(ctx, q);
		return;
	}
	if (q->nnodes == 0) {
		/* Nothing to answer from: a fixed answer, no chat call. */
		q->answer = strdup(qa->empty_response);
		if (q->answer == NULL) {
			af__query_fail(ctx, q, AF_ENOMEM,
				       "query: out of memory");
			return;
		}
		if (q->stream)
			err = af__relay_text(ctx, q, q->answer,
					     strlen(q->answer));
		else
			err = AF_OK;
		if (err != AF_OK)
			af__query_fail(ctx, q, err, "query: %s",
				       af_strerror(err));
		else
			af__query_succeed(ctx, q);
		return;
	}
	if (q->mode == MODE_TREE) {
		tree_level(ctx, q);
		return;
	}
	text = malloc(q->nnodes * sizeof(*text));
	len = malloc(q->nnodes * sizeof(*len));
	if (text != NULL && len != NULL) {
		for (size_t i = 0; i < q->nnodes; i++) {
			text[i] = q->nodes[i].text;
			len[i] = q->nodes[i].text_len;
		}
		err = af__prompt_pack(text, len, q->nnodes, qa->context_words,
				      q->mode == MODE_REFINE, &q->packs);
	}
	free(text);
	free(len);
	if (err != AF_OK) {
		af__query_fail(ctx, q, err, "query: out of memory");
		return;
	}
	q->next = 0;
	step(ctx, q);
}

void af__synth_free(query *q)
{
	af__packs_free(&q->packs);
	free_level(q);
	free(q->answer);
	q->answer = NULL;
}
