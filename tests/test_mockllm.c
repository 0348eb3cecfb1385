/* The mock model server (tests/mockllm): OpenAI and Ollama chat, streamed
 * and not, every fault, the SSE framing options, embeddings, errors, the
 * counters and their waits, and stopping with streams under way. Requests
 * go through libcurl easy handles; a request that must be cut short runs
 * on a multi handle the test drives until the server has reached the
 * point the test wants. Nothing waits on time: paced answers are only
 * checked to take at least their pauses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mockllm.h"

#define WAIT_MS 10000
#define MAX_EVENTS 256

static const char chat_body[] =
	"{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":"
	"\"be brief\"},{\"role\":\"user\",\"content\":\"hello big world\"}]";
/* Words in chat_body's messages: the prompt_tokens to expect. */
#define CHAT_WORDS 5

/* ---- requests ----------------------------------------------------------- */

typedef struct reply {
	CURLcode rc;
	long status;
	char *body;
	size_t len;
	int writes;           /* write callback calls */
	bool cut_in_crlf;     /* a write ended between '\r' and '\n' */
	bool cut_in_utf8;     /* a write ended inside a UTF-8 sequence */
	char retry_after[32]; /* Retry-After header */
	char retry_after_ms[32];
	char content_type[64];
	const char *needle; /* request_until: the text to wait for */
} reply;

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	reply *r = arg;
	size_t n = size * nmemb;
	unsigned char last;

	r->body = realloc(r->body, r->len + n + 1);
	assert_non_null(r->body);
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	r->writes++;
	last = (unsigned char)data[n - 1];
	if (last == '\r')
		r->cut_in_crlf = true;
	if (last >= 0xc0)
		r->cut_in_utf8 = true;
	return n;
}

static void copy_header(char *dst, size_t size, const char *value, size_t len)
{
	while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n'))
		len--;
	while (len > 0 && *value == ' ') {
		value++;
		len--;
	}
	if (len >= size)
		len = size - 1;
	memcpy(dst, value, len);
	dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	reply *r = arg;
	size_t n = size * nmemb;
	static const struct {
		const char *name;
		size_t off;
		size_t size;
	} wanted[] = {
		{"retry-after:", offsetof(reply, retry_after), 32},
		{"retry-after-ms:", offsetof(reply, retry_after_ms), 32},
		{"content-type:", offsetof(reply, content_type), 64},
	};

	for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
		size_t len = strlen(wanted[i].name);

		if (n > len && strncasecmp(data, wanted[i].name, len) == 0)
			copy_header((char *)r + wanted[i].off, wanted[i].size,
				    data + len, n - len);
	}
	return n;
}

static CURL *new_request(const mockllm *m, const char *path, const char *body,
			 struct curl_slist *headers, reply *r)
{
	CURL *e = curl_easy_init();
	char url[256];

	assert_non_null(e);
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "%s%s", mockllm_url(m), path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* A hang fails the test instead of hanging it. */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
	return e;
}

/* POSTs body (NULL: a GET) to path and waits for the whole reply. */
static void request(const mockllm *m, const char *path, const char *body,
		    reply *r)
{
	struct curl_slist *headers =
		curl_slist_append(NULL, "Authorization: Bearer sk-test");
	CURL *e = new_request(m, path, body, headers, r);

	r->rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);
}

static void reply_free(reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* Starts a request on a multi handle and drives it until until() holds,
 * then closes it: the client going away mid-answer. */
static void request_until(mockllm *m, const char *path, const char *body,
			  bool (*until)(mockllm *m, reply *r),
			  const char *needle, reply *r)
{
	CURLM *multi = curl_multi_init();
	CURL *e = new_request(m, path, body, NULL, r);
	int running = 1;

	r->needle = needle;
	curl_multi_add_handle(multi, e);
	while (!until(m, r)) {
		assert_int_equal(curl_multi_perform(multi, &running), CURLM_OK);
		assert_int_equal(running, 1);
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	curl_multi_remove_handle(multi, e);
	curl_easy_cleanup(e);
	curl_multi_cleanup(multi);
}

static bool got_needle(mockllm *m, reply *r)
{
	(void)m;
	return r->body != NULL && strstr(r->body, r->needle) != NULL;
}

/* For server_got_request: the request count to wait for. */
static unsigned want_requests;

static bool server_got_request(mockllm *m, reply *r)
{
	(void)r;
	return mockllm_requests(m) >= want_requests;
}

static char *chat(bool stream, const char *extra)
{
	static char body[1024];

	snprintf(body, sizeof(body), "%s,\"stream\":%s%s}", chat_body,
		 stream ? "true" : "false", extra ? extra : "");
	return body;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- parsing what came back --------------------------------------------- */

/* Splits an SSE body into its events' data (lines joined with '\n'), the
 * way the WHATWG parser does: "\r\n", "\n" and "\r" end lines, ':' lines
 * are comments, a blank line dispatches, an event without data is not
 * one. Returns how many events; *clean is false when the body ends inside
 * an event. */
static int sse_events(const char *body, char **events, bool *clean)
{
	char data[8192];
	size_t dlen = 0;
	bool has_data = false;
	int n = 0;
	const char *p = body;

	while (*p) {
		size_t len = strcspn(p, "\r\n");
		const char *next = p + len;

		if (*next == '\r' && next[1] == '\n')
			next += 2;
		else if (*next)
			next++;
		else
			break; /* a line without its end */
		if (len == 0) {
			if (has_data) {
				assert_true(n < MAX_EVENTS);
				events[n++] = strndup(data, dlen);
			}
			dlen = 0;
			has_data = false;
		} else if (strncmp(p, "data:", 5) == 0) {
			size_t skip = p[5] == ' ' ? 6 : 5;

			if (has_data)
				data[dlen++] = '\n';
			assert_true(dlen + len < sizeof(data));
			memcpy(data + dlen, p + skip, len - skip);
			dlen += len - skip;
			has_data = true;
		} else {
			assert_true(*p == ':');
		}
		p = next;
	}
	*clean = *p == '\0' && !has_data;
	return n;
}

/* Splits an NDJSON body into its lines. */
static int ndjson_lines(const char *body, char **lines, bool *clean)
{
	int n = 0;
	const char *p = body;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len;

		if (nl == NULL)
			break;
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		assert_true(n < MAX_EVENTS);
		lines[n++] = strndup(p, len);
		p = nl + 1;
	}
	*clean = *p == '\0';
	return n;
}

static void free_events(char **events, int n)
{
	for (int i = 0; i < n; i++)
		free(events[i]);
}

static json_t *parse(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static const char *jstr(json_t *j, const char *path)
{
	/* path: keys separated by '.', numbers index arrays */
	char key[64];

	while (*path && j != NULL) {
		size_t len = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)len, path);
		if (json_is_array(j))
			j = json_array_get(j, (size_t)atoi(key));
		else
			j = json_object_get(j, key);
		path += len + (path[len] == '.');
	}
	return json_string_value(j);
}

static long long jint(json_t *j, const char *path)
{
	char key[64];

	while (*path && j != NULL) {
		size_t len = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)len, path);
		if (json_is_array(j))
			j = json_array_get(j, (size_t)atoi(key));
		else
			j = json_object_get(j, key);
		path += len + (path[len] == '.');
	}
	assert_true(json_is_integer(j));
	return json_integer_value(j);
}

/* What an OpenAI stream said, checked for its shape on the way. */
typedef struct openai_stream {
	char content[1024];
	int chunks;      /* events with delta.content */
	bool role;       /* the first event gave the role */
	bool finish;     /* an event had finish_reason "stop" */
	int usage_total; /* usage.total_tokens, -1 without usage */
	bool done;       /* [DONE] came last */
	int malformed;   /* events that are not JSON */
	char error[128]; /* an error event's message */
	bool clean;
} openai_stream;

static void read_openai_stream(const reply *r, openai_stream *s)
{
	char *events[MAX_EVENTS];
	int n;

	memset(s, 0, sizeof(*s));
	n = sse_events(r->body, events, &s->clean);
	s->usage_total = -1;
	for (int i = 0; i < n; i++) {
		json_t *j;
		const char *text;

		assert_false(s->done); /* nothing after [DONE] */
		if (strcmp(events[i], "[DONE]") == 0) {
			s->done = true;
			continue;
		}
		j = json_loads(events[i], 0, NULL);
		if (j == NULL) {
			s->malformed++;
			continue;
		}
		if (json_object_get(j, "error") != NULL) {
			snprintf(s->error, sizeof(s->error), "%s",
				 jstr(j, "error.message"));
			assert_string_equal(jstr(j, "error.type"),
					    "server_error");
			json_decref(j);
			continue;
		}
		assert_string_equal(jstr(j, "object"), "chat.completion.chunk");
		assert_string_equal(jstr(j, "model"), "m1");
		if (i == 0) {
			assert_string_equal(jstr(j, "choices.0.delta.role"),
					    "assistant");
			s->role = true;
		}
		text = jstr(j, "choices.0.delta.content");
		if (text != NULL && *text) {
			strcat(s->content, text);
			s->chunks++;
		}
		if (jstr(j, "choices.0.finish_reason") != NULL) {
			assert_string_equal(jstr(j, "choices.0.finish_reason"),
					    "stop");
			s->finish = true;
		}
		if (json_object_get(j, "usage") != NULL) {
			assert_int_equal(
				json_array_size(json_object_get(j, "choices")),
				0);
			assert_int_equal(jint(j, "usage.prompt_tokens"),
					 CHAT_WORDS);
			s->usage_total = (int)jint(j, "usage.total_tokens");
		}
		json_decref(j);
	}
	free_events(events, n);
}

/* What an Ollama stream said. */
typedef struct ollama_stream {
	char content[1024];
	int chunks;
	bool done;
	int malformed;
	char error[128];
	bool clean;
} ollama_stream;

static void read_ollama_stream(const reply *r, ollama_stream *s)
{
	char *lines[MAX_EVENTS];
	int n;

	memset(s, 0, sizeof(*s));
	n = ndjson_lines(r->body, lines, &s->clean);
	for (int i = 0; i < n; i++) {
		json_t *j = json_loads(lines[i], 0, NULL);
		const char *text;

		assert_false(s->done);
		if (j == NULL) {
			s->malformed++;
			continue;
		}
		if (jstr(j, "error") != NULL) {
			snprintf(s->error, sizeof(s->error), "%s",
				 jstr(j, "error"));
			json_decref(j);
			continue;
		}
		assert_string_equal(jstr(j, "model"), "m1");
		assert_string_equal(jstr(j, "message.role"), "assistant");
		text = jstr(j, "message.content");
		assert_non_null(text);
		if (json_is_true(json_object_get(j, "done"))) {
			assert_string_equal(text, "");
			assert_string_equal(jstr(j, "done_reason"), "stop");
			assert_int_equal(jint(j, "prompt_eval_count"),
					 CHAT_WORDS);
			assert_int_equal(jint(j, "eval_count"),
					 s->chunks + s->malformed);
			s->done = true;
		} else {
			strcat(s->content, text);
			s->chunks++;
		}
		json_decref(j);
	}
	free_events(lines, n);
}

/* ---- tests -------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	return 0;
}

static void test_openai_whole(void **state)
{
	mockllm *m;
	reply r;
	json_t *j;
	char *auth;
	char *last;

	(void)state;
	assert_int_equal(mockllm_start(&m, NULL), 0);
	assert_true(mockllm_port(m) > 0);
	assert_null(mockllm_last_request(m, NULL));
	request(m, "/v1/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/json");
	j = parse(r.body);
	assert_string_equal(jstr(j, "object"), "chat.completion");
	assert_string_equal(jstr(j, "model"), "m1");
	assert_non_null(jstr(j, "id"));
	assert_string_equal(jstr(j, "choices.0.message.role"), "assistant");
	assert_string_equal(jstr(j, "choices.0.message.content"),
			    "w0 w1 w2 w3 w4 ");
	assert_string_equal(jstr(j, "choices.0.finish_reason"), "stop");
	assert_int_equal(jint(j, "usage.prompt_tokens"), CHAT_WORDS);
	assert_int_equal(jint(j, "usage.completion_tokens"), 5);
	assert_int_equal(jint(j, "usage.total_tokens"), CHAT_WORDS + 5);
	json_decref(j);
	reply_free(&r);

	assert_int_equal(mockllm_requests(m), 1);
	last = mockllm_last_request(m, &auth);
	assert_string_equal(last, chat(false, NULL));
	assert_string_equal(auth, "Bearer sk-test");
	free(last);
	free(auth);

	/* The path without /v1 answers too. */
	request(m, "/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	assert_int_equal(mockllm_requests(m), 2);
	assert_int_equal(mockllm_open_streams(m), 0);
	assert_int_equal(mockllm_aborted(m), 0);
	mockllm_stop(&m);
	assert_null(m);
	mockllm_stop(&m);
	mockllm_stop(NULL);
}

static void test_openai_stream(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	mockllm_opts o = {.chunks = 3};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "text/event-stream");
	read_openai_stream(&r, &s);
	assert_true(s.clean);
	assert_true(s.role);
	assert_string_equal(s.content, "w0 w1 w2 ");
	assert_int_equal(s.chunks, 3);
	assert_true(s.finish);
	assert_int_equal(s.usage_total, -1); /* not asked for */
	assert_true(s.done);
	assert_int_equal(s.malformed, 0);
	reply_free(&r);

	request(m, "/v1/chat/completions",
		chat(true, ",\"stream_options\":{\"include_usage\":true}"), &r);
	read_openai_stream(&r, &s);
	assert_int_equal(s.usage_total, CHAT_WORDS + 3);
	assert_true(s.done);
	reply_free(&r);

	o.include_usage_always = true;
	mockllm_set(m, &o);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	read_openai_stream(&r, &s);
	assert_int_equal(s.usage_total, CHAT_WORDS + 3);
	reply_free(&r);

	/* No chunks at all: still a role, a finish and [DONE]. */
	o.chunks = -1;
	mockllm_set(m, &o);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	read_openai_stream(&r, &s);
	assert_string_equal(s.content, "");
	assert_true(s.role && s.finish && s.done);
	reply_free(&r);
	assert_int_equal(mockllm_wait_open_streams(m, 0, WAIT_MS), 0);
	assert_int_equal(mockllm_aborted(m), 0);
	mockllm_stop(&m);
}

static void test_ollama(void **state)
{
	mockllm *m;
	reply r;
	ollama_stream s;
	json_t *j;

	char body[512];

	(void)state;
	assert_int_equal(mockllm_start(&m, NULL), 0);
	/* Ollama streams unless told not to. */
	snprintf(body, sizeof(body), "%s}", chat_body);
	request(m, "/api/chat", body, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/x-ndjson");
	read_ollama_stream(&r, &s);
	assert_true(s.clean);
	assert_string_equal(s.content, "w0 w1 w2 w3 w4 ");
	assert_int_equal(s.chunks, 5);
	assert_true(s.done);
	reply_free(&r);

	request(m, "/api/chat", chat(false, NULL), &r);
	assert_int_equal(r.status, 200);
	j = parse(r.body);
	assert_string_equal(jstr(j, "model"), "m1");
	assert_string_equal(jstr(j, "message.content"), "w0 w1 w2 w3 w4 ");
	assert_true(json_is_true(json_object_get(j, "done")));
	assert_string_equal(jstr(j, "done_reason"), "stop");
	assert_int_equal(jint(j, "prompt_eval_count"), CHAT_WORDS);
	assert_int_equal(jint(j, "eval_count"), 5);
	json_decref(j);
	reply_free(&r);
	mockllm_stop(&m);
}

/* Every framing option at once must parse to the plain answer. */
static void test_sse_framing(void **state)
{
	mockllm *m;
	reply plain, r;
	openai_stream a, b;
	mockllm_opts o = {.chunks = 4, .text = "é中"};
	const char *usage = ",\"stream_options\":{\"include_usage\":true}";

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, usage), &plain);
	read_openai_stream(&plain, &a);
	assert_string_equal(a.content, "é中0 é中1 é中2 é中3 ");

	o.crlf = true;
	o.comments = true;
	o.multiline_data = true;
	mockllm_set(m, &o);
	request(m, "/v1/chat/completions", chat(true, usage), &r);
	assert_non_null(strstr(r.body, "\r\n\r\n"));
	assert_non_null(strstr(r.body, ": keep-alive\r\n"));
	assert_non_null(strstr(r.body, ",\r\ndata: "));
	read_openai_stream(&r, &b);
	assert_true(b.clean);
	assert_string_equal(b.content, a.content);
	assert_int_equal(b.usage_total, a.usage_total);
	assert_true(b.role && b.finish && b.done);
	reply_free(&r);

	/* Cut into pieces of 1 to 3 bytes, each its own write. */
	o.split_writes = true;
	mockllm_set(m, &o);
	request(m, "/v1/chat/completions", chat(true, usage), &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_true(r.writes > (int)r.len / 3);
	assert_true(r.cut_in_crlf);
	assert_true(r.cut_in_utf8);
	read_openai_stream(&r, &b);
	assert_true(b.clean);
	assert_string_equal(b.content, a.content);
	assert_true(b.done);
	reply_free(&r);

	o.crlf = false;
	mockllm_set(m, &o);
	request(m, "/api/chat", chat(true, NULL), &r);
	assert_true(r.writes > (int)r.len / 3);
	{
		ollama_stream s;

		read_ollama_stream(&r, &s);
		assert_string_equal(s.content, a.content);
		assert_true(s.done);
	}
	reply_free(&r);
	reply_free(&plain);
	mockllm_stop(&m);
}

static void test_fault_status(void **state)
{
	mockllm *m;
	reply r;
	json_t *j;
	mockllm_opts o = {.fault = MOCKLLM_STATUS,
			  .fail_status = 429,
			  .fail_times = 2,
			  .retry_after_s = 3,
			  .retry_after_ms = 1500,
			  .error_message = "slow \"down\""};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	for (int i = 0; i < 2; i++) {
		request(m, "/v1/chat/completions", chat(true, NULL), &r);
		assert_int_equal(r.rc, CURLE_OK);
		assert_int_equal(r.status, 429);
		assert_string_equal(r.retry_after, "3");
		assert_string_equal(r.retry_after_ms, "1500");
		j = parse(r.body);
		assert_string_equal(jstr(j, "error.message"), "slow \"down\"");
		assert_string_equal(jstr(j, "error.type"), "rate_limit_error");
		json_decref(j);
		reply_free(&r);
	}
	request(m, "/v1/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.retry_after, "");
	reply_free(&r);

	/* A set starts the count again; Ollama's error body is a string. */
	o.fail_status = 503;
	o.fail_times = 1;
	o.retry_after_ms = 0;
	mockllm_set(m, &o);
	request(m, "/api/chat", chat(true, NULL), &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.retry_after, "3");
	assert_string_equal(r.retry_after_ms, "");
	j = parse(r.body);
	assert_string_equal(jstr(j, "error"), "slow \"down\"");
	json_decref(j);
	reply_free(&r);
	request(m, "/api/chat", chat(true, NULL), &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	assert_int_equal(mockllm_requests(m), 5);
	mockllm_stop(&m);
}

static void test_fault_drop(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	ollama_stream os;
	mockllm_opts o = {.fault = MOCKLLM_DROP, .fault_at = 2};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	/* The chunked body never ends: libcurl sees a cut transfer. */
	assert_int_not_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	read_openai_stream(&r, &s);
	assert_true(s.clean);
	assert_string_equal(s.content, "w0 w1 ");
	assert_false(s.finish);
	assert_false(s.done);
	reply_free(&r);

	request(m, "/api/chat", chat(true, NULL), &r);
	assert_int_not_equal(r.rc, CURLE_OK);
	read_ollama_stream(&r, &os);
	assert_string_equal(os.content, "w0 w1 ");
	assert_false(os.done);
	reply_free(&r);

	request(m, "/v1/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.rc, CURLE_GOT_NOTHING);
	reply_free(&r);
	/* Ended by the server: no abort. */
	assert_int_equal(mockllm_wait_open_streams(m, 0, WAIT_MS), 0);
	assert_int_equal(mockllm_aborted(m), 0);
	mockllm_stop(&m);
}

static void test_fault_malformed(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	ollama_stream os;
	mockllm_opts o = {.fault = MOCKLLM_MALFORMED, .fault_at = 1};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	read_openai_stream(&r, &s);
	assert_int_equal(s.malformed, 1);
	assert_string_equal(s.content, "w0 w2 w3 w4 ");
	assert_true(s.done);
	reply_free(&r);

	request(m, "/api/chat", chat(true, NULL), &r);
	read_ollama_stream(&r, &os);
	assert_int_equal(os.malformed, 1);
	assert_string_equal(os.content, "w0 w2 w3 w4 ");
	reply_free(&r);

	request(m, "/v1/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.status, 200);
	assert_null(json_loads(r.body, 0, NULL));
	reply_free(&r);
	mockllm_stop(&m);
}

static void test_fault_error_event(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	ollama_stream os;
	json_t *j;
	mockllm_opts o = {.fault = MOCKLLM_ERROR_EVENT, .fault_at = 2};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	read_openai_stream(&r, &s);
	assert_true(s.clean);
	assert_string_equal(s.content, "w0 w1 ");
	assert_string_equal(s.error, "mock failure");
	assert_false(s.finish);
	assert_false(s.done);
	reply_free(&r);

	request(m, "/api/chat", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	read_ollama_stream(&r, &os);
	assert_string_equal(os.content, "w0 w1 ");
	assert_string_equal(os.error, "mock failure");
	assert_false(os.done);
	reply_free(&r);

	request(m, "/v1/chat/completions", chat(false, NULL), &r);
	assert_int_equal(r.status, 200);
	j = parse(r.body);
	assert_string_equal(jstr(j, "error.message"), "mock failure");
	json_decref(j);
	reply_free(&r);
	mockllm_stop(&m);
}

static void test_fault_no_done(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	ollama_stream os;
	mockllm_opts o = {.fault = MOCKLLM_NO_DONE};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	read_openai_stream(&r, &s);
	assert_true(s.clean);
	assert_string_equal(s.content, "w0 w1 w2 w3 w4 ");
	assert_true(s.finish);
	assert_false(s.done);
	reply_free(&r);

	request(m, "/api/chat", chat(true, NULL), &r);
	assert_int_equal(r.rc, CURLE_OK);
	read_ollama_stream(&r, &os);
	assert_true(os.clean);
	assert_string_equal(os.content, "w0 w1 w2 w3 w4 ");
	assert_false(os.done);
	reply_free(&r);
	mockllm_stop(&m);
}

/* A stalled stream keeps its connection open; the client closing it is
 * seen at once and counted as an abort. */
static void test_fault_stall(void **state)
{
	mockllm *m;
	reply r;
	mockllm_opts o = {.fault = MOCKLLM_STALL, .fault_at = 1};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request_until(m, "/v1/chat/completions", chat(true, NULL), got_needle,
		      "w0 ", &r);
	reply_free(&r);
	assert_int_equal(mockllm_wait_aborted(m, 1, WAIT_MS), 0);
	assert_int_equal(mockllm_wait_open_streams(m, 0, WAIT_MS), 0);

	/* Not streamed: no answer at all until the client goes. */
	want_requests = 2;
	request_until(m, "/v1/chat/completions", chat(false, NULL),
		      server_got_request, NULL, &r);
	assert_null(r.body);
	assert_int_equal(mockllm_wait_aborted(m, 2, WAIT_MS), 0);
	reply_free(&r);
	mockllm_stop(&m);
}

/* A paced stream the client closes is counted when the server next
 * writes to it. */
static void test_abort_paced(void **state)
{
	mockllm *m;
	reply r;
	mockllm_opts o = {.chunks = 1000, .interval_ms = 5};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	assert_int_equal(mockllm_wait_aborted(m, 1, 1), -1);
	request_until(m, "/api/chat", chat(true, NULL), got_needle, "w1 ", &r);
	reply_free(&r);
	assert_int_equal(mockllm_wait_aborted(m, 1, WAIT_MS), 0);
	assert_int_equal(mockllm_wait_open_streams(m, 0, WAIT_MS), 0);
	mockllm_stop(&m);
}

static void test_pacing(void **state)
{
	mockllm *m;
	reply r;
	openai_stream s;
	mockllm_opts o = {.chunks = 4, .interval_ms = 25};
	double start;

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	start = now_ms();
	request(m, "/v1/chat/completions", chat(true, NULL), &r);
	assert_true(now_ms() - start >= 4 * 25);
	read_openai_stream(&r, &s);
	assert_string_equal(s.content, "w0 w1 w2 w3 ");
	assert_true(s.done);
	reply_free(&r);

	/* A whole answer takes as long as its chunks would. */
	start = now_ms();
	request(m, "/api/chat", chat(false, NULL), &r);
	assert_true(now_ms() - start >= 4 * 25);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	mockllm_stop(&m);
}

/* Many paced streams at once, on one multi handle. */
static void test_concurrent_streams(void **state)
{
	enum { N = 40 };
	mockllm *m;
	mockllm_opts o = {.chunks = 10, .interval_ms = 2};
	CURLM *multi = curl_multi_init();
	CURL *easy[N];
	reply r[N];
	int running = 1;
	CURLMsg *msg;
	int left;

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	for (int i = 0; i < N; i++) {
		easy[i] = new_request(
			m, i % 2 ? "/api/chat" : "/v1/chat/completions",
			chat(true, NULL), NULL, &r[i]);
		curl_multi_add_handle(multi, easy[i]);
	}
	while (running > 0) {
		curl_multi_perform(multi, &running);
		if (running > 0)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		assert_int_equal(msg->data.result, CURLE_OK);
	for (int i = 0; i < N; i++) {
		const char *want = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 ";

		if (i % 2) {
			ollama_stream s;

			read_ollama_stream(&r[i], &s);
			assert_string_equal(s.content, want);
			assert_true(s.done);
		} else {
			openai_stream s;

			read_openai_stream(&r[i], &s);
			assert_string_equal(s.content, want);
			assert_true(s.done);
		}
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
		reply_free(&r[i]);
	}
	curl_multi_cleanup(multi);
	assert_int_equal(mockllm_requests(m), N);
	assert_int_equal(mockllm_wait_open_streams(m, 0, WAIT_MS), 0);
	assert_int_equal(mockllm_aborted(m), 0);
	mockllm_stop(&m);
}

static double cosine(json_t *a, json_t *b)
{
	double dot = 0;

	for (size_t i = 0; i < json_array_size(a); i++)
		dot += json_real_value(json_array_get(a, i)) *
		       json_real_value(json_array_get(b, i));
	return dot;
}

static void test_embeddings(void **state)
{
	mockllm *m;
	reply r;
	json_t *j;
	json_t *v0, *v1, *v2;
	double norm = 0;
	mockllm_opts o = {.embed_dim = 64};

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	request(m, "/v1/embeddings",
		"{\"model\":\"e1\",\"input\":[\"The cat sat on the mat\","
		"\"the CAT sat on the mat\",\"quantum field theory\"]}",
		&r);
	assert_int_equal(r.status, 200);
	j = parse(r.body);
	assert_string_equal(jstr(j, "object"), "list");
	assert_string_equal(jstr(j, "model"), "e1");
	assert_int_equal(jint(j, "data.2.index"), 2);
	assert_string_equal(jstr(j, "data.0.object"), "embedding");
	assert_int_equal(jint(j, "usage.prompt_tokens"), 15);
	v0 = json_object_get(json_array_get(json_object_get(j, "data"), 0),
			     "embedding");
	v1 = json_object_get(json_array_get(json_object_get(j, "data"), 1),
			     "embedding");
	v2 = json_object_get(json_array_get(json_object_get(j, "data"), 2),
			     "embedding");
	assert_int_equal(json_array_size(v0), 64);
	for (size_t i = 0; i < 64; i++)
		norm += pow(json_real_value(json_array_get(v0, i)), 2);
	assert_true(fabs(norm - 1) < 1e-4);
	/* Case does not matter; shared words bring texts close. */
	assert_true(cosine(v0, v1) > 0.9999);
	assert_true(cosine(v0, v2) < 0.5);
	json_decref(j);
	reply_free(&r);

	request(m, "/api/embed", "{\"model\":\"e1\",\"input\":\"the cat\"}",
		&r);
	assert_int_equal(r.status, 200);
	j = parse(r.body);
	assert_string_equal(jstr(j, "model"), "e1");
	assert_int_equal(json_array_size(json_object_get(j, "embeddings")), 1);
	assert_int_equal(json_array_size(json_array_get(
				 json_object_get(j, "embeddings"), 0)),
			 64);
	json_decref(j);
	reply_free(&r);

	request(m, "/v1/embeddings", "{\"input\":[1,2]}", &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);
	request(m, "/api/embed", "{\"model\":\"e1\"}", &r);
	assert_int_equal(r.status, 400);
	j = parse(r.body);
	assert_non_null(jstr(j, "error"));
	json_decref(j);
	reply_free(&r);
	mockllm_stop(&m);
}

static void test_bad_requests(void **state)
{
	mockllm *m;
	reply r;
	json_t *j;

	(void)state;
	assert_int_equal(mockllm_start(&m, NULL), 0);
	request(m, "/v1/nothing", "{}", &r);
	assert_int_equal(r.status, 404);
	j = parse(r.body);
	assert_string_equal(jstr(j, "error.type"), "invalid_request_error");
	json_decref(j);
	reply_free(&r);

	request(m, "/api/nothing", "{}", &r);
	assert_int_equal(r.status, 404);
	j = parse(r.body);
	assert_non_null(jstr(j, "error"));
	json_decref(j);
	reply_free(&r);

	request(m, "/v1/chat/completions", "{\"model\":", &r);
	assert_int_equal(r.status, 400);
	j = parse(r.body);
	assert_non_null(jstr(j, "error.message"));
	json_decref(j);
	reply_free(&r);

	request(m, "/v1/chat/completions", "{\"model\":\"m\"}", &r);
	assert_int_equal(r.status, 400);
	reply_free(&r);

	request(m, "/v1/chat/completions", NULL, &r);
	assert_int_equal(r.status, 405);
	reply_free(&r);

	assert_int_equal(mockllm_requests(m), 5);
	assert_int_equal(mockllm_wait_requests(m, 5, WAIT_MS), 0);
	assert_int_equal(mockllm_wait_requests(m, 6, 1), -1);
	mockllm_stop(&m);
}

/* Stopping with streams under way, paced and stalled, with their clients
 * still connected, ends them and frees everything. */
static void test_stop_under_way(void **state)
{
	mockllm *m;
	mockllm_opts o = {.chunks = 1000, .interval_ms = 10};
	CURLM *multi = curl_multi_init();
	CURL *easy[3];
	reply r[3];
	int running = 1;

	(void)state;
	assert_int_equal(mockllm_start(&m, &o), 0);
	easy[0] = new_request(m, "/v1/chat/completions", chat(true, NULL), NULL,
			      &r[0]);
	curl_multi_add_handle(multi, easy[0]);
	while (mockllm_open_streams(m) < 1) {
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	o.fault = MOCKLLM_STALL;
	mockllm_set(m, &o);
	easy[1] = new_request(m, "/api/chat", chat(true, NULL), NULL, &r[1]);
	easy[2] = new_request(m, "/api/chat", chat(false, NULL), NULL, &r[2]);
	curl_multi_add_handle(multi, easy[1]);
	curl_multi_add_handle(multi, easy[2]);
	while (mockllm_open_streams(m) < 2 || mockllm_requests(m) < 3) {
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
	mockllm_stop(&m);
	/* The clients see their transfers end. */
	while (running > 0) {
		curl_multi_perform(multi, &running);
		if (running > 0)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	for (int i = 0; i < 3; i++) {
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
		reply_free(&r[i]);
	}
	curl_multi_cleanup(multi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openai_whole),
		cmocka_unit_test(test_openai_stream),
		cmocka_unit_test(test_ollama),
		cmocka_unit_test(test_sse_framing),
		cmocka_unit_test(test_fault_status),
		cmocka_unit_test(test_fault_drop),
		cmocka_unit_test(test_fault_malformed),
		cmocka_unit_test(test_fault_error_event),
		cmocka_unit_test(test_fault_no_done),
		cmocka_unit_test(test_fault_stall),
		cmocka_unit_test(test_abort_paced),
		cmocka_unit_test(test_pacing),
		cmocka_unit_test(test_concurrent_streams),
		cmocka_unit_test(test_embeddings),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_stop_under_way),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
