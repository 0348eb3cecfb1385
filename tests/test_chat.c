/*
 * The chat actor against the mock model server (tests/mockllm.c), which
 * each test starts on 127.0.0.1 with an ephemeral port: every provider,
 * streamed and whole answers, the framings servers use, and every failure
 * the actor must report without losing or duplicating text.
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "mockllm.h"
#include "testlib.h"

/* Streams read through testlib's helper. */
typedef test_streamed streamed;
#define read_stream(st, s) test_read_stream((st), WAIT_MS, (s))
#define streamed_free test_streamed_free
#define WAIT_MS 20000

typedef struct fixture {
	af_system *sys;
	af_client *client;
	mockllm *mock;
	char url[128];
	int64_t chat_timeout_ms; /* the next spawned chat's; 0: its default */
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	mockllm_opts o = {0};

	assert_non_null(f);
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	assert_int_equal(mockllm_start(&f->mock, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	mockllm_stop(&f->mock);
	free(f);
	return 0;
}

/* Spawns "chat" speaking provider to the mock server, with at most
 * max_concurrent transfers at once (0: the default), verifying an https
 * mock against ca_file (NULL: the system's CAs). */
static void spawn_chat_with(fixture *f, const char *provider, int max_retries,
			    int max_concurrent, const char *ca_file)
{
	af_chat_config cfg;

	af_chat_config_init(&cfg, provider);
	snprintf(f->url, sizeof(f->url), "%s%s", mockllm_url(f->mock),
		 strcmp(provider, "openai") == 0 ? "/v1" : "");
	cfg.base_url = f->url;
	cfg.max_retries = max_retries;
	cfg.retry_base_ms = 5;
	cfg.retry_max_ms = 50;
	cfg.api_key_env = "AF_TEST_CHAT_KEY";
	cfg.max_concurrent = max_concurrent;
	cfg.ca_file = ca_file;
	cfg.timeout_ms = f->chat_timeout_ms;
	assert_int_equal(af_spawn(f->sys, "chat", &af_chat_ops, &cfg, NULL),
			 AF_OK);
}

static void spawn_chat_capped(fixture *f, const char *provider, int max_retries,
			      int max_concurrent)
{
	spawn_chat_with(f, provider, max_retries, max_concurrent, NULL);
}

static void spawn_chat(fixture *f, const char *provider, int max_retries)
{
	spawn_chat_capped(f, provider, max_retries, 0);
}

static void set_mock(fixture *f, mockllm_opts o)
{
	mockllm_set(f->mock, &o);
}

/* {"messages": [{"role": "user", "content": text}]} */
static af_payload *question(const char *text)
{
	af_payload *p;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "messages");
	af_pack_array(p, 1);
	af_pack_map(p, 2);
	af_pack_str(p, "role");
	af_pack_str(p, "user");
	af_pack_str(p, "content");
	af_pack_str(p, text);
	assert_int_equal(af_payload_status(p), AF_OK);
	return p;
}

/* A whole answer: status, and the reply (or error message) in *out. */
static af_err ask(fixture *f, const char *type, const char *text, af_msg **out)
{
	af_payload *p = question(text);
	af_err err =
		af_client_request(f->client, "chat", type, p, WAIT_MS, out);

	af_payload_destroy(&p);
	return err;
}

/* Sends a request of type with payload p that must fail with code, the
 * error's text holding says. */
static void expect_refusal(fixture *f, const char *type, const af_payload *p,
			   af_err code, const char *says)
{
	af_msg *reply = NULL;
	const char *text = NULL;

	assert_int_equal(
		af_client_request(f->client, "chat", type, p, WAIT_MS, &reply),
		code);
	af_msg_error(reply, &text);
	if (text == NULL || strstr(text, says) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"",
			 text != NULL ? text : "(none)", says);
	af_msg_destroy(&reply);
}

/* Asks a question that must fail with code, the error's text holding
 * says. */
static void expect_error(fixture *f, af_err code, const char *says)
{
	af_payload *p = question("hi");

	expect_refusal(f, "chat", p, code, says);
	af_payload_destroy(&p);
}

static void stream_text(fixture *f, const char *text, streamed *s)
{
	af_payload *p = question(text);
	af_stream *st;

	assert_int_equal(af_client_stream(f->client, "chat", "stream_chat", p,
					  WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	read_stream(st, s);
	af_stream_close(&st);
}

/* ---- the offline default ---------------------------------------------- */

static const char rag_prompt[] =
	"Context information is below.\n"
	"---------------------\n"
	"The harbour of Lune was dredged in 1821. Its lighthouse burns "
	"whale oil. Fishermen land herring there every autumn.\n"
	"---------------------\n"
	"Given the context information and not prior knowledge, answer the "
	"query.\n"
	"Query: What does the lighthouse burn?\n"
	"Answer: ";

static void test_extractive_chat_and_stream_agree(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	streamed s;
	char *content;

	spawn_chat(f, "extractive", 0);
	assert_int_equal(ask(f, "chat", rag_prompt, &reply), AF_OK);
	content = test_str_of(af_value_get(af_msg_payload(reply), "content"));
	assert_non_null(strstr(content, "whale oil"));
	assert_null(strstr(content, "herring"));
	assert_true(af_value_str_eq(
		af_value_get(af_msg_payload(reply), "finish_reason"), "stop"));
	assert_true(
		af_value_get_int(af_value_get(af_msg_payload(reply), "usage"),
				 "completion_tokens", 0) > 0);

	stream_text(f, rag_prompt, &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, content);
	assert_true(s.chunks > 1); /* streamed in small pieces */
	assert_true(af_value_str_eq(
		af_value_get(af_msg_payload(s.end), "finish_reason"), "stop"));
	streamed_free(&s);
	free(content);
	af_msg_destroy(&reply);
	assert_int_equal(mockllm_requests(f->mock), 0); /* no network */
}

static void test_bad_requests(void **state)
{
	fixture *f = *state;
	af_payload *p;
	af_msg *reply = NULL;

	spawn_chat(f, "extractive", 0);
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "messages");
	af_pack_array(p, 0);
	expect_refusal(f, "chat", p, AF_EINVAL, "messages");

	af_payload_reset(p);
	af_pack_map(p, 1);
	af_pack_str(p, "prompt");
	af_pack_strn(p, "\xff\xfe bad", 6);
	expect_refusal(f, "complete", p, AF_EINVAL, "UTF-8");

	assert_int_equal(af_client_request(f->client, "chat", "translate", p,
					   WAIT_MS, &reply),
			 AF_ENOTSUP);
	af_msg_destroy(&reply);

	/* Refused, not cut to an int (2^32 + 5 would ask for 5 tokens). */
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "prompt");
	af_pack_str(p, "hi");
	af_pack_str(p, "max_tokens");
	af_pack_int(p, 4294967301LL);
	expect_refusal(f, "complete", p, AF_EINVAL, "max_tokens");
	af_payload_destroy(&p);
}

/* ---- openai ------------------------------------------------------------- */

static void test_openai_chat(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	char *want = test_mock_text("w", 5);
	char *content;
	char *body;
	char *auth = NULL;
	const af_value *usage;

	setenv("AF_TEST_CHAT_KEY", "sk-test-secret", 1);
	spawn_chat(f, "openai", 0);
	assert_int_equal(ask(f, "chat", "hello there", &reply), AF_OK);
	content = test_str_of(af_value_get(af_msg_payload(reply), "content"));
	assert_string_equal(content, want);
	assert_true(af_value_str_eq(
		af_value_get(af_msg_payload(reply), "finish_reason"), "stop"));
	usage = af_value_get(af_msg_payload(reply), "usage");
	assert_int_equal(af_value_get_int(usage, "completion_tokens", -1), 5);
	assert_int_equal(af_value_get_int(usage, "total_tokens", -1),
			 af_value_get_int(usage, "prompt_tokens", -1) + 5);
	body = mockllm_last_request(f->mock, &auth);
	assert_non_null(strstr(body, "\"stream\":false"));
	assert_non_null(strstr(body, "hello there"));
	assert_string_equal(auth, "Bearer sk-test-secret");
	free(body);
	free(auth);
	free(content);
	free(want);
	af_msg_destroy(&reply);
	unsetenv("AF_TEST_CHAT_KEY");
}

static void check_stream(fixture *f, mockllm_opts o, const char *t)
{
	streamed s;
	char *want = test_mock_text(t, o.chunks);

	set_mock(f, o);
	stream_text(f, "stream please", &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, want);
	assert_int_equal(s.chunks, o.chunks);
	assert_true(af_value_str_eq(
		af_value_get(af_msg_payload(s.end), "finish_reason"), "stop"));
	assert_int_equal(
		af_value_get_int(af_value_get(af_msg_payload(s.end), "usage"),
				 "completion_tokens", -1),
		o.chunks);
	streamed_free(&s);
	free(want);
}

static void test_openai_stream_framings(void **state)
{
	fixture *f = *state;
	const char *multibyte = "\xc3\xa9\xe2\x86\x92\xf0\x9f\x98\x80";
	char *body;

	spawn_chat(f, "openai", 0);
	check_stream(f, (mockllm_opts){.chunks = 7}, "w");
	body = mockllm_last_request(f->mock, NULL);
	assert_non_null(strstr(body, "\"stream\":true"));
	assert_non_null(strstr(body, "include_usage"));
	free(body);
	check_stream(f, (mockllm_opts){.chunks = 6, .crlf = true}, "w");
	check_stream(f, (mockllm_opts){.chunks = 6, .comments = true}, "w");
	check_stream(f, (mockllm_opts){.chunks = 6, .multiline_data = true},
		     "w");
	check_stream(f,
		     (mockllm_opts){.chunks = 9,
				    .split_writes = true,
				    .crlf = true,
				    .text = multibyte},
		     multibyte);
	check_stream(f,
		     (mockllm_opts){.chunks = 9,
				    .split_writes = true,
				    .comments = true,
				    .text = multibyte},
		     multibyte);
}

static void test_stream_request_without_stream_gets_one_reply(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	char *want = test_mock_text("w", 5);
	char *content;

	spawn_chat(f, "openai", 0);
	assert_int_equal(ask(f, "stream_chat", "hi", &reply), AF_OK);
	content = test_str_of(af_value_get(af_msg_payload(reply), "content"));
	assert_string_equal(content, want);
	free(content);
	free(want);
	af_msg_destroy(&reply);
}

static void test_complete(void **state)
{
	fixture *f = *state;
	af_payload *p;
	af_msg *reply = NULL;
	char *body;

	spawn_chat(f, "openai", 0);
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 2);
	af_pack_str(p, "prompt");
	af_pack_str(p, "Once upon a time");
	af_pack_str(p, "max_tokens");
	af_pack_int(p, 7);
	assert_int_equal(af_client_request(f->client, "chat", "complete", p,
					   WAIT_MS, &reply),
			 AF_OK);
	body = mockllm_last_request(f->mock, NULL);
	assert_non_null(strstr(body, "Once upon a time"));
	assert_non_null(strstr(body, "\"max_tokens\":7"));
	free(body);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* ---- ollama ------------------------------------------------------------- */

static void test_ollama_chat_and_stream(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	char *want = test_mock_text("w", 5);
	char *content;
	char *body;

	spawn_chat(f, "ollama", 0);
	assert_int_equal(ask(f, "chat", "hello", &reply), AF_OK);
	content = test_str_of(af_value_get(af_msg_payload(reply), "content"));
	assert_string_equal(content, want);
	assert_int_equal(
		af_value_get_int(af_value_get(af_msg_payload(reply), "usage"),
				 "completion_tokens", -1),
		5);
	body = mockllm_last_request(f->mock, NULL);
	assert_non_null(strstr(body, "\"stream\":false"));
	free(body);
	free(content);
	free(want);
	af_msg_destroy(&reply);

	check_stream(f, (mockllm_opts){.chunks = 8}, "w");
	check_stream(f,
		     (mockllm_opts){.chunks = 8,
				    .split_writes = true,
				    .text = "\xc3\xa9t\xc3\xa9"},
		     "\xc3\xa9t\xc3\xa9");
}

/* A token count beyond any integer (1e39) reads as 0: converting it would
 * be undefined, and it must not become a negative or a wrapped count. */
static void expect_counts(const af_value *usage, int64_t prompt,
			  int64_t completion)
{
	assert_int_equal(af_value_get_int(usage, "prompt_tokens", -1), prompt);
	assert_int_equal(af_value_get_int(usage, "completion_tokens", -1),
			 completion);
}

static void test_huge_token_counts_read_as_zero(void **state)
{
	fixture *f = *state;
	const char *providers[] = {"openai", "ollama"};
	af_msg *reply = NULL;
	streamed s;

	for (size_t i = 0; i < 2; i++) {
		spawn_chat(f, providers[i], 0);
		set_mock(f, (mockllm_opts){.chunks = 4,
					   .fault = MOCKLLM_HUGE_NUMBER});
		assert_int_equal(ask(f, "chat", "hi", &reply), AF_OK);
		expect_counts(af_value_get(af_msg_payload(reply), "usage"), 0,
			      4);
		af_msg_destroy(&reply);
		stream_text(f, "hi", &s);
		assert_int_equal(s.status, AF_OK);
		expect_counts(af_value_get(af_msg_payload(s.end), "usage"), 0,
			      4);
		streamed_free(&s);
		assert_int_equal(af_stop(f->sys, "chat"), AF_OK);
	}
}

/* ---- failures ----------------------------------------------------------- */

static void test_retry_after_then_success(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	streamed s;
	char *want = test_mock_text("w", 5);

	spawn_chat(f, "openai", 3);
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 429,
				   .fail_times = 2,
				   .retry_after_ms = 20});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_OK);
	assert_int_equal(mockllm_requests(f->mock), 3);
	af_msg_destroy(&reply);

	/* Retry-After in seconds, and 503, for a stream. */
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 503,
				   .fail_times = 1,
				   .retry_after_s = 1});
	stream_text(f, "hi", &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, want);
	assert_int_equal(mockllm_requests(f->mock), 5);
	streamed_free(&s);
	free(want);
}

static void test_retries_exhausted_carry_status_and_message(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text;

	setenv("AF_TEST_CHAT_KEY", "sk-never-shown", 1);
	spawn_chat(f, "openai", 2);
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 500,
				   .fail_times = 100,
				   .error_message = "the model is overloaded"});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_EHTTP);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, "HTTP 500"));
	assert_non_null(strstr(text, "the model is overloaded"));
	assert_null(strstr(text, "sk-never-shown"));
	assert_int_equal(mockllm_requests(f->mock), 3);
	af_msg_destroy(&reply);
	unsetenv("AF_TEST_CHAT_KEY");
}

/* A server that quotes the key in its error message: the error the
 * requester gets has it blanked, whether the message came with an error
 * status or inside a stream, and even where the message is cut short
 * through the key. */
static void test_key_echoed_by_the_server_is_redacted(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text;
	char long_message[256];
	streamed s;

	setenv("AF_TEST_CHAT_KEY", "sk-echoed-secret", 1);
	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 401,
				   .fail_times = 1,
				   .error_message =
					   "bad key sk-echoed-secret, see "
					   "Bearer sk-echoed-secret"});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_EHTTP);
	af_msg_error(reply, &text);
	assert_null(strstr(text, "sk-echoed-secret"));
	assert_non_null(strstr(text, "bad key [redacted], see Bearer "
				     "[redacted]"));
	af_msg_destroy(&reply);

	/* A server's message is cut at 200 characters: here inside the key. */
	snprintf(long_message, sizeof(long_message), "%190s sk-echoed-secret",
		 "x");
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 401,
				   .fail_times = 1,
				   .error_message = long_message});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_EHTTP);
	af_msg_error(reply, &text);
	assert_null(strstr(text, "sk-echoed"));
	af_msg_destroy(&reply);

	set_mock(f,
		 (mockllm_opts){.chunks = 4,
				.fault = MOCKLLM_ERROR_EVENT,
				.fault_at = 2,
				.error_message = "quota of sk-echoed-secret"});
	stream_text(f, "hi", &s);
	assert_int_equal(s.status, AF_EREMOTE);
	assert_null(strstr(s.error, "sk-echoed-secret"));
	assert_non_null(strstr(s.error, "quota of [redacted]"));
	streamed_free(&s);
	unsetenv("AF_TEST_CHAT_KEY");
}

/* An answer larger than the system's messages allow: the requester gets
 * AF_EMSGSIZE and why, at once, and the actor goes on. */
static void test_answer_too_large_for_a_message(void **state)
{
	fixture *f = *state;
	af_system_opts so = {.max_message_size = 64 * 1024};
	af_msg *reply = NULL;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	assert_int_equal(af_system_new(&f->sys, &so), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 20000});
	expect_error(f, AF_EMSGSIZE, "the answer could not be sent");
	set_mock(f, (mockllm_opts){.chunks = 3, .interval_ms = 10});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_OK);
	af_msg_destroy(&reply);
}

static void test_client_errors_fail_at_once(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text;

	spawn_chat(f, "openai", 3);
	set_mock(f, (mockllm_opts){.fault = MOCKLLM_STATUS,
				   .fail_status = 401,
				   .fail_times = 100,
				   .error_message = "invalid api key"});
	assert_int_equal(ask(f, "chat", "hi", &reply), AF_EHTTP);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, "HTTP 401: invalid api key"));
	assert_int_equal(mockllm_requests(f->mock), 1);
	af_msg_destroy(&reply);
}

/* A stream broken after chunks were delivered fails: never retried (the
 * text would come twice), never a silent success. */
static void check_broken_stream(fixture *f, mockllm_fault fault, af_err want,
				const char *says)
{
	streamed s;
	unsigned before = mockllm_requests(f->mock);

	set_mock(f, (mockllm_opts){.chunks = 6, .fault = fault, .fault_at = 3});
	stream_text(f, "hi", &s);
	assert_int_equal(s.status, want);
	assert_non_null(s.error);
	if (says != NULL && strstr(s.error, says) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", s.error, says);
	/* What came before the fault arrived, once; a stream missing only
	 * its end marker brought every chunk. */
	assert_string_equal(s.text, fault == MOCKLLM_NO_DONE
					    ? "w0 w1 w2 w3 w4 w5 "
					    : "w0 w1 w2 ");
	assert_int_equal(mockllm_requests(f->mock), before + 1);
	streamed_free(&s);
}

static void test_openai_broken_streams(void **state)
{
	fixture *f = *state;

	spawn_chat(f, "openai", 3);
	check_broken_stream(f, MOCKLLM_MALFORMED, AF_EPROTO, "malformed JSON");
	check_broken_stream(f, MOCKLLM_ERROR_EVENT, AF_EREMOTE, "mock failure");
	check_broken_stream(f, MOCKLLM_NO_DONE, AF_EPROTO, "[DONE]");
	check_broken_stream(f, MOCKLLM_DROP, AF_EPEERDOWN, NULL);
}

static void test_ollama_broken_streams(void **state)
{
	fixture *f = *state;

	spawn_chat(f, "ollama", 3);
	check_broken_stream(f, MOCKLLM_MALFORMED, AF_EPROTO, "malformed JSON");
	check_broken_stream(f, MOCKLLM_ERROR_EVENT, AF_EREMOTE, "mock failure");
	check_broken_stream(f, MOCKLLM_NO_DONE, AF_EPROTO, "done");
	check_broken_stream(f, MOCKLLM_DROP, AF_EPEERDOWN, NULL);
}

static void test_cancel_aborts_the_transfer(void **state)
{
	fixture *f = *state;
	af_payload *p = question("hi");
	af_stream *st;
	af_msg *m = NULL;

	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 10,
				   .fault = MOCKLLM_STALL,
				   .fault_at = 2});
	assert_int_equal(af_client_stream(f->client, "chat", "stream_chat", p,
					  WAIT_MS, &st),
			 AF_OK);
	assert_int_equal(af_stream_next(st, WAIT_MS, &m), AF_OK);
	af_msg_destroy(&m);
	af_stream_close(&st);
	assert_int_equal(mockllm_wait_aborted(f->mock, 1, WAIT_MS), 0);
	af_payload_destroy(&p);
}

static void test_deadline_aborts_the_transfer(void **state)
{
	fixture *f = *state;
	af_payload *p = question("hi");
	af_stream *st;
	streamed s;

	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 10,
				   .fault = MOCKLLM_STALL,
				   .fault_at = 1});
	assert_int_equal(
		af_client_stream(f->client, "chat", "stream_chat", p, 300, &st),
		AF_OK);
	read_stream(st, &s);
	assert_int_equal(s.status, AF_ETIMEDOUT);
	assert_string_equal(s.text, "w0 ");
	af_stream_close(&st);
	assert_int_equal(mockllm_wait_aborted(f->mock, 1, WAIT_MS), 0);
	streamed_free(&s);
	af_payload_destroy(&p);
}

/* An actor that asks "chat" for a stream when told "go" and counts what
 * comes back. */
typedef struct asker {
	test_signal chunks;
	test_signal ended;
	af_err status; /* of the end; AF_EAGAIN while none came */
} asker;

static void asker_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	test_signal_add(&((asker *)arg)->chunks);
}

static void asker_end(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	((asker *)arg)->status = status;
	test_signal_add(&((asker *)arg)->ended);
}

static af_err asker_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err asker_handle(af_ctx *ctx, void *state, af_msg *m)
{
	af_payload *p = question("hi");
	af_err err = af_request_stream(ctx, "chat", "stream_chat", p, 0,
				       asker_chunk, asker_end, state, NULL);

	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops asker_ops = {
	.type_name = "asker",
	.init = asker_init,
	.handle = asker_handle,
};

/* The requester goes away mid-stream: the chat actor hears it and aborts
 * the HTTP transfer, as it does for a cancel. */
static void test_requester_gone_aborts_the_transfer(void **state)
{
	fixture *f = *state;
	asker a = {.status = AF_EAGAIN};

	test_signal_init(&a.chunks);
	test_signal_init(&a.ended);
	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 10,
				   .fault = MOCKLLM_STALL,
				   .fault_at = 2});
	assert_int_equal(af_spawn(f->sys, "asker", &asker_ops, &a, NULL),
			 AF_OK);
	assert_int_equal(
		af_client_tell(f->client, "asker", "go", NULL, WAIT_MS), AF_OK);
	assert_true(test_signal_wait(&a.chunks, 2, WAIT_MS));
	assert_int_equal(af_stop(f->sys, "asker"), AF_OK);
	assert_int_equal(a.status, AF_ECANCELED);
	assert_int_equal(mockllm_wait_aborted(f->mock, 1, WAIT_MS), 0);
	test_signal_fini(&a.chunks);
	test_signal_fini(&a.ended);
}

/* A configured timeout too long to add to the clock (INT64_MAX ms) is no
 * timeout, not a deadline wrapped into the past: a request without a
 * deadline of its own (an actor's af_request with 0) gets its answer. */
static void test_endless_timeout_is_no_deadline(void **state)
{
	fixture *f = *state;
	asker a = {.status = AF_EAGAIN};

	test_signal_init(&a.chunks);
	test_signal_init(&a.ended);
	f->chat_timeout_ms = INT64_MAX;
	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 3, .interval_ms = 10});
	assert_int_equal(af_spawn(f->sys, "asker", &asker_ops, &a, NULL),
			 AF_OK);
	assert_int_equal(
		af_client_tell(f->client, "asker", "go", NULL, WAIT_MS), AF_OK);
	assert_true(test_signal_wait(&a.ended, 1, WAIT_MS));
	assert_int_equal(a.status, AF_OK);
	assert_true(test_signal_wait(&a.chunks, 3, WAIT_MS));
	assert_int_equal(af_stop(f->sys, "asker"), AF_OK);
	test_signal_fini(&a.chunks);
	test_signal_fini(&a.ended);
}

static void test_connection_refused(void **state)
{
	fixture *f = *state;

	spawn_chat(f, "openai", 2);
	/* Nothing listens on the port once the mock server is gone. */
	mockllm_stop(&f->mock);
	expect_error(f, AF_EPEERDOWN, "openai");
	assert_int_equal(mockllm_start(&f->mock, &(mockllm_opts){0}), 0);
}

/* ---- configuration --------------------------------------------------------
 */

/* af_chat_config_from_env reads what OpenAI's and Ollama's clients read. */
static void test_config_from_env(void **state)
{
	static const char *const vars[] = {"OPENAI_BASE_URL", "OPENAI_API_KEY",
					   "OPENAI_MODEL",    "OLLAMA_HOST",
					   "OLLAMA_MODEL",    "SSL_CERT_FILE"};
	char *saved[6];
	af_chat_config c;

	for (int i = 0; i < 6; i++) {
		const char *v = getenv(vars[i]);
		saved[i] = v != NULL ? strdup(v) : NULL;
		unsetenv(vars[i]);
	}
	af_chat_config_from_env(&c);
	assert_string_equal(c.provider, "extractive");
	assert_null(c.ca_file);

	setenv("OLLAMA_HOST", "10.0.0.2:11434", 1);
	setenv("OLLAMA_MODEL", "qwen3", 1);
	af_chat_config_from_env(&c);
	assert_string_equal(c.provider, "ollama");
	assert_string_equal(c.base_url, "10.0.0.2:11434");
	assert_string_equal(c.model, "qwen3");
	assert_null(c.api_key_env);

	/* OpenAI's variables win over Ollama's. */
	setenv("OPENAI_API_KEY", "sk-x", 1);
	setenv("OPENAI_MODEL", "gpt-4.1", 1);
	setenv("SSL_CERT_FILE", "/etc/private-ca.pem", 1);
	af_chat_config_from_env(&c);
	assert_string_equal(c.provider, "openai");
	assert_string_equal(c.base_url, "https://api.openai.com/v1");
	assert_string_equal(c.model, "gpt-4.1");
	assert_string_equal(c.api_key_env, "OPENAI_API_KEY");
	assert_string_equal(c.ca_file, "/etc/private-ca.pem");
	setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1", 1);
	af_chat_config_from_env(&c);
	assert_string_equal(c.base_url, "http://127.0.0.1:8080/v1");

	for (int i = 0; i < 6; i++) {
		if (saved[i] != NULL)
			setenv(vars[i], saved[i], 1);
		else
			unsetenv(vars[i]);
		free(saved[i]);
	}
	(void)state;
}

/* A provider the actor does not know fails the spawn, naming it and the
 * ones it knows. */
static void test_unknown_provider_says_so(void **state)
{
	af_system *sys = NULL;
	af_chat_config c;

	af_chat_config_init(&c, "gpt4all");
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	test_spawn_refused(sys, "chat", &af_chat_ops, &c, AF_EINVAL,
			   "chat: unknown provider \"gpt4all\" (known: "
			   "extractive, openai, ollama)");
	af_system_destroy(&sys);
	(void)state;
}

/* ---- TLS ---------------------------------------------------------------- */

#define TLS_FILE(name) AF_TLS_DIR "/" name

static char *read_text(const char *path)
{
	FILE *in = fopen(path, "rb");
	char *text = calloc(1, 4096);
	size_t n;

	assert_non_null(in);
	assert_non_null(text);
	n = fread(text, 1, 4095, in);
	assert_true(n > 0 && n < 4095);
	fclose(in);
	return text;
}

/* Restarts the mock as an https server with the certificate tests/tls/
 * holds for 127.0.0.1, signed by the test CA there. */
static void restart_mock_tls(fixture *f)
{
	char *cert = read_text(TLS_FILE("server.pem"));
	char *key = read_text(TLS_FILE("server.key"));

	mockllm_stop(&f->mock);
	assert_int_equal(
		mockllm_start(&f->mock, &(mockllm_opts){.chunks = 3,
							.tls_cert = cert,
							.tls_key = key}),
		0);
	assert_non_null(strstr(mockllm_url(f->mock), "https://"));
	free(cert);
	free(key);
}

/* A server behind a private CA: with ca_file naming that CA, streamed and
 * whole answers come over TLS. */
static void test_https_with_a_private_ca(void **state)
{
	fixture *f = *state;
	char *want = test_mock_text("w", 3);
	af_msg *reply = NULL;
	char *content;

	restart_mock_tls(f);
	spawn_chat_with(f, "openai", 0, 0, TLS_FILE("ca.pem"));
	/* The server stays https: mockllm_set keeps what start read. */
	check_stream(f, (mockllm_opts){.chunks = 3}, "w");
	assert_int_equal(ask(f, "chat", "over TLS", &reply), AF_OK);
	content = test_str_of(af_value_get(af_msg_payload(reply), "content"));
	assert_string_equal(content, want);
	free(content);
	af_msg_destroy(&reply);
	free(want);
}

/* A certificate the CAs do not vouch for fails the request at once, with
 * libcurl's reason, and is not retried: no HTTP request reaches the
 * server, over one connection. A CA file that cannot be read fails the
 * same way, naming the file. */
static void test_https_untrusted_fails_at_once(void **state)
{
	fixture *f = *state;

	restart_mock_tls(f);
	/* The system's CAs do not know the test CA. */
	spawn_chat_with(f, "openai", 3, 0, NULL);
	expect_error(f, AF_EPEERDOWN, "certificate");
	assert_int_equal(mockllm_requests(f->mock), 0);
	assert_int_equal(mockllm_connections(f->mock), 1);
	assert_int_equal(af_stop(f->sys, "chat"), AF_OK);

	spawn_chat_with(f, "openai", 3, 0, TLS_FILE("no-such-ca.pem"));
	expect_error(f, AF_EPEERDOWN, "no-such-ca.pem");
	assert_int_equal(mockllm_requests(f->mock), 0);
}

/* ---- load --------------------------------------------------------------- */

static void test_many_streams_at_once(void **state)
{
	enum { N = 64 };
	fixture *f = *state;
	af_payload *p = question("hi");
	af_stream *st[N];
	char *want = test_mock_text("w", 4);

	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 4, .interval_ms = 20});
	for (int i = 0; i < N; i++)
		assert_int_equal(af_client_stream(f->client, "chat",
						  "stream_chat", p, WAIT_MS,
						  &st[i]),
				 AF_OK);
	for (int i = 0; i < N; i++) {
		streamed s;

		read_stream(st[i], &s);
		assert_int_equal(s.status, AF_OK);
		assert_string_equal(s.text, want);
		streamed_free(&s);
		af_stream_close(&st[i]);
	}
	free(want);
	af_payload_destroy(&p);
}

/* Calls one after another share one connection (keep-alive); past 64
 * transfers at once, the extra ones close theirs when they end, and the
 * connections kept still serve the calls that follow. */
static void test_connections_reused(void **state)
{
	enum { BURST = 80 };
	fixture *f = *state;
	af_payload *p = question("hi");
	af_stream *st[BURST];
	streamed s;

	spawn_chat(f, "openai", 0);
	set_mock(f, (mockllm_opts){.chunks = 2});
	for (int i = 0; i < 3; i++) {
		stream_text(f, "one after another", &s);
		assert_int_equal(s.status, AF_OK);
		streamed_free(&s);
	}
	assert_int_equal(mockllm_requests(f->mock), 3);
	assert_int_equal(mockllm_connections(f->mock), 1);

	/* Held open until all have started, so none can reuse another's. */
	set_mock(f, (mockllm_opts){.chunks = 2, .interval_ms = 300});
	for (int i = 0; i < BURST; i++)
		assert_int_equal(af_client_stream(f->client, "chat",
						  "stream_chat", p, WAIT_MS,
						  &st[i]),
				 AF_OK);
	for (int i = 0; i < BURST; i++) {
		read_stream(st[i], &s);
		assert_int_equal(s.status, AF_OK);
		streamed_free(&s);
		af_stream_close(&st[i]);
	}
	assert_in_range(mockllm_connections(f->mock), BURST, BURST + 1);
	set_mock(f, (mockllm_opts){.chunks = 2});
	for (int i = 0; i < 3; i++) {
		stream_text(f, "after the burst", &s);
		assert_int_equal(s.status, AF_OK);
		streamed_free(&s);
	}
	assert_in_range(mockllm_connections(f->mock), BURST, BURST + 1);
	af_payload_destroy(&p);
}

/* Past max_concurrent, transfers queue and start as others end; a queued
 * request that is cancelled never reaches the server. */
static void test_transfers_queue_past_the_cap(void **state)
{
	enum { N = 6 };
	fixture *f = *state;
	af_payload *p = question("hi");
	af_stream *st[N];
	af_stream *dropped;
	char *want = test_mock_text("w", 3);

	spawn_chat_capped(f, "openai", 0, 2);
	set_mock(f, (mockllm_opts){.chunks = 3, .interval_ms = 100});
	for (int i = 0; i < N; i++) {
		assert_int_equal(af_client_stream(f->client, "chat",
						  "stream_chat", p, WAIT_MS,
						  &st[i]),
				 AF_OK);
		if (i == 1) {
			/* Third in line: it waits behind the first two. */
			assert_int_equal(af_client_stream(f->client, "chat",
							  "stream_chat", p,
							  WAIT_MS, &dropped),
					 AF_OK);
		}
	}
	assert_int_equal(mockllm_wait_open_streams(f->mock, 2, WAIT_MS), 0);
	af_stream_close(&dropped);
	for (int i = 0; i < N; i++) {
		streamed s;

		read_stream(st[i], &s);
		assert_int_equal(s.status, AF_OK);
		assert_string_equal(s.text, want);
		streamed_free(&s);
		af_stream_close(&st[i]);
	}
	assert_int_equal(mockllm_requests(f->mock), N);
	assert_int_equal(mockllm_aborted(f->mock), 0);
	free(want);
	af_payload_destroy(&p);
}

/* More chunks than the credit window: the actor holds them and pauses the
 * transfer until the reader catches up; none is lost or reordered. */
/* A consumer that reads only once the server has sent everything: past
 * its credit window the chat actor holds the text and pauses the
 * transfer, so a fault is found either among text already held or when
 * the transfer resumes. Either way every chunk before the fault arrives,
 * in order, then the error. */
static void test_late_reader_gets_all_text_before_a_fault(void **state)
{
	static const mockllm_fault faults[] = {MOCKLLM_MALFORMED,
					       MOCKLLM_ERROR_EVENT};
	static const af_err codes[] = {AF_EPROTO, AF_EREMOTE};
	fixture *f = *state;
	af_payload *p = question("hi");
	unsigned ended = 0;

	spawn_chat(f, "openai", 0);
	for (int i = 0; i < 2; i++) {
		for (int at = AF_STREAM_WINDOW + 1; at < AF_STREAM_WINDOW + 12;
		     at += 2) {
			char *want = test_mock_text("w", at);
			af_stream *st;
			streamed s;

			set_mock(f,
				 (mockllm_opts){.chunks = AF_STREAM_WINDOW + 80,
						.fault = faults[i],
						.fault_at = at});
			assert_int_equal(af_client_stream(f->client, "chat",
							  "stream_chat", p,
							  WAIT_MS, &st),
					 AF_OK);
			assert_int_equal(mockllm_wait_ended_streams(
						 f->mock, ++ended, WAIT_MS),
					 0);
			read_stream(st, &s);
			assert_int_equal(s.status, codes[i]);
			assert_int_equal(s.chunks, at);
			assert_string_equal(s.text, want);
			streamed_free(&s);
			af_stream_close(&st);
			free(want);
		}
	}
	af_payload_destroy(&p);
}

static void test_long_stream_through_the_window(void **state)
{
	fixture *f = *state;

	spawn_chat(f, "openai", 0);
	check_stream(f, (mockllm_opts){.chunks = 3 * AF_STREAM_WINDOW + 17},
		     "w");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_extractive_chat_and_stream_agree),
		T(test_bad_requests),
		T(test_openai_chat),
		T(test_openai_stream_framings),
		T(test_stream_request_without_stream_gets_one_reply),
		T(test_complete),
		T(test_ollama_chat_and_stream),
		T(test_huge_token_counts_read_as_zero),
		T(test_retry_after_then_success),
		T(test_retries_exhausted_carry_status_and_message),
		T(test_key_echoed_by_the_server_is_redacted),
		T(test_answer_too_large_for_a_message),
		T(test_client_errors_fail_at_once),
		T(test_openai_broken_streams),
		T(test_ollama_broken_streams),
		T(test_cancel_aborts_the_transfer),
		T(test_deadline_aborts_the_transfer),
		T(test_requester_gone_aborts_the_transfer),
		T(test_endless_timeout_is_no_deadline),
		T(test_connection_refused),
		T(test_config_from_env),
		T(test_unknown_provider_says_so),
		T(test_https_with_a_private_ca),
		T(test_https_untrusted_fails_at_once),
		T(test_many_streams_at_once),
		T(test_connections_reused),
		T(test_transfers_queue_past_the_cap),
		T(test_long_stream_through_the_window),
		T(test_late_reader_gets_all_text_before_a_fault),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
