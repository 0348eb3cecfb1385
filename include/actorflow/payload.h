/*
 * actorflow: building and reading message payloads.
 *
 * A payload is one msgpack value (usually a map). Programs build one with an
 * af_payload writer and read received ones through const af_value views, or
 * step through their bytes in place with an af_reader; no msgpack type
 * appears in this header.
 *
 * Writer errors are sticky: after the first failure every further call is a
 * no-op returning that error, and sending the payload fails with it, so a
 * builder sequence may check only its last call.
 *
 * Threading: a writer, and the values of one message, belong to one thread
 * at a time.
 */
#ifndef ACTORFLOW_PAYLOAD_H
#define ACTORFLOW_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actorflow/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- writing ---------------------------------------------------------- */

typedef struct af_payload af_payload;

/* Creates an empty writer. Returns AF_OK or AF_ENOMEM. Caller owns *out and
 * frees it with af_payload_destroy(). */
af_err af_payload_new(af_payload **out);

/* Frees the writer; accepts NULL and a pointer to NULL; sets *p to NULL. */
void af_payload_destroy(af_payload **p);

/* Empties the writer (keeping its memory) and clears a sticky error. */
void af_payload_reset(af_payload *p);

af_err af_pack_nil(af_payload *p);
af_err af_pack_bool(af_payload *p, bool v);
af_err af_pack_int(af_payload *p, int64_t v);
af_err af_pack_uint(af_payload *p, uint64_t v);
af_err af_pack_double(af_payload *p, double v);
/* s must be NUL-terminated; NULL packs nil. */
af_err af_pack_str(af_payload *p, const char *s);
af_err af_pack_strn(af_payload *p, const char *s, size_t len);
af_err af_pack_bin(af_payload *p, const void *data, size_t len);

/* Container with a known number of elements (a map's n counts pairs). */
af_err af_pack_array(af_payload *p, uint32_t n);
af_err af_pack_map(af_payload *p, uint32_t n);

/* Containers counted for you: begin, pack the elements (key, value, key,
 * value… for a map), end. They nest up to 32 deep; a payload sent in a
 * message may nest 31 (the envelope is one level). An end without its begin,
 * or a map with an odd number of elements, is AF_EINVAL. */
af_err af_pack_array_begin(af_payload *p);
af_err af_pack_array_end(af_payload *p);
af_err af_pack_map_begin(af_payload *p);
af_err af_pack_map_end(af_payload *p);

struct af_value;
/* Packs a copy of a received value (for forwarding). It is encoded again
 * from its unpacked form; af_pack_raw forwards encoded bytes as they are. */
af_err af_pack_value(af_payload *p, const struct af_value *v);

/* Appends len bytes that already hold one msgpack value (a received
 * payload from af_msg_payload_raw, bytes from af_payload_data, a
 * constant), copied as they are, without decoding or encoding them. The
 * bytes are untrusted: they are checked first, and nothing is appended
 * unless they are exactly one well-formed value. Errors, sticky like the
 * others: AF_EPROTO when they are not (malformed, truncated, len 0, or
 * bytes after the value, or nesting deeper than 32 levels on their own);
 * AF_EINVAL when p or msgpack is NULL, when the value would nest beyond
 * the writer's 32 levels where it goes, or where a plain value could not
 * go either (a second value at the top level). */
af_err af_pack_raw(af_payload *p, const void *msgpack, size_t len);

/* The sticky error, or AF_EINVAL while a begin has no end, or AF_OK. */
af_err af_payload_status(const af_payload *p);

/* The encoded bytes so far; valid until the next call on p. */
const void *af_payload_data(const af_payload *p, size_t *len);

/* ---- reading ---------------------------------------------------------- */

typedef struct af_value af_value;

typedef enum af_type {
	AF_TYPE_NONE = 0, /* a missing value (a NULL pointer) */
	AF_TYPE_NIL,
	AF_TYPE_BOOL,
	AF_TYPE_INT, /* any integer, signed or not */
	AF_TYPE_FLOAT,
	AF_TYPE_STR,
	AF_TYPE_BIN,
	AF_TYPE_ARRAY,
	AF_TYPE_MAP,
	AF_TYPE_EXT
} af_type;

/* Values are views into a received message and live as long as it. Every
 * reader accepts NULL (a missing value) and then fails with AF_ENOTFOUND,
 * so lookups chain without checks in between. */
af_type af_value_type(const af_value *v);

af_err af_value_bool(const af_value *v, bool *out);
/* AF_ERANGE when the integer does not fit. */
af_err af_value_int(const af_value *v, int64_t *out);
af_err af_value_uint(const af_value *v, uint64_t *out);
/* Accepts integers as well as floats. */
af_err af_value_double(const af_value *v, double *out);
/* The bytes of a string: not NUL-terminated. */
af_err af_value_str(const af_value *v, const char **s, size_t *len);
af_err af_value_bin(const af_value *v, const void **data, size_t *len);
/* A malloc'ed NUL-terminated copy of a string value; NULL when v is not a
 * string or memory ran out. Caller frees. */
char *af_value_strdup(const af_value *v);
/* True when v is a string equal to s. */
bool af_value_str_eq(const af_value *v, const char *s);

/* Number of elements of an array, pairs of a map, bytes of a string or
 * binary; 0 for anything else. */
size_t af_value_len(const af_value *v);
/* Element i of an array, or NULL. */
const af_value *af_value_at(const af_value *v, size_t i);
/* Key and value of pair i of a map, or NULL. */
const af_value *af_value_key_at(const af_value *v, size_t i);
const af_value *af_value_val_at(const af_value *v, size_t i);
/* The value under string key in a map, or NULL. Linear in the map's size. */
const af_value *af_value_get(const af_value *v, const char *key);

/* Shorthands for optional fields: the value under key, or dflt when the key
 * is missing or of another type. The string form returns a borrowed pointer
 * to the bytes and their length in *len. */
int64_t af_value_get_int(const af_value *map, const char *key, int64_t dflt);
double af_value_get_double(const af_value *map, const char *key, double dflt);
bool af_value_get_bool(const af_value *map, const char *key, bool dflt);

/* ---- reading in place ------------------------------------------------ */

/* A reader steps through encoded msgpack (a payload from
 * af_msg_payload_raw, a writer's bytes) one value at a time, where it
 * lies: nothing is unpacked or allocated, strings are views into the
 * bytes, and any value can be taken whole as its encoded bytes
 * (af_read_raw), ready for af_pack_raw. It suits a large payload read once
 * from front to back; af_msg_payload suits lookups by key.
 *
 * A container is read as its header (af_read_array, af_read_map), then
 * its elements in order (a map's key, value, key, value...); af_read_raw
 * takes or skips a whole value, containers and all. The bytes may be
 * untrusted: every read checks that its value lies within them. A read
 * that fails moves nothing: AF_ENOTFOUND when no value is left, AF_ETYPE
 * when the next one is of another type, AF_ERANGE when a number does not
 * fit, AF_EPROTO when the bytes are malformed or end inside the value,
 * AF_EINVAL for a NULL argument.
 *
 * The fields are private. A reader may be copied: the copy reads on from
 * the same place. It belongs to one thread at a time. */
typedef struct af_reader {
	const unsigned char *data;
	size_t len;
	size_t pos;
} af_reader;

/* Starts r at the first of the len bytes at data, which must stay valid
 * while r reads them. */
void af_reader_init(af_reader *r, const void *data, size_t len);

/* The type of the next value, without reading it; AF_TYPE_NONE when no
 * value is left (or the next byte is not one msgpack knows). */
af_type af_reader_type(const af_reader *r);

/* Reads a container's header: its number of elements (a map's pairs). */
af_err af_read_array(af_reader *r, uint32_t *n);
af_err af_read_map(af_reader *r, uint32_t *n);

/* Reads a scalar, as the af_value readers of the same name do. */
af_err af_read_nil(af_reader *r);
af_err af_read_bool(af_reader *r, bool *out);
af_err af_read_int(af_reader *r, int64_t *out);
af_err af_read_uint(af_reader *r, uint64_t *out);
af_err af_read_double(af_reader *r, double *out);
/* A view of the string's bytes, not NUL-terminated, valid as long as the
 * reader's bytes. */
af_err af_read_str(af_reader *r, const char **s, size_t *len);
af_err af_read_bin(af_reader *r, const void **data, size_t *len);

/* Reads the next value whole, whatever it is, and gives its encoded bytes
 * (a view into the reader's bytes): the way to forward a value with
 * af_pack_raw, and to skip one. AF_EPROTO also for a value nested deeper
 * than 32 levels. */
af_err af_read_raw(af_reader *r, const void **data, size_t *len);

/* ---- a parsed document ----------------------------------------------- */

typedef struct af_doc af_doc;

/* Parses one msgpack value that must fill data exactly. Untrusted input is
 * fine: AF_EPROTO for malformed, truncated or trailing bytes, or nesting
 * deeper than 32 (msgpack-c's parser stops there); AF_ENOMEM. Caller owns
 * *out (af_doc_destroy). */
af_err af_doc_parse(af_doc **out, const void *data, size_t len);
void af_doc_destroy(af_doc **d);
const af_value *af_doc_root(const af_doc *d);

#ifdef __cplusplus
}
#endif
#endif
