/*
 * Actors and helpers shared by the runtime tests.
 *
 * The "echo" actor answers by message type:
 *   echo     replies with the request's payload
 *   fail     replies with error AF_EUSER + 1, text "asked to fail"
 *   noreply  returns AF_OK without answering
 *   badarg   returns AF_EINVAL without answering
 *   hang     defers and never answers (until the actor stops)
 *   later    defers and answers {"late": true, "ms": ms} after payload
 *            "ms" ms
 *   count    (tell) adds one to the counter in its config
 *   where    replies {"local": af_msg_is_local(request)}
 *   stream   streams chunks {"i": 1..n} then ends with {"count": n};
 *            payload {"n": n (0: until cancelled), "fail_after": k (fail
 *            with AF_EUSER + 2 after k chunks, 0: never)}
 */
#ifndef AF_TESTLIB_H
#define AF_TESTLIB_H

#include <actorflow/actorflow.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A counter other threads can wait on. */
typedef struct test_signal {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int count;
} test_signal;

void test_signal_init(test_signal *s);
void test_signal_fini(test_signal *s);
void test_signal_add(test_signal *s);
/* Waits until the count reaches n; false after timeout_ms. */
bool test_signal_wait(test_signal *s, int n, int timeout_ms);

/* What the echo actor's streams report (all may be NULL). */
typedef struct stream_watch {
	test_signal *cancelled; /* a stream's cancel hook ran */
	test_signal *blocked;   /* a stream met a full credit window */
	test_signal *started;   /* a stream began */
	/* The most chunks one stream had sent beyond the consumer's credit:
	 * the producer's view of what a slow consumer costs it. */
	atomic_long max_in_flight;
} stream_watch;

typedef struct echo_config {
	atomic_int *count;     /* may be NULL */
	stream_watch *streams; /* may be NULL */
	test_signal *hung;     /* may be NULL: counts "hang" requests held */
	test_signal *handled;  /* may be NULL: counts requests handled */
	test_signal *replied;  /* may be NULL: counts "echo" replies sent */
	/* May be NULL. When set, "hang" registers a cancel hook that counts
	 * here the requests given up by their requester (or by the echo
	 * actor's stop). */
	test_signal *hang_cancelled;
	af_err init_result;
} echo_config;

extern const af_actor_ops test_echo_ops;

/* A payload {"n": n}; asserts on failure. Caller destroys it. */
af_payload *test_payload_n(int64_t n);
/* A payload holding one binary of size bytes. */
af_payload *test_payload_bin(size_t size);

/* Spawns name expecting it to fail with want, saying something that
 * holds says (checked with strstr); fails the test otherwise. */
void test_spawn_refused(af_system *sys, const char *name,
			const af_actor_ops *ops, const void *config,
			af_err want, const char *says);

/* A malloc'ed copy of a string value; asserts that v is one. */
char *test_str_of(const af_value *v);

/* The text the mock model server (tests/mockllm) streams in n chunks of
 * text t: "t0 t1 ... t(n-1) ". Caller frees. */
char *test_mock_text(const char *t, int n);

/* ---- streams of {"delta": text} chunks (chat, query) ----------------- */

/* A whole stream as test_read_stream read it. */
typedef struct test_streamed {
	char *text; /* the deltas, joined; NUL-terminated */
	size_t len;
	int chunks;
	af_err status; /* AF_OK when it ended, else its error */
	char *error;   /* the error's text, or NULL */
	af_msg *end;   /* the end message, or NULL */
} test_streamed;

/* Reads st to its end (each next waiting up to timeout_ms), asserting that
 * every chunk holds a "delta" string. */
void test_read_stream(af_stream *st, int64_t timeout_ms, test_streamed *s);

/* Frees what s holds. */
void test_streamed_free(test_streamed *s);

/* ---- child processes (the actorflow command, test nodes) ------------- */

/* A child with its stdout and stderr on pipes (read ends). */
typedef struct test_proc {
	pid_t pid;
	int out;
	int err;
} test_proc;

/* What a child wrote and how it ended. */
typedef struct test_output {
	int code; /* exit code, or -signal */
	char out[65536];
	char err[8192];
	int64_t ms; /* how long test_run's child ran */
} test_output;

/* CLOCK_MONOTONIC in milliseconds. */
int64_t test_now_ms(void);

/* A TCP port of 127.0.0.1 that was free a moment ago (the kernel's pick
 * for a socket bound to port 0, then closed). */
unsigned test_free_port(void);

/* Removes dir and all that the tests made in it (rm -rf), asserting it
 * went. */
void test_remove_dir(const char *dir);

/* Starts path with argv (NULL-terminated; argv[0] is its name), its
 * stdout and stderr on pipes; asserts on failure. */
void test_spawn(test_proc *p, const char *path, char *const argv[]);

/* Waits for pid; its exit code, or -signal. */
int test_wait_code(pid_t pid);

/* Reads the rest of p's stdout and stderr into r (after what r holds
 * already), closes them and waits for p: r->code. */
void test_finish(test_proc *p, test_output *r);

/* Runs path with the arguments after it (NULL-terminated, at most 14;
 * argv[0] is "actorflow"), collects its output and waits for it. */
void test_run(test_output *r, const char *path, const char *first, ...);

/* Reads one line of fd into line, byte by byte (so nothing after it is
 * taken from the pipe). False at end of file. */
bool test_read_line(int fd, char *line, size_t cap);

/* Writes text to a new file at path; asserts on failure. */
void test_write_file(const char *path, const char *text);

#endif
