/*
 * The chat actor's parts, shared by its files:
 *   chat.c                 the actor: requests, a call's life, delivering
 *                          text as chunks or as one reply, cancel;
 *   provider_openai.c      the OpenAI-compatible API (SSE streams);
 *   provider_ollama.c      Ollama's native API (NDJSON streams);
 *   provider_extractive.c  the offline default (extractive.c answers);
 *   sse.c, ndjson.c        the incremental stream parsers;
 *   ../http/json.c         parsing servers' JSON, checking UTF-8.
 * HTTP goes through actors/http/, shared with other built-in actors.
 *
 * All of it runs on the chat actor's thread.
 */
#ifndef AF_CHAT_INTERNAL_H
#define AF_CHAT_INTERNAL_H

#include <actorflow/actorflow.h>
#include <actorflow/chat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../http/http.h"
#include "../http/json.h"
#include "../http/json_reader.h"
#include "ndjson.h"
#include "sse.h"

typedef struct chat_actor chat_actor;
typedef struct chat_call chat_call;
typedef struct chat_provider chat_provider;

/* A provider: how one API is asked and how its answers read. */
struct chat_provider {
	const char *name;
	const char *default_base_url;
	const char *default_model;
	/* The paths feed and end read in the server's JSON objects, one
	 * reader for them per actor (a->reader); none for npicks 0. */
	const char *const *picks;
	size_t npicks;
	/* Starts call c while its request is being handled, and takes
	 * messages (it frees them): an HTTP provider builds its body around
	 * them (af__chat_body) and starts the transfer (af__chat_post); an
	 * offline one answers at once through af__chat_delta and
	 * af__chat_finish. A non-AF_OK return answers the request with that
	 * code and c->err (the provider fills it). */
	af_err (*start)(chat_call *c, cJSON *messages);
	/* Bytes of a streamed 2xx body, split anywhere. AF_OK, or an error
	 * with c->err filled: the transfer is aborted and the call fails. */
	af_err (*feed)(chat_call *c, const char *buf, size_t len);
	/* The body ended cleanly: a stream must have seen its end marker; a
	 * whole answer (c->body) is read now. Calls chat__delta and fills
	 * the finish fields, or returns an error with c->err filled. */
	af_err (*end)(chat_call *c);
	/* Frees the parser state feed used. May be NULL. */
	void (*release)(chat_call *c);
};

extern const chat_provider chat__openai;
extern const chat_provider chat__ollama;
extern const chat_provider chat__extractive;

struct chat_actor {
	af_ctx *ctx;
	const chat_provider *provider;
	char *base_url; /* without a trailing '/' */
	char *url;      /* base_url and the path posted to last; NULL: none */
	char *model;
	char *api_key; /* NULL: none */
	double temperature;
	int max_tokens;
	int64_t timeout_ms;
	af_http *http;
	af_json_reader *reader; /* the provider's picks; NULL: none */
	af_payload *out;        /* reused to encode chunks and replies */
	chat_call *calls;
};

/* One request being answered. */
struct chat_call {
	chat_actor *a;
	af_pending *p;
	af_http_xfer *xfer;
	bool stream;        /* the requester takes chunks */
	bool http_stream;   /* the server was asked to stream */
	bool done_seen;     /* the stream's end marker arrived */
	bool consumer_gone; /* a chunk found the requester gone */
	bool end_due;       /* ended, waiting for held chunks to go */
	af_err end_err;     /* with end_due: how it ended */
	bool paused;        /* the transfer waits for the consumer */
	char *model;
	double temperature;
	int max_tokens;
	/* Text for a requester that takes one reply; a non-streamed body. */
	char *content;
	size_t content_len;
	size_t content_cap;
	char *body;
	size_t body_len;
	size_t body_cap;
	/* Chunks the consumer's window had no room for, in order. */
	char **held;
	size_t *held_len;
	size_t held_head;
	size_t held_count;
	size_t held_cap;
	/* How the answer ended. */
	char finish_reason[32];
	char *answer_model; /* as the server names it; NULL: not told */
	bool has_usage;
	int64_t prompt_tokens;
	int64_t completion_tokens;
	/* The provider's parser. */
	union {
		af_sse sse;
		af_ndjson ndjson;
	} parse;
	/* Why the call failed: code and a one-line message (NULL until
	 * then). Allocated when it fails, not held by every call. */
	af_err err_code;
	char *err;
	chat_call *prev;
	chat_call *next;
};

/* Starts the HTTP transfer for c: POST body (a JSON text) to the actor's
 * base URL followed by path. */
af_err af__chat_http_start(chat_call *c, const char *path, const char *body,
			   size_t len);

/* Adds item to obj under key, a string constant (not copied): the
 * providers' keys. Takes item: on failure (item NULL, or no memory) it is
 * freed. False then. */
bool af__chat_add(cJSON *obj, const char *key, cJSON *item);

/* A request body with what both APIs share: "model", "messages" (taken:
 * freed with the body, or at once when this fails) and "stream". NULL
 * when memory ran out. */
cJSON *af__chat_body(const chat_call *c, cJSON *messages);

/* POSTs body (which it frees) to path as c's transfer. Returns as
 * af__chat_http_start. */
af_err af__chat_post(chat_call *c, const char *path, cJSON *body);

/* Hands text of the answer over: a chunk, or appended to the reply. */
af_err af__chat_delta(chat_call *c, const char *text, size_t len);

/* Notes how the answer ended, from a JSON usage object of either API. */
void af__chat_set_finish(chat_call *c, const char *reason);
void af__chat_set_model(chat_call *c, const char *model);
void af__chat_set_usage(chat_call *c, int64_t prompt, int64_t completion);

/* Reads one JSON object the server sent (a chunk, a line or the whole
 * answer) into v, one pick per path of the provider's picks. AF_OK, or
 * the call fails: AF_EPROTO ("malformed JSON") or AF_ENOMEM, c->err
 * filled. */
af_err af__chat_read(chat_call *c, const char *json, size_t len,
		     af_json_pick *v);

/* AF_OK when error (the pick of the server's "error" member) is absent or
 * null; else the call fails with AF_EREMOTE and the server's text: error
 * itself when a string, else message (its "error.message"). */
af_err af__chat_server_error(chat_call *c, const af_json_pick *error,
			     const af_json_pick *message);

/* A token count the server sent: a finite number in range, else 0. */
int64_t af__chat_count(const af_json_pick *v);

/* Sets c->err to a printf-style message (at most 255 bytes) and returns
 * code. */
af_err af__chat_fail(chat_call *c, af_err code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Ends the call: the final chunk or reply on AF_OK, else the error with
 * c->err. Frees c. */
void af__chat_finish(chat_call *c, af_err err);

/* The messages array as JSON (role and content strings) from a request
 * payload: "messages", or "prompt" as one user message. AF_EINVAL with
 * *why set when the shape is wrong or a text is not UTF-8. */
af_err af__chat_messages(const af_value *payload, cJSON **out,
			 const char **why);

#endif
