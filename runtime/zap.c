/*
 * The ZAP handler (ZeroMQ RFC 27): ZeroMQ asks it, over
 * inproc://zeromq.zap.01 in the system's context, whether to admit each
 * connection to a CURVE endpoint, naming the endpoint's ZAP domain and the
 * client's public key. One per system, on its own thread with a REP socket,
 * started by the first CURVE export and stopped after every actor. A
 * connection is admitted only when its key is one its endpoint's domain
 * allows; plain (NULL mechanism) connections, which ZeroMQ may also submit,
 * are admitted: their endpoints asked for no authentication.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"
#include "system.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* A request has 6 frames plus the mechanism's credentials (1 for CURVE). */
#define ZAP_MAX_FRAMES 8

typedef struct zap_domain {
	struct zap_domain *next;
	char name[32];
	size_t n;
	uint8_t (*keys)[32]; /* sorted, for bsearch */
} zap_domain;

struct af__zap {
	pthread_t thread;
	void *rep;     /* the handler's, on its thread */
	void *ctl_in;  /* the handler's: a message here stops it */
	void *ctl_out; /* af__zap_stop's */
	pthread_mutex_t mu;
	zap_domain *domains;
	uint64_t next_domain;
};

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

static bool frame_is(zmq_msg_t *m, const char *s)
{
	size_t len = strlen(s);

	return zmq_msg_size(m) == len && memcmp(zmq_msg_data(m), s, len) == 0;
}

/* Whether the request in frames (n of them) is admitted. */
static bool admitted(struct af__zap *z, zmq_msg_t *frames, int n)
{
	bool ok = false;

	if (n < 6 || !frame_is(&frames[0], "1.0"))
		return false;
	if (frame_is(&frames[5], "NULL"))
		return true;
	if (!frame_is(&frames[5], "CURVE") || n < 7 ||
	    zmq_msg_size(&frames[6]) != 32)
		return false;
	pthread_mutex_lock(&z->mu);
	for (zap_domain *d = z->domains; d != NULL; d = d->next) {
		if (frame_is(&frames[2], d->name)) {
			ok = bsearch(zmq_msg_data(&frames[6]), d->keys, d->n,
				     32, key_cmp) != NULL;
			break;
		}
	}
	pthread_mutex_unlock(&z->mu);
	return ok;
}

static void send_str(void *sock, const char *s, int more)
{
	zmq_send(sock, s, strlen(s), more);
}

/* Reads one request and answers it. A REP socket must answer each request
 * before it can read the next, so a malformed one is answered too. */
static void handle_request(struct af__zap *z)
{
	zmq_msg_t frames[ZAP_MAX_FRAMES];
	int n = 0;
	bool more = true;
	bool too_many = false;
	bool ok;

	while (more) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, z->rep, 0) < 0) {
			zmq_msg_close(&m);
			if (n == 0)
				return; /* nothing read: nothing to answer */
			break;
		}
		more = zmq_msg_more(&m);
		if (n < ZAP_MAX_FRAMES) {
			zmq_msg_init(&frames[n]);
			zmq_msg_move(&frames[n++], &m);
		} else {
			too_many = true;
		}
		zmq_msg_close(&m);
	}
	ok = !too_many && admitted(z, frames, n);
	send_str(z->rep, "1.0", ZMQ_SNDMORE);
	if (n > 1)
		zmq_send(z->rep, zmq_msg_data(&frames[1]),
			 zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
	else
		send_str(z->rep, "", ZMQ_SNDMORE);
	send_str(z->rep, ok ? "200" : "400", ZMQ_SNDMORE);
	send_str(z->rep, ok ? "OK" : "not allowed", ZMQ_SNDMORE);
	send_str(z->rep, "", ZMQ_SNDMORE); /* user id */
	send_str(z->rep, "", 0);           /* metadata */
	for (int i = 0; i < n; i++)
		zmq_msg_close(&frames[i]);
}

static void *zap_main(void *arg)
{
	struct af__zap *z = arg;
	zmq_pollitem_t items[2] = {{.socket = z->rep, .events = ZMQ_POLLIN},
				   {.socket = z->ctl_in, .events = ZMQ_POLLIN}};

	for (;;) {
		if (zmq_poll(items, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (items[1].revents & ZMQ_POLLIN)
			break;
		if (items[0].revents & ZMQ_POLLIN)
			handle_request(z);
	}
	zmq_close(z->rep);
	zmq_close(z->ctl_in);
	return NULL;
}

static void *socket_linger0(void *zctx, int type)
{
	void *s = zmq_socket(zctx, type);
	int zero = 0;

	if (s != NULL)
		zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	return s;
}

/* Starts the handler. With sys->mu held. */
static af_err zap_start(af_system *sys)
{
	struct af__zap *z = calloc(1, sizeof(*z));
	char ctl[64];
	af_err err = AF_ESYS;

	if (z == NULL)
		return AF_ENOMEM;
	if (pthread_mutex_init(&z->mu, NULL) != 0)
		goto undo_z;
	z->rep = socket_linger0(sys->zctx, ZMQ_REP);
	z->ctl_in = socket_linger0(sys->zctx, ZMQ_PAIR);
	z->ctl_out = socket_linger0(sys->zctx, ZMQ_PAIR);
	if (z->rep == NULL || z->ctl_in == NULL || z->ctl_out == NULL)
		goto undo_sockets;
	if (zmq_bind(z->rep, ZAP_ENDPOINT) != 0) {
		err = errno == EADDRINUSE ? AF_EEXIST : AF_ESYS;
		goto undo_sockets;
	}
	snprintf(ctl, sizeof(ctl), "inproc://af.zap.%p", (void *)z);
	if (zmq_bind(z->ctl_in, ctl) != 0 || zmq_connect(z->ctl_out, ctl) != 0)
		goto undo_sockets;
	/* The sockets move to the handler's thread: pthread_create orders
	 * everything done to them here before the thread runs. */
	if (pthread_create(&z->thread, NULL, zap_main, z) != 0)
		goto undo_sockets;
	sys->zap = z;
	return AF_OK;
undo_sockets:
	if (z->rep != NULL)
		zmq_close(z->rep);
	if (z->ctl_in != NULL)
		zmq_close(z->ctl_in);
	if (z->ctl_out != NULL)
		zmq_close(z->ctl_out);
	pthread_mutex_destroy(&z->mu);
undo_z:
	free(z);
	return err;
}

af_err af__zap_add_domain(af_system *sys, const uint8_t (*keys)[32], size_t n,
			  char *domain, size_t cap)
{
	zap_domain *d = calloc(1, sizeof(*d));
	af_err err = AF_OK;

	if (d == NULL)
		return AF_ENOMEM;
	d->keys = malloc(n * sizeof(*d->keys));
	if (d->keys == NULL) {
		free(d);
		return AF_ENOMEM;
	}
	memcpy(d->keys, keys, n * sizeof(*d->keys));
	qsort(d->keys, n, sizeof(*d->keys), key_cmp);
	d->n = n;
	pthread_mutex_lock(&sys->mu);
	if (sys->zap == NULL)
		err = zap_start(sys);
	if (err == AF_OK) {
		struct af__zap *z = sys->zap;
		pthread_mutex_lock(&z->mu);
		snprintf(d->name, sizeof(d->name), "af.curve.%llu",
			 (unsigned long long)++z->next_domain);
		d->next = z->domains;
		z->domains = d;
		pthread_mutex_unlock(&z->mu);
		snprintf(domain, cap, "%s", d->name);
	}
	pthread_mutex_unlock(&sys->mu);
	if (err != AF_OK) {
		free(d->keys);
		free(d);
	}
	return err;
}

void af__zap_stop(af_system *sys)
{
	struct af__zap *z = sys->zap;

	if (z == NULL)
		return;
	sys->zap = NULL;
	/* A PAIR send to a connected peer does not block; if it failed the
	 * handler would never stop, so block on it. */
	zmq_send(z->ctl_out, "", 0, 0);
	pthread_join(z->thread, NULL);
	zmq_close(z->ctl_out);
	while (z->domains != NULL) {
		zap_domain *d = z->domains;
		z->domains = d->next;
		free(d->keys);
		free(d);
	}
	pthread_mutex_destroy(&z->mu);
	free(z);
}
