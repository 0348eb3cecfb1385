/*
 * The query actor (actors/query) against a stub retrieval actor defined
 * here, which answers "retrieve" with the nodes a test chooses, with an
 * error, or never, and the real chat actor (offline extractive provider,
 * or openai pointed at the mock model server) and the real gather actor.
 */
#include <actorflow/actorflow.h>
#include <stdatomic.h>
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
#define WAIT_MS 30000

/* ---- the stub retrieval actor ------------------------------------------ */

typedef struct stub_node {
	const char *id;
	const char *doc_id;
	const char *text;
	double score;
} stub_node;

/* What the stub answers. Its counters are read by the test's thread. */
typedef struct stub_config {
	const stub_node *nodes;
	size_t n;
	int error; /* answer this error instead; 0: none */
	const char *error_text;
	bool hang;              /* never answer */
	test_signal *cancelled; /* a hung request given up */
	atomic_int requests;
	atomic_int last_top_k; /* -1: none given */
} stub_config;

static void stub_cancelled(af_ctx *ctx, void *arg)
{
	test_signal_add(arg);
}

static af_err stub_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err stub_handle(af_ctx *ctx, void *state, af_msg *m)
{
	stub_config *c = state;
	const af_value *req = af_msg_payload(m);
	af_payload *p;
	af_pending *pending;
	af_err err;

	if (strcmp(af_msg_type(m), "retrieve") != 0)
		return AF_ENOTSUP;
	atomic_fetch_add(&c->requests, 1);
	atomic_store(&c->last_top_k, (int)af_value_get_int(req, "top_k", -1));
	if (c->hang) {
		err = af_defer(ctx, m, &pending);
		if (err == AF_OK && c->cancelled != NULL)
			af_pending_on_cancel(pending, stub_cancelled,
					     c->cancelled);
		return err;
	}
	if (c->error != 0)
		return af_reply_error(ctx, m, c->error, "%s", c->error_text);
	if (af_payload_new(&p) != AF_OK)
		return AF_ENOMEM;
	af_pack_map(p, 1);
	af_pack_str(p, "nodes");
	af_pack_array(p, (uint32_t)c->n);
	for (size_t i = 0; i < c->n; i++) {
		af_pack_map(p, 6);
		af_pack_str(p, "id");
		af_pack_str(p, c->nodes[i].id);
		af_pack_str(p, "doc_id");
		af_pack_str(p, c->nodes[i].doc_id);
		af_pack_str(p, "position");
		af_pack_int(p, (int64_t)i);
		af_pack_str(p, "score");
		af_pack_double(p, c->nodes[i].score);
		af_pack_str(p, "text");
		af_pack_str(p, c->nodes[i].text);
		af_pack_str(p, "metadata");
		af_pack_map(p, 2);
		af_pack_str(p, "file_name");
		af_pack_str(p, c->nodes[i].doc_id);
		af_pack_str(p, "rank");
		af_pack_int(p, (int64_t)i + 1);
	}
	err = af_reply(ctx, m, p);
	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops stub_ops = {
	.type_name = "stub_retrieval",
	.init = stub_init,
	.handle = stub_handle,
};

/* ---- a spy in front of the gather actor -------------------------------- */

/* Counts the "gather" requests and their items, and passes each to the
 * real gather actor ("gather") as its bytes came. */
typedef struct spy_config {
	atomic_int gathers;
	atomic_int items;
} spy_config;

typedef struct spy_call {
	af_pending *p;
	uint64_t id;
} spy_call;

static void spy_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	spy_call *c = arg;
	af_payload *p = NULL;
	const void *data;
	size_t len;
	const char *text = NULL;

	if (c->p != NULL) {
		if (status == AF_OK && af_payload_new(&p) == AF_OK) {
			af_msg_payload_raw(reply, &data, &len);
			af_pack_raw(p, data, len);
			af_pending_reply(ctx, &c->p, p);
		} else {
			if (reply != NULL)
				af_msg_error(reply, &text);
			af_pending_error(ctx, &c->p, status, "%s",
					 text != NULL ? text
						      : af_strerror(status));
		}
		af_payload_destroy(&p);
	}
	free(c);
}

static void spy_cancelled(af_ctx *ctx, void *arg)
{
	spy_call *c = arg;

	c->p = NULL;
	af_cancel(ctx, c->id); /* spy_done runs now and frees c */
}

static af_err spy_handle(af_ctx *ctx, void *state, af_msg *m)
{
	spy_config *s = state;
	spy_call *c = calloc(1, sizeof(*c));
	af_payload *p = NULL;
	const void *data;
	size_t len;
	af_err err;

	if (c == NULL || af_payload_new(&p) != AF_OK) {
		free(c);
		return AF_ENOMEM;
	}
	atomic_fetch_add(&s->gathers, 1);
	atomic_fetch_add(&s->items, (int)af_value_len(af_value_get(
					    af_msg_payload(m), "items")));
	af_msg_payload_raw(m, &data, &len);
	af_pack_raw(p, data, len);
	err = af_defer(ctx, m, &c->p);
	if (err == AF_OK)
		err = af_request(ctx, "gather", "gather", p,
				 af_pending_remaining_ms(c->p) > 0
					 ? af_pending_remaining_ms(c->p)
					 : 0,
				 spy_done, c, &c->id);
	af_payload_destroy(&p);
	if (err != AF_OK) {
		if (c->p != NULL)
			af_pending_error(ctx, &c->p, err, "spy");
		free(c);
		return AF_OK;
	}
	af_pending_on_cancel(c->p, spy_cancelled, c);
	return AF_OK;
}

static const af_actor_ops spy_ops = {
	.type_name = "gather_spy",
	.init = stub_init,
	.handle = spy_handle,
};

/* ---- fixture ----------------------------------------------------------- */

typedef struct fixture {
	af_system *sys;
	af_client *client;
	mockllm *mock;
	stub_config stub;
	spy_config spy;
	char url[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	assert_int_equal(mockllm_start(&f->mock, NULL), 0);
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

static void spawn_stub(fixture *f, const stub_node *nodes, size_t n)
{
	f->stub.nodes = nodes;
	f->stub.n = n;
	assert_int_equal(af_spawn(f->sys, "stub", &stub_ops, &f->stub, NULL),
			 AF_OK);
}

/* "chat": the extractive provider, or openai at the mock server. */
static void spawn_chat(fixture *f, bool mock)
{
	af_chat_config cfg;

	af_chat_config_init(&cfg, mock ? "openai" : "extractive");
	if (mock) {
		snprintf(f->url, sizeof(f->url), "%s/v1", mockllm_url(f->mock));
		cfg.base_url = f->url;
		cfg.api_key_env = NULL;
		cfg.max_retries = 0;
	}
	assert_int_equal(af_spawn(f->sys, "chat", &af_chat_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(f->sys, "gather", &af_gather_ops, NULL, NULL),
			 AF_OK);
}

/* "query" over the stub; cfg may be NULL for the defaults. */
static void spawn_query(fixture *f, af_query_config *cfg)
{
	af_query_config dflt;

	if (cfg == NULL) {
		af_query_config_init(&dflt);
		cfg = &dflt;
	}
	cfg->retriever = "stub";
	assert_int_equal(af_spawn(f->sys, "query", &af_query_ops, cfg, NULL),
			 AF_OK);
}

/* {"query": text, "response_mode": mode (when not NULL)} */
static af_payload *question(const char *text, const char *mode)
{
	af_payload *p;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map_begin(p);
	af_pack_str(p, "query");
	af_pack_str(p, text);
	if (mode != NULL) {
		af_pack_str(p, "response_mode");
		af_pack_str(p, mode);
	}
	af_pack_map_end(p);
	assert_int_equal(af_payload_status(p), AF_OK);
	return p;
}

static af_err ask(fixture *f, const char *text, const char *mode,
		  af_msg **reply)
{
	af_payload *p = question(text, mode);
	af_err err = af_client_request(f->client, "query", "query", p, WAIT_MS,
				       reply);

	af_payload_destroy(&p);
	return err;
}

/* The error text of an error reply. */
static const char *error_text(af_msg *m)
{
	const char *text = "";

	assert_non_null(m);
	af_msg_error(m, &text);
	return text;
}

static void stream_ask(fixture *f, const char *text, const char *mode,
		       streamed *s)
{
	af_payload *p = question(text, mode);
	af_stream *st;

	assert_int_equal(af_client_stream(f->client, "query", "stream_query", p,
					  WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	read_stream(st, s);
	af_stream_close(&st);
}

static bool valgrind(void)
{
	return getenv("AF_UNDER_VALGRIND") != NULL;
}

/* ---- answers and sources ----------------------------------------------- */

/* "é" is two bytes: 41 of them cut at 9 bytes must give 8. */
#define ACCENTS                                                                \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"

static const stub_node sky_nodes[] = {
	{"sky.txt#0", "sky.txt",
	 "The sky is blue on a clear day. Grass grows in the meadow.", 3.5},
	{"sea.txt#0", "sea.txt", "The sea is deep. Sailors cross it.", 1.25},
	{"fr.txt#2", "fr.txt", ACCENTS " caf\xc3\xa9 au lait.", 0.5},
};

static void check_sources(const af_value *sources, size_t excerpt)
{
	assert_int_equal(af_value_len(sources), 3);
	for (size_t i = 0; i < 3; i++) {
		const af_value *s = af_value_at(sources, i);
		const af_value *meta = af_value_get(s, "metadata");
		const char *text;
		size_t len;
		double score;
		size_t want = strlen(sky_nodes[i].text);
		assert_true(af_value_str_eq(af_value_get(s, "id"),
					    sky_nodes[i].id));
		assert_true(af_value_str_eq(af_value_get(s, "doc_id"),
					    sky_nodes[i].doc_id));
		assert_int_equal(
			af_value_double(af_value_get(s, "score"), &score),
			AF_OK);
		assert_true(score == sky_nodes[i].score);
		assert_true(af_value_str_eq(af_value_get(meta, "file_name"),
					    sky_nodes[i].doc_id));
		assert_int_equal(af_value_get_int(meta, "rank", 0),
				 (int64_t)i + 1);
		assert_int_equal(
			af_value_str(af_value_get(s, "text"), &text, &len),
			AF_OK);
		if (want > excerpt) {
			/* Cut on a UTF-8 boundary: never a split "é". */
			assert_true(len <= excerpt);
			assert_true(len >= excerpt - 3);
			assert_true(((unsigned char)sky_nodes[i].text[len] &
				     0xC0) != 0x80);
		} else {
			assert_int_equal(len, want);
		}
		assert_memory_equal(text, sky_nodes[i].text, len);
	}
}

static void test_query_answer_and_sources(void **state)
{
	fixture *f = *state;
	af_query_config cfg;
	af_msg *reply = NULL;
	char *response;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, false);
	af_query_config_init(&cfg);
	cfg.excerpt_bytes = 9;
	cfg.top_k = 3;
	spawn_query(f, &cfg);
	assert_int_equal(ask(f, "What colour is the sky?", NULL, &reply),
			 AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_string_equal(response, "The sky is blue on a clear day.");
	check_sources(af_value_get(af_msg_payload(reply), "source_nodes"), 9);
	assert_int_equal(atomic_load(&f->stub.last_top_k), 3);
	free(response);
	af_msg_destroy(&reply);
}

static void test_stream_query_matches_query(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	char *response;
	streamed s;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	assert_int_equal(ask(f, "What colour is the sky?", NULL, &reply),
			 AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	stream_ask(f, "What colour is the sky?", NULL, &s);
	assert_int_equal(s.status, AF_OK);
	assert_true(s.chunks > 1);
	assert_string_equal(s.text, response);
	assert_int_equal(af_msg_kind(s.end), AF_KIND_END);
	assert_null(af_value_get(af_msg_payload(s.end), "response"));
	check_sources(af_value_get(af_msg_payload(s.end), "source_nodes"),
		      1000);
	/* The stub was not given a top_k: the retrieval actor decides. */
	assert_int_equal(atomic_load(&f->stub.last_top_k), -1);
	streamed_free(&s);
	free(response);
	af_msg_destroy(&reply);
}

/* A chat actor that answers every request, streams too, with one plain
 * reply {"content": ...}, as protocol.md allows. */
static af_err plain_chat_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err plain_chat_handle(af_ctx *ctx, void *state, af_msg *m)
{
	af_payload *p;
	af_err err;

	if (af_payload_new(&p) != AF_OK)
		return AF_ENOMEM;
	af_pack_map(p, 1);
	af_pack_str(p, "content");
	af_pack_str(p, state);
	err = af_reply(ctx, m, p);
	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops plain_chat_ops = {
	.type_name = "plain_chat",
	.init = plain_chat_init,
	.handle = plain_chat_handle,
};

/* The streamed answer holds a plain reply's content, as the whole answer
 * does. */
static void test_stream_query_from_a_plain_reply(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	char *response;
	streamed s;

	spawn_stub(f, sky_nodes, 3);
	assert_int_equal(af_spawn(f->sys, "chat", &plain_chat_ops,
				  "Bees make honey.", NULL),
			 AF_OK);
	spawn_query(f, NULL);
	assert_int_equal(ask(f, "What do bees make?", NULL, &reply), AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_string_equal(response, "Bees make honey.");
	stream_ask(f, "What do bees make?", NULL, &s);
	assert_int_equal(s.status, AF_OK);
	assert_int_equal(s.chunks, 1);
	assert_string_equal(s.text, response);
	assert_int_equal(af_msg_kind(s.end), AF_KIND_END);
	streamed_free(&s);
	free(response);
	af_msg_destroy(&reply);
}

/* The refine template hands the answer so far on: the extractive
 * provider keeps it and adds what the next chunk says. */
static void test_refine_keeps_existing_answer(void **state)
{
	static const stub_node nodes[] = {
		{"a#0", "a", "The lighthouse burns whale oil.", 2},
		{"b#0", "b", "The lighthouse keeper burns driftwood in winter.",
		 1},
	};
	fixture *f = *state;
	af_msg *reply = NULL;
	char *response;

	spawn_stub(f, nodes, 2);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	assert_int_equal(
		ask(f, "What does the lighthouse burn?", "refine", &reply),
		AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_non_null(strstr(response, "whale oil"));
	assert_non_null(strstr(response, "driftwood"));
	free(response);
	af_msg_destroy(&reply);

	for (int i = 0; i < 2; i++) {
		const char *mode = i == 0 ? "compact" : "tree_summarize";
		assert_int_equal(
			ask(f, "What does the lighthouse burn?", mode, &reply),
			AF_OK);
		response = test_str_of(
			af_value_get(af_msg_payload(reply), "response"));
		assert_non_null(strstr(response, "whale oil"));
		free(response);
		af_msg_destroy(&reply);
	}
}

/* ---- response modes: chat calls per mode ------------------------------- */

/* Four chunks of ten words. */
static const stub_node ten_words[] = {
	{"d#0", "d", "one two three four five six seven eight nine ten", 4},
	{"d#1", "d", "one two three four five six seven eight nine ten", 3},
	{"d#2", "d", "one two three four five six seven eight nine ten", 2},
	{"d#3", "d", "one two three four five six seven eight nine ten", 1},
};

/* Chat calls one query in mode made, and checks its answer is the
 * mock's. */
static unsigned calls_of(fixture *f, const char *mode)
{
	unsigned before = mockllm_requests(f->mock);
	af_msg *reply = NULL;
	char *response;
	char *want = test_mock_text("w", 5);

	assert_int_equal(ask(f, "count the words", mode, &reply), AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_string_equal(
		response,
		mode != NULL && strcmp(mode, "no_text") == 0 ? "" : want);
	assert_int_equal(af_value_len(af_value_get(af_msg_payload(reply),
						   "source_nodes")),
			 4);
	free(response);
	free(want);
	af_msg_destroy(&reply);
	return mockllm_requests(f->mock) - before;
}

static void test_mode_chat_calls(void **state)
{
	fixture *f = *state;
	af_query_config cfg;

	spawn_stub(f, ten_words, 4);
	spawn_chat(f, true);
	assert_int_equal(af_spawn(f->sys, "spy", &spy_ops, &f->spy, NULL),
			 AF_OK);
	af_query_config_init(&cfg);
	cfg.context_words = 25; /* two chunks a call */
	cfg.gather = "spy";
	spawn_query(f, &cfg);

	assert_int_equal(calls_of(f, "compact"), 2);
	assert_int_equal(calls_of(f, NULL), 2); /* compact is the default */
	assert_int_equal(calls_of(f, "refine"), 4);
	assert_int_equal(calls_of(f, "no_text"), 0);
	assert_int_equal(atomic_load(&f->spy.gathers), 0);
	/* Two groups summarised through one gather, then the summaries
	 * (five words each) in one last call. */
	assert_int_equal(calls_of(f, "tree_summarize"), 3);
	assert_int_equal(atomic_load(&f->spy.gathers), 1);
	assert_int_equal(atomic_load(&f->spy.items), 2);
}

/* A chunk longer than context_words goes in pieces that fit, cut at
 * words; each later piece refines the answer so far, which the prompt
 * carries on its "Existing answer:" line. */
static void test_long_chunk_is_cut(void **state)
{
	static const stub_node one[] = {
		{"long#0", "long",
		 "a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 "
		 "a18 a19 a20\n\na21 a22 a23 a24 a25",
		 1},
	};
	fixture *f = *state;
	af_query_config cfg;
	unsigned before;
	af_msg *reply = NULL;
	char *body;

	spawn_stub(f, one, 1);
	spawn_chat(f, true);
	af_query_config_init(&cfg);
	cfg.context_words = 10;
	spawn_query(f, &cfg);
	for (int i = 0; i < 2; i++) {
		before = mockllm_requests(f->mock);
		assert_int_equal(ask(f, "count the words",
				     i == 0 ? "compact" : "refine", &reply),
				 AF_OK);
		af_msg_destroy(&reply);
		assert_int_equal(mockllm_requests(f->mock) - before, 3);
		body = mockllm_last_request(f->mock, NULL);
		assert_non_null(body);
		assert_non_null(strstr(body, "a21 a22 a23 a24 a25"));
		assert_null(strstr(body, "a20"));
		assert_non_null(strstr(body, "Query: count the words"));
		assert_non_null(
			strstr(body, "Existing answer: w0 w1 w2 w3 w4"));
		free(body);
	}
}

/* The groups of tree_summarize are all in flight at once: with the mock
 * holding every answer, all four calls arrive; closing the stream then
 * cancels them all, through the gather actor and the chat actor. */
static void test_tree_fans_out_and_cancels(void **state)
{
	fixture *f = *state;
	af_query_config cfg;
	mockllm_opts o = {.fault = MOCKLLM_STALL};
	af_payload *p = question("count the words", "tree_summarize");
	af_stream *st;
	af_msg *m = NULL;

	spawn_stub(f, ten_words, 4);
	spawn_chat(f, true);
	af_query_config_init(&cfg);
	cfg.context_words = 10; /* one chunk a group */
	spawn_query(f, &cfg);
	mockllm_set(f->mock, &o);
	assert_int_equal(af_client_stream(f->client, "query", "stream_query", p,
					  WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	assert_int_equal(mockllm_wait_requests(f->mock, 4, WAIT_MS), 0);
	assert_int_equal(af_stream_next(st, 0, &m), AF_EAGAIN);
	af_stream_close(&st);
	assert_int_equal(mockllm_wait_aborted(f->mock, 4, WAIT_MS), 0);
	assert_int_equal(mockllm_requests(f->mock), 4);
}

/* ---- errors ------------------------------------------------------------ */

static void test_retrieve_error_passes_through(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	streamed s;

	f->stub.error = AF_EUSER + 5;
	f->stub.error_text = "index broken";
	spawn_stub(f, NULL, 0);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	assert_int_equal(ask(f, "anything?", NULL, &reply), AF_EUSER + 5);
	assert_string_equal(error_text(reply), "retrieve: index broken");
	af_msg_destroy(&reply);
	stream_ask(f, "anything?", NULL, &s);
	assert_int_equal(s.status, AF_EUSER + 5);
	assert_int_equal(s.chunks, 0);
	assert_string_equal(s.error, "retrieve: index broken");
	streamed_free(&s);
}

static void test_chat_error_passes_through(void **state)
{
	fixture *f = *state;
	mockllm_opts o = {.fault = MOCKLLM_STATUS, .fail_times = 1000};
	af_msg *reply = NULL;
	const char *modes[] = {"compact", "refine", "tree_summarize"};
	af_query_config cfg;

	spawn_stub(f, ten_words, 4);
	spawn_chat(f, true);
	af_query_config_init(&cfg);
	cfg.context_words = 10;
	spawn_query(f, &cfg);
	mockllm_set(f->mock, &o);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(ask(f, "count the words", modes[i], &reply),
				 AF_EHTTP);
		assert_true(strncmp(error_text(reply), "chat: ", 6) == 0);
		assert_non_null(strstr(error_text(reply), "500"));
		af_msg_destroy(&reply);
	}
}

/* A chat stream that breaks after some text: the stream_query ends with
 * the error after the deltas that came, never as a success. */
static void test_stream_dropped_midway_fails(void **state)
{
	fixture *f = *state;
	mockllm_opts o = {.chunks = 8, .fault = MOCKLLM_DROP, .fault_at = 3};
	streamed s;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, true);
	spawn_query(f, NULL);
	mockllm_set(f->mock, &o);
	stream_ask(f, "What colour is the sky?", NULL, &s);
	assert_int_not_equal(s.status, AF_OK);
	assert_int_equal(s.chunks, 3);
	assert_string_equal(s.text, "w0 w1 w2 ");
	assert_non_null(s.error);
	assert_true(strncmp(s.error, "chat: ", 6) == 0);
	streamed_free(&s);
}

static void expect_einval(fixture *f, af_payload *p, const char *type)
{
	af_msg *reply = NULL;

	assert_int_equal(
		af_client_request(f->client, "query", type, p, WAIT_MS, &reply),
		AF_EINVAL);
	assert_true(strncmp(error_text(reply), "query: ", 7) == 0);
	af_msg_destroy(&reply);
}

static void test_bad_requests(void **state)
{
	fixture *f = *state;
	af_payload *p;
	af_msg *reply = NULL;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	assert_int_equal(af_payload_new(&p), AF_OK);
	expect_einval(f, NULL, "query"); /* nil */
	af_pack_str(p, "just a string");
	expect_einval(f, p, "query");
	af_payload_reset(p);
	af_pack_map(p, 1);
	af_pack_str(p, "top_k");
	af_pack_int(p, 3);
	expect_einval(f, p, "stream_query"); /* no query */
	af_payload_reset(p);
	af_pack_map(p, 1);
	af_pack_str(p, "query");
	af_pack_str(p, "");
	expect_einval(f, p, "query");
	af_payload_reset(p);
	af_pack_map(p, 1);
	af_pack_str(p, "query");
	af_pack_int(p, 42);
	expect_einval(f, p, "query");
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, "sky?");
	af_pack_str(p, "top_k");
	af_pack_str(p, "three");
	expect_einval(f, p, "query");
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, "sky?");
	af_pack_str(p, "top_k");
	af_pack_int(p, 0);
	expect_einval(f, p, "query");
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, "sky?");
	af_pack_str(p, "mode");
	af_pack_int(p, 1);
	expect_einval(f, p, "query");
	af_payload_destroy(&p);
	p = question("sky?", "bogus");
	expect_einval(f, p, "stream_query");
	af_payload_destroy(&p);
	assert_int_equal(atomic_load(&f->stub.requests), 0);

	p = question("sky?", NULL);
	assert_int_equal(af_client_request(f->client, "query", "translate", p,
					   WAIT_MS, &reply),
			 AF_ENOTSUP);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

static void test_bad_config_fails_spawn(void **state)
{
	fixture *f = *state;
	af_query_config cfg;

	af_query_config_init(&cfg);
	cfg.qa_template = "Context: {context_str}\nAnswer:";
	test_spawn_refused(f->sys, "q1", &af_query_ops, &cfg, AF_EINVAL,
			   "query: qa_template must hold {query_str} and "
			   "{context_str}");
	af_query_config_init(&cfg);
	cfg.refine_template = "{context_str} {query_str}";
	test_spawn_refused(f->sys, "q2", &af_query_ops, &cfg, AF_EINVAL,
			   "refine_template must hold {query_str} and "
			   "{context_str} and {existing_answer}");
	af_query_config_init(&cfg);
	cfg.response_mode = "verbose";
	test_spawn_refused(f->sys, "q3", &af_query_ops, &cfg, AF_EINVAL,
			   "unknown response_mode \"verbose\"");
	af_query_config_init(&cfg);
	cfg.top_k = -1;
	test_spawn_refused(f->sys, "q3", &af_query_ops, &cfg, AF_EINVAL,
			   "may not be negative");
	/* A template of one's own, and NULL for every default. */
	af_query_config_init(&cfg);
	cfg.qa_template = "Q: {query_str}\n---\n{context_str}\n---\nA:";
	assert_int_equal(af_spawn(f->sys, "q4", &af_query_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(f->sys, "q5", &af_query_ops, NULL, NULL),
			 AF_OK);
}

/* ---- cancel and deadlines ---------------------------------------------- */

static void test_close_stream_cancels_chat(void **state)
{
	fixture *f = *state;
	mockllm_opts o = {.chunks = 8, .fault = MOCKLLM_STALL, .fault_at = 2};
	af_payload *p = question("What colour is the sky?", NULL);
	af_stream *st;
	af_msg *m = NULL;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, true);
	spawn_query(f, NULL);
	mockllm_set(f->mock, &o);
	assert_int_equal(af_client_stream(f->client, "query", "stream_query", p,
					  WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(af_stream_next(st, WAIT_MS, &m), AF_OK);
		af_msg_destroy(&m);
	}
	af_stream_close(&st);
	assert_int_equal(mockllm_wait_aborted(f->mock, 1, WAIT_MS), 0);
}

static void test_deadline_cancels_retrieval(void **state)
{
	fixture *f = *state;
	test_signal cancelled;
	af_payload *p = question("What colour is the sky?", NULL);
	af_msg *reply = NULL;

	test_signal_init(&cancelled);
	f->stub.hang = true;
	f->stub.cancelled = &cancelled;
	spawn_stub(f, NULL, 0);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	assert_int_equal(
		af_client_request(f->client, "query", "query", p, 300, &reply),
		AF_ETIMEDOUT);
	af_msg_destroy(&reply);
	/* The query's deadline bounded the retrieval's: the stub sees it
	 * given up, not the config's two minutes later. */
	assert_true(test_signal_wait(&cancelled, 1, WAIT_MS));
	af_payload_destroy(&p);
	/* The system stops with nothing outstanding. */
	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	test_signal_fini(&cancelled);
}

/* ---- many at once ------------------------------------------------------ */

#define KIWIS 48

static void test_many_queries_at_once(void **state)
{
	fixture *f = *state;
	int n = valgrind() ? 32 : KIWIS;
	static char text[KIWIS * 40];
	static stub_node node = {"kiwi#0", "kiwi", text, 1};
	af_stream *st[KIWIS];
	size_t len = 0;

	for (int i = 0; i < KIWIS; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
					"Kiwi%d is stored in bin %d. ", i, i);
	spawn_stub(f, &node, 1);
	spawn_chat(f, false);
	spawn_query(f, NULL);
	for (int i = 0; i < n; i++) {
		char q[64];
		af_payload *p;
		snprintf(q, sizeof(q), "Where is kiwi%d stored?", i);
		p = question(q, i % 3 == 2 ? "refine" : NULL);
		assert_int_equal(
			af_client_stream(f->client, "query",
					 i % 2 ? "stream_query" : "query", p,
					 WAIT_MS, &st[i]),
			AF_OK);
		af_payload_destroy(&p);
	}
	for (int i = 0; i < n; i++) {
		char want[64];
		streamed s;
		snprintf(want, sizeof(want), "Kiwi%d is stored in bin %d.", i,
			 i);
		read_stream(st[i], &s);
		af_stream_close(&st[i]);
		assert_int_equal(s.status, AF_OK);
		if (i % 2) {
			assert_string_equal(s.text, want);
		} else {
			/* A plain query over a stream: one reply. */
			char *r = test_str_of(af_value_get(
				af_msg_payload(s.end), "response"));
			assert_int_equal(af_msg_kind(s.end), AF_KIND_REPLY);
			assert_string_equal(r, want);
			free(r);
		}
		assert_int_equal(
			af_value_len(af_value_get(af_msg_payload(s.end),
						  "source_nodes")),
			1);
		streamed_free(&s);
	}
}

/* A reader that takes nothing while the answer comes: the query actor
 * holds what its window does not take and sends it all, in order. */
static void test_slow_reader_gets_every_delta(void **state)
{
	fixture *f = *state;
	int chunks = valgrind() ? 1500 : 3000;
	mockllm_opts o = {.chunks = chunks};
	af_payload *p = question("What colour is the sky?", NULL);
	char *want = test_mock_text("w", chunks);
	af_stream *st;
	streamed s;

	spawn_stub(f, sky_nodes, 3);
	spawn_chat(f, true);
	spawn_query(f, NULL);
	mockllm_set(f->mock, &o);
	assert_int_equal(af_client_stream(f->client, "query", "stream_query", p,
					  WAIT_MS, &st),
			 AF_OK);
	af_payload_destroy(&p);
	assert_int_equal(mockllm_wait_requests(f->mock, 1, WAIT_MS), 0);
	assert_int_equal(mockllm_wait_open_streams(f->mock, 0, WAIT_MS), 0);
	read_stream(st, &s);
	af_stream_close(&st);
	assert_int_equal(s.status, AF_OK);
	assert_int_equal(s.chunks, chunks);
	assert_string_equal(s.text, want);
	assert_int_equal(af_value_len(af_value_get(af_msg_payload(s.end),
						   "source_nodes")),
			 3);
	streamed_free(&s);
	free(want);
}

/* ---- nothing retrieved ------------------------------------------------- */

static void test_no_nodes_gives_fixed_answer(void **state)
{
	fixture *f = *state;
	af_query_config cfg;
	af_msg *reply = NULL;
	char *response;
	streamed s;

	spawn_stub(f, NULL, 0);
	spawn_chat(f, true);
	af_query_config_init(&cfg);
	spawn_query(f, &cfg);
	assert_int_equal(ask(f, "What colour is the sky?", NULL, &reply),
			 AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_string_equal(response,
			    "No context was found to answer the query.");
	assert_int_equal(af_value_len(af_value_get(af_msg_payload(reply),
						   "source_nodes")),
			 0);
	stream_ask(f, "What colour is the sky?", "tree_summarize", &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, response);
	assert_int_equal(mockllm_requests(f->mock), 0); /* no chat call */
	streamed_free(&s);
	free(response);
	af_msg_destroy(&reply);
}

/* ---- with the real retrieval actor ------------------------------------- */

static void insert_doc(af_payload *p, const char *id, const char *text,
		       const char *topic)
{
	af_pack_map(p, 3);
	af_pack_str(p, "id");
	af_pack_str(p, id);
	af_pack_str(p, "text");
	af_pack_str(p, text);
	af_pack_str(p, "metadata");
	af_pack_map(p, 1);
	af_pack_str(p, "topic");
	af_pack_str(p, topic);
}

static void test_with_retrieval_actor(void **state)
{
	fixture *f = *state;
	af_retrieval_config rcfg;
	af_query_config cfg;
	af_payload *p;
	af_msg *reply = NULL;
	const af_value *sources;
	const af_value *first;
	char *response;
	streamed s;

	af_retrieval_config_init(&rcfg);
	assert_int_equal(
		af_spawn(f->sys, "retrieval", &af_retrieval_ops, &rcfg, NULL),
		AF_OK);
	spawn_chat(f, false);
	af_query_config_init(&cfg);
	cfg.top_k = 2;
	assert_int_equal(af_spawn(f->sys, "query", &af_query_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 3);
	insert_doc(p, "lune.txt",
		   "The harbour of Lune was dredged in 1821. Its lighthouse "
		   "burns whale oil.",
		   "harbour");
	insert_doc(p, "bees.txt",
		   "Honeybees keep their hive warm in winter. A colony eats "
		   "its stored honey.",
		   "bees");
	insert_doc(p, "tea.txt",
		   "Green tea is steeped in water below boiling. Black tea "
		   "takes boiling water.",
		   "tea");
	assert_int_equal(af_client_request(f->client, "retrieval", "insert", p,
					   WAIT_MS, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	assert_int_equal(ask(f, "What does the lighthouse burn?", NULL, &reply),
			 AF_OK);
	response = test_str_of(af_value_get(af_msg_payload(reply), "response"));
	assert_string_equal(response, "Its lighthouse burns whale oil.");
	sources = af_value_get(af_msg_payload(reply), "source_nodes");
	assert_true(af_value_len(sources) >= 1 && af_value_len(sources) <= 2);
	first = af_value_at(sources, 0);
	assert_true(af_value_str_eq(af_value_get(first, "doc_id"), "lune.txt"));
	assert_true(af_value_str_eq(af_value_get(first, "id"), "lune.txt#0"));
	assert_true(af_value_str_eq(
		af_value_get(af_value_get(first, "metadata"), "topic"),
		"harbour"));
	assert_true(af_value_get_double(first, "score", 0) > 0);

	stream_ask(f, "What does the lighthouse burn?", "tree_summarize", &s);
	assert_int_equal(s.status, AF_OK);
	assert_string_equal(s.text, response);
	streamed_free(&s);
	free(response);
	af_msg_destroy(&reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_query_answer_and_sources),
		T(test_stream_query_matches_query),
		T(test_stream_query_from_a_plain_reply),
		T(test_refine_keeps_existing_answer),
		T(test_mode_chat_calls),
		T(test_long_chunk_is_cut),
		T(test_tree_fans_out_and_cancels),
		T(test_retrieve_error_passes_through),
		T(test_chat_error_passes_through),
		T(test_stream_dropped_midway_fails),
		T(test_bad_requests),
		T(test_bad_config_fails_spawn),
		T(test_close_stream_cancels_chat),
		T(test_deadline_cancels_retrieval),
		T(test_many_queries_at_once),
		T(test_slow_reader_gets_every_delta),
		T(test_no_nodes_gives_fixed_answer),
		T(test_with_retrieval_actor),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
