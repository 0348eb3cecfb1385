/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "envelope.h"
#include "msg.h"
#include "payload_internal.h"

#define MAX_SIZE (1u << 20)

/* A message under construction: header, then raw bytes appended. */
struct msg {
	uint8_t data[4096];
	size_t len;
};

static msgpack_zone zone;

static int setup_zone(void **state)
{
	return msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE) ? 0 : -1;
}

static int teardown_zone(void **state)
{
	msgpack_zone_destroy(&zone);
	return 0;
}

static af_err decode(af__envelope *env, const void *data, size_t len)
{
	msgpack_zone_clear(&zone);
	return af__envelope_decode(env, data, len, MAX_SIZE, &zone);
}

static void append(struct msg *m, const void *bytes, size_t len)
{
	assert_true(len <= sizeof(m->data) - m->len);
	memcpy(m->data + m->len, bytes, len);
	m->len += len;
}

static void build(struct msg *m, const af__envelope *env,
		  const af_payload *payload)
{
	const void *bytes;
	size_t len;

	assert_int_equal(
		af__envelope_header(m->data, sizeof(m->data), &m->len, env),
		AF_OK);
	assert_true(m->len <= AF__HEADER_MAX);
	assert_int_equal(af_payload_status(payload), AF_OK);
	bytes = af__payload_bytes(payload, &len);
	append(m, bytes, len);
}

/* Writes a message by hand from an array header and raw msgpack fields,
 * for shapes the encoder refuses to produce. */
static void build_raw(struct msg *m, uint8_t array_header,
		      const char *const fields[], const size_t lens[], size_t n)
{
	m->len = 0;
	append(m, &array_header, 1);
	for (size_t i = 0; i < n; i++)
		append(m, fields[i], lens[i]);
}

#define RAW(...)                                                               \
	(const char *)(const unsigned char[])                                  \
	{                                                                      \
		__VA_ARGS__                                                    \
	}

static af_payload *new_payload(void)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	return p;
}

static void test_round_trip_every_kind(void **state)
{
	af_payload *p = new_payload();

	for (int kind = AF_KIND_TELL; kind <= AF_KIND_CREDIT; kind++) {
		af__envelope in = {
			.kind = (af_kind)kind,
			.id = 1000u + (uint64_t)kind,
			.seq = (uint64_t)kind * 7,
			.type = "stream_chat",
			.type_len = 11,
			.ttl_ms = 30000,
			.to = "chat",
			.to_len = 4,
		};
		af__envelope out;
		struct msg m;
		const af_value *pl;

		af_payload_reset(p);
		af_pack_map_begin(p);
		af_pack_str(p, "kind");
		af_pack_int(p, kind);
		af_pack_str(p, "list");
		af_pack_array_begin(p);
		af_pack_str(p, "a");
		af_pack_bin(p, "\0", 1);
		af_pack_array_end(p);
		af_pack_map_end(p);
		build(&m, &in, p);

		assert_int_equal(decode(&out, m.data, m.len), AF_OK);
		assert_int_equal(out.kind, kind);
		assert_true(out.id == in.id);
		assert_true(out.seq == in.seq);
		assert_true(out.ttl_ms == in.ttl_ms);
		assert_int_equal(out.type_len, 11);
		assert_memory_equal(out.type, "stream_chat", 11);
		assert_int_equal(out.to_len, 4);
		assert_memory_equal(out.to, "chat", 4);
		assert_non_null(out.payload);
		pl = (const af_value *)out.payload;
		assert_int_equal(af_value_type(pl), AF_TYPE_MAP);
		assert_int_equal(af_value_get_int(pl, "kind", 0), kind);
		assert_int_equal(af_value_len(af_value_get(pl, "list")), 2);
		assert_true(af_value_str_eq(
			af_value_at(af_value_get(pl, "list"), 0), "a"));
	}
	af_payload_destroy(&p);
}

static void test_nil_fields_and_extremes(void **state)
{
	char type[AF__TYPE_MAX], to[AF__NAME_MAX];
	af__envelope in = {.kind = AF_KIND_TELL};
	af__envelope out;
	struct msg m;

	build(&m, &in, NULL);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_null(out.type);
	assert_int_equal(out.type_len, 0);
	assert_null(out.to);
	assert_true(out.id == 0 && out.seq == 0 && out.ttl_ms == 0);
	assert_int_equal(af_value_type((const af_value *)out.payload),
			 AF_TYPE_NIL);

	/* The largest header there is fits AF__HEADER_MAX. */
	memset(type, 't', sizeof(type));
	memset(to, 'n', sizeof(to));
	in = (af__envelope){
		.kind = AF_KIND_REQUEST,
		.id = UINT64_MAX,
		.seq = UINT64_MAX,
		.type = type,
		.type_len = sizeof(type),
		.ttl_ms = UINT64_MAX,
		.to = to,
		.to_len = sizeof(to),
	};
	build(&m, &in, NULL);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_true(out.id == UINT64_MAX && out.seq == UINT64_MAX &&
		    out.ttl_ms == UINT64_MAX);
	assert_int_equal(out.type_len, AF__TYPE_MAX);
	assert_memory_equal(out.type, type, AF__TYPE_MAX);
	assert_int_equal(out.to_len, AF__NAME_MAX);

	/* An empty string is not nil. */
	in = (af__envelope){.kind = AF_KIND_TELL, .type = "", .to = ""};
	build(&m, &in, NULL);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_non_null(out.type);
	assert_int_equal(out.type_len, 0);
	assert_non_null(out.to);
}

/* A received deadline as far off as the wire can say (ttl_ms up to
 * UINT64_MAX) is a deadline far in the future: neither past, nor "none",
 * nor an overflow (undefined behaviour, which UBSan reports). */
static void test_huge_ttl(void **state)
{
	static const uint64_t ttls[] = {UINT64_MAX, INT64_MAX,
					INT64_MAX / 1000 + 1, AF__TTL_MAX_MS,
					AF__TTL_MAX_MS + 1};
	struct msg m;
	af_msg msg;

	for (size_t i = 0; i < sizeof(ttls) / sizeof(ttls[0]); i++) {
		af__envelope in = {.kind = AF_KIND_REQUEST,
				   .id = 1,
				   .type = "x",
				   .type_len = 1,
				   .ttl_ms = ttls[i]};
		int64_t before = af__now_us();
		build(&m, &in, NULL);
		msgpack_zone_clear(&zone);
		assert_int_equal(
			af__msg_decode(&msg, m.data, m.len, MAX_SIZE, &zone),
			AF_OK);
		assert_true(msg.env.ttl_ms == ttls[i]);
		/* Clamped to AF__TTL_MAX_MS: about 35 years. */
		assert_true(msg.deadline_us >=
			    before + (int64_t)AF__TTL_MAX_MS * 1000);
		assert_true(af_msg_remaining_ms(&msg) >
			    (int64_t)AF__TTL_MAX_MS - 60000);
		assert_true(af_msg_remaining_ms(&msg) <=
			    (int64_t)AF__TTL_MAX_MS);
		af__msg_clear(&msg);
		/* The same rule, at any clock reading the monotonic clock
		 * can give. */
		assert_true(af__envelope_deadline_us(&msg.env, 0) ==
			    (int64_t)AF__TTL_MAX_MS * 1000);
	}
	/* A small one is what it says; 0 is none. */
	{
		af__envelope env = {.ttl_ms = 1500};
		assert_true(af__envelope_deadline_us(&env, 1000) ==
			    1000 + 1500000);
		env.ttl_ms = 0;
		assert_true(af__envelope_deadline_us(&env, 1000) == -1);
	}
}

static void test_header_rejects(void **state)
{
	char long_str[AF__TYPE_MAX + 1];
	uint8_t buf[AF__HEADER_MAX];
	size_t len, full;
	af__envelope env = {.kind = AF_KIND_TELL, .type = "t", .type_len = 1};

	memset(long_str, 'x', sizeof(long_str));
	env.kind = 0;
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &len, &env),
			 AF_EINVAL);
	env.kind = AF_KIND_CREDIT + 1;
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &len, &env),
			 AF_EINVAL);
	env.kind = AF_KIND_TELL;
	env.type = long_str;
	env.type_len = sizeof(long_str);
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &len, &env),
			 AF_EINVAL);
	env.type = NULL;
	env.to = long_str;
	env.to_len = sizeof(long_str);
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &len, &env),
			 AF_EINVAL);
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &len, NULL),
			 AF_EINVAL);

	/* Every buffer too small by any amount is refused. */
	env.to_len = 10;
	assert_int_equal(af__envelope_header(buf, sizeof(buf), &full, &env),
			 AF_OK);
	for (size_t cap = 0; cap < full; cap++)
		assert_int_equal(af__envelope_header(buf, cap, &len, &env),
				 AF_EINVAL);
	assert_int_equal(af__envelope_header(buf, full, &len, &env), AF_OK);
	assert_int_equal(len, full);
}

static void valid_message(struct msg *m)
{
	af__envelope in = {
		.kind = AF_KIND_REQUEST,
		.id = 0x123456789,
		.type = "echo",
		.type_len = 4,
		.ttl_ms = 500,
		.to = "echo",
		.to_len = 4,
	};
	af_payload *p = new_payload();

	af_pack_map_begin(p);
	af_pack_str(p, "text");
	af_pack_str(p, "hello");
	af_pack_str(p, "n");
	af_pack_double(p, 1.5);
	af_pack_map_end(p);
	build(m, &in, p);
	af_payload_destroy(&p);
}

static void test_truncated_every_prefix(void **state)
{
	struct msg m;
	af__envelope out;

	valid_message(&m);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	for (size_t len = 0; len < m.len; len++)
		assert_int_equal(decode(&out, m.data, len), AF_EPROTO);
}

static void test_trailing_bytes(void **state)
{
	struct msg m;
	af__envelope out;

	valid_message(&m);
	append(&m, RAW(0xc0), 1);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
}

/* Version 1, kind 1, id 0, seq 0, type nil, ttl 0, to nil. */
static const char *const v1_fields[] = {
	RAW(0x01), RAW(0x01), RAW(0x00), RAW(0x00),
	RAW(0xc0), RAW(0x00), RAW(0xc0), RAW(0xc0),
};
static const size_t one_byte[] = {1, 1, 1, 1, 1, 1, 1, 1, 1};

static void test_wrong_array_length(void **state)
{
	struct msg m;
	af__envelope out;

	build_raw(&m, 0x98, v1_fields, one_byte, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	build_raw(&m, 0x97, v1_fields, one_byte, 7);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	build_raw(&m, 0x99, v1_fields, one_byte, 8);
	append(&m, RAW(0xc0), 1);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	build_raw(&m, 0x90, v1_fields, one_byte, 0);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	/* Not an array at all. */
	build_raw(&m, 0x88, v1_fields, one_byte, 8);
	for (size_t i = 0; i < 8; i++)
		append(&m, v1_fields[i], 1);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	build_raw(&m, 0x01, v1_fields, one_byte, 0);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
}

static void test_version(void **state)
{
	const char *fields[8];
	size_t lens[8];
	struct msg m;
	af__envelope out;

	memcpy(fields, v1_fields, sizeof(fields));
	memcpy(lens, one_byte, sizeof(lens));

	fields[0] = RAW(0x02);
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EVERSION);
	fields[0] = RAW(0x00);
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EVERSION);
	fields[0] = RAW(0xcf, 0, 0, 0, 0, 0, 0, 0, 1);
	lens[0] = 9;
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	fields[0] = RAW(0xcf, 1, 0, 0, 0, 0, 0, 0, 1);
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EVERSION);
	/* A later version may change the shape; it is still a version
	 * mismatch. */
	fields[0] = RAW(0x02);
	lens[0] = 1;
	build_raw(&m, 0x93, fields, lens, 3);
	assert_int_equal(decode(&out, m.data, m.len), AF_EVERSION);

	/* A version that is not an unsigned integer is garbage. */
	fields[0] = RAW(0xa1, '1');
	lens[0] = 2;
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	fields[0] = RAW(0xff);
	lens[0] = 1;
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	fields[0] = RAW(0xca, 0x3f, 0x80, 0, 0);
	lens[0] = 5;
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	fields[0] = RAW(0xc0);
	lens[0] = 1;
	build_raw(&m, 0x98, fields, lens, 8);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
}

static void test_unknown_kind(void **state)
{
	/* Automatic: block-scope compound literals are not constants. */
	const struct {
		const char *bytes;
		size_t len;
	} kinds[] = {
		{RAW(0x00), 1},
		{RAW(0x0b), 1},
		{RAW(0xcc, 0xff), 2},
		{RAW(0xff), 1},
		{RAW(0xc0), 1},
		{RAW(0xa1, 't'), 2},
		{RAW(0xcf, 1, 0, 0, 0, 0, 0, 0, 1), 9},
	};
	const char *fields[8];
	size_t lens[8];
	struct msg m;
	af__envelope out;

	memcpy(fields, v1_fields, sizeof(fields));
	memcpy(lens, one_byte, sizeof(lens));
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		fields[1] = kinds[i].bytes;
		lens[1] = kinds[i].len;
		build_raw(&m, 0x98, fields, lens, 8);
		assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	}
}

static void test_field_types(void **state)
{
	const struct {
		int field;
		const char *bytes;
		size_t len;
	} bad[] = {
		{2, RAW(0xff), 1},                         /* negative id */
		{2, RAW(0xc0), 1},                         /* nil id */
		{3, RAW(0xa1, '1'), 2},                    /* string seq */
		{4, RAW(0x01), 1},                         /* integer type */
		{4, RAW(0xc4, 1, 'x'), 3},                 /* binary type */
		{5, RAW(0xcb, 0, 0, 0, 0, 0, 0, 0, 0), 9}, /* float ttl */
		{5, RAW(0xd0, 0xfe), 2},                   /* negative ttl */
		{6, RAW(0x90), 1},                         /* array to */
		{6, RAW(0xc2), 1},                         /* boolean to */
	};
	const char *fields[8];
	size_t lens[8];
	struct msg m;
	af__envelope out;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(fields, v1_fields, sizeof(fields));
		memcpy(lens, one_byte, sizeof(lens));
		fields[bad[i].field] = bad[i].bytes;
		lens[bad[i].field] = bad[i].len;
		build_raw(&m, 0x98, fields, lens, 8);
		assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
	}
}

static void test_oversized(void **state)
{
	struct msg m;
	af__envelope out;

	valid_message(&m);
	msgpack_zone_clear(&zone);
	assert_int_equal(
		af__envelope_decode(&out, m.data, m.len, m.len - 1, &zone),
		AF_EMSGSIZE);
	assert_int_equal(af__envelope_decode(&out, m.data, m.len, m.len, &zone),
			 AF_OK);
	/* The size is judged before anything is read. */
	msgpack_zone_clear(&zone);
	assert_int_equal(
		af__envelope_decode(&out, NULL, 1u << 30, 1u << 20, &zone),
		AF_EMSGSIZE);
}

static void test_overlong_strings_on_wire(void **state)
{
	char str[3 + AF__TYPE_MAX + 1];
	const char *fields[8];
	size_t lens[8];
	struct msg m;
	af__envelope out;

	str[0] = (char)0xda; /* str16, so 256 is representable */
	str[1] = 0x01;
	str[2] = 0x00;
	memset(str + 3, 'x', AF__TYPE_MAX + 1);

	for (int field = 4; field <= 6; field += 2) {
		memcpy(fields, v1_fields, sizeof(fields));
		memcpy(lens, one_byte, sizeof(lens));
		fields[field] = str;
		lens[field] = sizeof(str);
		build_raw(&m, 0x98, fields, lens, 8);
		assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);
		/* One byte shorter is accepted. */
		str[1] = 0x00;
		str[2] = (char)0xff;
		lens[field] = sizeof(str) - 1;
		build_raw(&m, 0x98, fields, lens, 8);
		assert_int_equal(decode(&out, m.data, m.len), AF_OK);
		str[1] = 0x01;
		str[2] = 0x00;
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_huge_container_header(void **state)
{
	static const unsigned char headers[][5] = {
		{0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 */
		{0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 */
		{0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
		{0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
	};
	af__envelope out;
	struct msg m;
	size_t free_before;
	char *ptr_before;
	double t0;

	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		msgpack_zone_clear(&zone);
		free_before = zone.chunk_list.free;
		ptr_before = zone.chunk_list.ptr;
		t0 = now_ms();
		assert_int_equal(af__msgpack_check(headers[i], 5, 64),
				 AF_EPROTO);
		assert_int_equal(af__envelope_decode(&out, headers[i], 5,
						     MAX_SIZE, &zone),
				 AF_EPROTO);
		/* Nothing reached msgpack-c: its zone is untouched. */
		assert_true(zone.chunk_list.free == free_before);
		assert_true(zone.chunk_list.ptr == ptr_before);

		/* The same as the payload of an otherwise valid envelope. */
		build_raw(&m, 0x98, v1_fields, one_byte, 7);
		append(&m, headers[i], 5);
		assert_int_equal(af__envelope_decode(&out, m.data, m.len,
						     MAX_SIZE, &zone),
				 AF_EPROTO);
		assert_true(zone.chunk_list.free == free_before);
		assert_true(now_ms() - t0 < 100);
	}
}

/* n nested one-element arrays around a nil. */
static size_t nested(uint8_t *buf, size_t n)
{
	memset(buf, 0x91, n);
	buf[n] = 0xc0;
	return n + 1;
}

static void test_deep_nesting(void **state)
{
	struct msg m;
	af__envelope out;
	uint8_t deep[256];
	size_t n;

	/* The envelope array is one level, so a payload may nest 31 deep. */
	build_raw(&m, 0x98, v1_fields, one_byte, 7);
	n = nested(deep, AF__PARSE_DEPTH - 1);
	append(&m, deep, n);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);

	build_raw(&m, 0x98, v1_fields, one_byte, 7);
	n = nested(deep, AF__PARSE_DEPTH);
	append(&m, deep, n);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);

	build_raw(&m, 0x98, v1_fields, one_byte, 7);
	n = nested(deep, 100);
	append(&m, deep, n);
	assert_int_equal(decode(&out, m.data, m.len), AF_EPROTO);

	/* Maps nest the same way, and empty containers count as a level. */
	for (size_t i = 0; i < 100; i++) {
		deep[2 * i] = 0x81;
		deep[2 * i + 1] = 0x00;
	}
	deep[200] = 0x90;
	assert_int_equal(af__msgpack_check(deep, 201, 101), AF_OK);
	assert_int_equal(af__msgpack_check(deep, 201, 100), AF_EPROTO);
	n = nested(deep, 10);
	deep[9] = 0x90;
	assert_int_equal(af__msgpack_check(deep, 10, 10), AF_OK);
	assert_int_equal(af__msgpack_check(deep, 10, 9), AF_EPROTO);
	assert_int_equal(af__msgpack_check(deep + 9, 1, 0), AF_EPROTO);
	assert_int_equal(af__msgpack_check(RAW(0x05), 1, 0), AF_OK);
}

/* One valid encoding of each format byte. */
static const struct {
	const char *bytes;
	size_t len;
} formats[] = {
	{RAW(0x00), 1},
	{RAW(0x7f), 1},
	{RAW(0x80), 1},
	{RAW(0x81, 0x01, 0x02), 3},
	{RAW(0x8f, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	     1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
	 31},
	{RAW(0x90), 1},
	{RAW(0x92, 0xc2, 0xc3), 3},
	{RAW(0xa0), 1},
	{RAW(0xa3, 'a', 'b', 'c'), 4},
	{RAW(0xc0), 1},
	{RAW(0xc2), 1},
	{RAW(0xc3), 1},
	{RAW(0xc4, 0x02, 0, 1), 4},
	{RAW(0xc5, 0x00, 0x01, 9), 4},
	{RAW(0xc6, 0, 0, 0, 1, 9), 6},
	{RAW(0xc7, 0x01, 0x05, 9), 4},
	{RAW(0xc7, 0x00, 0x05), 3},
	{RAW(0xc8, 0x00, 0x01, 0x05, 9), 5},
	{RAW(0xc9, 0, 0, 0, 1, 0x05, 9), 7},
	{RAW(0xca, 0x3f, 0x80, 0, 0), 5},
	{RAW(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), 9},
	{RAW(0xcc, 0xff), 2},
	{RAW(0xcd, 0xff, 0xff), 3},
	{RAW(0xce, 0xff, 0xff, 0xff, 0xff), 5},
	{RAW(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 9},
	{RAW(0xd0, 0x80), 2},
	{RAW(0xd1, 0x80, 0x00), 3},
	{RAW(0xd2, 0x80, 0, 0, 0), 5},
	{RAW(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), 9},
	{RAW(0xd4, 0x01, 9), 3},
	{RAW(0xd5, 0x01, 9, 9), 4},
	{RAW(0xd6, 0x01, 9, 9, 9, 9), 6},
	{RAW(0xd7, 0x01, 9, 9, 9, 9, 9, 9, 9, 9), 10},
	{RAW(0xd8, 0x01, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9), 18},
	{RAW(0xd9, 0x01, 'x'), 3},
	{RAW(0xda, 0x00, 0x01, 'x'), 4},
	{RAW(0xdb, 0, 0, 0, 1, 'x'), 6},
	{RAW(0xdc, 0x00, 0x01, 0xc0), 4},
	{RAW(0xdd, 0, 0, 0, 1, 0xc0), 6},
	{RAW(0xde, 0x00, 0x01, 0xc0, 0xc0), 5},
	{RAW(0xdf, 0, 0, 0, 1, 0xc0, 0xc0), 7},
	{RAW(0xe0), 1},
	{RAW(0xff), 1},
};

static void test_every_format(void **state)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		const char *b = formats[i].bytes;
		size_t len = formats[i].len;
		msgpack_object o;
		size_t off = 0;

		assert_int_equal(af__msgpack_check(b, len, 4), AF_OK);
		/* The check agrees with msgpack-c on what is valid. */
		msgpack_zone_clear(&zone);
		assert_int_equal(msgpack_unpack(b, len, &off, &zone, &o),
				 MSGPACK_UNPACK_SUCCESS);
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(af__msgpack_check(b, cut, 4),
					 AF_EPROTO);
	}
	assert_int_equal(af__msgpack_check(RAW(0xc1), 1, 4), AF_EPROTO);
	assert_int_equal(af__msgpack_check(RAW(0x91, 0xc1), 2, 4), AF_EPROTO);
	assert_int_equal(af__msgpack_check(NULL, 0, 4), AF_EPROTO);
	/* Two pairs claimed with three bytes left cannot be honest. */
	assert_int_equal(af__msgpack_check(RAW(0x82, 1, 2, 3), 4, 4),
			 AF_EPROTO);
	/* The claims of all open containers add up. */
	assert_int_equal(af__msgpack_check(RAW(0x92, 0x93, 1, 2), 4, 4),
			 AF_EPROTO);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

static void check_decoded(af_err err, const af__envelope *env)
{
	assert_true(err == AF_OK || err == AF_EPROTO || err == AF_EVERSION);
	if (err != AF_OK)
		return;
	assert_true(env->kind >= AF_KIND_TELL && env->kind <= AF_KIND_CREDIT);
	assert_true(env->type_len <= AF__TYPE_MAX);
	assert_true(env->to_len <= AF__NAME_MAX);
	assert_non_null(env->payload);
}

static void test_random_bytes(void **state)
{
	struct msg valid;
	uint8_t buf[256];
	af__envelope out;
	int decoded = 0, version = 0;

	valid_message(&valid);
	for (int iter = 0; iter < 100000; iter++) {
		size_t len;
		af_err err, checked;
		msgpack_object o;
		size_t off = 0;
		int rc;

		if (iter % 2 == 0) {
			/* Pure noise, biased to start like an envelope. */
			len = rng() % 64;
			for (size_t i = 0; i < len; i++)
				buf[i] = (uint8_t)rng();
			if (len > 1 && rng() % 2)
				buf[0] = 0x98, buf[1] = 0x01;
		} else {
			/* A valid message with a few bytes changed or cut. */
			len = valid.len;
			memcpy(buf, valid.data, len);
			for (int k = 1 + (int)(rng() % 3); k > 0; k--)
				buf[rng() % len] = (uint8_t)rng();
			if (rng() % 4 == 0)
				len = rng() % len;
		}
		err = decode(&out, buf, len);
		check_decoded(err, &out);
		decoded += err == AF_OK;
		version += err == AF_EVERSION;

		/* Whatever the check lets through, msgpack-c parses. The
		 * converse cannot be tried here: unchecked, these bytes can
		 * make msgpack-c ask for gigabytes. */
		checked = af__msgpack_check(buf, len, AF__PARSE_DEPTH);
		if (checked == AF_OK) {
			msgpack_zone_clear(&zone);
			rc = msgpack_unpack((const char *)buf, len, &off, &zone,
					    &o);
			assert_int_equal(rc, MSGPACK_UNPACK_SUCCESS);
		}
	}
	print_message("random: %d decoded, %d wrong version\n", decoded,
		      version);
	/* The mutations must reach past the first checks. */
	assert_true(decoded > 1000);
	assert_true(version > 100);
}

/* Packs a random value nested at most depth deep with the writer's fixed
 * containers, which choose the shortest encodings, and the raw sizes that
 * force the longest ones. */
static int value_budget;

static void random_value(af_payload *p, int depth)
{
	static const char text[300] = {'x'};
	uint64_t r = rng();

	/* The budget keeps a tree of many-element containers from growing
	 * exponentially with depth. */
	value_budget--;
	switch (r % (depth > 0 && value_budget > 0 ? 9 : 6)) {
	case 0:
		af_pack_nil(p);
		break;
	case 1:
		af_pack_int(p, (int64_t)rng() >> (rng() % 64));
		break;
	case 2:
		af_pack_uint(p, rng() >> (rng() % 64));
		break;
	case 3:
		af_pack_double(p, (double)(int64_t)rng() / 3.0);
		break;
	case 4:
		af_pack_strn(p, text, rng() % sizeof(text));
		break;
	case 5:
		af_pack_bin(p, text, rng() % sizeof(text));
		break;
	case 6: {
		uint32_t n = (uint32_t)(rng() % 20);

		af_pack_array(p, n);
		for (uint32_t i = 0; i < n; i++)
			random_value(p, depth - 1);
		break;
	}
	case 7: {
		uint32_t n = (uint32_t)(rng() % 20);

		af_pack_map(p, n);
		for (uint32_t i = 0; i < n; i++) {
			af_pack_strn(p, text, rng() % 40);
			random_value(p, depth - 1);
		}
		break;
	}
	default:
		af_pack_map_begin(p);
		for (uint32_t n = (uint32_t)(rng() % 5); n > 0; n--) {
			af_pack_int(p, n);
			random_value(p, depth - 1);
		}
		af_pack_map_end(p);
		break;
	}
}

static void test_random_valid_values(void **state)
{
	af_payload *p = new_payload();

	for (int iter = 0; iter < 2000; iter++) {
		int depth = (int)(rng() % AF__PARSE_DEPTH);
		const void *data;
		size_t len;
		af_doc *d = NULL;

		af_payload_reset(p);
		value_budget = 300;
		random_value(p, depth);
		assert_int_equal(af_payload_status(p), AF_OK);
		data = af_payload_data(p, &len);
		assert_int_equal(af__msgpack_check(data, len, AF__PARSE_DEPTH),
				 AF_OK);
		assert_int_equal(af_doc_parse(&d, data, len), AF_OK);
		af_doc_destroy(&d);
	}
	af_payload_destroy(&p);
}

static void test_zone_reuse(void **state)
{
	struct msg m;
	af__envelope out;

	valid_message(&m);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(decode(&out, m.data, m.len), AF_OK);
		assert_true(af_value_str_eq(
			af_value_get((const af_value *)out.payload, "text"),
			"hello"));
	}
}

static void test_error_payload(void **state)
{
	af_payload *p = new_payload();
	af__envelope in = {.kind = AF_KIND_ERROR, .id = 77};
	af__envelope out;
	struct msg m;
	int code;
	const char *text;
	size_t len;

	assert_int_equal(af__error_payload(p, AF_ETIMEDOUT, NULL), AF_OK);
	build(&m, &in, p);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_int_equal(out.kind, AF_KIND_ERROR);
	assert_int_equal(af__error_read(out.payload, &code, &text, &len),
			 AF_OK);
	assert_int_equal(code, AF_ETIMEDOUT);
	assert_int_equal(len, strlen(af_strerror(AF_ETIMEDOUT)));
	assert_memory_equal(text, af_strerror(AF_ETIMEDOUT), len);

	af_payload_reset(p);
	assert_int_equal(af__error_payload(p, AF_EUSER + 5, "quota exceeded"),
			 AF_OK);
	build(&m, &in, p);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_int_equal(af__error_read(out.payload, &code, &text, &len),
			 AF_OK);
	assert_int_equal(code, AF_EUSER + 5);
	assert_int_equal(len, 14);
	assert_memory_equal(text, "quota exceeded", 14);

	af_payload_reset(p);
	assert_int_equal(af__error_payload(p, -3, ""), AF_OK);
	build(&m, &in, p);
	assert_int_equal(decode(&out, m.data, m.len), AF_OK);
	assert_int_equal(af__error_read(out.payload, &code, NULL, NULL), AF_OK);
	assert_int_equal(code, -3);

	/* A writer already in error reports it. */
	af_payload_reset(p);
	af_pack_array_end(p);
	assert_int_equal(af__error_payload(p, AF_EPROTO, NULL), AF_EINVAL);
	af_payload_destroy(&p);
}

static void test_error_read_rejects(void **state)
{
	const struct {
		const char *bytes;
		size_t len;
		af_err want;
		int code;
	} cases[] = {
		{RAW(0xc0), 1, AF_EPROTO, 0},
		{RAW(0x80), 1, AF_EPROTO, 0},
		{RAW(0x92, 0x01, 0x02), 3, AF_EPROTO, 0},
		{RAW(0x81, 0xa4, 'c', 'o', 'd', 'e', 0xa1, '5'), 8, AF_EPROTO,
		 0},
		{RAW(0x81, 0xa4, 'c', 'o', 'd', 'e', 0xcf, 0, 0, 0, 1, 0, 0, 0,
		     0),
		 15, AF_EPROTO, 0},
		{RAW(0x81, 0xa4, 'c', 'o', 'd', 'e', 0xd3, 0xff, 0xff, 0xff,
		     0xfe, 0, 0, 0, 0),
		 15, AF_EPROTO, 0},
		/* No message, or one of the wrong type: the code's own text. */
		{RAW(0x81, 0xa4, 'c', 'o', 'd', 'e', 0x05), 7, AF_OK,
		 AF_ETIMEDOUT},
		{RAW(0x82, 0xa4, 'c', 'o', 'd', 'e', 0x0a, 0xa7, 'm', 'e', 's',
		     's', 'a', 'g', 'e', 0x01),
		 16, AF_OK, AF_EPROTO},
	};
	int code;
	const char *text;
	size_t len;

	assert_int_equal(af__error_read(NULL, &code, &text, &len), AF_EPROTO);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		af_doc *d = NULL;

		assert_int_equal(af_doc_parse(&d, cases[i].bytes, cases[i].len),
				 AF_OK);
		assert_int_equal(
			af__error_read((const msgpack_object *)af_doc_root(d),
				       &code, &text, &len),
			cases[i].want);
		if (cases[i].want == AF_OK) {
			assert_int_equal(code, cases[i].code);
			assert_int_equal(len, strlen(af_strerror(code)));
			assert_memory_equal(text, af_strerror(code), len);
		}
		af_doc_destroy(&d);
	}
}

static void test_err_strings(void **state)
{
	static const int codes[] = {
		AF_OK,        AF_ENOMEM,    AF_EINVAL,   AF_ENOTFOUND,
		AF_EEXIST,    AF_ETIMEDOUT, AF_EAGAIN,   AF_ECANCELED,
		AF_EPEERDOWN, AF_ESTOPPED,  AF_EPROTO,   AF_EMSGSIZE,
		AF_EVERSION,  AF_ENOTSUP,   AF_ENOREPLY, AF_ETYPE,
		AF_ERANGE,    AF_ESYS,      AF_EADDR,    AF_EREMOTE,
		AF_EOF,       AF_EHTTP,     AF_EIO,      AF_EAUTH,
		AF_EUSER,
	};
	const size_t n = sizeof(codes) / sizeof(codes[0]);

	for (size_t i = 0; i < n; i++) {
		const char *name = af_errname(codes[i]);
		const char *text = af_strerror(codes[i]);

		assert_non_null(name);
		assert_true(strncmp(name, "AF_", 3) == 0);
		assert_string_not_equal(text, "unknown error");
		for (size_t j = 0; j < i; j++) {
			assert_string_not_equal(name, af_errname(codes[j]));
			assert_string_not_equal(text, af_strerror(codes[j]));
		}
	}
	assert_string_equal(af_errname(AF_OK), "AF_OK");
	assert_string_equal(af_errname(AF_ETIMEDOUT), "AF_ETIMEDOUT");
	assert_string_equal(af_errname(AF_EREMOTE), "AF_EREMOTE");
	assert_string_equal(af_errname(AF_EOF), "AF_EOF");
	assert_string_equal(af_errname(AF_EHTTP), "AF_EHTTP");
	assert_string_equal(af_errname(AF_EUSER), "AF_EUSER");
	assert_null(af_errname(-1));
	assert_null(af_errname(AF_EAUTH + 1));
	assert_null(af_errname(AF_EUSER + 1));
	assert_string_equal(af_strerror(-1), "unknown error");
	assert_string_equal(af_strerror(AF_EAUTH + 1), "unknown error");
	assert_string_equal(af_strerror(999), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_kind),
		cmocka_unit_test(test_nil_fields_and_extremes),
		cmocka_unit_test(test_huge_ttl),
		cmocka_unit_test(test_header_rejects),
		cmocka_unit_test(test_truncated_every_prefix),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_wrong_array_length),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_unknown_kind),
		cmocka_unit_test(test_field_types),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_overlong_strings_on_wire),
		cmocka_unit_test(test_huge_container_header),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_every_format),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_random_valid_values),
		cmocka_unit_test(test_zone_reuse),
		cmocka_unit_test(test_error_payload),
		cmocka_unit_test(test_error_read_rejects),
		cmocka_unit_test(test_err_strings),
	};

	return cmocka_run_group_tests(tests, setup_zone, teardown_zone);
}
