/* The offload actor: calls by name and by pointer, errors, the bounded
 * queue, cancellation and deadlines of waiting and running jobs, stop, and
 * an actor that stays responsive while every worker is blocked. Blocking
 * jobs wait on a gate the test opens; nothing waits on time. */
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

#define MAX_JOBS 64

/* A signal's count, read under its lock: other threads may still be
 * adding. */
static int signal_count(test_signal *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- blocking jobs ------------------------------------------------------ */

/* Jobs that block until the test opens the gate. */
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;
	test_signal started;  /* gated jobs that began */
	test_signal finished; /* gated jobs that returned */
} gate;

static void gate_init(gate *g)
{
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->open = false;
	test_signal_init(&g->started);
	test_signal_init(&g->finished);
}

static void gate_fini(gate *g)
{
	test_signal_fini(&g->finished);
	test_signal_fini(&g->started);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

static void gate_open(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void gate_pass(gate *g)
{
	test_signal_add(&g->started);
	pthread_mutex_lock(&g->mu);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	test_signal_add(&g->finished);
}

static int gated_job(void *arg, af_payload *result, char *msg, size_t size)
{
	gate_pass(arg);
	af_pack_map(result, 1);
	af_pack_str(result, "ran");
	return af_pack_bool(result, true);
}

static int count_job(void *arg, af_payload *result, char *msg, size_t size)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	return AF_OK;
}

/* ---- functions called by name ------------------------------------------ */

static int fn_add(void *user, const af_value *args, af_payload *result,
		  char *msg, size_t size)
{
	int64_t a;
	int64_t b;

	if (af_value_int(af_value_get(args, "a"), &a) != AF_OK ||
	    af_value_int(af_value_get(args, "b"), &b) != AF_OK) {
		snprintf(msg, size, "add takes {\"a\": int, \"b\": int}");
		return AF_EINVAL;
	}
	af_pack_map(result, 1);
	af_pack_str(result, "sum");
	return af_pack_int(result, a + b);
}

static int fn_echo_args(void *user, const af_value *args, af_payload *result,
			char *msg, size_t size)
{
	/* Nil comes back as nothing written, which answers nil as well. */
	if (af_value_type(args) == AF_TYPE_NIL)
		return AF_OK;
	return af_pack_value(result, args);
}

static int fn_fail(void *user, const af_value *args, af_payload *result,
		   char *msg, size_t size)
{
	snprintf(msg, size, "failed on purpose with %lld",
		 (long long)af_value_get_int(args, "n", -1));
	return AF_EUSER + 5;
}

static int fn_fail_plain(void *user, const af_value *args, af_payload *result,
			 char *msg, size_t size)
{
	return AF_ETYPE;
}

static int fn_unfinished(void *user, const af_value *args, af_payload *result,
			 char *msg, size_t size)
{
	af_pack_map_begin(result);
	return AF_OK;
}

static int fn_two_values(void *user, const af_value *args, af_payload *result,
			 char *msg, size_t size)
{
	af_pack_str(result, "one");
	af_pack_str(result, "two");
	return AF_OK;
}

static int fn_gate(void *user, const af_value *args, af_payload *result,
		   char *msg, size_t size)
{
	return gated_job(user, result, msg, size);
}

/* ---- the driver: an actor that submits jobs and records outcomes -------- */

typedef struct harness harness;

typedef struct slot {
	harness *h;
	int status;
	char text[160];
	bool ran; /* the reply said {"ran": true} */
} slot;

struct harness {
	gate gate;
	atomic_int counted;
	slot slots[MAX_JOBS];
	test_signal outcomes; /* slots filled */
};

static void harness_init(harness *h)
{
	memset(h, 0, sizeof(*h));
	gate_init(&h->gate);
	test_signal_init(&h->outcomes);
	for (int i = 0; i < MAX_JOBS; i++) {
		h->slots[i].h = h;
		h->slots[i].status = -1;
	}
}

static void harness_fini(harness *h)
{
	test_signal_fini(&h->outcomes);
	gate_fini(&h->gate);
}

typedef struct driver {
	harness *h;
	uint64_t ids[MAX_JOBS];
	int nids;
	af_pending *burst;
	int64_t burst_left;
	int64_t burst_ok;
} driver;

static void record_outcome(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	slot *s = arg;
	const char *text = NULL;

	s->status = status;
	if (reply != NULL && af_msg_error(reply, &text) != AF_OK)
		snprintf(s->text, sizeof(s->text), "%s", text);
	if (reply != NULL && status == AF_OK)
		s->ran = af_value_get_bool(af_msg_payload(reply), "ran", false);
	test_signal_add(&s->h->outcomes);
}

/* Answers the pending request in arg with the reply it is given. */
static void forward_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	af_pending *p = arg;
	af_payload *out = NULL;

	if (status != AF_OK) {
		af_pending_error(ctx, &p, status, NULL);
		return;
	}
	af_payload_new(&out);
	af_pack_value(out, af_msg_payload(reply));
	af_pending_reply(ctx, &p, out);
	af_payload_destroy(&out);
}

/* Asks offload for its stats on the driver's own connection, so that
 * whatever the driver sent it before has been handled by then. */
static af_err ask_stats(af_ctx *ctx, af_msg *m)
{
	af_pending *p = NULL;
	af_err err = af_defer(ctx, m, &p);

	if (err != AF_OK)
		return err;
	err = af_request(ctx, "offload", "stats", NULL, 5000, forward_reply, p,
			 NULL);
	if (err != AF_OK)
		af_pending_error(ctx, &p, err, NULL);
	return AF_OK;
}

static void burst_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	driver *d = arg;
	af_payload *out = NULL;

	if (status == AF_OK)
		d->burst_ok++;
	if (--d->burst_left > 0)
		return;
	af_payload_new(&out);
	af_pack_map(out, 1);
	af_pack_str(out, "ok");
	af_pack_int(out, d->burst_ok);
	af_pending_reply(ctx, &d->burst, out);
	af_payload_destroy(&out);
}

static af_err driver_handle(af_ctx *ctx, void *state, af_msg *m)
{
	driver *d = state;
	const af_value *in = af_msg_payload(m);
	const char *type = af_msg_type(m);
	int64_t n = af_value_get_int(in, "n", 1);
	int64_t timeout = af_value_get_int(in, "timeout", 0);
	af_err err = AF_OK;

	if (strcmp(type, "submit") == 0) {
		/* n gated jobs, each recorded in the next slot. */
		/* Assertions belong to the main thread: errors go back in
		 * the reply. */
		if (d->nids + n > MAX_JOBS)
			return AF_ERANGE;
		for (int64_t i = 0; i < n && err == AF_OK; i++) {
			err = af_offload_submit(
				ctx, "offload", gated_job, &d->h->gate, timeout,
				record_outcome, &d->h->slots[d->nids],
				&d->ids[d->nids]);
			d->nids++;
		}
		return err == AF_OK ? af_reply(ctx, m, NULL) : err;
	}
	if (strcmp(type, "cancel") == 0) {
		err = af_cancel(ctx, d->ids[af_value_get_int(in, "i", 0)]);
		return err == AF_OK ? ask_stats(ctx, m) : err;
	}
	if (strcmp(type, "stats") == 0)
		return ask_stats(ctx, m);
	if (strcmp(type, "burst") == 0) {
		err = af_defer(ctx, m, &d->burst);
		d->burst_left = n;
		d->burst_ok = 0;
		for (int64_t i = 0; i < n && err == AF_OK; i++)
			err = af_offload_submit(ctx, "offload", count_job,
						&d->h->counted, 5000,
						burst_done, d, NULL);
		if (err != AF_OK)
			af_pending_error(ctx, &d->burst, err, NULL);
		return AF_OK;
	}
	if (strcmp(type, "bad_submit") == 0) {
		af_payload *out = NULL;
		af_payload_new(&out);
		af_pack_array(out, 3);
		af_pack_int(out,
			    af_offload_submit(ctx, "offload", NULL, NULL, 0,
					      record_outcome, NULL, NULL));
		af_pack_int(out, af_offload_submit(ctx, "offload", count_job,
						   NULL, 0, NULL, NULL, NULL));
		af_pack_int(out,
			    af_offload_submit(ctx, "nobody", count_job, NULL, 0,
					      record_outcome, NULL, NULL));
		err = af_reply(ctx, m, out);
		af_payload_destroy(&out);
		return err;
	}
	return AF_ENOTSUP;
}

static af_err driver_init(af_ctx *ctx, const void *config, void **state)
{
	driver *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return AF_ENOMEM;
	d->h = (harness *)config;
	*state = d;
	return AF_OK;
}

static void driver_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops driver_ops = {
	.type_name = "driver",
	.init = driver_init,
	.handle = driver_handle,
	.stop = driver_stop,
};

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
	af_system *sys;
	af_client *client;
	harness h;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	harness_init(&f->h);
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_spawn(f->sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(f->sys, "driver", &driver_ops, &f->h, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	/* A test that failed half-way may leave workers at the gate; stop
	 * would wait for them. */
	gate_open(&f->h.gate);
	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	harness_fini(&f->h);
	free(f);
	return 0;
}

static void spawn_offload(fixture *f, int workers, int capacity)
{
	af_offload_function fns[] = {
		{.name = "add", .fn = fn_add},
		{.name = "echo_args", .fn = fn_echo_args},
		{.name = "fail", .fn = fn_fail},
		{.name = "fail_plain", .fn = fn_fail_plain},
		{.name = "unfinished", .fn = fn_unfinished},
		{.name = "two_values", .fn = fn_two_values},
		{.name = "gate", .fn = fn_gate, .user = &f->h.gate},
	};
	af_offload_config cfg = {
		.workers = workers,
		.queue_capacity = capacity,
		.functions = fns,
		.nfunctions = sizeof(fns) / sizeof(fns[0]),
	};

	/* The table lives on this stack: the actor copies it. */
	assert_int_equal(
		af_spawn(f->sys, "offload", &af_offload_ops, &cfg, NULL),
		AF_OK);
}

/* A request to the driver that must succeed; returns its reply. */
static af_msg *drive(fixture *f, const char *type, int64_t n, int64_t timeout)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 2);
	af_pack_str(p, "n");
	af_pack_int(p, n);
	af_pack_str(p, "timeout");
	af_pack_int(p, timeout);
	assert_int_equal(
		af_client_request(f->client, "driver", type, p, 10000, &reply),
		AF_OK);
	af_payload_destroy(&p);
	return reply;
}

static void submit_gated(fixture *f, int64_t n, int64_t timeout)
{
	af_msg *reply = drive(f, "submit", n, timeout);

	af_msg_destroy(&reply);
}

/* Cancels the driver's i-th job; returns offload's stats right after. */
static af_msg *cancel_job(fixture *f, int64_t i)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "i");
	af_pack_int(p, i);
	assert_int_equal(af_client_request(f->client, "driver", "cancel", p,
					   10000, &reply),
			 AF_OK);
	af_payload_destroy(&p);
	return reply;
}

static int64_t stat_of(const af_msg *stats, const char *key)
{
	return af_value_get_int(af_msg_payload(stats), key, -1);
}

/* A job after the others on a one-worker pool: once it is answered, every
 * job queued before it has run or been dropped, and answered. */
static void run_one_more(fixture *f, int slot_index)
{
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.outcomes, slot_index + 1, 5000));
	assert_int_equal(f->h.slots[slot_index].status, AF_OK);
	assert_true(f->h.slots[slot_index].ran);
}

static int64_t int_at(const af_msg *m, size_t i)
{
	int64_t v = -1;

	af_value_int(af_value_at(af_msg_payload(m), i), &v);
	return v;
}

static af_payload *call_payload(const char *fn, int64_t a, int64_t b)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 2);
	af_pack_str(p, "fn");
	af_pack_str(p, fn);
	af_pack_str(p, "args");
	af_pack_map(p, 3);
	af_pack_str(p, "a");
	af_pack_int(p, a);
	af_pack_str(p, "b");
	af_pack_int(p, b);
	af_pack_str(p, "n");
	assert_int_equal(af_pack_int(p, a), AF_OK);
	return p;
}

/* ---- tests -------------------------------------------------------------- */

static void test_call_by_name(void **state)
{
	fixture *f = *state;
	af_payload *p = call_payload("add", 40, 2);
	af_msg *reply = NULL;

	spawn_offload(f, 2, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "sum", -1),
			 42);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	/* Arguments left out arrive as nil; nothing written answers nil. */
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "fn");
	af_pack_str(p, "echo_args");
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_type(af_msg_payload(reply)), AF_TYPE_NIL);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	/* Arguments are the job's own copy, whatever their shape. */
	p = call_payload("echo_args", 7, 8);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "b", -1), 8);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

static void test_unknown_name_and_bad_requests(void **state)
{
	fixture *f = *state;
	af_payload *p = call_payload("nosuchfn", 1, 2);
	af_msg *reply = NULL;
	const char *text = NULL;

	spawn_offload(f, 1, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_ENOTFOUND);
	assert_int_equal(af_msg_error(reply, &text), AF_ENOTFOUND);
	assert_non_null(strstr(text, "no function named 'nosuchfn'"));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	/* No "fn" at all. */
	p = test_payload_n(1);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EINVAL);
	af_msg_destroy(&reply);
	/* A call_ptr whose pointers are not pointers. */
	assert_int_equal(af_client_request(f->client, "offload", "call_ptr", p,
					   5000, &reply),
			 AF_EINVAL);
	assert_int_equal(af_msg_error(reply, &text), AF_EINVAL);
	assert_non_null(strstr(text, "af_offload_submit"));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	assert_int_equal(af_client_request(f->client, "offload", "frobnicate",
					   NULL, 5000, &reply),
			 AF_ENOTSUP);
	af_msg_destroy(&reply);
}

static void test_function_errors(void **state)
{
	fixture *f = *state;
	af_payload *p = call_payload("fail", 17, 0);
	af_msg *reply = NULL;
	const char *text = NULL;

	spawn_offload(f, 2, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EUSER + 5);
	assert_int_equal(af_msg_error(reply, &text), AF_EUSER + 5);
	assert_string_equal(text, "failed on purpose with 17");
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	p = call_payload("fail_plain", 0, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_ETYPE);
	af_msg_error(reply, &text);
	assert_string_equal(text, af_strerror(AF_ETYPE));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	p = call_payload("unfinished", 0, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EINVAL);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, "not one complete"));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	/* Two values where one is due, the second refused by the writer,
	 * and the function says nothing of it. */
	p = call_payload("two_values", 0, 0);
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EINVAL);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, "not one complete"));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	/* The function's own check of its arguments. */
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "fn");
	af_pack_str(p, "add");
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EINVAL);
	af_msg_error(reply, &text);
	assert_string_equal(text, "add takes {\"a\": int, \"b\": int}");
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	reply = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(reply, "run"), 5);
	assert_int_equal(stat_of(reply, "failed"), 5);
	af_msg_destroy(&reply);
}

static void test_call_ptr_from_actor(void **state)
{
	fixture *f = *state;
	af_msg *reply;

	spawn_offload(f, 0, 0);
	reply = drive(f, "burst", 500, 0);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "ok", -1),
			 500);
	af_msg_destroy(&reply);
	assert_int_equal(atomic_load(&f->h.counted), 500);

	/* One with a result. */
	gate_open(&f->h.gate);
	submit_gated(f, 1, 5000);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[0].status, AF_OK);
	assert_true(f->h.slots[0].ran);

	/* Refused at once, and their continuations never run. */
	reply = drive(f, "bad_submit", 0, 0);
	assert_int_equal(int_at(reply, 0), AF_EINVAL);
	assert_int_equal(int_at(reply, 1), AF_EINVAL);
	assert_int_equal(int_at(reply, 2), AF_ENOTFOUND);
	af_msg_destroy(&reply);

	reply = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(reply, "run"), 501);
	assert_int_equal(stat_of(reply, "failed"), 0);
	assert_int_equal(stat_of(reply, "workers"),
			 sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(stat_of(reply, "capacity"), 1024);
	af_msg_destroy(&reply);
}

static void test_call_ptr_from_client(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;

	spawn_offload(f, 1, 0);
	assert_int_equal(af_offload_client_call(f->client, "offload", count_job,
						&f->h.counted, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_type(af_msg_payload(reply)), AF_TYPE_NIL);
	af_msg_destroy(&reply);
	assert_int_equal(atomic_load(&f->h.counted), 1);

	gate_open(&f->h.gate);
	assert_int_equal(af_offload_client_call(f->client, "offload", gated_job,
						&f->h.gate, 5000, &reply),
			 AF_OK);
	assert_true(af_value_get_bool(af_msg_payload(reply), "ran", false));
	af_msg_destroy(&reply);

	assert_int_equal(af_offload_client_call(f->client, "offload", NULL,
						NULL, 5000, &reply),
			 AF_EINVAL);
	assert_null(reply);
}

static void test_call_ptr_refused_from_another_process(void **state)
{
	fixture *f = *state;
	char dir[] = "/tmp/af-offload-XXXXXX";
	char endpoint[128];
	char sys_endpoint[128];
	char via_gateway[160];
	af_client *remote = NULL;
	af_payload *p = call_payload("add", 1, 2);
	af_msg *reply = NULL;
	const char *text = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/offload.sock", dir);
	spawn_offload(f, 1, 0);
	assert_int_equal(af_export(f->sys, "offload", endpoint), AF_OK);
	/* A client of no system reaches the actor through the socket, as
	 * another process would. */
	assert_int_equal(af_client_new(&remote, NULL), AF_OK);
	assert_int_equal(af_offload_client_call(remote, endpoint, count_job,
						&f->h.counted, 5000, &reply),
			 AF_EINVAL);
	assert_int_equal(af_msg_error(reply, &text), AF_EINVAL);
	assert_non_null(strstr(text, "own process"));
	af_msg_destroy(&reply);

	/* Nor through the system gateway, which forwards for the other
	 * process. */
	snprintf(sys_endpoint, sizeof(sys_endpoint), "ipc://%s/system.sock",
		 dir);
	snprintf(via_gateway, sizeof(via_gateway), "%s#offload", sys_endpoint);
	assert_int_equal(af_system_export(f->sys, sys_endpoint), AF_OK);
	assert_int_equal(af_offload_client_call(remote, via_gateway, count_job,
						&f->h.counted, 5000, &reply),
			 AF_EINVAL);
	af_msg_destroy(&reply);

	/* By name it works from anywhere. */
	assert_int_equal(
		af_client_request(remote, endpoint, "call", p, 5000, &reply),
		AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "sum", -1), 3);
	af_msg_destroy(&reply);

	/* The same call_ptr from this process runs. */
	assert_int_equal(af_offload_client_call(f->client, "offload", count_job,
						&f->h.counted, 5000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	assert_int_equal(atomic_load(&f->h.counted), 1);

	af_payload_destroy(&p);
	af_client_destroy(&remote);
	assert_int_equal(af_stop(f->sys, "offload"), AF_OK);
	/* The gateway goes with its system, and so does its socket file. */
	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	assert_int_equal(rmdir(dir), 0);
}

static void test_queue_full(void **state)
{
	fixture *f = *state;
	af_payload *p = call_payload("add", 1, 1);
	af_msg *reply = NULL;
	const char *text = NULL;

	spawn_offload(f, 1, 2);
	/* One job runs, two wait: the queue is full. */
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 1, 5000));
	submit_gated(f, 2, 0);
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[3].status, AF_EAGAIN);
	assert_non_null(strstr(f->h.slots[3].text, "queue full"));

	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_EAGAIN);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, "offload queue full"));
	af_msg_destroy(&reply);

	reply = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(reply, "queued"), 2);
	assert_int_equal(stat_of(reply, "running"), 1);
	assert_int_equal(stat_of(reply, "rejected"), 2);
	af_msg_destroy(&reply);

	gate_open(&f->h.gate);
	assert_true(test_signal_wait(&f->h.outcomes, 4, 5000));
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->h.slots[i].status, AF_OK);
	/* Room again. */
	assert_int_equal(af_client_request(f->client, "offload", "call", p,
					   5000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* Jobs sent at once to idle workers are not refused as waiting, even
 * before the workers have taken them: with 4 workers and room for 1
 * waiting job, a burst of 5 is taken, and only a sixth is refused. */
static void test_idle_workers_take_a_burst(void **state)
{
	fixture *f = *state;

	spawn_offload(f, 4, 1);
	submit_gated(f, 5, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 4, 5000));
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[5].status, AF_EAGAIN);
	gate_open(&f->h.gate);
	assert_true(test_signal_wait(&f->h.outcomes, 6, 5000));
	for (int i = 0; i < 5; i++)
		assert_int_equal(f->h.slots[i].status, AF_OK);
}

static void test_cancel_queued_job(void **state)
{
	fixture *f = *state;
	af_msg *stats;

	spawn_offload(f, 1, 0);
	submit_gated(f, 2, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 1, 5000));
	stats = cancel_job(f, 1);
	assert_int_equal(stat_of(stats, "cancelled"), 1);
	assert_int_equal(stat_of(stats, "queued"), 0);
	assert_int_equal(stat_of(stats, "running"), 1);
	af_msg_destroy(&stats);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[1].status, AF_ECANCELED);

	gate_open(&f->h.gate);
	run_one_more(f, 2);
	assert_int_equal(f->h.slots[0].status, AF_OK);
	/* The cancelled job never ran: only the first and the last did. */
	assert_int_equal(signal_count(&f->h.gate.started), 2);
	stats = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(stats, "run"), 2);
	af_msg_destroy(&stats);
}

static void test_cancel_running_job(void **state)
{
	fixture *f = *state;
	af_msg *stats;

	spawn_offload(f, 1, 0);
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 1, 5000));
	stats = cancel_job(f, 0);
	assert_int_equal(stat_of(stats, "cancelled"), 1);
	assert_int_equal(stat_of(stats, "running"), 1);
	af_msg_destroy(&stats);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[0].status, AF_ECANCELED);

	/* It finishes into a job nobody waits for: its result is dropped,
	 * and the requester heard only the cancel. */
	gate_open(&f->h.gate);
	run_one_more(f, 1);
	assert_int_equal(f->h.slots[0].status, AF_ECANCELED);
	assert_int_equal(signal_count(&f->h.outcomes), 2);
	stats = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(stats, "run"), 2);
	assert_int_equal(stat_of(stats, "cancelled"), 1);
	af_msg_destroy(&stats);
}

/* The requester's own deadline and offload's end the request at about the
 * same moment; either may be first, and the outcome is AF_ETIMEDOUT. */
static void assert_one_deadline(fixture *f)
{
	af_msg *stats = drive(f, "stats", 0, 0);

	assert_int_equal(
		stat_of(stats, "timed_out") + stat_of(stats, "cancelled"), 1);
	af_msg_destroy(&stats);
}

static void test_deadline_of_queued_job(void **state)
{
	fixture *f = *state;

	spawn_offload(f, 1, 0);
	submit_gated(f, 1, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 1, 5000));
	submit_gated(f, 1, 50);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[1].status, AF_ETIMEDOUT);
	assert_one_deadline(f);

	gate_open(&f->h.gate);
	run_one_more(f, 2);
	assert_int_equal(f->h.slots[0].status, AF_OK);
	assert_int_equal(signal_count(&f->h.gate.started), 2);
}

static void test_deadline_of_running_job(void **state)
{
	fixture *f = *state;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	const char *text = NULL;

	spawn_offload(f, 1, 0);
	submit_gated(f, 1, 50);
	assert_true(test_signal_wait(&f->h.outcomes, 1, 5000));
	assert_int_equal(f->h.slots[0].status, AF_ETIMEDOUT);
	assert_int_equal(signal_count(&f->h.gate.started), 1);
	assert_one_deadline(f);

	/* A client's call meets the same end. */
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "fn");
	af_pack_str(p, "gate");
	assert_int_equal(
		af_client_request(f->client, "offload", "call", p, 50, &reply),
		AF_ETIMEDOUT);
	if (reply != NULL) {
		af_msg_error(reply, &text);
		assert_non_null(strstr(text, "deadline"));
	}
	af_msg_destroy(&reply);
	af_payload_destroy(&p);

	gate_open(&f->h.gate);
	run_one_more(f, 1);
	assert_int_equal(signal_count(&f->h.outcomes), 2);
	assert_int_equal(f->h.slots[0].status, AF_ETIMEDOUT);
}

typedef struct stopper {
	af_system *sys;
	af_err result;
	test_signal done;
} stopper;

static void *stop_offload(void *arg)
{
	stopper *s = arg;

	s->result = af_stop(s->sys, "offload");
	test_signal_add(&s->done);
	return NULL;
}

static void test_stop_with_jobs_queued_and_running(void **state)
{
	fixture *f = *state;
	stopper s = {.sys = f->sys};
	pthread_t t;

	test_signal_init(&s.done);
	spawn_offload(f, 1, 0);
	submit_gated(f, 3, 0);
	assert_true(test_signal_wait(&f->h.gate.started, 1, 5000));

	/* Every request is answered at once; the stop itself waits for the
	 * running job. */
	pthread_create(&t, NULL, stop_offload, &s);
	assert_true(test_signal_wait(&f->h.outcomes, 3, 5000));
	for (int i = 0; i < 3; i++)
		assert_int_equal(f->h.slots[i].status, AF_ESTOPPED);
	assert_int_equal(signal_count(&s.done), 0);

	gate_open(&f->h.gate);
	assert_true(test_signal_wait(&s.done, 1, 5000));
	pthread_join(t, NULL);
	assert_int_equal(s.result, AF_OK);
	/* The two queued jobs never ran. */
	assert_int_equal(signal_count(&f->h.gate.started), 1);
	assert_int_equal(signal_count(&f->h.gate.finished), 1);
	assert_false(af_exists(f->sys, "offload"));
	test_signal_fini(&s.done);
}

static void test_spawn_rejects_bad_config(void **state)
{
	fixture *f = *state;
	af_offload_function nameless[] = {{.name = NULL, .fn = fn_add}};
	af_offload_config bad_workers = {.workers = -1};
	af_offload_config bad_fn = {.functions = nameless, .nfunctions = 1};
	af_offload_config no_table = {.nfunctions = 3};

	test_spawn_refused(f->sys, "offload", &af_offload_ops, &bad_workers,
			   AF_EINVAL, "workers and queue_capacity");
	test_spawn_refused(f->sys, "offload", &af_offload_ops, &bad_fn,
			   AF_EINVAL, "offload: function 0 has no name");
	test_spawn_refused(f->sys, "offload", &af_offload_ops, &no_table,
			   AF_EINVAL, "nfunctions is 3 but functions is NULL");
	assert_int_equal(
		af_spawn(f->sys, "offload", &af_offload_ops, NULL, NULL),
		AF_OK);
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a;
	int64_t y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

#define ECHO_ROUNDS 200

/* Median microseconds of ECHO_ROUNDS echo round trips, all answered. */
static int64_t echo_median_us(fixture *f)
{
	int64_t rtt[ECHO_ROUNDS];
	af_payload *p = test_payload_n(7);

	for (int i = 0; i < ECHO_ROUNDS; i++) {
		af_msg *reply = NULL;
		int64_t start = now_us();
		assert_int_equal(af_client_request(f->client, "echo", "echo", p,
						   5000, &reply),
				 AF_OK);
		rtt[i] = now_us() - start;
		assert_int_equal(
			af_value_get_int(af_msg_payload(reply), "n", -1), 7);
		af_msg_destroy(&reply);
	}
	af_payload_destroy(&p);
	qsort(rtt, ECHO_ROUNDS, sizeof(rtt[0]), cmp_int64);
	return rtt[ECHO_ROUNDS / 2];
}

static void test_actors_keep_answering_while_workers_block(void **state)
{
	fixture *f = *state;
	int64_t before;
	int64_t during;
	int64_t workers;
	af_msg *stats;

	spawn_offload(f, 0, 0);
	before = echo_median_us(f);

	stats = drive(f, "stats", 0, 0);
	workers = stat_of(stats, "workers");
	af_msg_destroy(&stats);
	assert_true(workers >= 1 && workers <= MAX_JOBS / 2);
	/* Every worker blocked, and as many jobs again waiting. */
	submit_gated(f, workers * 2, 0);
	assert_true(test_signal_wait(&f->h.gate.started, (int)workers, 5000));

	during = echo_median_us(f);
	print_message("echo median round trip: %lld us before, %lld us while "
		      "%lld workers block\n",
		      (long long)before, (long long)during, (long long)workers);
	assert_true(during < 5 * before + 2000);
	/* offload itself answers too. */
	stats = drive(f, "stats", 0, 0);
	assert_int_equal(stat_of(stats, "running"), workers);
	assert_int_equal(stat_of(stats, "queued"), workers);
	af_msg_destroy(&stats);
	assert_int_equal(signal_count(&f->h.outcomes), 0);

	gate_open(&f->h.gate);
	assert_true(test_signal_wait(&f->h.outcomes, (int)workers * 2, 5000));
	for (int i = 0; i < workers * 2; i++)
		assert_int_equal(f->h.slots[i].status, AF_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_call_by_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_unknown_name_and_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_function_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_call_ptr_from_actor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_call_ptr_from_client,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_call_ptr_refused_from_another_process, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_idle_workers_take_a_burst,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_full, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_queued_job, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cancel_running_job, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deadline_of_queued_job,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_of_running_job,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_stop_with_jobs_queued_and_running, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_spawn_rejects_bad_config,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_actors_keep_answering_while_workers_block, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
