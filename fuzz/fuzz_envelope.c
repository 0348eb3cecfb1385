/*
 * libFuzzer target: decodes untrusted bytes as an envelope and as a bare
 * payload document, reads every decoded field and value through the same
 * readers an actor uses, and checks that what decodes survives a
 * re-encode unchanged. The same bytes are also read in place (af_reader)
 * and appended raw (af_pack_raw), which must accept exactly what parses.
 * Built and run by scripts/fuzz.sh.
 *
 * FUZZ_SOURCES: runtime/envelope.c runtime/msgpack_check.c runtime/value.c
 * FUZZ_SOURCES: runtime/payload.c runtime/reader.c runtime/err.c
 * FUZZ_PKGS: msgpack
 */
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "payload_internal.h"
#include "require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where every byte read goes, so the reads cannot be optimized away and
 * AddressSanitizer sees each one. */
static volatile uint64_t sink;

static msgpack_zone zone, zone2;
static af_payload *writer;
static af_payload *writer2;

static void touch(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = sink;

	for (size_t i = 0; i < len; i++)
		h = h * 31 + b[i];
	sink = h;
}

/* Recursion is bounded: decoded values nest at most AF__PARSE_DEPTH. */
static void walk(const af_value *v)
{
	bool b;
	int64_t i;
	uint64_t u;
	double d;
	const char *s;
	const void *bin;
	size_t len, n;
	af_err err;

	switch (af_value_type(v)) {
	case AF_TYPE_NONE:
		abort();
	case AF_TYPE_NIL:
		break;
	case AF_TYPE_BOOL:
		require(af_value_bool(v, &b) == AF_OK);
		sink += b;
		break;
	case AF_TYPE_INT:
		err = af_value_int(v, &i);
		require(err == AF_OK || err == AF_ERANGE);
		err = af_value_uint(v, &u);
		require(err == AF_OK || err == AF_ERANGE);
		require(af_value_double(v, &d) == AF_OK);
		sink += (uint64_t)i + u;
		break;
	case AF_TYPE_FLOAT:
		require(af_value_double(v, &d) == AF_OK);
		require(af_value_int(v, &i) == AF_ETYPE);
		touch(&d, sizeof(d));
		break;
	case AF_TYPE_STR: {
		char *copy;

		require(af_value_str(v, &s, &len) == AF_OK);
		require(s != NULL && len == af_value_len(v));
		touch(s, len);
		copy = af_value_strdup(v);
		require(copy != NULL && memcmp(copy, s, len) == 0 &&
			copy[len] == '\0');
		/* Looking a string up as a key exercises the same compare. */
		if (memchr(s, '\0', len) == NULL)
			require(af_value_str_eq(v, copy));
		free(copy);
		break;
	}
	case AF_TYPE_BIN:
		require(af_value_bin(v, &bin, &len) == AF_OK);
		require(bin != NULL && len == af_value_len(v));
		touch(bin, len);
		break;
	case AF_TYPE_ARRAY:
		n = af_value_len(v);
		for (size_t k = 0; k < n; k++)
			walk(af_value_at(v, k));
		require(af_value_at(v, n) == NULL);
		break;
	case AF_TYPE_MAP:
		n = af_value_len(v);
		for (size_t k = 0; k < n; k++) {
			const af_value *key = af_value_key_at(v, k);

			walk(key);
			walk(af_value_val_at(v, k));
			if (af_value_str(key, &s, &len) == AF_OK && len < 64 &&
			    memchr(s, '\0', len) == NULL) {
				char name[64];

				memcpy(name, s, len);
				name[len] = '\0';
				/* Duplicate keys may answer with an earlier
				 * pair, but never with nothing. */
				require(af_value_get(v, name) != NULL);
				sink += (uint64_t)af_value_get_int(v, name, 0);
				sink += af_value_get_bool(v, name, false);
				touch(&(double){af_value_get_double(v, name,
								    0)},
				      sizeof(double));
			}
		}
		require(af_value_key_at(v, n) == NULL);
		break;
	case AF_TYPE_EXT:
		require(af_value_len(v) == 0);
		break;
	}
}

static void check_envelope(const uint8_t *data, size_t size)
{
	af__envelope env, env2;
	uint8_t *msg;
	size_t header_len, payload_len;
	const void *payload;
	const void *bytes1, *bytes2;
	size_t len1, len2;
	int code;
	const char *text;
	size_t text_len;
	af_err err;

	msgpack_zone_clear(&zone);
	err = af__envelope_decode(&env, data, size, 1u << 20, &zone);
	require(err == AF_OK || err == AF_EPROTO || err == AF_EVERSION ||
		err == AF_EMSGSIZE);
	/* What a receiver reads of a request it cannot take, to answer it:
	 * of a message that decodes, the same kind and id. */
	{
		uint64_t version, kind, id;
		bool salvaged =
			af__envelope_salvage(data, size, &version, &kind, &id);
		if (salvaged)
			sink += version + kind + id;
		require(err != AF_OK || (salvaged && version == 1 &&
					 kind == env.kind && id == env.id));
	}
	if (err != AF_OK)
		return;
	/* Any ttl_ms is a deadline after now and at most AF__TTL_MAX_MS
	 * ahead, at any monotonic clock reading (UBSan checks the sum). */
	{
		static const int64_t nows[] = {0, INT64_C(1) << 50};
		for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
			int64_t d = af__envelope_deadline_us(&env, nows[i]);
			require(env.ttl_ms == 0
					? d == -1
					: d > nows[i] &&
						  d - nows[i] <=
							  (int64_t)AF__TTL_MAX_MS *
								  1000);
		}
	}

	require(env.kind >= AF_KIND_TELL && env.kind <= AF_KIND_CREDIT);
	require(env.type_len <= AF__TYPE_MAX && env.to_len <= AF__NAME_MAX);
	if (env.type != NULL)
		touch(env.type, env.type_len);
	if (env.to != NULL)
		touch(env.to, env.to_len);
	sink += env.id + env.seq + env.ttl_ms;
	walk((const af_value *)env.payload);
	if (af__error_read(env.payload, &code, &text, &text_len) == AF_OK)
		touch(text, text_len);

	/* What decoded re-encodes, and decodes to the same thing. */
	af_payload_reset(writer);
	require(af_pack_value(writer, (const af_value *)env.payload) == AF_OK);
	payload = af__payload_bytes(writer, &payload_len);
	msg = malloc(AF__HEADER_MAX + payload_len);
	require(msg != NULL);
	require(af__envelope_header(msg, AF__HEADER_MAX, &header_len, &env) ==
		AF_OK);
	memcpy(msg + header_len, payload, payload_len);

	msgpack_zone_clear(&zone2);
	require(af__envelope_decode(&env2, msg, header_len + payload_len,
				    SIZE_MAX, &zone2) == AF_OK);
	require(env2.kind == env.kind && env2.id == env.id &&
		env2.seq == env.seq && env2.ttl_ms == env.ttl_ms);
	require((env2.type == NULL) == (env.type == NULL) &&
		env2.type_len == env.type_len &&
		(env.type_len == 0 ||
		 memcmp(env2.type, env.type, env.type_len) == 0));
	require((env2.to == NULL) == (env.to == NULL) &&
		env2.to_len == env.to_len &&
		(env.to_len == 0 || memcmp(env2.to, env.to, env.to_len) == 0));
	/* Compared as encodings, because NaN is not equal to itself. */
	af_payload_reset(writer2);
	require(af_pack_value(writer2, (const af_value *)env2.payload) ==
		AF_OK);
	bytes1 = af_payload_data(writer, &len1);
	bytes2 = af_payload_data(writer2, &len2);
	require(len1 == len2 && memcmp(bytes1, bytes2, len1) == 0);
	free(msg);
}

/* Reads the next value of r through the reader's typed reads, element by
 * element; deeper than a parse goes it takes the rest whole. False when a
 * read fails. */
static bool read_value(af_reader *r, unsigned depth)
{
	bool b;
	int64_t i;
	uint64_t u;
	double d;
	const char *s;
	const void *raw;
	size_t len;
	uint32_t n;
	uint64_t count;

	switch (af_reader_type(r)) {
	case AF_TYPE_NONE:
		return false;
	case AF_TYPE_NIL:
		return af_read_nil(r) == AF_OK;
	case AF_TYPE_BOOL:
		if (af_read_bool(r, &b) != AF_OK)
			return false;
		sink += b;
		return true;
	case AF_TYPE_INT:
		if (af_read_int(r, &i) == AF_OK) {
			sink += (uint64_t)i;
			return true;
		}
		if (af_read_uint(r, &u) != AF_OK)
			return false;
		sink += u;
		return true;
	case AF_TYPE_FLOAT:
		if (af_read_double(r, &d) != AF_OK)
			return false;
		sink += (uint64_t)(d == d);
		return true;
	case AF_TYPE_STR:
		if (af_read_str(r, &s, &len) != AF_OK)
			return false;
		touch(s, len);
		return true;
	case AF_TYPE_BIN:
		if (af_read_bin(r, &raw, &len) != AF_OK)
			return false;
		touch(raw, len);
		return true;
	case AF_TYPE_ARRAY:
	case AF_TYPE_MAP:
		if (depth >= AF__PARSE_DEPTH) {
			if (af_read_raw(r, &raw, &len) != AF_OK)
				return false;
			touch(raw, len);
			return true;
		}
		if (af_reader_type(r) == AF_TYPE_ARRAY) {
			if (af_read_array(r, &n) != AF_OK)
				return false;
			count = n;
		} else {
			if (af_read_map(r, &n) != AF_OK)
				return false;
			count = 2 * (uint64_t)n;
		}
		for (uint64_t k = 0; k < count; k++) {
			if (!read_value(r, depth + 1))
				return false;
		}
		return true;
	case AF_TYPE_EXT:
		if (af_read_raw(r, &raw, &len) != AF_OK)
			return false;
		touch(raw, len);
		return true;
	}
	return false;
}

/* The reader and af_pack_raw against the parser: bytes that parse are read
 * whole, value by value, and appended unchanged; bytes that do not are
 * refused by both ways of taking a value whole. */
static void check_in_place(const uint8_t *data, size_t size, bool parses)
{
	af_reader r, all;
	const void *raw;
	size_t len;
	af_err err;

	af_reader_init(&r, data, size);
	all = r;
	err = af_read_raw(&all, &raw, &len);
	if (parses) {
		require(read_value(&r, 1));
		require(af_reader_type(&r) == AF_TYPE_NONE && r.pos == size);
		require(err == AF_OK && len == size);
	} else {
		/* Reading may get partway, never past the end. */
		(void)read_value(&r, 1);
		require(r.pos <= size);
		require(err != AF_OK || len < size);
	}
	af_payload_reset(writer2);
	err = af_pack_raw(writer2, data, size);
	require(parses ? err == AF_OK : err == AF_EPROTO || err == AF_EINVAL);
	if (parses) {
		raw = af_payload_data(writer2, &len);
		require(len == size && memcmp(raw, data, size) == 0);
	}
}

static void check_doc(const uint8_t *data, size_t size)
{
	af_doc *doc = NULL, *doc2 = NULL;
	const void *bytes;
	size_t len;
	af_err err;

	err = af_doc_parse(&doc, data, size);
	require(err == AF_OK || err == AF_EPROTO);
	check_in_place(data, size, err == AF_OK);
	if (err != AF_OK) {
		require(doc == NULL);
		return;
	}
	walk(af_doc_root(doc));

	af_payload_reset(writer);
	require(af_pack_value(writer, af_doc_root(doc)) == AF_OK);
	require(af_payload_status(writer) == AF_OK);
	bytes = af_payload_data(writer, &len);
	require(af_doc_parse(&doc2, bytes, len) == AF_OK);
	walk(af_doc_root(doc2));
	af_doc_destroy(&doc2);
	af_doc_destroy(&doc);
	require(doc == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (writer == NULL) {
		require(msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE));
		require(msgpack_zone_init(&zone2, MSGPACK_ZONE_CHUNK_SIZE));
		require(af_payload_new(&writer) == AF_OK);
		require(af_payload_new(&writer2) == AF_OK);
	}
	check_envelope(data, size);
	check_doc(data, size);
	return 0;
}
