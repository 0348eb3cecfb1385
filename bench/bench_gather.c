/*
 * bench_gather.c - the gather actor against doing the same by hand.
 *
 *   gather   a client asks actor "gather" for one gather of N requests
 *            ({"i": i}) to actor "echo", which replies at once; from the
 *            send of the gather to its reply with N results in order.
 *   direct   the reference: actor "driver" sends the same N requests to
 *            "echo" itself, all in flight at once (af_request in a loop,
 *            resuming with af_when_writable on AF_EAGAIN), and answers
 *            when the last reply is in; from the client's send of "run"
 *            to that answer.
 * Both give every request the same deadline (the gather passes its own to
 * its items), as real code would.
 *
 * Rounds alternate the two after a warm-up; the median of each is
 * reported, in microseconds per item, and their ratio:
 *   RESULT gather actorflow-gather N <us> us/item
 *   RESULT gather actorflow-direct N <us> us/item
 *   RESULT gather_ratio actorflow N <gather/direct> x
 * Options: --items N (default 10000), --rounds R (default 7).
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NAME "bench_gather"
#include "benchlib.h"

#define TIMEOUT_MS 60000

/* ---- echo -------------------------------------------------------------- */

static af_err echo_init(af_ctx *ctx, const void *config, void **state)
{
	return af_payload_new((af_payload **)state);
}

static af_err echo_handle(af_ctx *ctx, void *state, af_msg *m)
{
	af_payload *out = state;

	af_payload_reset(out);
	af_pack_value(out, af_msg_payload(m));
	return af_reply(ctx, m, out);
}

static void echo_stop(af_ctx *ctx, void *state)
{
	af_payload *out = state;

	af_payload_destroy(&out);
}

static const af_actor_ops echo_ops = {
	.type_name = "echo",
	.init = echo_init,
	.handle = echo_handle,
	.stop = echo_stop,
};

/* ---- driver: the same requests by hand --------------------------------- */

typedef struct driver {
	af_pending *run;
	af_payload *msg;
	int64_t n;
	int64_t sent;
	int64_t replied;
	int failed;
} driver;

static void send_more(af_ctx *ctx, void *arg);

static void on_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	driver *d = arg;

	if (status != AF_OK)
		d->failed = status;
	if (++d->replied < d->n)
		return;
	if (d->failed != AF_OK)
		af_pending_error(ctx, &d->run, d->failed, NULL);
	else
		af_pending_reply(ctx, &d->run, NULL);
}

static void send_more(af_ctx *ctx, void *arg)
{
	driver *d = arg;
	af_err err = AF_OK;

	while (d->sent < d->n) {
		af_payload_reset(d->msg);
		af_pack_map(d->msg, 1);
		af_pack_str(d->msg, "i");
		af_pack_int(d->msg, d->sent);
		err = af_request(ctx, "echo", "ping", d->msg, TIMEOUT_MS,
				 on_reply, d, NULL);
		if (err != AF_OK)
			break;
		d->sent++;
	}
	if (err == AF_EAGAIN)
		err = af_when_writable(ctx, "echo", send_more, d);
	if (err != AF_OK)
		af_pending_error(ctx, &d->run, err, NULL);
}

static af_err driver_init(af_ctx *ctx, const void *config, void **state)
{
	driver *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return AF_ENOMEM;
	*state = d;
	return af_payload_new(&d->msg);
}

static af_err driver_handle(af_ctx *ctx, void *state, af_msg *m)
{
	driver *d = state;
	af_err err = af_defer(ctx, m, &d->run);

	if (err != AF_OK)
		return err;
	d->n = af_value_get_int(af_msg_payload(m), "n", 0);
	d->sent = d->replied = 0;
	d->failed = AF_OK;
	send_more(ctx, d);
	return AF_OK;
}

static void driver_stop(af_ctx *ctx, void *state)
{
	driver *d = state;

	af_payload_destroy(&d->msg);
	free(d);
}

static const af_actor_ops driver_ops = {
	.type_name = "driver",
	.init = driver_init,
	.handle = driver_handle,
	.stop = driver_stop,
};

/* ---- the two runs ------------------------------------------------------ */

static af_payload *gather_request(int64_t n)
{
	af_payload *p = NULL;

	check(af_payload_new(&p), "payload");
	af_pack_map(p, 1);
	af_pack_str(p, "items");
	af_pack_array(p, (uint32_t)n);
	for (int64_t i = 0; i < n; i++) {
		af_pack_map(p, 3);
		af_pack_str(p, "to");
		af_pack_str(p, "echo");
		af_pack_str(p, "type");
		af_pack_str(p, "ping");
		af_pack_str(p, "payload");
		af_pack_map(p, 1);
		af_pack_str(p, "i");
		af_pack_int(p, i);
	}
	check(af_payload_status(p), "gather request");
	return p;
}

static int64_t run_gather(af_client *c, const af_payload *p, int64_t n)
{
	af_msg *reply = NULL;
	const af_value *results;
	int64_t start = now_ns();
	int64_t ns;

	check(af_client_request(c, "gather", "gather", p, TIMEOUT_MS, &reply),
	      "gather");
	ns = now_ns() - start;
	results = af_value_get(af_msg_payload(reply), "results");
	if ((int64_t)af_value_len(results) != n ||
	    !af_value_get_bool(af_value_at(results, (size_t)n - 1), "ok",
			       false) ||
	    af_value_get_int(
		    af_value_get(af_value_at(results, (size_t)n - 1), "value"),
		    "i", -1) != n - 1) {
		fprintf(stderr, "bench_gather: wrong results\n");
		exit(1);
	}
	af_msg_destroy(&reply);
	return ns;
}

static int64_t run_direct(af_client *c, int64_t n)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	int64_t start;
	int64_t ns;

	check(af_payload_new(&p), "payload");
	af_pack_map(p, 1);
	af_pack_str(p, "n");
	af_pack_int(p, n);
	start = now_ns();
	check(af_client_request(c, "driver", "run", p, TIMEOUT_MS, &reply),
	      "direct");
	ns = now_ns() - start;
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return ns;
}

static double median_us_per_item(int64_t *ns, int rounds, int64_t n)
{
	qsort(ns, (size_t)rounds, sizeof(*ns), cmp_i64);
	return (double)ns[rounds / 2] / 1000.0 / (double)n;
}

int main(int argc, char **argv)
{
	int64_t n = 10000;
	int rounds = 7;
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *request;
	int64_t *gather_ns;
	int64_t *direct_ns;
	double gather_us;
	double direct_us;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
			n = atoll(argv[++i]);
		else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_gather [--items N] "
					"[--rounds R]\n");
			return 2;
		}
	}
	if (n < 1 || n > AF_GATHER_MAX_ITEMS || rounds < 1) {
		fprintf(stderr, "bench_gather: bad --items or --rounds\n");
		return 2;
	}
	gather_ns = calloc((size_t)rounds, sizeof(*gather_ns));
	direct_ns = calloc((size_t)rounds, sizeof(*direct_ns));
	if (gather_ns == NULL || direct_ns == NULL)
		check(AF_ENOMEM, "rounds");
	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "echo", &echo_ops, NULL, NULL), "spawn echo");
	check(af_spawn(sys, "gather", &af_gather_ops, NULL, NULL),
	      "spawn gather");
	check(af_spawn(sys, "driver", &driver_ops, NULL, NULL), "spawn driver");
	check(af_client_new(&c, sys), "client");
	request = gather_request(n);

	/* Warm-up: connections, caches, the allocator. */
	run_gather(c, request, n);
	run_direct(c, n);
	for (int r = 0; r < rounds; r++) {
		gather_ns[r] = run_gather(c, request, n);
		direct_ns[r] = run_direct(c, n);
	}
	gather_us = median_us_per_item(gather_ns, rounds, n);
	direct_us = median_us_per_item(direct_ns, rounds, n);
	printf("RESULT gather actorflow-gather %lld %.3f us/item\n",
	       (long long)n, gather_us);
	printf("RESULT gather actorflow-direct %lld %.3f us/item\n",
	       (long long)n, direct_us);
	printf("RESULT gather_ratio actorflow %lld %.2f x\n", (long long)n,
	       gather_us / direct_us);
	fflush(stdout);

	af_payload_destroy(&request);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	free(gather_ns);
	free(direct_ns);
	return 0;
}
