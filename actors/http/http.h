/*
 * HTTP for built-in actors: many transfers in flight on one actor's loop.
 *
 * An af_http wraps one libcurl multi handle and drives it from the actor's
 * own mailbox loop: libcurl's sockets are watched with af_fd_watch and its
 * timeout is an af_timer, so an actor keeps thousands of transfers open
 * with no thread per transfer, and a wake-up costs what is ready
 * (curl_multi_socket_action), not what is open. Connections are kept
 * alive and reused; HTTP/2 is used where a TLS server offers it.
 *
 * A transfer retries by itself while nothing of its body has been handed
 * over: on 408, 409, 429 and 5xx statuses and on connection failures, with
 * exponential backoff and full jitter, honouring Retry-After (seconds or an
 * HTTP date) and retry-after-ms, within the transfer's deadline. Once body
 * bytes have been handed over it never retries, so a consumer never sees
 * the same bytes twice.
 *
 * Everything here runs on the owning actor's thread. Internal to the
 * built-in actors (chat, retrieval); no libcurl type leaves this header.
 */
#ifndef AF_HTTP_H
#define AF_HTTP_H

#include <actorflow/actorflow.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct af_http af_http;
typedef struct af_http_xfer af_http_xfer;

typedef struct af_http_opts {
	int64_t connect_timeout_ms; /* per attempt; 0: 10 s */
	int max_concurrent;    /* transfers at once, the rest queue; 0: 1024 */
	int max_retries;       /* retries after the first attempt; <0: 0 */
	int64_t retry_base_ms; /* first backoff; 0: 500 ms */
	int64_t retry_max_ms;  /* longest backoff; 0: 30 s */
	/* A PEM file of the certificate authorities https servers are
	 * verified against, in place of the system's; NULL: the system's.
	 * Copied. */
	const char *ca_file;
} af_http_opts;

typedef struct af_http_req {
	const char *url;
	const char *body; /* POSTed as application/json; NULL: a GET */
	size_t body_len;
	/* Sent as "Authorization: Bearer <bearer>" when not NULL. Never
	 * logged, never put in an error message. */
	const char *bearer;
	const char *accept; /* Accept header; NULL: application/json */
	/* The answer is a stream of small events (SSE, NDJSON) that lasts:
	 * it is read with a smaller buffer, held all the while. */
	bool stream;
	/* The whole transfer, retries and backoff included; 0: none. */
	int64_t timeout_ms;
} af_http_req;

typedef struct af_http_cbs {
	/* Bytes of a 2xx answer's body, in order, as they arrive. They are
	 * taken when this returns AF_OK; any other code aborts the transfer,
	 * which then ends with that code. */
	af_err (*on_data)(void *arg, const char *buf, size_t len);
	/* Called exactly once, when the transfer ends: AF_OK when a 2xx body
	 * arrived whole; else the error and a one-line message (borrowed for
	 * the call): AF_EHTTP with the final status in status and the
	 * server's own error message in msg, AF_ETIMEDOUT, AF_EPEERDOWN (no
	 * connection, or it broke), AF_ENOMEM, or on_data's code. */
	void (*on_done)(af_ctx *ctx, void *arg, af_err err, long status,
			const char *msg);
} af_http_cbs;

/* Creates the engine on ctx's loop. AF_OK, AF_ENOMEM, AF_ESYS. Caller owns
 * *out; call from the actor's init or a later callback. */
af_err af__http_new(af_http **out, af_ctx *ctx, const af_http_opts *opts);

/* Aborts every transfer (their on_done is not called) and frees the
 * engine. Accepts NULL; sets *h to NULL. */
void af__http_destroy(af_http **h);

/* Starts (or queues behind max_concurrent) a transfer; r is copied. On
 * AF_OK cbs->on_done will be called exactly once, never from inside this
 * call, and *out (when out is not NULL) names the transfer until then.
 * AF_ENOMEM, AF_EINVAL. */
af_err af__http_start(af_http *h, const af_http_req *r, const af_http_cbs *cbs,
		      void *arg, af_http_xfer **out);

/* Ends a transfer at once without calling its on_done and frees it; sets
 * *x to NULL. Not from inside that transfer's on_data. */
void af__http_abort(af_http *h, af_http_xfer **x);

/* Stops (paused = true) or resumes reading a transfer's body: the way to
 * hold a fast server while a slow consumer catches up. Resuming may call
 * on_data before it returns, with bytes libcurl held; if on_data refuses
 * them (or libcurl fails), the transfer ends there: on_done runs before
 * this returns, and x is gone. */
void af__http_pause(af_http *h, af_http_xfer *x, bool paused);

/* The server's error message in an error body: "error.message", "error"
 * (a string), "message" or "detail" of a JSON object, else the body itself
 * cut to one line of at most 200 bytes. Writes at most size bytes to out,
 * NUL-terminated. Exposed for tests. */
void af__http_error_text(const char *body, size_t len, char *out, size_t size);

/* A wait a server advised in a Retry-After (unit_ms 1000: whole seconds)
 * or retry-after-ms (1: milliseconds, a fraction ignored) header value,
 * in ms, at most a day; -1 when it is not such a number (an HTTP date, or
 * garbage, which falls back to the computed backoff). Exposed for tests. */
int64_t af__http_wait_ms(const char *value, int64_t unit_ms);

/* Copies len bytes of text into out (size bytes, cut to fit, then
 * NUL-terminated) with every occurrence of secret (NULL or "": none)
 * replaced by "[redacted]"; returns the length written. Redact before
 * cutting a message short, or a cut could keep part of the secret. */
size_t af__http_redact(const char *text, size_t len, const char *secret,
		       char *out, size_t size);

/* Backoff before retry number attempt (1 for the first retry): a full
 * jitter draw in [d/2, d] of d = min(max, base * 2^(attempt-1)), using
 * rnd (any 32 random bits). Exposed for tests. */
int64_t af__http_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt,
			    uint32_t rnd);

#endif
