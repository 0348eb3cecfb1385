#define _GNU_SOURCE /* pipe2 */

#include "testlib.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A "hang" request held; with a cancel hook it forgets p when its
 * requester gives up. */
typedef struct hang {
	af_pending *p;
	test_signal *cancelled;
} hang;

typedef struct echo_state {
	const echo_config *cfg;
	hang hung[64];
	int nhung;
} echo_state;

typedef struct later {
	af_pending *p;
	int64_t ms;
} later;

/* A stream the echo actor produces. */
typedef struct ticker {
	af_pending *p;
	int64_t n;
	int64_t fail_after;
	int64_t sent;
	stream_watch *watch;
	af_payload *chunk;
} ticker;

static void ticker_free(ticker *t)
{
	af_payload_destroy(&t->chunk);
	free(t);
}

static void ticker_cancelled(af_ctx *ctx, void *arg)
{
	ticker *t = arg;

	if (t->watch != NULL && t->watch->cancelled != NULL)
		test_signal_add(t->watch->cancelled);
	ticker_free(t);
}

static void ticker_pump(af_ctx *ctx, void *arg)
{
	ticker *t = arg;

	/* A bounded run per turn leaves the loop free to take credit and
	 * cancels. */
	for (int burst = 0; burst < 4096; burst++) {
		af_err err;
		if (t->n != 0 && t->sent == t->n) {
			af_payload_reset(t->chunk);
			af_pack_map(t->chunk, 1);
			af_pack_str(t->chunk, "count");
			af_pack_int(t->chunk, t->n);
			af_pending_end(ctx, &t->p, t->chunk);
			ticker_free(t);
			return;
		}
		if (t->fail_after != 0 && t->sent == t->fail_after) {
			af_pending_error(ctx, &t->p, AF_EUSER + 2,
					 "failed after %lld chunks",
					 (long long)t->sent);
			ticker_free(t);
			return;
		}
		af_payload_reset(t->chunk);
		af_pack_map(t->chunk, 1);
		af_pack_str(t->chunk, "i");
		af_pack_int(t->chunk, t->sent + 1);
		err = af_pending_chunk(ctx, t->p, t->chunk);
		if (err == AF_EAGAIN) {
			if (t->watch != NULL && t->watch->blocked != NULL)
				test_signal_add(t->watch->blocked);
			af_pending_when_writable(ctx, t->p, ticker_pump, t);
			return;
		}
		if (err == AF_ECANCELED)
			return; /* the cancel hook comes next */
		if (err != AF_OK) {
			af_pending_error(ctx, &t->p, err, "chunk: %s",
					 af_strerror(err));
			ticker_free(t);
			return;
		}
		t->sent++;
		if (t->watch != NULL) {
			long ahead = (long)af_pending_in_flight(t->p);
			long max = atomic_load(&t->watch->max_in_flight);
			while (ahead > max &&
			       !atomic_compare_exchange_weak(
				       &t->watch->max_in_flight, &max, ahead)) {
			}
		}
	}
	af_pending_when_writable(ctx, t->p, ticker_pump, t);
}

static af_err start_ticker(af_ctx *ctx, echo_state *s, af_msg *m)
{
	ticker *t = calloc(1, sizeof(*t));
	af_err err = t == NULL ? AF_ENOMEM : af_payload_new(&t->chunk);

	if (err == AF_OK)
		err = af_defer(ctx, m, &t->p);
	if (err != AF_OK) {
		if (t != NULL)
			ticker_free(t);
		return err;
	}
	t->n = af_value_get_int(af_msg_payload(m), "n", 0);
	t->fail_after = af_value_get_int(af_msg_payload(m), "fail_after", 0);
	t->watch = s->cfg != NULL ? s->cfg->streams : NULL;
	if (!af_pending_is_stream(t->p)) {
		af_pending_error(ctx, &t->p, AF_EINVAL,
				 "stream asked for with a plain request");
		ticker_free(t);
		return AF_OK;
	}
	af_pending_on_cancel(t->p, ticker_cancelled, t);
	if (t->watch != NULL && t->watch->started != NULL)
		test_signal_add(t->watch->started);
	ticker_pump(ctx, t);
	return AF_OK;
}

static void hang_cancelled(af_ctx *ctx, void *arg)
{
	hang *h = arg;

	h->p = NULL; /* the runtime frees it */
	test_signal_add(h->cancelled);
}

static af_err echo_init(af_ctx *ctx, const void *config, void **state)
{
	const echo_config *cfg = config;
	echo_state *s;

	if (cfg != NULL && cfg->init_result != AF_OK)
		return cfg->init_result;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return AF_ENOMEM;
	s->cfg = cfg;
	*state = s;
	return AF_OK;
}

static void answer_later(af_ctx *ctx, void *arg)
{
	later *l = arg;
	af_payload *p = NULL;

	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "late");
	af_pack_bool(p, true);
	af_pack_str(p, "ms");
	af_pack_int(p, l->ms);
	af_pending_reply(ctx, &l->p, p);
	af_payload_destroy(&p);
	free(l);
}

static af_err echo_handle(af_ctx *ctx, void *state, af_msg *m)
{
	echo_state *s = state;
	const char *type = af_msg_type(m);

	if (strcmp(type, "count") == 0) {
		if (s->cfg != NULL && s->cfg->count != NULL)
			atomic_fetch_add(s->cfg->count, 1);
		return AF_OK;
	}
	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK;
	if (s->cfg != NULL && s->cfg->handled != NULL)
		test_signal_add(s->cfg->handled);
	if (strcmp(type, "echo") == 0) {
		/* Read before replying: once the reply is out, the test may
		 * return, and a config on its stack is gone. */
		test_signal *replied = s->cfg != NULL ? s->cfg->replied : NULL;
		af_payload *p = NULL;
		af_err err = af_payload_new(&p);
		if (err == AF_OK)
			err = af_pack_value(p, af_msg_payload(m));
		if (err == AF_OK)
			err = af_reply(ctx, m, p);
		af_payload_destroy(&p);
		if (err == AF_OK && replied != NULL)
			test_signal_add(replied);
		return err;
	}
	if (strcmp(type, "where") == 0) {
		af_payload *p = NULL;
		af_err err = af_payload_new(&p);
		if (err == AF_OK) {
			af_pack_map(p, 1);
			af_pack_str(p, "local");
			af_pack_bool(p, af_msg_is_local(m));
			err = af_reply(ctx, m, p);
		}
		af_payload_destroy(&p);
		return err;
	}
	if (strcmp(type, "fail") == 0)
		return af_reply_error(ctx, m, AF_EUSER + 1, "asked to %s",
				      "fail");
	if (strcmp(type, "noreply") == 0)
		return AF_OK;
	if (strcmp(type, "badarg") == 0)
		return AF_EINVAL;
	if (strcmp(type, "hang") == 0 && s->nhung < 64) {
		hang *h = &s->hung[s->nhung++];
		af_err err = af_defer(ctx, m, &h->p);
		if (err == AF_OK && s->cfg != NULL &&
		    s->cfg->hang_cancelled != NULL) {
			h->cancelled = s->cfg->hang_cancelled;
			af_pending_on_cancel(h->p, hang_cancelled, h);
		}
		if (err == AF_OK && s->cfg != NULL && s->cfg->hung != NULL)
			test_signal_add(s->cfg->hung);
		return err;
	}
	if (strcmp(type, "stream") == 0)
		return start_ticker(ctx, s, m);
	if (strcmp(type, "later") == 0) {
		later *l = calloc(1, sizeof(*l));
		int64_t ms = af_value_get_int(af_msg_payload(m), "ms", 10);
		af_err err = l == NULL ? AF_ENOMEM : af_defer(ctx, m, &l->p);
		if (err == AF_OK) {
			l->ms = ms;
			err = af_timer_start(ctx, ms, 0, answer_later, l, NULL);
		}
		if (err != AF_OK)
			free(l);
		return err;
	}
	return af_reply_error(ctx, m, AF_ENOTSUP, "unknown type '%s'", type);
}

static void echo_stop(af_ctx *ctx, void *state)
{
	free(state);
}

const af_actor_ops test_echo_ops = {
	.type_name = "echo",
	.init = echo_init,
	.handle = echo_handle,
	.stop = echo_stop,
};

af_payload *test_payload_n(int64_t n)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "n");
	assert_int_equal(af_pack_int(p, n), AF_OK);
	return p;
}

af_payload *test_payload_bin(size_t size)
{
	af_payload *p = NULL;
	char *buf = calloc(1, size ? size : 1);

	assert_non_null(buf);
	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_int_equal(af_pack_bin(p, buf, size), AF_OK);
	free(buf);
	return p;
}

void test_signal_init(test_signal *s)
{
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->count = 0;
}

void test_signal_fini(test_signal *s)
{
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

void test_signal_add(test_signal *s)
{
	pthread_mutex_lock(&s->mu);
	s->count++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

bool test_signal_wait(test_signal *s, int n, int timeout_ms)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (s->count < n && ok)
		ok = pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0 ||
		     s->count >= n;
	ok = s->count >= n;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

char *test_str_of(const af_value *v)
{
	char *s = af_value_strdup(v);

	assert_non_null(s);
	return s;
}

char *test_mock_text(const char *t, int n)
{
	size_t cap = (strlen(t) + 12) * (size_t)n + 1;
	char *s = calloc(1, cap);
	size_t len = 0;

	assert_non_null(s);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%d ", t, i);
	return s;
}

/* ---- streams of {"delta": text} chunks ---------------------------------- */

void test_read_stream(af_stream *st, int64_t timeout_ms, test_streamed *s)
{
	af_msg *m = NULL;
	af_err err;

	memset(s, 0, sizeof(*s));
	s->text = calloc(1, 1);
	assert_non_null(s->text);
	for (;;) {
		const char *d;
		size_t n;

		err = af_stream_next(st, timeout_ms, &m);
		if (err != AF_OK)
			break;
		assert_int_equal(
			af_value_str(af_value_get(af_msg_payload(m), "delta"),
				     &d, &n),
			AF_OK);
		s->text = realloc(s->text, s->len + n + 1);
		assert_non_null(s->text);
		memcpy(s->text + s->len, d, n);
		s->len += n;
		s->text[s->len] = '\0';
		s->chunks++;
		af_msg_destroy(&m);
	}
	assert_int_not_equal(err, AF_EAGAIN);
	s->status = err == AF_EOF ? AF_OK : err;
	if (err == AF_EOF) {
		s->end = m;
	} else if (m != NULL) {
		const char *text = NULL;

		af_msg_error(m, &text);
		s->error = strdup(text != NULL ? text : "");
		af_msg_destroy(&m);
	}
}

void test_streamed_free(test_streamed *s)
{
	free(s->text);
	free(s->error);
	af_msg_destroy(&s->end);
}

/* ---- child processes --------------------------------------------------- */

extern char **environ;

void test_remove_dir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	assert_true(strlen(dir) + 16 < sizeof(cmd) && !strchr(dir, '\''));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

unsigned test_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

int64_t test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void test_spawn(test_proc *p, const char *path, char *const argv[])
{
	int out[2];
	int err[2];
	posix_spawn_file_actions_t fa;

	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	assert_int_equal(posix_spawn(&p->pid, path, &fa, NULL, argv, environ),
			 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	p->out = out[0];
	p->err = err[0];
}

int test_wait_code(pid_t pid)
{
	int status = 0;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

void test_finish(test_proc *p, test_output *r)
{
	size_t lens[2] = {strlen(r->out), strlen(r->err)};
	char *bufs[2] = {r->out, r->err};
	size_t caps[2] = {sizeof(r->out), sizeof(r->err)};
	struct pollfd fds[2] = {{.fd = p->out, .events = POLLIN},
				{.fd = p->err, .events = POLLIN}};
	int open = 2;

	while (open > 0) {
		assert_true(poll(fds, 2, -1) > 0);
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i].fd < 0 || fds[i].revents == 0)
				continue;
			n = read(fds[i].fd, bufs[i] + lens[i],
				 caps[i] - 1 - lens[i]);
			if (n <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open--;
				continue;
			}
			lens[i] += (size_t)n;
			bufs[i][lens[i]] = '\0';
		}
	}
	r->code = test_wait_code(p->pid);
}

void test_run(test_output *r, const char *path, const char *first, ...)
{
	char *argv[16];
	int argc = 0;
	const char *a;
	va_list ap;
	test_proc p;
	int64_t start = test_now_ms();

	argv[argc++] = "actorflow";
	va_start(ap, first);
	for (a = first; a != NULL && argc < 15; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	memset(r, 0, sizeof(*r));
	test_spawn(&p, path, argv);
	test_finish(&p, r);
	r->ms = test_now_ms() - start;
}

bool test_read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		char c;
		ssize_t k = read(fd, &c, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		line[n++] = c;
		if (c == '\n')
			break;
	}
	line[n] = '\0';
	return n > 0;
}

void test_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

void test_spawn_refused(af_system *sys, const char *name,
			const af_actor_ops *ops, const void *config,
			af_err want, const char *says)
{
	char why[AF_INIT_ERROR_MAX] = "";
	af_spawn_opts so = {.error = why, .error_size = sizeof(why)};
	af_err err = af_spawn(sys, name, ops, config, &so);

	if (err != want || strstr(why, says) == NULL)
		fail_msg("spawn of %s: %s (%s), want %s saying '%s'", name,
			 af_errname(err), why, af_errname(want), says);
	assert_false(af_exists(sys, name));
}
