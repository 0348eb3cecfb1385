/*
 * A received message: the decoded envelope plus what handlers and
 * continuations read from it. Messages handed to callbacks live on the
 * stack of the loop that received them and view the received bytes; a
 * message the caller owns (a client's reply) has its own copy.
 */
#ifndef AF_RUNTIME_MSG_H
#define AF_RUNTIME_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <zmq.h>

#include "actorflow/actor.h"
#include "envelope.h"

struct af_msg {
	af__envelope env;
	char type[AF__TYPE_MAX + 1];
	int64_t deadline_us; /* -1: none */
	const void *raw;     /* the encoded envelope */
	size_t raw_len;
	/* The payload is unpacked into zone on first read. */
	msgpack_zone *zone;
	/* A request received by an actor: the way back to its sender, and
	 * whether it has been answered or kept. */
	zmq_msg_t *route;
	int nroute;
	const char *reply_to; /* a local sender's inbox (not terminated) */
	size_t reply_to_len;
	bool answered;
	bool deferred;
	/* When an actor took the request from its mailbox (af__now_us), for
	 * its latency; 0 otherwise. */
	int64_t arrived_us;
	bool from_remote; /* came over ipc or tcp */
	/* An error message's code and description. */
	int error_code;
	char *error_text;
	/* Set only for messages the caller owns. */
	void *own_buf;
	msgpack_zone *own_zone;
};

/* Decodes raw's header into m and validates its payload; the views point
 * into raw, and the payload is unpacked into zone when first read (at once
 * for an error message, whose code and text the runtime reads). */
af_err af__msg_decode(af_msg *m, const void *raw, size_t len, size_t max_size,
		      msgpack_zone *zone);
/* As af__msg_decode for the envelope at the start of raw, which may be
 * followed by more: *used receives its length. */
af_err af__msg_decode_first(af_msg *m, const void *raw, size_t len,
			    size_t max_size, msgpack_zone *zone, size_t *used);
/* Frees what decode allocated; m's memory itself stays with the caller. */
void af__msg_clear(af_msg *m);
/* A caller-owned copy of m, for af_msg_destroy. */
af_err af__msg_clone(const af_msg *m, af_msg **out);

#endif
