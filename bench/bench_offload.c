/*
 * bench_offload.c - what the offload actor costs.
 *
 *   offload_jobs       jobs per second through the pool: one actor
 *                      submits N empty call_ptr jobs at once (all in
 *                      flight; the offload actor's mailbox and queue are
 *                      sized to take them) and waits for every answer;
 *                      default worker count (one per online core).
 *   offload_jobs_name  the same with "call" by name, whose arguments the
 *                      actor copies for the job.
 *   offload_rtt        mean microseconds for one empty job at a time
 *                      (submit, run on a worker, answer), a 5 s deadline
 *                      on each, as real code would set.
 *   echo_rtt           the same round trip to an actor that answers at
 *                      once, measured in the same run.
 *   offload_added      offload_rtt - echo_rtt: what handing a job to a
 *                      thread and back adds to a plain request.
 *
 * Each jobs figure is the median of 5 runs after a warm-up. Output:
 * RESULT <workload> actorflow <size> <value> <unit> on stdout (size: jobs
 * per run, or 0 for the round trips). Options: --jobs N (10000),
 * --iters N (round trips, 10000), --workers N (0: one per core).
 * bench/asyncio_to_thread.py measures the same with asyncio.to_thread.
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NAME "bench_offload"
#include "benchlib.h"

#define REQUEST_TIMEOUT_MS 5000
#define RUNS 5

/* ---- the work: nothing ------------------------------------------------- */

static int empty_ptr(void *arg, af_payload *result, char *msg, size_t size)
{
	return AF_OK;
}

static int empty_named(void *user, const af_value *args, af_payload *result,
		       char *msg, size_t size)
{
	return AF_OK;
}

/* ---- echo: answers at once ---------------------------------------------- */

static af_err echo_handle(af_ctx *ctx, void *state, af_msg *m)
{
	return af_reply(ctx, m, NULL);
}

static const af_actor_ops echo_ops = {
	.type_name = "echo",
	.handle = echo_handle,
};

/* ---- driver --------------------------------------------------------------
 *
 *   "burst" {"n", "named"}  n jobs at once; answers {"ns", "ok"} when all
 *                           are answered
 *   "rtt"   {"n", "to"}     n round trips one after another, to "offload"
 *                           (an empty job) or "echo"; answers {"ns"}
 */

typedef struct driver {
	af_pending *run;
	af_payload *call; /* the "call" payload of a named job */
	bool named;
	bool to_echo;
	int64_t to_send;
	int64_t to_answer;
	int64_t ok;
	int64_t start_ns;
} driver;

static void finish(af_ctx *ctx, driver *d, af_err err)
{
	af_payload *p = NULL;

	if (err != AF_OK) {
		af_pending_error(ctx, &d->run, err, "driver: %s",
				 af_strerror(err));
		return;
	}
	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "ns");
	af_pack_int(p, now_ns() - d->start_ns);
	af_pack_str(p, "ok");
	af_pack_int(p, d->ok);
	af_pending_reply(ctx, &d->run, p);
	af_payload_destroy(&p);
}

static void burst_answered(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	driver *d = arg;

	if (status == AF_OK)
		d->ok++;
	if (--d->to_answer == 0)
		finish(ctx, d, AF_OK);
}

static af_err submit_one(af_ctx *ctx, driver *d, af_reply_fn done)
{
	if (d->to_echo)
		return af_request(ctx, "echo", "ping", NULL, REQUEST_TIMEOUT_MS,
				  done, d, NULL);
	if (d->named)
		return af_request(ctx, "offload", "call", d->call,
				  REQUEST_TIMEOUT_MS, done, d, NULL);
	return af_offload_submit(ctx, "offload", empty_ptr, NULL,
				 REQUEST_TIMEOUT_MS, done, d, NULL);
}

/* Sends what is left of the burst; resumes when the mailbox has room. */
static void burst_send(af_ctx *ctx, void *arg)
{
	driver *d = arg;
	af_err err = AF_OK;

	while (d->to_send > 0 &&
	       (err = submit_one(ctx, d, burst_answered)) == AF_OK)
		d->to_send--;
	if (err == AF_EAGAIN)
		err = af_when_writable(ctx, "offload", burst_send, d);
	if (err != AF_OK) {
		/* The ones sent still answer; count the rest as answered. */
		d->to_answer -= d->to_send;
		d->to_send = 0;
		if (d->to_answer == 0)
			finish(ctx, d, err);
	}
}

static void rtt_next(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	driver *d = arg;
	af_err err = status;

	if (status == AF_OK && d->to_send-- == 0) {
		finish(ctx, d, AF_OK);
		return;
	}
	if (err == AF_OK)
		err = submit_one(ctx, d, rtt_next);
	if (err != AF_OK)
		finish(ctx, d, err);
}

static af_err driver_handle(af_ctx *ctx, void *state, af_msg *m)
{
	driver *d = state;
	const af_value *in = af_msg_payload(m);
	af_err err = af_defer(ctx, m, &d->run);

	if (err != AF_OK)
		return err;
	d->to_send = d->to_answer = af_value_get_int(in, "n", 1);
	d->named = af_value_get_bool(in, "named", false);
	d->to_echo = af_value_str_eq(af_value_get(in, "to"), "echo");
	d->ok = 0;
	d->start_ns = now_ns();
	if (strcmp(af_msg_type(m), "burst") == 0)
		burst_send(ctx, d);
	else
		rtt_next(ctx, AF_OK, NULL, d);
	return AF_OK;
}

static af_err driver_init(af_ctx *ctx, const void *config, void **state)
{
	driver *d = calloc(1, sizeof(*d));
	af_err err = d != NULL ? af_payload_new(&d->call) : AF_ENOMEM;

	if (err != AF_OK) {
		free(d);
		return err;
	}
	af_pack_map(d->call, 2);
	af_pack_str(d->call, "fn");
	af_pack_str(d->call, "empty");
	af_pack_str(d->call, "args");
	af_pack_nil(d->call);
	*state = d;
	return AF_OK;
}

static void driver_stop(af_ctx *ctx, void *state)
{
	driver *d = state;

	af_payload_destroy(&d->call);
	free(d);
}

static const af_actor_ops driver_ops = {
	.type_name = "driver",
	.init = driver_init,
	.handle = driver_handle,
	.stop = driver_stop,
};

/* ---- main -----------------------------------------------------------------
 */

/* Runs one workload through the driver; returns nanoseconds. */
static int64_t drive(af_client *c, const char *type, int64_t n, bool named,
		     const char *to)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	int64_t ns;

	check(af_payload_new(&p), "payload");
	af_pack_map(p, 3);
	af_pack_str(p, "n");
	af_pack_int(p, n);
	af_pack_str(p, "named");
	af_pack_bool(p, named);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	check(af_client_request(c, "driver", type, p, 600000, &reply), type);
	if (strcmp(type, "burst") == 0 &&
	    af_value_get_int(af_msg_payload(reply), "ok", -1) != n)
		check(AF_EREMOTE, "some jobs failed");
	ns = af_value_get_int(af_msg_payload(reply), "ns", -1);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return ns;
}

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a;
	int64_t y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_jobs(af_client *c, const char *workload, int64_t jobs,
		       bool named)
{
	int64_t ns[RUNS];

	drive(c, "burst", jobs, named, "offload");
	for (int i = 0; i < RUNS; i++)
		ns[i] = drive(c, "burst", jobs, named, "offload");
	qsort(ns, RUNS, sizeof(ns[0]), cmp_int64);
	printf("RESULT %s actorflow %lld %.0f jobs/s\n", workload,
	       (long long)jobs, (double)jobs * 1e9 / (double)ns[RUNS / 2]);
	fflush(stdout);
}

static double rtt_us(af_client *c, const char *to, int64_t iters)
{
	drive(c, "rtt", iters / 10 + 100, false, to);
	return (double)drive(c, "rtt", iters, false, to) / 1000.0 /
	       (double)iters;
}

int main(int argc, char **argv)
{
	static const af_offload_function functions[] = {
		{.name = "empty", .fn = empty_named},
	};
	af_offload_config cfg = {.functions = functions, .nfunctions = 1};
	af_spawn_opts big = {0};
	int64_t jobs = 10000;
	int64_t iters = 10000;
	af_system *sys = NULL;
	af_client *c = NULL;
	double offload_us;
	double echo_us;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--jobs") == 0)
			jobs = atoll(argv[i + 1]);
		else if (strcmp(argv[i], "--iters") == 0)
			iters = atoll(argv[i + 1]);
		else if (strcmp(argv[i], "--workers") == 0)
			cfg.workers = atoi(argv[i + 1]);
	}
	if (jobs < 1 || iters < 1 || jobs > 100000000) {
		fprintf(stderr, "usage: bench_offload [--jobs N] [--iters N] "
				"[--workers N]\n");
		return 2;
	}
	/* Every job of a burst in flight at once: none waits for room. */
	cfg.queue_capacity = (int)jobs;
	big.mailbox_capacity = (int)jobs;
	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "offload", &af_offload_ops, &cfg, &big), "offload");
	check(af_spawn(sys, "echo", &echo_ops, NULL, NULL), "echo");
	check(af_spawn(sys, "driver", &driver_ops, NULL, NULL), "driver");
	check(af_client_new(&c, sys), "client");

	bench_jobs(c, "offload_jobs", jobs, false);
	bench_jobs(c, "offload_jobs_name", jobs, true);
	offload_us = rtt_us(c, "offload", iters);
	echo_us = rtt_us(c, "echo", iters);
	printf("RESULT offload_rtt actorflow 0 %.2f us\n", offload_us);
	printf("RESULT echo_rtt actorflow 0 %.2f us\n", echo_us);
	printf("RESULT offload_added actorflow 0 %.2f us\n",
	       offload_us - echo_us);

	af_client_destroy(&c);
	af_system_destroy(&sys);
	return 0;
}
