/*
 * The wire envelope: one msgpack array of eight elements,
 *
 *   [version, kind, id, seq, type, ttl_ms, to, payload]
 *
 * version  uint, AF__PROTOCOL_VERSION
 * kind     uint, an af_kind
 * id       uint64 correlation id chosen by the requester (0 for a tell)
 * seq      uint64 sequence number of a stream chunk (0 otherwise)
 * type     str (at most AF__TYPE_MAX bytes) or nil
 * ttl_ms   uint, milliseconds left until the requester's deadline when the
 *          message was sent, 0 for none; relative so that clocks of
 *          different hosts need not agree
 * to       str naming the target actor (at most AF__NAME_MAX bytes) or nil
 * payload  any msgpack value
 *
 * Because the payload is the last element, a sender writes the header and
 * appends the payload bytes it already has: no re-encoding.
 *
 * A batch (kind AF_KIND_BATCH, no type, id or ttl) carries as its payload
 * an array of complete envelopes, all tells: the tells one actor sends to
 * one other in one turn of its loop travel as one ZeroMQ message.
 */
#ifndef AF_RUNTIME_ENVELOPE_H
#define AF_RUNTIME_ENVELOPE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actorflow/actor.h"
#include "clock.h"

#define AF__PROTOCOL_VERSION 1
#define AF__TYPE_MAX 255
#define AF__NAME_MAX 255
/* The furthest deadline a message can set: 2^40 ms, about 35 years, the
 * bound of every timeout the API takes (AF__MS_MAX). A larger ttl_ms (up
 * to UINT64_MAX on the wire) counts as this much, so that turning it into
 * a time of the monotonic clock cannot overflow. */
#define AF__TTL_MAX_MS ((uint64_t)AF__MS_MAX)
/* Header bytes never exceed this (array, version, kind, id, seq, two strings
 * of at most 255 bytes with their 2-byte headers, ttl). */
#define AF__HEADER_MAX 600

typedef struct af__envelope {
	af_kind kind;
	uint64_t id;
	uint64_t seq;
	const char *type; /* not NUL-terminated; NULL when nil */
	size_t type_len;
	uint64_t ttl_ms;
	const char *to; /* not NUL-terminated; NULL when nil */
	size_t to_len;
	/* Set by decoding: the payload's bytes, and (once unpacked, see
	 * af__envelope_payload) the payload itself. */
	const void *payload_data;
	size_t payload_len;
	const msgpack_object *payload;
} af__envelope;

/* Writes the header of env (all but the payload) to buf. AF_EINVAL when
 * type or to are too long or kind is unknown. */
af_err af__envelope_header(uint8_t *buf, size_t cap, size_t *len,
			   const af__envelope *env);

/* Decodes an untrusted message. The envelope's pointers point into data and
 * into zone, which the caller clears or destroys when done. AF_EMSGSIZE when
 * len > max_size, AF_EVERSION for another version, AF_EPROTO for anything
 * malformed (including an unknown kind), AF_ENOMEM. */
af_err af__envelope_decode(af__envelope *env, const void *data, size_t len,
			   size_t max_size, msgpack_zone *zone);

/* Decodes the header of an untrusted message in place and checks that the
 * payload bytes are one well-formed value, without unpacking the payload:
 * a message whose payload is never read costs no allocation. Errors as
 * af__envelope_decode; env->payload stays NULL. */
af_err af__envelope_decode_header(af__envelope *env, const void *data,
				  size_t len, size_t max_size);

/* Decodes the envelope at the start of data, which may be followed by
 * more (the envelopes in a batch): *used receives its length. */
af_err af__envelope_decode_first(af__envelope *env, const void *data,
				 size_t len, size_t max_size, size_t *used);

/* The deadline env's ttl_ms sets, as a time of the monotonic clock
 * (af__now_us) given the time now_us it was received: -1 for none (ttl_ms
 * 0), else now_us plus ttl_ms, clamped to AF__TTL_MAX_MS. now_us must be
 * a reading of that clock (well below INT64_MAX - AF__TTL_MAX_MS * 1000). */
int64_t af__envelope_deadline_us(const af__envelope *env, int64_t now_us);

/* What can still be read of a message that did not decode: its version,
 * kind and id, the three fields every protocol version keeps first.
 * True when data starts with an array of at least three elements whose
 * first three are unsigned integers; nothing after them is looked at.
 * The way to answer a malformed, oversized or foreign request. */
bool af__envelope_salvage(const void *data, size_t len, uint64_t *version,
			  uint64_t *kind, uint64_t *id);

/* Unpacks the payload of an envelope decoded by
 * af__envelope_decode_header into zone and sets env->payload. AF_OK,
 * AF_ENOMEM or AF_EPROTO. */
af_err af__envelope_payload(af__envelope *env, msgpack_zone *zone);

/* Checks that data holds exactly one well-formed msgpack value whose
 * containers never claim more elements than bytes remain and whose nesting
 * is at most max_depth. msgpack-c allocates a container's elements before
 * reading them, so without this check a 5-byte message could ask it for
 * gigabytes. AF_OK or AF_EPROTO. */
af_err af__msgpack_check(const void *data, size_t len, unsigned max_depth);

/* Like af__msgpack_check for the first value of data, which may be
 * followed by more: *used receives its length. */
af_err af__msgpack_first(const void *data, size_t len, unsigned max_depth,
			 size_t *used);

/* Appends the payload of an error reply, {"code": code, "message": text},
 * to p. text may be NULL (af_strerror(code) is used). */
af_err af__error_payload(af_payload *p, int code, const char *text);

/* Reads an error payload: AF_OK with *code and *text (a view of at most
 * *text_len bytes), or AF_EPROTO when the payload has no integer code. */
af_err af__error_read(const msgpack_object *payload, int *code,
		      const char **text, size_t *text_len);

#endif
