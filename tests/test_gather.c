/*
 * The gather actor: results in input order, errors in slots or failing
 * fast, the concurrency limit, deadlines (the gather's, the requester's,
 * each item's), the as_completed stream, streamed items collected whole,
 * nesting, many gathers at once, cancellation by the requester and by a
 * stop, full target mailboxes, the byte limits and bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

typedef struct fixture {
	af_system *sys;
	af_client *client;
	test_signal hung;
	test_signal hang_cancelled;
	test_signal stream_cancelled;
	stream_watch watch;
	echo_config cfg;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	test_signal_init(&f->hung);
	test_signal_init(&f->hang_cancelled);
	test_signal_init(&f->stream_cancelled);
	f->watch.cancelled = &f->stream_cancelled;
	f->cfg.hung = &f->hung;
	f->cfg.hang_cancelled = &f->hang_cancelled;
	f->cfg.streams = &f->watch;
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(
		af_spawn(f->sys, "echo", &test_echo_ops, &f->cfg, NULL), AF_OK);
	assert_int_equal(af_spawn(f->sys, "gather", &af_gather_ops, NULL, NULL),
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
	test_signal_fini(&f->hung);
	test_signal_fini(&f->hang_cancelled);
	test_signal_fini(&f->stream_cancelled);
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- building requests ------------------------------------------------- */

/* Starts a gather payload: {"items": [ ... */
static af_payload *begin_gather(void)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map_begin(p);
	af_pack_str(p, "items");
	af_pack_array_begin(p);
	return p;
}

/* An item {"to", "type", "payload": {key: value} (none when key is
 * NULL), "timeout_ms" (none when 0)}. */
static void add_item(af_payload *p, const char *to, const char *type,
		     const char *key, int64_t value, int64_t timeout_ms)
{
	af_pack_map_begin(p);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	af_pack_str(p, "type");
	af_pack_str(p, type);
	if (key != NULL) {
		af_pack_str(p, "payload");
		af_pack_map(p, 1);
		af_pack_str(p, key);
		af_pack_int(p, value);
	}
	if (timeout_ms > 0) {
		af_pack_str(p, "timeout_ms");
		af_pack_int(p, timeout_ms);
	}
	af_pack_map_end(p);
}

/* An item that is itself a gather, sent to the gather actor: its items
 * follow, then end_nested. */
static void begin_nested(af_payload *p)
{
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, "gather");
	af_pack_str(p, "type");
	af_pack_str(p, "gather");
	af_pack_str(p, "payload");
	af_pack_map_begin(p);
	af_pack_str(p, "items");
	af_pack_array_begin(p);
}

static void end_nested(af_payload *p)
{
	af_pack_array_end(p);
	af_pack_map_end(p);
}

/* Ends the items; options follow as key/value pairs, then end_gather. */
static void end_items(af_payload *p)
{
	af_pack_array_end(p);
}

static void end_gather(af_payload *p)
{
	assert_int_equal(af_pack_map_end(p), AF_OK);
}

static af_err run(fixture *f, af_payload *p, int64_t timeout_ms, af_msg **out)
{
	af_err err = af_client_request(f->client, "gather", "gather", p,
				       timeout_ms, out);

	af_payload_destroy(&p);
	return err;
}

/* ---- reading answers --------------------------------------------------- */

static const af_value *slot_at(af_msg *reply, size_t i)
{
	return af_value_at(af_value_get(af_msg_payload(reply), "results"), i);
}

static void expect_ok(const af_value *slot)
{
	bool ok = false;

	assert_non_null(slot);
	assert_int_equal(af_value_bool(af_value_get(slot, "ok"), &ok), AF_OK);
	assert_true(ok);
	assert_null(af_value_get(slot, "error"));
}

/* Checks an error slot's code, and that its message holds text (when
 * text is not NULL). */
static void expect_error(const af_value *slot, int code, const char *text)
{
	const af_value *error = af_value_get(slot, "error");
	char *message;
	bool ok = true;

	assert_int_equal(af_value_bool(af_value_get(slot, "ok"), &ok), AF_OK);
	assert_false(ok);
	assert_int_equal(af_value_get_int(error, "code", -1), code);
	message = af_value_strdup(af_value_get(error, "message"));
	assert_non_null(message);
	if (text != NULL && strstr(message, text) == NULL)
		fail_msg("error message '%s' lacks '%s'", message, text);
	free(message);
}

/* Checks that an error message holds text. */
static void expect_error_text(af_msg *m, const char *text)
{
	const char *got = NULL;

	assert_non_null(m);
	af_msg_error(m, &got);
	assert_non_null(got);
	if (strstr(got, text) == NULL)
		fail_msg("error '%s' lacks '%s'", got, text);
}

static int64_t value_int(const af_value *slot, const char *key)
{
	return af_value_get_int(af_value_get(slot, "value"), key, -1);
}

/* ---- test actors ------------------------------------------------------- */

/* "meter": answers each request after 5 ms and records the most requests
 * it held at once. */
typedef struct meter_config {
	atomic_int held;
	atomic_int most;
} meter_config;

typedef struct meter_call {
	af_pending *p;
	meter_config *cfg;
} meter_call;

static void meter_answer(af_ctx *ctx, void *arg)
{
	meter_call *c = arg;

	atomic_fetch_sub(&c->cfg->held, 1);
	af_pending_reply(ctx, &c->p, NULL);
	free(c);
}

static af_err meter_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err meter_handle(af_ctx *ctx, void *state, af_msg *m)
{
	meter_call *c = calloc(1, sizeof(*c));
	int held;
	int most;
	af_err err;

	if (c == NULL)
		return AF_ENOMEM;
	c->cfg = state;
	err = af_defer(ctx, m, &c->p);
	if (err == AF_OK)
		err = af_timer_start(ctx, 5, 0, meter_answer, c, NULL);
	if (err != AF_OK) {
		free(c);
		return err;
	}
	held = atomic_fetch_add(&c->cfg->held, 1) + 1;
	most = atomic_load(&c->cfg->most);
	while (held > most &&
	       !atomic_compare_exchange_weak(&c->cfg->most, &most, held)) {
	}
	return AF_OK;
}

static const af_actor_ops meter_ops = {
	.type_name = "meter",
	.init = meter_init,
	.handle = meter_handle,
};

/* "fetch": simulated I/O, answers {"url": url} after 2 s (a timer). */
typedef struct fetch_call {
	af_pending *p;
	char *url;
} fetch_call;

static void fetch_answer(af_ctx *ctx, void *arg)
{
	fetch_call *c = arg;
	af_payload *p = NULL;

	af_payload_new(&p);
	af_pack_map(p, 1);
	af_pack_str(p, "url");
	af_pack_str(p, c->url);
	af_pending_reply(ctx, &c->p, p);
	af_payload_destroy(&p);
	free(c->url);
	free(c);
}

static af_err fetch_handle(af_ctx *ctx, void *state, af_msg *m)
{
	fetch_call *c = calloc(1, sizeof(*c));
	af_err err = c == NULL ? AF_ENOMEM : af_defer(ctx, m, &c->p);

	if (err == AF_OK) {
		c->url =
			af_value_strdup(af_value_get(af_msg_payload(m), "url"));
		err = af_timer_start(ctx, 2000, 0, fetch_answer, c, NULL);
	}
	if (err != AF_OK && c != NULL) {
		free(c->url);
		free(c);
	}
	return err;
}

static const af_actor_ops fetch_ops = {
	.type_name = "fetch",
	.handle = fetch_handle,
};

/* "talker": streams the strings of payload "words" as chunks, each a
 * plain string, or {"delta": w} when "delta" is true, then ends with
 * {"words": n}: the shape of a streamed chat. */
static af_err talker_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const af_value *words = af_value_get(af_msg_payload(m), "words");
	bool delta = af_value_get_bool(af_msg_payload(m), "delta", false);
	af_pending *p = NULL;
	af_payload *chunk = NULL;
	af_err err = af_defer(ctx, m, &p);

	if (err != AF_OK)
		return err;
	/* A few chunks, well within the credit window. */
	err = af_payload_new(&chunk);
	for (size_t i = 0; err == AF_OK && i < af_value_len(words); i++) {
		af_payload_reset(chunk);
		if (delta) {
			af_pack_map(chunk, 1);
			af_pack_str(chunk, "delta");
		}
		af_pack_value(chunk, af_value_at(words, i));
		err = af_pending_chunk(ctx, p, chunk);
	}
	if (err == AF_OK) {
		af_payload_reset(chunk);
		af_pack_map(chunk, 1);
		af_pack_str(chunk, "words");
		af_pack_uint(chunk, af_value_len(words));
		err = af_pending_end(ctx, &p, chunk);
	}
	if (err != AF_OK)
		af_pending_error(ctx, &p, err, NULL);
	af_payload_destroy(&chunk);
	return AF_OK;
}

static const af_actor_ops talker_ops = {
	.type_name = "talker",
	.handle = talker_handle,
};

/* ---- results and errors ------------------------------------------------ */

/* A gather exported to other processes: their requests may name only
 * this system's actors, unless the config allows addresses. */
static void remote_gather(bool remote_targets)
{
	af_gather_config cfg = {.remote_targets = remote_targets};
	char dir[] = "/tmp/af-gather-XXXXXX";
	char ep[96], gather_at[128], echo_at[128];
	af_system *sys = NULL, *other = NULL;
	af_client *c = NULL;
	af_payload *p;
	af_msg *m = NULL;
	af_err err;

	assert_non_null(mkdtemp(dir));
	snprintf(ep, sizeof(ep), "ipc://%s/node.sock", dir);
	snprintf(gather_at, sizeof(gather_at), "%s#gather", ep);
	snprintf(echo_at, sizeof(echo_at), "%s#echo", ep);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "gather", &af_gather_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_system_export(sys, ep), AF_OK);
	/* The requester: another system, as another process would be. */
	assert_int_equal(af_system_new(&other, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, other), AF_OK);

	/* By name: always. */
	p = begin_gather();
	add_item(p, "echo", "echo", "n", 1, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(af_client_request(c, gather_at, "gather", p, 5000, &m),
			 AF_OK);
	af_payload_destroy(&p);
	expect_ok(slot_at(m, 0));
	af_msg_destroy(&m);

	/* By address: only when the config allows it. */
	p = begin_gather();
	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, echo_at, "echo", "n", 2, 0);
	end_items(p);
	end_gather(p);
	if (remote_targets) {
		assert_int_equal(
			af_client_request(c, gather_at, "gather", p, 5000, &m),
			AF_OK);
		expect_ok(slot_at(m, 0));
		expect_ok(slot_at(m, 1));
		assert_int_equal(value_int(slot_at(m, 1), "n"), 2);
	} else {
		assert_int_equal(
			af_client_request(c, gather_at, "gather", p, 5000, &m),
			AF_EINVAL);
		expect_error_text(m, "gather: item 1: \"to\" is the address");
		expect_error_text(m, "remote_targets is off");
	}
	af_payload_destroy(&p);
	af_msg_destroy(&m);

	/* Nor through a gather nested in the request, which the gather
	 * actor sends on as its own. */
	p = begin_gather();
	begin_nested(p);
	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, echo_at, "echo", "n", 3, 0);
	end_nested(p);
	end_items(p);
	end_gather(p);
	err = af_client_request(c, gather_at, "gather", p, 5000, &m);
	af_payload_destroy(&p);
	if (remote_targets) {
		assert_int_equal(err, AF_OK);
		expect_ok(slot_at(m, 0));
	} else {
		assert_int_equal(err, AF_EINVAL);
		expect_error_text(m, "gather: item 1: \"to\" is the address");
	}
	af_msg_destroy(&m);
	af_client_destroy(&c);
	af_system_destroy(&other);
	af_system_destroy(&sys);
	assert_int_equal(rmdir(dir), 0);
}

static void test_remote_requester_names_only_actors(void **state)
{
	remote_gather(false);
	(void)state;
}

static void test_remote_targets_allows_addresses(void **state)
{
	remote_gather(true);
	(void)state;
}

static void test_results_keep_input_order(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	/* The first item finishes last. */
	for (int64_t ms = 250; ms > 0; ms -= 50)
		add_item(p, "echo", "later", "ms", ms, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	assert_int_equal(
		af_value_len(af_value_get(af_msg_payload(reply), "results")),
		5);
	for (size_t i = 0; i < 5; i++) {
		expect_ok(slot_at(reply, i));
		assert_int_equal(value_int(slot_at(reply, i), "ms"),
				 250 - 50 * (int64_t)i);
	}
	af_msg_destroy(&reply);
}

static void test_order_kept_when_only_some_come_early(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	/* The first finishes in order, the second last, the others before
	 * it: the reply mixes both ways of keeping slots. */
	add_item(p, "echo", "echo", "n", 0, 0);
	add_item(p, "echo", "later", "ms", 50, 0);
	add_item(p, "echo", "echo", "n", 2, 0);
	add_item(p, "echo", "fail", NULL, 0, 0);
	add_item(p, "echo", "echo", "n", 4, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	assert_int_equal(value_int(slot_at(reply, 0), "n"), 0);
	assert_int_equal(value_int(slot_at(reply, 1), "ms"), 50);
	assert_int_equal(value_int(slot_at(reply, 2), "n"), 2);
	expect_error(slot_at(reply, 3), AF_EUSER + 1, "asked to fail");
	assert_int_equal(value_int(slot_at(reply, 4), "n"), 4);
	af_msg_destroy(&reply);
}

static void test_collect_keeps_errors_in_slots(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, "echo", "fail", NULL, 0, 0);
	add_item(p, "nobody", "echo", NULL, 0, 0);
	add_item(p, "echo", "no such type", NULL, 0, 0);
	add_item(p, "echo", "echo", "n", 5, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	expect_ok(slot_at(reply, 0));
	assert_int_equal(value_int(slot_at(reply, 0), "n"), 1);
	expect_error(slot_at(reply, 1), AF_EUSER + 1, "asked to fail");
	expect_error(slot_at(reply, 2), AF_ENOTFOUND, "nobody");
	expect_error(slot_at(reply, 3), AF_ENOTSUP, "no such type");
	expect_ok(slot_at(reply, 4));
	assert_int_equal(value_int(slot_at(reply, 4), "n"), 5);
	af_msg_destroy(&reply);
}

static void test_fail_fast_cancels_running_items(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	/* The echo actor takes the items in order: both hangs are held
	 * when the failure comes back. */
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "fail", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "mode");
	af_pack_str(p, "fail_fast");
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_EUSER + 1);
	expect_error_text(reply, "item 2");
	expect_error_text(reply, "asked to fail");
	af_msg_destroy(&reply);
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
}

static void test_fail_fast_success_is_collected(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, "echo", "later", "ms", 20, 0);
	end_items(p);
	af_pack_str(p, "mode");
	af_pack_str(p, "fail_fast");
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	expect_ok(slot_at(reply, 0));
	expect_ok(slot_at(reply, 1));
	assert_int_equal(value_int(slot_at(reply, 1), "ms"), 20);
	af_msg_destroy(&reply);
}

/* ---- concurrency ------------------------------------------------------- */

static void test_concurrency_limit(void **state)
{
	fixture *f = *state;
	meter_config meter = {0};
	af_gather_config two = {.concurrency = 2};
	af_payload *p;
	af_msg *reply = NULL;

	assert_int_equal(af_spawn(f->sys, "meter", &meter_ops, &meter, NULL),
			 AF_OK);
	p = begin_gather();
	for (int i = 0; i < 24; i++)
		add_item(p, "meter", "work", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "concurrency");
	af_pack_int(p, 4);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	for (size_t i = 0; i < 24; i++)
		expect_ok(slot_at(reply, i));
	af_msg_destroy(&reply);
	assert_int_equal(atomic_load(&meter.most), 4);

	/* A gather actor's configured default applies when a gather gives
	 * no limit of its own. */
	atomic_store(&meter.most, 0);
	assert_int_equal(
		af_spawn(f->sys, "gather2", &af_gather_ops, &two, NULL), AF_OK);
	p = begin_gather();
	for (int i = 0; i < 10; i++)
		add_item(p, "meter", "work", NULL, 0, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(af_client_request(f->client, "gather2", "gather", p,
					   10000, &reply),
			 AF_OK);
	af_payload_destroy(&p);
	af_msg_destroy(&reply);
	assert_int_equal(atomic_load(&meter.most), 2);
}

/* ---- deadlines --------------------------------------------------------- */

static void test_deadline_collect(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;
	int64_t start = now_ms();

	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "timeout_ms");
	af_pack_int(p, 200);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	assert_true(now_ms() - start >= 190);
	expect_ok(slot_at(reply, 0));
	expect_error(slot_at(reply, 1), AF_ETIMEDOUT, "deadline");
	expect_error(slot_at(reply, 2), AF_ETIMEDOUT, "deadline");
	af_msg_destroy(&reply);
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
}

static void test_deadline_collect_counts_unstarted_items(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	/* One at a time: the hang holds the only place until the end. */
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "echo", "n", 1, 0);
	end_items(p);
	af_pack_str(p, "timeout_ms");
	af_pack_int(p, 100);
	af_pack_str(p, "concurrency");
	af_pack_int(p, 1);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	expect_error(slot_at(reply, 0), AF_ETIMEDOUT, "finished");
	expect_error(slot_at(reply, 1), AF_ETIMEDOUT, "started");
	af_msg_destroy(&reply);
}

static void test_deadline_fail_fast(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	add_item(p, "echo", "echo", "n", 1, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "timeout_ms");
	af_pack_int(p, 150);
	af_pack_str(p, "mode");
	af_pack_str(p, "fail_fast");
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_ETIMEDOUT);
	expect_error_text(reply, "deadline of 150 ms");
	af_msg_destroy(&reply);
	assert_true(test_signal_wait(&f->hang_cancelled, 1, 10000));
}

static void test_requester_deadline_bounds_the_gather(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	/* No timeout_ms: the client's own 400 ms deadline is the gather's,
	 * and the gather answers before it rather than leave the client
	 * with nothing. */
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "echo", "n", 2, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 400, &reply), AF_OK);
	expect_error(slot_at(reply, 0), AF_ETIMEDOUT, NULL);
	expect_ok(slot_at(reply, 1));
	af_msg_destroy(&reply);
	assert_true(test_signal_wait(&f->hang_cancelled, 1, 10000));
}

static void test_item_deadlines(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;
	int64_t start = now_ms();

	add_item(p, "echo", "hang", NULL, 0, 100);
	add_item(p, "echo", "later", "ms", 10, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "item_timeout_ms");
	af_pack_int(p, 150);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	assert_true(now_ms() - start < 5000);
	expect_error(slot_at(reply, 0), AF_ETIMEDOUT, "100 ms");
	expect_ok(slot_at(reply, 1));
	expect_error(slot_at(reply, 2), AF_ETIMEDOUT, "150 ms");
	af_msg_destroy(&reply);
	/* A request that timed out is cancelled at its target. */
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
}

/* ---- as_completed ------------------------------------------------------ */

static void test_as_completed_streams_each_result(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_stream *s = NULL;
	af_msg *m = NULL;
	bool seen[40] = {false};
	int chunks = 0;
	af_err err;

	for (int i = 0; i < 40; i++) {
		if (i % 10 == 3)
			add_item(p, "echo", "fail", NULL, 0, 0);
		else
			add_item(p, "echo", "later", "ms", (i * 7) % 50 + 1, 0);
	}
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	end_gather(p);
	assert_int_equal(
		af_client_stream(f->client, "gather", "gather", p, 10000, &s),
		AF_OK);
	af_payload_destroy(&p);
	while ((err = af_stream_next(s, 10000, &m)) == AF_OK) {
		const af_value *slot = af_msg_payload(m);
		int64_t i = af_value_get_int(slot, "index", -1);
		assert_true(i >= 0 && i < 40);
		assert_false(seen[i]);
		seen[i] = true;
		chunks++;
		if (i % 10 == 3) {
			expect_error(slot, AF_EUSER + 1, "asked to fail");
		} else {
			expect_ok(slot);
			assert_int_equal(value_int(slot, "ms"),
					 (i * 7) % 50 + 1);
		}
		af_msg_destroy(&m);
	}
	assert_int_equal(err, AF_EOF);
	assert_int_equal(chunks, 40);
	assert_int_equal(af_msg_kind(m), AF_KIND_END);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "completed", -1),
			 40);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "failed", -1), 4);
	af_msg_destroy(&m);
	af_stream_close(&s);
}

static void test_as_completed_needs_a_stream(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;

	add_item(p, "echo", "echo", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_EINVAL);
	expect_error_text(reply, "as_completed");
	expect_error_text(reply, "af_client_stream");
	af_msg_destroy(&reply);
}

/* ---- streamed items ---------------------------------------------------- */

static void add_talker(af_payload *p, const char *const *words, int n,
		       bool delta)
{
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, "talker");
	af_pack_str(p, "type");
	af_pack_str(p, "chat");
	af_pack_str(p, "payload");
	af_pack_map(p, 2);
	af_pack_str(p, "delta");
	af_pack_bool(p, delta);
	af_pack_str(p, "words");
	af_pack_array(p, (uint32_t)n);
	for (int i = 0; i < n; i++)
		af_pack_str(p, words[i]);
}

static void expect_text(const af_value *slot, const char *text)
{
	char *got = af_value_strdup(af_value_get(slot, "text"));

	assert_non_null(got);
	assert_string_equal(got, text);
	free(got);
}

static void test_streamed_items_are_collected_whole(void **state)
{
	fixture *f = *state;
	static const char *const hello[] = {"Hel", "lo, ", "world"};
	static const char *const abc[] = {"a", "b", "c"};
	af_payload *p;
	af_msg *reply = NULL;
	const af_value *chunks;

	assert_int_equal(af_spawn(f->sys, "talker", &talker_ops, NULL, NULL),
			 AF_OK);
	p = begin_gather();
	add_item(p, "echo", "stream", "n", 5, 0);
	add_talker(p, hello, 3, true);
	add_talker(p, abc, 3, false);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);

	expect_ok(slot_at(reply, 0));
	assert_int_equal(value_int(slot_at(reply, 0), "count"), 5);
	chunks = af_value_get(slot_at(reply, 0), "chunks");
	assert_int_equal(af_value_len(chunks), 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(
			af_value_get_int(af_value_at(chunks, i), "i", -1),
			(int64_t)i + 1);
	/* Its chunks carry no text, so the slot has none. */
	assert_null(af_value_get(slot_at(reply, 0), "text"));

	expect_ok(slot_at(reply, 1));
	expect_text(slot_at(reply, 1), "Hello, world");
	assert_int_equal(value_int(slot_at(reply, 1), "words"), 3);
	assert_int_equal(
		af_value_len(af_value_get(slot_at(reply, 1), "chunks")), 3);
	expect_ok(slot_at(reply, 2));
	expect_text(slot_at(reply, 2), "abc");
	af_msg_destroy(&reply);
}

/* ---- nesting, many at once -------------------------------------------- */

static void test_gathers_nest(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_msg *reply = NULL;
	const af_value *inner;

	add_item(p, "echo", "echo", "n", 1, 0);
	begin_nested(p);
	add_item(p, "echo", "echo", "n", 2, 0);
	add_item(p, "echo", "later", "ms", 20, 0);
	add_item(p, "echo", "fail", NULL, 0, 0);
	end_nested(p);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	expect_ok(slot_at(reply, 0));
	expect_ok(slot_at(reply, 1));
	inner = af_value_get(af_value_get(slot_at(reply, 1), "value"),
			     "results");
	assert_int_equal(af_value_len(inner), 3);
	expect_ok(af_value_at(inner, 0));
	assert_int_equal(value_int(af_value_at(inner, 0), "n"), 2);
	expect_ok(af_value_at(inner, 1));
	expect_error(af_value_at(inner, 2), AF_EUSER + 1, NULL);
	af_msg_destroy(&reply);
}

static void test_many_gathers_at_once(void **state)
{
	fixture *f = *state;
	af_stream *s[8] = {NULL};
	af_msg *m = NULL;
	int64_t start = now_ms();

	/* Eight gathers of 500 ms each, in flight together through one
	 * gather actor: one after the other would take 4 s. */
	for (int g = 0; g < 8; g++) {
		af_payload *p = begin_gather();
		for (int i = 0; i < 3; i++)
			add_item(p, "echo", "later", "ms", 500 - i, 0);
		add_item(p, "echo", "echo", "n", g, 0);
		end_items(p);
		end_gather(p);
		assert_int_equal(af_client_stream(f->client, "gather", "gather",
						  p, 20000, &s[g]),
				 AF_OK);
		af_payload_destroy(&p);
	}
	for (int g = 0; g < 8; g++) {
		assert_int_equal(af_stream_next(s[g], 20000, &m), AF_EOF);
		assert_int_equal(af_msg_kind(m), AF_KIND_REPLY);
		for (size_t i = 0; i < 3; i++)
			expect_ok(slot_at(m, i));
		assert_int_equal(value_int(slot_at(m, 3), "n"), g);
		af_msg_destroy(&m);
		af_stream_close(&s[g]);
	}
	assert_true(now_ms() - start < 3000);
}

/* ---- cancellation ------------------------------------------------------ */

static void test_closing_the_stream_cancels_items(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_stream *s = NULL;
	af_msg *m = NULL;

	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "echo", "n", 7, 0);
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	end_gather(p);
	assert_int_equal(
		af_client_stream(f->client, "gather", "gather", p, 10000, &s),
		AF_OK);
	af_payload_destroy(&p);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "index", -1), 2);
	af_msg_destroy(&m);
	assert_true(test_signal_wait(&f->hung, 2, 10000));
	af_stream_close(&s);
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
}

static void test_cancelling_a_plain_gather_cancels_items(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_stream *s = NULL;

	/* A stream request answered by one reply is cancelled the same
	 * way: the gather's cancel hook runs. */
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(
		af_client_stream(f->client, "gather", "gather", p, 10000, &s),
		AF_OK);
	af_payload_destroy(&p);
	assert_true(test_signal_wait(&f->hung, 2, 10000));
	af_stream_close(&s);
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
}

static void test_stopping_the_gather_actor(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_stream *s = NULL;
	af_msg *m = NULL;

	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "hang", NULL, 0, 0);
	add_item(p, "echo", "stream", "n", 0, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(
		af_client_stream(f->client, "gather", "gather", p, 10000, &s),
		AF_OK);
	af_payload_destroy(&p);
	assert_true(test_signal_wait(&f->hung, 2, 10000));
	assert_int_equal(af_stop(f->sys, "gather"), AF_OK);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_ESTOPPED);
	af_msg_destroy(&m);
	af_stream_close(&s);
	assert_true(test_signal_wait(&f->hang_cancelled, 2, 10000));
	assert_true(test_signal_wait(&f->stream_cancelled, 1, 10000));
}

/* ---- full mailboxes ---------------------------------------------------- */

static void test_full_target_mailbox_waits(void **state)
{
	fixture *f = *state;
	af_spawn_opts tiny = {.mailbox_capacity = 2};
	af_payload *p;
	af_msg *reply = NULL;

	assert_int_equal(af_spawn(f->sys, "tiny", &test_echo_ops, NULL, &tiny),
			 AF_OK);
	p = begin_gather();
	for (int i = 0; i < 200; i++)
		add_item(p, "tiny", "echo", "n", i, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(run(f, p, 20000, &reply), AF_OK);
	for (size_t i = 0; i < 200; i++) {
		expect_ok(slot_at(reply, i));
		assert_int_equal(value_int(slot_at(reply, i), "n"), (int64_t)i);
	}
	af_msg_destroy(&reply);
}

/* ---- sizes ------------------------------------------------------------- */

static void add_blob(af_payload *p, const char *to, size_t size)
{
	char *blob = calloc(1, size);

	assert_non_null(blob);
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	af_pack_str(p, "payload");
	af_pack_bin(p, blob, size);
	free(blob);
}

static void test_byte_limit_fails_the_item(void **state)
{
	fixture *f = *state;
	af_gather_config small = {.max_bytes = 50000};
	af_payload *p;
	af_msg *reply = NULL;

	assert_int_equal(
		af_spawn(f->sys, "small", &af_gather_ops, &small, NULL), AF_OK);
	p = begin_gather();
	add_blob(p, "echo", 20000);
	add_blob(p, "echo", 20000);
	add_blob(p, "echo", 20000);
	/* An endless stream grows past the limit and is cancelled. */
	add_item(p, "echo", "stream", "n", 0, 0);
	end_items(p);
	af_pack_str(p, "concurrency");
	af_pack_int(p, 1);
	end_gather(p);
	assert_int_equal(af_client_request(f->client, "small", "gather", p,
					   10000, &reply),
			 AF_OK);
	af_payload_destroy(&p);
	expect_ok(slot_at(reply, 0));
	expect_ok(slot_at(reply, 1));
	expect_error(slot_at(reply, 2), AF_EMSGSIZE, "limit");
	expect_error(slot_at(reply, 3), AF_EMSGSIZE, "limit");
	af_msg_destroy(&reply);
	assert_true(test_signal_wait(&f->stream_cancelled, 1, 10000));
}

static void test_reply_too_large_says_as_completed(void **state)
{
	af_system_opts opts = {.max_message_size = 64 * 1024};
	af_gather_config big = {.max_bytes = 1 << 20};
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *p;
	af_stream *s = NULL;
	af_msg *m = NULL;
	int chunks = 0;
	af_err err;

	(void)state;
	assert_int_equal(af_system_new(&sys, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "gather", &af_gather_ops, &big, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	/* Each item's slot fits a message (3000 small chunks); the four
	 * together do not. */
	p = begin_gather();
	for (int i = 0; i < 4; i++)
		add_item(p, "echo", "stream", "n", 3000, 0);
	end_items(p);
	end_gather(p);
	assert_int_equal(af_client_request(c, "gather", "gather", p, 10000, &m),
			 AF_EMSGSIZE);
	expect_error_text(m, "as_completed");
	af_msg_destroy(&m);
	af_payload_destroy(&p);

	p = begin_gather();
	for (int i = 0; i < 4; i++)
		add_item(p, "echo", "stream", "n", 3000, 0);
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	end_gather(p);
	assert_int_equal(af_client_stream(c, "gather", "gather", p, 10000, &s),
			 AF_OK);
	af_payload_destroy(&p);
	while ((err = af_stream_next(s, 10000, &m)) == AF_OK) {
		expect_ok(af_msg_payload(m));
		assert_int_equal(
			af_value_len(af_value_get(af_msg_payload(m), "chunks")),
			3000);
		chunks++;
		af_msg_destroy(&m);
	}
	assert_int_equal(err, AF_EOF);
	assert_int_equal(chunks, 4);
	af_msg_destroy(&m);
	af_stream_close(&s);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

/* ---- input ------------------------------------------------------------- */

static void test_empty_items(void **state)
{
	fixture *f = *state;
	af_payload *p = begin_gather();
	af_stream *s = NULL;
	af_msg *m = NULL;
	const af_value *results;

	end_items(p);
	end_gather(p);
	assert_int_equal(
		af_client_request(f->client, "gather", "gather", p, 5000, &m),
		AF_OK);
	results = af_value_get(af_msg_payload(m), "results");
	assert_int_equal(af_value_type(results), AF_TYPE_ARRAY);
	assert_int_equal(af_value_len(results), 0);
	af_msg_destroy(&m);
	af_payload_destroy(&p);

	p = begin_gather();
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	end_gather(p);
	assert_int_equal(
		af_client_stream(f->client, "gather", "gather", p, 5000, &s),
		AF_OK);
	af_payload_destroy(&p);
	assert_int_equal(af_stream_next(s, 5000, &m), AF_EOF);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "completed", -1),
			 0);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "failed", -1), 0);
	af_msg_destroy(&m);
	af_stream_close(&s);
}

/* Sends p and expects AF_EINVAL with text in the message. */
static void expect_refused(fixture *f, af_payload *p, const char *text)
{
	af_msg *m = NULL;

	assert_int_equal(af_payload_status(p), AF_OK);
	assert_int_equal(run(f, p, 5000, &m), AF_EINVAL);
	expect_error_text(m, text);
	af_msg_destroy(&m);
}

static void test_bad_input(void **state)
{
	fixture *f = *state;
	af_payload *p = NULL;
	af_msg *m = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_int(p, 5);
	expect_refused(f, p, "must be a map");

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 0);
	expect_refused(f, p, "\"items\" must be an array");

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "items");
	af_pack_str(p, "echo");
	expect_refused(f, p, "\"items\" must be an array");

	p = begin_gather();
	add_item(p, "echo", "echo", NULL, 0, 0);
	af_pack_int(p, 5);
	end_items(p);
	end_gather(p);
	expect_refused(f, p, "item 1 is not a map");

	p = begin_gather();
	add_item(p, "echo", "echo", NULL, 0, 0);
	add_item(p, "echo", "echo", NULL, 0, 0);
	af_pack_map(p, 1);
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	end_items(p);
	end_gather(p);
	expect_refused(f, p, "item 2 has no \"to\"");

	p = begin_gather();
	af_pack_map(p, 2);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_str(p, "type");
	af_pack_int(p, 3);
	end_items(p);
	end_gather(p);
	expect_refused(f, p, "item 0 has no \"type\"");

	p = begin_gather();
	add_item(p, "echo", "echo", NULL, 0, 0);
	end_items(p);
	af_pack_str(p, "mode");
	af_pack_str(p, "fastest");
	end_gather(p);
	expect_refused(f, p, "\"mode\" must be \"collect\" or \"fail_fast\"");

	p = begin_gather();
	end_items(p);
	af_pack_str(p, "concurrency");
	af_pack_int(p, -1);
	end_gather(p);
	expect_refused(f, p, "\"concurrency\"");

	p = begin_gather();
	end_items(p);
	af_pack_str(p, "as_completed");
	af_pack_str(p, "yes");
	end_gather(p);
	expect_refused(f, p, "\"as_completed\" must be a bool");

	assert_int_equal(af_client_request(f->client, "gather", "scatter", NULL,
					   5000, &m),
			 AF_ENOTSUP);
	af_msg_destroy(&m);
}

/* The request is read in one pass over its bytes; these are the rules of
 * a map read by key that the pass keeps. */
static void test_input_read_in_place(void **state)
{
	fixture *f = *state;
	af_payload *p;
	af_msg *m = NULL;
	const af_value *slot;

	/* Options are judged before items, wherever they stand. */
	p = begin_gather();
	af_pack_int(p, 5);
	end_items(p);
	af_pack_str(p, "mode");
	af_pack_str(p, "fastest");
	end_gather(p);
	expect_refused(f, p, "\"mode\" must be");

	/* Options may come first, and the first of a repeated key counts;
	 * keys that are not strings, and unknown ones, are passed over;
	 * nil options are absent ones. */
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map_begin(p);
	af_pack_int(p, 5);
	af_pack_str(p, "five");
	af_pack_str(p, "mode");
	af_pack_str(p, "fail_fast");
	af_pack_str(p, "mode");
	af_pack_str(p, "fastest");
	af_pack_str(p, "timeout_ms");
	af_pack_nil(p);
	af_pack_str(p, "as_completed");
	af_pack_nil(p);
	af_pack_str(p, "colour");
	af_pack_array(p, 1);
	af_pack_str(p, "blue");
	af_pack_str(p, "items");
	af_pack_array_begin(p);
	add_item(p, "echo", "echo", "n", 1, 0);
	/* Within an item the last of a repeated key counts. */
	af_pack_map_begin(p);
	af_pack_str(p, "to");
	af_pack_str(p, "nowhere");
	af_pack_int(p, 7);
	af_pack_str(p, "not a key");
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	af_pack_str(p, "payload");
	af_pack_nil(p);
	af_pack_str(p, "extra");
	af_pack_map(p, 1);
	af_pack_str(p, "k");
	af_pack_array(p, 0);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_map_end(p);
	/* A payload goes on as its bytes: 32-bit headers and all. */
	af_pack_map_begin(p);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	af_pack_str(p, "payload");
	af_pack_map_begin(p);
	af_pack_str(p, "list");
	af_pack_array_begin(p);
	af_pack_int(p, 1);
	af_pack_int(p, 2);
	af_pack_array_end(p);
	af_pack_map_end(p);
	af_pack_map_end(p);
	af_pack_array_end(p);
	af_pack_str(p, "items");
	af_pack_int(p, 5);
	end_gather(p);
	assert_int_equal(run(f, p, 5000, &m), AF_OK);
	assert_int_equal(
		af_value_len(af_value_get(af_msg_payload(m), "results")), 3);
	expect_ok(slot_at(m, 0));
	assert_int_equal(value_int(slot_at(m, 0), "n"), 1);
	slot = slot_at(m, 1);
	expect_ok(slot);
	assert_int_equal(af_value_type(af_value_get(slot, "value")),
			 AF_TYPE_NIL);
	slot = slot_at(m, 2);
	expect_ok(slot);
	assert_int_equal(
		af_value_len(af_value_get(af_value_get(slot, "value"), "list")),
		2);
	af_msg_destroy(&m);

	/* An item's own deadline must be an unsigned integer, and an item
	 * whose last "to" is no address has none. */
	p = begin_gather();
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	af_pack_str(p, "timeout_ms");
	af_pack_str(p, "soon");
	end_items(p);
	end_gather(p);
	expect_refused(f, p, "item 0: \"timeout_ms\" must be");

	p = begin_gather();
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	af_pack_str(p, "to");
	af_pack_str(p, "");
	end_items(p);
	end_gather(p);
	expect_refused(f, p, "item 0 has no \"to\"");
}

/* ---- the seed example -------------------------------------------------- */

/* results = await asyncio.gather(fetch(a), fetch(b), fetch(c)): three
 * fetches of 2 s each take 2 s together, not 6. */
static void test_three_fetches_take_two_seconds(void **state)
{
	fixture *f = *state;
	static const char *const urls[] = {"https://a.example/",
					   "https://b.example/",
					   "https://c.example/"};
	af_payload *p;
	af_msg *reply = NULL;
	int64_t start;
	int64_t elapsed;

	assert_int_equal(af_spawn(f->sys, "fetch", &fetch_ops, NULL, NULL),
			 AF_OK);
	p = begin_gather();
	for (int i = 0; i < 3; i++) {
		af_pack_map(p, 3);
		af_pack_str(p, "to");
		af_pack_str(p, "fetch");
		af_pack_str(p, "type");
		af_pack_str(p, "fetch");
		af_pack_str(p, "payload");
		af_pack_map(p, 1);
		af_pack_str(p, "url");
		af_pack_str(p, urls[i]);
	}
	end_items(p);
	end_gather(p);
	start = now_ms();
	assert_int_equal(run(f, p, 10000, &reply), AF_OK);
	elapsed = now_ms() - start;
	assert_true(elapsed >= 1900);
	assert_true(elapsed < 3500);
	for (size_t i = 0; i < 3; i++) {
		char *url = af_value_strdup(af_value_get(
			af_value_get(slot_at(reply, i), "value"), "url"));
		assert_non_null(url);
		assert_string_equal(url, urls[i]);
		free(url);
	}
	af_msg_destroy(&reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_results_keep_input_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_order_kept_when_only_some_come_early, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_collect_keeps_errors_in_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_fail_fast_cancels_running_items, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_fail_fast_success_is_collected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deadline_collect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_deadline_collect_counts_unstarted_items, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_deadline_fail_fast, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_requester_deadline_bounds_the_gather, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_item_deadlines, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_as_completed_streams_each_result, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_as_completed_needs_a_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_streamed_items_are_collected_whole, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_gathers_nest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_gathers_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_closing_the_stream_cancels_items, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cancelling_a_plain_gather_cancels_items, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_stopping_the_gather_actor,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_target_mailbox_waits,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_limit_fails_the_item,
						setup, teardown),
		cmocka_unit_test(test_reply_too_large_says_as_completed),
		cmocka_unit_test(test_remote_requester_names_only_actors),
		cmocka_unit_test(test_remote_targets_allows_addresses),
		cmocka_unit_test_setup_teardown(test_empty_items, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_input_read_in_place, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_three_fetches_take_two_seconds, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
