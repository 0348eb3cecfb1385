/*
 * bench_runtime.c - actorflow's side of the runtime benchmark.
 *
 * The same workloads as zmq_baseline.c, between actors:
 *   rtt_inproc   actor "driver" requests actor "echo" and waits for the
 *                reply before the next request (one in flight, a 5 s
 *                deadline on each, as real code would set); mean us.
 *   tell_inproc  "driver" tells "sink" as fast as the mailbox takes them,
 *                resuming with af_when_writable when it is full; messages
 *                per second until "sink" has counted the last one.
 *   rtt_ipc, tell_ipc   the same with "echo" and "sink" in another process
 *                (this program re-executed with --serve), over ipc://.
 * and, once:
 *   spawn_stop   microseconds to spawn and stop one actor (1000 of them)
 *   idle_rss     KiB of resident memory per 1000 idle actors
 *   wakeup_loop_N, wakeup_thread_N   the mailbox loop's cost to find one
 *                ready fd among N = 10 and 10,000 idle watched fds, alone
 *                and with a thread wake-up (see bench_wakeup).
 *
 * Output: RESULT <workload> actorflow <size> <value> <unit> on stdout;
 * notes on stderr. Options as zmq_baseline: --quick, --rtt-iters N,
 * --tell-msgs N, --sizes 16,1024, --only inproc|ipc; and --workloads
 * rtt,tell,spawn,wakeup to run some of them.
 */
#define _GNU_SOURCE

#include <actorflow/actorflow.h>
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "bench_runtime"
#include "benchlib.h"

#define MAX_SIZES 8
#define REQUEST_TIMEOUT_MS 5000

extern char **environ;

/* ---- echo and sink ----------------------------------------------------- */

typedef struct echo {
	af_payload *out;
} echo;

static af_err echo_init(af_ctx *ctx, const void *config, void **state)
{
	echo *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return AF_ENOMEM;
	*state = e;
	return af_payload_new(&e->out);
}

static af_err echo_handle(af_ctx *ctx, void *state, af_msg *m)
{
	echo *e = state;

	af_payload_reset(e->out);
	af_pack_value(e->out, af_msg_payload(m));
	return af_reply(ctx, m, e->out);
}

static void echo_stop(af_ctx *ctx, void *state)
{
	echo *e = state;

	af_payload_destroy(&e->out);
	free(e);
}

static const af_actor_ops echo_ops = {
	.type_name = "echo",
	.init = echo_init,
	.handle = echo_handle,
	.stop = echo_stop,
};

/* "expect" {n} is answered once n tells have been counted after it. */
typedef struct sink {
	af_pending *expect;
	int64_t target;
	int64_t count;
} sink;

static af_err sink_init(af_ctx *ctx, const void *config, void **state)
{
	*state = calloc(1, sizeof(sink));
	return *state != NULL ? AF_OK : AF_ENOMEM;
}

static void sink_done(af_ctx *ctx, sink *s)
{
	af_pending_reply(ctx, &s->expect, NULL);
	s->target = -1;
}

static af_err sink_handle(af_ctx *ctx, void *state, af_msg *m)
{
	sink *s = state;

	if (af_msg_kind(m) == AF_KIND_TELL) {
		if (++s->count == s->target)
			sink_done(ctx, s);
		return AF_OK;
	}
	s->count = 0;
	s->target = af_value_get_int(af_msg_payload(m), "n", 0);
	return af_defer(ctx, m, &s->expect);
}

static void sink_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops sink_ops = {
	.type_name = "sink",
	.init = sink_init,
	.handle = sink_handle,
	.stop = sink_stop,
};

/* "stream" {n, size} is answered by n chunks of size bytes, then an end. */
typedef struct source {
	af_pending *p;
	af_payload *chunk;
	int64_t left;
} source;

static af_err source_init(af_ctx *ctx, const void *config, void **state)
{
	source *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return AF_ENOMEM;
	*state = s;
	return af_payload_new(&s->chunk);
}

static void source_pump(af_ctx *ctx, void *arg)
{
	source *s = arg;
	af_err err = AF_OK;

	while (s->left > 0 &&
	       (err = af_pending_chunk(ctx, s->p, s->chunk)) == AF_OK)
		s->left--;
	if (err == AF_EAGAIN) {
		af_pending_when_writable(ctx, s->p, source_pump, s);
		return;
	}
	if (err != AF_OK)
		af_pending_error(ctx, &s->p, err, "source: %s",
				 af_strerror(err));
	else
		af_pending_end(ctx, &s->p, NULL);
}

static af_err source_handle(af_ctx *ctx, void *state, af_msg *m)
{
	source *s = state;
	const af_value *in = af_msg_payload(m);
	int64_t size = af_value_get_int(in, "size", 64);
	void *buf = calloc(1, (size_t)size);
	af_err err;

	if (buf == NULL)
		return AF_ENOMEM;
	af_payload_reset(s->chunk);
	af_pack_bin(s->chunk, buf, (size_t)size);
	free(buf);
	s->left = af_value_get_int(in, "n", 1);
	err = af_defer(ctx, m, &s->p);
	if (err == AF_OK)
		source_pump(ctx, s);
	return err;
}

static void source_stop(af_ctx *ctx, void *state)
{
	source *s = state;

	af_payload_destroy(&s->chunk);
	free(s);
}

static const af_actor_ops source_ops = {
	.type_name = "source",
	.init = source_init,
	.handle = source_handle,
	.stop = source_stop,
};

/* ---- driver ------------------------------------------------------------ */

typedef struct driver {
	af_pending *run;
	af_payload *msg;
	char to[256];
	int64_t left;
	int64_t start_ns;
	int64_t n;
} driver;

static af_err driver_init(af_ctx *ctx, const void *config, void **state)
{
	driver *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return AF_ENOMEM;
	*state = d;
	return af_payload_new(&d->msg);
}

static void finish(af_ctx *ctx, driver *d, int status)
{
	int64_t elapsed = now_ns() - d->start_ns;
	af_payload *p = NULL;

	if (status != AF_OK) {
		af_pending_error(ctx, &d->run, status, "driver: %s",
				 af_strerror(status));
		return;
	}
	af_payload_new(&p);
	af_pack_map(p, 1);
	af_pack_str(p, "ns");
	af_pack_int(p, elapsed);
	af_pending_reply(ctx, &d->run, p);
	af_payload_destroy(&p);
}

static void rtt_next(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	driver *d = arg;
	af_err err;

	if (status != AF_OK || d->left == 0) {
		finish(ctx, d, status);
		return;
	}
	d->left--;
	err = af_request(ctx, d->to, "ping", d->msg, REQUEST_TIMEOUT_MS,
			 rtt_next, d, NULL);
	if (err != AF_OK)
		finish(ctx, d, err);
}

static void tell_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	finish(ctx, arg, status);
}

static void tell_more(af_ctx *ctx, void *arg)
{
	driver *d = arg;
	af_err err = AF_OK;

	while (d->left > 0 && (err = af_tell(ctx, d->to, "t", d->msg)) == AF_OK)
		d->left--;
	if (err == AF_EAGAIN)
		err = af_when_writable(ctx, d->to, tell_more, d);
	if (err != AF_OK)
		finish(ctx, d, err);
}

static void stream_chunk(af_ctx *ctx, af_msg *chunk, void *arg)
{
	driver *d = arg;

	d->left--;
}

static void stream_start(af_ctx *ctx, driver *d, int64_t size)
{
	af_payload *p = NULL;
	af_err err;

	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "n");
	af_pack_int(p, d->n);
	af_pack_str(p, "size");
	af_pack_int(p, size);
	err = af_request_stream(ctx, d->to, "stream", p, 0, stream_chunk,
				tell_done, d, NULL);
	af_payload_destroy(&p);
	if (err != AF_OK)
		finish(ctx, d, err);
}

static void tell_start(af_ctx *ctx, driver *d)
{
	af_payload *p = NULL;
	af_err err;

	/* The expectation travels on the same ordered connection as the
	 * tells, so the sink knows the count before the first one. */
	af_payload_new(&p);
	af_pack_map(p, 1);
	af_pack_str(p, "n");
	af_pack_int(p, d->n);
	err = af_request(ctx, d->to, "expect", p, 0, tell_done, d, NULL);
	af_payload_destroy(&p);
	if (err != AF_OK) {
		finish(ctx, d, err);
		return;
	}
	tell_more(ctx, d);
}

static af_err driver_handle(af_ctx *ctx, void *state, af_msg *m)
{
	driver *d = state;
	const af_value *in = af_msg_payload(m);
	const char *to;
	size_t len;
	void *buf;
	int64_t size = af_value_get_int(in, "size", 16);
	af_err err;

	if (af_value_str(af_value_get(in, "to"), &to, &len) != AF_OK ||
	    len >= sizeof(d->to))
		return AF_EINVAL;
	memcpy(d->to, to, len);
	d->to[len] = '\0';
	d->n = d->left = af_value_get_int(in, "n", 1);
	buf = calloc(1, (size_t)size);
	af_payload_reset(d->msg);
	af_pack_bin(d->msg, buf, (size_t)size);
	free(buf);
	err = af_defer(ctx, m, &d->run);
	if (err != AF_OK)
		return err;
	d->start_ns = now_ns();
	if (strcmp(af_msg_type(m), "rtt") == 0)
		rtt_next(ctx, AF_OK, NULL, d);
	else if (strcmp(af_msg_type(m), "stream") == 0)
		stream_start(ctx, d, size);
	else
		tell_start(ctx, d);
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

/* Runs one workload through the driver; returns nanoseconds. */
static int64_t drive(af_client *c, const char *type, const char *to, int64_t n,
		     size_t size)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	int64_t ns;
	af_err err;

	af_payload_new(&p);
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	af_pack_str(p, "n");
	af_pack_int(p, n);
	af_pack_str(p, "size");
	af_pack_int(p, (int64_t)size);
	err = af_client_request(c, "driver", type, p, 600000, &reply);
	if (err != AF_OK)
		die(type, err);
	ns = af_value_get_int(af_msg_payload(reply), "ns", -1);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return ns;
}

static const char *workloads_selected = "rtt,tell,stream,spawn,wakeup";

static bool selected(const char *name)
{
	return strstr(workloads_selected, name) != NULL;
}

static void run_pair(af_client *c, const char *transport, const char *echo_to,
		     const char *sink_to, const char *source_to,
		     int64_t rtt_iters, int64_t tell_msgs, size_t size)
{
	int64_t ns;

	if (!selected("rtt"))
		goto tell;
	/* Warm-up: connections, caches, allocator. */
	drive(c, "rtt", echo_to, rtt_iters / 10 + 100, size);
	ns = drive(c, "rtt", echo_to, rtt_iters, size);
	printf("RESULT rtt_%s actorflow %zu %.2f us\n", transport, size,
	       (double)ns / 1000.0 / (double)rtt_iters);
	fflush(stdout);
tell:
	if (!selected("tell"))
		goto stream;
	drive(c, "tell", sink_to, tell_msgs / 20 + 1000, size);
	ns = drive(c, "tell", sink_to, tell_msgs, size);
	printf("RESULT tell_%s actorflow %zu %.0f msg/s\n", transport, size,
	       (double)tell_msgs * 1e9 / (double)ns);
	fflush(stdout);
stream:
	if (!selected("stream"))
		return;
	/* The stream's chunks flow the other way: source to driver. */
	drive(c, "stream", source_to, tell_msgs / 20 + 1000, size);
	ns = drive(c, "stream", source_to, tell_msgs, size);
	printf("RESULT stream_%s actorflow %zu %.0f msg/s\n", transport, size,
	       (double)tell_msgs * 1e9 / (double)ns);
	fflush(stdout);
}

/* ---- the other process ------------------------------------------------- */

static int serve(const char *dir)
{
	af_system *sys = NULL;
	af_spawn_opts big = {.mailbox_capacity = 2000};
	char endpoint[512];
	char buf[16];

	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "echo", &echo_ops, NULL, NULL), "spawn echo");
	check(af_spawn(sys, "sink", &sink_ops, NULL, &big), "spawn sink");
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/echo.sock", dir);
	check(af_export(sys, "echo", endpoint), "export echo");
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/sink.sock", dir);
	check(af_export(sys, "sink", endpoint), "export sink");
	check(af_spawn(sys, "source", &source_ops, NULL, NULL), "spawn source");
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/source.sock", dir);
	check(af_export(sys, "source", endpoint), "export source");
	printf("ready\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	af_system_destroy(&sys);
	return 0;
}

typedef struct server {
	pid_t pid;
	int in;
	FILE *out;
	char dir[64];
} server;

static void server_start(server *s)
{
	int to_child[2];
	int from_child[2];
	char line[32];
	posix_spawn_file_actions_t fa;
	char *argv[] = {"bench_runtime", "--serve", s->dir, NULL};

	strcpy(s->dir, "/tmp/af-bench-XXXXXX");
	if (mkdtemp(s->dir) == NULL || pipe(to_child) != 0 ||
	    pipe(from_child) != 0)
		die("ipc set-up", AF_ESYS);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, to_child[1]);
	posix_spawn_file_actions_addclose(&fa, from_child[0]);
	if (posix_spawn(&s->pid, "/proc/self/exe", &fa, NULL, argv, environ) !=
	    0)
		die("spawn server", AF_ESYS);
	posix_spawn_file_actions_destroy(&fa);
	close(to_child[0]);
	close(from_child[1]);
	s->in = to_child[1];
	s->out = fdopen(from_child[0], "r");
	if (fgets(line, sizeof(line), s->out) == NULL ||
	    strcmp(line, "ready\n") != 0)
		die("server did not start", AF_ESYS);
}

static void server_stop(server *s)
{
	char path[128];

	close(s->in);
	waitpid(s->pid, NULL, 0);
	fclose(s->out);
	snprintf(path, sizeof(path), "%s/echo.sock", s->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sink.sock", s->dir);
	unlink(path);
	rmdir(s->dir);
}

/* ---- spawn, memory, wake-up ------------------------------------------- */

static long rss_kib(void)
{
	long pages = 0;
	long resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void bench_spawn(int count)
{
	af_system *sys = NULL;
	char name[32];
	long before;
	long after;
	int64_t start;
	int64_t spawned;

	check(af_system_new(&sys, NULL), "system");
	before = rss_kib();
	start = now_ns();
	for (int i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "idle-%d", i);
		check(af_spawn(sys, name, &echo_ops, NULL, NULL), "spawn");
	}
	spawned = now_ns() - start;
	after = rss_kib();
	start = now_ns();
	for (int i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "idle-%d", i);
		check(af_stop(sys, name), "stop");
	}
	printf("RESULT spawn_stop actorflow 0 %.1f us\n",
	       (double)(spawned + now_ns() - start) / 1000.0 / count);
	printf("RESULT idle_rss_per_1000 actorflow 0 %ld KiB\n",
	       (after - before) * 1000 / count);
	fflush(stdout);
	af_system_destroy(&sys);
}

typedef struct waker {
	int idle;
	int *idle_fds;
	int active;
	int done;
	int rounds; /* self-wake rounds left; 0: cross-thread mode */
	_Atomic int64_t sent_ns;
	int64_t *samples;
	int nsamples;
} waker;

static void on_active(af_ctx *ctx, int fd, unsigned events, void *arg)
{
	waker *w = arg;
	uint64_t v;
	uint64_t one = 1;

	if (read(fd, &v, sizeof(v)) < 0)
		abort();
	if (w->rounds > 0) {
		/* Make the fd ready again: the next turn of the loop finds
		 * it through epoll among the idle ones. */
		if (--w->rounds > 0 && write(fd, &one, 8) == 8)
			return;
		if (write(w->done, &one, 8) < 0)
			abort();
		return;
	}
	w->samples[w->nsamples++] = now_ns() - atomic_load(&w->sent_ns);
	if (write(w->done, &one, 8) < 0)
		abort();
}

static void on_idle(af_ctx *ctx, int fd, unsigned events, void *arg)
{
}

static af_err waker_init(af_ctx *ctx, const void *config, void **state)
{
	waker *w = (waker *)config;
	af_err err = AF_OK;

	for (int i = 0; i < w->idle && err == AF_OK; i++)
		err = af_fd_watch(ctx, w->idle_fds[i], AF_FD_READ, on_idle, w);
	if (err == AF_OK)
		err = af_fd_watch(ctx, w->active, AF_FD_READ, on_active, w);
	*state = w;
	return err;
}

static void waker_stop(af_ctx *ctx, void *state)
{
	waker *w = state;

	for (int i = 0; i < w->idle; i++)
		af_fd_unwatch(ctx, w->idle_fds[i]);
	af_fd_unwatch(ctx, w->active);
}

static const af_actor_ops waker_ops = {
	.type_name = "waker",
	.init = waker_init,
	.stop = waker_stop,
};

/* Two figures with `idle` idle fds watched beside the active one:
 *   wakeup_loop_N    mean cost of one loop turn that finds the ready fd
 *                    (the actor re-arms the fd from its own callback, so
 *                    no thread switch is measured, only the loop);
 *   wakeup_thread_N  median latency from a write in another thread to the
 *                    callback, which adds the kernel's thread wake-up. */
static void bench_wakeup(int idle, int iters)
{
	af_system *sys = NULL;
	waker w = {.idle = idle};
	uint64_t v;
	uint64_t one = 1;
	int64_t start;

	w.idle_fds = calloc((size_t)idle, sizeof(int));
	w.samples = calloc((size_t)iters, sizeof(int64_t));
	for (int i = 0; i < idle; i++) {
		w.idle_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w.idle_fds[i] < 0)
			die("eventfd (raise the open-file limit)", AF_ESYS);
	}
	w.active = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w.done = eventfd(0, EFD_CLOEXEC);
	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "waker", &waker_ops, &w, NULL), "spawn waker");

	w.rounds = iters * 20;
	start = now_ns();
	if (write(w.active, &one, 8) < 0 || read(w.done, &v, 8) < 0)
		die("wake-up", AF_ESYS);
	printf("RESULT wakeup_loop_%d actorflow 0 %.3f us\n", idle,
	       (double)(now_ns() - start) / 1000.0 / (iters * 20));

	for (int i = 0; i < iters; i++) {
		atomic_store(&w.sent_ns, now_ns());
		if (write(w.active, &one, 8) < 0 || read(w.done, &v, 8) < 0)
			die("wake-up", AF_ESYS);
	}
	af_system_destroy(&sys);
	/* Drop the first tenth: warm-up. */
	qsort(w.samples + iters / 10, (size_t)(iters - iters / 10),
	      sizeof(int64_t), cmp_i64);
	printf("RESULT wakeup_thread_%d actorflow 0 %.2f us\n", idle,
	       (double)w.samples[iters / 10 + (iters - iters / 10) / 2] /
		       1000.0);
	fflush(stdout);
	for (int i = 0; i < idle; i++)
		close(w.idle_fds[i]);
	close(w.active);
	close(w.done);
	free(w.idle_fds);
	free(w.samples);
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	int64_t rtt_iters = 20000;
	int64_t tell_msgs = 2000000;
	size_t sizes[MAX_SIZES] = {16, 1024};
	int nsizes = 2;
	bool inproc = true;
	bool ipc = true;
	bool quick = false;
	const char *workloads = "rtt,tell,stream,spawn,wakeup";
	struct rlimit rl;
	af_system *sys = NULL;
	af_client *c = NULL;
	af_spawn_opts big = {.mailbox_capacity = 2000};

	for (int i = 1; i < argc; i++) {
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--serve") == 0 && val != NULL)
			return serve(val);
		if (strcmp(argv[i], "--quick") == 0) {
			quick = true;
			rtt_iters = 2000;
			tell_msgs = 100000;
		} else if (strcmp(argv[i], "--rtt-iters") == 0 && val != NULL) {
			rtt_iters = atoll(argv[++i]);
		} else if (strcmp(argv[i], "--tell-msgs") == 0 && val != NULL) {
			tell_msgs = atoll(argv[++i]);
		} else if (strcmp(argv[i], "--sizes") == 0 && val != NULL) {
			char *copy = strdup(argv[++i]);
			nsizes = 0;
			for (char *t = strtok(copy, ",");
			     t && nsizes < MAX_SIZES; t = strtok(NULL, ","))
				sizes[nsizes++] = (size_t)atoll(t);
			free(copy);
		} else if (strcmp(argv[i], "--workloads") == 0 && val != NULL) {
			workloads = argv[++i];
		} else if (strcmp(argv[i], "--only") == 0 && val != NULL) {
			inproc = strcmp(argv[++i], "inproc") == 0;
			ipc = !inproc;
		} else {
			fprintf(stderr,
				"usage: bench_runtime [--quick] "
				"[--rtt-iters N] [--tell-msgs N] "
				"[--sizes 16,1024] [--only inproc|ipc]\n");
			return 2;
		}
	}
	if (rtt_iters <= 0 || tell_msgs <= 0)
		return 2;
	workloads_selected = workloads;
	/* 10,000 watched fds and 1000 actors need more than the default
	 * 1024 descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "driver", &driver_ops, NULL, NULL), "driver");
	check(af_spawn(sys, "echo", &echo_ops, NULL, NULL), "echo");
	/* The same queue bound as the baseline's PUSH/PULL pair (1000 + 1000).
	 */
	check(af_spawn(sys, "sink", &sink_ops, NULL, &big), "sink");
	check(af_spawn(sys, "source", &source_ops, NULL, NULL), "source");
	check(af_client_new(&c, sys), "client");
	for (int i = 0; i < nsizes && inproc; i++)
		run_pair(c, "inproc", "echo", "sink", "source", rtt_iters,
			 tell_msgs, sizes[i]);
	if (ipc) {
		server s;
		char echo_to[128];
		char sink_to[128];
		char source_to[128];
		server_start(&s);
		snprintf(echo_to, sizeof(echo_to), "ipc://%s/echo.sock", s.dir);
		snprintf(sink_to, sizeof(sink_to), "ipc://%s/sink.sock", s.dir);
		snprintf(source_to, sizeof(source_to), "ipc://%s/source.sock",
			 s.dir);
		for (int i = 0; i < nsizes; i++)
			run_pair(c, "ipc", echo_to, sink_to, source_to,
				 rtt_iters, tell_msgs, sizes[i]);
		af_client_destroy(&c);
		af_system_destroy(&sys);
		server_stop(&s);
	} else {
		af_client_destroy(&c);
		af_system_destroy(&sys);
	}
	if (inproc && selected("spawn"))
		bench_spawn(quick ? 100 : 1000);
	if (inproc && selected("wakeup")) {
		bench_wakeup(10, quick ? 500 : 5000);
		bench_wakeup(10000, quick ? 500 : 5000);
	}
	return 0;
}
