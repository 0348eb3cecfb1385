/*
 * The chat actor over HTTP/2, as OpenAI and other hosted servers speak it:
 * nghttpx (Debian's nghttp2-proxy), started by the test on 127.0.0.1 with
 * TLS and the test certificate of tests/tls, offers h2 by ALPN and relays
 * each stream to the mock model server over HTTP/1.1. Its access log
 * names the protocol and the client port of every request, so the test
 * sees which connection carried what.
 */
#include <actorflow/actorflow.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "mockllm.h"
#include "testlib.h"

#define WAIT_MS 20000
#define TLS_FILE(name) AF_TLS_DIR "/" name
#define MAX_PORTS 64

typedef struct fixture {
	af_system *sys;
	af_client *client;
	mockllm *mock;
	test_proc proxy;
	char dir[64];
	char log[128];
	char url[64];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	unsigned port = test_free_port();
	char front[64], back[64], log_arg[160];
	char line[512];
	char *argv[] = {"nghttpx",
			"--conf=/dev/null",
			"--single-process",
			front,
			back,
			"--no-ocsp",
			"--errorlog-file=/dev/stderr",
			log_arg,
			"--accesslog-format=$alpn $remote_port $status",
			TLS_FILE("server.key"),
			TLS_FILE("server.pem"),
			NULL};
	bool listening = false;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/af-h2-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->log, sizeof(f->log), "%s/access.log", f->dir);
	assert_int_equal(mockllm_start(&f->mock, &(mockllm_opts){.chunks = 5}),
			 0);
	snprintf(front, sizeof(front), "--frontend=127.0.0.1,%u", port);
	snprintf(back, sizeof(back), "--backend=127.0.0.1,%d",
		 mockllm_port(f->mock));
	snprintf(log_arg, sizeof(log_arg), "--accesslog-file=%s", f->log);
	test_spawn(&f->proxy, AF_NGHTTPX, argv);
	/* Ready once it says so on its error log. */
	while (!listening && test_read_line(f->proxy.err, line, sizeof(line)))
		listening = strstr(line, "Listening on") != NULL;
	assert_true(listening);
	snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%u/v1", port);

	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	*state = f;
	return 0;
}

static void stop_proxy(fixture *f)
{
	test_output out = {0};

	if (f->proxy.pid <= 0)
		return;
	kill(f->proxy.pid, SIGTERM);
	test_finish(&f->proxy, &out);
	f->proxy.pid = 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	stop_proxy(f);
	mockllm_stop(&f->mock);
	test_remove_dir(f->dir);
	free(f);
	return 0;
}

static void spawn_chat(fixture *f)
{
	af_chat_config cfg;

	af_chat_config_init(&cfg, "openai");
	cfg.base_url = f->url;
	cfg.api_key_env = NULL;
	cfg.max_retries = 0;
	cfg.ca_file = TLS_FILE("ca.pem");
	assert_int_equal(af_spawn(f->sys, "chat", &af_chat_ops, &cfg, NULL),
			 AF_OK);
}

static af_stream *open_stream(fixture *f)
{
	af_payload *p;
	af_stream *st;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "prompt");
	af_pack_str(p, "hi");
	assert_int_equal(af_client_stream(f->client, "chat", "stream_complete",
					  p, WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	return st;
}

static void read_all(af_stream *st, int chunks)
{
	char *want = test_mock_text("w", chunks);
	test_streamed s;

	test_read_stream(st, WAIT_MS, &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, want);
	test_streamed_free(&s);
	free(want);
}

/* The access log, read once the proxy has stopped: how many requests,
 * all over h2 and answered 200, and the client ports that carried them
 * (in first-seen order), from line `from` on. */
static int read_log(fixture *f, int from, unsigned *ports, int *nports)
{
	FILE *in = fopen(f->log, "r");
	char alpn[16];
	unsigned port;
	int status;
	int n = 0;

	assert_non_null(in);
	*nports = 0;
	while (fscanf(in, "%15s %u %d", alpn, &port, &status) == 3) {
		bool seen = false;

		assert_string_equal(alpn, "h2");
		assert_int_equal(status, 200);
		if (n++ < from)
			continue;
		for (int i = 0; i < *nports; i++)
			seen = seen || ports[i] == port;
		if (!seen && *nports < MAX_PORTS)
			ports[(*nports)++] = port;
	}
	fclose(in);
	return n;
}

/* Answers of every small size, streamed and whole, each arriving at once:
 * libcurl 7.88's HTTP/2 reader kept the end of some of them and never
 * delivered it when its buffer was smaller than a frame. */
static void test_answers_of_every_size_over_h2(void **state)
{
	static const int sizes[] = {1, 2, 3,  4,  5,  6,  7,
				    8, 9, 10, 11, 12, 25, 40};
	fixture *f = *state;

	spawn_chat(f);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *want = test_mock_text("w", sizes[i]);
		af_stream *st;
		af_payload *p;
		af_msg *reply = NULL;
		char *content;

		mockllm_set(f->mock, &(mockllm_opts){.chunks = sizes[i]});
		st = open_stream(f);
		read_all(st, sizes[i]);
		af_stream_close(&st);

		assert_int_equal(af_payload_new(&p), AF_OK);
		af_pack_map(p, 1);
		af_pack_str(p, "prompt");
		af_pack_str(p, "hi");
		assert_int_equal(af_client_request(f->client, "chat",
						   "complete", p, WAIT_MS,
						   &reply),
				 AF_OK);
		content = test_str_of(
			af_value_get(af_msg_payload(reply), "content"));
		assert_string_equal(content, want);
		free(content);
		af_msg_destroy(&reply);
		af_payload_destroy(&p);
		free(want);
	}
}

/* A burst of streams opens connections before any shows it multiplexes;
 * once the server is known to speak h2, a second burst shares one. */
static void test_streams_multiplex_over_h2(void **state)
{
	enum { N = 20 };
	fixture *f = *state;
	af_stream *st[N];
	unsigned first[MAX_PORTS], second[MAX_PORTS];
	int nfirst, nsecond;

	spawn_chat(f);
	mockllm_set(f->mock, &(mockllm_opts){.chunks = 5, .interval_ms = 20});
	for (int wave = 0; wave < 2; wave++) {
		for (int i = 0; i < N; i++)
			st[i] = open_stream(f);
		for (int i = 0; i < N; i++) {
			read_all(st[i], 5);
			af_stream_close(&st[i]);
		}
	}
	assert_int_equal(af_stop(f->sys, "chat"), AF_OK);
	stop_proxy(f);
	assert_int_equal(read_log(f, 0, first, &nfirst), 2 * N);
	assert_int_equal(read_log(f, N, second, &nsecond), 2 * N);
	assert_int_equal(nsecond, 1);
	for (int i = 0; i < nsecond; i++) {
		bool kept = false;

		for (int j = 0; j < nfirst; j++)
			kept = kept || first[j] == second[i];
		assert_true(kept); /* a connection of the first burst, kept */
	}
}

/* A consumer that reads only once the server has sent all: past its
 * credit window the actor pauses the h2 stream (flow control holds the
 * rest at the server) and resumes it as credit returns. A stream beside
 * it on the same connection is not held up. */
static void test_paused_stream_over_h2(void **state)
{
	enum { LONG = 2 * AF_STREAM_WINDOW + 10 };
	fixture *f = *state;
	af_stream *slow;
	af_stream *quick;

	spawn_chat(f);
	mockllm_set(f->mock, &(mockllm_opts){.chunks = 3});
	quick = open_stream(f); /* the server is known to speak h2 after */
	read_all(quick, 3);
	af_stream_close(&quick);

	mockllm_set(f->mock, &(mockllm_opts){.chunks = LONG});
	slow = open_stream(f);
	assert_int_equal(mockllm_wait_requests(f->mock, 2, WAIT_MS), 0);
	mockllm_set(f->mock, &(mockllm_opts){.chunks = 3});
	quick = open_stream(f);
	read_all(quick, 3);
	af_stream_close(&quick);
	read_all(slow, LONG);
	af_stream_close(&slow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_answers_of_every_size_over_h2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streams_multiplex_over_h2,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_paused_stream_over_h2,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
