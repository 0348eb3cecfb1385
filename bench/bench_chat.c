/*
 * bench_chat.c - N concurrent stream_chat requests through one chat actor.
 *
 * A "driver" actor sends N stream_chat requests at once to actor "chat"
 * (provider openai, pointed at --url, normally a mockllm_server in another
 * process) and counts their chunks; the run ends when every stream has
 * ended. Reported on one line, like bench/curl_floor.c and
 * bench/py_stream_baseline.py, so bench/run_chat_bench.py can put the
 * three side by side:
 *
 *   n=N ok=K failed=F wall_s=W cpu_s=C maxrss_mb=R chunks=X ttfb_med_ms=T
 *
 * cpu_s is this whole process (every actor thread); maxrss_mb its peak
 * resident size; ttfb_med_ms the median time from the start of the run to
 * a request's first chunk (all are sent at the start).
 *
 *   bench_chat --url http://127.0.0.1:PORT -n 1000
 */
#include <actorflow/actorflow.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_NAME "bench_chat"
#include "benchlib.h"

typedef struct run {
	int n;
	int64_t *first_ns; /* per request: its first chunk, 0: none yet */
	long chunks;
	int ended;
	int errors;
	af_err first_error;
	char error_text[200];
	int64_t start_ns;
	int64_t end_ns;
	pthread_mutex_t mu;
	pthread_cond_t done;
	bool finished;
} run;

typedef struct slot {
	run *r;
	int i;
} slot;

static void on_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	slot *s = arg;

	if (s->r->first_ns[s->i] == 0)
		s->r->first_ns[s->i] = now_ns();
	s->r->chunks++;
}

static void on_end(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	slot *s = arg;
	run *r = s->r;

	if (status != AF_OK) {
		if (r->errors++ == 0) {
			const char *text = NULL;

			r->first_error = status;
			af_msg_error(reply, &text);
			snprintf(r->error_text, sizeof(r->error_text), "%s",
				 text != NULL ? text : af_strerror(status));
		}
	}
	if (++r->ended == r->n) {
		pthread_mutex_lock(&r->mu);
		r->end_ns = now_ns();
		r->finished = true;
		pthread_cond_signal(&r->done);
		pthread_mutex_unlock(&r->mu);
	}
}

typedef struct driver {
	run *r;
	slot *slots;
	af_payload *question;
	int next; /* the next request to send */
} driver;

static void send_more(af_ctx *ctx, void *arg)
{
	driver *d = arg;

	while (d->next < d->r->n) {
		slot *s = &d->slots[d->next];
		af_err err;

		err = af_request_stream(ctx, "chat", "stream_chat", d->question,
					600000, on_chunk, on_end, s, NULL);
		if (err == AF_EAGAIN) {
			check(af_when_writable(ctx, "chat", send_more, d),
			      "af_when_writable");
			return;
		}
		check(err, "af_request_stream");
		d->next++;
	}
}

static af_err driver_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err driver_handle(af_ctx *ctx, void *state, af_msg *m)
{
	driver *d = state;

	d->r->start_ns = now_ns();
	send_more(ctx, d);
	return AF_OK;
}

static const af_actor_ops driver_ops = {
	.type_name = "driver",
	.init = driver_init,
	.handle = driver_handle,
};

static af_payload *question(void)
{
	af_payload *p;

	check(af_payload_new(&p), "af_payload_new");
	af_pack_map(p, 1);
	af_pack_str(p, "messages");
	af_pack_array(p, 1);
	af_pack_map(p, 2);
	af_pack_str(p, "role");
	af_pack_str(p, "user");
	af_pack_str(p, "content");
	af_pack_str(p, "Tell me a story in fifty words.");
	check(af_payload_status(p), "packing the question");
	return p;
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	int n = 100;
	char base[256];
	af_chat_config cfg;
	af_system *sys;
	af_client *client;
	run r = {0};
	driver d = {0};
	struct rusage ru;
	int64_t *ttfc;
	int got = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_chat --url URL [-n N]\n");
			return 2;
		}
	}
	if (url == NULL || n <= 0) {
		fprintf(stderr, "usage: bench_chat --url URL [-n N]\n");
		return 2;
	}
	snprintf(base, sizeof(base), "%s/v1", url);
	r.n = n;
	r.first_ns = calloc((size_t)n, sizeof(int64_t));
	d.slots = calloc((size_t)n, sizeof(slot));
	if (r.first_ns == NULL || d.slots == NULL)
		check(AF_ENOMEM, "calloc");
	for (int i = 0; i < n; i++)
		d.slots[i] = (slot){.r = &r, .i = i};
	d.r = &r;
	d.question = question();
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.done, NULL);

	af_chat_config_init(&cfg, "openai");
	cfg.base_url = base;
	cfg.api_key_env = NULL;
	cfg.max_concurrent = n;
	cfg.max_retries = 0;
	check(af_system_new(&sys, NULL), "af_system_new");
	check(af_spawn(sys, "chat", &af_chat_ops, &cfg,
		       &(af_spawn_opts){.mailbox_capacity = n + 16}),
	      "spawn chat");
	check(af_spawn(sys, "driver", &driver_ops, &d, NULL), "spawn driver");
	check(af_client_new(&client, sys), "af_client_new");
	check(af_client_tell(client, "driver", "go", NULL, 1000), "go");

	pthread_mutex_lock(&r.mu);
	while (!r.finished)
		pthread_cond_wait(&r.done, &r.mu);
	pthread_mutex_unlock(&r.mu);

	getrusage(RUSAGE_SELF, &ru);
	ttfc = calloc((size_t)n, sizeof(int64_t));
	for (int i = 0; i < n; i++) {
		if (r.first_ns[i] != 0)
			ttfc[got++] = r.first_ns[i] - r.start_ns;
	}
	qsort(ttfc, (size_t)got, sizeof(int64_t), cmp_i64);
	printf("n=%d ok=%d failed=%d wall_s=%.3f cpu_s=%.3f maxrss_mb=%.1f "
	       "chunks=%ld ttfb_med_ms=%.3f\n",
	       n, n - r.errors, r.errors, (double)(r.end_ns - r.start_ns) / 1e9,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       (double)ru.ru_maxrss / 1024.0, r.chunks,
	       got > 0 ? (double)ttfc[got / 2] / 1e6 : -1.0);
	if (r.errors > 0)
		fprintf(stderr, "bench_chat: %d errors, the first %s: %s\n",
			r.errors, af_errname(r.first_error), r.error_text);
	af_client_destroy(&client);
	af_system_destroy(&sys);
	af_payload_destroy(&d.question);
	free(ttfc);
	free(r.first_ns);
	free(d.slots);
	return r.errors > 0;
}
