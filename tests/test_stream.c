/*
 * Streams: chunks in order then one end, to clients and to actors;
 * cancellation by the consumer, its deadline, its stop and its going away;
 * the producer failing or stopping; flow control with a slow reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

typedef struct fixture {
	af_system *sys;
	af_client *client;
	stream_watch watch;
	test_signal cancelled;
	test_signal blocked;
	test_signal started;
	echo_config cfg;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	test_signal_init(&f->cancelled);
	test_signal_init(&f->blocked);
	test_signal_init(&f->started);
	f->watch.cancelled = &f->cancelled;
	f->watch.blocked = &f->blocked;
	f->watch.started = &f->started;
	f->cfg.streams = &f->watch;
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(
		af_spawn(f->sys, "producer", &test_echo_ops, &f->cfg, NULL),
		AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	test_signal_fini(&f->cancelled);
	test_signal_fini(&f->blocked);
	test_signal_fini(&f->started);
	free(f);
	return 0;
}

static af_payload *stream_args(int64_t n, int64_t fail_after)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 2);
	af_pack_str(p, "n");
	af_pack_int(p, n);
	af_pack_str(p, "fail_after");
	af_pack_int(p, fail_after);
	return p;
}

static af_stream *open_stream(fixture *f, int64_t n, int64_t fail_after,
			      int64_t timeout_ms)
{
	af_payload *args = stream_args(n, fail_after);
	af_stream *s = NULL;

	assert_int_equal(af_client_stream(f->client, "producer", "stream", args,
					  timeout_ms, &s),
			 AF_OK);
	af_payload_destroy(&args);
	return s;
}

/* Reads the next chunk and checks it is number i. */
static void expect_chunk(af_stream *s, int64_t i)
{
	af_msg *m = NULL;

	assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
	assert_int_equal(af_msg_kind(m), AF_KIND_CHUNK);
	assert_int_equal(af_msg_seq(m), (uint64_t)i);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "i", -1), i);
	af_msg_destroy(&m);
}

static void test_client_reads_every_chunk_then_end(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 3000, 0, 10000);
	af_msg *m = NULL;

	for (int64_t i = 1; i <= 3000; i++)
		expect_chunk(s, i);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_EOF);
	assert_non_null(m);
	assert_int_equal(af_msg_kind(m), AF_KIND_END);
	assert_int_equal(af_msg_seq(m), 3000);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "count", -1),
			 3000);
	af_msg_destroy(&m);
	/* The end is reported once; later reads keep saying so. */
	assert_int_equal(af_stream_next(s, 0, &m), AF_EOF);
	assert_null(m);
	af_stream_close(&s);
	assert_null(s);
}

static void test_plain_reply_ends_a_stream(void **state)
{
	fixture *f = *state;
	af_payload *p = test_payload_n(7);
	af_stream *s = NULL;
	af_msg *m = NULL;

	assert_int_equal(
		af_client_stream(f->client, "producer", "echo", p, 5000, &s),
		AF_OK);
	assert_int_equal(af_stream_next(s, 5000, &m), AF_EOF);
	assert_int_equal(af_msg_kind(m), AF_KIND_REPLY);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "n", -1), 7);
	af_msg_destroy(&m);
	af_stream_close(&s);
	af_payload_destroy(&p);
}

static void test_plain_request_gets_no_stream(void **state)
{
	fixture *f = *state;
	af_payload *args = stream_args(5, 0);
	af_msg *m = NULL;

	/* The producer sees a requester that granted no window. */
	assert_int_equal(af_client_request(f->client, "producer", "stream",
					   args, 5000, &m),
			 AF_EINVAL);
	af_msg_destroy(&m);
	af_payload_destroy(&args);
}

static void test_producer_error_mid_stream(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 100, 3, 5000);
	af_msg *m = NULL;
	const char *text = NULL;

	for (int64_t i = 1; i <= 3; i++)
		expect_chunk(s, i);
	assert_int_equal(af_stream_next(s, 5000, &m), AF_EUSER + 2);
	assert_non_null(m);
	assert_int_equal(af_msg_error(m, &text), AF_EUSER + 2);
	assert_string_equal(text, "failed after 3 chunks");
	af_msg_destroy(&m);
	assert_int_equal(af_stream_next(s, 0, &m), AF_EUSER + 2);
	assert_null(m);
	af_stream_close(&s);
}

static void test_next_times_out_and_goes_on(void **state)
{
	fixture *f = *state;
	af_payload *args = test_payload_n(1);
	af_stream *s = NULL;
	af_msg *m = NULL;

	/* "hang" never answers: the reader's wait ends, the stream does not.
	 */
	assert_int_equal(af_client_stream(f->client, "producer", "hang", args,
					  10000, &s),
			 AF_OK);
	assert_int_equal(af_stream_next(s, 0, &m), AF_EAGAIN);
	assert_int_equal(af_stream_next(s, 20, &m), AF_EAGAIN);
	assert_null(m);
	af_stream_close(&s);
	af_payload_destroy(&args);
}

/* A timeout of INT64_MAX ms, for the stream and for each wait, is no
 * deadline in practice: every chunk and the end are read. Both once
 * wrapped into the past: the stream timed out at once, and
 * af_stream_next said AF_EAGAIN without waiting. */
static void test_huge_timeouts_wait_for_the_answer(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 3, 0, INT64_MAX);
	af_msg *m = NULL;

	for (int64_t i = 1; i <= 3; i++) {
		assert_int_equal(af_stream_next(s, INT64_MAX, &m), AF_OK);
		assert_int_equal(af_msg_seq(m), (uint64_t)i);
		af_msg_destroy(&m);
	}
	assert_int_equal(af_stream_next(s, INT64_MAX, &m), AF_EOF);
	assert_int_equal(af_msg_kind(m), AF_KIND_END);
	af_msg_destroy(&m);
	af_stream_close(&s);
}

static void test_close_cancels_the_producer(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 0, 0, 10000);

	expect_chunk(s, 1);
	expect_chunk(s, 2);
	af_stream_close(&s);
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
}

static void test_deadline_ends_stream_and_tells_producer(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 0, 0, 200);
	af_msg *m = NULL;
	af_err err;

	/* Unread, the producer stops at the window until the deadline. */
	assert_true(test_signal_wait(&f->blocked, 1, 10000));
	do {
		err = af_stream_next(s, 10000, &m);
		af_msg_destroy(&m);
	} while (err == AF_OK);
	assert_int_equal(err, AF_ETIMEDOUT);
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
	af_stream_close(&s);
}

static void test_destroyed_client_cancels(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 0, 0, 10000);
	af_msg *m = NULL;

	expect_chunk(s, 1);
	af_client_destroy(&f->client);
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
	/* A stream left open outlives its client only to be closed. */
	assert_int_equal(af_stream_next(s, 0, &m), AF_ECANCELED);
	af_stream_close(&s);
}

static void test_producer_stop_fails_stream(void **state)
{
	fixture *f = *state;
	af_stream *s = open_stream(f, 0, 0, 10000);
	af_msg *m = NULL;
	af_err err;

	expect_chunk(s, 1);
	assert_int_equal(af_stop(f->sys, "producer"), AF_OK);
	/* Its work was abandoned through the cancel hook. */
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
	do {
		err = af_stream_next(s, 10000, &m);
		af_msg_destroy(&m);
	} while (err == AF_OK);
	assert_int_equal(err, AF_ESTOPPED);
	af_stream_close(&s);
}

/* ---- a producer failing with a code af_stream_next uses itself ------- */

/* Sends one chunk (to a stream) and fails: "busy" with AF_EAGAIN, what
 * the offload actor answers when its queue is full, "eof" with AF_EOF. */
static af_err colliding_handle(af_ctx *ctx, void *state, af_msg *m)
{
	bool eof = strcmp(af_msg_type(m), "eof") == 0;
	af_pending *p = NULL;
	af_err err = af_defer(ctx, m, &p);

	if (err != AF_OK)
		return err;
	if (af_pending_is_stream(p))
		assert_int_equal(af_pending_chunk(ctx, p, NULL), AF_OK);
	return af_pending_error(ctx, &p, eof ? AF_EOF : AF_EAGAIN,
				eof ? "no more input" : "queue full");
}

static const af_actor_ops colliding_ops = {.type_name = "colliding",
					   .handle = colliding_handle};

/* A stream that failed never reads as one that goes on (AF_EAGAIN) or
 * one that ended (AF_EOF): a producer's AF_EAGAIN once came out of
 * af_stream_next unchanged, and a reader waiting for more spun forever.
 * Such a code is AF_EREMOTE; the error message keeps the original. */
static void test_producer_code_never_reads_as_a_status(void **state)
{
	fixture *f = *state;
	static const char *types[] = {"busy", "eof"};
	static const int codes[] = {AF_EAGAIN, AF_EOF};
	static const char *texts[] = {"queue full", "no more input"};
	const char *text = NULL;
	af_msg *m = NULL;

	assert_int_equal(
		af_spawn(f->sys, "colliding", &colliding_ops, NULL, NULL),
		AF_OK);
	for (int i = 0; i < 2; i++) {
		af_stream *s = NULL;

		assert_int_equal(af_client_stream(f->client, "colliding",
						  types[i], NULL, 5000, &s),
				 AF_OK);
		assert_int_equal(af_stream_next(s, 5000, &m), AF_OK);
		assert_int_equal(af_msg_kind(m), AF_KIND_CHUNK);
		af_msg_destroy(&m);
		assert_int_equal(af_stream_next(s, 5000, &m), AF_EREMOTE);
		assert_non_null(m);
		assert_int_equal(af_msg_kind(m), AF_KIND_ERROR);
		assert_int_equal(af_msg_error(m, &text), codes[i]);
		assert_string_equal(text, texts[i]);
		af_msg_destroy(&m);
		assert_int_equal(af_stream_next(s, 0, &m), AF_EREMOTE);
		assert_null(m);
		af_stream_close(&s);
	}
	/* af_client_request returns a target's code as it is: it never says
	 * AF_EAGAIN or AF_EOF itself, and its *reply, the error message, says
	 * the code is the target's. */
	assert_int_equal(af_client_request(f->client, "colliding", "busy", NULL,
					   5000, &m),
			 AF_EAGAIN);
	assert_non_null(m);
	assert_int_equal(af_msg_error(m, &text), AF_EAGAIN);
	af_msg_destroy(&m);
}

/* ---- slow consumer ----------------------------------------------------- */

static long rss_kib(void)
{
	long pages = 0;
	long resident = 0;
	FILE *fp = fopen("/proc/self/statm", "r");

	if (fp == NULL)
		return -1;
	if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
		resident = -1;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

#if defined(__SANITIZE_ADDRESS__)
#define MEASURES_RSS 0 /* ASan's quarantine keeps freed memory resident */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEASURES_RSS 0
#endif
#endif
#ifndef MEASURES_RSS
#define MEASURES_RSS 1
#endif

static void test_slow_reader_million_chunks(void **state)
{
	fixture *f = *state;
	const int64_t total = 1000000;
	af_stream *s = open_stream(f, total, 0, 600000);
	af_msg *m = NULL;
	long rss_before = 0;
	int stalls = 0;

	for (int64_t i = 1; i <= total; i++) {
		/* Every so often the reader stops reading until the producer
		 * reports that it stopped too, at the window's edge. */
		if (i % 100000 == 1) {
			stalls++;
			assert_true(
				test_signal_wait(&f->blocked, stalls, 60000));
		}
		assert_int_equal(af_stream_next(s, 60000, &m), AF_OK);
		assert_int_equal(af_msg_seq(m), (uint64_t)i);
		af_msg_destroy(&m);
		if (i == 50000)
			rss_before = rss_kib();
	}
	assert_int_equal(af_stream_next(s, 60000, &m), AF_EOF);
	af_msg_destroy(&m);
	af_stream_close(&s);
	/* The producer never ran more than a window ahead of the reader. */
	assert_true(atomic_load(&f->watch.max_in_flight) <= AF_STREAM_WINDOW);
	assert_true(atomic_load(&f->watch.max_in_flight) > 0);
	if (MEASURES_RSS && getenv("AF_UNDER_VALGRIND") == NULL) {
		long growth = rss_kib() - rss_before;
		/* Unbounded, 950,000 chunks would hold well over 100 MiB. */
		assert_true(growth < 16 * 1024);
	}
}

/* ---- actor consumers --------------------------------------------------- */

typedef struct consumer_config {
	int64_t n;
	int64_t cancel_at;  /* af_cancel inside the nth chunk; 0: never */
	bool stop_at_first; /* af_stop_self on the first chunk */
	test_signal *done;
	int64_t *chunks;
	int64_t *after_cancel; /* chunks seen after af_cancel returned */
	int *status;
} consumer_config;

typedef struct consumer {
	const consumer_config *cfg;
	uint64_t id;
	bool cancelled;
} consumer;

static void consumer_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	consumer *c = arg;
	const consumer_config *cfg = c->cfg;

	if (c->cancelled)
		(*cfg->after_cancel)++;
	(*cfg->chunks)++;
	assert_int_equal(af_msg_seq(chunk), (uint64_t)*cfg->chunks);
	if (cfg->stop_at_first)
		af_stop_self(ctx);
	if (cfg->cancel_at != 0 && *cfg->chunks == cfg->cancel_at) {
		assert_int_equal(af_cancel(ctx, c->id), AF_OK);
		c->cancelled = true;
	}
}

static void consumer_end(af_ctx *ctx, int status, af_msg *end, void *arg)
{
	consumer *c = arg;

	*c->cfg->status = status;
	if (status == AF_OK)
		assert_int_equal(
			af_value_get_int(af_msg_payload(end), "count", -1),
			c->cfg->n);
	test_signal_add(c->cfg->done);
}

static af_err consumer_init(af_ctx *ctx, const void *config, void **state)
{
	const consumer_config *cfg = config;
	consumer *c = calloc(1, sizeof(*c));
	af_payload *args = stream_args(cfg->n, 0);
	af_err err;

	if (c == NULL)
		return AF_ENOMEM;
	c->cfg = cfg;
	err = af_request_stream(ctx, "producer", "stream", args, 20000,
				consumer_chunk, consumer_end, c, &c->id);
	af_payload_destroy(&args);
	if (err != AF_OK) {
		free(c);
		return err;
	}
	*state = c;
	return AF_OK;
}

static void consumer_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops consumer_ops = {
	.type_name = "consumer",
	.init = consumer_init,
	.stop = consumer_stop,
};

static void test_actor_consumer(void **state)
{
	fixture *f = *state;
	test_signal done;
	int64_t chunks = 0;
	int64_t after = 0;
	int status = -1;
	consumer_config cfg = {.n = 20000,
			       .done = &done,
			       .chunks = &chunks,
			       .after_cancel = &after,
			       .status = &status};

	test_signal_init(&done);
	assert_int_equal(
		af_spawn(f->sys, "consumer", &consumer_ops, &cfg, NULL), AF_OK);
	assert_true(test_signal_wait(&done, 1, 20000));
	assert_int_equal(status, AF_OK);
	assert_int_equal(chunks, 20000);
	af_stop(f->sys, "consumer");
	test_signal_fini(&done);
}

static void test_actor_cancel_inside_chunk(void **state)
{
	fixture *f = *state;
	test_signal done;
	int64_t chunks = 0;
	int64_t after = 0;
	int status = -1;
	consumer_config cfg = {.n = 0,
			       .cancel_at = 5,
			       .done = &done,
			       .chunks = &chunks,
			       .after_cancel = &after,
			       .status = &status};

	test_signal_init(&done);
	assert_int_equal(
		af_spawn(f->sys, "consumer", &consumer_ops, &cfg, NULL), AF_OK);
	assert_true(test_signal_wait(&done, 1, 20000));
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
	af_stop(f->sys, "consumer");
	assert_int_equal(status, AF_ECANCELED);
	assert_int_equal(chunks, 5);
	assert_int_equal(after, 0);
	test_signal_fini(&done);
}

static void test_consumer_stop_tells_producer(void **state)
{
	fixture *f = *state;
	test_signal done;
	int64_t chunks = 0;
	int64_t after = 0;
	int status = -1;
	consumer_config cfg = {.n = 0,
			       .stop_at_first = true,
			       .done = &done,
			       .chunks = &chunks,
			       .after_cancel = &after,
			       .status = &status};

	test_signal_init(&done);
	assert_int_equal(
		af_spawn(f->sys, "consumer", &consumer_ops, &cfg, NULL), AF_OK);
	assert_true(test_signal_wait(&done, 1, 20000));
	assert_true(test_signal_wait(&f->cancelled, 1, 10000));
	assert_int_equal(status, AF_ECANCELED);
	af_stop(f->sys, "consumer");
	test_signal_fini(&done);
}

/* A producer that fills its consumer's window, asks to hear when there is
 * room, and at once takes that back (af_pending_when_writable with fn
 * NULL); told "end", it ends the stream. */
typedef struct dropper {
	af_pending *p;
	af_err drop_err;    /* what dropping the hook returned */
	int hook_runs;      /* must stay 0 */
	int64_t sent;       /* chunks sent before the window filled */
	test_signal filled; /* the window is full and the hook dropped */
} dropper;

static void dropper_hook(af_ctx *ctx, void *arg)
{
	((dropper *)arg)->hook_runs++;
}

static af_err dropper_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err dropper_handle(af_ctx *ctx, void *state, af_msg *m)
{
	dropper *d = state;
	af_err err;

	if (strcmp(af_msg_type(m), "end") == 0)
		return af_pending_end(ctx, &d->p, NULL);
	err = af_defer(ctx, m, &d->p);
	if (err != AF_OK)
		return err;
	while ((err = af_pending_chunk(ctx, d->p, NULL)) == AF_OK)
		d->sent++;
	if (err != AF_EAGAIN)
		return err;
	err = af_pending_when_writable(ctx, d->p, dropper_hook, d);
	if (err != AF_OK)
		return err;
	d->drop_err = af_pending_when_writable(ctx, d->p, NULL, NULL);
	test_signal_add(&d->filled);
	return AF_OK;
}

static const af_actor_ops dropper_ops = {
	.type_name = "dropper",
	.init = dropper_init,
	.handle = dropper_handle,
};

/* The consumer takes every chunk, so credit comes back: the dropped hook
 * does not run. */
static void test_dropped_writable_hook_does_not_run(void **state)
{
	fixture *f = *state;
	dropper d = {.drop_err = AF_EAGAIN};
	af_stream *s = NULL;
	af_msg *m = NULL;

	test_signal_init(&d.filled);
	assert_int_equal(af_spawn(f->sys, "dropper", &dropper_ops, &d, NULL),
			 AF_OK);
	assert_int_equal(af_client_stream(f->client, "dropper", "stream", NULL,
					  10000, &s),
			 AF_OK);
	assert_true(test_signal_wait(&d.filled, 1, 10000));
	assert_int_equal(d.drop_err, AF_OK);
	assert_int_equal(d.sent, AF_STREAM_WINDOW);
	for (int64_t i = 0; i < d.sent; i++) {
		assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
		assert_int_equal(af_msg_kind(m), AF_KIND_CHUNK);
		af_msg_destroy(&m);
	}
	assert_int_equal(
		af_client_tell(f->client, "dropper", "end", NULL, 10000),
		AF_OK);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_EOF);
	assert_int_equal(af_msg_kind(m), AF_KIND_END);
	af_msg_destroy(&m);
	af_stream_close(&s);
	assert_int_equal(af_stop(f->sys, "dropper"), AF_OK);
	assert_int_equal(d.hook_runs, 0);
	test_signal_fini(&d.filled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_client_reads_every_chunk_then_end, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_plain_reply_ends_a_stream,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_plain_request_gets_no_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_error_mid_stream,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_times_out_and_goes_on,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_huge_timeouts_wait_for_the_answer, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_close_cancels_the_producer,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_deadline_ends_stream_and_tells_producer, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_destroyed_client_cancels,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_stop_fails_stream,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_producer_code_never_reads_as_a_status, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_million_chunks,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_dropped_writable_hook_does_not_run, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_actor_consumer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_actor_cancel_inside_chunk,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_consumer_stop_tells_producer, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
