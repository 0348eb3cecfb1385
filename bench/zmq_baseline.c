/*
 * zmq_baseline.c - the floor for actorflow's runtime benchmark: raw libzmq
 * over the transports actorflow uses, with no envelope, no msgpack and no
 * mailbox loop.
 *
 * Workloads, each for every payload size:
 *   rtt_inproc   PAIR<->PAIR between two threads over inproc://, one message
 *                in flight, mean microseconds per round trip.
 *   tell_inproc  PUSH->PULL between two threads over inproc://, messages per
 *                second received.
 *   rtt_ipc      as rtt_inproc, but over ipc:// to a forked child process.
 *   tell_ipc     as tell_inproc, but over ipc:// to a forked child process.
 *
 * Output: one line per measurement on stdout,
 *   RESULT <workload> <impl> <size> <value> <unit>
 * and nothing else on stdout; progress and notes go to stderr.
 *
 * Every run is preceded by a warm-up that also waits until the peer is
 * connected, so connection set-up is never timed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define IMPL "zmq"
#define MAX_SIZES 8

/*
 * A peer that stops answering must not hang the benchmark forever: every
 * blocking send and receive gives up after this long.
 */
#define IO_TIMEOUT_MS 20000

struct options {
	long rtt_iters;
	long rtt_warmup;
	long tell_msgs;
	long tell_warmup;
	size_t sizes[MAX_SIZES];
	int n_sizes;
	bool inproc;
	bool ipc;
};

/* What the echo or sink side of one run needs to know. */
struct peer_args {
	void *ctx;
	const char *data_ep;
	const char *ctl_ep;
	size_t size;
	long warmup;
	long count;
	int rc;
};

/*
 * The ipc directory and its two socket paths, fixed before any run so that a
 * signal handler can remove them without formatting anything.
 */
static char ipc_dir[256];
static char ipc_data_path[300];
static char ipc_ctl_path[300];
static pid_t ipc_owner;
/* The forked peer of the ipc run in progress, killed if the parent is. */
static volatile pid_t ipc_peer;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "zmq_baseline: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *open_socket(void *ctx, int type)
{
	int timeout = IO_TIMEOUT_MS;
	int linger = 0;
	int reconnect = 10;
	void *s = zmq_socket(ctx, type);

	if (s == NULL)
		return NULL;
	/*
	 * A connecting child may start before its parent has bound; a short
	 * reconnect interval keeps the warm-up from waiting 100 ms for it.
	 */
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &reconnect, sizeof(reconnect));
	return s;
}

/* Sends one signal frame on a control socket; returns 0 or -1. */
static int signal_peer(void *ctl)
{
	return zmq_send(ctl, "", 0, 0) == 0 ? 0 : -1;
}

static int wait_peer(void *ctl)
{
	char c;

	return zmq_recv(ctl, &c, sizeof(c), 0) >= 0 ? 0 : -1;
}

/*
 * Echo side of a round-trip run: returns every message unchanged. Moving the
 * received zmq_msg_t back out avoids a copy, as a real echo server would.
 */
static int run_echo(void *ctx, const char *ep, long total)
{
	zmq_msg_t msg;
	int rc = -1;
	void *s = open_socket(ctx, ZMQ_PAIR);

	if (s == NULL)
		return -1;
	if (zmq_connect(s, ep) != 0)
		goto close_socket;
	zmq_msg_init(&msg);
	for (long i = 0; i < total; i++) {
		if (zmq_msg_recv(&msg, s, 0) < 0)
			goto close_msg;
		if (zmq_msg_send(&msg, s, 0) < 0)
			goto close_msg;
	}
	rc = 0;
close_msg:
	zmq_msg_close(&msg);
close_socket:
	zmq_close(s);
	return rc;
}

/*
 * Sink side of a throughput run. It receives the warm-up messages and
 * reports ready, so that the timed part starts with a live connection, then
 * receives the measured messages and reports done.
 */
static int run_sink(void *ctx, const char *data_ep, const char *ctl_ep,
		    size_t size, long warmup, long count)
{
	zmq_msg_t msg;
	int rc = -1;
	void *data = open_socket(ctx, ZMQ_PULL);
	void *ctl = open_socket(ctx, ZMQ_PAIR);

	if (data == NULL || ctl == NULL)
		goto close_sockets;
	if (zmq_connect(data, data_ep) != 0 || zmq_connect(ctl, ctl_ep) != 0)
		goto close_sockets;
	zmq_msg_init(&msg);
	for (long i = 0; i < warmup + count; i++) {
		if (zmq_msg_recv(&msg, data, 0) < 0)
			goto close_msg;
		if (zmq_msg_size(&msg) != size)
			goto close_msg;
		if (i + 1 == warmup && signal_peer(ctl) != 0)
			goto close_msg;
	}
	if (signal_peer(ctl) != 0)
		goto close_msg;
	rc = 0;
close_msg:
	zmq_msg_close(&msg);
close_sockets:
	if (ctl != NULL)
		zmq_close(ctl);
	if (data != NULL)
		zmq_close(data);
	return rc;
}

/* Returns mean seconds per round trip, or a negative value on failure. */
static double time_rtt(void *s, size_t size, long warmup, long iters)
{
	char *buf = malloc(size);
	char *rbuf = malloc(size);
	double t0 = 0;
	double elapsed = -1;

	if (buf == NULL || rbuf == NULL)
		goto free_bufs;
	memset(buf, 'x', size);
	for (long i = 0; i < warmup + iters; i++) {
		if (i == warmup)
			t0 = now_s();
		if (zmq_send(s, buf, size, 0) != (int)size)
			goto free_bufs;
		if (zmq_recv(s, rbuf, size, 0) != (int)size)
			goto free_bufs;
	}
	elapsed = (now_s() - t0) / (double)iters;
free_bufs:
	free(rbuf);
	free(buf);
	return elapsed;
}

/* Returns messages per second, or a negative value on failure. */
static double time_tell(void *data, void *ctl, size_t size, long warmup,
			long count)
{
	char *buf = malloc(size);
	double t0;
	double tput = -1;

	if (buf == NULL)
		return -1;
	memset(buf, 'x', size);
	for (long i = 0; i < warmup; i++)
		if (zmq_send(data, buf, size, 0) != (int)size)
			goto free_buf;
	if (wait_peer(ctl) != 0)
		goto free_buf;
	t0 = now_s();
	for (long i = 0; i < count; i++)
		if (zmq_send(data, buf, size, 0) != (int)size)
			goto free_buf;
	if (wait_peer(ctl) != 0)
		goto free_buf;
	tput = (double)count / (now_s() - t0);
free_buf:
	free(buf);
	return tput;
}

static void *echo_thread(void *arg)
{
	struct peer_args *a = arg;

	a->rc = run_echo(a->ctx, a->data_ep, a->warmup + a->count);
	return NULL;
}

static void *sink_thread(void *arg)
{
	struct peer_args *a = arg;

	a->rc = run_sink(a->ctx, a->data_ep, a->ctl_ep, a->size, a->warmup,
			 a->count);
	return NULL;
}

static void report(const char *workload, size_t size, double value,
		   const char *unit)
{
	if (value < 0)
		die("%s size %zu failed: %s", workload, size,
		    zmq_strerror(zmq_errno()));
	printf("RESULT %s %s %zu %.*f %s\n", workload, IMPL, size,
	       strcmp(unit, "us") == 0 ? 2 : 0, value, unit);
	fflush(stdout);
}

static void bench_inproc(const struct options *o, size_t size)
{
	struct peer_args a = {0};
	pthread_t th;
	double v;
	void *ctx = zmq_ctx_new();
	void *s;
	void *ctl;

	if (ctx == NULL)
		die("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));

	/* inproc requires bind before connect, so bind, then start the peer. */
	s = open_socket(ctx, ZMQ_PAIR);
	if (s == NULL || zmq_bind(s, "inproc://rtt") != 0)
		die("bind inproc://rtt: %s", zmq_strerror(zmq_errno()));
	a = (struct peer_args){.ctx = ctx,
			       .data_ep = "inproc://rtt",
			       .size = size,
			       .warmup = o->rtt_warmup,
			       .count = o->rtt_iters};
	if (pthread_create(&th, NULL, echo_thread, &a) != 0)
		die("pthread_create failed");
	v = time_rtt(s, size, o->rtt_warmup, o->rtt_iters);
	pthread_join(th, NULL);
	zmq_close(s);
	if (a.rc != 0)
		v = -1;
	report("rtt_inproc", size, v * 1e6, "us");

	s = open_socket(ctx, ZMQ_PUSH);
	ctl = open_socket(ctx, ZMQ_PAIR);
	if (s == NULL || ctl == NULL || zmq_bind(s, "inproc://tell") != 0 ||
	    zmq_bind(ctl, "inproc://tell-ctl") != 0)
		die("bind inproc://tell: %s", zmq_strerror(zmq_errno()));
	a = (struct peer_args){.ctx = ctx,
			       .data_ep = "inproc://tell",
			       .ctl_ep = "inproc://tell-ctl",
			       .size = size,
			       .warmup = o->tell_warmup,
			       .count = o->tell_msgs};
	if (pthread_create(&th, NULL, sink_thread, &a) != 0)
		die("pthread_create failed");
	v = time_tell(s, ctl, size, o->tell_warmup, o->tell_msgs);
	pthread_join(th, NULL);
	zmq_close(ctl);
	zmq_close(s);
	if (a.rc != 0)
		v = -1;
	report("tell_inproc", size, v, "msg/s");

	zmq_ctx_term(ctx);
}

/*
 * Runs the peer side of an ipc run in a child process. The child builds its
 * own context: a ZeroMQ context must never cross fork().
 */
static pid_t fork_peer(const struct peer_args *a, bool echo)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid != 0) {
		ipc_peer = pid;
		return pid;
	}
	{
		void *ctx;
		int rc;

		/* The parent's cleanup on a signal is the parent's alone. */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		ctx = zmq_ctx_new();
		if (ctx == NULL)
			_exit(2);
		if (echo)
			rc = run_echo(ctx, a->data_ep, a->warmup + a->count);
		else
			rc = run_sink(ctx, a->data_ep, a->ctl_ep, a->size,
				      a->warmup, a->count);
		zmq_ctx_term(ctx);
		_exit(rc == 0 ? 0 : 1);
	}
}

static void reap(pid_t pid, double *v)
{
	int status = 0;
	pid_t got;

	/* On failure the child may still be blocked; don't wait 20 s for it. */
	if (*v < 0)
		kill(pid, SIGKILL);
	got = waitpid(pid, &status, 0);
	ipc_peer = 0;
	if (got != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "zmq_baseline: child failed (status %d)\n",
			status);
		*v = -1;
	}
}

static void bench_ipc(const struct options *o, size_t size)
{
	char data_ep[512];
	char ctl_ep[512];
	struct peer_args a;
	pid_t pid;
	double v;
	void *ctx;
	void *s;
	void *ctl;

	snprintf(data_ep, sizeof(data_ep), "ipc://%s", ipc_data_path);
	snprintf(ctl_ep, sizeof(ctl_ep), "ipc://%s", ipc_ctl_path);

	a = (struct peer_args){.data_ep = data_ep,
			       .size = size,
			       .warmup = o->rtt_warmup,
			       .count = o->rtt_iters};
	pid = fork_peer(&a, true);
	if (pid < 0)
		die("fork: %s", strerror(errno));
	ctx = zmq_ctx_new();
	s = open_socket(ctx, ZMQ_PAIR);
	if (s == NULL || zmq_bind(s, data_ep) != 0)
		die("bind %s: %s", data_ep, zmq_strerror(zmq_errno()));
	v = time_rtt(s, size, o->rtt_warmup, o->rtt_iters);
	reap(pid, &v);
	zmq_close(s);
	zmq_ctx_term(ctx);
	report("rtt_ipc", size, v * 1e6, "us");

	a = (struct peer_args){.data_ep = data_ep,
			       .ctl_ep = ctl_ep,
			       .size = size,
			       .warmup = o->tell_warmup,
			       .count = o->tell_msgs};
	pid = fork_peer(&a, false);
	if (pid < 0)
		die("fork: %s", strerror(errno));
	ctx = zmq_ctx_new();
	s = open_socket(ctx, ZMQ_PUSH);
	ctl = open_socket(ctx, ZMQ_PAIR);
	if (s == NULL || ctl == NULL || zmq_bind(s, data_ep) != 0 ||
	    zmq_bind(ctl, ctl_ep) != 0)
		die("bind %s: %s", data_ep, zmq_strerror(zmq_errno()));
	v = time_tell(s, ctl, size, o->tell_warmup, o->tell_msgs);
	reap(pid, &v);
	zmq_close(ctl);
	zmq_close(s);
	zmq_ctx_term(ctx);
	report("tell_ipc", size, v, "msg/s");
}

/*
 * Removes the ipc directory whatever way the program ends: normally, through
 * die() and atexit(), or on a signal. Only the process that created it does.
 */
static void remove_ipc_dir(void)
{
	if (ipc_dir[0] == '\0' || getpid() != ipc_owner)
		return;
	/* A peer blocked on a dead parent would linger until its timeout. */
	if (ipc_peer > 0)
		kill(ipc_peer, SIGKILL);
	/* libzmq unlinks a bound ipc path on close; this covers failures. */
	unlink(ipc_data_path);
	unlink(ipc_ctl_path);
	rmdir(ipc_dir);
	ipc_dir[0] = '\0';
}

static void on_fatal_signal(int sig)
{
	remove_ipc_dir();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void make_ipc_dir(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT};
	struct sigaction sa;

	snprintf(ipc_dir, sizeof(ipc_dir), "/tmp/af-bench-XXXXXX");
	if (mkdtemp(ipc_dir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(ipc_data_path, sizeof(ipc_data_path), "%s/data.sock", ipc_dir);
	snprintf(ipc_ctl_path, sizeof(ipc_ctl_path), "%s/ctl.sock", ipc_dir);
	ipc_owner = getpid();
	atexit(remove_ipc_dir);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

static long parse_count(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		die("not a positive count: %s", s);
	return v;
}

static void parse_sizes(struct options *o, const char *list)
{
	char *copy = strdup(list);
	char *save = NULL;

	if (copy == NULL)
		die("out of memory");
	o->n_sizes = 0;
	for (char *t = strtok_r(copy, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		if (o->n_sizes == MAX_SIZES)
			die("at most %d sizes", MAX_SIZES);
		o->sizes[o->n_sizes++] = (size_t)parse_count(t);
	}
	free(copy);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: zmq_baseline [--quick] [--rtt-iters N] [--tell-msgs "
		   "N]\n"
		   "                    [--sizes 16,1024] [--only inproc|ipc] "
		   "[--version]\n"
		   "Prints: RESULT <workload> zmq <size> <value> <unit>\n");
}

int main(int argc, char **argv)
{
	struct options o = {.rtt_iters = 20000,
			    .tell_msgs = 2000000,
			    .sizes = {16, 1024},
			    .n_sizes = 2,
			    .inproc = true,
			    .ipc = true};
	int major, minor, patch;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(arg, "--quick") == 0) {
			o.rtt_iters = 2000;
			o.tell_msgs = 100000;
		} else if (strcmp(arg, "--rtt-iters") == 0 && val != NULL) {
			o.rtt_iters = parse_count(val);
			i++;
		} else if (strcmp(arg, "--tell-msgs") == 0 && val != NULL) {
			o.tell_msgs = parse_count(val);
			i++;
		} else if (strcmp(arg, "--sizes") == 0 && val != NULL) {
			parse_sizes(&o, val);
			i++;
		} else if (strcmp(arg, "--only") == 0 && val != NULL) {
			o.inproc = strcmp(val, "inproc") == 0;
			o.ipc = strcmp(val, "ipc") == 0;
			if (!o.inproc && !o.ipc)
				die("--only takes inproc or ipc");
			i++;
		} else if (strcmp(arg, "--version") == 0) {
			zmq_version(&major, &minor, &patch);
			printf("libzmq %d.%d.%d\n", major, minor, patch);
			return 0;
		} else if (strcmp(arg, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	/* Warm-up: a tenth of the measured work, at least enough to connect. */
	o.rtt_warmup = o.rtt_iters / 10 > 100 ? o.rtt_iters / 10 : 100;
	o.tell_warmup = o.tell_msgs / 20 > 1000 ? o.tell_msgs / 20 : 1000;

	zmq_version(&major, &minor, &patch);
	fprintf(stderr,
		"# zmq_baseline: libzmq %d.%d.%d, rtt %ld round trips "
		"(+%ld warm-up), tell %ld messages (+%ld warm-up)\n",
		major, minor, patch, o.rtt_iters, o.rtt_warmup, o.tell_msgs,
		o.tell_warmup);

	if (o.ipc) {
		make_ipc_dir();
	}
	for (int i = 0; i < o.n_sizes; i++) {
		if (o.inproc)
			bench_inproc(&o, o.sizes[i]);
		if (o.ipc)
			bench_ipc(&o, o.sizes[i]);
	}
	remove_ipc_dir();
	return 0;
}
