/* A multi-process deployment under `actorflow up`, as it fails in
 * practice: a node killed with SIGKILL (restarted, the next request
 * works), a node that cannot start (given up after the restart limit), a
 * stream whose node dies (exit 4 at once), a query whose retrieval node
 * dies or hangs (peer down within the heartbeat time), garbage on a node's
 * socket, full mailboxes and queues (the documented answer, nothing lost),
 * and a soak of mixed traffic across three nodes (every request one
 * outcome, memory flat). Each test starts and stops its own processes in
 * its own temporary directory, on ipc:// inside it.
 *
 *   test_deploy              every test, the soak last
 *   test_deploy --no-soak    every test but the soak
 *   test_deploy --soak       the soak alone
 * (AF_DEPLOY_TESTS=no-soak in the environment as --no-soak: ctest's
 * test_deploy; its test_deploy_soak is the soak alone.)
 * The soak runs AF_SOAK_SECONDS (default 20; 6 with AF_UNDER_VALGRIND).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <actorflow/actorflow.h>

#include "json_msgpack.h"
#include "testlib.h"

extern char **environ;

static char dir[64];
static char sock_dir[96];
static bool under_valgrind;

/* ---- processes --------------------------------------------------------- */

typedef struct proc {
	pid_t pid;
	int out;
	int err;
	/* What was read of stderr, and how far the log has been looked at. */
	char log[262144];
	size_t log_len;
	size_t log_seen;
	char outbuf[4096];
	size_t out_len;
} proc;

typedef struct result {
	int code; /* exit code, or -signal */
	char out[65536];
	char err[16384];
	int64_t ms;
} result;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies as much of src as fits. */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void spawn(proc *p, char *const argv[])
{
	int out[2];
	int err[2];
	posix_spawn_file_actions_t fa;

	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	assert_int_equal(
		posix_spawn(&p->pid, AF_CLI_PATH, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	p->out = out[0];
	p->err = err[0];
}

/* Reads what is there on p's stdout and stderr, waiting up to ms. False
 * when both are closed. */
static bool pump(proc *p, int ms)
{
	struct pollfd fds[2] = {{.fd = p->out, .events = POLLIN},
				{.fd = p->err, .events = POLLIN}};
	int n;

	if (p->out < 0 && p->err < 0)
		return false;
	n = poll(fds, 2, ms);
	if (n <= 0)
		return true;
	if (fds[0].revents != 0) {
		ssize_t k = read(p->out, p->outbuf + p->out_len,
				 sizeof(p->outbuf) - 1 - p->out_len);
		if (k <= 0) {
			close(p->out);
			p->out = -1;
		} else {
			p->out_len += (size_t)k;
			p->outbuf[p->out_len] = '\0';
		}
	}
	if (fds[1].revents != 0) {
		ssize_t k = read(p->err, p->log + p->log_len,
				 sizeof(p->log) - 1 - p->log_len);
		if (k <= 0) {
			close(p->err);
			p->err = -1;
		} else {
			p->log_len += (size_t)k;
			p->log[p->log_len] = '\0';
		}
	}
	return true;
}

/* Waits up to ms for a whole line of the log, after the ones looked at,
 * that holds needle; copies it to line. */
static bool wait_log(proc *p, const char *needle, int64_t ms, char *line,
		     size_t cap)
{
	int64_t deadline = now_ms() + ms;

	for (;;) {
		char *nl;
		while ((nl = memchr(p->log + p->log_seen, '\n',
				    p->log_len - p->log_seen)) != NULL) {
			char *start = p->log + p->log_seen;
			p->log_seen = (size_t)(nl + 1 - p->log);
			*nl = '\0';
			bool hit = strstr(start, needle) != NULL;
			if (hit && line != NULL)
				snprintf(line, cap, "%s", start);
			*nl = '\n';
			if (hit)
				return true;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0 || !pump(p, (int)(left > 1000 ? 1000 : left)))
			return false;
	}
}

/* The pid the supervisor last started for the node. */
static pid_t node_pid(proc *p, const char *node)
{
	char needle[96];
	const char *q = p->log;
	const char *last = NULL;

	snprintf(needle, sizeof(needle), "node %s: started pid ", node);
	while ((q = strstr(q, needle)) != NULL)
		last = q += strlen(needle);
	assert_non_null(last);
	return (pid_t)atoi(last);
}

static int finish(proc *p)
{
	int status = 0;

	while (pump(p, -1)) {
	}
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static void run(result *r, const char *first, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	proc *p = malloc(sizeof(*p));
	int64_t start = now_ms();

	assert_non_null(p);
	argv[argc++] = "actorflow";
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 15;
	     a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	spawn(p, argv);
	r->code = finish(p);
	copy_str(r->out, sizeof(r->out), p->outbuf);
	copy_str(r->err, sizeof(r->err), p->log);
	r->ms = now_ms() - start;
	free(p);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The supervisors a test started and has not stopped: a test that fails
 * leaves them to teardown, which stops them (and so their nodes). */
static pid_t live_ups[4];

static void live_add(pid_t pid)
{
	for (size_t i = 0; i < sizeof(live_ups) / sizeof(live_ups[0]); i++)
		if (live_ups[i] == 0) {
			live_ups[i] = pid;
			return;
		}
}

static void live_remove(pid_t pid)
{
	for (size_t i = 0; i < sizeof(live_ups) / sizeof(live_ups[0]); i++)
		if (live_ups[i] == pid)
			live_ups[i] = 0;
}

/* Starts `actorflow up` on text and waits for its 'ready'. */
static proc *up_start(const char *name, const char *text)
{
	char path[128];
	char *argv[] = {"actorflow", "up", path, NULL};
	proc *p = malloc(sizeof(*p));
	int64_t deadline = now_ms() + 60000;

	assert_non_null(p);
	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	write_file(path, text);
	spawn(p, argv);
	live_add(p->pid);
	while (strstr(p->outbuf, "ready\n") == NULL) {
		if (now_ms() > deadline || !pump(p, 1000) ||
		    (p->out < 0 && strstr(p->outbuf, "ready\n") == NULL))
			fail_msg("up did not get ready: %s", p->log);
	}
	return p;
}

/* SIGTERM to the supervisor; its exit code. Frees p. */
static int up_stop(proc *p, char *log, size_t cap)
{
	int code;

	kill(p->pid, SIGTERM);
	code = finish(p);
	live_remove(p->pid);
	if (log != NULL)
		copy_str(log, cap, p->log);
	free(p);
	return code;
}

/* No socket file is left in the directory of the sockets. */
static void assert_no_sockets(void)
{
	char cmd[256];
	char line[512] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "find '%s' -type s 2>/dev/null", dir);
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fgets(line, sizeof(line), f) != NULL)
		fail_msg("a socket file is left: %s", line);
	pclose(f);
}

/* ---- configs ----------------------------------------------------------- */

/* A node hosting the actors text lists, on DIR/sock/NAME.sock. */
static void node_config(char *buf, size_t cap, const char *name,
			const char *actors)
{
	snprintf(buf, cap,
		 "{\"name\": \"%s\", \"endpoint\": \"ipc://%s.sock\",\n"
		 " \"ipc_dir\": \"%s\", \"grace_ms\": 2000,\n"
		 " \"actors\": [%s]}",
		 name, name, sock_dir, actors);
}

static void addr(char *buf, size_t cap, const char *node, const char *actor)
{
	snprintf(buf, cap, "ipc://%s/%s.sock#%s", sock_dir, node, actor);
}

/* The three nodes of the RAG set: retrieval (on a file), chat, and query
 * with gather, which reaches the other two. */
static void three_nodes(char *up, size_t cap, const char *restart)
{
	char r[4096];
	char c[4096];
	char q[4096];
	char actors[2048];
	char ret_addr[160];
	char chat_addr[160];

	snprintf(actors, sizeof(actors),
		 "{\"type\": \"retrieval\", \"config\": {\"db_path\": "
		 "\"%s/index.db\", \"chunk_size\": 128, \"chunk_overlap\": "
		 "16}}",
		 dir);
	node_config(r, sizeof(r), "retrieval", actors);
	node_config(c, sizeof(c), "chat",
		    "{\"type\": \"chat\", \"config\": {\"provider\": "
		    "\"extractive\"}}");
	addr(ret_addr, sizeof(ret_addr), "retrieval", "retrieval");
	addr(chat_addr, sizeof(chat_addr), "chat", "chat");
	snprintf(actors, sizeof(actors),
		 "{\"type\": \"gather\"}, {\"type\": \"query\", \"config\": "
		 "{\"retriever\": \"%s\", \"chat\": \"%s\", \"top_k\": 2, "
		 "\"timeout_ms\": 20000}}",
		 ret_addr, chat_addr);
	node_config(q, sizeof(q), "query", actors);
	snprintf(up, cap,
		 "{\"name\": \"rag\",\n"
		 " \"restart\": %s,\n"
		 " \"nodes\": [\n"
		 "  {\"name\": \"retrieval\", \"config\": %s},\n"
		 "  {\"name\": \"chat\", \"config\": %s},\n"
		 "  {\"name\": \"query\", \"config\": %s}]}\n",
		 restart, r, c, q);
}

static const char fast_restart[] =
	"{\"backoff_ms\": 20, \"backoff_max_ms\": 200, \"max_restarts\": 5, "
	"\"window_ms\": 60000}";

static const char bees[] =
	"{\"id\": \"bees\", \"text\": \"Honey bees dance to tell where "
	"flowers are. The waggle dance gives the direction and the distance "
	"of the food. Propolis is a resin that bees collect from buds.\"}";

static const char question[] =
	"{\"query\": \"What does the waggle dance give?\"}";

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/af-test-deploy-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_dir, sizeof(sock_dir), "%s/sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(live_ups) / sizeof(live_ups[0]); i++) {
		if (live_ups[i] == 0)
			continue;
		kill(live_ups[i], SIGTERM);
		waitpid(live_ups[i], NULL, 0);
		live_ups[i] = 0;
	}
	test_remove_dir(dir);
	return 0;
}

/* A request from this process, through a client that lives across the
 * restarts of the node it talks to. */
static af_err request(af_client *c, const char *to, const char *type,
		      const char *json, int64_t timeout_ms, af_msg **reply)
{
	af_payload *p = NULL;
	char why[128];
	af_err err;

	*reply = NULL;
	if (json != NULL) {
		assert_int_equal(af_payload_new(&p), AF_OK);
		assert_int_equal(cli_json_to_payload(json, p, why, sizeof(why)),
				 AF_OK);
	}
	err = af_client_request(c, to, type, p, timeout_ms, reply);
	af_payload_destroy(&p);
	return err;
}

/* ---- the supervisor ---------------------------------------------------- */

static void test_restart_after_sigkill(void **state)
{
	char up[16384];
	char line[512];
	char want[128];
	char to[160];
	af_client *c;
	af_msg *m;
	proc *p;
	pid_t first;
	pid_t second;

	(void)state;
	three_nodes(up, sizeof(up), fast_restart);
	p = up_start("up", up);
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	addr(to, sizeof(to), "retrieval", "retrieval");
	assert_int_equal(request(c, to, "insert", bees, 10000, &m), AF_OK);
	af_msg_destroy(&m);

	first = node_pid(p, "retrieval");
	assert_int_equal(kill(first, SIGKILL), 0);
	snprintf(want, sizeof(want),
		 "node retrieval: pid %d killed by signal 9", (int)first);
	assert_true(wait_log(p, want, 10000, line, sizeof(line)));
	assert_true(wait_log(p, "node retrieval: restarting in 20 ms", 1000,
			     line, sizeof(line)));
	assert_true(wait_log(p, "node retrieval: ready", 30000, line,
			     sizeof(line)));
	second = node_pid(p, "retrieval");
	assert_true(second != first);

	/* The same client: the node's new process answers, and the
	 * document is still there (the index is a file). */
	assert_int_equal(request(c, to, "stats", NULL, 10000, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 1);
	af_msg_destroy(&m);
	/* And the query node, which was not restarted, reaches it too. */
	addr(to, sizeof(to), "query", "query");
	assert_int_equal(request(c, to, "query", question, 20000, &m), AF_OK);
	af_msg_destroy(&m);

	af_client_destroy(&c);
	assert_int_equal(up_stop(p, NULL, 0), 0);
	assert_no_sockets();
}

static void test_gives_up_after_limit(void **state)
{
	char up[16384];
	char good[1024];
	char bad[1024];
	char log[65536];
	char line[512];
	char to[160];
	proc *p;
	result r;
	char path[128];
	char *argv[] = {"actorflow", "up", path, NULL};
	int starts = 0;

	(void)state;
	node_config(good, sizeof(good), "good", "{\"type\": \"gather\"}");
	node_config(bad, sizeof(bad), "bad", "{\"type\": \"gather\"}");
	snprintf(up, sizeof(up),
		 "{\"nodes\": [{\"name\": \"good\", \"config\": %s},\n"
		 " {\"name\": \"bad\", \"config\": %s,\n"
		 "  \"restart\": {\"backoff_ms\": 10, \"backoff_max_ms\": 40,"
		 " \"max_restarts\": 3, \"window_ms\": 60000}}]}\n",
		 good, bad);
	snprintf(path, sizeof(path), "%s/up.json", dir);
	write_file(path, up);
	p = malloc(sizeof(*p));
	assert_non_null(p);
	spawn(p, argv);
	live_add(p->pid);
	/* A node that keeps dying after it is ready: killed each time. */
	for (int i = 0; i < 4; i++) {
		assert_true(wait_log(p, "node bad: ready", 30000, line,
				     sizeof(line)));
		kill(node_pid(p, "bad"), SIGKILL);
	}
	assert_true(wait_log(p,
			     "node bad: gave up: 3 restarts within 60000 "
			     "ms",
			     30000, line, sizeof(line)));
	/* The delays doubled: 10, 20, 40 ms. */
	assert_non_null(strstr(p->log, "node bad: restarting in 10 ms"));
	assert_non_null(strstr(p->log, "node bad: restarting in 20 ms"));
	assert_non_null(strstr(p->log, "node bad: restarting in 40 ms"));
	assert_non_null(strstr(p->log, "killed by signal 9"));
	for (const char *q = p->log;
	     (q = strstr(q, "node bad: started pid")) != NULL; q++)
		starts++;
	assert_int_equal(starts, 4);
	/* The other node goes on serving. */
	if (strstr(p->log, "node good: ready") == NULL)
		assert_true(wait_log(p, "node good: ready", 30000, NULL, 0));
	addr(to, sizeof(to), "good", "gather");
	run(&r, "ask", to, "gather", "{\"items\": []}", NULL);
	assert_int_equal(r.code, 0);
	/* A node given up makes the exit 1. */
	assert_int_equal(up_stop(p, log, sizeof(log)), 1);
	assert_non_null(strstr(log, "node good: pid"));
	assert_non_null(strstr(log, "exited with status 0"));
	/* A killed node leaves its socket file (the next one would take it
	 * over); this one is given up. */
	snprintf(to, sizeof(to), "%s/sock/bad.sock", dir);
	assert_int_equal(unlink(to), 0);
	assert_no_sockets();

	/* "on_limit": "stop": the supervisor stops the others and exits 1
	 * by itself. */
	snprintf(up, sizeof(up),
		 "{\"restart\": {\"backoff_ms\": 1, \"max_restarts\": 0,"
		 " \"on_limit\": \"stop\"},\n"
		 " \"nodes\": [{\"name\": \"good\", \"config\": %s},\n"
		 " {\"name\": \"bad\", \"config\": %s}]}\n",
		 good, bad);
	p = up_start("up2", up);
	kill(node_pid(p, "bad"), SIGKILL);
	assert_int_equal(finish(p), 1);
	live_remove(p->pid);
	assert_non_null(strstr(p->log, "node bad: gave up: 0 restarts within"));
	assert_non_null(strstr(p->log, "stopping: SIGTERM to 1 node"));
	free(p);
	assert_int_equal(unlink(to), 0);
	assert_no_sockets();
}

/* A node that cannot start (its actor refuses the config, or a db_path
 * in a folder that is not there) exits 2 before it is ready: the
 * supervisor says so once, does not restart it, stops the others and
 * exits 2. */
static void test_config_error_not_restarted(void **state)
{
	char up[4096];
	char good[1024];
	char bad[1024];
	char spec[256];
	result r;

	(void)state;
	node_config(good, sizeof(good), "good", "{\"type\": \"gather\"}");
	snprintf(spec, sizeof(spec),
		 "{\"type\": \"retrieval\", \"config\": {\"db_path\": "
		 "\"%s/none/x.db\"}}",
		 dir);
	node_config(bad, sizeof(bad), "bad", spec);
	snprintf(up, sizeof(up),
		 "{\"restart\": {\"backoff_ms\": 10, \"max_restarts\": 5},\n"
		 " \"nodes\": [{\"name\": \"good\", \"config\": %s},\n"
		 " {\"name\": \"bad\", \"config\": %s}]}\n",
		 good, bad);
	snprintf(spec, sizeof(spec), "%s/up-config.json", dir);
	write_file(spec, up);
	run(&r, "up", spec, NULL);
	if (r.code != 2 ||
	    strstr(r.err, "node bad: configuration error, not restarted") ==
		    NULL)
		fail_msg("exit %d: %s", r.code, r.err);
	assert_non_null(strstr(r.err, "db_path"));
	assert_non_null(strstr(r.err, "exited with status 2"));
	assert_null(strstr(r.err, "node bad: restarting"));
	assert_null(strstr(r.out, "ready"));
	assert_no_sockets();
}

static void test_sigterm_stops_everything(void **state)
{
	char up[16384];
	char log[65536];
	pid_t pids[3];
	const char *names[] = {"retrieval", "chat", "query"};
	proc *p;

	(void)state;
	three_nodes(up, sizeof(up), fast_restart);
	p = up_start("up", up);
	for (int i = 0; i < 3; i++)
		pids[i] = node_pid(p, names[i]);
	assert_int_equal(up_stop(p, log, sizeof(log)), 0);
	for (int i = 0; i < 3; i++) {
		char want[96];
		snprintf(want, sizeof(want), "pid %d exited with status 0",
			 (int)pids[i]);
		assert_non_null(strstr(log, want));
		/* Reaped by the supervisor: gone. */
		assert_int_equal(kill(pids[i], 0), -1);
	}
	assert_non_null(strstr(log, "stopping: SIGTERM to 3 nodes"));
	assert_no_sockets();
}

/* SIGTERM while the supervisor is still reading its file: it starts no
 * node and exits 0, rather than dying of the signal (143). The file is a
 * FIFO: once this process has opened it for writing, up is reading it,
 * and the signal lands then, for sure. */
static void test_sigterm_while_up_reads(void **state)
{
	char up[16384];
	char fifo[128];
	char *argv[] = {"actorflow", "up", fifo, NULL};
	proc *p = malloc(sizeof(*p));
	int code;
	int fd;

	(void)state;
	assert_non_null(p);
	three_nodes(up, sizeof(up), fast_restart);
	snprintf(fifo, sizeof(fifo), "%s/up.json", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	spawn(p, argv);
	live_add(p->pid);
	fd = open(fifo, O_WRONLY | O_CLOEXEC); /* waits for up to open it */
	assert_true(fd >= 0);
	assert_int_equal(kill(p->pid, SIGTERM), 0);
	assert_true(write(fd, up, strlen(up)) == (ssize_t)strlen(up));
	close(fd);
	code = finish(p);
	live_remove(p->pid);
	if (code != 0)
		fail_msg("up exited %d: %s", code, p->log);
	assert_non_null(strstr(p->log, "stopping: SIGTERM to 0 nodes"));
	assert_null(strstr(p->log, "started pid"));
	free(p);
	assert_no_sockets();
}

/* SIGTERM to the supervisor just as it has started its nodes, while they
 * read their configs: each stops cleanly, or dies of the SIGTERM it was
 * sent before it could block it; either way a clean stop, exit 0. */
static void test_sigterm_while_nodes_start(void **state)
{
	char up[16384];
	char path[128];
	char *argv[] = {"actorflow", "up", path, NULL};
	proc *p = malloc(sizeof(*p));
	int code;

	(void)state;
	assert_non_null(p);
	three_nodes(up, sizeof(up), fast_restart);
	snprintf(path, sizeof(path), "%s/up.json", dir);
	write_file(path, up);
	spawn(p, argv);
	live_add(p->pid);
	assert_true(wait_log(p, "node query: started pid", 30000, NULL, 0));
	assert_int_equal(kill(p->pid, SIGTERM), 0);
	code = finish(p);
	live_remove(p->pid);
	if (code != 0)
		fail_msg("up exited %d: %s", code, p->log);
	assert_non_null(strstr(p->log, "stopping: SIGTERM to 3 nodes"));
	assert_null(strstr(p->log, "restarting"));
	free(p);
	assert_no_sockets();
}

static void test_up_file_errors(void **state)
{
	char path[128];
	char nodefile[128];
	char text[1024];
	char want[256];
	result r;

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	/* A typo in a node config inline: the up file's line. */
	snprintf(text, sizeof(text),
		 "{\"nodes\": [\n"
		 "  {\"name\": \"a\",\n"
		 "   \"config\": {\"endpoint\": \"ipc:///x/a.sock\",\n"
		 "     \"actors\": [{\"type\": \"retrieval\",\n"
		 "                   \"config\": {\"chunk_sise\": 3}}]}}]}\n");
	write_file(path, text);
	run(&r, "up", path, NULL);
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s:5: actors[0].config: unknown key \"chunk_sise\"", path);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "node \"a\""));

	/* In a node config file: that file's line. */
	snprintf(nodefile, sizeof(nodefile), "%s/n.json", dir);
	write_file(nodefile, "{\"endpoint\": \"ipc:///x/a.sock\",\n"
			     " \"grace\": 1,\n"
			     " \"actors\": [{\"type\": \"gather\"}]}\n");
	write_file(path, "{\"nodes\": [{\"name\": \"a\", \"config\": "
			 "\"n.json\"}]}");
	run(&r, "up", path, NULL);
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s:2: the top level: unknown key "
		 "\"grace\"",
		 nodefile);
	assert_non_null(strstr(r.err, want));

	/* In the up file itself. */
	write_file(path, "{\"nodes\": [{\"name\": \"a\", \"config\": "
			 "\"n.json\",\n"
			 " \"restart\": {\"backof_ms\": 5}}]}");
	run(&r, "up", path, NULL);
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s:2: nodes[0].restart: unknown key \"backof_ms\"", path);
	assert_non_null(strstr(r.err, want));
	write_file(path, "{\"restart\": {\"on_limit\": \"panic\"}, \"nodes\": "
			 "[]}");
	run(&r, "up", path, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "on_limit"));
	write_file(path, "{\"nodes\": [{\"name\": \"a\", \"config\": "
			 "\"missing.json\"}]}");
	run(&r, "up", path, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "missing.json: No such file"));
	run(&r, "up", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "up", "--help", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "on-failure"));
}

/* ---- peers dying ------------------------------------------------------- */

static void test_killed_mid_stream(void **state)
{
	char up[16384];
	char cfg[2048];
	char args[512];
	char line[1024];
	char to[160];
	char *argv[] = {"actorflow", "stream", "--json", to,
			"gather",    args,     NULL};
	proc *p;
	proc s;
	result r;
	int64_t start;
	int code;

	(void)state;
	node_config(cfg, sizeof(cfg), "n",
		    "{\"type\": \"gather\", \"config\": {\"remote_targets\": "
		    "true}}, {\"type\": \"chat\"}");
	snprintf(up, sizeof(up),
		 "{\"restart\": %s, \"nodes\": [{\"name\": \"n\", "
		 "\"config\": %s}]}",
		 fast_restart, cfg);
	p = up_start("up", up);
	/* A stream whose first item comes at once and whose second never
	 * does (nobody serves its address). */
	snprintf(args, sizeof(args),
		 "{\"as_completed\": true, \"items\": ["
		 "{\"to\": \"chat\", \"type\": \"chat\", \"payload\": "
		 "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}},"
		 "{\"to\": \"ipc://%s/none.sock#x\", \"type\": \"t\"}]}",
		 dir);
	addr(to, sizeof(to), "n", "gather");
	spawn(&s, argv);
	while (strchr(s.outbuf, '\n') == NULL)
		assert_true(pump(&s, 10000) && s.out >= 0);
	assert_non_null(strstr(s.outbuf, "{\"seq\":1,\"chunk\":{\"index\":0,"));
	start = now_ms();
	assert_int_equal(kill(node_pid(p, "n"), SIGKILL), 0);
	code = finish(&s);
	/* Peer down, within the heartbeat's 3 s (and a margin for a loaded
	 * machine), not the 60 s timeout. */
	assert_int_equal(code, 4);
	assert_non_null(strstr(s.log, "error: AF_EPEERDOWN"));
	assert_true(now_ms() - start < 8000);
	/* Restarted: the next request works. */
	assert_true(wait_log(p, "node n: ready", 30000, line, sizeof(line)));
	run(&r, "ask", to, "gather",
	    "{\"items\": [{\"to\": \"chat\", "
	    "\"type\": \"chat\", \"payload\": "
	    "{\"messages\": [{\"role\": \"user\", "
	    "\"content\": \"hi\"}]}}]}",
	    NULL);
	assert_int_equal(r.code, 0);
	assert_int_equal(up_stop(p, NULL, 0), 0);
	assert_no_sockets();
}

static void test_query_when_retrieval_dies(void **state)
{
	static const char slow_restart[] =
		"{\"backoff_ms\": 3000, \"backoff_max_ms\": 3000, "
		"\"max_restarts\": 5}";
	char up[16384];
	char line[512];
	char to[160];
	char q[160];
	char *argv[] = {"actorflow", "ask",   "--timeout",      "30000",
			q,           "query", (char *)question, NULL};
	static char log[262144];
	proc *p;
	proc s;
	result r;
	pid_t ret;
	int64_t start;
	int code;

	(void)state;
	/* A restart 3 s away: the retrieval node stays dead for a while. */
	three_nodes(up, sizeof(up), slow_restart);
	p = up_start("up", up);
	addr(to, sizeof(to), "retrieval", "retrieval");
	addr(q, sizeof(q), "query", "query");
	run(&r, "ask", to, "insert", bees, NULL);
	assert_int_equal(r.code, 0);
	run(&r, "ask", q, "query", question, NULL);
	assert_int_equal(r.code, 0);

	/* Hung, then dead while the query waits for it: the query fails
	 * with peer down, not at its 30 s timeout. */
	ret = node_pid(p, "retrieval");
	assert_int_equal(kill(ret, SIGSTOP), 0);
	spawn(&s, argv);
	start = now_ms();
	code = finish(&s);
	if (code != 5 || strstr(s.log, "AF_EPEERDOWN") == NULL)
		fail_msg("query to a hung retrieval node: exit %d: %s", code,
			 s.log);
	/* The heartbeat: 3 s without an answer (a margin for a loaded
	 * machine). */
	assert_true(now_ms() - start < 10000);

	/* Dead, and back in 3 s: meanwhile the query node has no
	 * connection to send on. A request to a peer known down waits up
	 * to 3 s for it to come back, then fails with peer down; this one's
	 * 1 s deadline comes first. Either way no hang. */
	assert_int_equal(kill(ret, SIGKILL), 0);
	assert_true(wait_log(p, "node retrieval: restarting in 3000 ms", 10000,
			     line, sizeof(line)));
	start = now_ms();
	run(&r, "ask", "--timeout", "1000", q, "query", question, NULL);
	if (r.code != 3 && r.code != 0 &&
	    (r.code != 5 || strstr(r.err, "AF_EPEERDOWN") == NULL))
		fail_msg("query to a dead retrieval node: exit %d: %s", r.code,
			 r.err);
	assert_true(now_ms() - start < 5000);

	/* Back: the query works again, through the same query node. */
	assert_true(wait_log(p, "node retrieval: ready", 30000, line,
			     sizeof(line)));
	run(&r, "ask", q, "query", question, NULL);
	if (r.code != 0) {
		fputs(p->log, stderr);
		fail_msg("query after the restart: exit %d: %s", r.code, r.err);
	}
	assert_non_null(strstr(r.out, "waggle dance gives"));
	code = up_stop(p, log, sizeof(log));
	if (code != 0) {
		fputs(log, stderr);
		fail_msg("up exited %d", code);
	}
	assert_no_sockets();
}

/* ---- garbage on the socket --------------------------------------------- */

static void test_garbage_on_socket(void **state)
{
	char up[16384];
	char cfg[2048];
	char endpoint[160];
	char to[160];
	void *ctx;
	void *dealer;
	int zero = 0;
	proc *p;
	result r;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned char junk[4096];

	(void)state;
	node_config(cfg, sizeof(cfg), "n", "{\"type\": \"gather\"}");
	snprintf(up, sizeof(up),
		 "{\"nodes\": [{\"name\": \"n\", \"config\": "
		 "%s}]}",
		 cfg);
	p = up_start("up", up);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/n.sock", sock_dir);
	addr(to, sizeof(to), "n", "gather");
	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rand();

	/* A ZeroMQ peer sending frames that are not envelopes. */
	ctx = zmq_ctx_new();
	dealer = zmq_socket(ctx, ZMQ_DEALER);
	zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
	assert_int_equal(zmq_connect(dealer, endpoint), 0);
	zmq_send(dealer, "", 0, 0);
	zmq_send(dealer, junk, 1, 0);
	zmq_send(dealer, junk, sizeof(junk), 0);
	zmq_send(dealer, "\x93\x01\x02", 3, ZMQ_SNDMORE);
	zmq_send(dealer, junk, 100, ZMQ_SNDMORE);
	zmq_send(dealer, "", 0, 0);
	for (int i = 0; i < 200; i++)
		zmq_send(dealer, junk + i, 1 + (size_t)(i * 7) % 300,
			 i % 3 == 0 ? ZMQ_SNDMORE : 0);
	zmq_send(dealer, "end", 3, 0);
	run(&r, "ask", to, "gather", "{\"items\": []}", NULL);
	assert_int_equal(r.code, 0);
	zmq_close(dealer);
	zmq_ctx_term(ctx);

	/* A peer that does not speak ZMTP at all. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/n.sock", sock_dir);
	for (int round = 0; round < 3; round++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		assert_int_equal(
			connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		if (round == 0) {
			static const char http[] =
				"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
			(void)!write(fd, http, sizeof(http) - 1);
		} else if (round == 1) {
			/* A greeting's signature, then nonsense. */
			static const unsigned char sig[10] = {
				0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f};
			(void)!write(fd, sig, sizeof(sig));
			(void)!write(fd, junk, sizeof(junk));
		} else {
			(void)!write(fd, junk, 64);
			/* Left open while the next request is served. */
			run(&r, "ask", to, "gather", "{\"items\": []}", NULL);
			assert_int_equal(r.code, 0);
		}
		close(fd);
	}
	run(&r, "ask", to, "gather", "{\"items\": []}", NULL);
	assert_int_equal(r.code, 0);
	/* The same process throughout: never restarted. */
	assert_null(strstr(p->log, "exited"));
	assert_int_equal(up_stop(p, NULL, 0), 0);
	assert_no_sockets();
}

/* ---- full mailboxes and queues ----------------------------------------- */

typedef struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	int waiting;
	atomic_int handled;
} gate;

static gate the_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
			false, 0, 0};

static void gate_wait(gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->waiting++;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	g->waiting--;
	pthread_mutex_unlock(&g->lock);
}

static void gate_until_waiting(gate *g, int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->waiting < n)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_set(gate *g, bool open)
{
	pthread_mutex_lock(&g->lock);
	g->open = open;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int blocking_fn(void *user, const af_value *args, af_payload *out,
		       char *msg, size_t msg_size)
{
	(void)user;
	(void)args;
	(void)msg;
	(void)msg_size;
	gate_wait(&the_gate);
	return af_pack_str(out, "done");
}

/* An actor that blocks its loop on "block" and counts the rest. */
static af_err sink_handle(af_ctx *ctx, void *state, af_msg *m)
{
	(void)state;
	if (strcmp(af_msg_type(m), "block") == 0) {
		gate_wait(&the_gate);
		return AF_OK;
	}
	if (strcmp(af_msg_type(m), "count") == 0) {
		af_payload *p;
		af_err err;
		af_payload_new(&p);
		af_pack_int(p, atomic_load(&the_gate.handled));
		err = af_reply(ctx, m, p);
		af_payload_destroy(&p);
		return err;
	}
	atomic_fetch_add(&the_gate.handled, 1);
	return AF_OK;
}

static const af_actor_ops sink_ops = {.type_name = "sink",
				      .handle = sink_handle};

static void test_full_queue_and_mailbox(void **state)
{
	static const af_offload_function fns[] = {{"block", blocking_fn, NULL}};
	af_offload_config oc = {.workers = 2,
				.queue_capacity = 3,
				.functions = fns,
				.nfunctions = 1};
	af_spawn_opts so = {.mailbox_capacity = 8};
	enum { N = 12 };
	af_stream *calls[N];
	af_system *sys;
	af_client *c;
	af_msg *m;
	af_payload *args;
	char pool[160];
	char sink[160];
	int ok = 0;
	int full = 0;
	int told = 0;
	int refused = 0;
	af_err err;

	(void)state;
	gate_set(&the_gate, false);
	atomic_store(&the_gate.handled, 0);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "pool", &af_offload_ops, &oc, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "sink", &sink_ops, NULL, &so), AF_OK);
	snprintf(pool, sizeof(pool), "ipc://%s/pool.sock", dir);
	snprintf(sink, sizeof(sink), "ipc://%s/sink.sock", dir);
	assert_int_equal(af_export(sys, "pool", pool), AF_OK);
	assert_int_equal(af_export(sys, "sink", sink), AF_OK);
	strcat(pool, "#pool");
	strcat(sink, "#sink");
	/* From another "process": a client that reaches only addresses. */
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	assert_int_equal(af_payload_new(&args), AF_OK);
	assert_int_equal(
		cli_json_to_payload("{\"fn\": \"block\"}", args, NULL, 0),
		AF_OK);

	/* Both workers busy, then N more calls: 3 wait in the queue, the
	 * rest are refused with AF_EAGAIN at once. Read as streams, that
	 * refusal is AF_EREMOTE, the message keeping AF_EAGAIN: af_stream_next
	 * says AF_EAGAIN only for a wait that ran out. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(af_client_stream(c, pool, "call", args, 60000,
						  &calls[i]),
				 AF_OK);
	gate_until_waiting(&the_gate, 2);
	for (int i = 2; i < N; i++)
		assert_int_equal(af_client_stream(c, pool, "call", args, 60000,
						  &calls[i]),
				 AF_OK);
	for (int i = 2 + 3; i < N; i++) {
		m = NULL;
		err = af_stream_next(calls[i], 30000, &m);
		assert_int_equal(err, AF_EREMOTE);
		assert_non_null(m);
		assert_int_equal(af_msg_kind(m), AF_KIND_ERROR);
		assert_int_equal(af_msg_error(m, NULL), AF_EAGAIN);
		full++;
		af_msg_destroy(&m);
	}
	assert_int_equal(request(c, pool, "stats", NULL, 10000, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "queued", -1), 3);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "rejected", -1),
			 full);
	af_msg_destroy(&m);
	gate_set(&the_gate, true);
	for (int i = 0; i < 2 + 3; i++) {
		m = NULL;
		assert_int_equal(af_stream_next(calls[i], 30000, &m), AF_EOF);
		assert_int_equal(af_msg_kind(m), AF_KIND_REPLY);
		ok++;
		af_msg_destroy(&m);
	}
	for (int i = 0; i < N; i++)
		af_stream_close(&calls[i]);
	/* Every call one outcome. */
	assert_int_equal(ok + full, N);
	assert_int_equal(ok, 5);

	/* An actor whose loop is blocked: tells fill its mailbox until the
	 * send is refused (nothing sent), a request times out, and every
	 * tell accepted is handled once it wakes. */
	gate_set(&the_gate, false);
	assert_int_equal(af_client_tell(c, sink, "block", NULL, 10000), AF_OK);
	gate_until_waiting(&the_gate, 1);
	while (refused == 0 && told < 100000) {
		err = af_client_tell(c, sink, "x", NULL, 0);
		if (err == AF_OK)
			told++;
		else if (err == AF_EAGAIN)
			refused++;
		else
			fail_msg("tell: %s", af_errname(err));
	}
	assert_int_equal(refused, 1);
	/* Over ipc the bound a sender meets is the transport's queues (a
	 * ZeroMQ high-water mark each side), not the actor's
	 * mailbox_capacity: a sender that waits gets some more in, then
	 * its wait runs out. Either way nothing accepted is lost. */
	while (told < 100000) {
		err = af_client_tell(c, sink, "x", NULL, 100);
		if (err != AF_OK)
			break;
		told++;
	}
	assert_int_equal(err, AF_ETIMEDOUT);
	print_message("a blocked actor: %d tells accepted, then AF_EAGAIN "
		      "(no wait) and AF_ETIMEDOUT (a wait)\n",
		      told);
	assert_true(told >= 8);
	assert_int_equal(request(c, sink, "count", NULL, 300, &m),
			 AF_ETIMEDOUT);
	assert_null(m);
	gate_set(&the_gate, true);
	/* The count is answered after every tell sent before it. */
	assert_int_equal(request(c, sink, "count", NULL, 30000, &m), AF_OK);
	{
		int64_t n = -1;
		af_value_int(af_msg_payload(m), &n);
		assert_int_equal(n, told);
	}
	af_msg_destroy(&m);

	af_payload_destroy(&args);
	af_client_destroy(&c);
	af_system_destroy(&sys);
}

/* ---- soak -------------------------------------------------------------- */

enum { OP_RETRIEVE, OP_STREAM_CHAT, OP_QUERY, OP_TELL, NOPS };
static const char *const op_names[NOPS] = {"retrieve", "stream_chat", "query",
					   "tell"};

typedef struct soak {
	int64_t until;
	char retrieval[160];
	char chat[160];
	char query[160];
	atomic_long sent[NOPS];
	atomic_long ok[NOPS];
	atomic_long documented[NOPS]; /* AF_ETIMEDOUT, AF_EAGAIN */
	atomic_long other[NOPS];
	char first_other[256];
	pthread_mutex_t lock;
} soak;

static const char *const questions[] = {
	"Why does honey crystallise?",
	"How do bees tell each other where the flowers are?",
	"What is propolis?",
	"What does the queen do?",
};

static void outcome(soak *s, int op, af_err err)
{
	if (err == AF_OK || err == AF_EOF) {
		atomic_fetch_add(&s->ok[op], 1);
	} else if (err == AF_ETIMEDOUT || err == AF_EAGAIN) {
		atomic_fetch_add(&s->documented[op], 1);
	} else {
		atomic_fetch_add(&s->other[op], 1);
		pthread_mutex_lock(&s->lock);
		if (s->first_other[0] == '\0')
			snprintf(s->first_other, sizeof(s->first_other),
				 "%s: %s", op_names[op], af_errname(err));
		pthread_mutex_unlock(&s->lock);
	}
}

static void *soak_client(void *arg)
{
	soak *s = arg;
	af_client *c;
	af_payload *p;
	char json[512];
	unsigned i = (unsigned)(uintptr_t)&c;

	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	while (now_ms() < s->until) {
		int op = (int)(i++ % NOPS);
		const char *q = questions[i % 4];
		af_msg *m = NULL;
		af_err err;

		af_payload_new(&p);
		atomic_fetch_add(&s->sent[op], 1);
		switch (op) {
		case OP_RETRIEVE:
			snprintf(json, sizeof(json), "{\"query\": \"%s\"}", q);
			cli_json_to_payload(json, p, NULL, 0);
			err = af_client_request(c, s->retrieval, "retrieve", p,
						30000, &m);
			break;
		case OP_STREAM_CHAT: {
			af_stream *st = NULL;
			snprintf(json, sizeof(json),
				 "{\"messages\": [{\"role\": \"user\", "
				 "\"content\": \"Context: Bees make honey. "
				 "The waggle dance gives the direction of "
				 "flowers.\\nQuestion: %s\"}]}",
				 q);
			cli_json_to_payload(json, p, NULL, 0);
			err = af_client_stream(c, s->chat, "stream_chat", p,
					       30000, &st);
			while (err == AF_OK) {
				af_msg_destroy(&m);
				err = af_stream_next(st, 30000, &m);
				if (err == AF_EAGAIN)
					err = AF_ETIMEDOUT;
			}
			/* A producer's AF_EAGAIN (or AF_EOF) comes as
			 * AF_EREMOTE; its message has the code. */
			if (err == AF_EREMOTE && m != NULL)
				err = af_msg_error(m, NULL);
			af_stream_close(&st);
			break;
		}
		case OP_QUERY:
			snprintf(json, sizeof(json), "{\"query\": \"%s\"}", q);
			cli_json_to_payload(json, p, NULL, 0);
			err = af_client_request(c, s->query, "query", p, 30000,
						&m);
			break;
		default:
			err = af_client_tell(c, s->retrieval, "stats", NULL,
					     1000);
			break;
		}
		outcome(s, op, err);
		af_msg_destroy(&m);
		af_payload_destroy(&p);
	}
	af_client_destroy(&c);
	return NULL;
}

static long rss_kib(pid_t pid)
{
	char path[64];
	char line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void test_soak(void **state)
{
	enum { THREADS = 4 };
	const char *env = getenv("AF_SOAK_SECONDS");
	int seconds = env != NULL ? atoi(env) : 20;
	const char *names[] = {"retrieval", "chat", "query"};
	char up[16384];
	char data[512];
	pthread_t threads[THREADS];
	long warm[3];
	long end[3];
	pid_t pids[3];
	soak *s = calloc(1, sizeof(*s));
	proc *p;
	result r;
	long total_sent = 0;
	long total = 0;

	(void)state;
	assert_non_null(s);
	if (seconds < 2)
		seconds = 2;
	if (under_valgrind && env == NULL)
		seconds = 6;
	pthread_mutex_init(&s->lock, NULL);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps up to 256 MiB of freed memory in quarantine before
	 * reusing it, which a node's RSS would show as growth: the nodes of
	 * the soak get a small one. */
	{
		const char *was = getenv("ASAN_OPTIONS");
		char opts[512];
		snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=8",
			 was != NULL ? was : "",
			 was != NULL && was[0] != '\0' ? ":" : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
#endif
	three_nodes(up, sizeof(up), fast_restart);
	p = up_start("up", up);
	for (int i = 0; i < 3; i++)
		pids[i] = node_pid(p, names[i]);
	addr(s->retrieval, sizeof(s->retrieval), "retrieval", "retrieval");
	addr(s->chat, sizeof(s->chat), "chat", "chat");
	addr(s->query, sizeof(s->query), "query", "query");
	snprintf(data, sizeof(data), "{\"path\": \"%s/examples/data\"}",
		 AF_SOURCE_DIR);
	run(&r, "ask", s->retrieval, "load_dir", data, NULL);
	assert_int_equal(r.code, 0);

	/* A quarter of the time to warm up, then the memory the nodes hold
	 * should stay where it is. */
	s->until = now_ms() + (int64_t)seconds * 1000;
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(
			pthread_create(&threads[i], NULL, soak_client, s), 0);
	{
		int64_t warm_at = now_ms() + (int64_t)seconds * 250;
		while (now_ms() < warm_at)
			pump(p, (int)(warm_at - now_ms()));
	}
	for (int i = 0; i < 3; i++)
		warm[i] = rss_kib(pids[i]);
	while (now_ms() < s->until)
		pump(p, (int)(s->until - now_ms()));
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < 3; i++)
		end[i] = rss_kib(pids[i]);

	for (int op = 0; op < NOPS; op++) {
		long sent = atomic_load(&s->sent[op]);
		long got = atomic_load(&s->ok[op]) +
			   atomic_load(&s->documented[op]) +
			   atomic_load(&s->other[op]);
		print_message("soak: %-11s sent %ld, ok %ld, timed out or "
			      "refused %ld, other %ld\n",
			      op_names[op], sent, atomic_load(&s->ok[op]),
			      atomic_load(&s->documented[op]),
			      atomic_load(&s->other[op]));
		assert_int_equal(got, sent);
		assert_true(atomic_load(&s->ok[op]) > 0);
		total_sent += sent;
		total += got;
	}
	if (s->first_other[0] != '\0')
		fail_msg("an undocumented error: %s", s->first_other);
	assert_int_equal(total, total_sent);
	for (int i = 0; i < 3; i++) {
		/* Flat: within 4 MiB and a tenth of the warm size (room for
		 * caches that fill slowly), not growing with the requests
		 * served. ASan's allocator and its (small) quarantine need
		 * more room. */
#if defined(__SANITIZE_ADDRESS__)
		long bound = 16384 + warm[i] / 10;
#else
		long bound = 4096 + warm[i] / 10;
#endif
		print_message("soak: node %s RSS %ld KiB after warm-up, %ld "
			      "KiB at the end\n",
			      names[i], warm[i], end[i]);
		if (end[i] > warm[i] + bound)
			fail_msg("node %s grew from %ld to %ld KiB", names[i],
				 warm[i], end[i]);
	}
	/* Nothing restarted on the way. */
	while (pump(p, 0) && p->err >= 0 &&
	       poll(&(struct pollfd){.fd = p->err, .events = POLLIN}, 1, 0) >
		       0) {
	}
	assert_null(strstr(p->log, "exited"));
	assert_int_equal(up_stop(p, NULL, 0), 0);
	assert_no_sockets();
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_up_file_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_sigkill,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gives_up_after_limit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_error_not_restarted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_stops_everything,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_while_up_reads,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_while_nodes_start,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_mid_stream, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_query_when_retrieval_dies,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_on_socket, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_and_mailbox,
						setup, teardown),
	};
	const struct CMUnitTest soak_tests[] = {
		cmocka_unit_test_setup_teardown(test_soak, setup, teardown),
	};
	bool soak_only = argc > 1 && strcmp(argv[1], "--soak") == 0;
	const char *which = getenv("AF_DEPLOY_TESTS");
	bool no_soak = (argc > 1 && strcmp(argv[1], "--no-soak") == 0) ||
		       (which != NULL && strcmp(which, "no-soak") == 0);
	int failed = 0;

	under_valgrind = getenv("AF_UNDER_VALGRIND") != NULL;
	/* A closed pipe is an error to see, not a signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	if (!soak_only)
		failed += cmocka_run_group_tests_name("deploy", tests, NULL,
						      NULL);
	if (!no_soak)
		failed += cmocka_run_group_tests_name("soak", soak_tests, NULL,
						      NULL);
	return failed;
}
