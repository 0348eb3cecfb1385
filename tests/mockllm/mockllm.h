/*
 * mockllm - a mock OpenAI-compatible and Ollama model server for tests and
 * benchmarks, built on libmicrohttpd.
 *
 * It listens on 127.0.0.1 (an ephemeral port unless told otherwise) and
 * answers, with deterministic text:
 *   POST /v1/chat/completions, /chat/completions  OpenAI chat, SSE when
 *                                                 "stream": true
 *   POST /api/chat                                Ollama chat, NDJSON unless
 *                                                 "stream": false
 *   POST /v1/embeddings, /embeddings              OpenAI embeddings
 *   POST /api/embed                               Ollama embeddings
 * Anything else gets 404; a body that is not JSON (or lacks "messages" or
 * "input") gets 400; both with a JSON error body.
 *
 * An answer is `chunks` pieces of text, piece i being opts.text followed by
 * i and a space ("w0 ", "w1 ", ...). A streamed answer sends each piece as
 * its own event, interval_ms after the previous one; a non-streamed answer
 * is sent whole after chunks * interval_ms. Faults (mockllm_fault) break
 * answers in the ways real servers and networks do.
 *
 * Paced streams do not hold a thread: a connection waiting for its next
 * chunk is suspended in libmicrohttpd and resumed by a timer thread, so one
 * server process serves 10,000 concurrent streams at little CPU cost.
 *
 * Thread safety: every function may be called from any thread, except that
 * mockllm_stop must not race with other calls on the same server.
 */
#ifndef MOCKLLM_H
#define MOCKLLM_H

#include <stdbool.h>

typedef struct mockllm mockllm;

typedef enum mockllm_fault {
	MOCKLLM_OK = 0,
	/* The first fail_times requests (counted from mockllm_start or the
	 * last mockllm_set) get status fail_status with a JSON error body,
	 * OpenAI's {"error":{"message":...,"type":...}} or Ollama's
	 * {"error":"..."}, and "Retry-After: retry_after_s" and/or
	 * "retry-after-ms: retry_after_ms" headers when those are > 0; later
	 * requests succeed. Applies to every endpoint. */
	MOCKLLM_STATUS,
	/* The connection closes after fault_at content chunks, without
	 * "data: [DONE]" / "done": true and without ending the chunked body,
	 * as a server crash would. Not streamed: closed before any answer. */
	MOCKLLM_DROP,
	/* Content chunk number fault_at (0-based) is broken JSON; the rest of
	 * the stream follows as usual. Not streamed: the body is broken JSON.
	 */
	MOCKLLM_MALFORMED,
	/* After fault_at content chunks, an error object and a clean end of
	 * the body: OpenAI `data: {"error":{"message":...,"type":
	 * "server_error"}}`, Ollama `{"error":"..."}`. Not streamed: status
	 * 200 with that object as the body. */
	MOCKLLM_ERROR_EVENT,
	/* Every chunk, then a clean end of the body without "data: [DONE]"
	 * (OpenAI, after the finish and usage chunks) or without the
	 * "done": true line (Ollama). Not streamed: no effect. */
	MOCKLLM_NO_DONE,
	/* fault_at content chunks, then nothing while the connection stays
	 * open until the client closes it (for timeout and cancel tests).
	 * Not streamed: no answer at all. */
	MOCKLLM_STALL,
	/* The first value of every embedding vector, and the prompt's token
	 * count in every chat answer (whole or streamed), is 1e39: a JSON
	 * number beyond a float's range and any integer's. */
	MOCKLLM_HUGE_NUMBER
} mockllm_fault;

/* Options; a zeroed struct (or NULL) means every default. */
typedef struct mockllm_opts {
	int chunks;       /* content chunks per answer; 0: 5; < 0: none */
	int interval_ms;  /* pause before each content chunk; 0: none */
	const char *text; /* chunk text prefix; NULL: "w". Copied. */
	bool crlf;        /* lines end with "\r\n", events with "\r\n\r\n" */
	/* Each event goes out in pieces of 1 to 3 bytes, each its own write
	 * (and HTTP chunk), so lines, CRLFs and UTF-8 sequences are cut. */
	bool split_writes;
	bool comments;       /* ": keep-alive" blocks between SSE events */
	bool multiline_data; /* each SSE chunk's JSON over two data: lines */
	/* The usage chunk even without stream_options.include_usage. */
	bool include_usage_always;
	mockllm_fault fault;
	int fault_at;
	int fail_status; /* MOCKLLM_STATUS: the status; 0: 500 */
	int fail_times;  /* MOCKLLM_STATUS: how many requests fail */
	int retry_after_s;
	int retry_after_ms;
	const char *error_message; /* NULL: "mock failure". Copied. */
	int embed_dim;             /* embedding dimension; 0: 8 */
	/* PEM certificate (chain) and key: the server speaks HTTPS with them
	 * and mockllm_url says "https". Read at start only (mockllm_set
	 * ignores them). */
	const char *tls_cert;
	const char *tls_key;
} mockllm_opts;

/* Starts a server on 127.0.0.1 with an ephemeral port, one event thread
 * and options opts (NULL: defaults). Returns 0 and sets *out, or -1. */
int mockllm_start(mockllm **out, const mockllm_opts *opts);

/* The same with a chosen port (0: ephemeral) and threads event threads
 * (libmicrohttpd's thread pool; 0 or 1: one). */
int mockllm_start_ex(mockllm **out, const mockllm_opts *opts, int port,
		     int threads);

/* The port the server listens on. */
int mockllm_port(const mockllm *m);

/* "http://127.0.0.1:PORT" ("https" with tls_cert), owned by m, valid
 * until mockllm_stop. */
const char *mockllm_url(const mockllm *m);

/* Replaces the options for requests that arrive from now on (answers
 * already under way keep theirs) and restarts MOCKLLM_STATUS's count. */
void mockllm_set(mockllm *m, const mockllm_opts *opts);

/* Requests received so far, on any path (counted once the whole body has
 * arrived). */
unsigned mockllm_requests(const mockllm *m);

/* TCP connections accepted so far: fewer than the requests when clients
 * reuse them. */
unsigned mockllm_connections(const mockllm *m);

/* Streamed answers being sent now. */
unsigned mockllm_open_streams(const mockllm *m);

/* Answers the client closed before their end: streams, and whole answers
 * held back by interval_ms or MOCKLLM_STALL. A stalled answer's close is
 * noticed at once; a paced one's when the server next writes to it. Ends
 * the server chose (faults, mockllm_stop) are not counted. */
unsigned mockllm_aborted(const mockllm *m);

/* Waits until mockllm_requests() >= n. Returns 0, or -1 after timeout_ms. */
int mockllm_wait_requests(mockllm *m, unsigned n, int timeout_ms);

/* Waits until mockllm_aborted() >= n. Returns 0, or -1 after timeout_ms. */
int mockllm_wait_aborted(mockllm *m, unsigned n, int timeout_ms);

/* Waits until n streamed answers have ended since start, however they
 * ended (all written out, or cut). Returns 0, or -1 after timeout_ms. */
int mockllm_wait_ended_streams(mockllm *m, unsigned n, int timeout_ms);

/* Waits until mockllm_open_streams() == n (so n = 0 waits for every stream
 * to end). Returns 0, or -1 after timeout_ms. */
int mockllm_wait_open_streams(mockllm *m, unsigned n, int timeout_ms);

/* Copies of the last request's body (returned) and Authorization header
 * value (in *auth_header when auth_header is not NULL; NULL when the
 * request had none). Both are malloc'ed: the caller frees them. Returns
 * NULL when no request has arrived yet. */
char *mockllm_last_request(const mockllm *m, char **auth_header);

/* Stops the server: closes every connection (streams under way end
 * abruptly), joins its threads, frees m and sets *m to NULL. Accepts NULL
 * and a pointer to NULL. */
void mockllm_stop(mockllm **m);

#endif
