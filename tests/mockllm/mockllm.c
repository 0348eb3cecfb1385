/*
 * mockllm.c - the mock model server: its lifecycle, counters, and the
 * libmicrohttpd request handler that routes each request to an answer.
 */
#define _GNU_SOURCE

#include "answer.h"
#include "mockllm_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The largest request body read; a longer one gets 413. */
#define MAX_BODY (16u << 20)

/* Connections are cheap with epoll; the process's file limit is the real
 * bound. */
#define CONNECTION_LIMIT 100000u

/* Each connection's buffer pool, libmicrohttpd's default being 32 KiB:
 * headers and events are small and bodies pass through on_request in
 * pieces. With 10,000 streams open the server's RSS is 150 MB instead of
 * 390 MB. */
#define CONNECTION_MEMORY 8192u

/* An idle keep-alive connection, or a client that stops reading, is closed
 * after this long. Suspended connections (paced or stalled answers) never
 * time out. */
#define CONNECTION_TIMEOUT_S 60u

typedef enum route { ROUTE_NONE, ROUTE_CHAT, ROUTE_EMBED } route;

/* One request, from its first bytes to libmicrohttpd's completion call. */
typedef struct request {
	route route;
	dialect dialect;
	bool post;
	bool too_big;
	buf body;
	/* A whole answer held back until its wait ends (or, stalled, until
	 * the client closes). */
	pacer_wait wait;
	bool waiting;
	char *answer;
	/* An answer is under way (streamed or held back): its end decides
	 * whether the client aborted it. */
	bool in_flight;
	bool ended_by_server;
	stream *stream;
} request;

conf *conf_new(const mockllm_opts *opts)
{
	static const mockllm_opts none;
	conf *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	atomic_init(&c->refs, 1);
	c->o = opts != NULL ? *opts : none;
	if (c->o.chunks == 0)
		c->o.chunks = 5;
	if (c->o.chunks < 0)
		c->o.chunks = 0;
	if (c->o.interval_ms < 0)
		c->o.interval_ms = 0;
	if (c->o.embed_dim <= 0)
		c->o.embed_dim = 8;
	if (c->o.fail_status == 0)
		c->o.fail_status = 500;
	c->o.text = strdup(c->o.text != NULL ? c->o.text : "w");
	c->o.error_message =
		strdup(c->o.error_message != NULL ? c->o.error_message
						  : "mock failure");
	if (c->o.text == NULL || c->o.error_message == NULL)
		goto fail;
	c->text_json = json_escape(c->o.text);
	c->error_json = json_escape(c->o.error_message);
	if (c->text_json == NULL || c->error_json == NULL)
		goto fail;
	return c;
fail:
	conf_unref(c);
	return NULL;
}

conf *conf_ref(conf *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void conf_unref(conf *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	free((char *)c->o.text);
	free((char *)c->o.error_message);
	free(c->text_json);
	free(c->error_json);
	free(c);
}

static route route_of(const char *url)
{
	if (strcmp(url, "/v1/chat/completions") == 0 ||
	    strcmp(url, "/chat/completions") == 0 ||
	    strcmp(url, "/api/chat") == 0)
		return ROUTE_CHAT;
	if (strcmp(url, "/v1/embeddings") == 0 ||
	    strcmp(url, "/embeddings") == 0 || strcmp(url, "/api/embed") == 0)
		return ROUTE_EMBED;
	return ROUTE_NONE;
}

static const char *error_type(unsigned status)
{
	if (status == 401)
		return "authentication_error";
	if (status == 429)
		return "rate_limit_error";
	if (status >= 500)
		return "server_error";
	return "invalid_request_error";
}

/* Queues body (malloc'ed, taken) as the answer; retry, when not NULL,
 * adds its Retry-After headers. */
static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status,
				 char *body, const mockllm_opts *retry)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char num[24];

	if (body == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (retry != NULL && retry->retry_after_s > 0) {
		snprintf(num, sizeof(num), "%d", retry->retry_after_s);
		MHD_add_response_header(r, "Retry-After", num);
	}
	if (retry != NULL && retry->retry_after_ms > 0) {
		snprintf(num, sizeof(num), "%d", retry->retry_after_ms);
		MHD_add_response_header(r, "retry-after-ms", num);
	}
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, request *r,
				  unsigned status, const char *message)
{
	return send_json(conn, status,
			 answer_error(r->dialect, message, error_type(status)),
			 NULL);
}

/* Counts the request, keeps a copy of it, and returns the options to
 * answer it with (a reference the caller drops). */
static conf *arrived(mockllm *m, request *r, struct MHD_Connection *conn)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       "Authorization");
	char *body = strndup(r->body.data ? r->body.data : "", r->body.len);
	char *auth_copy = auth != NULL ? strdup(auth) : NULL;
	conf *c;

	pthread_mutex_lock(&m->mu);
	free(m->last_body);
	free(m->last_auth);
	m->last_body = body;
	m->last_auth = auth_copy;
	m->requests++;
	c = conf_ref(m->conf);
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return c;
}

/* True when MOCKLLM_STATUS fails this request. */
static bool take_failure(mockllm *m, const conf *c)
{
	bool fail = false;

	if (c->o.fault != MOCKLLM_STATUS)
		return false;
	pthread_mutex_lock(&m->mu);
	if (m->failed < c->o.fail_times) {
		m->failed++;
		fail = true;
	}
	pthread_mutex_unlock(&m->mu);
	return fail;
}

static enum MHD_Result start_stream(mockllm *m, request *r,
				    struct MHD_Connection *conn, conf *c,
				    const stream_args *args)
{
	struct MHD_Response *resp = stream_new(&r->stream, m, c, conn, args);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(conn, 200, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		pthread_mutex_lock(&m->mu);
		m->open_streams++;
		r->in_flight = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
	}
	return ret;
}

static enum MHD_Result chat(mockllm *m, request *r, struct MHD_Connection *conn,
			    conf *c, json_t *req)
{
	json_t *messages = json_object_get(req, "messages");
	const char *model = json_string_value(json_object_get(req, "model"));
	json_t *streamed = json_object_get(req, "stream");
	json_t *opts = json_object_get(req, "stream_options");
	stream_args args;
	uint64_t delay;

	if (!json_is_array(messages))
		return send_error(conn, r, 400, "'messages' must be an array");
	args.dialect = r->dialect;
	args.model = model != NULL ? model : "mock";
	args.prompt_tokens = answer_prompt_tokens(messages);
	args.include_usage =
		c->o.include_usage_always ||
		json_is_true(json_object_get(opts, "include_usage"));
	args.id = atomic_fetch_add(&m->next_id, 1) + 1;
	/* Ollama streams unless told not to; OpenAI only when asked. */
	if (r->dialect == DIALECT_OLLAMA ? !json_is_false(streamed)
					 : json_is_true(streamed))
		return start_stream(m, r, conn, c, &args);

	r->in_flight = true;
	if (c->o.fault == MOCKLLM_DROP) {
		r->ended_by_server = true;
		return MHD_NO;
	}
	if (c->o.fault == MOCKLLM_STALL)
		delay = PACER_FOREVER;
	else
		delay = (uint64_t)c->o.chunks * (uint64_t)c->o.interval_ms *
			1000000u;
	r->answer = answer_chat(r->dialect, c, args.model, args.prompt_tokens,
				args.id);
	if (r->answer == NULL)
		return MHD_NO;
	if (delay == 0) {
		char *answer = r->answer;

		r->answer = NULL;
		return send_json(conn, 200, answer, NULL);
	}
	/* A whole answer takes as long as its chunks would: suspended, the
	 * connection holds no thread meanwhile. */
	pacer_wait_init(&r->wait, conn);
	if (pacer_suspend(&m->pacer, &r->wait,
			  delay == PACER_FOREVER ? delay : pacer_now() + delay,
			  1000000) != 0) {
		r->ended_by_server = true;
		return MHD_NO;
	}
	r->waiting = true;
	return MHD_YES;
}

/* The call libmicrohttpd makes once a held-back answer's wait ended. */
static enum MHD_Result after_wait(request *r, struct MHD_Connection *conn)
{
	char *answer = r->answer;

	r->waiting = false;
	r->answer = NULL;
	if (r->wait.ended != PACER_DUE) {
		r->ended_by_server = r->wait.ended == PACER_STOPPED;
		free(answer);
		return MHD_NO;
	}
	/* A client gone meanwhile makes the send fail: an abort. */
	return send_json(conn, 200, answer, NULL);
}

static enum MHD_Result embed(request *r, struct MHD_Connection *conn,
			     const conf *c, json_t *req)
{
	const char *model = json_string_value(json_object_get(req, "model"));
	bool bad;
	char *body = answer_embeddings(r->dialect, c, model ? model : "mock",
				       json_object_get(req, "input"), &bad);

	if (bad)
		return send_error(conn, r, 400,
				  "'input' must be a string or an array of "
				  "strings");
	return send_json(conn, 200, body, NULL);
}

static enum MHD_Result dispatch(mockllm *m, request *r,
				struct MHD_Connection *conn, conf *c,
				const char *url)
{
	char message[256];
	json_error_t err;
	json_t *req;
	enum MHD_Result ret;

	if (r->route == ROUTE_NONE) {
		snprintf(message, sizeof(message), "no such path: %.200s", url);
		return send_error(conn, r, 404, message);
	}
	if (!r->post)
		return send_error(conn, r, 405, "use POST");
	if (r->too_big || r->body.failed)
		return send_error(conn, r, 413, "request body too large");
	if (take_failure(m, c))
		return send_json(
			conn, (unsigned)c->o.fail_status,
			answer_error(r->dialect, c->o.error_message,
				     error_type((unsigned)c->o.fail_status)),
			&c->o);
	req = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0,
			 &err);
	if (!json_is_object(req)) {
		snprintf(message, sizeof(message), "invalid JSON body: %s",
			 err.text);
		json_decref(req);
		return send_error(conn, r, 400, message);
	}
	if (r->route == ROUTE_CHAT)
		ret = chat(m, r, conn, c, req);
	else
		ret = embed(r, conn, c, req);
	json_decref(req);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **ctx)
{
	mockllm *m = cls;
	request *r = *ctx;
	enum MHD_Result ret;
	conf *c;

	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		r->route = route_of(url);
		r->dialect = strncmp(url, "/api/", 5) == 0 ? DIALECT_OLLAMA
							   : DIALECT_OPENAI;
		r->post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
		*ctx = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->body.len + *upload_size > MAX_BODY)
			r->too_big = true;
		else
			buf_put(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->waiting)
		return after_wait(r, conn);
	c = arrived(m, r, conn);
	ret = dispatch(m, r, conn, c, url);
	conf_unref(c);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
			 enum MHD_RequestTerminationCode toe)
{
	mockllm *m = cls;
	request *r = *ctx;

	if (r == NULL)
		return;
	if (r->in_flight) {
		bool by_server = r->stream != NULL
					 ? stream_ended_by_server(r->stream)
					 : r->ended_by_server;

		pthread_mutex_lock(&m->mu);
		if (r->stream != NULL) {
			m->open_streams--;
			m->ended_streams++;
		}
		if (!by_server && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
		    toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN)
			m->aborted++;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
	}
	stream_free(r->stream);
	buf_free(&r->body);
	free(r->answer);
	free(r);
	*ctx = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *connection,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	mockllm *m = cls;

	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	pthread_mutex_lock(&m->mu);
	m->connections++;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

int mockllm_start_ex(mockllm **out, const mockllm_opts *opts, int port,
		     int threads)
{
	mockllm *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;
	struct sockaddr_in sa;
	struct MHD_OptionItem items[12];
	unsigned flags =
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
	bool tls = opts != NULL && opts->tls_cert != NULL;
	int n = 0;
	const union MHD_DaemonInfo *info;

	*out = NULL;
	if (m == NULL)
		return -1;
	if (pthread_condattr_init(&ca) != 0)
		goto free_m;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&m->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		goto free_m;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_mutex_init(&m->mu, NULL) != 0)
		goto destroy_cv;
	m->conf = conf_new(opts);
	if (m->conf == NULL)
		goto destroy_mu;
	if (pacer_start(&m->pacer) != 0)
		goto free_conf;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &sa};
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
					     (intptr_t)on_completed, m};
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
					     (intptr_t)on_connection, m};
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
					     CONNECTION_LIMIT, NULL};
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
					     CONNECTION_TIMEOUT_S, NULL};
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					     CONNECTION_MEMORY, NULL};
	/* 10,000 clients may connect at once; the kernel caps this at
	 * net.core.somaxconn. */
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE,
					     16384, NULL};
	if (threads > 1)
		items[n++] = (struct MHD_OptionItem){
			MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
	if (tls) {
		/* libmicrohttpd hands both to GnuTLS at start, which copies
		 * them. */
		flags |= MHD_USE_TLS;
		items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT,
						     0, (void *)opts->tls_cert};
		items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY,
						     0, (void *)opts->tls_key};
	}
	items[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	/* Not MHD_USE_TURBO: it skips the shutdown() that tells the client
	 * at once of a connection closed mid-answer (MOCKLLM_DROP), and the
	 * close itself waits for the next event on the daemon. */
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
				     MHD_OPTION_ARRAY, items, MHD_OPTION_END);
	if (m->daemon == NULL)
		goto stop_pacer;
	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0)
		goto stop_daemon;
	m->port = info->port;
	snprintf(m->url, sizeof(m->url), "%s://127.0.0.1:%d",
		 tls ? "https" : "http", m->port);
	*out = m;
	return 0;
stop_daemon:
	pacer_stop(&m->pacer);
	MHD_stop_daemon(m->daemon);
stop_pacer:
	pacer_stop(&m->pacer); /* does nothing the second time */
	pacer_free(&m->pacer);
free_conf:
	conf_unref(m->conf);
destroy_mu:
	pthread_mutex_destroy(&m->mu);
destroy_cv:
	pthread_cond_destroy(&m->cv);
free_m:
	free(m);
	return -1;
}

int mockllm_start(mockllm **out, const mockllm_opts *opts)
{
	return mockllm_start_ex(out, opts, 0, 1);
}

int mockllm_port(const mockllm *m)
{
	return m->port;
}

const char *mockllm_url(const mockllm *m)
{
	return m->url;
}

void mockllm_set(mockllm *m, const mockllm_opts *opts)
{
	conf *c = conf_new(opts);
	conf *old;

	/* Out of memory in a test fixture: keep the old options. */
	if (c == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	old = m->conf;
	m->conf = c;
	m->failed = 0;
	pthread_mutex_unlock(&m->mu);
	conf_unref(old);
}

static unsigned read_counter(const mockllm *m, const unsigned *counter)
{
	mockllm *mut = (mockllm *)m;
	unsigned v;

	pthread_mutex_lock(&mut->mu);
	v = *counter;
	pthread_mutex_unlock(&mut->mu);
	return v;
}

unsigned mockllm_requests(const mockllm *m)
{
	return read_counter(m, &m->requests);
}

unsigned mockllm_connections(const mockllm *m)
{
	return read_counter(m, &m->connections);
}

unsigned mockllm_open_streams(const mockllm *m)
{
	return read_counter(m, &m->open_streams);
}

unsigned mockllm_aborted(const mockllm *m)
{
	return read_counter(m, &m->aborted);
}

/* Waits until *counter >= n, or == n when exact. */
static int wait_counter(mockllm *m, const unsigned *counter, unsigned n,
			bool exact, int timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->mu);
	while (exact ? *counter != n : *counter < n) {
		if (pthread_cond_timedwait(&m->cv, &m->mu, &until) ==
		    ETIMEDOUT) {
			rc = (exact ? *counter == n : *counter >= n) ? 0 : -1;
			break;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int mockllm_wait_requests(mockllm *m, unsigned n, int timeout_ms)
{
	return wait_counter(m, &m->requests, n, false, timeout_ms);
}

int mockllm_wait_aborted(mockllm *m, unsigned n, int timeout_ms)
{
	return wait_counter(m, &m->aborted, n, false, timeout_ms);
}

int mockllm_wait_ended_streams(mockllm *m, unsigned n, int timeout_ms)
{
	return wait_counter(m, &m->ended_streams, n, false, timeout_ms);
}

int mockllm_wait_open_streams(mockllm *m, unsigned n, int timeout_ms)
{
	return wait_counter(m, &m->open_streams, n, true, timeout_ms);
}

char *mockllm_last_request(const mockllm *m, char **auth_header)
{
	mockllm *mut = (mockllm *)m;
	char *body = NULL;

	pthread_mutex_lock(&mut->mu);
	if (mut->last_body != NULL)
		body = strdup(mut->last_body);
	if (auth_header != NULL)
		*auth_header =
			mut->last_auth != NULL ? strdup(mut->last_auth) : NULL;
	pthread_mutex_unlock(&mut->mu);
	return body;
}

void mockllm_stop(mockllm **mp)
{
	mockllm *m;

	if (mp == NULL || *mp == NULL)
		return;
	m = *mp;
	*mp = NULL;
	/* libmicrohttpd must not stop while a connection is suspended: the
	 * pacer resumes them all first, and their answers end. */
	pacer_stop(&m->pacer);
	MHD_stop_daemon(m->daemon);
	pacer_free(&m->pacer);
	conf_unref(m->conf);
	free(m->last_body);
	free(m->last_auth);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m);
}
