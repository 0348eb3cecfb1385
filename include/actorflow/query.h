/*
 * actorflow: the query actor, aquery for C: retrieve, then synthesize.
 *
 * The query actor answers a question from documents: it asks a retrieval
 * actor for the chunks that bear on it, builds prompts from them and has a
 * chat actor write the answer, which it returns (or streams) together with
 * its source nodes. It is LlamaIndex's query engine (retriever + response
 * synthesizer) as an actor. Everything it waits for, it waits for by
 * message: its loop never blocks, and it serves many queries at once.
 *
 *   af_spawn(sys, "retrieval", &af_retrieval_ops, &rcfg, NULL);
 *   af_spawn(sys, "chat", &af_chat_ops, &ccfg, NULL);
 *   af_spawn(sys, "gather", &af_gather_ops, NULL, NULL);
 *   af_query_config q;
 *   af_query_config_init(&q);
 *   af_spawn(sys, "query", &af_query_ops, &q, NULL);
 *
 * The actors it uses are named by address in its config, so they may live
 * in other processes.
 *
 * Response modes (how the answer is written from the retrieved chunks):
 *   "compact"        (default) pack as many chunks as fit context_words
 *                    into each chat call; when they need several calls,
 *                    each later call refines the answer so far with the
 *                    next pack.
 *   "refine"         one chat call per chunk, in rank order: the first
 *                    answers from the best chunk, each next one refines
 *                    that answer with the next chunk.
 *   "tree_summarize" pack the chunks into groups that fit context_words
 *                    and summarise every group at once through the gather
 *                    actor (as many chat calls in flight as groups), then
 *                    summarise the summaries the same way until one call
 *                    holds them all; that last call gives the answer.
 *   "no_text"        retrieve only: no chat call, an empty response.
 * Only the last chat call of a query is streamed to a stream_query's
 * requester; the calls before it are plain chat requests. A chunk longer
 * than context_words is cut at word boundaries into pieces that fit. When
 * the retrieval finds no node, no chat call is made: the response is the
 * config's empty_response (streamed as one delta to a stream_query), as
 * LlamaIndex answers "Empty Response"; asking a model with no context
 * invites an answer from outside the documents.
 *
 * Prompts: the built-in templates fence the context between separator
 * lines and end with "Query: <question>" and "Answer:"; the refine
 * template puts the answer so far on an "Existing answer:" line. That is
 * the shape the chat actor's offline extractive provider reads, and any
 * model follows it. Placeholders: {context_str} (the packed chunk texts,
 * separated by blank lines), {query_str}, and in the refine template
 * {existing_answer}; values are put in as they are.
 *
 * Requests (msgpack maps):
 *   query, stream_query  {"query": str, "top_k": int, "mode": str (the
 *                        retrieval mode), "response_mode": str}; every
 *                        field but query is optional (defaults from the
 *                        config; top_k and mode are left to the retrieval
 *                        actor when the config gives none either).
 * Replies:
 *   query          {"response": str, "source_nodes": [source, ...]}
 *   stream_query   chunks {"delta": str}, then the end {"source_nodes":
 *                  [source, ...]}. A requester that did not ask for a
 *                  stream gets the reply of query.
 *   where source = {"id": str, "doc_id": str ("" when the retrieval
 *                   actor gave none), "score": float,
 *                   "text": str (the chunk's text, cut to at most
 *                   excerpt_bytes bytes on a UTF-8 boundary),
 *                   "metadata": {...} (the retrieval actor's map, as its
 *                   bytes came; {} when it gave none)}, in the
 *                   retrieval actor's order.
 * Errors:
 *   AF_EINVAL     not a map, no query, an empty one, a field of the
 *                 wrong type, top_k < 1, an unknown response_mode
 *   AF_ENOTSUP    a request of another type
 *   other codes   the retrieval or chat actor's error, with its code and
 *                 its message after "retrieve: " or "chat: " (AF_ETIMEDOUT,
 *                 AF_EPEERDOWN, AF_EHTTP, ...); the gather actor's own
 *                 errors after "gather: "; AF_EPROTO "retrieve: ..." for a
 *                 retrieval reply of the wrong shape
 * A stream_query that fails after some deltas ends with the error after
 * them: never a silent end. Deltas are never dropped or reordered: while
 * the requester's credit window is full they are held, in order.
 * Each retrieval, chat and gather request of a query gets timeout_ms, or
 * the query's own remaining time when that is less. A cancel, or the
 * requester going away (its deadline passing included), cancels the
 * retrieval, chat or gather request of that query.
 */
#ifndef ACTORFLOW_QUERY_H
#define ACTORFLOW_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The query actor's ops; its config is an af_query_config. */
extern const af_actor_ops af_query_ops;

typedef struct af_query_config {
	/* Addresses of the actors it uses; NULL: "retrieval", "chat",
	 * "gather". */
	const char *retriever;
	const char *chat;
	const char *gather;
	int top_k;        /* 0: the retrieval actor's default */
	const char *mode; /* retrieval mode; NULL: the retrieval actor's */
	/* "compact", "refine", "tree_summarize" or "no_text"; NULL:
	 * "compact". */
	const char *response_mode;
	/* Words of context one chat call may carry; 0: 3000. */
	int context_words;
	/* Prompt templates; NULL: the built-in ones. {context_str} and
	 * {query_str} are replaced in each; the refine template also takes
	 * {existing_answer}. A template without {query_str} or
	 * {context_str} (or a refine template without {existing_answer}) is
	 * refused at spawn with AF_EINVAL. Copied at spawn. */
	const char *qa_template;
	const char *refine_template;
	const char *summary_template;
	/* A system message sent before every prompt; NULL: none. */
	const char *system_prompt;
	/* The deadline of each retrieval and chat request, unless the
	 * query's own deadline is nearer; 0: 120 s. */
	int64_t timeout_ms;
	/* Longest text of a source node in an answer, in bytes; 0: 1000. */
	size_t excerpt_bytes;
	/* The response when the retrieval finds no node; NULL: "No context
	 * was found to answer the query." */
	const char *empty_response;
} af_query_config;

/* Fills c with the defaults (every field 0 or NULL). Any thread. The
 * strings of a config are copied at spawn; an unknown response_mode, a
 * negative top_k, context_words or timeout_ms, or a bad template fails
 * the spawn with AF_EINVAL. */
void af_query_config_init(af_query_config *c);

#ifdef __cplusplus
}
#endif
#endif
