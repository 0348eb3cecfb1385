#define _GNU_SOURCE
/* CURVE on tcp endpoints, all on 127.0.0.1 with ephemeral ports: a client
 * holding an allowed key gets answers; one with a key not allowed, one with
 * the wrong server key and one without CURVE are refused (AF_EAUTH, long
 * before their deadline) and reach no actor; a system export with CURVE;
 * an actor's outgoing connection with the system's keys; plain endpoints of
 * the same actor stay plain; bytes on the wire are encrypted (a TCP relay
 * in the test looks for a marker). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "testlib.h"

#define KEY (AF_CURVE_KEY_LEN + 1)
#define MARKER "plaintext-marker-7f3a9c"

typedef struct keypair {
	char pub[KEY];
	char sec[KEY];
} keypair;

static void keypair_new(keypair *k)
{
	assert_int_equal(af_curve_keypair(k->pub, k->sec), AF_OK);
}

/* A server: a system with an echo actor exported with CURVE. */
typedef struct server {
	af_system *sys;
	test_signal handled;
	echo_config cfg;
	keypair keys;
	keypair allowed;
	char endpoint[64];
	char addr[80]; /* endpoint#echo */
} server;

static void server_start(server *s)
{
	const char *allowed[1];
	af_export_opts eo = {0};

	memset(s, 0, sizeof(*s));
	test_signal_init(&s->handled);
	s->cfg.handled = &s->handled;
	keypair_new(&s->keys);
	keypair_new(&s->allowed);
	allowed[0] = s->allowed.pub;
	eo.curve_secret_key = s->keys.sec;
	eo.curve_allowed_keys = allowed;
	eo.curve_nallowed = 1;
	snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%u",
		 test_free_port());
	snprintf(s->addr, sizeof(s->addr), "%s#echo", s->endpoint);
	assert_int_equal(af_system_new(&s->sys, NULL), AF_OK);
	assert_int_equal(
		af_spawn(s->sys, "echo", &test_echo_ops, &s->cfg, NULL), AF_OK);
	assert_int_equal(af_export_with(s->sys, "echo", s->endpoint, &eo),
			 AF_OK);
}

static void server_stop(server *s)
{
	af_system_destroy(&s->sys);
	test_signal_fini(&s->handled);
}

static af_client *client_with(const char *server_key, const char *secret)
{
	af_curve_keys k = {.server_key = server_key, .secret_key = secret};
	af_client_opts o = {.curve = &k};
	af_client *c = NULL;

	assert_int_equal(af_client_new_opts(&c, NULL, &o), AF_OK);
	return c;
}

static af_err echo(af_client *c, const char *addr, int64_t timeout_ms)
{
	af_payload *p = test_payload_n(42);
	af_msg *reply = NULL;
	af_err err = af_client_request(c, addr, "echo", p, timeout_ms, &reply);

	if (err == AF_OK)
		assert_int_equal(
			af_value_get_int(af_msg_payload(reply), "n", 0), 42);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return err;
}

static void test_keys(void **state)
{
	keypair k;
	char pub[KEY];
	const char *allowed[1] = {"not a key"};
	af_export_opts eo = {.curve_allowed_keys = allowed,
			     .curve_nallowed = 1};
	af_curve_keys ck = {0};
	af_client_opts co = {.curve = &ck};
	af_client *c = NULL;
	af_system *sys = NULL;

	(void)state;
	assert_true(af_curve_available());
	keypair_new(&k);
	assert_int_equal(strlen(k.pub), AF_CURVE_KEY_LEN);
	assert_true(af_curve_key_valid(k.pub));
	assert_false(af_curve_key_valid("short"));
	assert_false(af_curve_key_valid(NULL));
	assert_int_equal(af_curve_public(k.sec, pub), AF_OK);
	assert_string_equal(pub, k.pub);
	assert_int_equal(af_curve_public("nope", pub), AF_EINVAL);

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	/* A bad secret key, a bad allowed key, no allowed key. */
	eo.curve_secret_key = "x";
	assert_int_equal(af_export_with(sys, "echo", "tcp://127.0.0.1:1", &eo),
			 AF_EINVAL);
	eo.curve_secret_key = k.sec;
	assert_int_equal(af_export_with(sys, "echo", "tcp://127.0.0.1:1", &eo),
			 AF_EINVAL);
	eo.curve_nallowed = 0;
	assert_int_equal(af_system_export_with(sys, "tcp://127.0.0.1:1", &eo),
			 AF_EINVAL);
	/* Client keys: missing, bad, a public key not the secret's own. */
	assert_int_equal(af_client_new_opts(&c, NULL, &co), AF_EINVAL);
	ck.server_key = k.pub;
	ck.secret_key = k.sec;
	ck.public_key = "0000000000000000000000000000000000000000";
	assert_int_equal(af_client_new_opts(&c, NULL, &co), AF_EINVAL);
	assert_null(c);
	assert_int_equal(af_system_set_curve(sys, NULL, &ck), AF_EINVAL);
	ck.public_key = k.pub;
	assert_int_equal(af_system_set_curve(sys, NULL, &ck), AF_OK);
	assert_int_equal(af_system_set_curve(sys, "tcp://127.0.0.1:1", &ck),
			 AF_OK);
	assert_int_equal(af_system_set_curve(sys, NULL, NULL), AF_OK);
	af_system_destroy(&sys);
}

static void test_allowed_client_gets_replies(void **state)
{
	server s;
	af_client *c;

	(void)state;
	server_start(&s);
	c = client_with(s.keys.pub, s.allowed.sec);
	for (int i = 0; i < 20; i++)
		assert_int_equal(echo(c, s.addr, 5000), AF_OK);
	af_client_destroy(&c);
	server_stop(&s);
}

/* A refused request ends with AF_EAUTH, well before its deadline, and
 * reaches no actor. */
static void expect_refused(af_client *c, const char *addr)
{
	int64_t start = af__now_us();
	af_err err;

	assert_int_equal(echo(c, addr, 10000), AF_EAUTH);
	assert_true(af__now_us() - start < 5000000);
	/* The next request makes a new connection, refused the same way:
	 * AF_EAUTH, or (rarely, on a loaded host such as under valgrind, see
	 * curve.h) its deadline. Never an answer. */
	err = echo(c, addr, 3000);
	if (err != AF_EAUTH && err != AF_ETIMEDOUT)
		fail_msg("second refused request: %s", af_errname(err));
}

static void test_refused_clients(void **state)
{
	server s;
	keypair other;
	af_client *c;

	(void)state;
	server_start(&s);
	keypair_new(&other);
	/* A valid keypair the server does not allow. */
	c = client_with(s.keys.pub, other.sec);
	expect_refused(c, s.addr);
	af_client_destroy(&c);
	/* The allowed key, but another server's public key. */
	c = client_with(other.pub, s.allowed.sec);
	expect_refused(c, s.addr);
	af_client_destroy(&c);
	/* No CURVE at all. */
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	expect_refused(c, s.addr);
	af_client_destroy(&c);
	/* A tell without CURVE is taken locally and never delivered. */
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	assert_int_equal(af_client_tell(c, s.addr, "echo", NULL, 0), AF_OK);
	usleep(300000);
	af_client_destroy(&c);
	assert_false(test_signal_wait(&s.handled, 1, 10));
	/* The allowed client still gets in. */
	c = client_with(s.keys.pub, s.allowed.sec);
	assert_int_equal(echo(c, s.addr, 5000), AF_OK);
	af_client_destroy(&c);
	server_stop(&s);
}

/* A system export with CURVE, and plain endpoints of the same system
 * beside it, bound before and after. */
static void test_system_export_and_plain_endpoints(void **state)
{
	server s;
	keypair sk;
	const char *allowed[1];
	af_export_opts eo = {0};
	char plain1[64], plain2[64], sys_ep[64], addr[96];
	af_client *c;

	(void)state;
	server_start(&s);
	keypair_new(&sk);
	allowed[0] = s.allowed.pub;
	eo.curve_secret_key = sk.sec;
	eo.curve_allowed_keys = allowed;
	eo.curve_nallowed = 1;
	snprintf(sys_ep, sizeof(sys_ep), "tcp://127.0.0.1:%u",
		 test_free_port());
	snprintf(plain1, sizeof(plain1), "tcp://127.0.0.1:%u",
		 test_free_port());
	snprintf(plain2, sizeof(plain2), "tcp://127.0.0.1:%u",
		 test_free_port());
	assert_int_equal(af_export(s.sys, "echo", plain1), AF_OK);
	assert_int_equal(af_system_export_with(s.sys, sys_ep, &eo), AF_OK);
	assert_int_equal(af_export_with(s.sys, "echo", plain2, NULL), AF_OK);

	c = client_with(sk.pub, s.allowed.sec);
	snprintf(addr, sizeof(addr), "%s#echo", sys_ep);
	assert_int_equal(echo(c, addr, 5000), AF_OK);
	af_client_destroy(&c);
	/* The echo actor's own CURVE endpoint has its own key. */
	c = client_with(sk.pub, s.allowed.sec);
	assert_int_equal(echo(c, s.addr, 10000), AF_EAUTH);
	af_client_destroy(&c);

	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	assert_int_equal(echo(c, addr, 10000), AF_EAUTH);
	assert_int_equal(echo(c, plain1, 5000), AF_OK);
	assert_int_equal(echo(c, plain2, 5000), AF_OK);
	af_client_destroy(&c);
	server_stop(&s);
}

/* ---- an actor's outgoing connection ------------------------------------ */

typedef struct relay_call {
	af_pending *p;
} relay_call;

static void relayed(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	relay_call *r = arg;

	if (status == AF_OK)
		af_pending_reply(ctx, &r->p, NULL);
	else
		af_pending_error(ctx, &r->p, status, "relay: %s",
				 af_strerror(status));
	free(r);
}

/* Forwards an "echo" to the address in its payload's "to". */
static af_err relay_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const af_value *to = af_value_get(af_msg_payload(m), "to");
	char addr[128];
	const char *s;
	size_t len;
	relay_call *r;
	af_payload *p = test_payload_n(1);
	af_err err;

	(void)state;
	if (af_value_str(to, &s, &len) != AF_OK || len >= sizeof(addr)) {
		af_payload_destroy(&p);
		return AF_EINVAL;
	}
	memcpy(addr, s, len);
	addr[len] = '\0';
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_int_equal(af_defer(ctx, m, &r->p), AF_OK);
	err = af_request(ctx, addr, "echo", p, 10000, relayed, r, NULL);
	af_payload_destroy(&p);
	if (err != AF_OK) {
		af_pending_error(ctx, &r->p, err, "relay");
		free(r);
	}
	return AF_OK;
}

static const af_actor_ops relay_ops = {.type_name = "relay",
				       .handle = relay_handle};

static af_err relay(af_system *sys, const char *to)
{
	af_client *c = NULL;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	af_err err;

	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	err = af_client_request(c, "relay", "relay", p, 15000, &reply);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	af_client_destroy(&c);
	return err;
}

static void test_actor_outgoing_curve(void **state)
{
	server s;
	af_system *sys = NULL;
	af_curve_keys k;
	keypair other;

	(void)state;
	server_start(&s);
	keypair_new(&other);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "relay", &relay_ops, NULL, NULL), AF_OK);
	/* No keys for that endpoint: refused. */
	assert_int_equal(relay(sys, s.addr), AF_EAUTH);
	af_system_destroy(&sys);

	/* Keys for another endpoint only: still refused; then the default
	 * (NULL) holds the right ones. */
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "relay", &relay_ops, NULL, NULL), AF_OK);
	k = (af_curve_keys){.server_key = s.keys.pub,
			    .secret_key = s.allowed.sec};
	assert_int_equal(af_system_set_curve(sys, "tcp://127.0.0.1:1", &k),
			 AF_OK);
	assert_int_equal(af_system_set_curve(sys, s.endpoint, &k), AF_OK);
	assert_int_equal(relay(sys, s.addr), AF_OK);
	af_system_destroy(&sys);

	/* A wrong key for the endpoint wins over a right default. */
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "relay", &relay_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_system_set_curve(sys, NULL, &k), AF_OK);
	k.secret_key = other.sec;
	assert_int_equal(af_system_set_curve(sys, s.endpoint, &k), AF_OK);
	assert_int_equal(relay(sys, s.addr), AF_EAUTH);
	af_system_destroy(&sys);
	server_stop(&s);
}

/* ---- the wire ---------------------------------------------------------- */

/* A TCP relay on listen_port to target_port that notes whether MARKER
 * went through it, in either direction. */
typedef struct tap {
	int lfd;
	unsigned port;
	unsigned target;
	atomic_bool seen;
	atomic_bool stop;
	pthread_t thread;
} tap;

static bool has_marker(const char *buf, size_t n)
{
	return memmem(buf, n, MARKER, strlen(MARKER)) != NULL;
}

static void *tap_main(void *arg)
{
	tap *t = arg;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int a = -1;
	int b = -1;

	while (!atomic_load(&t->stop)) {
		struct pollfd fds[3] = {{.fd = t->lfd, .events = POLLIN},
					{.fd = a, .events = POLLIN},
					{.fd = b, .events = POLLIN}};
		char buf[65536];
		if (poll(fds, 3, 50) <= 0)
			continue;
		if ((fds[0].revents & POLLIN) && a < 0) {
			a = accept(t->lfd, NULL, NULL);
			b = socket(AF_INET, SOCK_STREAM, 0);
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sa.sin_port = htons(t->target);
			if (connect(b, (struct sockaddr *)&sa, sizeof(sa)) != 0)
				break;
			continue;
		}
		for (int i = 1; i < 3; i++) {
			int from = i == 1 ? a : b;
			int to = i == 1 ? b : a;
			ssize_t n;
			if (!(fds[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(from, buf, sizeof(buf));
			if (n <= 0) {
				atomic_store(&t->stop, true);
				break;
			}
			/* A marker split over two reads is missed: the
			 * messages here are small enough to come whole. */
			if (has_marker(buf, (size_t)n))
				atomic_store(&t->seen, true);
			if (write(to, buf, (size_t)n) != n) {
				atomic_store(&t->stop, true);
				break;
			}
		}
	}
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return NULL;
}

static void tap_start(tap *t, unsigned target)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(t, 0, sizeof(*t));
	t->target = target;
	t->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(t->lfd, (struct sockaddr *)&sa, &len), 0);
	assert_int_equal(listen(t->lfd, 4), 0);
	t->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&t->thread, NULL, tap_main, t), 0);
}

static bool tap_stop(tap *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	close(t->lfd);
	return atomic_load(&t->seen);
}

static af_err echo_marker(af_client *c, const char *addr)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	af_err err;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "text");
	af_pack_str(p, MARKER);
	err = af_client_request(c, addr, "echo", p, 5000, &reply);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return err;
}

static void test_wire_is_encrypted(void **state)
{
	server s;
	tap t;
	char plain[64], addr[96];
	unsigned port;
	af_client *c;

	(void)state;
	server_start(&s);
	/* Through the tap to the CURVE endpoint: the marker goes both ways,
	 * never readable. */
	tap_start(&t, (unsigned)atoi(strrchr(s.endpoint, ':') + 1));
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%u#echo", t.port);
	c = client_with(s.keys.pub, s.allowed.sec);
	assert_int_equal(echo_marker(c, addr), AF_OK);
	af_client_destroy(&c);
	assert_false(tap_stop(&t));
	/* The same through a plain endpoint shows it: the tap sees. */
	port = test_free_port();
	snprintf(plain, sizeof(plain), "tcp://127.0.0.1:%u", port);
	assert_int_equal(af_export(s.sys, "echo", plain), AF_OK);
	tap_start(&t, port);
	snprintf(addr, sizeof(addr), "tcp://127.0.0.1:%u#echo", t.port);
	assert_int_equal(af_client_new(&c, NULL), AF_OK);
	assert_int_equal(echo_marker(c, addr), AF_OK);
	af_client_destroy(&c);
	assert_true(tap_stop(&t));
	server_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_allowed_client_gets_replies),
		cmocka_unit_test(test_refused_clients),
		cmocka_unit_test(test_system_export_and_plain_endpoints),
		cmocka_unit_test(test_actor_outgoing_curve),
		cmocka_unit_test(test_wire_is_encrypted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
