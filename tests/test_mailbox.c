/* Bounded mailboxes: what a sender sees when one is full, and that
 * nothing is lost either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "testlib.h"

/* "gate": its first "block" request holds its thread until the test opens
 * the gate (a deliberately blocking handler, so its mailbox fills); it
 * counts every "count" tell. */
typedef struct gate {
	test_signal entered;
	test_signal open;
	test_signal counts; /* one per "count" tell handled */
	atomic_int counted;
} gate;

static af_err gate_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err gate_handle(af_ctx *ctx, void *state, af_msg *m)
{
	gate *g = state;

	if (strcmp(af_msg_type(m), "block") == 0) {
		test_signal_add(&g->entered);
		test_signal_wait(&g->open, 1, 30000);
	} else if (strcmp(af_msg_type(m), "count") == 0) {
		atomic_fetch_add(&g->counted, 1);
		test_signal_add(&g->counts);
	}
	if (af_msg_kind(m) == AF_KIND_REQUEST) {
		af_payload *p = test_payload_n(atomic_load(&g->counted));
		af_err err = af_reply(ctx, m, p);
		af_payload_destroy(&p);
		return err;
	}
	return AF_OK;
}

static const af_actor_ops gate_ops = {
	.type_name = "gate",
	.init = gate_init,
	.handle = gate_handle,
};

static void gate_init_signals(gate *g)
{
	test_signal_init(&g->entered);
	test_signal_init(&g->open);
	test_signal_init(&g->counts);
	atomic_init(&g->counted, 0);
}

static void gate_fini_signals(gate *g)
{
	test_signal_fini(&g->entered);
	test_signal_fini(&g->open);
	test_signal_fini(&g->counts);
}

static void test_full_mailbox_client(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_spawn_opts opts = {.mailbox_capacity = 10};
	gate g;
	int sent = 0;
	int64_t start;
	af_err err;

	gate_init_signals(&g);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "gate", &gate_ops, &g, &opts), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_tell(c, "gate", "block", NULL, 0), AF_OK);
	assert_true(test_signal_wait(&g.entered, 1, 5000));
	/* Now nothing drains the mailbox: fill it. */
	while ((err = af_client_tell(c, "gate", "count", NULL, 0)) == AF_OK)
		sent++;
	assert_int_equal(err, AF_EAGAIN);
	/* The bound holds: capacity plus ZeroMQ's pipe batching, not more. */
	assert_true(sent >= 10);
	assert_true(sent <= 100);
	start = af__now_ms();
	assert_int_equal(af_client_tell(c, "gate", "count", NULL, 30),
			 AF_ETIMEDOUT);
	assert_true(af__now_ms() - start >= 30);
	/* A request meets the same full mailbox and times out cleanly. */
	assert_int_equal(
		af_client_request(c, "gate", "count", NULL, 30, &reply),
		AF_ETIMEDOUT);
	assert_null(reply);

	test_signal_add(&g.open);
	/* Every tell that was accepted is handled: none was lost. */
	assert_int_equal(
		af_client_request(c, "gate", "total", NULL, 5000, &reply),
		AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", -1),
			 sent);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	gate_fini_signals(&g);
}

/* "flooder" tells "gate" until the mailbox is full and answers with how
 * many were accepted and the error that stopped it. */
/* "flooder": on "go", tells "gate" until the mailbox is full and answers
 * with how many were accepted and the error that stopped it; on "total",
 * asks the gate for its count over its own connection, which is ordered
 * behind its tells, and answers with that. */
typedef struct flooder {
	af_pending *total;
} flooder;

static void flooder_counted(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	flooder *f = arg;
	af_payload *p = test_payload_n(
		status == AF_OK
			? af_value_get_int(af_msg_payload(reply), "n", -1)
			: -status);

	af_pending_reply(ctx, &f->total, p);
	af_payload_destroy(&p);
}

static void flooder_ask_total(af_ctx *ctx, void *arg)
{
	flooder *f = arg;
	af_err err = af_request(ctx, "gate", "total", NULL, 5000,
				flooder_counted, f, NULL);

	/* The tells still waiting for room go first. */
	if (err == AF_EAGAIN)
		err = af_when_writable(ctx, "gate", flooder_ask_total, f);
	if (err != AF_OK)
		af_pending_error(ctx, &f->total, err, NULL);
}

static af_err flooder_init(af_ctx *ctx, const void *config, void **state)
{
	*state = calloc(1, sizeof(flooder));
	return AF_OK;
}

static af_err flooder_handle(af_ctx *ctx, void *state, af_msg *m)
{
	flooder *f = state;
	af_payload *p = NULL;
	int sent = 0;
	af_err err;

	if (strcmp(af_msg_type(m), "total") == 0) {
		err = af_defer(ctx, m, &f->total);
		if (err == AF_OK)
			flooder_ask_total(ctx, f);
		return err;
	}
	while ((err = af_tell(ctx, "gate", "count", NULL)) == AF_OK)
		sent++;
	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "n");
	af_pack_int(p, sent);
	af_pack_str(p, "err");
	af_pack_int(p, err);
	err = af_reply(ctx, m, p);
	af_payload_destroy(&p);
	return err;
}

static void flooder_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops flooder_ops = {
	.type_name = "flooder",
	.init = flooder_init,
	.handle = flooder_handle,
	.stop = flooder_stop,
};

static void test_full_mailbox_actor(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_spawn_opts opts = {.mailbox_capacity = 50};
	gate g;
	int64_t sent;

	gate_init_signals(&g);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "gate", &gate_ops, &g, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "flooder", &flooder_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_tell(c, "gate", "block", NULL, 0), AF_OK);
	assert_true(test_signal_wait(&g.entered, 1, 5000));
	assert_int_equal(
		af_client_request(c, "flooder", "go", NULL, 5000, &reply),
		AF_OK);
	sent = af_value_get_int(af_msg_payload(reply), "n", -1);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "err", -1),
			 AF_EAGAIN);
	/* The bound holds: an actor's tells to one peer travel in batches of
	 * at most 256, and the mailbox holds 50 messages (plus ZeroMQ's
	 * slack of one from the sender). */
	assert_true(sent >= 50 && sent <= 52 * 256);
	af_msg_destroy(&reply);
	test_signal_add(&g.open);
	/* Every tell that was accepted arrives: the count the gate gives the
	 * flooder, behind its tells, is exactly what was accepted. */
	assert_int_equal(
		af_client_request(c, "flooder", "total", NULL, 5000, &reply),
		AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", -1),
			 sent);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	gate_fini_signals(&g);
}

/* "pacer" sends n tells to "gate" through a small mailbox, waiting for
 * room with af_when_writable instead of polling, then asks the gate for
 * its count over the same (ordered) connection and answers with it. */
typedef struct pacer {
	af_pending *run;
	int64_t left;
	int waits;
	test_signal *waited; /* told each time the pacer waits for room */
} pacer;

static void pacer_counted(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	pacer *pc = arg;
	af_payload *p = NULL;

	af_payload_new(&p);
	af_pack_map(p, 3);
	af_pack_str(p, "status");
	af_pack_int(p, status);
	af_pack_str(p, "n");
	af_pack_int(p, reply != NULL ? af_value_get_int(af_msg_payload(reply),
							"n", -1)
				     : -1);
	af_pack_str(p, "waits");
	af_pack_int(p, pc->waits);
	af_pending_reply(ctx, &pc->run, p);
	af_payload_destroy(&p);
}

static void pacer_send(af_ctx *ctx, void *arg)
{
	pacer *pc = arg;
	af_err err = AF_OK;

	while (pc->left > 0 &&
	       (err = af_tell(ctx, "gate", "count", NULL)) == AF_OK)
		pc->left--;
	/* The request for the count meets the same full mailbox. */
	if (pc->left == 0)
		err = af_request(ctx, "gate", "total", NULL, 5000,
				 pacer_counted, pc, NULL);
	if (err == AF_EAGAIN) {
		pc->waits++;
		err = af_when_writable(ctx, "gate", pacer_send, pc);
		test_signal_add(pc->waited);
	}
	if (err != AF_OK)
		af_pending_error(ctx, &pc->run, err, "pacer: %s",
				 af_strerror(err));
}

static af_err pacer_init(af_ctx *ctx, const void *config, void **state)
{
	pacer *pc = calloc(1, sizeof(*pc));

	pc->waited = (test_signal *)config;
	*state = pc;
	return AF_OK;
}

static af_err pacer_handle(af_ctx *ctx, void *state, af_msg *m)
{
	pacer *pc = state;
	af_err err = af_defer(ctx, m, &pc->run);

	assert_int_equal(af_when_writable(ctx, "nobody", pacer_send, pc),
			 AF_ENOTFOUND);
	pc->left = af_value_get_int(af_msg_payload(m), "n", 0);
	pacer_send(ctx, pc);
	return err;
}

static void pacer_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops pacer_ops = {
	.type_name = "pacer",
	.init = pacer_init,
	.handle = pacer_handle,
	.stop = pacer_stop,
};

typedef struct opener {
	gate *g;
	test_signal handled;
	int waited;
} opener;

static void *open_when_paced(void *arg)
{
	opener *o = arg;

	o->waited = test_signal_wait(&o->handled, 1, 10000);
	test_signal_add(&o->g->open);
	return NULL;
}

static void test_when_writable_resumes_a_sender(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_spawn_opts small = {.mailbox_capacity = 4};
	af_payload *p = test_payload_n(20000);
	gate g;

	opener o = {.g = &g};
	pthread_t t;

	gate_init_signals(&g);
	test_signal_init(&o.handled);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "gate", &gate_ops, &g, &small), AF_OK);
	assert_int_equal(af_spawn(sys, "pacer", &pacer_ops, &o.handled, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	/* The gate is held until the pacer has met a full mailbox, so it must
	 * wait for room at least once. */
	assert_int_equal(af_client_tell(c, "gate", "block", NULL, 0), AF_OK);
	assert_true(test_signal_wait(&g.entered, 1, 5000));
	pthread_create(&t, NULL, open_when_paced, &o);
	assert_int_equal(af_client_request(c, "pacer", "go", p, 20000, &reply),
			 AF_OK);
	pthread_join(t, NULL);
	assert_true(o.waited);
	test_signal_fini(&o.handled);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "status", -1),
			 AF_OK);
	/* All 20000 arrived, and the sender did have to wait for room. */
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", -1),
			 20000);
	assert_true(af_value_get_int(af_msg_payload(reply), "waits", 0) > 0);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	gate_fini_signals(&g);
}

/* "burst" tells "gate" n times and stops itself in the same handler: its
 * tells are still in the batch of that turn when it stops. */
static af_err burst_handle(af_ctx *ctx, void *state, af_msg *m)
{
	int64_t n = af_value_get_int(af_msg_payload(m), "n", 0);
	af_err err = AF_OK;

	for (int64_t i = 0; i < n && err == AF_OK; i++)
		err = af_tell(ctx, "gate", "count", NULL);
	af_stop_self(ctx);
	return err == AF_OK ? af_reply(ctx, m, NULL) : err;
}

static const af_actor_ops burst_ops = {
	.type_name = "burst",
	.handle = burst_handle,
};

static void test_tells_outlive_their_sender(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_payload *p = test_payload_n(1000);
	gate g;

	gate_init_signals(&g);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "gate", &gate_ops, &g, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "burst", &burst_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_request(c, "burst", "go", p, 5000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	/* Every tell it accepted arrives, though its sender is gone. */
	assert_true(test_signal_wait(&g.counts, 1000, 10000));
	assert_int_equal(atomic_load(&g.counted), 1000);
	af_payload_destroy(&p);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	gate_fini_signals(&g);
}

/* "asker" sends n requests to "echo" in one handler call, then blocks
 * until the gate opens, so echo's answers pile up behind a full queue;
 * it answers with how many replies arrived, in order. */
typedef struct asker {
	gate *g;
	af_pending *run;
	int64_t expected;
	int64_t received;
	int64_t in_order;
} asker;

static void on_answer(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	asker *a = arg;
	af_payload *p;

	if (status == AF_OK &&
	    af_value_get_int(af_msg_payload(reply), "n", -1) == a->received)
		a->in_order++;
	a->received++;
	if (a->received == a->expected) {
		af_payload_new(&p);
		af_pack_map(p, 2);
		af_pack_str(p, "received");
		af_pack_int(p, a->received);
		af_pack_str(p, "in_order");
		af_pack_int(p, a->in_order);
		af_pending_reply(ctx, &a->run, p);
		af_payload_destroy(&p);
	}
}

static af_err asker_init(af_ctx *ctx, const void *config, void **state)
{
	asker *a = calloc(1, sizeof(*a));

	a->g = (gate *)config;
	*state = a;
	return AF_OK;
}

static af_err asker_handle(af_ctx *ctx, void *state, af_msg *m)
{
	asker *a = state;
	af_err err = af_defer(ctx, m, &a->run);

	a->expected = af_value_get_int(af_msg_payload(m), "n", 0);
	for (int64_t i = 0; i < a->expected && err == AF_OK; i++) {
		af_payload *p = test_payload_n(i);
		err = af_request(ctx, "echo", "echo", p, 0, on_answer, a, NULL);
		af_payload_destroy(&p);
	}
	test_signal_add(&a->g->entered);
	test_signal_wait(&a->g->open, 1, 30000);
	return err;
}

static void asker_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops asker_ops = {
	.type_name = "asker",
	.init = asker_init,
	.handle = asker_handle,
	.stop = asker_stop,
};

static void *open_when_replies_pile_up(void *arg)
{
	opener *o = arg;
	/* Once echo has answered all 5000 while the asker reads none, at
	 * most two queues' worth (2000) are in flight and the rest wait in
	 * echo's backlog. */
	o->waited = test_signal_wait(&o->g->entered, 1, 10000) &&
		    test_signal_wait(&o->handled, 5000, 10000);
	test_signal_add(&o->g->open);
	return NULL;
}

static void test_replies_to_a_slow_requester_are_kept(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_spawn_opts big = {.mailbox_capacity = 20000};
	opener o;
	echo_config cfg = {.handled = &o.handled};
	gate g;
	pthread_t t;
	af_payload *p;

	gate_init_signals(&g);
	o.g = &g;
	test_signal_init(&o.handled);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, &cfg, &big),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "asker", &asker_ops, &g, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	pthread_create(&t, NULL, open_when_replies_pile_up, &o);
	/* 5000 answers cannot fit the asker's queue (1000) and echo's
	 * outgoing pipe (1000): the rest wait in echo's backlog. */
	p = test_payload_n(5000);
	assert_int_equal(af_client_request(c, "asker", "go", p, 20000, &reply),
			 AF_OK);
	pthread_join(t, NULL);
	assert_true(o.waited);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "received", 0),
			 5000);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "in_order", 0),
			 5000);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	gate_fini_signals(&g);
	test_signal_fini(&o.handled);
}

/* A writable wait whose target stops is still called, once. */
static test_signal release;
static test_signal room;

static af_err gated_handle(af_ctx *ctx, void *state, af_msg *m)
{
	test_signal_wait(&release, 1, 10000);
	af_stop_self(ctx);
	return AF_OK;
}

static const af_actor_ops gated_ops = {.type_name = "gated",
				       .handle = gated_handle};

static void on_room(af_ctx *ctx, void *arg)
{
	test_signal_add(&room);
}

static af_err filler_handle(af_ctx *ctx, void *state, af_msg *m)
{
	af_err err;

	while ((err = af_tell(ctx, "gated", "t", NULL)) == AF_OK) {
	}
	assert_int_equal(err, AF_EAGAIN);
	assert_int_equal(af_when_writable(ctx, "gated", on_room, NULL), AF_OK);
	return af_reply(ctx, m, NULL);
}

static const af_actor_ops filler_ops = {.type_name = "filler",
					.handle = filler_handle};

static void test_writable_wait_outlives_target(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_spawn_opts one = {.mailbox_capacity = 1};

	test_signal_init(&release);
	test_signal_init(&room);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "gated", &gated_ops, NULL, &one), AF_OK);
	assert_int_equal(af_spawn(sys, "filler", &filler_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(
		af_client_request(c, "filler", "go", NULL, 5000, &reply),
		AF_OK);
	af_msg_destroy(&reply);
	test_signal_add(&release);
	af_stop(sys, "gated");
	assert_true(test_signal_wait(&room, 1, 10000));
	af_client_destroy(&c);
	af_system_destroy(&sys);
	assert_int_equal(room.count, 1);
	test_signal_fini(&release);
	test_signal_fini(&room);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_mailbox_client),
		cmocka_unit_test(test_writable_wait_outlives_target),
		cmocka_unit_test(test_full_mailbox_actor),
		cmocka_unit_test(test_replies_to_a_slow_requester_are_kept),
		cmocka_unit_test(test_when_writable_resumes_a_sender),
		cmocka_unit_test(test_tells_outlive_their_sender),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
