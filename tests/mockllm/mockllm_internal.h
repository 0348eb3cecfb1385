/*
 * What the mock server's files share: the server itself, its options as
 * the answers hold them, and the streamed answer.
 */
#ifndef MOCKLLM_INTERNAL_H
#define MOCKLLM_INTERNAL_H

#include "mockllm.h"
#include "pacer.h"
#include "text.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Options with the strings they point to, with defaults applied. An answer
 * holds a reference to the conf it started with, so mockllm_set can
 * replace the server's conf while answers are under way. */
typedef struct conf {
	atomic_int refs;
	mockllm_opts o;   /* o.text and o.error_message point at copies */
	char *text_json;  /* o.text escaped for a JSON string */
	char *error_json; /* o.error_message escaped for a JSON string */
} conf;

conf *conf_new(const mockllm_opts *opts);
conf *conf_ref(conf *c);
void conf_unref(conf *c);

typedef enum dialect { DIALECT_OPENAI, DIALECT_OLLAMA } dialect;

struct mockllm {
	struct MHD_Daemon *daemon;
	pacer pacer;
	int port;
	char url[40];
	atomic_uint next_id; /* for answer ids */

	pthread_mutex_t mu; /* guards what follows */
	pthread_cond_t cv;  /* a counter moved */
	conf *conf;
	int failed; /* requests MOCKLLM_STATUS failed since the last set */
	unsigned requests;
	unsigned connections; /* TCP connections accepted */
	unsigned open_streams;
	unsigned ended_streams; /* streamed answers over, however they ended */
	unsigned aborted;
	char *last_body;
	char *last_auth;
};

/* What a streamed chat answer needs to know about its request. */
typedef struct stream_args {
	dialect dialect;
	const char *model; /* copied */
	int prompt_tokens;
	bool include_usage;
	unsigned id;
} stream_args;

typedef struct stream stream;

/* Creates a streamed answer on conn and its response (which reads from
 * the stream; the caller queues and releases it). The stream holds a
 * reference to c. Returns NULL when out of memory. */
struct MHD_Response *stream_new(stream **out, mockllm *m, conf *c,
				struct MHD_Connection *conn,
				const stream_args *args);

/* True when the server ended the stream on purpose (its end, a fault or
 * the server stopping) rather than the client closing it. */
bool stream_ended_by_server(const stream *s);

/* Frees s; libmicrohttpd has finished with its response. */
void stream_free(stream *s);

/* The text of content chunk i: c's text followed by i and a space. */
void chunk_text(buf *b, const conf *c, int i, bool json);

#endif
