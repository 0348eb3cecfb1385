/* The actorflow command as scripts use it: `actorflow node --config` in a
 * temporary directory, `actorflow ask/stream/tell` against it as child
 * processes, their stdout, stderr and exit codes; config errors, SIGTERM,
 * SIGKILL and stale socket files. Everything on ipc:// inside the
 * directory, or tcp on 127.0.0.1. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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

#include "node_config.h"
#include "testlib.h"

extern char **environ;

static char dir[64];

typedef test_proc proc;
typedef test_output result;

/* The helpers of testlib.h, for the actorflow command. */
#define now_ms test_now_ms
#define spawn(p, argv) test_spawn((p), AF_CLI_PATH, (argv))
#define wait_code test_wait_code
#define finish test_finish
#define run(r, ...) test_run((r), AF_CLI_PATH, __VA_ARGS__)
#define read_line test_read_line
#define write_file test_write_file

/* Starts a node on the config text and waits for its "ready". */
static void node_start(proc *n, const char *name, const char *config)
{
	char path[128];
	char line[256];
	char *argv[] = {"actorflow", "node", "--config", path, NULL};

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	write_file(path, config);
	spawn(n, argv);
	if (!read_line(n->out, line, sizeof(line))) {
		result r = {0};
		finish(n, &r);
		fail_msg("node did not start (exit %d): %s", r.code, r.err);
	}
	assert_string_equal(line, "ready\n");
}

static int node_stop(proc *n, int sig, result *r)
{
	kill(n->pid, sig);
	memset(r, 0, sizeof(*r));
	finish(n, r);
	return r->code;
}

/* Runs a node on config text expected to be refused; returns its
 * stderr in r. */
static void node_refused(result *r, const char *name, const char *config)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	write_file(path, config);
	run(r, "node", "--config", path, NULL);
	assert_string_equal(r->out, "");
}

/* A node hosting the RAG set, exported at DIR/node.sock. */
static char rag_config[1024];
static char addr_retrieval[160];
static char addr_chat[160];
static char addr_query[160];
static char addr_gather[160];
static char sock_path[128];
static char export_path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/af-test-cli-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/sock/node.sock", dir);
	snprintf(export_path, sizeof(export_path), "%s/sock/chat.sock", dir);
	snprintf(rag_config, sizeof(rag_config),
		 "{\"name\": \"rag\",\n"
		 " \"endpoint\": \"ipc://node.sock\",\n"
		 " \"ipc_dir\": \"%s/sock\",\n"
		 " \"grace_ms\": 5000,\n"
		 " \"actors\": [\n"
		 "  {\"type\": \"retrieval\",\n"
		 "   \"config\": {\"chunk_size\": 64, \"chunk_overlap\": 8}},\n"
		 "  {\"type\": \"chat\", \"export\": \"ipc://chat.sock\",\n"
		 "   \"config\": {\"provider\": \"extractive\"}},\n"
		 "  {\"type\": \"gather\", \"config\": {\"remote_targets\": "
		 "true}},\n"
		 "  {\"type\": \"query\", \"config\": {\"response_mode\": "
		 "\"compact\"}}\n"
		 " ]}\n",
		 dir);
	snprintf(addr_retrieval, sizeof(addr_retrieval), "ipc://%s#retrieval",
		 sock_path);
	snprintf(addr_chat, sizeof(addr_chat), "ipc://%s#chat", sock_path);
	snprintf(addr_query, sizeof(addr_query), "ipc://%s#query", sock_path);
	snprintf(addr_gather, sizeof(addr_gather), "ipc://%s#gather",
		 sock_path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* The directory holds only what the tests made. */
	test_remove_dir(dir);
	return 0;
}

static const char bees[] =
	"{\"id\": \"bees\", \"text\": \"Honey bees dance to tell where "
	"flowers are. The waggle dance gives the direction and the distance "
	"of the food. Propolis is a resin that bees collect from buds.\"}";

static void test_ask_retrieval_and_query(void **state)
{
	proc n;
	result r;

	(void)state;
	node_start(&n, "rag", rag_config);
	run(&r, "ask", addr_retrieval, "insert", bees, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{\"documents\":1,\"chunks\":1}\n");
	assert_string_equal(r.err, "");

	run(&r, "ask", addr_retrieval, "retrieve",
	    "{\"query\": \"waggle dance\", \"top_k\": 1}", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"nodes\":[{\"id\":\"bees#0\""));
	assert_non_null(strstr(r.out, "\"position\":0,"));

	run(&r, "ask", "--timeout", "20000", addr_query, "query",
	    "{\"query\": \"What does the waggle dance give?\"}", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"response\":\"The waggle dance gives "
				      "the direction and the distance"));
	assert_non_null(strstr(r.out, "\"source_nodes\":[{\"id\":\"bees#0\""));

	/* A streamed query: the deltas, then a newline. */
	run(&r, "stream", addr_query, "stream_query",
	    "{\"query\": \"What does the waggle dance give?\"}", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "The waggle dance gives the direction and "
				   "the distance of the food.\n");

	/* A tell is sent and forgotten. */
	run(&r, "tell", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "");
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

/* ask sends its request as a stream: the retrieval actor's load_dir
 * reports progress, one line per slice on stderr (not a terminal here),
 * and the reply goes to stdout as ever; --quiet shows no progress. */
static void test_ask_load_dir_progress(void **state)
{
	char folder[128], path[192], json[256];
	proc n;
	result r;
	int lines = 0;
	const char *last = NULL;

	(void)state;
	snprintf(folder, sizeof(folder), "%s/docs", dir);
	assert_int_equal(mkdir(folder, 0700), 0);
	for (int i = 0; i < 200; i++) {
		snprintf(path, sizeof(path), "%s/note%03d.txt", folder, i);
		write_file(path, "Bees carry pollen between the flowers of "
				 "one kind on each trip.");
	}
	snprintf(json, sizeof(json), "{\"path\": \"%s\"}", folder);
	node_start(&n, "rag", rag_config);
	run(&r, "ask", addr_retrieval, "load_dir", json, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{\"documents\":200,\"chunks\":200,"
				   "\"bytes\":12600}\n");
	/* A line per slice of at most 64 files, in order, the last at 200
	 * of 200. */
	for (const char *q = r.err; *q; q = strchr(q, '\n') + 1) {
		assert_true(strncmp(q, "load_dir: ", 10) == 0);
		assert_non_null(strchr(q, '\n'));
		last = q;
		lines++;
	}
	assert_true(lines >= 4);
	assert_non_null(strstr(r.err, "load_dir: 64/200 files, "));
	assert_string_equal(last, "load_dir: 200/200 files, 12.6/12.6 kB\n");

	run(&r, "ask", "--quiet", addr_retrieval, "load_dir", json, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "{\"documents\":200,\"chunks\":200,"
				   "\"bytes\":12600}\n");
	assert_string_equal(r.err, "");
	run(&r, "ask", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(
		r.out, "{\"documents\":200,\"chunks\":200,\"embedded\":0}\n");
	assert_string_equal(r.err, "");
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

static void test_stream_chat(void **state)
{
	static const char chat[] =
		"{\"messages\": [{\"role\": \"user\", \"content\": \"Context: "
		"Bees make honey from nectar. The waggle dance gives the "
		"direction of flowers. Wax comes from glands of young "
		"workers.\\nQuestion: What does the waggle dance give?\"}]}";
	proc n;
	result r;
	char content[1024];
	char *start;
	char *end;
	char chat_alone[200];

	(void)state;
	node_start(&n, "rag", rag_config);
	run(&r, "ask", addr_chat, "chat", chat, NULL);
	assert_int_equal(r.code, 0);
	start = strstr(r.out, "{\"content\":\"");
	assert_non_null(start);
	start += strlen("{\"content\":\"");
	end = strchr(start, '"');
	assert_non_null(end);
	snprintf(content, sizeof(content), "%.*s\n", (int)(end - start), start);
	assert_true(strlen(content) > 10);

	/* The deltas, concatenated, are the answer. */
	run(&r, "stream", addr_chat, "stream_chat", chat, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, content);

	/* One JSON line per chunk, numbered, then the end. The actor's own
	 * export answers the same as the system's endpoint. */
	snprintf(chat_alone, sizeof(chat_alone), "ipc://%s", export_path);
	run(&r, "stream", "--json", addr_chat, "stream_chat", chat, NULL);
	assert_int_equal(r.code, 0);
	assert_true(strncmp(r.out, "{\"seq\":1,\"chunk\":{\"delta\":\"", 27) ==
		    0);
	assert_non_null(strstr(r.out, "}}\n{\"end\":{\"finish_reason\":"
				      "\"stop\",\"model\":\"extractive\""));
	{
		/* Every line is whole; the last one is the end. */
		int lines = 0;
		for (const char *q = r.out; *q; q++)
			lines += *q == '\n';
		assert_true(lines >= 2);
		assert_int_equal(r.out[strlen(r.out) - 1], '\n');
	}
	strcat(chat_alone, "#chat");
	run(&r, "stream", chat_alone, "stream_chat", chat, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, content);
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

static void test_remote_error_timeout_bad_input(void **state)
{
	proc n;
	result r;
	char nowhere[160];

	(void)state;
	node_start(&n, "rag", rag_config);
	/* The actor's error: exit 5, its code and text on stderr. */
	run(&r, "ask", addr_retrieval, "retrieve", "{}", NULL);
	assert_int_equal(r.code, 5);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.err, "error: AF_EINVAL: "));
	assert_non_null(strstr(r.err, "query"));
	run(&r, "ask", addr_retrieval, "retrieve", "{\"query\": 7}", NULL);
	assert_int_equal(r.code, 5);
	snprintf(nowhere, sizeof(nowhere), "ipc://%s#nobody", sock_path);
	run(&r, "ask", nowhere, "x", NULL);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.err, "error: AF_ENOTFOUND: "));
	assert_non_null(strstr(r.err, "nobody"));
	run(&r, "stream", addr_chat, "stream_chat", "{\"messages\": 1}", NULL);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.err, "error: AF_EINVAL: "));

	/* A socket nobody accepts on (as a killed node leaves): exit 3 once
	 * --timeout passes. */
	{
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stale.sock",
			 dir);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		snprintf(nowhere, sizeof(nowhere), "ipc://%s#x", sa.sun_path);
		run(&r, "ask", "--timeout", "200", nowhere, "x", NULL);
		assert_int_equal(r.code, 3);
		assert_non_null(strstr(r.err, "error: AF_ETIMEDOUT"));
		assert_true(r.ms < 3000);
		run(&r, "stream", "--timeout=200", nowhere, "x", NULL);
		assert_int_equal(r.code, 3);
		close(fd);
		assert_int_equal(unlink(sa.sun_path), 0);
	}

	/* Bad input: exit 2, nothing sent. */
	run(&r, "ask", addr_retrieval, "retrieve", "{\"query\": ", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "bad JSON argument: line 1, column"));
	run(&r, "ask", addr_retrieval, "retrieve", "[1.5e999]", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "ask", "retrieval", "stats", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "is not ipc://PATH#ACTOR"));
	run(&r, "ask", addr_retrieval, NULL);
	assert_int_equal(r.code, 2);
	run(&r, "ask", "--timeout", "soon", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "ask", "--frobnicate", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "launch", NULL);
	assert_int_equal(r.code, 2);
	run(&r, NULL);
	assert_int_equal(r.code, 2);

	/* Every command has help, with the exit codes. */
	run(&r, "--help", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "5  remote error"));
	run(&r, "ask", "--help", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "3  timeout"));
	run(&r, "stream", "--help", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "--json"));
	run(&r, "tell", "--help", NULL);
	assert_int_equal(r.code, 0);
	run(&r, "node", "--help", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "grace_ms"));
	run(&r, "help", "ask", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "Usage: actorflow ask"));
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

/* A gather streaming as its items complete: the first at once, the second
 * (to an address nobody serves) never, or after item_ms. */
static void gather_args(char *buf, size_t cap, int item_ms)
{
	snprintf(buf, cap,
		 "{\"as_completed\": true, \"items\": ["
		 "{\"to\": \"retrieval\", \"type\": \"stats\"},"
		 "{\"to\": \"ipc://%s/none.sock#x\", \"type\": \"t\", "
		 "\"timeout_ms\": %d}]}",
		 dir, item_ms);
}

static void test_node_killed_mid_stream(void **state)
{
	char args[512];
	char line[1024];
	char *argv[] = {"actorflow", "stream", "--json", addr_gather,
			"gather",    args,     NULL};
	proc n;
	proc s;
	result r;
	int64_t start;

	(void)state;
	gather_args(args, sizeof(args), 0);
	node_start(&n, "rag", rag_config);
	spawn(&s, argv);
	assert_true(read_line(s.out, line, sizeof(line)));
	assert_non_null(strstr(line, "{\"seq\":1,\"chunk\":{\"index\":0,"));
	start = now_ms();
	assert_int_equal(node_stop(&n, SIGKILL, &r), -SIGKILL);
	memset(&r, 0, sizeof(r));
	finish(&s, &r);
	/* Peer down, well within the heartbeat's 3 s (plus a margin for a
	 * loaded machine), not the 60 s timeout. */
	assert_int_equal(r.code, 4);
	assert_non_null(strstr(r.err, "error: AF_EPEERDOWN"));
	assert_true(now_ms() - start < 8000);

	/* The SIGKILLed node left its socket file; the next one starts. */
	assert_int_equal(access(sock_path, F_OK), 0);
	node_start(&n, "rag", rag_config);
	run(&r, "ask", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out,
			    "{\"documents\":0,\"chunks\":0,\"embedded\":0}\n");
	/* A second node on the same endpoint is refused: it is in use. */
	{
		char path[128];
		char *argv2[] = {"actorflow", "node", "--config", path, NULL};
		proc twin;
		snprintf(path, sizeof(path), "%s/rag.json", dir);
		spawn(&twin, argv2);
		memset(&r, 0, sizeof(r));
		finish(&twin, &r);
		assert_int_equal(r.code, 2);
		assert_non_null(strstr(r.err, "in use"));
	}
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
	assert_int_equal(access(sock_path, F_OK), -1);
	assert_int_equal(access(export_path, F_OK), -1);
}

/* Something other than a socket at an ipc path: the node says so, and
 * leaves it alone, rather than call it "in use by another process". */
static void test_ipc_path_not_a_socket(void **state)
{
	char sock_dir[128], want[256];
	const char *paths[] = {sock_path, export_path};
	result r;

	(void)state;
	snprintf(sock_dir, sizeof(sock_dir), "%s/sock", dir);
	assert_true(mkdir(sock_dir, 0700) == 0 || errno == EEXIST);
	for (size_t i = 0; i < 2; i++) {
		struct stat st;
		/* A file, then a folder. */
		write_file(paths[i], "not a socket");
		node_refused(&r, "rag", rag_config);
		assert_int_equal(r.code, 2);
		snprintf(want, sizeof(want), "%s exists and is not a socket",
			 paths[i]);
		if (strstr(r.err, want) == NULL)
			fail_msg("'%s' lacks '%s'", r.err, want);
		assert_null(strstr(r.err, "in use"));
		assert_int_equal(stat(paths[i], &st), 0);
		assert_true(S_ISREG(st.st_mode) && st.st_size == 12);
		assert_int_equal(unlink(paths[i]), 0);

		assert_int_equal(mkdir(paths[i], 0700), 0);
		node_refused(&r, "rag", rag_config);
		assert_int_equal(r.code, 2);
		assert_non_null(strstr(r.err, want));
		assert_int_equal(rmdir(paths[i]), 0);
	}
	/* The paths free again, the node starts. */
	{
		proc n;
		node_start(&n, "rag", rag_config);
		assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
	}
}

static void test_sigterm_lets_work_finish(void **state)
{
	char args[512];
	char line[1024];
	char *argv[] = {"actorflow", "stream", "--json", addr_gather,
			"gather",    args,     NULL};
	proc n;
	proc s;
	result r;
	result nr;
	int64_t start;

	(void)state;
	/* The second item ends (timed out) after 1 s: in-flight work that
	 * finishes within the 5 s grace. */
	gather_args(args, sizeof(args), 1000);
	node_start(&n, "rag", rag_config);
	spawn(&s, argv);
	assert_true(read_line(s.out, line, sizeof(line)));
	start = now_ms();
	kill(n.pid, SIGTERM);
	/* New connections are refused at once: the socket file goes. */
	while (access(sock_path, F_OK) == 0 && now_ms() - start < 5000)
		usleep(10000);
	assert_int_equal(access(sock_path, F_OK), -1);
	memset(&r, 0, sizeof(r));
	finish(&s, &r);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\"error\":{\"code\":5,"));
	assert_non_null(
		strstr(r.out, "{\"end\":{\"completed\":2,\"failed\":1}}"));
	/* The node goes once its last client has: well before the grace
	 * period ends. */
	memset(&nr, 0, sizeof(nr));
	finish(&n, &nr);
	assert_int_equal(nr.code, 0);
	assert_true(now_ms() - start < 4500);
	assert_int_equal(access(export_path, F_OK), -1);

	/* SIGINT stops it too. */
	node_start(&n, "rag", rag_config);
	assert_int_equal(node_stop(&n, SIGINT, &r), 0);
	assert_int_equal(access(sock_path, F_OK), -1);
}

/* A signal while the node is still starting: it starts, then stops
 * cleanly (exit 0), rather than dying of it (143). The config is a FIFO:
 * once this process has opened it for writing, the node is reading its
 * config, and the signal lands then, for sure. */
static void test_signal_while_starting(void **state)
{
	static const int sigs[] = {SIGTERM, SIGINT};
	char fifo[128];
	char *argv[] = {"actorflow", "node", "--config", fifo, NULL};

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo.json", dir);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		proc n;
		result r;
		int fd;
		assert_int_equal(mkfifo(fifo, 0600), 0);
		spawn(&n, argv);
		fd = open(fifo, O_WRONLY | O_CLOEXEC); /* waits for the node */
		assert_true(fd >= 0);
		assert_int_equal(kill(n.pid, sigs[i]), 0);
		assert_true(write(fd, rag_config, strlen(rag_config)) ==
			    (ssize_t)strlen(rag_config));
		close(fd);
		memset(&r, 0, sizeof(r));
		finish(&n, &r);
		if (r.code != 0)
			fail_msg("signal %d: exit %d: %s", sigs[i], r.code,
				 r.err);
		assert_string_equal(r.out, "ready\n");
		assert_int_equal(access(sock_path, F_OK), -1);
		assert_int_equal(unlink(fifo), 0);
	}
}

/* An ipc address with no socket file behind it: ask, stream, tell and
 * stats say so at once with exit 6, rather than wait for the whole
 * timeout (and tell report success for a message sent nowhere). Ports and
 * socket paths a connect cannot take: exit 2. */
static void test_nobody_listening(void **state)
{
	static const char *const verbs[] = {"ask", "stream", "tell"};
	char addr[160], want[200], path[128], long_addr[200];
	result r;

	(void)state;
	snprintf(path, sizeof(path), "%s/gone.sock", dir);
	snprintf(addr, sizeof(addr), "ipc://%s#x", path);
	snprintf(want, sizeof(want), "no node listening at %s (no such file)",
		 path);
	for (size_t i = 0; i < 3; i++) {
		/* Well within the 60 s default timeout. */
		run(&r, verbs[i], addr, "t", "{}", NULL);
		if (r.code != 6 || strstr(r.err, want) == NULL)
			fail_msg("%s: exit %d: %s", verbs[i], r.code, r.err);
		assert_true(r.ms < 10000);
		assert_string_equal(r.out, "");
	}
	snprintf(addr, sizeof(addr), "ipc://%s", path);
	run(&r, "stats", addr, NULL);
	assert_int_equal(r.code, 6);
	/* Something else at the path. */
	write_file(path, "");
	snprintf(addr, sizeof(addr), "ipc://%s#x", path);
	run(&r, "tell", addr, "t", NULL);
	assert_int_equal(r.code, 6);
	snprintf(want, sizeof(want), "no node listening at %s (not a socket)",
		 path);
	assert_non_null(strstr(r.err, want));
	/* A folder on the way that is not one. */
	snprintf(addr, sizeof(addr), "ipc://%s/x.sock#x", path);
	run(&r, "tell", addr, "t", NULL);
	assert_int_equal(r.code, 6);
	assert_non_null(strstr(r.err, "(no such file)"));
	assert_int_equal(unlink(path), 0);

	static const char *const bad_tcp[] = {
		"tcp://127.0.0.1:0#x",
		"tcp://127.0.0.1:65536#x",
		"tcp://127.0.0.1:99999999999#x",
		"tcp://127.0.0.1:#x",
		"tcp://127.0.0.1:5x#x",
		"tcp://127.0.0.1#x",
		"tcp://:5555#x",
	};
	for (size_t i = 0; i < sizeof(bad_tcp) / sizeof(bad_tcp[0]); i++) {
		run(&r, "tell", bad_tcp[i], "t", NULL);
		if (r.code != 2 || strstr(r.err, bad_tcp[i]) == NULL)
			fail_msg("%s: exit %d: %s", bad_tcp[i], r.code, r.err);
	}
	run(&r, "ask", "tcp://127.0.0.1:70000#x", "t", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "from 1 to 65535"));
	/* 108 bytes of path: one more than a socket address holds. */
	snprintf(long_addr, sizeof(long_addr), "ipc:///%0107d#x", 0);
	run(&r, "tell", long_addr, "t", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "at most 107 fit"));
	/* Documented. */
	run(&r, "tell", "--help", NULL);
	assert_non_null(strstr(r.out, "6  no node listening"));
	run(&r, "--help", NULL);
	assert_non_null(strstr(r.out, "6  no node listening"));
}

/* Starts the command with argv as test_spawn does, and its stdin on a
 * pipe whose write end goes to *in. */
static void spawn_with_stdin(proc *p, char *const argv[], int *in)
{
	int fds[3][2]; /* stdin, stdout, stderr */
	posix_spawn_file_actions_t fa;

	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pipe2(fds[i], O_CLOEXEC), 0);
		/* The child's end: the read end of stdin, the write ends of
		 * the others. */
		posix_spawn_file_actions_adddup2(&fa, fds[i][i == 0 ? 0 : 1],
						 i);
	}
	assert_int_equal(
		posix_spawn(&p->pid, AF_CLI_PATH, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0][0]);
	close(fds[1][1]);
	close(fds[2][1]);
	*in = fds[0][1];
	p->out = fds[1][0];
	p->err = fds[2][0];
}

/* A payload of n words "bee", for the offload actor's word_count. */
static char *word_count_payload(size_t n)
{
	static const char head[] = "{\"fn\": \"word_count\", \"args\": "
				   "{\"text\": \"";
	size_t len = sizeof(head) - 1 + n * 4 + 8;
	char *json = malloc(len);
	char *q;

	assert_non_null(json);
	memcpy(json, head, sizeof(head) - 1);
	q = json + sizeof(head) - 1;
	for (size_t i = 0; i < n; i++, q += 4)
		memcpy(q, "bee ", 4);
	memcpy(q, "\"}}\n", 5);
	return json;
}

/* A payload too large for the command line (past 128 KiB the kernel
 * refuses one argument) comes from a file with @FILE or from stdin with
 * -, for ask, stream and tell. */
static void test_payload_from_file_and_stdin(void **state)
{
	char config[512], addr[160], file[128], arg[130], bad[256];
	char *ask_stdin[] = {"actorflow", "ask", addr, "call", "-", NULL};
	char *json = word_count_payload(100000); /* 400 kB */
	size_t len = strlen(json);
	proc n, c;
	result r;
	int in;

	(void)state;
	assert_true(len > 200 * 1000);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"ipc://big.sock\", \"ipc_dir\": "
		 "\"%s/sock\", \"grace_ms\": 100, \"actors\": [{\"type\": "
		 "\"offload\", \"name\": \"pool\"}]}",
		 dir);
	node_start(&n, "big", config);
	snprintf(addr, sizeof(addr), "ipc://%s/sock/big.sock#pool", dir);
	snprintf(file, sizeof(file), "%s/big.json", dir);
	snprintf(arg, sizeof(arg), "@%s", file);
	write_file(file, json);

	run(&r, "ask", addr, "call", arg, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "100000\n");
	run(&r, "stream", addr, "call", arg, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "100000\n");
	run(&r, "tell", addr, "call", arg, NULL);
	assert_int_equal(r.code, 0);

	/* stdin, from a pipe the command reads as it is written. */
	spawn_with_stdin(&c, ask_stdin, &in);
	for (size_t off = 0; off < len;) {
		ssize_t k = write(in, json + off, len - off);
		assert_true(k > 0);
		off += (size_t)k;
	}
	close(in);
	memset(&r, 0, sizeof(r));
	finish(&c, &r);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "100000\n");

	/* What cannot be read, or is not JSON: exit 2, nothing sent. */
	snprintf(bad, sizeof(bad), "@%s/none.json", dir);
	run(&r, "ask", addr, "call", bad, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "cannot read "));
	assert_non_null(strstr(r.err, "none.json: No such file"));
	write_file(file, "{\"fn\": ");
	run(&r, "tell", addr, "call", arg, NULL);
	assert_int_equal(r.code, 2);
	snprintf(bad, sizeof(bad), "bad JSON in %s: line 1, column", file);
	assert_non_null(strstr(r.err, bad));
	spawn_with_stdin(&c, ask_stdin, &in);
	assert_int_equal(write(in, "[1,", 3), 3);
	close(in);
	memset(&r, 0, sizeof(r));
	finish(&c, &r);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "bad JSON on stdin: "));
	{
		/* A NUL byte would hide what follows it from the parser. */
		FILE *f = fopen(file, "w");
		assert_non_null(f);
		assert_int_equal(fwrite("{}\0[", 1, 4, f), 4);
		fclose(f);
	}
	run(&r, "ask", addr, "call", arg, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "holds a NUL byte"));

	/* A stream that fails with a code af_stream_next has a meaning for
	 * (AF_EAGAIN) is named by the error's own code, not AF_EREMOTE. */
	run(&r, "stream", addr, "call",
	    "{\"fn\": \"fail\", \"args\": {\"code\": 6, \"message\": "
	    "\"busy\"}}",
	    NULL);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.err, "error: AF_EAGAIN: busy"));
	free(json);
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

static void test_stats(void **state)
{
	char node_addr[160];
	proc n;
	result r;

	(void)state;
	node_start(&n, "rag", rag_config);
	run(&r, "ask", addr_retrieval, "stats", NULL);
	assert_int_equal(r.code, 0);
	/* One actor: its counters, the stats request itself not counted. */
	run(&r, "stats", addr_retrieval, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(r.out, "{\"name\":\"retrieval\","
				      "\"type\":\"retrieval\",\"tells\":0,"
				      "\"requests\":1,\"errors\":0,"
				      "\"in_flight\":0,\"mailbox_depth\":0,"
				      "\"answered\":1,\"remote_peers\":0,"
				      "\"latency_us\":{\"p50\":"));
	/* The node: every actor, and the system's counters. */
	snprintf(node_addr, sizeof(node_addr), "ipc://%s", sock_path);
	run(&r, "stats", node_addr, NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"system\":{\"dropped\":0,"));
	assert_non_null(strstr(r.out, "\"name\":\"query\""));
	assert_non_null(strstr(r.out, "\"name\":\"chat\""));
	strcat(node_addr, "#");
	run(&r, "stats", node_addr, NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "\"actors\":["));
	/* Usage errors, and a node that is not there. */
	run(&r, "stats", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "stats", "chat", NULL);
	assert_int_equal(r.code, 2);
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
	/* Its socket file went with it: exit 6 at once. */
	run(&r, "stats", "--timeout", "20000", addr_retrieval, NULL);
	assert_int_equal(r.code, 6);
	assert_true(r.ms < 10000);
}

static void test_tcp_loopback(void **state)
{
	unsigned port = test_free_port();
	char config[512];
	char addr[128];
	proc n;
	result r;

	(void)state;
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\", \"grace_ms\": 100,"
		 " \"actors\": [{\"type\": \"offload\", \"name\": \"pool\","
		 " \"config\": {\"workers\": 1}}]}",
		 port);
	node_start(&n, "tcp", config);
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%u#pool", port);
	run(&r, "ask", addr, "stats", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"workers\":1,"));
	run(&r, "ask", addr, "call", "{\"fn\": \"nothing\"}", NULL);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.err, "error: AF_ENOTFOUND"));
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

static void test_config_errors(void **state)
{
	result r;
	char want[320];
	char config[512];

	(void)state;
	node_refused(&r, "syntax",
		     "{\"endpoint\": \"ipc://n.sock\",\n"
		     " \"ipc_dir\": \"/tmp\",\n"
		     " \"actors\": [{\"type\": \"chat\"},]\n"
		     "}\n");
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want), "%s/syntax.json:3:", dir);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "invalid JSON"));

	node_refused(&r, "typo",
		     "{\"endpoint\": \"ipc://n.sock\",\n"
		     " \"ipc_dir\": \"/tmp/x\",\n"
		     " \"actors\": [\n"
		     "  {\"type\": \"chat\"},\n"
		     "  {\"type\": \"retrieval\",\n"
		     "   \"config\": {\"chunk_sise\": 64}}]}\n");
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s/typo.json:6: actors[1].config: "
		 "unknown key \"chunk_sise\"",
		 dir);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "chunk_size"));

	/* A key given twice: the second would be passed over. */
	node_refused(&r, "twice",
		     "{\"endpoint\": \"ipc://a.sock\",\n"
		     " \"ipc_dir\": \"/tmp/x\",\n"
		     " \"actors\": [{\"type\": \"gather\"}],\n"
		     " \"endpoint\": \"ipc://b.sock\"}\n");
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s/twice.json:4: key \"endpoint\" given twice (also on "
		 "line 1)",
		 dir);
	assert_non_null(strstr(r.err, want));

	node_refused(&r, "type",
		     "{\"endpoint\": \"ipc://n.sock\", \"ipc_dir\": \"/x\",\n"
		     " \"actors\": [{\"type\": \"chatt\"}]}");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, ":2: actors[0].type: unknown actor "
				      "type \"chatt\""));

	node_refused(&r, "top",
		     "{\"endpiont\": \"ipc:///x/n.sock\", "
		     "\"actors\": [{\"type\": \"chat\"}]}");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "unknown key \"endpiont\""));

	node_refused(&r, "kind",
		     "{\"endpoint\": \"ipc:///x/n.sock\",\n"
		     " \"actors\": [{\"type\": \"query\",\n"
		     "  \"config\": {\"top_k\": \"3\"}}]}");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, ":3: actors[0].config.top_k: expected "
				      "a non-negative integer (0: the "
				      "default), got a string"));

	node_refused(&r, "public",
		     "{\"endpoint\": \"tcp://0.0.0.0:5555\", "
		     "\"actors\": [{\"type\": \"gather\"}]}");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "allow_public"));

	node_refused(&r, "nothing", "{\"actors\": [{\"type\": \"gather\"}]}");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "nothing is exported"));

	run(&r, "node", "--config", "/nonexistent/af.json", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "/nonexistent/af.json: No such file"));
	run(&r, "node", NULL);
	assert_int_equal(r.code, 2);

	/* What an actor's init refuses is refused as the file is read,
	 * naming the file, the line and the key. */
	{
		static const struct {
			const char *type, *config, *want;
		} bad[] = {
			{"retrieval",
			 "{\"chunk_size\": 10,\n \"chunk_overlap\": 20}",
			 ":3: actors[0].config.chunk_overlap: 20 must be below "
			 "chunk_size (10)"},
			{"retrieval", "{\"chunk_overlap\": 1024}",
			 ":2: actors[0].config.chunk_overlap: 1024 must be "
			 "below chunk_size (1024, the default)"},
			{"retrieval", "{\"top_k\": 9,\n \"max_top_k\": 4}",
			 ":2: actors[0].config.top_k: 9 is above max_top_k "
			 "(4)"},
			{"retrieval", "{\"max_top_k\": 2000000000}",
			 ":2: actors[0].config.max_top_k: 2000000000 is above "
			 "1073741823"},
			{"retrieval", "{\"chunk_size\": -5}",
			 ":2: actors[0].config.chunk_size: expected a "
			 "non-negative integer (0: the default), got -5"},
			{"gather", "{\"remote_targets\": \"yes\"}",
			 ":2: actors[0].config.remote_targets: expected true "
			 "or false, got a string"},
			{"offload", "{\"workers\": -1}",
			 ":2: actors[0].config.workers: expected a "
			 "non-negative integer (0: the default), got -1"},
			{"offload", "{\"queue_capacity\": -2}",
			 ":2: actors[0].config.queue_capacity: expected"},
			{"query", "{\"context_words\": -1}",
			 ":2: actors[0].config.context_words: expected"},
			{"query", "{\"timeout_ms\": -1}",
			 ":2: actors[0].config.timeout_ms: expected"},
			{"query", "{\"qa_template\": \"Q: {query_str}\"}",
			 ":2: actors[0].config.qa_template: the template has "
			 "no {context_str}"},
			{"query",
			 "{\"refine_template\": \"{query_str} {context_str}\"}",
			 ":2: actors[0].config.refine_template: the template "
			 "has no {existing_answer}"},
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(config, sizeof(config),
				 "{\"endpoint\": \"ipc://n.sock\", "
				 "\"ipc_dir\": \"%s/s2\", \"actors\": [\n"
				 " {\"type\": \"%s\", \"config\": %s}]}",
				 dir, bad[i].type, bad[i].config);
			node_refused(&r, "init", config);
			snprintf(want, sizeof(want), "%s/init.json%s", dir,
				 bad[i].want);
			if (r.code != 2 || strstr(r.err, want) == NULL)
				fail_msg("%s: exit %d, '%s' lacks '%s'",
					 bad[i].config, r.code, r.err, want);
		}
	}

	/* A db_path in a folder that is not there: the node names the
	 * actor, the key and the value before anything starts. */
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"ipc://n.sock\", \"ipc_dir\": \"%s/s2\","
		 " \"actors\": [{\"type\": \"retrieval\", \"name\": \"r\","
		 " \"config\": {\"db_path\": \"%s/none/x.db\"}}]}",
		 dir, dir);
	node_refused(&r, "db", config);
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "actor 'r' (retrieval): db_path %s/none/x.db: cannot open: "
		 "%s/none: No such file or directory",
		 dir, dir);
	if (strstr(r.err, want) == NULL)
		fail_msg("'%s' lacks '%s'", r.err, want);
	/* A file that is not a database: the code, and the key. */
	snprintf(want, sizeof(want), "%s/not.db", dir);
	write_file(want, "this is not an SQLite database, not at all, no, "
			 "it is text and nothing but text");
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"ipc://n.sock\", \"ipc_dir\": \"%s/s2\","
		 " \"actors\": [{\"type\": \"retrieval\", \"name\": \"r\","
		 " \"config\": {\"db_path\": \"%s\"}}]}",
		 dir, want);
	node_refused(&r, "db", config);
	assert_int_equal(r.code, 2);
	/* The actor's own words come through af_spawn: the path, and
	 * SQLite's reason. */
	assert_non_null(strstr(r.err, "actor 'r' (retrieval) did not start: "
				      "AF_EIO: retrieval: db_path "));
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "file is not a database"));
	assert_int_equal(unlink(want), 0);

	/* A socket directory others can write to is refused. */
	snprintf(want, sizeof(want), "%s/shared", dir);
	assert_int_equal(mkdir(want, 0700), 0);
	assert_int_equal(chmod(want, 0777), 0);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"ipc://n.sock\", \"ipc_dir\": \"%s\","
		 " \"actors\": [{\"type\": \"gather\"}]}",
		 want);
	node_refused(&r, "shared", config);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "is not private"));
}

/* The config reader on its own: endpoints as the node will bind them. */
static void test_config_endpoints(void **state)
{
	cli_node_config c;
	char err[512];

	(void)state;
	assert_int_equal(
		cli_node_config_parse(
			&c,
			"{\"endpoint\": \"tcp://:7000\", \"ipc_dir\": "
			"\"/r/af/\","
			" \"actors\": [{\"type\": \"chat\", \"name\": \"c\","
			" \"export\": \"ipc://c.sock\", \"mailbox_capacity\": "
			"9,"
			" \"config\": {\"provider\": \"ollama\", \"model\": "
			"\"m\", \"temperature\": 0.5, \"timeout_ms\": 1500}},"
			" {\"type\": \"gather\", \"config\": {\"concurrency\": "
			"4}}]}",
			"t.json", err, sizeof(err)),
		AF_OK);
	assert_string_equal(c.endpoint, "tcp://127.0.0.1:7000");
	assert_string_equal(c.actors[0].export_endpoint, "ipc:///r/af/c.sock");
	assert_string_equal(c.actors[0].name, "c");
	assert_int_equal(c.actors[0].mailbox_capacity, 9);
	assert_string_equal(c.actors[0].cfg.chat.provider, "ollama");
	assert_string_equal(c.actors[0].cfg.chat.model, "m");
	assert_true(c.actors[0].cfg.chat.temperature == 0.5);
	assert_int_equal(c.actors[0].cfg.chat.timeout_ms, 1500);
	assert_string_equal(c.actors[1].name, "gather");
	assert_int_equal(c.actors[1].cfg.gather.concurrency, 4);
	assert_int_equal(c.grace_ms, 5000);
	cli_node_config_free(&c);

	assert_int_equal(
		cli_node_config_parse(&c,
				      "{\"endpoint\": \"tcp://*:7000\", "
				      "\"allow_public\": true,"
				      " \"actors\": [{\"type\": \"gather\"}]}",
				      "t.json", err, sizeof(err)),
		AF_OK);
	assert_string_equal(c.endpoint, "tcp://*:7000");
	cli_node_config_free(&c);

	static const char *const refused[][2] = {
		{"{\"endpoint\": \"ipc://rel.sock\", \"actors\": [{\"type\": "
		 "\"gather\"}]}",
		 "relative path"},
		{"{\"endpoint\": \"tcp://127.0.0.1:*\", \"actors\": "
		 "[{\"type\": \"gather\"}]}",
		 "the port must be"},
		{"{\"endpoint\": \"tcp://[::]:80\", \"actors\": [{\"type\": "
		 "\"gather\"}]}",
		 "allow_public"},
		{"{\"endpoint\": \"udp://x:1\", \"actors\": [{\"type\": "
		 "\"gather\"}]}",
		 "must start with ipc:// or tcp://"},
		{"{\"endpoint\": \"ipc:///x\", \"actors\": [{\"type\": "
		 "\"gather\"}, {\"type\": \"gather\"}]}",
		 "\"gather\" is taken by actors[0]"},
		{"{\"endpoint\": \"ipc:///x\", \"actors\": [{\"type\": "
		 "\"chat\", \"config\": {\"provider\": \"gpt\"}}]}",
		 "unknown value \"gpt\""},
		{"{\"endpoint\": \"ipc:///x\", \"actors\": []}",
		 "non-empty array"},
		{"{\"endpoint\": \"ipc:///x\", \"grace_ms\": -1, \"actors\": "
		 "[{\"type\": \"gather\"}]}",
		 "grace_ms"},
		{"{\"endpoint\": \"ipc:///x\", \"actors\": [{\"type\": "
		 "\"gather\", \"name\": \"a#b\"}]}",
		 "not an actor name"},
		{"[1]", "expected an object"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(cli_node_config_parse(&c, refused[i][0],
						       "t.json", err,
						       sizeof(err)),
				 AF_EINVAL);
		if (strstr(err, refused[i][1]) == NULL)
			fail_msg("%s: '%s' lacks '%s'", refused[i][0], err,
				 refused[i][1]);
		cli_node_config_free(&c);
	}
}

/* Adds a host to the list of those wrongly taken. */
static void bypass(char *list, size_t cap, const char *key, const char *host)
{
	size_t n = strlen(list);

	snprintf(list + n, cap - n, " %s:%s", key, host);
}

/* Without "allow_public", a node binds tcp on loopback only, whatever the
 * spelling of the host; anything else is refused when the config is read,
 * before anything is bound (so no test here binds beyond loopback). */
static void test_config_loopback_only(void **state)
{
	static const char *const loopback[][2] = {
		{"127.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"},
		{"0x7f000001", "127.0.0.1"},
		{"2130706433", "127.0.0.1"},
		{"0177.0.0.1", "127.0.0.1"},
		{"127.3.2.1", "127.3.2.1"},
		{"localhost", "127.0.0.1"},
		{"LocalHost", "127.0.0.1"},
		{"[::1]", "[::1]"},
		{"::1", "[::1]"},
		{"[0:0:0:0:0:0:0:1]", "[::1]"},
		{"[::ffff:127.0.0.1]", "127.0.0.1"},
	};
	/* Every interface, spelt many ways, and hosts that are not
	 * loopback: addresses, interface names, names. */
	static const char *const wildcard[] = {
		"0",
		"0.0.0.00",
		"0x0",
		"0.0",
		"00000",
		"[::]",
		"::",
		"[0:0:0:0:0:0:0:0]",
		"[::ffff:0.0.0.0]",
		"*",
	};
	static const char *const other[] = {
		"eth0",          "lo",
		"192.168.1.10",  "10.0.0.1",
		"0x0a000001",    "[fe80::1%lo]",
		"[2001:db8::1]", "127.0.0.256",
		"example.org",   "1.2.3.4;127.0.0.1",
	};
	cli_node_config c;
	char text[512], err[512], want[256];
	char passed[4096] = "";
	result r;

	(void)state;
	for (size_t i = 0; i < sizeof(wildcard) / sizeof(wildcard[0]); i++) {
		/* As the endpoint and as an actor's export. */
		for (int as_export = 0; as_export < 2; as_export++) {
			snprintf(text, sizeof(text),
				 as_export
					 ? "{\"endpoint\": \"ipc:///x\", "
					   "\"actors\": [{\"type\": "
					   "\"gather\", \"export\": "
					   "\"tcp://%s:47123\"}]}"
					 : "{\"endpoint\": \"tcp://%s:47123\", "
					   "\"actors\": [{\"type\": "
					   "\"gather\"}]}",
				 wildcard[i]);
			snprintf(want, sizeof(want),
				 "t.json:1: %s: \"tcp://%s:47123\" listens on "
				 "every interface; set \"allow_public\"",
				 as_export ? "actors[0].export" : "endpoint",
				 wildcard[i]);
			if (cli_node_config_parse(&c, text, "t.json", err,
						  sizeof(err)) != AF_EINVAL ||
			    strstr(err, want) == NULL)
				bypass(passed, sizeof(passed),
				       as_export ? "export" : "endpoint",
				       wildcard[i]);
			cli_node_config_free(&c);
		}
	}
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		snprintf(text, sizeof(text),
			 "{\"endpoint\": \"tcp://%s:47123\", \"actors\": "
			 "[{\"type\": \"gather\"}]}",
			 other[i]);
		snprintf(want, sizeof(want),
			 "t.json:1: endpoint: \"tcp://%s:47123\" is not a "
			 "loopback address",
			 other[i]);
		if (cli_node_config_parse(&c, text, "t.json", err,
					  sizeof(err)) != AF_EINVAL ||
		    strstr(err, want) == NULL ||
		    strstr(err, "\"allow_public\": true") == NULL ||
		    strstr(err, "\"curve\"") == NULL)
			bypass(passed, sizeof(passed), "endpoint", other[i]);
		cli_node_config_free(&c);
	}
	if (passed[0] != '\0')
		fail_msg("not refused as they should be:%s", passed);
	/* Loopback, in any spelling, is bound as its plain address. */
	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		snprintf(text, sizeof(text),
			 "{\"endpoint\": \"tcp://%s:47123\", \"actors\": "
			 "[{\"type\": \"gather\", \"export\": "
			 "\"tcp://%s:47124\"}]}",
			 loopback[i][0], loopback[i][0]);
		if (cli_node_config_parse(&c, text, "t.json", err,
					  sizeof(err)) != AF_OK)
			fail_msg("%s refused: %s", loopback[i][0], err);
		/* The plain address is bound, not the text. */
		snprintf(want, sizeof(want), "tcp://%s:47123", loopback[i][1]);
		assert_string_equal(c.endpoint, want);
		snprintf(want, sizeof(want), "tcp://%s:47124", loopback[i][1]);
		assert_string_equal(c.actors[0].export_endpoint, want);
		cli_node_config_free(&c);
	}
	/* "allow_public" lets all of them through, as written. */
	snprintf(text, sizeof(text),
		 "{\"endpoint\": \"tcp://0:47123\", \"allow_public\": true,"
		 " \"actors\": [{\"type\": \"gather\", \"export\": "
		 "\"tcp://eth0:47124\"}]}");
	assert_int_equal(
		cli_node_config_parse(&c, text, "t.json", err, sizeof(err)),
		AF_OK);
	assert_string_equal(c.endpoint, "tcp://0:47123");
	assert_string_equal(c.actors[0].export_endpoint, "tcp://eth0:47124");
	cli_node_config_free(&c);
	/* A flow's exports are loopback only too. */
	snprintf(want, sizeof(want), "%s/flow_public.json", dir);
	write_file(want, "{\"actors\": [{\"type\": \"gather\", \"export\": "
			 "\"tcp://0x0:47123\"}],\n \"steps\": [{\"do\": "
			 "\"ask\", \"to\": \"gather\", \"type\": \"x\"}]}");
	run(&r, "run", want, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "actors[0].export: \"tcp://0x0:47123\" "
				      "listens on every interface"));

	/* The command: exit 2, the file, the key and the endpoint named,
	 * nothing served. */
	node_refused(&r, "public0",
		     "{\"endpoint\": \"tcp://0:47123\",\n"
		     " \"actors\": [{\"type\": \"gather\"}]}");
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s/public0.json:1: endpoint: \"tcp://0:47123\" listens on "
		 "every interface; set \"allow_public\": true",
		 dir);
	assert_non_null(strstr(r.err, want));
	node_refused(&r, "eth0",
		     "{\"endpoint\": \"ipc:///nonexistent/n.sock\",\n"
		     " \"actors\": [{\"type\": \"gather\",\n"
		     "   \"export\": \"tcp://eth0:47123\"}]}");
	assert_int_equal(r.code, 2);
	snprintf(want, sizeof(want),
		 "%s/eth0.json:3: actors[0].export: \"tcp://eth0:47123\" is "
		 "not a loopback address",
		 dir);
	assert_non_null(strstr(r.err, want));
}

/* ---- CURVE: keygen, a node with "curve", clients with and without keys */

/* `actorflow keygen NAME --dir DIR`: the public key on stdout, the files
 * with their modes. */
static void curve_keygen(const char *kdir, const char *name)
{
	char path[256];
	struct stat st;
	result r;

	run(&r, "keygen", name, "--dir", kdir, NULL);
	if (r.code != 0)
		fail_msg("keygen %s: %s", name, r.err);
	assert_int_equal(strlen(r.out), 41);
	snprintf(path, sizeof(path), "%s/%s.key_secret", kdir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/%s.key", kdir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_curve_keygen_and_ask(void **state)
{
	char kdir[128], cdir[128], config[1024], addr[128];
	char node_pub[200], client_sec[200], client_pub[200], other_sec[200];
	unsigned port = test_free_port();
	proc n;
	result r;

	(void)state;
	snprintf(kdir, sizeof(kdir), "%s/keys", dir);
	snprintf(cdir, sizeof(cdir), "%s/keys/clients", dir);
	curve_keygen(kdir, "node");
	curve_keygen(cdir, "client");
	curve_keygen(kdir, "other");
	/* Never overwritten. */
	run(&r, "keygen", "node", "--dir", kdir, NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "not overwritten"));
	run(&r, "keygen", NULL);
	assert_int_equal(r.code, 2);

	snprintf(node_pub, sizeof(node_pub), "%s/node.key", kdir);
	snprintf(client_sec, sizeof(client_sec), "%s/client.key_secret", cdir);
	snprintf(client_pub, sizeof(client_pub), "%s/client.key", cdir);
	snprintf(other_sec, sizeof(other_sec), "%s/other.key_secret", kdir);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\", \"grace_ms\": 100,\n"
		 " \"curve\": {\"secret_key_file\": \"%s/node.key_secret\",\n"
		 "           \"allowed_keys_dir\": \"%s\"},\n"
		 " \"actors\": [{\"type\": \"offload\", \"name\": \"pool\","
		 " \"config\": {\"workers\": 1}}]}",
		 port, kdir, cdir);
	node_start(&n, "curve", config);
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%u#pool", port);

	/* The allowed key (its secret file, or its .key beside it). */
	run(&r, "ask", "--curve-key", client_sec, "--server-key", node_pub,
	    addr, "stats", NULL);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "{\"workers\":1,"));
	run(&r, "ask", "--curve-key=", NULL);
	assert_int_equal(r.code, 2);
	run(&r, "ask", "--curve-key", client_pub, "--server-key", node_pub,
	    addr, "stats", NULL);
	assert_int_equal(r.code, 0);

	/* No keys, a key not allowed, the wrong server key: refused well
	 * before the timeout. */
	run(&r, "ask", "--timeout", "20000", addr, "stats", NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "error: AF_EAUTH"));
	assert_true(r.ms < 10000);
	run(&r, "ask", "--timeout", "20000", "--curve-key", other_sec,
	    "--server-key", node_pub, addr, "stats", NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "error: AF_EAUTH"));
	run(&r, "ask", "--timeout", "20000", "--curve-key", client_sec,
	    "--server-key", client_pub, addr, "stats", NULL);
	assert_int_equal(r.code, 1);
	assert_non_null(strstr(r.err, "error: AF_EAUTH"));
	/* One key without the other. */
	run(&r, "ask", "--curve-key", client_sec, addr, "stats", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "go together"));
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

static void test_curve_secret_mode_refused(void **state)
{
	char kdir[128], sec[200], pub[200], config[1024], path[200];
	proc n;
	result r;

	(void)state;
	snprintf(kdir, sizeof(kdir), "%s/keys644", dir);
	curve_keygen(kdir, "node");
	snprintf(sec, sizeof(sec), "%s/node.key_secret", kdir);
	snprintf(pub, sizeof(pub), "%s/node.key", kdir);
	assert_int_equal(chmod(sec, 0644), 0);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\",\n"
		 " \"curve\": {\"secret_key_file\": \"%s\",\n"
		 "           \"allowed_keys\": [\"%s\"]},\n"
		 " \"actors\": [{\"type\": \"gather\"}]}",
		 test_free_port(), sec, pub);
	snprintf(path, sizeof(path), "%s/mode.json", dir);
	write_file(path, config);
	run(&r, "node", "--config", path, NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "mode 0644"));
	assert_non_null(strstr(r.err, "refused"));
	assert_null(strstr(r.out, "ready"));
	/* A client's secret file alike. */
	run(&r, "ask", "--curve-key", sec, "--server-key", pub,
	    "tcp://127.0.0.1:1#x", "stats", NULL);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "mode 0644"));
	/* Back to 0600, the node starts. */
	assert_int_equal(chmod(sec, 0600), 0);
	node_start(&n, "mode", config);
	assert_int_equal(node_stop(&n, SIGTERM, &r), 0);
}

/* With "curve" (only allowed clients get in) a node may bind one address
 * or interface of its machine without "allow_public", as README's example
 * does; every interface still needs "allow_public". The configs are only
 * read: nothing is bound. */
static void test_curve_binds_beyond_loopback(void **state)
{
	static const char *const accepted[] = {"192.0.2.1", "eth0",
					       "[2001:db8::1]"};
	static const char *const wildcard[] = {"0", "0x0", "*", "[::]"};
	char kdir[128], text[1024], err[512];
	cli_node_config c;

	(void)state;
	snprintf(kdir, sizeof(kdir), "%s/keyspub", dir);
	curve_keygen(kdir, "node");
	for (size_t i = 0; i < 7; i++) {
		bool ok = i < 3;
		const char *host = ok ? accepted[i] : wildcard[i - 3];
		char want[128];
		snprintf(text, sizeof(text),
			 "{\"endpoint\": \"tcp://%s:47123\",\n"
			 " \"curve\": {\"secret_key_file\": "
			 "\"%s/node.key_secret\",\n"
			 "           \"allowed_keys\": [\"%s/node.key\"]},\n"
			 " \"actors\": [{\"type\": \"gather\"}]}",
			 host, kdir, kdir);
		snprintf(want, sizeof(want), "tcp://%s:47123", host);
		assert_int_equal(cli_node_config_parse(&c, text, "t.json", err,
						       sizeof(err)),
				 ok ? AF_OK : AF_EINVAL);
		if (ok)
			assert_string_equal(c.endpoint, want);
		else if (strstr(err, "listens on every interface; set "
				     "\"allow_public\"") == NULL)
			fail_msg("%s: %s", host, err);
		cli_node_config_free(&c);
	}
}

/* A query node reaches a retrieval node that speaks CURVE, with the keys
 * of its "remotes". */
static void test_curve_query_to_remote_retrieval(void **state)
{
	char kdir[128], config[2048], addr_r[128], addr_q[128];
	char qsec[200], npub[200], nsec[200], qpub[200];
	unsigned port_r = test_free_port();
	unsigned port_q = test_free_port();
	proc rn, qn;
	result r;

	(void)state;
	snprintf(kdir, sizeof(kdir), "%s/keysq", dir);
	curve_keygen(kdir, "retrieval");
	curve_keygen(kdir, "query");
	curve_keygen(kdir, "me");
	snprintf(nsec, sizeof(nsec), "%s/retrieval.key_secret", kdir);
	snprintf(npub, sizeof(npub), "%s/retrieval.key", kdir);
	snprintf(qsec, sizeof(qsec), "%s/query.key_secret", kdir);
	snprintf(qpub, sizeof(qpub), "%s/query.key", kdir);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\", \"grace_ms\": 100,\n"
		 " \"curve\": {\"secret_key_file\": \"%s\",\n"
		 "           \"allowed_keys\": [\"%s\", \"%s/me.key\"]},\n"
		 " \"actors\": [{\"type\": \"retrieval\"}]}",
		 port_r, nsec, qpub, kdir);
	node_start(&rn, "retr", config);
	snprintf(addr_r, sizeof(addr_r), "tcp://127.0.0.1:%u#retrieval",
		 port_r);
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\", \"grace_ms\": 100,\n"
		 " \"remotes\": [{\"endpoint\": \"tcp://127.0.0.1:%u\",\n"
		 "               \"curve_key\": \"%s\",\n"
		 "               \"server_key\": \"%s\"}],\n"
		 " \"actors\": [{\"type\": \"chat\"},\n"
		 "  {\"type\": \"query\", \"config\": {\"retriever\": \"%s\","
		 " \"timeout_ms\": 10000}}]}",
		 port_q, port_r, qsec, npub, addr_r);
	node_start(&qn, "query", config);
	snprintf(addr_q, sizeof(addr_q), "tcp://127.0.0.1:%u#query", port_q);

	snprintf(config, sizeof(config), "%s/me.key_secret", kdir);
	run(&r, "ask", "--curve-key", config, "--server-key", npub, addr_r,
	    "insert", bees, NULL);
	assert_int_equal(r.code, 0);
	run(&r, "ask", "--timeout", "20000", addr_q, "query",
	    "{\"query\": \"What does the waggle dance give?\"}", NULL);
	if (r.code != 0)
		fail_msg("query: %d %s", r.code, r.err);
	assert_non_null(strstr(r.out, "\"source_nodes\":[{\"id\":\"bees#0\""));
	assert_int_equal(node_stop(&qn, SIGTERM, &r), 0);

	/* Without "remotes" the query node is refused. */
	snprintf(config, sizeof(config),
		 "{\"endpoint\": \"tcp://:%u\", \"grace_ms\": 100,\n"
		 " \"actors\": [{\"type\": \"chat\"},\n"
		 "  {\"type\": \"query\", \"config\": {\"retriever\": \"%s\","
		 " \"timeout_ms\": 10000}}]}",
		 port_q, addr_r);
	node_start(&qn, "query2", config);
	run(&r, "ask", "--timeout", "20000", addr_q, "query",
	    "{\"query\": \"What does the waggle dance give?\"}", NULL);
	assert_int_equal(r.code, 5);
	assert_non_null(strstr(r.err, "AF_EAUTH"));
	assert_int_equal(node_stop(&qn, SIGTERM, &r), 0);
	assert_int_equal(node_stop(&rn, SIGTERM, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_endpoints),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_config_loopback_only),
		cmocka_unit_test(test_ask_retrieval_and_query),
		cmocka_unit_test(test_ask_load_dir_progress),
		cmocka_unit_test(test_stream_chat),
		cmocka_unit_test(test_remote_error_timeout_bad_input),
		cmocka_unit_test(test_node_killed_mid_stream),
		cmocka_unit_test(test_sigterm_lets_work_finish),
		cmocka_unit_test(test_ipc_path_not_a_socket),
		cmocka_unit_test(test_signal_while_starting),
		cmocka_unit_test(test_tcp_loopback),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_payload_from_file_and_stdin),
		cmocka_unit_test(test_nobody_listening),
		cmocka_unit_test(test_curve_keygen_and_ask),
		cmocka_unit_test(test_curve_secret_mode_refused),
		cmocka_unit_test(test_curve_binds_beyond_loopback),
		cmocka_unit_test(test_curve_query_to_remote_retrieval),
	};

	/* A closed pipe is an error to see, not a signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
