/* Actor lifecycle, timers and fd watches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "testlib.h"

static void test_spawn_stop(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "a", &test_echo_ops, NULL, NULL), AF_OK);
	assert_true(af_exists(sys, "a"));
	assert_int_equal(af_spawn(sys, "a", &test_echo_ops, NULL, NULL),
			 AF_EEXIST);
	assert_int_equal(af_stop(sys, "a"), AF_OK);
	assert_false(af_exists(sys, "a"));
	assert_int_equal(af_stop(sys, "a"), AF_ENOTFOUND);
	/* The name is free again, and the new actor serves. */
	assert_int_equal(af_spawn(sys, "a", &test_echo_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_request(c, "a", "echo", NULL, 2000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	af_system_destroy(&sys);
	af_system_destroy(NULL);
}

static void test_bad_spawns(void **state)
{
	af_system *sys = NULL;
	echo_config failing = {.init_result = AF_EUSER + 3};
	char long_name[300];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "f", &test_echo_ops, &failing, NULL),
			 AF_EUSER + 3);
	assert_false(af_exists(sys, "f"));
	assert_int_equal(af_spawn(sys, "f", &test_echo_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "", &test_echo_ops, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_spawn(sys, NULL, &test_echo_ops, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_spawn(sys, "x#y", &test_echo_ops, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_spawn(sys, "ipc://x", &test_echo_ops, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_spawn(sys, long_name, &test_echo_ops, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_spawn(sys, "n", NULL, NULL, NULL), AF_EINVAL);
	assert_int_equal(af_export(sys, "nobody", "ipc:///tmp/x"),
			 AF_ENOTFOUND);
	assert_int_equal(af_export(sys, "f", "udp://1.2.3.4:5"), AF_EADDR);
	af_system_destroy(&sys);
}

/* A continuation run by a failed init's teardown: too late to say why. */
static void late_word(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	af_init_fail(ctx, AF_EUSER + 9, "from a continuation, status %d",
		     status);
}

/* An init that says why it fails (config: the word to say); with
 * "teardown", it first leaves a request to "hold" outstanding, whose
 * continuation runs as the failed actor is torn down. */
static af_err telling_init(af_ctx *ctx, const void *config, void **state)
{
	const char *why = config;

	if (why == NULL)
		return AF_OK;
	if (strcmp(why, "teardown") == 0 &&
	    af_request(ctx, "hold", "hang", NULL, 0, late_word, NULL, NULL) !=
		    AF_OK)
		return AF_EINVAL;
	return af_init_fail(ctx, AF_EUSER + 1, "bad %s: %d", why, 42);
}

static af_err telling_handle(af_ctx *ctx, void *state, af_msg *m)
{
	/* Past init: only the code comes back, and nothing is kept. */
	if (af_init_fail(ctx, AF_EUSER + 2, "too late") != AF_EUSER + 2)
		return AF_EINVAL;
	return af_reply(ctx, m, NULL);
}

static const af_actor_ops telling_ops = {
	.type_name = "telling",
	.init = telling_init,
	.handle = telling_handle,
};

static void test_spawn_says_why(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	char why[64];
	char tiny[8];
	af_spawn_opts so = {.error = why, .error_size = sizeof(why)};
	af_spawn_opts small = {.error = tiny, .error_size = sizeof(tiny)};
	echo_config failing = {.init_result = AF_EUSER + 3};

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	/* init's own words, formatted. */
	assert_int_equal(af_spawn(sys, "t", &telling_ops, "config", &so),
			 AF_EUSER + 1);
	assert_string_equal(why, "bad config: 42");
	assert_false(af_exists(sys, "t"));
	/* Cut to the room given, and still terminated. */
	assert_int_equal(af_spawn(sys, "t", &telling_ops, "config", &small),
			 AF_EUSER + 1);
	assert_string_equal(tiny, "bad con");
	/* The reason stays init's own, whatever runs as it is torn down. */
	assert_int_equal(af_spawn(sys, "hold", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "t", &telling_ops, "teardown", &so),
			 AF_EUSER + 1);
	assert_string_equal(why, "bad teardown: 42");
	/* No room given: only the code. */
	assert_int_equal(af_spawn(sys, "t", &telling_ops, "config", NULL),
			 AF_EUSER + 1);
	/* An init that fails without a word: the runtime names the actor,
	 * its type and the code. */
	assert_int_equal(af_spawn(sys, "f", &test_echo_ops, &failing, &so),
			 AF_EUSER + 3);
	assert_non_null(strstr(why, "actor \"f\" (echo) did not start"));
	/* The runtime's own refusals. */
	/* A spawn that succeeds leaves the buffer alone. */
	strcpy(why, "untouched");
	assert_int_equal(af_spawn(sys, "t", &telling_ops, NULL, &so), AF_OK);
	assert_string_equal(why, "untouched");
	assert_int_equal(af_spawn(sys, "t", &telling_ops, NULL, &so),
			 AF_EEXIST);
	assert_string_equal(why, "an actor named \"t\" already exists");
	assert_int_equal(af_spawn(sys, "x#y", &telling_ops, NULL, &so),
			 AF_EINVAL);
	assert_non_null(strstr(why, "\"x#y\" is not an actor's name"));
	assert_int_equal(af_spawn(sys, "", &telling_ops, NULL, &so), AF_EINVAL);
	assert_string_equal(why, "an actor needs a name");
	assert_int_equal(af_spawn(sys, "n", NULL, NULL, &so), AF_EINVAL);
	assert_string_equal(why, "af_spawn needs a system and an ops table");
	/* Outside init, af_init_fail only returns its code. */
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_request(c, "t", "x", NULL, 2000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
	assert_int_equal(af_init_fail(NULL, AF_EINVAL, "nobody"), AF_EINVAL);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

static void test_many_actors(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	char name[32];

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "actor-%d", i);
		assert_int_equal(
			af_spawn(sys, name, &test_echo_ops, NULL, NULL), AF_OK);
	}
	for (int i = 0; i < 200; i += 7) {
		af_msg *reply = NULL;
		snprintf(name, sizeof(name), "actor-%d", i);
		assert_int_equal(
			af_client_request(c, name, "echo", NULL, 2000, &reply),
			AF_OK);
		af_msg_destroy(&reply);
	}
	af_client_destroy(&c);
	/* Destroying the system stops all 200. */
	af_system_destroy(&sys);
}

/* ---- stop_self --------------------------------------------------------- */

static af_err quitter_handle(af_ctx *ctx, void *state, af_msg *m)
{
	assert_string_equal(af_self(ctx), "quitter");
	assert_non_null(af_ctx_system(ctx));
	af_stop_self(ctx);
	return af_reply(ctx, m, NULL);
}

static const af_actor_ops quitter_ops = {
	.type_name = "quitter",
	.handle = quitter_handle,
};

static void test_stop_self(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	af_err err;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_spawn(sys, "quitter", &quitter_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(
		af_client_request(c, "quitter", "bye", NULL, 2000, &reply),
		AF_OK);
	af_msg_destroy(&reply);
	/* It may still be on its way out; af_stop waits for it either way. */
	err = af_stop(sys, "quitter");
	assert_true(err == AF_OK || err == AF_ENOTFOUND);
	assert_false(af_exists(sys, "quitter"));
	assert_int_equal(af_spawn(sys, "quitter", &quitter_ops, NULL, NULL),
			 AF_OK);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

/* ---- af_export racing af_stop ------------------------------------------ */

enum { RACE_ROUNDS = 200, RACE_EXPORTERS = 4 };

typedef struct exporter {
	af_system *sys;
	pthread_barrier_t *go;
	char endpoint[160];
	af_err err;
} exporter;

static void *export_main(void *arg)
{
	exporter *x = arg;

	pthread_barrier_wait(x->go);
	x->err = af_export(x->sys, "quitter", x->endpoint);
	return NULL;
}

/* af_export hands the bind to the actor's thread and waits for it; the
 * actor may stop meanwhile. af_stop, and the reaping of an actor that
 * stopped itself, once freed the actor while an export still waited on
 * it: a heap use-after-free, which the AF_SANITIZE build reports (in
 * about half the runs of the old 300 rounds of one exporter). Here
 * several exports start with each stop, every round, half of the stops
 * by af_stop and half by the actor itself. Each export ends with AF_OK
 * (bound before the stop), AF_ESTOPPED or AF_ENOTFOUND. */
static void test_export_races_stop(void **state)
{
	char dir[] = "/tmp/af-test-actor-XXXXXX";
	af_system *sys = NULL;
	af_client *c = NULL;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	for (int i = 0; i < RACE_ROUNDS; i++) {
		exporter x[RACE_EXPORTERS];
		pthread_t t[RACE_EXPORTERS];
		pthread_barrier_t go;
		af_err err;

		assert_int_equal(
			af_spawn(sys, "quitter", &quitter_ops, NULL, NULL),
			AF_OK);
		assert_int_equal(
			pthread_barrier_init(&go, NULL, RACE_EXPORTERS + 1), 0);
		for (int k = 0; k < RACE_EXPORTERS; k++) {
			x[k] = (exporter){.sys = sys, .go = &go};
			snprintf(x[k].endpoint, sizeof(x[k].endpoint),
				 "ipc://%s/%d.sock", dir, k);
			assert_int_equal(
				pthread_create(&t[k], NULL, export_main, &x[k]),
				0);
		}
		pthread_barrier_wait(&go);
		/* The actor stopping itself is joined and freed by the
		 * af_stop that finds it gone (reap_exited), or stopped by
		 * it if still there. */
		if (i % 2 == 1)
			assert_int_equal(
				af_client_tell(c, "quitter", "bye", NULL, 0),
				AF_OK);
		err = af_stop(sys, "quitter");
		assert_true(err == AF_OK || err == AF_ENOTFOUND);
		for (int k = 0; k < RACE_EXPORTERS; k++) {
			assert_int_equal(pthread_join(t[k], NULL), 0);
			assert_true(x[k].err == AF_OK ||
				    x[k].err == AF_ESTOPPED ||
				    x[k].err == AF_ENOTFOUND);
		}
		pthread_barrier_destroy(&go);
	}
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_remove_dir(dir);
	(void)state;
}

/* ---- timers ------------------------------------------------------------ */

typedef struct timers {
	af_pending *run;
	int ticks;
	int order[4];
	int norder;
	uint64_t repeat_id;
	uint64_t doomed_id;
} timers;

static void finish(af_ctx *ctx, timers *t)
{
	af_payload *p = NULL;

	af_payload_new(&p);
	af_pack_array(p, (uint32_t)t->norder + 1);
	af_pack_int(p, t->ticks);
	for (int i = 0; i < t->norder; i++)
		af_pack_int(p, t->order[i]);
	af_pending_reply(ctx, &t->run, p);
	af_payload_destroy(&p);
}

static void on_tick(af_ctx *ctx, void *arg)
{
	timers *t = arg;

	if (++t->ticks == 5) {
		assert_int_equal(af_timer_cancel(ctx, t->repeat_id), AF_OK);
		assert_int_equal(af_timer_cancel(ctx, t->repeat_id),
				 AF_ENOTFOUND);
		finish(ctx, t);
	}
}

typedef struct ordered {
	timers *t;
	int n;
} ordered;

static ordered marks[3];

static void on_mark(af_ctx *ctx, void *arg)
{
	ordered *o = arg;

	o->t->order[o->t->norder++] = o->n;
}

static void on_doomed(af_ctx *ctx, void *arg)
{
	fail_msg("a cancelled timer fired");
}

static af_err timers_init(af_ctx *ctx, const void *config, void **state)
{
	*state = calloc(1, sizeof(timers));
	return AF_OK;
}

static af_err timers_handle(af_ctx *ctx, void *state, af_msg *m)
{
	timers *t = state;
	af_err err = af_defer(ctx, m, &t->run);

	assert_int_equal(af_timer_start(ctx, 0, 0, NULL, NULL, NULL),
			 AF_EINVAL);
	assert_int_equal(af_timer_start(ctx, -1, 0, on_doomed, t, NULL),
			 AF_EINVAL);
	/* Three one-shots due in reverse order of starting, all before the
	 * fifth tick of the repeating timer. 10 ms apart: under valgrind on
	 * a busy machine, starting one took more than the 2 ms they once
	 * were apart. */
	for (int i = 0; i < 3; i++) {
		marks[i].t = t;
		marks[i].n = i;
		assert_int_equal(af_timer_start(ctx, 30 - 10 * i, 0, on_mark,
						&marks[i], NULL),
				 AF_OK);
	}
	assert_int_equal(af_timer_start(ctx, 1, 0, on_doomed, t, &t->doomed_id),
			 AF_OK);
	assert_int_equal(af_timer_cancel(ctx, t->doomed_id), AF_OK);
	assert_int_equal(af_timer_start(ctx, 10, 10, on_tick, t, &t->repeat_id),
			 AF_OK);
	return err;
}

static void timers_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops timers_ops = {
	.type_name = "timers",
	.init = timers_init,
	.handle = timers_handle,
	.stop = timers_stop,
};

static void test_timers(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	const af_value *v;
	int64_t n;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_spawn(sys, "timers", &timers_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(
		af_client_request(c, "timers", "run", NULL, 5000, &reply),
		AF_OK);
	v = af_msg_payload(reply);
	assert_int_equal(af_value_len(v), 4);
	assert_int_equal(af_value_int(af_value_at(v, 0), &n), AF_OK);
	assert_int_equal(n, 5);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(af_value_int(af_value_at(v, 1 + i), &n),
				 AF_OK);
		assert_int_equal(n, 2 - i);
	}
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

/* ---- timeouts beyond any horizon --------------------------------------- */

/* An actor that, asked to "run", starts a timer due in INT64_MAX ms and
 * one due now that repeats every INT64_MAX ms; the latter sends "echo" a
 * request with a timeout of INT64_MAX ms, and the answer reports
 * [the request's status, times the far timer fired, times the near one
 * fired]. */
typedef struct forever {
	af_pending *run;
	int far_fired;
	int near_fired;
} forever;

static void on_far(af_ctx *ctx, void *arg)
{
	forever *f = arg;

	f->far_fired++;
}

static void on_echoed(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	forever *f = arg;
	af_payload *p = NULL;

	af_payload_new(&p);
	af_pack_array(p, 3);
	af_pack_int(p, status);
	af_pack_int(p, f->far_fired);
	af_pack_int(p, f->near_fired);
	af_pending_reply(ctx, &f->run, p);
	af_payload_destroy(&p);
}

static void on_near(af_ctx *ctx, void *arg)
{
	forever *f = arg;

	if (f->near_fired++ == 0)
		assert_int_equal(af_request(ctx, "echo", "echo", NULL,
					    INT64_MAX, on_echoed, f, NULL),
				 AF_OK);
}

static af_err forever_init(af_ctx *ctx, const void *config, void **state)
{
	*state = calloc(1, sizeof(forever));
	return *state != NULL ? AF_OK : AF_ENOMEM;
}

static af_err forever_handle(af_ctx *ctx, void *state, af_msg *m)
{
	forever *f = state;
	af_err err = af_defer(ctx, m, &f->run);

	if (err == AF_OK)
		err = af_timer_start(ctx, INT64_MAX, 0, on_far, f, NULL);
	if (err == AF_OK)
		err = af_timer_start(ctx, 0, INT64_MAX, on_near, f, NULL);
	return err;
}

static void forever_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops forever_ops = {
	.type_name = "forever",
	.init = forever_init,
	.handle = forever_handle,
	.stop = forever_stop,
};

/* Delays, intervals and timeouts of INT64_MAX ms are forever in practice
 * (2^40 ms). They once wrapped into the past: the far timer fired at once
 * and the request timed out at once. */
static void test_huge_delays_and_timeouts(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	const af_value *v;
	int64_t n;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "forever", &forever_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(
		af_client_request(c, "forever", "run", NULL, 5000, &reply),
		AF_OK);
	v = af_msg_payload(reply);
	assert_int_equal(af_value_len(v), 3);
	assert_int_equal(af_value_int(af_value_at(v, 0), &n), AF_OK);
	assert_int_equal(n, AF_OK);
	assert_int_equal(af_value_int(af_value_at(v, 1), &n), AF_OK);
	assert_int_equal(n, 0);
	assert_int_equal(af_value_int(af_value_at(v, 2), &n), AF_OK);
	assert_int_equal(n, 1);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	(void)state;
}

/* ---- fd watches -------------------------------------------------------- */

typedef struct fdw {
	int efd;
	af_pending *waiting;
	int fired;
} fdw;

static void on_efd(af_ctx *ctx, int fd, unsigned events, void *arg)
{
	fdw *w = arg;
	uint64_t value;
	af_payload *p = NULL;

	assert_true(events & AF_FD_READ);
	assert_int_equal(read(fd, &value, sizeof(value)), sizeof(value));
	w->fired++;
	/* Unwatching from the fd's own callback is allowed. */
	assert_int_equal(af_fd_unwatch(ctx, fd), AF_OK);
	assert_int_equal(af_fd_unwatch(ctx, fd), AF_ENOTFOUND);
	p = test_payload_n((int64_t)value);
	af_pending_reply(ctx, &w->waiting, p);
	af_payload_destroy(&p);
}

static af_err fdw_init(af_ctx *ctx, const void *config, void **state)
{
	fdw *w = calloc(1, sizeof(*w));

	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	*state = w;
	return w->efd >= 0 ? AF_OK : AF_ESYS;
}

static af_err fdw_handle(af_ctx *ctx, void *state, af_msg *m)
{
	fdw *w = state;
	af_err err;
	uint64_t add = 42;

	if (strcmp(af_msg_type(m), "arm") == 0) {
		assert_int_equal(af_fd_watch(ctx, -1, AF_FD_READ, on_efd, w),
				 AF_EINVAL);
		assert_int_equal(af_fd_modify(ctx, w->efd, AF_FD_READ),
				 AF_ENOTFOUND);
		err = af_fd_watch(ctx, w->efd, AF_FD_WRITE, on_efd, w);
		assert_int_equal(
			af_fd_watch(ctx, w->efd, AF_FD_READ, on_efd, w),
			AF_EEXIST);
		/* Watch for reading only, then make the fd readable. */
		assert_int_equal(af_fd_modify(ctx, w->efd, AF_FD_READ), AF_OK);
		if (err == AF_OK)
			err = af_defer(ctx, m, &w->waiting);
		assert_int_equal(write(w->efd, &add, sizeof(add)), sizeof(add));
		return err;
	}
	return af_reply_error(ctx, m, AF_ENOTSUP, NULL);
}

static void fdw_stop(af_ctx *ctx, void *state)
{
	fdw *w = state;

	assert_int_equal(w->fired, 1);
	close(w->efd);
	free(w);
}

static const af_actor_ops fdw_ops = {
	.type_name = "fdwatch",
	.init = fdw_init,
	.handle = fdw_handle,
	.stop = fdw_stop,
};

static void test_fd_watch(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_spawn(sys, "fdw", &fdw_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_client_request(c, "fdw", "arm", NULL, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", 0), 42);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

/* A sender whose loop never idles still sends its batched tells: an fd
 * that stays readable (never read) keeps every turn of its loop busy, and
 * its tells must go out once they have waited AF__LAZY_HOLD_US, not when
 * the loop next has nothing to do. */
typedef struct busy {
	int efd;
	test_signal *got;
} busy;

static void on_busy_fd(af_ctx *ctx, int fd, unsigned events, void *arg)
{
	/* Not read: the fd stays readable, and the loop busy. */
}

static af_err busy_init(af_ctx *ctx, const void *config, void **state)
{
	busy *b = calloc(1, sizeof(*b));
	uint64_t one = 1;

	b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(b->efd >= 0);
	assert_int_equal(write(b->efd, &one, sizeof(one)), sizeof(one));
	*state = b;
	return AF_OK;
}

static af_err busy_handle(af_ctx *ctx, void *state, af_msg *m)
{
	busy *b = state;

	if (strcmp(af_msg_type(m), "spin") == 0) {
		assert_int_equal(
			af_fd_watch(ctx, b->efd, AF_FD_READ, on_busy_fd, b),
			AF_OK);
		return af_reply(ctx, m, NULL);
	}
	if (strcmp(af_msg_type(m), "tell") == 0) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(af_tell(ctx, "sink", "ping", NULL),
					 AF_OK);
		return af_reply(ctx, m, NULL);
	}
	if (strcmp(af_msg_type(m), "rest") == 0) {
		assert_int_equal(af_fd_unwatch(ctx, b->efd), AF_OK);
		return af_reply(ctx, m, NULL);
	}
	return af_reply_error(ctx, m, AF_ENOTSUP, NULL);
}

static void busy_stop(af_ctx *ctx, void *state)
{
	busy *b = state;

	close(b->efd);
	free(b);
}

static const af_actor_ops busy_ops = {
	.type_name = "busy",
	.init = busy_init,
	.handle = busy_handle,
	.stop = busy_stop,
};

static af_err sink_handle(af_ctx *ctx, void *state, af_msg *m)
{
	test_signal_add(state);
	return AF_OK;
}

static af_err sink_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static const af_actor_ops sink_ops = {
	.type_name = "sink",
	.init = sink_init,
	.handle = sink_handle,
};

static void test_busy_sender_tells_go_out(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	test_signal got;

	test_signal_init(&got);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_spawn(sys, "sink", &sink_ops, &got, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "busy", &busy_ops, NULL, NULL), AF_OK);
	assert_int_equal(
		af_client_request(c, "busy", "spin", NULL, 5000, &reply),
		AF_OK);
	af_msg_destroy(&reply);
	/* The first tells also set up the way to the sink, whose socket may
	 * then signal and send them at once; the next ones wait for the
	 * hold. Far beyond it, but bounded: without it, never. */
	for (int round = 1; round <= 3; round++) {
		assert_int_equal(af_client_request(c, "busy", "tell", NULL,
						   5000, &reply),
				 AF_OK);
		af_msg_destroy(&reply);
		assert_true(test_signal_wait(&got, 3 * round, 5000));
	}
	assert_int_equal(
		af_client_request(c, "busy", "rest", NULL, 5000, &reply),
		AF_OK);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&got);
}

/* A stopping actor answers every request still queued for it with
 * AF_ESTOPPED, more than one turn of its loop reads: a "slow" actor held
 * in its first handler while a sender queues thousands behind it, then
 * stops itself. */
enum { QUEUED = 6000 };

typedef struct queue_run {
	test_signal queued;  /* the sender has sent them all */
	test_signal release; /* the held handler may go on */
	test_signal settled; /* every request has its outcome */
	atomic_int ok;
	atomic_int stopped;
	atomic_int other;
	atomic_int sent;
} queue_run;

static af_err held_handle(af_ctx *ctx, void *state, af_msg *m)
{
	queue_run *q = state;

	if (strcmp(af_msg_type(m), "hold") == 0) {
		assert_true(test_signal_wait(&q->release, 1, 20000));
		af_stop_self(ctx);
	}
	return af_reply(ctx, m, NULL);
}

static af_err state_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static const af_actor_ops held_ops = {
	.type_name = "held",
	.init = state_init,
	.handle = held_handle,
};

static void on_queued_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	queue_run *q = arg;

	if (status == AF_OK)
		q->ok++;
	else if (status == AF_ESTOPPED)
		q->stopped++;
	else
		q->other++;
	test_signal_add(&q->settled);
}

static af_err queuer_handle(af_ctx *ctx, void *state, af_msg *m)
{
	queue_run *q = state;

	assert_int_equal(af_request(ctx, "held", "hold", NULL, 60000,
				    on_queued_reply, q, NULL),
			 AF_OK);
	for (int i = 0; i < QUEUED; i++) {
		if (af_request(ctx, "held", "work", NULL, 60000,
			       on_queued_reply, q, NULL) == AF_OK)
			q->sent++;
	}
	test_signal_add(&q->queued);
	return AF_OK;
}

static const af_actor_ops queuer_ops = {
	.type_name = "queuer",
	.init = state_init,
	.handle = queuer_handle,
};

/* requester_capacity: the sender's own mailbox (0: the default), where
 * the answers go. */
static void stop_with_queued(int requester_capacity)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	queue_run q = {0};

	test_signal_init(&q.queued);
	test_signal_init(&q.release);
	test_signal_init(&q.settled);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(
		af_spawn(sys, "held", &held_ops, &q,
			 &(af_spawn_opts){.mailbox_capacity = QUEUED + 16}),
		AF_OK);
	assert_int_equal(af_spawn(sys, "queuer", &queuer_ops, &q,
				  &(af_spawn_opts){.mailbox_capacity =
							   requester_capacity}),
			 AF_OK);
	assert_int_equal(af_client_tell(c, "queuer", "go", NULL, 1000), AF_OK);
	assert_true(test_signal_wait(&q.queued, 1, 20000));
	assert_int_equal(q.sent, QUEUED);
	test_signal_add(&q.release);
	assert_true(test_signal_wait(&q.settled, QUEUED + 1, 60000));
	assert_int_equal(q.ok, 1);
	assert_int_equal(q.stopped, QUEUED);
	assert_int_equal(q.other, 0);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&q.queued);
	test_signal_fini(&q.release);
	test_signal_fini(&q.settled);
}

static void test_stop_answers_all_queued(void **state)
{
	stop_with_queued(0);
	(void)state;
}

/* The answers do not fit in the sender's mailbox of 16: the stopping
 * actor waits for it to make room rather than drop them (they would end
 * as AF_EPEERDOWN). */
static void test_stop_waits_for_a_full_requester(void **state)
{
	stop_with_queued(16);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawn_stop),
		cmocka_unit_test(test_bad_spawns),
		cmocka_unit_test(test_spawn_says_why),
		cmocka_unit_test(test_many_actors),
		cmocka_unit_test(test_stop_self),
		cmocka_unit_test(test_export_races_stop),
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_huge_delays_and_timeouts),
		cmocka_unit_test(test_fd_watch),
		cmocka_unit_test(test_busy_sender_tells_go_out),
		cmocka_unit_test(test_stop_answers_all_queued),
		cmocka_unit_test(test_stop_waits_for_a_full_requester),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
