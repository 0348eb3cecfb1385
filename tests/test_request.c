/* Requests and their outcomes: reply, remote error, no reply, timeout,
 * deferred answers, cancellation, and requests between actors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "testlib.h"

typedef struct fixture {
	af_system *sys;
	af_client *client;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_spawn(f->sys, "echo", &test_echo_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	assert_null(f->sys);
	free(f);
	return 0;
}

static void test_echo_round_trip(void **state)
{
	fixture *f = *state;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	const af_value *v;
	const char *s;
	size_t len;
	double d;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map_begin(p);
	af_pack_str(p, "text");
	af_pack_str(p, "héllo");
	af_pack_str(p, "list");
	af_pack_array_begin(p);
	af_pack_int(p, -7);
	af_pack_double(p, 2.5);
	af_pack_nil(p);
	af_pack_array_end(p);
	assert_int_equal(af_pack_map_end(p), AF_OK);

	assert_int_equal(
		af_client_request(f->client, "echo", "echo", p, 2000, &reply),
		AF_OK);
	assert_non_null(reply);
	assert_int_equal(af_msg_kind(reply), AF_KIND_REPLY);
	v = af_msg_payload(reply);
	assert_int_equal(af_value_str(af_value_get(v, "text"), &s, &len),
			 AF_OK);
	assert_int_equal(len, strlen("héllo"));
	assert_memory_equal(s, "héllo", len);
	v = af_value_get(v, "list");
	assert_int_equal(af_value_len(v), 3);
	assert_int_equal(af_value_get_int(NULL, "x", 5), 5);
	assert_int_equal(af_value_double(af_value_at(v, 1), &d), AF_OK);
	assert_true(d == 2.5);
	assert_int_equal(af_value_type(af_value_at(v, 2)), AF_TYPE_NIL);
	af_msg_destroy(&reply);
	assert_null(reply);
	af_payload_destroy(&p);
}

static void test_many_sequential(void **state)
{
	fixture *f = *state;

	for (int i = 0; i < 2000; i++) {
		af_payload *p = test_payload_n(i);
		af_msg *reply = NULL;
		assert_int_equal(af_client_request(f->client, "echo", "echo", p,
						   2000, &reply),
				 AF_OK);
		assert_int_equal(
			af_value_get_int(af_msg_payload(reply), "n", -1), i);
		af_msg_destroy(&reply);
		af_payload_destroy(&p);
	}
}

static void test_remote_error(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text = NULL;

	assert_int_equal(af_client_request(f->client, "echo", "fail", NULL,
					   2000, &reply),
			 AF_EUSER + 1);
	assert_non_null(reply);
	assert_int_equal(af_msg_kind(reply), AF_KIND_ERROR);
	assert_int_equal(af_msg_error(reply, &text), AF_EUSER + 1);
	assert_string_equal(text, "asked to fail");
	af_msg_destroy(&reply);

	assert_int_equal(af_client_request(f->client, "echo", "nosuchtype",
					   NULL, 2000, &reply),
			 AF_ENOTSUP);
	assert_int_equal(af_msg_error(reply, &text), AF_ENOTSUP);
	assert_non_null(strstr(text, "nosuchtype"));
	af_msg_destroy(&reply);
}

static void test_handler_without_reply(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text = NULL;

	assert_int_equal(af_client_request(f->client, "echo", "noreply", NULL,
					   2000, &reply),
			 AF_ENOREPLY);
	assert_int_equal(af_msg_error(reply, &text), AF_ENOREPLY);
	assert_non_null(strstr(text, "without replying"));
	af_msg_destroy(&reply);

	assert_int_equal(af_client_request(f->client, "echo", "badarg", NULL,
					   2000, &reply),
			 AF_EINVAL);
	assert_int_equal(af_msg_error(reply, &text), AF_EINVAL);
	assert_string_equal(text, af_strerror(AF_EINVAL));
	af_msg_destroy(&reply);
}

static void test_timeout(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	int64_t start = af__now_ms();
	int64_t took;

	assert_int_equal(
		af_client_request(f->client, "echo", "hang", NULL, 50, &reply),
		AF_ETIMEDOUT);
	took = af__now_ms() - start;
	assert_null(reply);
	assert_true(took >= 50);
	assert_true(took < 2000);
	/* The client still works after a timeout. */
	assert_int_equal(af_client_request(f->client, "echo", "echo", NULL,
					   2000, &reply),
			 AF_OK);
	af_msg_destroy(&reply);
}

/* A timeout of INT64_MAX ms is no deadline in practice (it counts as
 * 2^40 ms): the request waits for its answer. It once wrapped to a
 * deadline 1 ms in the past and timed out at once. */
static void test_huge_timeout_is_no_deadline(void **state)
{
	fixture *f = *state;
	af_payload *p = test_payload_n(5);
	af_msg *reply = NULL;

	assert_int_equal(af_client_request(f->client, "echo", "echo", p,
					   INT64_MAX, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", -1), 5);
	af_msg_destroy(&reply);
	assert_int_equal(
		af_client_tell(f->client, "echo", "count", NULL, INT64_MAX),
		AF_OK);
	af_payload_destroy(&p);
}

static void test_deferred_reply(void **state)
{
	fixture *f = *state;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	bool late = false;

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "ms");
	af_pack_int(p, 20);
	assert_int_equal(
		af_client_request(f->client, "echo", "later", p, 2000, &reply),
		AF_OK);
	assert_int_equal(
		af_value_bool(af_value_get(af_msg_payload(reply), "late"),
			      &late),
		AF_OK);
	assert_true(late);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

static void test_bad_addresses(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;

	assert_int_equal(af_client_request(f->client, "nobody", "echo", NULL,
					   100, &reply),
			 AF_ENOTFOUND);
	assert_int_equal(
		af_client_request(f->client, "", "echo", NULL, 100, &reply),
		AF_EADDR);
	assert_int_equal(af_client_request(f->client, "udp://x#y", "echo", NULL,
					   100, &reply),
			 AF_EADDR);
	assert_int_equal(af_client_request(f->client, "ipc:///tmp/x#", "echo",
					   NULL, 100, &reply),
			 AF_EADDR);
	assert_int_equal(
		af_client_request(f->client, "echo", "echo", NULL, 0, &reply),
		AF_EINVAL);
	assert_null(reply);
}

static void test_unfinished_payload_is_rejected(void **state)
{
	fixture *f = *state;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	char type[300];

	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map_begin(p);
	assert_int_equal(
		af_client_request(f->client, "echo", "echo", p, 100, &reply),
		AF_EINVAL);
	af_payload_destroy(&p);
	memset(type, 'x', sizeof(type) - 1);
	type[sizeof(type) - 1] = '\0';
	assert_int_equal(
		af_client_request(f->client, "echo", type, NULL, 100, &reply),
		AF_EINVAL);
}

/* ---- requests between actors ------------------------------------------ */

/* "relay" forwards a request to the actor named in "to" with type "type"
 * and answers with {"status": outcome, "n": reply's n}. With "cancel":
 * true it cancels its request at once. With "tell": true it first tells
 * the same actor "count", which the echo actor handles before the
 * request (one sender, one pipe). */
typedef struct relay_call {
	af_pending *p;
	int calls;
} relay_call;

static void relay_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	relay_call *call = arg;
	af_payload *p = NULL;

	call->calls++;
	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "status");
	af_pack_int(p, status);
	af_pack_str(p, "n");
	af_pack_int(p, reply != NULL ? af_value_get_int(af_msg_payload(reply),
							"n", -1)
				     : -1);
	af_pending_reply(ctx, &call->p, p);
	af_payload_destroy(&p);
	assert_int_equal(call->calls, 1);
	free(call);
}

static af_err relay_handle(af_ctx *ctx, void *state, af_msg *m)
{
	const af_value *in = af_msg_payload(m);
	char *to = af_value_strdup(af_value_get(in, "to"));
	char *type = af_value_strdup(af_value_get(in, "type"));
	int64_t timeout = af_value_get_int(in, "timeout", 1000);
	relay_call *call = calloc(1, sizeof(*call));
	af_payload *p = test_payload_n(af_value_get_int(in, "n", 0));
	uint64_t id = 0;
	af_err err = af_defer(ctx, m, &call->p);

	if (err == AF_OK && af_value_get_bool(in, "tell", false))
		err = af_tell(ctx, to, "count", NULL);
	if (err == AF_OK) {
		err = af_request(ctx, to, type, p, timeout, relay_done, call,
				 &id);
		if (err != AF_OK)
			af_pending_error(ctx, &call->p, err, "relay: %s",
					 af_strerror(err));
	}
	if (err != AF_OK)
		free(call);
	else if (af_value_get_bool(in, "cancel", false))
		assert_int_equal(af_cancel(ctx, id), AF_OK);
	assert_int_equal(af_cancel(ctx, 987654321), AF_ENOTFOUND);
	af_payload_destroy(&p);
	free(to);
	free(type);
	return AF_OK;
}

static const af_actor_ops relay_ops = {
	.type_name = "relay",
	.handle = relay_handle,
};

/* Asks "relay" through client c; returns the outcome relay saw. */
static int64_t relay_via(af_client *c, const char *to, const char *type,
			 int64_t timeout, bool cancel, bool tell, int64_t *n)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	int64_t status;

	af_payload_new(&p);
	af_pack_map(p, 6);
	af_pack_str(p, "to");
	af_pack_str(p, to);
	af_pack_str(p, "type");
	af_pack_str(p, type);
	af_pack_str(p, "timeout");
	af_pack_int(p, timeout);
	af_pack_str(p, "cancel");
	af_pack_bool(p, cancel);
	af_pack_str(p, "n");
	af_pack_int(p, 41);
	af_pack_str(p, "tell");
	af_pack_bool(p, tell);
	assert_int_equal(af_client_request(c, "relay", "go", p, 5000, &reply),
			 AF_OK);
	status = af_value_get_int(af_msg_payload(reply), "status", -100);
	if (n != NULL)
		*n = af_value_get_int(af_msg_payload(reply), "n", -100);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return status;
}

static int64_t relay(fixture *f, const char *to, const char *type,
		     int64_t timeout, bool cancel, int64_t *n)
{
	return relay_via(f->client, to, type, timeout, cancel, false, n);
}

static void test_actor_to_actor(void **state)
{
	fixture *f = *state;
	int64_t n = 0;

	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(relay(f, "echo", "echo", 1000, false, &n), AF_OK);
	assert_int_equal(n, 41);
	assert_int_equal(relay(f, "echo", "fail", 1000, false, NULL),
			 AF_EUSER + 1);
	assert_int_equal(relay(f, "echo", "hang", 30, false, NULL),
			 AF_ETIMEDOUT);
	assert_int_equal(relay(f, "echo", "hang", 0, true, NULL), AF_ECANCELED);
}

static void test_request_to_missing_actor_fails_at_once(void **state)
{
	fixture *f = *state;
	af_msg *reply = NULL;
	const char *text;
	af_payload *p = NULL;

	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	af_payload_new(&p);
	af_pack_map(p, 2);
	af_pack_str(p, "to");
	af_pack_str(p, "ghost");
	af_pack_str(p, "type");
	af_pack_str(p, "echo");
	assert_int_equal(
		af_client_request(f->client, "relay", "go", p, 2000, &reply),
		AF_ENOTFOUND);
	af_msg_error(reply, &text);
	assert_non_null(strstr(text, af_strerror(AF_ENOTFOUND)));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* Stopping an actor answers the requests it still holds. */
typedef struct stopper {
	af_system *sys;
	test_signal *hung;
	int waited;
	int stopped;
} stopper;

static void *stop_echo_once_hung(void *arg)
{
	stopper *s = arg;

	/* Assertions belong to the main thread: record, then check there. */
	s->waited = test_signal_wait(s->hung, 1, 5000);
	s->stopped = af_stop(s->sys, "echo");
	return NULL;
}

/* An actor whose init asks, and returns only once the answer has been
 * sent: the answer must still reach it. */
typedef struct early {
	test_signal *handled;
	test_signal *answered;
	int status;
} early;

static void early_reply(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	early *e = arg;

	e->status = status;
	test_signal_add(e->answered);
}

static af_err early_init(af_ctx *ctx, const void *config, void **state)
{
	early *e = (early *)config;
	af_err err = af_request(ctx, "witness", "echo", NULL, 10000,
				early_reply, e, NULL);

	if (err == AF_OK && !test_signal_wait(e->handled, 1, 10000))
		err = AF_ETIMEDOUT;
	return err;
}

static const af_actor_ops early_ops = {
	.type_name = "early",
	.init = early_init,
};

static void test_answer_during_init(void **state)
{
	fixture *f = *state;
	test_signal handled;
	test_signal answered;
	echo_config cfg = {.replied = &handled};
	early e = {.handled = &handled, .answered = &answered, .status = -1};

	test_signal_init(&handled);
	test_signal_init(&answered);
	assert_int_equal(
		af_spawn(f->sys, "witness", &test_echo_ops, &cfg, NULL), AF_OK);
	assert_int_equal(af_spawn(f->sys, "early", &early_ops, &e, NULL),
			 AF_OK);
	assert_true(test_signal_wait(&answered, 1, 10000));
	assert_int_equal(e.status, AF_OK);
	af_stop(f->sys, "early");
	af_stop(f->sys, "witness");
	test_signal_fini(&handled);
	test_signal_fini(&answered);
}

static void test_stop_answers_deferred(void **state)
{
	fixture *f = *state;
	test_signal hung;
	echo_config cfg = {.hung = &hung};
	stopper s = {.sys = f->sys, .hung = &hung};
	af_payload *p = NULL;
	af_msg *reply = NULL;
	const char *text;
	pthread_t t;

	test_signal_init(&hung);
	assert_int_equal(af_stop(f->sys, "echo"), AF_OK);
	assert_int_equal(af_spawn(f->sys, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	/* relay -> echo "hang": relay's continuation must see AF_ESTOPPED. */
	af_payload_new(&p);
	af_pack_map(p, 3);
	af_pack_str(p, "to");
	af_pack_str(p, "echo");
	af_pack_str(p, "type");
	af_pack_str(p, "hang");
	af_pack_str(p, "timeout");
	af_pack_int(p, 0);
	pthread_create(&t, NULL, stop_echo_once_hung, &s);
	assert_int_equal(
		af_client_request(f->client, "relay", "go", p, 5000, &reply),
		AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "status", 0),
			 AF_ESTOPPED);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	pthread_join(t, NULL);
	assert_true(s.waited);
	assert_int_equal(s.stopped, AF_OK);
	assert_false(af_exists(f->sys, "echo"));
	assert_int_equal(
		af_client_request(f->client, "echo", "echo", NULL, 100, &reply),
		AF_ENOTFOUND);

	/* A client request held by an actor that is stopped. */
	hung.count = 0;
	assert_int_equal(af_spawn(f->sys, "echo", &test_echo_ops, &cfg, NULL),
			 AF_OK);
	pthread_create(&t, NULL, stop_echo_once_hung, &s);
	assert_int_equal(af_client_request(f->client, "echo", "hang", NULL,
					   5000, &reply),
			 AF_ESTOPPED);
	assert_int_equal(af_msg_error(reply, &text), AF_ESTOPPED);
	assert_string_equal(text, af_strerror(AF_ESTOPPED));
	af_msg_destroy(&reply);
	pthread_join(t, NULL);
	assert_true(s.waited);
	assert_int_equal(s.stopped, AF_OK);
	test_signal_fini(&hung);
}

/* ---- a name taken again ------------------------------------------------ */

/* Stops "echo" and spawns a new actor under the same name, with cfg. */
static void respawn_echo(fixture *f, echo_config *cfg)
{
	assert_int_equal(af_stop(f->sys, "echo"), AF_OK);
	assert_false(af_exists(f->sys, "echo"));
	assert_int_equal(af_spawn(f->sys, "echo", &test_echo_ops, cfg, NULL),
			 AF_OK);
}

static void request_echo_n(af_client *c, int64_t n)
{
	af_payload *p = test_payload_n(n);
	af_msg *reply = NULL;

	assert_int_equal(af_client_request(c, "echo", "echo", p, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "n", -1), n);
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* A client that talked to "echo" reaches the actor that takes the name
 * after it, for requests and tells, however often the name changes
 * hands. */
static void test_client_reaches_respawned_actor(void **state)
{
	fixture *f = *state;
	atomic_int count = 0;
	echo_config cfg = {.count = &count};

	request_echo_n(f->client, 1);
	for (int i = 0; i < 3; i++) {
		respawn_echo(f, &cfg);
		request_echo_n(f->client, 2 + i);
		/* The tell goes ahead of the request on the same pipe: once
		 * the reply is here, the tell was handled. */
		assert_int_equal(
			af_client_tell(f->client, "echo", "count", NULL, 5000),
			AF_OK);
		request_echo_n(f->client, 10 + i);
		assert_int_equal(atomic_load(&count), i + 1);
	}
}

/* A stream the old actor was producing ends once, with AF_ESTOPPED, and
 * does not take down a request the same client sends the new actor. */
static void test_client_stream_across_respawn(void **state)
{
	fixture *f = *state;
	af_payload *args = test_payload_n(0);
	af_stream *s = NULL;
	af_msg *m = NULL;
	af_err err;

	assert_int_equal(
		af_client_stream(f->client, "echo", "stream", args, 20000, &s),
		AF_OK);
	assert_int_equal(af_stream_next(s, 10000, &m), AF_OK);
	af_msg_destroy(&m);
	respawn_echo(f, NULL);
	request_echo_n(f->client, 7);
	/* Chunks sent before the stop may still come; then its one end. */
	while ((err = af_stream_next(s, 10000, &m)) == AF_OK)
		af_msg_destroy(&m);
	assert_int_equal(err, AF_ESTOPPED);
	af_msg_destroy(&m);
	assert_int_equal(af_stream_next(s, 0, &m), AF_ESTOPPED);
	assert_null(m);
	af_stream_close(&s);
	af_payload_destroy(&args);
	request_echo_n(f->client, 8);
}

/* An actor that requested and told "echo" reaches the new "echo". */
static void test_actor_reaches_respawned_actor(void **state)
{
	fixture *f = *state;
	atomic_int count = 0;
	echo_config cfg = {.count = &count};
	int64_t n = 0;

	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(
		relay_via(f->client, "echo", "echo", 5000, false, true, &n),
		AF_OK);
	for (int i = 0; i < 3; i++) {
		/* A request first, then a tell and a request. */
		respawn_echo(f, &cfg);
		n = 0;
		assert_int_equal(relay_via(f->client, "echo", "echo", 5000,
					   false, false, &n),
				 AF_OK);
		assert_int_equal(n, 41);
		assert_int_equal(relay_via(f->client, "echo", "echo", 5000,
					   false, true, &n),
				 AF_OK);
		assert_int_equal(atomic_load(&count), 1);
		/* A tell first. */
		atomic_store(&count, 0);
		respawn_echo(f, &cfg);
		assert_int_equal(relay_via(f->client, "echo", "echo", 5000,
					   false, true, &n),
				 AF_OK);
		assert_int_equal(atomic_load(&count), 1);
		atomic_store(&count, 0);
	}
}

/* "relay" holds a request to "slow" while the "echo" it used before is
 * replaced: the new "echo" is reached at once, and the held request still
 * ends exactly once, when its target stops. */
typedef struct held {
	af_system *sys;
	int64_t status;
} held;

static void *relay_hang_on_slow(void *arg)
{
	held *h = arg;
	af_client *c = NULL;

	if (af_client_new(&c, h->sys) != AF_OK)
		return NULL;
	h->status = relay_via(c, "slow", "hang", 0, false, false, NULL);
	af_client_destroy(&c);
	return NULL;
}

static void test_actor_with_requests_outstanding_reaches_respawned(void **state)
{
	fixture *f = *state;
	test_signal hung;
	echo_config slow_cfg = {.hung = &hung};
	held h = {.sys = f->sys, .status = -1};
	int64_t n = 0;
	pthread_t t;

	test_signal_init(&hung);
	assert_int_equal(
		af_spawn(f->sys, "slow", &test_echo_ops, &slow_cfg, NULL),
		AF_OK);
	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(relay(f, "echo", "echo", 5000, false, &n), AF_OK);
	pthread_create(&t, NULL, relay_hang_on_slow, &h);
	assert_true(test_signal_wait(&hung, 1, 5000));
	for (int i = 0; i < 3; i++) {
		respawn_echo(f, NULL);
		n = 0;
		assert_int_equal(relay(f, "echo", "echo", 5000, false, &n),
				 AF_OK);
		assert_int_equal(n, 41);
	}
	assert_int_equal(af_stop(f->sys, "slow"), AF_OK);
	pthread_join(t, NULL);
	assert_int_equal(h.status, AF_ESTOPPED);
	test_signal_fini(&hung);
}

/* The actor answering a requester whose name was taken again answers the
 * new requester. */
static void test_answer_reaches_respawned_requester(void **state)
{
	fixture *f = *state;
	int64_t n = 0;

	assert_int_equal(af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(relay(f, "echo", "echo", 5000, false, &n), AF_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(af_stop(f->sys, "relay"), AF_OK);
		assert_int_equal(
			af_spawn(f->sys, "relay", &relay_ops, NULL, NULL),
			AF_OK);
		n = 0;
		assert_int_equal(relay(f, "echo", "echo", 5000, false, &n),
				 AF_OK);
		assert_int_equal(n, 41);
	}
}

/* An answer meant for a requester that stopped, delayed until a new
 * actor of the same name has requests of its own, must not be taken by
 * the new one as its own. "slowpoke" holds its first request in the
 * handler until the gate opens, then echoes; "asker" requests it from
 * init and keeps what it gets. */
typedef struct slowpoke {
	test_signal entered;
	test_signal gate;
} slowpoke;

static af_err slowpoke_init(af_ctx *ctx, const void *config, void **state)
{
	*state = (void *)config;
	return AF_OK;
}

static af_err slowpoke_handle(af_ctx *ctx, void *state, af_msg *m)
{
	slowpoke *s = state;
	af_payload *p = NULL;
	af_err err;

	if (strcmp(af_msg_type(m), "block") == 0) {
		/* Slow work, done in the handler: the cancel of the
		 * requester that gives up waits in the mailbox meanwhile. */
		test_signal_add(&s->entered);
		test_signal_wait(&s->gate, 1, 10000);
	}
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_value(p, af_msg_payload(m));
	err = af_reply(ctx, m, p);
	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops slowpoke_ops = {
	.type_name = "slowpoke",
	.init = slowpoke_init,
	.handle = slowpoke_handle,
};

typedef struct asker {
	const char *type; /* what to ask "slowpoke" */
	int64_t n;        /* and with what */
	test_signal done;
	int status;
	int64_t got; /* the n of the answer taken */
} asker;

static void asker_answered(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	asker *a = arg;

	a->status = status;
	if (status == AF_OK)
		a->got = af_value_get_int(af_msg_payload(reply), "n", -1);
	test_signal_add(&a->done);
}

static af_err asker_init(af_ctx *ctx, const void *config, void **state)
{
	asker *a = (asker *)config;
	af_payload *p = test_payload_n(a->n);
	af_err err = af_request(ctx, "slowpoke", a->type, p, 10000,
				asker_answered, a, NULL);

	af_payload_destroy(&p);
	*state = a;
	return err;
}

static const af_actor_ops asker_ops = {
	.type_name = "asker",
	.init = asker_init,
};

static void test_answer_to_old_requester_is_not_taken_by_new(void **state)
{
	fixture *f = *state;
	slowpoke s;
	asker old = {.type = "block", .n = 1, .status = -1};
	asker young = {.type = "echo", .n = 2, .status = -1};
	af_system_stats stats;

	test_signal_init(&s.entered);
	test_signal_init(&s.gate);
	test_signal_init(&old.done);
	test_signal_init(&young.done);
	assert_int_equal(af_spawn(f->sys, "slowpoke", &slowpoke_ops, &s, NULL),
			 AF_OK);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(
			af_spawn(f->sys, "asker", &asker_ops, &old, NULL),
			AF_OK);
		assert_true(test_signal_wait(&s.entered, round + 1, 5000));
		/* The old asker goes while its answer is being made. */
		assert_int_equal(af_stop(f->sys, "asker"), AF_OK);
		assert_true(test_signal_wait(&old.done, round + 1, 5000));
		assert_int_equal(old.status, AF_ECANCELED);
		assert_int_equal(
			af_spawn(f->sys, "asker", &asker_ops, &young, NULL),
			AF_OK);
		/* The old answer goes out first, to the name "asker". */
		test_signal_add(&s.gate);
		assert_true(test_signal_wait(&young.done, round + 1, 5000));
		assert_int_equal(young.status, AF_OK);
		assert_int_equal(young.got, 2);
		assert_int_equal(af_stop(f->sys, "asker"), AF_OK);
		/* Reopen nothing: the next round's old asker blocks again. */
		pthread_mutex_lock(&s.gate.mu);
		s.gate.count = 0;
		pthread_mutex_unlock(&s.gate.mu);
	}
	/* The stray answers were seen, and dropped as late. */
	assert_int_equal(af_system_get_stats(f->sys, &stats), AF_OK);
	assert_true(stats.late >= 2);
	assert_int_equal(af_stop(f->sys, "slowpoke"), AF_OK);
	test_signal_fini(&s.entered);
	test_signal_fini(&s.gate);
	test_signal_fini(&old.done);
	test_signal_fini(&young.done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_echo_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_sequential, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_remote_error, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_handler_without_reply,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_huge_timeout_is_no_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_reply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_addresses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_unfinished_payload_is_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actor_to_actor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_request_to_missing_actor_fails_at_once, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_answer_during_init, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_deferred,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_client_reaches_respawned_actor, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_client_stream_across_respawn, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_actor_reaches_respawned_actor, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_actor_with_requests_outstanding_reaches_respawned,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_answer_reaches_respawned_requester, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_answer_to_old_requester_is_not_taken_by_new, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
