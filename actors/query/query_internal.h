/*
 * The query actor's parts, shared by its files:
 *   query.c    the actor: config, requests, a query's life (retrieval,
 *              answer, failure, cancel) and the reaping of ended queries;
 *   sources.c  the retrieved nodes: reading the retrieval actor's reply,
 *              packing them as source nodes with their excerpts;
 *   synth.c    the response modes: the chat calls (and the gather of them
 *              for tree_summarize) that write the answer;
 *   relay.c    the answer's text streamed to a stream_query's requester,
 *              held in order while its credit window is full;
 *   prompt.c   templates and context packing (prompt.h).
 *
 * All of it runs on the query actor's thread.
 */
#ifndef AF_QUERY_INTERNAL_H
#define AF_QUERY_INTERNAL_H

#include <actorflow/actorflow.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prompt.h"

typedef struct query_actor query_actor;
typedef struct query query;

typedef enum response_mode {
	MODE_COMPACT,
	MODE_REFINE,
	MODE_TREE,
	MODE_NO_TEXT
} response_mode;

/* One retrieved node, copied out of the retrieval actor's reply. */
typedef struct qnode {
	char *id;
	char *doc_id;
	char *text; /* NUL-terminated; text_len bytes */
	size_t text_len;
	void *metadata; /* its encoded msgpack map; NULL: none */
	size_t metadata_len;
	double score;
} qnode;

/* A piece of the answer waiting for the requester's credit: the encoded
 * payload of one chunk. */
typedef struct held_chunk {
	void *data;
	size_t len;
} held_chunk;

struct query {
	query_actor *qa;
	af_pending *req; /* NULL once answered or given up */
	char *question;
	response_mode mode;
	bool stream;  /* the requester takes the answer as a stream */
	bool closed;  /* ended: waiting to be reaped */
	uint64_t sub; /* the retrieval, chat or gather request; 0: none */
	qnode *nodes;
	size_t nnodes;
	/* synth.c: the contexts of the current step, the next to send, the
	 * answer so far, and for tree_summarize the texts of this level. */
	af__packs packs;
	size_t next;
	char *answer;
	char **level;
	size_t nlevel;
	unsigned depth;
	/* relay.c: chunks held while the requester's window is full, and
	 * the end (or error) due after them. */
	held_chunk *held;
	size_t held_head;
	size_t held_count;
	size_t held_cap;
	bool end_due;
	int err_due; /* an error to send after the held chunks; 0: none */
	char *err_text;
	query *prev;
	query *next_q;
};

struct query_actor {
	/* The config, its strings copied. */
	char *retriever;
	char *chat;
	char *gather;
	char *mode;
	char *qa_template;
	char *refine_template;
	char *summary_template;
	char *system_prompt;
	char *empty_response;
	int top_k;
	response_mode response_mode;
	size_t context_words;
	int64_t timeout_ms;
	size_t excerpt_bytes;
	af_payload *out; /* scratch writer for requests and answers */
	query *live;
	query *dead; /* ended, freed on the next turn */
	bool reap_armed;
};

/* ---- query.c ----------------------------------------------------------- */

/* The deadline of the next sub-request: the config's timeout or the
 * query's remaining time, whichever is less. False when the query's
 * deadline has passed. */
bool af__query_sub_timeout(const query *q, int64_t *ms);
/* The answer is complete (q->answer for a plain reply; the text was
 * streamed otherwise): answers with the source nodes, or ends the stream
 * once the held chunks are sent, then closes q. */
void af__query_succeed(af_ctx *ctx, query *q);
/* Fails q with code and a printf-style message (after the held chunks of
 * a stream), then closes q. Does nothing to a query already ended. */
void af__query_fail(af_ctx *ctx, query *q, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
/* Fails q with a sub-request's outcome: its code, and "prefix: " before
 * the reply's error text (or af_strerror(status) without a reply). */
void af__query_fail_sub(af_ctx *ctx, query *q, const char *prefix, int status,
			af_msg *reply);
/* Ends q: cancels its sub-request and hands it to the reaper. */
void af__query_close(af_ctx *ctx, query *q);

/* ---- sources.c --------------------------------------------------------- */

/* Reads the retrieval actor's reply {"nodes": [...]} into q->nodes.
 * AF_OK; AF_EPROTO with why (a reply of another shape); AF_ENOMEM. */
af_err af__sources_read(query *q, af_msg *reply, char *why, size_t why_len);
/* Packs "source_nodes": [...] (key and array) into p. */
af_err af__sources_pack(const query *q, af_payload *p);
/* The length of the first at most max of len bytes of s, cut so that no
 * UTF-8 sequence is split. */
size_t af__excerpt_len(const char *s, size_t len, size_t max);
/* Frees q's nodes. */
void af__sources_free(query *q);

/* ---- synth.c ----------------------------------------------------------- */

/* The nodes are in: writes the answer the way q->mode says, calling
 * af__query_succeed or af__query_fail in the end. */
void af__synth_start(af_ctx *ctx, query *q);
/* Frees what the synthesis holds. */
void af__synth_free(query *q);

/* ---- relay.c ----------------------------------------------------------- */

/* Sends the chunk whose encoded payload is the len bytes at data to the
 * requester, or holds a copy behind chunks already held. AF_OK, or
 * AF_ENOMEM. A requester that went away is not an error: its cancel hook
 * ends q. */
af_err af__relay_chunk(af_ctx *ctx, query *q, const void *data, size_t len);
/* Sends a chunk {"delta": text}. As af__relay_chunk. */
af_err af__relay_text(af_ctx *ctx, query *q, const char *text, size_t len);
/* True while chunks are held: the end must wait for them. */
bool af__relay_busy(const query *q);
/* Frees the held chunks. */
void af__relay_free(query *q);

#endif
