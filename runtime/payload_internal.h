/*
 * What the runtime needs of payloads beyond the public API.
 */
#ifndef AF_RUNTIME_PAYLOAD_INTERNAL_H
#define AF_RUNTIME_PAYLOAD_INTERNAL_H

#include <stddef.h>

#include "actorflow/payload.h"

/* The deepest nesting msgpack-c's parser accepts: libmsgpackc is built with
 * a fixed stack of MSGPACK_EMBED_STACK_SIZE (32) containers and fails with
 * a "no memory" error beyond it. Decoders check against this bound first
 * so that deep input is AF_EPROTO, never AF_ENOMEM.
 * The envelope array is one of these levels, so a payload inside an
 * envelope may nest 31 deep. */
#define AF__PARSE_DEPTH 32

/* The bytes to put on the wire for payload p: its encoded value, or a
 * single msgpack nil (0xc0, from static storage) when p is NULL or empty.
 * Valid until the next call on p. The caller checks af_payload_status()
 * first; the bytes of a writer in error are meaningless. */
const void *af__payload_bytes(const af_payload *p, size_t *len);

#endif
