/* Two real processes: a node exports an actor on an ipc:// endpoint and
 * this process requests it with the same API it uses in-process; garbage,
 * oversized messages, a node killed mid-request, a stale socket file;
 * streams across processes, and either end of a stream dying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "envelope.h"
#include "peer.h"
#include "testlib.h"

extern char **environ;

typedef struct node {
	pid_t pid;
	FILE *out; /* the node's stdout */
	int in;    /* the node's stdin */
} node;

static char dir[64];
static char endpoint[160];
static char sock_path[128];

static char sys_endpoint[160];
static char sys_path[128];

/* Starts a node and reads its first line into line. With sys, the node
 * also exports its whole system at sys_endpoint. */
static void node_start_with(node *n, const char *max, bool sys, char *line,
			    size_t cap)
{
	int to_child[2];
	int from_child[2];
	posix_spawn_file_actions_t fa;
	char *argv[] = {TEST_NODE_PATH, endpoint, (char *)max,
			sys ? sys_endpoint : NULL, NULL};

	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, to_child[1]);
	posix_spawn_file_actions_addclose(&fa, from_child[0]);
	assert_int_equal(
		posix_spawn(&n->pid, TEST_NODE_PATH, &fa, NULL, argv, environ),
		0);
	posix_spawn_file_actions_destroy(&fa);
	close(to_child[0]);
	close(from_child[1]);
	n->in = to_child[1];
	n->out = fdopen(from_child[0], "r");
	assert_non_null(fgets(line, (int)cap, n->out));
}

static void node_start(node *n, const char *max, char *line, size_t cap)
{
	node_start_with(n, max, false, line, cap);
}

/* Closes the node's stdin and returns its exit status. */
static int node_stop(node *n)
{
	int status = -1;

	close(n->in);
	waitpid(n->pid, &status, 0);
	fclose(n->out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int setup(void **state)
{
	strcpy(dir, "/tmp/af-test-ipc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/node.sock", dir);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", sock_path);
	snprintf(sys_path, sizeof(sys_path), "%s/system.sock", dir);
	snprintf(sys_endpoint, sizeof(sys_endpoint), "ipc://%s", sys_path);
	return 0;
}

static int teardown(void **state)
{
	unlink(sock_path);
	unlink(sys_path);
	rmdir(dir);
	return 0;
}

static void request_ok(af_client *c, const char *addr)
{
	af_payload *p = test_payload_n(7);
	af_msg *reply = NULL;

	assert_int_equal(af_client_request(c, addr, "echo", p, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", 0), 7);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* Asks the echo actor at addr whether the request came from its process. */
static bool is_local(af_client *c, const char *addr)
{
	af_msg *reply = NULL;
	bool local;

	assert_int_equal(
		af_client_request(c, addr, "where", NULL, 5000, &reply), AF_OK);
	local = af_value_get_bool(af_msg_payload(reply), "local", true);
	af_msg_destroy(&reply);
	return local;
}

static void test_request_across_processes(void **state)
{
	node n;
	char line[64];
	char addr[200];
	af_client *c = NULL;
	af_msg *reply = NULL;
	const char *text;

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	request_ok(c, endpoint);
	snprintf(addr, sizeof(addr), "%s#echo", endpoint);
	request_ok(c, addr);

	snprintf(addr, sizeof(addr), "%s#nobody", endpoint);
	assert_int_equal(af_client_request(c, addr, "echo", NULL, 5000, &reply),
			 AF_ENOTFOUND);
	assert_int_equal(af_msg_error(reply, &text), AF_ENOTFOUND);
	assert_non_null(strstr(text, "nobody"));
	af_msg_destroy(&reply);

	/* A standalone client reaches no local names. */
	assert_int_equal(
		af_client_request(c, "echo", "echo", NULL, 100, &reply),
		AF_ENOTFOUND);

	/* Over the node's 1 MiB limit: a clear error, and it keeps serving. */
	{
		af_payload *big = test_payload_bin(2u << 20);
		assert_int_equal(af_client_request(c, endpoint, "echo", big,
						   5000, &reply),
				 AF_EMSGSIZE);
		assert_int_equal(af_msg_error(reply, &text), AF_EMSGSIZE);
		assert_non_null(strstr(text, "exceeds the limit"));
		af_msg_destroy(&reply);
		af_payload_destroy(&big);
	}
	request_ok(c, endpoint);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
	/* A node that stops removes its socket file. */
	assert_int_equal(access(sock_path, F_OK), -1);
}

static void test_whole_system_on_one_endpoint(void **state)
{
	node n;
	char line[64];
	char addr[200];
	af_client *c = NULL;
	af_msg *reply = NULL;
	const char *text;

	node_start_with(&n, "1048576", true, line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	snprintf(addr, sizeof(addr), "%s#echo", sys_endpoint);
	request_ok(c, addr);
	/* Forwarded by the gateway, a request still reads as one from
	 * another process: no actor may take pointers from it. */
	assert_false(is_local(c, addr));
	assert_false(is_local(c, endpoint));
	/* Errors come back through the gateway with their code and text. */
	assert_int_equal(af_client_request(c, addr, "fail", NULL, 5000, &reply),
			 AF_EUSER + 1);
	assert_int_equal(af_msg_error(reply, &text), AF_EUSER + 1);
	assert_string_equal(text, "asked to fail");
	af_msg_destroy(&reply);
	/* The requester's deadline carries over to the forwarded request. */
	assert_int_equal(af_client_request(c, addr, "hang", NULL, 100, &reply),
			 AF_ETIMEDOUT);
	/* Whichever deadline fired first, the gateway's (an error reply) or
	 * this client's (none), the outcome is a timeout. */
	af_msg_destroy(&reply);
	snprintf(addr, sizeof(addr), "%s#nobody", sys_endpoint);
	assert_int_equal(af_client_request(c, addr, "echo", NULL, 5000, &reply),
			 AF_ENOTFOUND);
	assert_int_equal(af_msg_error(reply, &text), AF_ENOTFOUND);
	assert_non_null(strstr(text, "nobody"));
	af_msg_destroy(&reply);
	assert_int_equal(
		af_client_request(c, sys_endpoint, "echo", NULL, 5000, &reply),
		AF_EADDR);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
	assert_int_equal(access(sys_path, F_OK), -1);
}

static void test_garbage_is_survived(void **state)
{
	node n;
	char line[64];
	af_client *c = NULL;
	void *zctx = zmq_ctx_new();
	void *raw = zmq_socket(zctx, ZMQ_DEALER);
	int linger = 0;
	unsigned char junk[256];
	static const unsigned char wrong_version[] = {
		0x98, 0x09, 0x02, 0x01, 0x00, 0xa1, 'x', 0x00, 0xc0, 0xc0};
	static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff,
						   0xff};

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_connect(raw, endpoint), 0);
	srand(7);
	for (int i = 0; i < 500; i++) {
		size_t len = (size_t)(rand() % (int)sizeof(junk));
		for (size_t j = 0; j < len; j++)
			junk[j] = (unsigned char)rand();
		/* Some as several frames, which no sender of ours makes. */
		assert_true(zmq_send(raw, junk, len,
				     i % 7 == 0 ? ZMQ_SNDMORE : 0) >= 0);
	}
	assert_true(zmq_send(raw, "", 0, 0) >= 0);
	assert_true(zmq_send(raw, wrong_version, sizeof(wrong_version), 0) >=
		    0);
	assert_true(zmq_send(raw, huge_array, sizeof(huge_array), 0) >= 0);
	/* Batches: one holding a tell, a request (which a batch may not
	 * carry) and a truncated envelope; one claiming more envelopes than
	 * it holds; one whose payload is not an array. */
	{
		static const unsigned char batch[] = {
			0x98, 0x01, 0x09, 0x00, 0x00, 0xc0, 0x00, 0xc0, /* */
			0x93,                                           /* */
			0x98, 0x01, 0x01, 0x00, 0x00, 0xa1, 'x',  0x00,
			0xc0, 0xc0, /* a tell */
			0x98, 0x01, 0x02, 0x05, 0x00, 0xa4, 'e',  'c',
			'h',  'o',  0x00, 0xc0, 0xc0, /* a request */
			0x98, 0x01, 0x01, 0x00};      /* cut short */
		static const unsigned char liar[] = {
			0x98, 0x01, 0x09, 0x00, 0x00, 0xc0, 0x00, 0xc0,
			0xdd, 0x7f, 0xff, 0xff, 0xff, 0x98, 0x01, 0x01,
			0x00, 0x00, 0xc0, 0x00, 0xc0, 0xc0};
		static const unsigned char not_array[] = {
			0x98, 0x01, 0x09, 0x00, 0x00, 0xc0, 0x00, 0xc0, 0x2a};
		assert_true(zmq_send(raw, batch, sizeof(batch), 0) >= 0);
		assert_true(zmq_send(raw, liar, sizeof(liar), 0) >= 0);
		assert_true(zmq_send(raw, not_array, sizeof(not_array), 0) >=
			    0);
	}
	zmq_close(raw);
	zmq_ctx_term(zctx);

	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	request_ok(c, endpoint);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
}

/* ---- raw sockets against a system of this process ------------------- */

/* A system of this process whose echo actor is exported at endpoint, and
 * the whole system at sys_endpoint: what it counted is readable here. */
static af_system *raw_target(echo_config *cfg)
{
	af_system *sys = NULL;
	af_system_opts opts = {.max_message_size = 1u << 20};

	assert_int_equal(af_system_new(&sys, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, cfg, NULL),
			 AF_OK);
	assert_int_equal(af_export(sys, "echo", endpoint), AF_OK);
	assert_int_equal(af_system_export(sys, sys_endpoint), AF_OK);
	return sys;
}

/* A DEALER of its own ZeroMQ context connected to ep, as a program in
 * another language would use. */
static void *raw_dealer(void **zctx, const char *ep)
{
	void *raw;
	int linger = 0;

	*zctx = zmq_ctx_new();
	raw = zmq_socket(*zctx, ZMQ_DEALER);
	zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_connect(raw, ep), 0);
	return raw;
}

static void raw_close(void *zctx, void *raw)
{
	zmq_close(raw);
	zmq_ctx_term(zctx);
}

static void raw_send(void *raw, const void *data, size_t len)
{
	assert_int_equal(zmq_send(raw, data, len, 0), (int)len);
}

/* Waits up to timeout_ms for one frame on raw; its length, or -1. */
static int raw_recv(void *raw, void *buf, size_t cap, int timeout_ms)
{
	zmq_pollitem_t item = {.socket = raw, .events = ZMQ_POLLIN};

	if (zmq_poll(&item, 1, timeout_ms) != 1)
		return -1;
	return zmq_recv(raw, buf, cap, 0);
}

/* Receives the answer to request id on raw, which must be an error, and
 * returns its code; its text goes to text. */
static int raw_error(void *raw, uint64_t id, char *text, size_t cap)
{
	unsigned char buf[512];
	int n = raw_recv(raw, buf, sizeof(buf), 5000);
	msgpack_zone zone;
	af__envelope env;
	const char *s;
	size_t len;
	int code;

	assert_true(n > 0);
	assert_true(msgpack_zone_init(&zone, 1024));
	assert_int_equal(
		af__envelope_decode(&env, buf, (size_t)n, SIZE_MAX, &zone),
		AF_OK);
	assert_int_equal(env.kind, AF_KIND_ERROR);
	assert_int_equal(env.id, id);
	assert_int_equal(af__error_read(env.payload, &code, &s, &len), AF_OK);
	snprintf(text, cap, "%.*s", (int)len, s);
	msgpack_zone_destroy(&zone);
	return code;
}

/* A raw echo request on raw (id 99) is answered. */
static void raw_echo_ok(void *raw, const char *to)
{
	unsigned char buf[512];
	unsigned char req[64] = {0x98, 0x01, 0x02, 99,  0x00, 0xa4,
				 'e',  'c',  'h',  'o', 0x00};
	size_t len = 11;
	msgpack_zone zone;
	af__envelope env;
	int n;

	if (to == NULL) {
		req[len++] = 0xc0;
	} else {
		req[len++] = (unsigned char)(0xa0 | strlen(to));
		memcpy(req + len, to, strlen(to));
		len += strlen(to);
	}
	req[len++] = 0x2a;
	raw_send(raw, req, len);
	n = raw_recv(raw, buf, sizeof(buf), 5000);
	assert_true(n > 0);
	assert_true(msgpack_zone_init(&zone, 1024));
	assert_int_equal(
		af__envelope_decode(&env, buf, (size_t)n, SIZE_MAX, &zone),
		AF_OK);
	assert_int_equal(env.kind, AF_KIND_REPLY);
	assert_int_equal(env.id, 99);
	msgpack_zone_destroy(&zone);
}

/* A request the receiver cannot take is answered with an error when its
 * id and way back can be read; what cannot be answered is counted. */
static void test_bad_requests_are_answered(void **state)
{
	/* [2, request, 42, 0, "echo", 0, nil, nil]: a version-2 request. */
	static const unsigned char v2[] = {0x98, 0x02, 0x02, 0x2a, 0x00,
					   0xa4, 'e',  'c',  'h',  'o',
					   0x00, 0xc0, 0xc0};
	/* A version-2 request of another shape: [2, request, 43]. */
	static const unsigned char v2_short[] = {0x93, 0x02, 0x02, 0x2b};
	/* A version-1 request cut short inside its type. */
	static const unsigned char truncated[] = {0x98, 0x01, 0x02, 0x2c,
						  0x00, 0xa4, 'e',  'c'};
	/* A request whose payload is the byte msgpack never uses. */
	static const unsigned char bad_payload[] = {
		0x98, 0x01, 0x02, 0x2d, 0x00, 0xa4, 'e',
		'c',  'h',  'o',  0x00, 0xc0, 0xc1};
	/* Garbage with no id to answer: not msgpack, an envelope cut before
	 * its id, a malformed tell (no answer is due to a tell), a request of
	 * an unknown kind. */
	static const unsigned char no_id[][6] = {
		{0xc1},
		{0x98, 0x01, 0x02},
		{0x98, 0x01, 0x01, 0x00, 0x00, 0xa5},
		{0x98, 0x01, 0x2a, 0x07, 0x00, 0xc1}};
	static const size_t no_id_len[] = {1, 3, 6, 6};
	char text[256];
	unsigned char buf[64];
	af_system_stats stats;
	af_system *sys = raw_target(NULL);
	void *zctx;
	void *raw = raw_dealer(&zctx, endpoint);

	raw_send(raw, v2, sizeof(v2));
	assert_int_equal(raw_error(raw, 42, text, sizeof(text)), AF_EVERSION);
	assert_non_null(strstr(text, "version 2"));
	raw_send(raw, v2_short, sizeof(v2_short));
	assert_int_equal(raw_error(raw, 43, text, sizeof(text)), AF_EVERSION);
	raw_send(raw, truncated, sizeof(truncated));
	assert_int_equal(raw_error(raw, 44, text, sizeof(text)), AF_EPROTO);
	raw_send(raw, bad_payload, sizeof(bad_payload));
	assert_int_equal(raw_error(raw, 45, text, sizeof(text)), AF_EPROTO);
	/* Over the limit: answered as before from its header alone. */
	{
		size_t big = sizeof(v2) + 4 + (1u << 20);
		unsigned char *req = calloc(1, big);
		memcpy(req, v2, sizeof(v2) - 1);
		req[1] = 0x01;
		req[3] = 0x2e;
		req[sizeof(v2) - 1] = 0xc6; /* bin32 */
		req[sizeof(v2) + 1] = 0x10; /* of 1 MiB */
		raw_send(raw, req, big);
		free(req);
		assert_int_equal(raw_error(raw, 46, text, sizeof(text)),
				 AF_EMSGSIZE);
		assert_non_null(strstr(text, "exceeds the limit"));
	}
	for (size_t i = 0; i < sizeof(no_id_len) / sizeof(no_id_len[0]); i++)
		raw_send(raw, no_id[i], no_id_len[i]);
	/* No answer to those; the actor keeps serving. */
	raw_echo_ok(raw, NULL);
	assert_int_equal(raw_recv(raw, buf, sizeof(buf), 100), -1);
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.refused, 5);
	assert_int_equal(stats.dropped, 4);
	raw_close(zctx, raw);

	/* The same through the system gateway. */
	raw = raw_dealer(&zctx, sys_endpoint);
	raw_send(raw, v2, sizeof(v2));
	assert_int_equal(raw_error(raw, 42, text, sizeof(text)), AF_EVERSION);
	raw_send(raw, truncated, sizeof(truncated));
	assert_int_equal(raw_error(raw, 44, text, sizeof(text)), AF_EPROTO);
	raw_send(raw, no_id[0], no_id_len[0]);
	raw_echo_ok(raw, "echo");
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.refused, 7);
	assert_int_equal(stats.dropped, 5);
	raw_close(zctx, raw);
	af_system_destroy(&sys);
}

/* Packs a batch of n "count" tells to (nil when NULL) with msgpack-c, as
 * a sender in another language would: its array of envelopes is array16
 * from 16 elements on. */
static void pack_count_batch(msgpack_sbuffer *sb, int n, const char *to)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, AF_KIND_BATCH);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_nil(&pk);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_nil(&pk);
	msgpack_pack_array(&pk, (size_t)n);
	for (int i = 0; i < n; i++) {
		msgpack_pack_array(&pk, 8);
		msgpack_pack_uint64(&pk, 1);
		msgpack_pack_uint64(&pk, AF_KIND_TELL);
		msgpack_pack_uint64(&pk, 0);
		msgpack_pack_uint64(&pk, 0);
		msgpack_pack_str_with_body(&pk, "count", 5);
		msgpack_pack_uint64(&pk, 0);
		if (to != NULL)
			msgpack_pack_str_with_body(&pk, to, strlen(to));
		else
			msgpack_pack_nil(&pk);
		msgpack_pack_int(&pk, i);
	}
}

static bool count_reaches(atomic_int *count, int n, int timeout_ms)
{
	int64_t end = af__now_ms() + timeout_ms;

	while (atomic_load(count) < n && af__now_ms() < end)
		usleep(1000);
	return atomic_load(count) == n;
}

/* A batch of tells as any msgpack writer packs it (array16 for 16 to
 * 65535 envelopes) delivers every tell, to an exported actor and through
 * the system gateway. */
static void test_batch_of_array16_tells(void **state)
{
	atomic_int count = 0;
	echo_config cfg = {.count = &count};
	af_system *sys = raw_target(&cfg);
	af_system_stats stats;
	msgpack_sbuffer sb;
	void *zctx;
	void *raw = raw_dealer(&zctx, endpoint);

	pack_count_batch(&sb, 20, NULL);
	/* The envelope's 8 header bytes, then the array16 header. */
	assert_int_equal((unsigned char)sb.data[8], 0xdc);
	raw_send(raw, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	raw_echo_ok(raw, NULL);
	assert_true(count_reaches(&count, 20, 5000));
	raw_close(zctx, raw);

	raw = raw_dealer(&zctx, sys_endpoint);
	pack_count_batch(&sb, 20, "echo");
	raw_send(raw, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	raw_echo_ok(raw, "echo");
	assert_true(count_reaches(&count, 40, 5000));
	/* Small batches (fixarray) as before. */
	pack_count_batch(&sb, 3, "echo");
	assert_int_equal((unsigned char)sb.data[8], 0x93);
	raw_send(raw, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	assert_true(count_reaches(&count, 43, 5000));
	raw_close(zctx, raw);
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.dropped, 0);
	af_system_destroy(&sys);
}

/* Sends [1, kind, id, 0, type, 2000, to, 42] on raw, packed with
 * msgpack-c; to is len bytes, any bytes. */
static void raw_send_to(void *raw, af_kind kind, uint64_t id, const char *type,
			const char *to, size_t len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, kind);
	msgpack_pack_uint64(&pk, id);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_str_with_body(&pk, type, strlen(type));
	msgpack_pack_uint64(&pk, 2000);
	msgpack_pack_str_with_body(&pk, to, len);
	msgpack_pack_int(&pk, 42);
	raw_send(raw, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* The system gateway forwards to the actors of its own system, by name.
 * A "to" that is an address is refused with AF_EADDR naming it: the
 * gateway once connected to any ipc:// or tcp:// endpoint a remote
 * requester named (an open relay), and kept each connection (three fds)
 * for the rest of its life. A tell so addressed is dropped and counted. */
static void test_gateway_refuses_addresses(void **state)
{
	atomic_int count = 0;
	echo_config cfg = {.count = &count};
	af_system *sys = raw_target(&cfg);
	af_system_stats before;
	af_system_stats after;
	char to[5][200];
	char text[512];
	void *zctx;
	void *raw = raw_dealer(&zctx, sys_endpoint);

	/* This very process's echo, exported at endpoint, is reachable from
	 * here; through the gateway it is not. */
	snprintf(to[0], sizeof(to[0]), "%s#echo", endpoint);
	snprintf(to[1], sizeof(to[1]), "%s", endpoint);
	snprintf(to[2], sizeof(to[2]), "tcp://127.0.0.1:%u#echo",
		 test_free_port());
	/* A client's inbox, and a name behind a name. */
	snprintf(to[3], sizeof(to[3]), "client#1");
	snprintf(to[4], sizeof(to[4]), "echo#echo");
	for (uint64_t i = 0; i < 5; i++) {
		raw_send_to(raw, AF_KIND_REQUEST, 100 + i, "echo", to[i],
			    strlen(to[i]));
		assert_int_equal(raw_error(raw, 100 + i, text, sizeof(text)),
				 AF_EADDR);
		assert_non_null(strstr(text, to[i]));
	}
	/* A name with a NUL in it is no name either. */
	raw_send_to(raw, AF_KIND_REQUEST, 105, "echo", "echo\0x", 6);
	assert_int_equal(raw_error(raw, 105, text, sizeof(text)), AF_EADDR);

	assert_int_equal(af_system_get_stats(sys, &before), AF_OK);
	raw_send_to(raw, AF_KIND_TELL, 0, "count", to[0], strlen(to[0]));
	/* The gateway takes messages in order: once this is answered, the
	 * tell was handled. */
	raw_echo_ok(raw, "echo");
	assert_int_equal(af_system_get_stats(sys, &after), AF_OK);
	assert_int_equal(after.dropped, before.dropped + 1);
	/* A tell to a name goes through: the gateway forwards it and the
	 * request after it to echo one after the other, on one pipe. */
	raw_send_to(raw, AF_KIND_TELL, 0, "count", "echo", 4);
	raw_echo_ok(raw, "echo");
	assert_int_equal(atomic_load(&count), 1);
	raw_close(zctx, raw);
	af_system_destroy(&sys);
}

typedef struct killer {
	node *n;
	char line[64];
} killer;

static void *kill_when_hung(void *arg)
{
	killer *k = arg;

	if (fgets(k->line, sizeof(k->line), k->n->out) != NULL)
		kill(k->n->pid, SIGKILL);
	return NULL;
}

static void test_peer_death_and_restart(void **state)
{
	node n;
	node again;
	node rival;
	killer k = {.n = &n};
	char line[64];
	af_client *c = NULL;
	af_msg *reply = NULL;
	pthread_t t;
	int64_t start;
	int status;

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	request_ok(c, endpoint);

	/* A second node cannot take a live node's endpoint. */
	node_start(&rival, "1048576", line, sizeof(line));
	assert_int_equal(strncmp(line, "error ", 6), 0);
	assert_int_equal(atoi(line + 6), AF_EEXIST);
	assert_int_equal(node_stop(&rival), 1);

	pthread_create(&t, NULL, kill_when_hung, &k);
	start = af__now_ms();
	assert_int_equal(
		af_client_request(c, endpoint, "hang", NULL, 20000, &reply),
		AF_EPEERDOWN);
	assert_true(af__now_ms() - start < 5000);
	assert_null(reply);
	pthread_join(t, NULL);
	assert_string_equal(k.line, "hung 1\n");
	close(n.in);
	waitpid(n.pid, &status, 0);
	fclose(n.out);
	assert_true(WIFSIGNALED(status));

	/* The killed node left its socket file; a new node replaces it, and
	 * the same client reconnects by itself. */
	assert_int_equal(access(sock_path, F_OK), 0);
	node_start(&again, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	request_ok(c, endpoint);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&again), 0);
}

/* Kills the node and reaps it. */
static void node_kill(node *n)
{
	int status;

	kill(n->pid, SIGKILL);
	waitpid(n->pid, &status, 0);
	close(n->in);
	fclose(n->out);
	assert_true(WIFSIGNALED(status));
}

/* A client idle while its peer process was killed: the disconnect waits
 * unread in its monitor, and must not be taken for the death of the
 * connection to the new process on the same endpoint. */
static void test_first_request_after_restart(void **state)
{
	node n;
	char line[64];
	af_client *c = NULL;

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	request_ok(c, endpoint);
	node_kill(&n);
	/* Time for the client's I/O thread to see the connection go. */
	usleep(200 * 1000);
	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	request_ok(c, endpoint);
	request_ok(c, endpoint);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
}

/* A request sent while the peer process is down fails with AF_EPEERDOWN
 * once the peer had its grace to come back, not at its deadline; when the
 * process comes back, requests go through again. */
static void test_request_while_peer_down(void **state)
{
	node n;
	char line[64];
	af_client *c = NULL;
	af_msg *reply = NULL;
	int64_t start;
	int64_t took;

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	request_ok(c, endpoint);
	node_kill(&n);
	usleep(200 * 1000);
	for (int i = 0; i < 2; i++) {
		start = af__now_ms();
		assert_int_equal(af_client_request(c, endpoint, "echo", NULL,
						   30000, &reply),
				 AF_EPEERDOWN);
		took = af__now_ms() - start;
		assert_null(reply);
		assert_true(took < AF__PEER_DOWN_GRACE_MS + 5000);
	}
	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	request_ok(c, endpoint);
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
}

/* Reads a whole stream of n chunks from addr. */
static void stream_all(af_client *c, const char *addr, int64_t n)
{
	af_payload *args = test_payload_n(n);
	af_stream *s = NULL;
	af_msg *m = NULL;

	assert_int_equal(af_client_stream(c, addr, "stream", args, 20000, &s),
			 AF_OK);
	for (uint64_t i = 1; i <= (uint64_t)n; i++) {
		assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
		assert_int_equal(af_msg_seq(m), i);
		af_msg_destroy(&m);
	}
	assert_int_equal(af_stream_next(s, 10000, &m), AF_EOF);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "count", 0), n);
	af_msg_destroy(&m);
	af_stream_close(&s);
	af_payload_destroy(&args);
}

/* Opens an endless stream at addr, reads a chunk and closes it. */
static void stream_and_close(af_client *c, const char *addr)
{
	af_payload *args = test_payload_n(0);
	af_stream *s = NULL;
	af_msg *m = NULL;

	assert_int_equal(af_client_stream(c, addr, "stream", args, 20000, &s),
			 AF_OK);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
	af_msg_destroy(&m);
	af_stream_close(&s);
	af_payload_destroy(&args);
}

static void test_stream_across_processes(void **state)
{
	node n;
	char line[64];
	char via_gateway[200];
	af_client *c = NULL;

	node_start_with(&n, "1048576", true, line, sizeof(line));
	assert_string_equal(line, "ready\n");
	snprintf(via_gateway, sizeof(via_gateway), "%s#echo", sys_endpoint);
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	/* More chunks than the window: credit must cross the socket too, and
	 * the system gateway relays it. */
	stream_all(c, endpoint, 5000);
	stream_all(c, via_gateway, 5000);

	/* A consumer that closes mid-stream is heard by the producer, also
	 * through the gateway. */
	stream_and_close(c, endpoint);
	assert_non_null(fgets(line, sizeof(line), n.out));
	assert_string_equal(line, "cancelled 1\n");
	stream_and_close(c, via_gateway);
	assert_non_null(fgets(line, sizeof(line), n.out));
	assert_string_equal(line, "cancelled 2\n");
	af_client_destroy(&c);
	assert_int_equal(node_stop(&n), 0);
}

static void test_stream_producer_dies(void **state)
{
	node n;
	char line[64];
	af_client *c = NULL;
	af_stream *s = NULL;
	af_payload *args = test_payload_n(0);
	af_msg *m = NULL;
	int64_t start;
	int status;
	af_err err;

	node_start(&n, "1048576", line, sizeof(line));
	assert_string_equal(line, "ready\n");
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	assert_int_equal(
		af_client_stream(c, endpoint, "stream", args, 60000, &s),
		AF_OK);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
	af_msg_destroy(&m);
	kill(n.pid, SIGKILL);
	start = af__now_ms();
	/* What arrived before the death is read, then the stream fails. */
	do {
		err = af_stream_next(s, 10000, &m);
		af_msg_destroy(&m);
	} while (err == AF_OK);
	assert_int_equal(err, AF_EPEERDOWN);
	assert_true(af__now_ms() - start < 5000);
	af_stream_close(&s);
	af_payload_destroy(&args);
	af_client_destroy(&c);
	close(n.in);
	waitpid(n.pid, &status, 0);
	fclose(n.out);
}

/* Reads one line from fd into line, waiting at most timeout_ms in all.
 * False on a timeout or an end before the newline. */
static bool read_line_within(int fd, char *line, size_t cap, int timeout_ms)
{
	int64_t deadline = af__now_ms() + timeout_ms;
	size_t len = 0;

	line[0] = '\0';
	while (len + 1 < cap) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - af__now_ms();
		char ch;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 ||
		    read(fd, &ch, 1) != 1)
			return false;
		line[len++] = ch;
		line[len] = '\0';
		if (ch == '\n')
			return true;
	}
	return false;
}

static void test_stream_consumer_dies(void **state)
{
	af_system *sys = NULL;
	test_signal cancelled;
	test_signal blocked;
	stream_watch watch = {.cancelled = &cancelled, .blocked = &blocked};
	echo_config cfg = {.streams = &watch};
	char *argv[] = {TEST_NODE_PATH, "--consume", endpoint, NULL};
	posix_spawn_file_actions_t fa;
	int to_child[2];
	int from_child[2];
	char line[64];
	pid_t pid;
	int status;

	test_signal_init(&cancelled);
	test_signal_init(&blocked);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "producer", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_export(sys, "producer", endpoint), AF_OK);

	/* The consumer reads until its standard input closes: it gets one
	 * of its own, not this process's (which may be at its end). */
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, to_child[1]);
	posix_spawn_file_actions_addclose(&fa, from_child[0]);
	assert_int_equal(
		posix_spawn(&pid, TEST_NODE_PATH, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(to_child[0]);
	close(from_child[1]);
	/* Bounded: a consumer that never gets its first chunk (it gives up
	 * after 10 s and says so) must not hang the test. */
	if (!read_line_within(from_child[0], line, sizeof(line), 30000)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		close(to_child[1]);
		close(from_child[0]);
		fail_msg("the consumer said nothing in 30 s: '%s'", line);
	}
	assert_string_equal(line, "streaming\n");
	/* The consumer reads no more: the producer waits for credit. The
	 * bounds are generous: 1024 chunks cross ipc in milliseconds, but
	 * a sanitizer build on a loaded machine once took over 10 s. */
	assert_true(test_signal_wait(&blocked, 1, 30000));
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(to_child[1]);
	close(from_child[0]);
	/* Nothing is sent to a dead consumer that waits for credit, yet the
	 * producer hears of its death. */
	assert_true(test_signal_wait(&cancelled, 1, 30000));
	af_system_destroy(&sys);
	test_signal_fini(&cancelled);
	test_signal_fini(&blocked);
}

/* A hand-made producer on a ROUTER: reads the next request, then answers
 * it with the kinds and seqs given (0 ends the list). */
static void misbehave(void *router, const af_kind *kinds, const uint64_t *seqs)
{
	zmq_msg_t id;
	zmq_msg_t body;
	af__envelope req;

	zmq_msg_init(&id);
	zmq_msg_init(&body);
	/* The cancel of the previous case may come first. */
	do {
		assert_true(zmq_msg_recv(&id, router, 0) >= 0);
		assert_true(zmq_msg_recv(&body, router, 0) >= 0);
		assert_int_equal(af__envelope_decode_header(
					 &req, zmq_msg_data(&body),
					 zmq_msg_size(&body), SIZE_MAX),
				 AF_OK);
	} while (req.kind != AF_KIND_REQUEST);
	for (int i = 0; kinds[i] != 0; i++) {
		af__envelope env = {
			.kind = kinds[i], .id = req.id, .seq = seqs[i]};
		uint8_t buf[AF__HEADER_MAX + 1];
		size_t len;
		assert_int_equal(
			af__envelope_header(buf, sizeof(buf) - 1, &len, &env),
			AF_OK);
		buf[len++] = 0xc0; /* nil payload */
		assert_true(zmq_send(router, zmq_msg_data(&id),
				     zmq_msg_size(&id), ZMQ_SNDMORE) >= 0);
		assert_true(zmq_send(router, buf, len, 0) >= 0);
	}
	zmq_msg_close(&id);
	zmq_msg_close(&body);
}

static void *answer_with_chunk(void *router)
{
	static const af_kind chunk[] = {AF_KIND_CHUNK, 0};
	static const uint64_t seq[] = {1};

	misbehave(router, chunk, seq);
	return NULL;
}

static void test_broken_streams_are_errors(void **state)
{
	void *zctx = zmq_ctx_new();
	void *router = zmq_socket(zctx, ZMQ_ROUTER);
	int linger = 0;
	af_client *c = NULL;
	af_stream *s = NULL;
	af_msg *m = NULL;
	/* A gap in the numbering, a chunk sent twice, an end that miscounts,
	 * and a chunk answering a plain request. */
	static const af_kind gap[] = {AF_KIND_CHUNK, AF_KIND_CHUNK, 0};
	static const uint64_t gap_seq[] = {1, 3};
	static const af_kind twice[] = {AF_KIND_CHUNK, AF_KIND_CHUNK, 0};
	static const uint64_t twice_seq[] = {1, 1};
	static const af_kind miscount[] = {AF_KIND_CHUNK, AF_KIND_END, 0};
	static const uint64_t miscount_seq[] = {1, 5};
	const af_kind *cases[] = {gap, twice, miscount};
	const uint64_t *case_seqs[] = {gap_seq, twice_seq, miscount_seq};

	zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof(linger));
	assert_int_equal(zmq_bind(router, endpoint), 0);
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
			af_client_stream(c, endpoint, "stream", NULL, 5000, &s),
			AF_OK);
		misbehave(router, cases[i], case_seqs[i]);
		/* The first chunk is in order and delivered; what breaks the
		 * order ends the stream. */
		assert_int_equal(af_stream_next(s, 5000, &m), AF_OK);
		assert_int_equal(af_msg_seq(m), 1);
		af_msg_destroy(&m);
		assert_int_equal(af_stream_next(s, 5000, &m), AF_EPROTO);
		assert_null(m);
		af_stream_close(&s);
	}
	/* No window was granted: a chunk is not an answer. The producer runs
	 * on its own thread while the client waits. */
	{
		pthread_t t;
		assert_int_equal(
			pthread_create(&t, NULL, answer_with_chunk, router), 0);
		assert_int_equal(
			af_client_request(c, endpoint, "plain", NULL, 5000, &m),
			AF_EPROTO);
		assert_null(m);
		pthread_join(t, NULL);
	}
	af_client_destroy(&c);
	zmq_close(router);
	zmq_ctx_term(zctx);
}

/* ---- answers count only where their request went ------------------- */

/* An actor that asks on its requester's behalf. "ask" holds the request
 * and asks the echo actor "hang" (no deadline); "side" {"to": address}
 * holds it and asks address "x". Either is answered, once the question
 * is, with {"status": its outcome, "payload": the answer's payload}. */
static void relay_outcome(af_ctx *ctx, int status, af_msg *answer, void *arg)
{
	af_pending *p = arg;
	af_payload *out = NULL;
	const void *raw;
	size_t len;

	assert_int_equal(af_payload_new(&out), AF_OK);
	af_pack_map(out, 2);
	af_pack_str(out, "status");
	af_pack_int(out, status);
	af_pack_str(out, "payload");
	if (answer != NULL && af_msg_payload_raw(answer, &raw, &len) == AF_OK)
		af_pack_raw(out, raw, len);
	else
		af_pack_nil(out);
	assert_int_equal(af_pending_reply(ctx, &p, out), AF_OK);
	af_payload_destroy(&out);
}

static af_err asker_handle(af_ctx *ctx, void *state, af_msg *m)
{
	char to[200] = "echo";
	const char *type = "hang";
	af_pending *p;

	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK;
	if (strcmp(af_msg_type(m), "side") == 0) {
		const char *s;
		size_t len;
		assert_int_equal(
			af_value_str(af_value_get(af_msg_payload(m), "to"), &s,
				     &len),
			AF_OK);
		assert_true(len < sizeof(to));
		memcpy(to, s, len);
		to[len] = '\0';
		type = "x";
	}
	assert_int_equal(af_defer(ctx, m, &p), AF_OK);
	assert_int_equal(
		af_request(ctx, to, type, NULL, 0, relay_outcome, p, NULL),
		AF_OK);
	return AF_OK;
}

static const af_actor_ops asker_ops = {.type_name = "asker",
				       .handle = asker_handle};

/* Sends on sock an envelope of kind for id with seq, type (may be NULL)
 * and a nil payload, after the routing frame rid when it is not NULL. */
static void raw_envelope(void *sock, zmq_msg_t *rid, af_kind kind, uint64_t id,
			 uint64_t seq, const char *type)
{
	af__envelope env = {.kind = kind,
			    .id = id,
			    .seq = seq,
			    .type = type,
			    .type_len = type != NULL ? strlen(type) : 0};
	uint8_t buf[AF__HEADER_MAX + 1];
	size_t len;

	assert_int_equal(af__envelope_header(buf, sizeof(buf) - 1, &len, &env),
			 AF_OK);
	buf[len++] = 0xc0;
	if (rid != NULL)
		assert_true(zmq_send(sock, zmq_msg_data(rid), zmq_msg_size(rid),
				     ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(sock, buf, len, 0) >= 0);
}

/* Every kind of answer, each for every id from first to last. */
static void raw_answers(void *sock, zmq_msg_t *rid, uint64_t first,
			uint64_t last)
{
	static const af_kind kinds[] = {AF_KIND_REPLY, AF_KIND_ERROR,
					AF_KIND_CHUNK, AF_KIND_END};

	for (uint64_t id = first; id <= last; id++)
		for (size_t k = 0; k < 4; k++)
			raw_envelope(sock, rid, kinds[k], id,
				     kinds[k] == AF_KIND_CHUNK, NULL);
}

/* Reads the outcome the asker relayed on s: its status. */
static int64_t relayed_status(af_stream *s)
{
	af_msg *m = NULL;
	int64_t status;

	assert_int_equal(af_stream_next(s, 10000, &m), AF_EOF);
	status = af_value_get_int(af_msg_payload(m), "status", -1);
	af_msg_destroy(&m);
	return status;
}

/* An exported actor's ROUTER carries what requesters send it. Answers
 * there come from someone the actor never asked: whatever their id, they
 * settle none of its own requests, and are dropped and counted. */
static void test_answers_on_a_router_are_dropped(void **state)
{
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	af_system *sys = NULL;
	af_system_stats stats;
	af_client *c = NULL;
	af_stream *ask = NULL;
	af_msg *m = NULL;
	unsigned char buf[512];
	void *zctx;
	void *raw;
	msgpack_zone zone;
	af__envelope env;
	int n;

	test_signal_init(&hung);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "asker", &asker_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_export(sys, "asker", endpoint), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_stream(c, "asker", "ask", NULL, 20000, &ask),
			 AF_OK);
	assert_true(test_signal_wait(&hung, 1, 10000));

	/* Ids are drawn from the system in blocks of 1024, one block per
	 * context so far: the asker's question has one of the first 4096. */
	raw = raw_dealer(&zctx, endpoint);
	raw_answers(raw, NULL, 1, 4096);
	/* The ROUTER reads one connection in order: once this is answered,
	 * every answer before it was taken. */
	raw_envelope(raw, NULL, AF_KIND_REQUEST, 99, 0, "af.stats");
	n = raw_recv(raw, buf, sizeof(buf), 10000);
	assert_true(n > 0);
	assert_true(msgpack_zone_init(&zone, 1024));
	assert_int_equal(
		af__envelope_decode(&env, buf, (size_t)n, SIZE_MAX, &zone),
		AF_OK);
	assert_int_equal(env.kind, AF_KIND_REPLY);
	assert_int_equal(env.id, 99);
	msgpack_zone_destroy(&zone);
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.dropped, 4 * 4096);
	assert_int_equal(stats.late, 0);
	assert_int_equal(af_stream_next(ask, 0, &m), AF_EAGAIN);

	/* The question is still open: it ends when echo stops. */
	assert_int_equal(af_stop(sys, "echo"), AF_OK);
	assert_int_equal(relayed_status(ask), AF_ESTOPPED);
	af_stream_close(&ask);
	raw_close(zctx, raw);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	test_signal_fini(&hung);
}

/* A remote node answers only what was asked of it: an answer it sends
 * with the id of a question that went elsewhere (to a local actor) is
 * dropped and counted, and that question stays open. */
static void test_a_peer_answers_only_its_own_requests(void **state)
{
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	af_system *sys = NULL;
	af_system_stats stats;
	af_client *c = NULL;
	af_stream *ask = NULL;
	af_stream *side = NULL;
	af_payload *to = NULL;
	af_msg *m = NULL;
	void *zctx = zmq_ctx_new();
	void *peer = zmq_socket(zctx, ZMQ_ROUTER);
	int linger = 0;
	int one = 1;
	zmq_msg_t rid;
	zmq_msg_t body;
	af__envelope req;

	test_signal_init(&hung);
	zmq_setsockopt(peer, ZMQ_LINGER, &linger, sizeof(linger));
	/* A full connection then blocks the node instead of losing what it
	 * sends. */
	zmq_setsockopt(peer, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	assert_int_equal(zmq_bind(peer, endpoint), 0);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(sys, "asker", &asker_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_client_stream(c, "asker", "ask", NULL, 20000, &ask),
			 AF_OK);
	assert_true(test_signal_wait(&hung, 1, 10000));
	assert_int_equal(af_payload_new(&to), AF_OK);
	af_pack_map(to, 1);
	af_pack_str(to, "to");
	af_pack_str(to, endpoint);
	assert_int_equal(af_client_stream(c, "asker", "side", to, 20000, &side),
			 AF_OK);

	/* The asker's question to this node comes right after the one to
	 * echo: the node answers every id before it, then its own. */
	zmq_msg_init(&rid);
	zmq_msg_init(&body);
	assert_true(zmq_msg_recv(&rid, peer, 0) >= 0);
	assert_true(zmq_msg_recv(&body, peer, 0) >= 0);
	assert_int_equal(af__envelope_decode_header(&req, zmq_msg_data(&body),
						    zmq_msg_size(&body),
						    SIZE_MAX),
			 AF_OK);
	assert_int_equal(req.kind, AF_KIND_REQUEST);
	assert_true(req.id > 1);
	raw_answers(peer, &rid, 1, req.id - 1);
	raw_envelope(peer, &rid, AF_KIND_REPLY, req.id, 0, NULL);
	/* One connection, read in order: the node's own answer comes after
	 * the others were taken. */
	assert_int_equal(relayed_status(side), AF_OK);
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	/* The four answers naming the question to echo were dropped; the
	 * rest named no open question, and are late. */
	assert_int_equal(stats.dropped, 4);
	assert_int_equal(stats.late, 4 * (req.id - 2));
	assert_int_equal(af_stream_next(ask, 0, &m), AF_EAGAIN);
	assert_int_equal(af_stop(sys, "echo"), AF_OK);
	assert_int_equal(relayed_status(ask), AF_ESTOPPED);

	zmq_msg_close(&rid);
	zmq_msg_close(&body);
	af_stream_close(&ask);
	af_stream_close(&side);
	af_payload_destroy(&to);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	zmq_close(peer);
	zmq_ctx_term(zctx);
	test_signal_fini(&hung);
}

/* ---- answers that cannot be read ------------------------------------ */

/* An answer a hand-made node sends: an envelope of version and kind for
 * the request's id plus id_offset, with seq, then the payload's bytes
 * (kind 0: the payload's bytes alone). */
typedef struct answer_spec {
	unsigned version;
	af_kind kind;
	int64_t id_offset;
	uint64_t seq;
	const void *payload;
	size_t payload_len;
} answer_spec;

/* A hand-made node on a ROUTER: reads the next request (skipping
 * anything else) and sends it the n answers given. */
typedef struct bad_node {
	void *router;
	const answer_spec *answers;
	size_t n;
	zmq_msg_t rid;
	uint64_t id; /* the request's */
} bad_node;

static void bad_node_answer(bad_node *b)
{
	zmq_msg_t body;
	af__envelope req;

	zmq_msg_init(&b->rid);
	zmq_msg_init(&body);
	do {
		assert_true(zmq_msg_recv(&b->rid, b->router, 0) >= 0);
		assert_true(zmq_msg_recv(&body, b->router, 0) >= 0);
		assert_int_equal(af__envelope_decode_header(
					 &req, zmq_msg_data(&body),
					 zmq_msg_size(&body), SIZE_MAX),
				 AF_OK);
	} while (req.kind != AF_KIND_REQUEST);
	b->id = req.id;
	zmq_msg_close(&body);
	for (size_t i = 0; i < b->n; i++) {
		const answer_spec *a = &b->answers[i];
		af__envelope env = {.kind = a->kind,
				    .id = req.id + (uint64_t)a->id_offset,
				    .seq = a->seq};
		uint8_t *buf = malloc(AF__HEADER_MAX + a->payload_len);
		size_t len = 0;
		assert_non_null(buf);
		if (a->kind != 0) {
			assert_int_equal(af__envelope_header(buf,
							     AF__HEADER_MAX,
							     &len, &env),
					 AF_OK);
			/* fixarray(8), then the version as a positive
			 * fixint. */
			assert_int_equal(buf[1], 1);
			buf[1] = (uint8_t)a->version;
		}
		memcpy(buf + len, a->payload, a->payload_len);
		assert_true(zmq_send(b->router, zmq_msg_data(&b->rid),
				     zmq_msg_size(&b->rid), ZMQ_SNDMORE) >= 0);
		assert_true(zmq_send(b->router, buf, len + a->payload_len, 0) >=
			    0);
		free(buf);
	}
}

static void *bad_node_main(void *arg)
{
	bad_node_answer(arg);
	return NULL;
}

/* Requests addr while b answers on its own thread: the outcome, and the
 * error's text in text. */
static af_err request_bad_node(af_client *c, bad_node *b, char *text,
			       size_t cap)
{
	af_msg *reply = NULL;
	const char *s = NULL;
	pthread_t t;
	af_err err;

	assert_int_equal(pthread_create(&t, NULL, bad_node_main, b), 0);
	err = af_client_request(c, endpoint, "x", NULL, 5000, &reply);
	assert_int_equal(pthread_join(t, NULL), 0);
	zmq_msg_close(&b->rid);
	text[0] = '\0';
	if (reply != NULL && af_msg_error(reply, &s) != AF_OK && s != NULL)
		snprintf(text, cap, "%s", s);
	af_msg_destroy(&reply);
	return err;
}

/* An answer from a remote node that is malformed, over the limit or of
 * another protocol version ends the request it names at once with the
 * reason, as a request that cannot be read is answered; not at its
 * deadline. A stream's producer is told to stop. What names no request
 * sent to that node is dropped and counted. */
static void test_unreadable_answers_end_their_request(void **state)
{
	static const uint8_t never_used[] = {0xc1};
	static const uint8_t nil[] = {0xc0};
	static uint8_t big[3 + 8000] = {0xc5, 8000 >> 8, 8000 & 0xff};
	const answer_spec malformed = {1, AF_KIND_REPLY, 0, 0, never_used, 1};
	const answer_spec oversized = {1, AF_KIND_REPLY, 0,
				       0, big,           sizeof(big)};
	const answer_spec version2 = {2, AF_KIND_REPLY, 0, 0, nil, 1};
	/* Garbage, and a malformed answer naming the question before this
	 * one (it went to a local actor): both dropped; then the answer. */
	const answer_spec others[] = {{0, 0, 0, 0, never_used, 1},
				      {1, AF_KIND_ERROR, -1, 0, never_used, 1},
				      {1, AF_KIND_REPLY, 0, 0, nil, 1}};
	/* A stream: a chunk, then one that cannot be read. */
	const answer_spec broken[] = {{1, AF_KIND_CHUNK, 0, 1, nil, 1},
				      {1, AF_KIND_CHUNK, 0, 2, never_used, 1}};
	af_system_opts opts = {.max_message_size = 4096};
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	af_system *sys = NULL;
	af_system_stats stats;
	af_client *c = NULL;
	af_stream *s = NULL;
	af_msg *m = NULL;
	const char *text = NULL;
	char got[512];
	void *zctx = zmq_ctx_new();
	bad_node b = {.router = zmq_socket(zctx, ZMQ_ROUTER)};
	int linger = 0;
	int timeout = 10000;
	zmq_msg_t body;
	af__envelope env;

	test_signal_init(&hung);
	memset(big + 3, 'x', sizeof(big) - 3);
	zmq_setsockopt(b.router, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(b.router, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	assert_int_equal(zmq_bind(b.router, endpoint), 0);
	assert_int_equal(af_system_new(&sys, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);

	b.answers = &malformed;
	b.n = 1;
	assert_int_equal(request_bad_node(c, &b, got, sizeof(got)), AF_EPROTO);
	assert_non_null(strstr(got, "malformed"));
	assert_non_null(strstr(got, endpoint));
	b.answers = &oversized;
	assert_int_equal(request_bad_node(c, &b, got, sizeof(got)),
			 AF_EMSGSIZE);
	assert_non_null(strstr(got, "too large"));
	assert_non_null(strstr(got, endpoint));
	b.answers = &version2;
	assert_int_equal(request_bad_node(c, &b, got, sizeof(got)),
			 AF_EVERSION);
	assert_non_null(strstr(got, "version 2"));
	assert_non_null(strstr(got, endpoint));
	/* What cannot be read is counted, settled or not. */
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.dropped, 3);

	assert_int_equal(af_client_stream(c, "echo", "hang", NULL, 20000, &s),
			 AF_OK);
	assert_true(test_signal_wait(&hung, 1, 10000));
	b.answers = others;
	b.n = 3;
	assert_int_equal(request_bad_node(c, &b, got, sizeof(got)), AF_OK);
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.dropped, 5);
	assert_int_equal(af_stream_next(s, 0, &m), AF_EAGAIN);
	af_stream_close(&s);

	b.answers = broken;
	b.n = 2;
	assert_int_equal(af_client_stream(c, endpoint, "x", NULL, 20000, &s),
			 AF_OK);
	bad_node_answer(&b);
	assert_int_equal(af_stream_next(s, 5000, &m), AF_OK);
	assert_int_equal(af_msg_seq(m), 1);
	af_msg_destroy(&m);
	assert_int_equal(af_stream_next(s, 5000, &m), AF_EPROTO);
	assert_int_equal(af_msg_error(m, &text), AF_EPROTO);
	assert_non_null(strstr(text, "malformed"));
	af_msg_destroy(&m);
	/* The producer hears that nobody reads on. */
	zmq_msg_init(&body);
	assert_true(zmq_msg_recv(&b.rid, b.router, 0) >= 0);
	assert_true(zmq_msg_recv(&body, b.router, 0) >= 0);
	assert_int_equal(af__envelope_decode_header(&env, zmq_msg_data(&body),
						    zmq_msg_size(&body),
						    SIZE_MAX),
			 AF_OK);
	assert_int_equal(env.kind, AF_KIND_CANCEL);
	assert_int_equal(env.id, b.id);
	zmq_msg_close(&body);
	zmq_msg_close(&b.rid);
	af_stream_close(&s);

	af_client_destroy(&c);
	af_system_destroy(&sys);
	zmq_close(b.router);
	zmq_ctx_term(zctx);
	test_signal_fini(&hung);
}

/* ---- a requester that stops reading --------------------------------- */

/* Sends on raw a request of type for id, granting window (0: a plain
 * request), with the payload's bytes. */
static void raw_request(void *raw, uint64_t id, uint64_t window,
			const char *type, const void *payload, size_t len)
{
	af__envelope env = {.kind = AF_KIND_REQUEST,
			    .id = id,
			    .seq = window,
			    .type = type,
			    .type_len = strlen(type)};
	uint8_t *buf = malloc(AF__HEADER_MAX + len);
	size_t n;

	assert_non_null(buf);
	assert_int_equal(af__envelope_header(buf, AF__HEADER_MAX, &n, &env),
			 AF_OK);
	memcpy(buf + n, payload, len);
	raw_send(raw, buf, n + len);
	free(buf);
}

/* A requester that stops reading holds up its own answers only: answers
 * to everyone else, local or remote, go on, and so do the probes that
 * find a vanished stream consumer. Its own answers wait, in order, and
 * are all there when it reads again. */
/* ---- idle connections ------------------------------------------------- */

/* Requests payload["to"] with payload["type"] and payload["timeout_ms"],
 * and answers with the outcome (relay_outcome); with payload["tell"] 1,
 * tells it instead and answers {"status": af_tell's code}. */
static af_err caller_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const af_value *v = af_msg_payload(m);
	char *to = af_value_strdup(af_value_get(v, "to"));
	char *type = af_value_strdup(af_value_get(v, "type"));
	af_pending *p;
	af_err err;

	(void)state;
	assert_non_null(to);
	assert_non_null(type);
	if (af_value_get_int(v, "tell", 0) == 1) {
		af_payload *out = NULL;
		assert_int_equal(af_payload_new(&out), AF_OK);
		af_pack_map(out, 1);
		af_pack_str(out, "status");
		af_pack_int(out, af_tell(ctx, to, type, NULL));
		err = af_reply(ctx, m, out);
		af_payload_destroy(&out);
		free(to);
		free(type);
		return err;
	}
	assert_int_equal(af_defer(ctx, m, &p), AF_OK);
	err = af_request(ctx, to, type, NULL,
			 af_value_get_int(v, "timeout_ms", 5000), relay_outcome,
			 p, NULL);
	free(to);
	free(type);
	return err;
}

static const af_actor_ops caller_ops = {.type_name = "caller",
					.handle = caller_handle};

/* The caller actor's "call" payload: a request (or, with tell, a tell)
 * of type to the exported endpoint. Caller destroys it. */
static af_payload *call_payload(const char *type, int64_t timeout_ms, bool tell)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 4);
	af_pack_str(p, "tell");
	af_pack_int(p, tell ? 1 : 0);
	af_pack_str(p, "to");
	af_pack_str(p, endpoint);
	af_pack_str(p, "type");
	af_pack_str(p, type);
	af_pack_str(p, "timeout_ms");
	af_pack_int(p, timeout_ms);
	return p;
}

/* What the caller actor's request (or, with tell, tell) of type to the
 * exported endpoint ended with. */
static int call_or_tell(af_client *c, const char *type, int64_t timeout_ms,
			bool tell)
{
	af_payload *p = call_payload(type, timeout_ms, tell);
	af_msg *m = NULL;
	int status;

	assert_int_equal(af_client_request(c, "caller", "call", p, 10000, &m),
			 AF_OK);
	status = (int)af_value_get_int(af_msg_payload(m), "status", -1);
	af_msg_destroy(&m);
	af_payload_destroy(&p);
	return status;
}

static int call(af_client *c, const char *type, int64_t timeout_ms)
{
	return call_or_tell(c, type, timeout_ms, false);
}

static uint64_t remote_peers(af_system *sys)
{
	af_actor_stats st;

	assert_int_equal(af_actor_get_stats(sys, "caller", &st), AF_OK);
	return st.remote_peers;
}

/* Waits up to timeout_ms for the caller to hold n remote peers. */
static bool peers_reach(af_system *sys, uint64_t n, int timeout_ms)
{
	int64_t end = af__now_ms() + timeout_ms;

	while (remote_peers(sys) != n && af__now_ms() < end)
		usleep(1000);
	return remote_peers(sys) == n;
}

/* A connection to another process that carries nothing for
 * peer_idle_ms is closed; one with a request outstanding is not; the
 * next request connects again. Only what cannot race the sweep is
 * checked right away (every test also runs under valgrind). */
static void test_idle_remote_peers_close(void **state)
{
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	af_system_opts opts = {.peer_idle_ms = 50};
	af_system *target = NULL, *sys = NULL;
	af_client *c = NULL;

	(void)state;
	test_signal_init(&hung);
	assert_int_equal(af_system_new(&target, NULL), AF_OK);
	assert_int_equal(af_spawn(target, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_export(target, "echo", endpoint), AF_OK);
	assert_int_equal(af_system_new(&sys, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "caller", &caller_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);

	assert_int_equal(remote_peers(sys), 0);
	assert_int_equal(call(c, "echo", 5000), AF_OK);
	assert_true(peers_reach(sys, 0, 5000));
	/* Closed, not broken: the next request connects again. */
	assert_int_equal(call(c, "echo", 5000), AF_OK);
	assert_true(peers_reach(sys, 0, 5000));

	/* A request held by the target keeps its connection open through
	 * many idle times, until it ends. */
	{
		af_payload *p = call_payload("hang", 3000, false);
		af_stream *s = NULL;
		af_msg *m = NULL;

		assert_int_equal(
			af_client_stream(c, "caller", "call", p, 10000, &s),
			AF_OK);
		af_payload_destroy(&p);
		assert_true(test_signal_wait(&hung, 1, 5000));
		/* Six idle times with the request outstanding. */
		usleep(300 * 1000);
		assert_int_equal(remote_peers(sys), 1);
		assert_int_equal(af_stream_next(s, 10000, &m), AF_EOF);
		assert_int_equal(
			af_value_get_int(af_msg_payload(m), "status", -1),
			AF_ETIMEDOUT);
		af_msg_destroy(&m);
		af_stream_close(&s);
	}
	assert_true(peers_reach(sys, 0, 5000));
	af_client_destroy(&c);
	af_system_destroy(&sys);
	af_system_destroy(&target);
	test_signal_fini(&hung);
}

/* A tell sent before anyone serves its endpoint waits in ZeroMQ's queue:
 * its connection is not closed as idle until it has connected, and the
 * tell arrives when the endpoint comes. */
static void test_idle_peer_keeps_unsent_tells(void **state)
{
	atomic_int count = 0;
	echo_config cfg = {.count = &count};
	af_system_opts opts = {.peer_idle_ms = 50};
	af_system *target = NULL, *sys = NULL;
	af_client *c = NULL;

	(void)state;
	assert_int_equal(af_system_new(&sys, &opts), AF_OK);
	assert_int_equal(af_spawn(sys, "caller", &caller_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(call_or_tell(c, "count", 0, true), AF_OK);
	/* Six idle times with the tell queued and nobody there. */
	usleep(300 * 1000);
	assert_int_equal(remote_peers(sys), 1);
	assert_int_equal(af_system_new(&target, NULL), AF_OK);
	assert_int_equal(af_spawn(target, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_export(target, "echo", endpoint), AF_OK);
	assert_true(count_reaches(&count, 1, 10000));
	/* Delivered: now it may go. */
	assert_true(peers_reach(sys, 0, 10000));
	af_client_destroy(&c);
	af_system_destroy(&sys);
	af_system_destroy(&target);
}

static void test_a_full_requester_holds_up_only_itself(void **state)
{
	enum { N = 2000, SIZE = 1024 };
	test_signal replied;
	test_signal blocked;
	test_signal cancelled;
	stream_watch watch = {.cancelled = &cancelled, .blocked = &blocked};
	echo_config cfg = {.replied = &replied, .streams = &watch};
	static const uint8_t endless[] = {0x81, 0xa1, 'n', 0x00}; /* n: 0 */
	af_system *sys;
	af_system_stats stats;
	af_client *c = NULL;
	af_msg *reply = NULL;
	uint8_t *buf = malloc(SIZE + 64);
	void *hog_ctx = zmq_ctx_new();
	void *hog = zmq_socket(hog_ctx, ZMQ_DEALER);
	void *other_ctx;
	void *other;
	void *consumer_ctx;
	void *consumer;
	int linger = 0;
	int one = 1;

	test_signal_init(&replied);
	test_signal_init(&blocked);
	test_signal_init(&cancelled);
	sys = raw_target(&cfg);
	/* The hog takes one answer at a time into its queue, and reads
	 * none: the rest wait at the actor once the connection is full. */
	zmq_setsockopt(hog, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(hog, ZMQ_RCVHWM, &one, sizeof(one));
	assert_int_equal(zmq_connect(hog, endpoint), 0);
	assert_non_null(buf);
	buf[0] = 0xc6; /* bin32 of SIZE bytes */
	buf[1] = 0;
	buf[2] = 0;
	buf[3] = SIZE >> 8;
	buf[4] = SIZE & 0xff;
	memset(buf + 5, 'x', SIZE);
	for (uint64_t id = 1; id <= N; id++)
		raw_request(hog, id, 0, "echo", buf, SIZE + 5);
	/* Generous: valgrind on a loaded machine is slow. */
	assert_true(test_signal_wait(&replied, N, 60000));

	/* A stream consumer that vanishes while the hog is full: the
	 * producer's probe finds it gone, and its cancel hook runs. */
	consumer = raw_dealer(&consumer_ctx, endpoint);
	raw_request(consumer, 7, 4, "stream", endless, sizeof(endless));
	assert_true(test_signal_wait(&blocked, 1, 10000));
	raw_close(consumer_ctx, consumer);
	assert_true(test_signal_wait(&cancelled, 1, 10000));

	/* A local requester and another remote one are answered. */
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(
		af_client_request(c, "echo", "echo", NULL, 5000, &reply),
		AF_OK);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	other = raw_dealer(&other_ctx, endpoint);
	raw_echo_ok(other, NULL);
	raw_close(other_ctx, other);

	/* The hog reads at last: every answer, in order. */
	for (uint64_t id = 1; id <= N; id++) {
		af__envelope env;
		int n = raw_recv(hog, buf, SIZE + 64, 10000);
		assert_true(n > 0);
		assert_int_equal(af__envelope_decode_header(
					 &env, buf, (size_t)n, SIZE_MAX),
				 AF_OK);
		assert_int_equal(env.kind, AF_KIND_REPLY);
		assert_int_equal(env.id, id);
	}
	assert_int_equal(af_system_get_stats(sys, &stats), AF_OK);
	assert_int_equal(stats.dropped, 0);
	af_system_destroy(&sys);
	raw_close(hog_ctx, hog);
	free(buf);
	test_signal_fini(&replied);
	test_signal_fini(&blocked);
	test_signal_fini(&cancelled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_across_processes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_whole_system_on_one_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_is_survived, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests_are_answered,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_of_array16_tells,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_refuses_addresses,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_first_request_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_while_peer_down,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_death_and_restart,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_across_processes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_producer_dies,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_consumer_dies,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_streams_are_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_answers_on_a_router_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_peer_answers_only_its_own_requests, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_unreadable_answers_end_their_request, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_a_full_requester_holds_up_only_itself, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_idle_remote_peers_close,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_idle_peer_keeps_unsent_tells, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
