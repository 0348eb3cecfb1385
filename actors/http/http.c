/*
 * libcurl's multi interface driven by an actor's loop: the only file that
 * calls libcurl, so its error codes are translated here and nowhere else.
 */
#include "http.h"

#include "json.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* An error body is kept only to quote the server's message. */
#define ERROR_BODY_MAX 65536
/* Transfers at once whose connections are kept for reuse (see launch). */
#define KEEP_CONNECTIONS 64

/* The longest wait a server's Retry-After is read as: longer ones only
 * matter against a request's own timeout, which ends it sooner. */
#define WAIT_MAX_S 86400
#define TIMEOUT_MAX_MS (366LL * 86400 * 1000)

#define REDACTED "[redacted]"

#define CONTENT_TYPE "Content-Type: application/json"
#define BEARER "Authorization: Bearer "

/* A list of request headers, shared by the transfers that send the same
 * ones (an actor sends one or two kinds) rather than built for each. */
typedef struct header_set {
	struct curl_slist *list;
	size_t users;
	struct header_set *next;
} header_set;

struct af_http_xfer {
	af_http *h;
	CURL *easy;
	header_set *headers;
	/* The POSTed body, for each attempt: freed once the answer's body
	 * arrives, since no attempt follows that. */
	char *body;
	size_t body_len;
	af_http_cbs cbs;
	void *arg;
	int64_t deadline_ns;    /* 0: none */
	int attempt;            /* retries done */
	bool running;           /* added to the multi handle */
	bool queued;            /* waiting in h->queue for a slot */
	bool delivered;         /* body bytes were handed over: no retry */
	bool is_error;          /* this attempt's status is not 2xx */
	af_err abort_code;      /* on_data refused the bytes */
	int64_t retry_after_ms; /* the last answer's advice; -1: none */
	uint64_t retry_timer;
	char *err_body; /* a non-2xx answer's body */
	size_t err_len;
	char errbuf[CURL_ERROR_SIZE];
	af_http_xfer *prev;
	af_http_xfer *next;
};

struct af_http {
	af_ctx *ctx;
	CURLM *multi;
	af_http_opts opts;
	uint64_t timer; /* libcurl's timeout; 0: none */
	size_t running; /* transfers holding a concurrency slot */
	/* The last answer came over HTTP/1.x: a connection carries one
	 * transfer at a time (see launch). */
	bool serial;
	/* Every transfer, so destroy can find them; the queued ones also
	 * wait in order in a ring of pointers. */
	af_http_xfer *all;
	header_set *header_sets;
	af_http_xfer **queue;
	size_t queue_head;
	size_t queue_len;
	size_t queue_cap;
	uint32_t rnd;
	char *ca_file; /* opts.ca_file's copy; NULL: the system's */
};

static void release_headers(af_http *h, header_set *set);

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status = CURLE_FAILED_INIT;

static void global_init(void)
{
	/* libcurl's global state is set up once per process and, as libcurl
	 * asks of a library, never torn down while threads may use it. */
	global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint32_t next_random(af_http *h)
{
	/* xorshift32: jitter needs spread, not secrecy. */
	uint32_t x = h->rnd;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	h->rnd = x;
	return x;
}

int64_t af__http_backoff_ms(int64_t base_ms, int64_t max_ms, int attempt,
			    uint32_t rnd)
{
	int64_t d = base_ms;

	for (int i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (d < 2)
		return d;
	return d / 2 + (int64_t)(rnd % (uint32_t)(d / 2 + 1));
}

static void one_line(const char *s, size_t len, char *out, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < size && n < 200; i++) {
		unsigned char c = (unsigned char)s[i];

		out[n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	out[n] = '\0';
}

void af__http_error_text(const char *body, size_t len, char *out, size_t size)
{
	const char *why;
	cJSON *root = body != NULL ? af__json_parse(body, len, &why) : NULL;
	const char *text = NULL;

	if (cJSON_IsObject(root)) {
		const cJSON *err =
			cJSON_GetObjectItemCaseSensitive(root, "error");

		text = cJSON_IsString(err) ? err->valuestring
					   : af__json_str(err, "message");
		if (text == NULL)
			text = af__json_str(root, "message");
		if (text == NULL)
			text = af__json_str(root, "detail");
	}
	if (text != NULL)
		one_line(text, strlen(text), out, size);
	else
		one_line(body != NULL ? body : "", body != NULL ? len : 0, out,
			 size);
	cJSON_Delete(root);
}

/* ---- driving libcurl from the loop ------------------------------------ */

static void check_done(af_http *h);

static void on_socket_ready(af_ctx *ctx, int fd, unsigned events, void *arg)
{
	af_http *h = arg;
	int flags = 0;
	int running;

	if (events & AF_FD_READ)
		flags |= CURL_CSELECT_IN;
	if (events & AF_FD_WRITE)
		flags |= CURL_CSELECT_OUT;
	if (events & AF_FD_ERROR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
		     void *socketp)
{
	af_http *h = userp;
	unsigned events = 0;

	if (what == CURL_POLL_REMOVE) {
		af_fd_unwatch(h->ctx, s);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= AF_FD_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= AF_FD_WRITE;
	if (af_fd_modify(h->ctx, s, events) == AF_ENOTFOUND &&
	    af_fd_watch(h->ctx, s, events, on_socket_ready, h) != AF_OK)
		return -1;
	return 0;
}

static void on_timeout(af_ctx *ctx, void *arg)
{
	af_http *h = arg;
	int running;

	h->timer = 0;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	af_http *h = userp;

	/* libcurl must not be called back into from here: the loop runs
	 * the timeout on its next turn, or when it falls due. */
	if (h->timer != 0) {
		af_timer_cancel(h->ctx, h->timer);
		h->timer = 0;
	}
	if (timeout_ms < 0)
		return 0;
	return af_timer_start(h->ctx, timeout_ms, 0, on_timeout, h,
			      &h->timer) == AF_OK
		       ? 0
		       : -1;
}

/* ---- one transfer ------------------------------------------------------ */

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	af_http_xfer *x = arg;
	size_t len = size * n;
	char line[128];
	const char *v;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		/* A new answer (after a redirect or a 100 Continue):
		 * advice of the one before no longer holds. */
		x->retry_after_ms = -1;
		return len;
	}
	if (len >= sizeof(line))
		return len;
	memcpy(line, buf, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
		v = line + 15;
		x->retry_after_ms = af__http_wait_ms(v, 1);
	} else if (strncasecmp(line, "retry-after:", 12) == 0 &&
		   x->retry_after_ms < 0) {
		v = line + 12;
		x->retry_after_ms = af__http_wait_ms(v, 1000);
		if (x->retry_after_ms < 0) {
			/* An HTTP date: how long until then. */
			time_t when = curl_getdate(v, NULL);

			if (when > 0) {
				int64_t s = (int64_t)when - (int64_t)time(NULL);

				s = s < 0 ? 0 : s > WAIT_MAX_S ? WAIT_MAX_S : s;
				x->retry_after_ms = s * 1000;
			}
		}
	}
	return len;
}

int64_t af__http_wait_ms(const char *v, int64_t unit_ms)
{
	int64_t n = 0;
	bool digits = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v >= '0' && *v <= '9'; v++) {
		digits = true;
		if (n < WAIT_MAX_S * 1000)
			n = n * 10 + (*v - '0');
	}
	if (!digits)
		return -1;
	if (*v == '.' && unit_ms == 1) /* "1500.5" ms: the fraction goes */
		while (*++v >= '0' && *v <= '9')
			;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != '\0')
		return -1;
	if (n > WAIT_MAX_S * 1000 / unit_ms)
		n = WAIT_MAX_S * 1000 / unit_ms;
	return n * unit_ms;
}

/* Frees the request body once libcurl has sent all of it: the answer's
 * body is arriving, so no attempt will send it again. A long
 * conversation's body is often larger than the whole streamed answer. */
static void drop_body(af_http_xfer *x)
{
	curl_off_t sent = 0;

	if (x->body == NULL ||
	    curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &sent) !=
		    CURLE_OK ||
	    sent < (curl_off_t)x->body_len)
		return;
	/* libcurl keeps the pointer but reads no more of it. */
	free(x->body);
	x->body = NULL;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
	af_http_xfer *x = arg;
	size_t len = size * n;
	long status = 0;
	af_err err;

	/* on_data refused bytes already: no later ones reach it (resuming a
	 * paused transfer can hand over several pieces in one call). */
	if (x->abort_code != AF_OK)
		return CURL_WRITEFUNC_ERROR;
	if (!x->delivered && !x->is_error) {
		long version = CURL_HTTP_VERSION_NONE;

		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		x->is_error = status < 200 || status > 299;
		curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
		x->h->serial = version == CURL_HTTP_VERSION_1_0 ||
			       version == CURL_HTTP_VERSION_1_1;
	}
	if (x->is_error) {
		size_t room = ERROR_BODY_MAX - x->err_len;
		char *grown;

		if (len < room)
			room = len;
		if (room == 0)
			return len;
		grown = realloc(x->err_body, x->err_len + room + 1);
		if (grown == NULL)
			return len;
		memcpy(grown + x->err_len, buf, room);
		x->err_len += room;
		grown[x->err_len] = '\0';
		x->err_body = grown;
		return len;
	}
	if (!x->delivered) {
		x->delivered = true;
		drop_body(x);
	}
	err = x->cbs.on_data(x->arg, buf, len);
	if (err != AF_OK) {
		x->abort_code = err;
		return CURL_WRITEFUNC_ERROR;
	}
	return len;
}

static int64_t remaining_ms(const af_http_xfer *x)
{
	int64_t left;

	if (x->deadline_ns == 0)
		return -1;
	left = (x->deadline_ns - now_ns()) / 1000000;
	return left > 0 ? left : 0;
}

static void unlink_xfer(af_http *h, af_http_xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		h->all = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

static void free_xfer(af_http *h, af_http_xfer *x)
{
	if (x->running) {
		curl_multi_remove_handle(h->multi, x->easy);
		x->running = false;
	}
	if (x->retry_timer != 0)
		af_timer_cancel(h->ctx, x->retry_timer);
	/* A queued transfer stays in the queue as NULL: the queue skips it.
	 * Only those are looked for, so ending a running transfer does not
	 * walk the queue. */
	for (size_t i = 0; x->queued && i < h->queue_len; i++) {
		size_t at = (h->queue_head + i) % h->queue_cap;

		if (h->queue[at] == x)
			h->queue[at] = NULL;
	}
	unlink_xfer(h, x);
	curl_easy_cleanup(x->easy);
	release_headers(h, x->headers);
	free(x->body);
	free(x->err_body);
	free(x);
}

static af_err launch(af_http *h, af_http_xfer *x)
{
	int64_t left = remaining_ms(x);

	x->is_error = false;
	x->retry_after_ms = -1;
	x->errbuf[0] = '\0';
	free(x->err_body);
	x->err_body = NULL;
	x->err_len = 0;
	/* Each attempt gets what is left of the transfer's deadline. */
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
			 left < 0 ? 0L : (long)(left > 0 ? left : 1));
	/* A transfer started while KEEP_CONNECTIONS others run (x itself is
	 * counted in h->running) closes its connection when it ends, rather
	 * than leave it to libcurl's cache: the connections of a burst are
	 * not worth keeping open against a server, and libcurl 7.88 looks
	 * through every connection it holds each time a transfer that left
	 * its connection there is removed (bench_chat, 10,000 streams:
	 * 11.2-11.4 -> 9.3-10.2 CPU-s). Calls one after another, and up to
	 * KEEP_CONNECTIONS at once, reuse. Against an HTTP/1.x server, such a
	 * transfer does not look for a connection to reuse either: the
	 * KEEP_CONNECTIONS others are busy, and libcurl 7.88 would check every
	 * one of them, for every new transfer. An HTTP/2 server's connection
	 * is still shared. */
	curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE,
			 h->running > KEEP_CONNECTIONS ? 1L : 0L);
	curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT,
			 h->running > KEEP_CONNECTIONS && h->serial ? 1L : 0L);
	if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK)
		return AF_ENOMEM;
	x->running = true;
	return AF_OK;
}

/* The API key a transfer sends, within its headers; NULL: none. */
static const char *bearer_of(const header_set *set)
{
	size_t n = strlen(BEARER);

	for (const struct curl_slist *l = set != NULL ? set->list : NULL;
	     l != NULL; l = l->next)
		if (strncmp(l->data, BEARER, n) == 0 && l->data[n] != '\0')
			return l->data + n;
	return NULL;
}

size_t af__http_redact(const char *text, size_t len, const char *secret,
		       char *out, size_t size)
{
	static const char mark[] = REDACTED;
	size_t n = secret != NULL ? strlen(secret) : 0;
	size_t o = 0;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < len && o + 1 < size;) {
		if (n > 0 && len - i >= n && memcmp(text + i, secret, n) == 0) {
			for (const char *r = mark; *r != '\0' && o + 1 < size;)
				out[o++] = *r++;
			i += n;
		} else {
			out[o++] = text[i++];
		}
	}
	out[o] = '\0';
	return o;
}

static void finish(af_http *h, af_http_xfer *x, af_err err, long status,
		   const char *msg)
{
	af_http_cbs cbs = x->cbs;
	void *arg = x->arg;
	char said[384];

	/* A server may quote the request's headers in its error message:
	 * the key goes no further. */
	af__http_redact(msg, strlen(msg), bearer_of(x->headers), said,
			sizeof(said));
	/* on_done may start new transfers or destroy state that points at
	 * x: x is gone before it runs. */
	free_xfer(h, x);
	h->running--;
	cbs.on_done(h->ctx, arg, err, status, said);
}

static void start_queued(af_http *h)
{
	while (h->queue_len > 0 &&
	       h->running < (size_t)h->opts.max_concurrent) {
		af_http_xfer *x = h->queue[h->queue_head];

		h->queue_head = (h->queue_head + 1) % h->queue_cap;
		h->queue_len--;
		if (x == NULL)
			continue;
		x->queued = false;
		h->running++;
		if (launch(h, x) != AF_OK)
			finish(h, x, AF_ENOMEM, 0, "out of memory");
	}
}

static void on_retry(af_ctx *ctx, void *arg)
{
	af_http_xfer *x = arg;

	x->retry_timer = 0;
	if (launch(x->h, x) != AF_OK)
		finish(x->h, x, AF_ENOMEM, 0, "out of memory");
}

static bool retryable_status(long status)
{
	return status == 408 || status == 409 || status == 429 ||
	       (status >= 500 && status <= 599);
}

static bool retryable_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Schedules another attempt if the policy and the deadline allow one. */
static bool retry(af_http *h, af_http_xfer *x)
{
	int64_t delay;
	int64_t left = remaining_ms(x);

	if (x->delivered || x->attempt >= h->opts.max_retries)
		return false;
	x->attempt++;
	delay = x->retry_after_ms >= 0
			? x->retry_after_ms
			: af__http_backoff_ms(h->opts.retry_base_ms,
					      h->opts.retry_max_ms, x->attempt,
					      next_random(h));
	if (left >= 0 && delay >= left)
		return false;
	return af_timer_start(h->ctx, delay, 0, on_retry, x, &x->retry_timer) ==
	       AF_OK;
}

/* The server's message in a non-2xx answer's body, the key blanked
 * before the message is cut to length. */
static void error_text(af_http_xfer *x, char *out, size_t size)
{
	const char *key = bearer_of(x->headers);
	size_t n = key != NULL ? strlen(key) : 0;
	/* Each occurrence grows by at most the mark's length. */
	size_t cap = x->err_len + (n > 0 ? (x->err_len / n + 1) * 16 : 0) + 1;
	char *body = x->err_body != NULL ? malloc(cap) : NULL;

	if (body == NULL) {
		af__http_error_text(NULL, 0, out, size);
		return;
	}
	af__http_error_text(
		body, af__http_redact(x->err_body, x->err_len, key, body, cap),
		out, size);
	free(body);
}

static void transfer_done(af_http *h, af_http_xfer *x, CURLcode rc)
{
	long status = 0;
	char msg[320];
	char text[256];

	curl_multi_remove_handle(h->multi, x->easy);
	x->running = false;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (x->abort_code != AF_OK) {
		finish(h, x, x->abort_code, status, af_strerror(x->abort_code));
		return;
	}
	if (rc == CURLE_OK && status >= 200 && status <= 299) {
		finish(h, x, AF_OK, status, "");
		return;
	}
	if (rc == CURLE_OK) {
		if (retryable_status(status) && retry(h, x))
			return;
		error_text(x, text, sizeof(text));
		snprintf(msg, sizeof(msg), "HTTP %ld: %s", status, text);
		finish(h, x, AF_EHTTP, status, msg);
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT && remaining_ms(x) == 0) {
		finish(h, x, AF_ETIMEDOUT, status, "deadline passed");
		return;
	}
	if (retryable_curl(rc) || rc == CURLE_OPERATION_TIMEDOUT) {
		if (retry(h, x))
			return;
	}
	snprintf(msg, sizeof(msg), "%s%s",
		 x->delivered ? "connection lost mid-answer: " : "",
		 x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
	finish(h, x,
	       rc == CURLE_OUT_OF_MEMORY        ? AF_ENOMEM
	       : rc == CURLE_OPERATION_TIMEDOUT ? AF_ETIMEDOUT
						: AF_EPEERDOWN,
	       status, msg);
}

static void check_done(af_http *h)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		af_http_xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &x);
		transfer_done(h, x, m->data.result);
	}
	start_queued(h);
}

/* ---- the engine -------------------------------------------------------- */

af_err af__http_new(af_http **out, af_ctx *ctx, const af_http_opts *opts)
{
	af_http *h;

	pthread_once(&global_once, global_init);
	if (global_status != CURLE_OK)
		return af_init_fail(ctx, AF_ESYS, "libcurl did not start: %s",
				    curl_easy_strerror(global_status));
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return AF_ENOMEM;
	h->ctx = ctx;
	if (opts != NULL)
		h->opts = *opts;
	if (h->opts.connect_timeout_ms <= 0)
		h->opts.connect_timeout_ms = 10000;
	if (h->opts.max_concurrent <= 0)
		h->opts.max_concurrent = 1024;
	if (h->opts.max_retries < 0)
		h->opts.max_retries = 0;
	if (h->opts.retry_base_ms <= 0)
		h->opts.retry_base_ms = 500;
	if (h->opts.retry_max_ms <= 0)
		h->opts.retry_max_ms = 30000;
	h->rnd = (uint32_t)now_ns() | 1u;
	if (opts != NULL && opts->ca_file != NULL) {
		h->ca_file = strdup(opts->ca_file);
		if (h->ca_file == NULL) {
			free(h);
			return AF_ENOMEM;
		}
	}
	h->opts.ca_file = h->ca_file;
	h->multi = curl_multi_init();
	if (h->multi == NULL) {
		free(h->ca_file);
		free(h);
		return AF_ENOMEM;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	/* Keep a connection per running transfer for reuse; HTTP/2 servers
	 * carry many transfers on one. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
			  (long)h->opts.max_concurrent);
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	*out = h;
	return AF_OK;
}

void af__http_destroy(af_http **hp)
{
	af_http *h;

	if (hp == NULL || *hp == NULL)
		return;
	h = *hp;
	while (h->all != NULL)
		free_xfer(h, h->all);
	curl_multi_cleanup(h->multi);
	if (h->timer != 0)
		af_timer_cancel(h->ctx, h->timer);
	free(h->queue);
	free(h->ca_file);
	free(h);
	*hp = NULL;
}

static af_err enqueue(af_http *h, af_http_xfer *x)
{
	if (h->queue_len == h->queue_cap) {
		size_t cap = h->queue_cap ? h->queue_cap * 2 : 64;
		af_http_xfer **q = malloc(cap * sizeof(*q));

		if (q == NULL)
			return AF_ENOMEM;
		for (size_t i = 0; i < h->queue_len; i++)
			q[i] = h->queue[(h->queue_head + i) % h->queue_cap];
		free(h->queue);
		h->queue = q;
		h->queue_cap = cap;
		h->queue_head = 0;
	}
	h->queue[(h->queue_head + h->queue_len) % h->queue_cap] = x;
	h->queue_len++;
	x->queued = true;
	return AF_OK;
}

/* Whether list holds exactly the headers of r, as build_headers makes
 * them. */
static bool headers_match(const struct curl_slist *l, const char *accept,
			  const af_http_req *r)
{
	if (l == NULL || strcmp(l->data, accept) != 0)
		return false;
	l = l->next;
	if (r->body != NULL) {
		if (l == NULL || strcmp(l->data, CONTENT_TYPE) != 0)
			return false;
		l = l->next;
	}
	if (r->bearer != NULL) {
		if (l == NULL ||
		    strncmp(l->data, BEARER, strlen(BEARER)) != 0 ||
		    strcmp(l->data + strlen(BEARER), r->bearer) != 0)
			return false;
		l = l->next;
	}
	return l == NULL;
}

static struct curl_slist *build_headers(const char *accept,
					const af_http_req *r)
{
	struct curl_slist *l = curl_slist_append(NULL, accept);
	struct curl_slist *t;

	if (l == NULL)
		return NULL;
	if (r->body != NULL) {
		t = curl_slist_append(l, CONTENT_TYPE);
		if (t == NULL)
			goto free_list;
		l = t;
	}
	if (r->bearer != NULL) {
		size_t n = strlen(BEARER) + strlen(r->bearer) + 1;
		char *auth = malloc(n);

		if (auth == NULL)
			goto free_list;
		snprintf(auth, n, "%s%s", BEARER, r->bearer);
		t = curl_slist_append(l, auth);
		/* The key is copied into the list: wipe this copy. */
		memset(auth, 0, n);
		free(auth);
		if (t == NULL)
			goto free_list;
		l = t;
	}
	return l;
free_list:
	curl_slist_free_all(l);
	return NULL;
}

/* The shared header set for r, with one more user; NULL when memory ran
 * out. */
static header_set *take_headers(af_http *h, const af_http_req *r)
{
	char accept[64];
	header_set *set;

	snprintf(accept, sizeof(accept), "Accept: %s",
		 r->accept != NULL ? r->accept : "application/json");
	for (set = h->header_sets; set != NULL; set = set->next) {
		if (headers_match(set->list, accept, r)) {
			set->users++;
			return set;
		}
	}
	set = calloc(1, sizeof(*set));
	if (set == NULL)
		return NULL;
	set->list = build_headers(accept, r);
	if (set->list == NULL) {
		free(set);
		return NULL;
	}
	set->users = 1;
	set->next = h->header_sets;
	h->header_sets = set;
	return set;
}

static void release_headers(af_http *h, header_set *set)
{
	header_set **at;

	if (set == NULL || --set->users > 0)
		return;
	for (at = &h->header_sets; *at != set; at = &(*at)->next)
		;
	*at = set->next;
	/* The list may hold an API key. */
	for (struct curl_slist *l = set->list; l != NULL; l = l->next)
		memset(l->data, 0, strlen(l->data));
	curl_slist_free_all(set->list);
	free(set);
}

af_err af__http_start(af_http *h, const af_http_req *r, const af_http_cbs *cbs,
		      void *arg, af_http_xfer **out)
{
	af_http_xfer *x;
	af_err err = AF_ENOMEM;

	if (h == NULL || r == NULL || r->url == NULL || cbs == NULL ||
	    cbs->on_data == NULL || cbs->on_done == NULL)
		return AF_EINVAL;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return AF_ENOMEM;
	x->h = h;
	x->cbs = *cbs;
	x->arg = arg;
	/* Past a year is no deadline at all (INT64_MAX, say, would
	 * overflow). */
	if (r->timeout_ms > 0 && r->timeout_ms <= TIMEOUT_MAX_MS)
		x->deadline_ns = now_ns() + r->timeout_ms * 1000000;
	if (r->body != NULL) {
		x->body = malloc(r->body_len + 1);
		if (x->body == NULL)
			goto free_x;
		memcpy(x->body, r->body, r->body_len);
		x->body[r->body_len] = '\0';
		x->body_len = r->body_len;
	}
	x->easy = curl_easy_init();
	if (x->easy == NULL)
		goto free_body;
	x->headers = take_headers(h, r);
	if (x->headers == NULL)
		goto free_easy;
	/* libcurl keeps its own copy of the URL. */
	if (curl_easy_setopt(x->easy, CURLOPT_URL, r->url) != CURLE_OK)
		goto free_headers;
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers->list);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "actorflow/" AF_VERSION);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	/* Several threads may run actors: libcurl must not use signals. */
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)h->opts.connect_timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION,
			 (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	if (x->h->ca_file != NULL) {
		/* In place of the system's CAs: libcurl's default CA path
		 * would add them back. */
		curl_easy_setopt(x->easy, CURLOPT_CAINFO, x->h->ca_file);
		curl_easy_setopt(x->easy, CURLOPT_CAPATH, NULL);
	}
	/* Model servers stream events of a few hundred bytes, and a stream
	 * holds its receive buffer all along: 1 KiB (libcurl's least) holds
	 * several events, where libcurl's default is 16 KiB (at 10,000 open
	 * streams, 2 KiB took bench_chat from 202 to 175 MB). A whole answer
	 * is read in 2 KiB reads. Not over https, where the server may speak
	 * HTTP/2: libcurl 7.88's HTTP/2 reader, given a buffer smaller than
	 * a frame, can keep the end of an answer and never wake to deliver
	 * it (test_chat_h2 stalled on 7 sizes of answer out of 15). */
	if (strncasecmp(r->url, "https:", 6) != 0)
		curl_easy_setopt(x->easy, CURLOPT_BUFFERSIZE,
				 r->stream ? 1024L : 2048L);
	/* No CURLOPT_PIPEWAIT: it holds each new transfer until an earlier
	 * connection shows whether it multiplexes, which cost an HTTP/1.1
	 * server's first chunk 250 ms in bench_chat. HTTP/2 connections
	 * are still shared once known (CURLPIPE_MULTIPLEX). */
	if (x->body != NULL) {
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)x->body_len);
	}

	if (h->running < (size_t)h->opts.max_concurrent) {
		/* Counted before launch, as a queued or retried one is. */
		h->running++;
		err = launch(h, x);
		if (err != AF_OK) {
			h->running--;
			goto free_headers;
		}
	} else {
		err = enqueue(h, x);
		if (err != AF_OK)
			goto free_headers;
	}
	x->next = h->all;
	if (h->all != NULL)
		h->all->prev = x;
	h->all = x;
	if (out != NULL)
		*out = x;
	return AF_OK;

free_headers:
	release_headers(h, x->headers);
free_easy:
	curl_easy_cleanup(x->easy);
free_body:
	free(x->body);
free_x:
	free(x);
	return err;
}

void af__http_abort(af_http *h, af_http_xfer **xp)
{
	af_http_xfer *x;
	bool held_slot;

	if (h == NULL || xp == NULL || *xp == NULL)
		return;
	x = *xp;
	*xp = NULL;
	held_slot = x->running || x->retry_timer != 0;
	free_xfer(h, x);
	if (held_slot) {
		h->running--;
		start_queued(h);
	}
}

void af__http_pause(af_http *h, af_http_xfer *x, bool paused)
{
	CURLcode rc;
	long status = 0;

	if (h == NULL || x == NULL || !x->running)
		return;
	rc = curl_easy_pause(x->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
	if (paused || (rc == CURLE_OK && x->abort_code == AF_OK))
		return;
	/* Resuming handed over the bytes libcurl held, and on_data refused
	 * them, or libcurl failed: the transfer ends now, as it would have
	 * in curl_multi_socket_action. */
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (x->abort_code != AF_OK)
		finish(h, x, x->abort_code, status, af_strerror(x->abort_code));
	else
		finish(h, x, AF_EPEERDOWN, status, curl_easy_strerror(rc));
	start_queued(h);
}
