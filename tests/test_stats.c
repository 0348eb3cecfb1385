/* Per-actor statistics (af_actor_get_stats, the reserved "af.stats"
 * request, a node's stats through its gateway) and af_system_drain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/af-test-stats-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	test_remove_dir(dir);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends a request and checks its outcome; returns the reply (or NULL). */
static af_msg *ask(af_client *c, const char *addr, const char *type,
		   const af_payload *p, af_err expect)
{
	af_msg *reply = NULL;

	assert_int_equal(af_client_request(c, addr, type, p, 5000, &reply),
			 expect);
	if (expect != AF_OK)
		af_msg_destroy(&reply);
	return reply;
}

/* A request that must succeed; its reply is dropped. */
static void ask_drop(af_client *c, const char *addr, const char *type,
		     const af_payload *p)
{
	af_msg *reply = ask(c, addr, type, p, AF_OK);

	af_msg_destroy(&reply);
}

/* af_actor_get_stats once the actor is done with what it was sent: an
 * actor counts an answer just after sending it, so the reply alone does
 * not say that the counters moved; its answer to "af.stats", which it
 * takes after finishing the previous message, does. */
static void stats_after(af_client *c, af_system *sys, const char *name,
			af_actor_stats *s)
{
	ask_drop(c, name, "af.stats", NULL);
	assert_int_equal(af_actor_get_stats(sys, name, s), AF_OK);
}

static uint64_t get_uint(const af_value *v, const char *key)
{
	int64_t n = af_value_get_int(v, key, -1);

	assert_true(n >= 0);
	return (uint64_t)n;
}

static void test_counters_after_known_sequence(void **state)
{
	atomic_int count = 0;
	test_signal hung;
	echo_config cfg = {.count = &count, .hung = &hung};
	af_system *sys = NULL;
	af_client *c = NULL;
	af_actor_stats s;
	af_msg *m;
	const char *text;
	size_t n = 0;

	(void)state;
	test_signal_init(&hung);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, &cfg, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_actor_get_stats(sys, "e", &s), AF_OK);
	assert_int_equal(s.requests + s.tells + s.answered, 0);
	assert_int_equal(s.latency_p99_us, 0);

	for (int i = 0; i < 3; i++)
		assert_int_equal(af_client_tell(c, "e", "count", NULL, 1000),
				 AF_OK);
	ask_drop(c, "e", "echo", NULL);
	ask_drop(c, "e", "echo", NULL);
	ask(c, "e", "fail", NULL, AF_EUSER + 1);
	ask(c, "e", "badarg", NULL, AF_EINVAL);
	ask(c, "e", "noreply", NULL, AF_ENOREPLY);
	/* Deferred and never answered: its requester gives up, the actor
	 * still holds it. */
	{
		af_msg *reply = NULL;
		assert_int_equal(
			af_client_request(c, "e", "hang", NULL, 100, &reply),
			AF_ETIMEDOUT);
		af_msg_destroy(&reply);
	}
	assert_true(test_signal_wait(&hung, 1, 5000));
	/* Everything sent before this echo was taken before it. */
	ask_drop(c, "e", "echo", NULL);

	stats_after(c, sys, "e", &s);
	assert_string_equal(s.name, "e");
	assert_string_equal(s.type_name, "echo");
	assert_int_equal(atomic_load(&count), 3);
	assert_int_equal(s.tells, 3);
	assert_int_equal(s.requests, 7);
	assert_int_equal(s.errors, 3);
	assert_int_equal(s.in_flight, 1);
	assert_int_equal(s.answered, 6);
	assert_int_equal(s.mailbox_depth, 0);
	assert_true(s.latency_p50_us <= s.latency_p90_us);
	assert_true(s.latency_p90_us <= s.latency_p99_us);
	assert_true(s.latency_p99_us <= s.latency_max_us);

	/* The same as a reserved request, which the handler never sees (it
	 * would answer AF_ENOTSUP) and which is not counted. */
	m = ask(c, "e", "af.stats", NULL, AF_OK);
	{
		const af_value *v = af_msg_payload(m);
		char *name = test_str_of(af_value_get(v, "name"));
		assert_string_equal(name, "e");
		free(name);
		assert_int_equal(get_uint(v, "requests"), 7);
		assert_int_equal(get_uint(v, "tells"), 3);
		assert_int_equal(get_uint(v, "errors"), 3);
		assert_int_equal(get_uint(v, "in_flight"), 1);
		assert_int_equal(get_uint(v, "answered"), 6);
		assert_int_equal(get_uint(v, "mailbox_depth"), 0);
		assert_true(get_uint(af_value_get(v, "latency_us"), "max") ==
			    s.latency_max_us);
	}
	af_msg_destroy(&m);
	assert_int_equal(af_client_request(c, "e", "af.nope", NULL, 5000, &m),
			 AF_ENOTSUP);
	assert_int_equal(af_msg_error(m, &text), AF_ENOTSUP);
	assert_non_null(strstr(text, "reserved"));
	af_msg_destroy(&m);
	/* A reserved tell is not handed to the handler either. */
	assert_int_equal(af_client_tell(c, "e", "af.stats", NULL, 1000), AF_OK);
	ask_drop(c, "e", "echo", NULL);
	stats_after(c, sys, "e", &s);
	assert_int_equal(s.requests, 8);
	assert_int_equal(s.tells, 3);

	assert_int_equal(af_actor_get_stats(sys, "nobody", &s), AF_ENOTFOUND);
	assert_int_equal(af_actor_get_stats(NULL, "e", &s), AF_EINVAL);
	assert_int_equal(af_system_list_stats(sys, NULL, 0, &n), AF_OK);
	assert_int_equal(n, 1);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&hung);
}

/* An actor whose handler, for a "block" tell, waits until the test
 * releases it: the mailbox fills behind it. */
typedef struct blocker {
	test_signal entered;
	test_signal release;
} blocker;

static af_err blocker_init(af_ctx *ctx, const void *config, void **state)
{
	(void)ctx;
	*state = (void *)config;
	return AF_OK;
}

static af_err blocker_handle(af_ctx *ctx, void *state, af_msg *m)
{
	blocker *b = state;

	if (strcmp(af_msg_type(m), "block") == 0) {
		test_signal_add(&b->entered);
		assert_true(test_signal_wait(&b->release, 1, 10000));
	}
	if (af_msg_kind(m) == AF_KIND_REQUEST)
		return af_reply(ctx, m, NULL);
	return AF_OK;
}

static const af_actor_ops blocker_ops = {
	.type_name = "blocker",
	.init = blocker_init,
	.handle = blocker_handle,
};

static void test_mailbox_depth(void **state)
{
	blocker b;
	af_system *sys = NULL;
	af_client *c = NULL;
	af_actor_stats s;

	(void)state;
	test_signal_init(&b.entered);
	test_signal_init(&b.release);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "b", &blocker_ops, &b, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_tell(c, "b", "block", NULL, 1000), AF_OK);
	assert_true(test_signal_wait(&b.entered, 1, 5000));
	/* A client's tells go one message each, at once. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(af_client_tell(c, "b", "x", NULL, 1000),
				 AF_OK);
	assert_int_equal(af_actor_get_stats(sys, "b", &s), AF_OK);
	assert_int_equal(s.mailbox_depth, 5);
	assert_int_equal(s.tells, 1);
	test_signal_add(&b.release);
	ask_drop(c, "b", "ping", NULL);
	stats_after(c, sys, "b", &s);
	assert_int_equal(s.mailbox_depth, 0);
	assert_int_equal(s.tells, 6);
	assert_int_equal(s.requests, 1);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&b.entered);
	test_signal_fini(&b.release);
}

static void test_latency_percentiles(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *later = NULL;
	af_actor_stats s;

	(void)state;
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_payload_new(&later), AF_OK);
	af_pack_map(later, 1);
	af_pack_str(later, "ms");
	af_pack_int(later, 100);
	/* Eight answered at once, two after 100 ms: the median is fast, the
	 * 90th and 99th percentiles are the slow ones. */
	for (int i = 0; i < 8; i++)
		ask_drop(c, "e", "echo", NULL);
	for (int i = 0; i < 2; i++)
		ask_drop(c, "e", "later", later);
	stats_after(c, sys, "e", &s);
	assert_int_equal(s.answered, 10);
	assert_int_equal(s.in_flight, 0);
	assert_true(s.latency_p50_us < 50000);
	assert_true(s.latency_p90_us >= 100000);
	assert_true(s.latency_p90_us < 5000000);
	assert_true(s.latency_p99_us >= s.latency_p90_us);
	assert_true(s.latency_max_us >= s.latency_p99_us);
	assert_true(s.latency_max_us < 5000000);
	af_payload_destroy(&later);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

static void test_stats_over_ipc(void **state)
{
	char sys_ep[128];
	char e_ep[128];
	char addr[160];
	af_system *sys = NULL;
	af_client *local = NULL;
	af_client *c = NULL;
	af_msg *m;
	const af_value *actors;
	bool found = false;

	(void)state;
	snprintf(sys_ep, sizeof(sys_ep), "ipc://%s/sys.sock", dir);
	snprintf(e_ep, sizeof(e_ep), "ipc://%s/e.sock", dir);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_export(sys, "e", e_ep), AF_OK);
	assert_int_equal(af_system_export(sys, sys_ep), AF_OK);
	assert_int_equal(af_client_new(&local, sys), AF_OK);
	ask_drop(local, "e", "echo", NULL);
	/* A client of no system, as another process would be. */
	assert_int_equal(af_client_new(&c, NULL), AF_OK);

	m = ask(c, e_ep, "af.stats", NULL, AF_OK);
	assert_int_equal(get_uint(af_msg_payload(m), "requests"), 1);
	af_msg_destroy(&m);
	snprintf(addr, sizeof(addr), "%s#e", sys_ep);
	m = ask(c, addr, "af.stats", NULL, AF_OK);
	assert_int_equal(get_uint(af_msg_payload(m), "requests"), 1);
	af_msg_destroy(&m);

	/* The gateway itself: every actor and the system's counters. */
	m = ask(c, sys_ep, "af.stats", NULL, AF_OK);
	actors = af_value_get(af_msg_payload(m), "actors");
	assert_int_equal(af_value_type(actors), AF_TYPE_ARRAY);
	for (size_t i = 0; i < af_value_len(actors); i++) {
		const af_value *a = af_value_at(actors, i);
		char *name = test_str_of(af_value_get(a, "name"));
		if (strcmp(name, "e") == 0) {
			found = true;
			assert_int_equal(get_uint(a, "requests"), 1);
		}
		free(name);
	}
	assert_true(found);
	assert_int_equal(
		get_uint(af_value_get(af_msg_payload(m), "system"), "dropped"),
		0);
	af_msg_destroy(&m);
	af_client_destroy(&c);
	af_client_destroy(&local);
	af_system_destroy(&sys);
}

typedef struct background {
	pthread_t thread;
	const char *addr;
	const char *type;
	af_payload *payload;
	int64_t timeout_ms;
	af_err result;
} background;

static void *background_main(void *arg)
{
	background *b = arg;
	af_client *c = NULL;
	af_msg *reply = NULL;

	b->result = af_client_new(&c, NULL);
	if (b->result == AF_OK)
		b->result = af_client_request(c, b->addr, b->type, b->payload,
					      b->timeout_ms, &reply);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	return NULL;
}

static void test_drain_lets_request_finish(void **state)
{
	char sys_ep[128];
	char e_ep[128];
	char addr[160];
	test_signal handled;
	echo_config cfg = {.handled = &handled};
	background bg = {.type = "later", .timeout_ms = 5000};
	af_system *sys = NULL;
	af_client *c = NULL;
	af_actor_stats s;
	uint64_t left = 99;
	int64_t start;
	af_msg *m;
	const char *text;

	(void)state;
	test_signal_init(&handled);
	snprintf(sys_ep, sizeof(sys_ep), "ipc://%s/sys.sock", dir);
	snprintf(e_ep, sizeof(e_ep), "ipc://%s/e.sock", dir);
	snprintf(addr, sizeof(addr), "%s#e", sys_ep);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, &cfg, NULL), AF_OK);
	assert_int_equal(af_export(sys, "e", e_ep), AF_OK);
	assert_int_equal(af_system_export(sys, sys_ep), AF_OK);
	/* A connection made before the drain. */
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	ask_drop(c, e_ep, "echo", NULL);

	/* A request in flight through the gateway, answered after 300 ms. */
	bg.addr = addr;
	assert_int_equal(af_payload_new(&bg.payload), AF_OK);
	af_pack_map(bg.payload, 1);
	af_pack_str(bg.payload, "ms");
	af_pack_int(bg.payload, 300);
	assert_int_equal(pthread_create(&bg.thread, NULL, background_main, &bg),
			 0);
	assert_true(test_signal_wait(&handled, 2, 5000));
	start = now_ms();
	assert_int_equal(af_system_drain(sys, 5000, &left), AF_OK);
	assert_int_equal(left, 0);
	/* It returned once the answer went, not at its timeout. */
	assert_true(now_ms() - start < 4000);
	assert_int_equal(af_actor_get_stats(sys, "e", &s), AF_OK);
	assert_int_equal(s.in_flight, 0);
	assert_int_equal(s.answered, 2);
	assert_int_equal(pthread_join(bg.thread, NULL), 0);
	assert_int_equal(bg.result, AF_OK);

	/* No new connections, and no new requests on an old one. */
	assert_int_equal(access(e_ep + 6, F_OK), -1);
	assert_int_equal(access(sys_ep + 6, F_OK), -1);
	assert_int_equal(af_client_request(c, e_ep, "echo", NULL, 5000, &m),
			 AF_ESTOPPED);
	assert_int_equal(af_msg_error(m, &text), AF_ESTOPPED);
	assert_non_null(strstr(text, "draining"));
	af_msg_destroy(&m);
	/* Work between the actors of the system goes on. */
	{
		af_client *local = NULL;
		assert_int_equal(af_client_new(&local, sys), AF_OK);
		ask_drop(local, "e", "echo", NULL);
		af_client_destroy(&local);
	}
	af_payload_destroy(&bg.payload);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&handled);
}

/* A drain's timeout of INT64_MAX ms is a wait without end in practice: it
 * returns once the request in flight is answered. It once wrapped into
 * the past, and the drain returned at once with the request still in
 * flight. */
static void test_drain_with_huge_timeout_waits(void **state)
{
	char e_ep[128];
	test_signal handled;
	echo_config cfg = {.handled = &handled};
	background bg = {.type = "later", .timeout_ms = 5000};
	af_system *sys = NULL;
	uint64_t left = 99;

	(void)state;
	test_signal_init(&handled);
	snprintf(e_ep, sizeof(e_ep), "ipc://%s/e.sock", dir);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, &cfg, NULL), AF_OK);
	assert_int_equal(af_export(sys, "e", e_ep), AF_OK);
	bg.addr = e_ep;
	assert_int_equal(af_payload_new(&bg.payload), AF_OK);
	af_pack_map(bg.payload, 1);
	af_pack_str(bg.payload, "ms");
	af_pack_int(bg.payload, 200);
	assert_int_equal(pthread_create(&bg.thread, NULL, background_main, &bg),
			 0);
	assert_true(test_signal_wait(&handled, 1, 5000));
	assert_int_equal(af_system_drain(sys, INT64_MAX, &left), AF_OK);
	assert_int_equal(left, 0);
	assert_int_equal(pthread_join(bg.thread, NULL), 0);
	assert_int_equal(bg.result, AF_OK);
	af_payload_destroy(&bg.payload);
	af_system_destroy(&sys);
	test_signal_fini(&handled);
}

static void test_drain_times_out(void **state)
{
	char e_ep[128];
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	background bg = {.type = "hang", .timeout_ms = 20000};
	af_system *sys = NULL;
	uint64_t left = 0;
	int64_t start;
	int64_t took;

	(void)state;
	test_signal_init(&hung);
	snprintf(e_ep, sizeof(e_ep), "ipc://%s/e.sock", dir);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "e", &test_echo_ops, &cfg, NULL), AF_OK);
	assert_int_equal(af_export(sys, "e", e_ep), AF_OK);
	bg.addr = e_ep;
	assert_int_equal(pthread_create(&bg.thread, NULL, background_main, &bg),
			 0);
	assert_true(test_signal_wait(&hung, 1, 5000));
	start = now_ms();
	assert_int_equal(af_system_drain(sys, 200, &left), AF_OK);
	took = now_ms() - start;
	assert_int_equal(left, 1);
	assert_true(took >= 190);
	assert_true(took < 3000);
	/* Again: still there, and no wait asked for. */
	assert_int_equal(af_system_drain(sys, 0, &left), AF_OK);
	assert_int_equal(left, 1);
	assert_int_equal(af_system_drain(NULL, 0, &left), AF_EINVAL);
	/* Stopping answers it. */
	af_system_destroy(&sys);
	assert_int_equal(pthread_join(bg.thread, NULL), 0);
	assert_int_equal(bg.result, AF_ESTOPPED);
	test_signal_fini(&hung);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters_after_known_sequence),
		cmocka_unit_test(test_mailbox_depth),
		cmocka_unit_test(test_latency_percentiles),
		cmocka_unit_test_setup_teardown(test_stats_over_ipc, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_drain_lets_request_finish,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_drain_with_huge_timeout_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_times_out, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
