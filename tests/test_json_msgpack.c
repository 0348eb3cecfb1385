/* The actorflow command's JSON <-> msgpack conversion (cli/json_msgpack.c):
 * round trips of every type, the nesting limit, bad JSON, and hostile
 * msgpack (invalid UTF-8, deep nesting, huge and odd values, random
 * bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <actorflow/actorflow.h>

#include "json_msgpack.h"

/* JSON -> msgpack -> JSON; returns the second JSON (caller frees), or
 * NULL with *err set when the first step fails. */
static char *through(const char *json, af_err *err, char *why, size_t cap)
{
	af_payload *p = NULL;
	af_doc *doc = NULL;
	const void *data;
	size_t len;
	char *out = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	*err = cli_json_to_payload(json, p, why, cap);
	if (*err == AF_OK) {
		data = af_payload_data(p, &len);
		assert_int_equal(af_doc_parse(&doc, data, len), AF_OK);
		assert_int_equal(
			cli_value_to_json(af_doc_root(doc), &out, NULL), AF_OK);
		af_doc_destroy(&doc);
	}
	af_payload_destroy(&p);
	return out;
}

static void expect(const char *in, const char *want)
{
	char why[256];
	af_err err;
	char *out = through(in, &err, why, sizeof(why));

	if (err != AF_OK)
		fail_msg("%s: %s", in, why);
	assert_string_equal(out, want);
	free(out);
}

static void expect_error(const char *in, af_err code, const char *part)
{
	char why[256];
	af_err err;
	char *out = through(in, &err, why, sizeof(why));

	assert_null(out);
	assert_int_equal(err, code);
	if (part != NULL && strstr(why, part) == NULL)
		fail_msg("'%s' does not say '%s'", why, part);
}

/* The type JSON text becomes. */
static af_type type_of(const char *json)
{
	af_payload *p = NULL;
	af_doc *doc = NULL;
	const void *data;
	size_t len;
	af_type t;

	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_int_equal(cli_json_to_payload(json, p, NULL, 0), AF_OK);
	data = af_payload_data(p, &len);
	assert_int_equal(af_doc_parse(&doc, data, len), AF_OK);
	t = af_value_type(af_doc_root(doc));
	af_doc_destroy(&doc);
	af_payload_destroy(&p);
	return t;
}

static void test_round_trips(void **state)
{
	static const char *const same[] = {
		"null",
		"true",
		"false",
		"0",
		"-1",
		"127",
		"-33",
		"9223372036854775807",
		"-9223372036854775808",
		"18446744073709551615",
		"1.5",
		"1.0",
		"-0.0",
		"0.1",
		"1e+300",
		"-2.5e-300",
		"\"\"",
		"\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\x9d\"",
		"\"tab\\tquote\\\"back\\\\slash\\nline\\r\"",
		"\"\\u0001\\u001f\"",
		"[]",
		"{}",
		"[1,[2,[3,[]]]]",
		"{\"a\":{\"b\":[1,2.5,\"x\",null,true]},\"c\":{}}",
		"{\"k\":1,\"k\":2}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		expect(same[i], same[i]);
	/* Whitespace goes; spellings settle on one form. */
	expect(" \n { \"a\" :\t1 , \"b\" : [ ] }\n", "{\"a\":1,\"b\":[]}");
	expect("1E2", "100.0");
	expect("2.50", "2.5");
	expect("-0", "0");
	expect("\"\\u00e9\\ud83d\\udc1d\\/\"", "\"\xc3\xa9\xf0\x9f\x90\x9d/\"");
}

static void test_numbers_keep_their_kind(void **state)
{
	(void)state;
	assert_int_equal(type_of("1"), AF_TYPE_INT);
	assert_int_equal(type_of("-1"), AF_TYPE_INT);
	assert_int_equal(type_of("18446744073709551615"), AF_TYPE_INT);
	assert_int_equal(type_of("1.0"), AF_TYPE_FLOAT);
	assert_int_equal(type_of("1e3"), AF_TYPE_FLOAT);
	assert_int_equal(type_of("\"1\""), AF_TYPE_STR);

	/* Integers beyond 64 bits are refused, not rounded. */
	expect_error("18446744073709551616", AF_ERANGE, "64 bits");
	expect_error("-9223372036854775809", AF_ERANGE, "64 bits");
	expect_error("[123456789012345678901234567890123456789]", AF_ERANGE,
		     "64 bits");
	expect_error("1e999", AF_ERANGE, "out of range");
}

/* msgpack values made with the writer go to JSON and back to the same
 * bytes. */
static void test_msgpack_round_trip(void **state)
{
	af_payload *p = NULL;
	af_payload *q = NULL;
	af_doc *doc = NULL;
	const void *a;
	const void *b;
	size_t alen;
	size_t blen;
	char *json = NULL;

	(void)state;
	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_int_equal(af_payload_new(&q), AF_OK);
	/* Counted containers: the begin/end forms write a 32-bit count. */
	af_pack_map(p, 3);
	af_pack_str(p, "ints");
	af_pack_array(p, 7);
	af_pack_int(p, 0);
	af_pack_int(p, -1);
	af_pack_int(p, 128);
	af_pack_int(p, -129);
	af_pack_int(p, INT64_MIN);
	af_pack_int(p, INT64_MAX);
	af_pack_uint(p, UINT64_MAX);
	af_pack_str(p, "floats");
	af_pack_array(p, 5);
	af_pack_double(p, 0.0);
	af_pack_double(p, 3.0);
	af_pack_double(p, 1.0 / 3.0);
	af_pack_double(p, -1e-310); /* subnormal */
	af_pack_double(p, 1.7976931348623157e308);
	af_pack_str(p, "misc");
	af_pack_array(p, 5);
	af_pack_nil(p);
	af_pack_bool(p, true);
	af_pack_bool(p, false);
	af_pack_str(p, "\xe2\x9c\x93 \"q\" \\ \n");
	assert_int_equal(af_pack_map(p, 0), AF_OK);

	a = af_payload_data(p, &alen);
	assert_int_equal(af_doc_parse(&doc, a, alen), AF_OK);
	assert_int_equal(cli_value_to_json(af_doc_root(doc), &json, NULL),
			 AF_OK);
	assert_int_equal(cli_json_to_payload(json, q, NULL, 0), AF_OK);
	b = af_payload_data(q, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(json);
	af_doc_destroy(&doc);
	af_payload_destroy(&q);
	af_payload_destroy(&p);
}

static char *nested(int depth, const char *open, const char *close)
{
	size_t lo = strlen(open);
	size_t lc = strlen(close);
	char *s = malloc((size_t)depth * (lo + lc) + 1);
	char *w = s;

	assert_non_null(s);
	for (int i = 0; i < depth; i++, w += lo)
		memcpy(w, open, lo);
	for (int i = 0; i < depth; i++, w += lc)
		memcpy(w, close, lc);
	*w = '\0';
	return s;
}

static void test_nesting_limit(void **state)
{
	char *ok = nested(CLI_JSON_MAX_DEPTH, "[", "]");
	char *deep = nested(CLI_JSON_MAX_DEPTH + 1, "[", "]");
	char *objects = nested(CLI_JSON_MAX_DEPTH + 1, "{\"a\":", "}");
	char *huge = nested(200000, "[", "]");
	char *open_only = malloc(300001);
	af_payload *p = NULL;

	(void)state;
	expect(ok, ok);
	expect_error(deep, AF_EINVAL, "deeper than 31");
	expect_error(huge, AF_EINVAL, "deeper than 31");
	memset(open_only, '[', 300000);
	open_only[300000] = '\0';
	expect_error(open_only, AF_EINVAL, NULL);
	/* The limit holds for objects too (the innermost value being '}'
	 * is invalid anyway: what matters is no crash and an error). */
	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_int_not_equal(cli_json_to_payload(objects, p, NULL, 0), AF_OK);
	/* A payload that nests 31 levels still fits in a message. */
	af_payload_reset(p);
	assert_int_equal(cli_json_to_payload(ok, p, NULL, 0), AF_OK);
	assert_int_equal(af_payload_status(p), AF_OK);
	af_payload_destroy(&p);
	free(ok);
	free(deep);
	free(objects);
	free(huge);
	free(open_only);
}

static void test_bad_json(void **state)
{
	(void)state;
	expect_error("", AF_EINVAL, "empty");
	expect_error("   \n ", AF_EINVAL, "empty");
	expect_error("{\"a\":}", AF_EINVAL, "line 1, column 6");
	expect_error("{\n  \"a\": 1,\n  \"b\": tru\n}", AF_EINVAL, "line 3");
	expect_error("1 2", AF_EINVAL, "invalid JSON");
	expect_error("[1,]", AF_EINVAL, "invalid JSON");
	expect_error("'single'", AF_EINVAL, "invalid JSON");
	expect_error("{\"a\" 1}", AF_EINVAL, "invalid JSON");
	expect_error("\"unterminated", AF_EINVAL, "invalid JSON");
	expect_error("[1-2]", AF_EINVAL, "invalid JSON");
	expect_error("NaN", AF_EINVAL, "invalid JSON");
	/* Strings must be text: valid UTF-8, no U+0000 (cJSON would cut
	 * the string there). */
	expect_error("\"a\xff\"", AF_EINVAL, "UTF-8");
	expect_error("{\"k\xc0\x80\":1}", AF_EINVAL, "UTF-8");
	expect_error("\"\xed\xa0\x80\"", AF_EINVAL, "UTF-8");
	expect_error("\"a\\u0000b\"", AF_EINVAL, "\\u0000");
	expect_error("{\"a\\u0000\":1}", AF_EINVAL, "\\u0000");
	expect_error("\"\\ud800\"", AF_EINVAL, NULL);
	{
		af_payload *p = NULL;
		char why[64];
		assert_int_equal(af_payload_new(&p), AF_OK);
		assert_int_equal(cli_json_to_payload(NULL, p, why, sizeof(why)),
				 AF_EINVAL);
		/* A tiny error buffer is cut, not overrun. */
		assert_int_equal(cli_json_to_payload("{", p, why, 4),
				 AF_EINVAL);
		assert_int_equal(strlen(why), 3);
		af_payload_destroy(&p);
	}
}

/* Parses msgpack bytes and prints them; expects the parse to succeed. */
static void expect_msgpack(const char *bytes, size_t len, const char *want)
{
	af_doc *doc = NULL;
	char *json = NULL;
	size_t jlen;

	assert_int_equal(af_doc_parse(&doc, bytes, len), AF_OK);
	assert_int_equal(cli_value_to_json(af_doc_root(doc), &json, &jlen),
			 AF_OK);
	assert_string_equal(json, want);
	assert_int_equal(strlen(json), jlen);
	free(json);
	af_doc_destroy(&doc);
}

#define MP(s) s, sizeof(s) - 1

static void test_hostile_msgpack(void **state)
{
	(void)state;
	/* Invalid UTF-8 becomes U+FFFD, byte by byte; the rest stays. */
	expect_msgpack(MP("\xa3"
			  "a\xff"
			  "b"),
		       "\"a\\ufffdb\"");
	expect_msgpack(MP("\xa2\xc0\x80"), "\"\\ufffd\\ufffd\"");
	expect_msgpack(MP("\xa3\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
	expect_msgpack(MP("\xa3x\xe2\x82"), "\"x\\ufffd\\ufffd\"");
	expect_msgpack(MP("\xa4\xf4\x90\x80\x80"),
		       "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	expect_msgpack(MP("\xa4\x00\x01\x7f\x1b"),
		       "\"\\u0000\\u0001\x7f\\u001b\"");
	/* Binary as base64, with padding. */
	expect_msgpack(MP("\xc4\x00"), "\"\"");
	expect_msgpack(MP("\xc4\x01\x01"), "\"AQ==\"");
	expect_msgpack(MP("\xc4\x02\x01\x02"), "\"AQI=\"");
	expect_msgpack(MP("\xc4\x03\x01\x02\x03"), "\"AQID\"");
	expect_msgpack(MP("\xc4\x04\xff\xfe\xfd\xfc"), "\"//79/A==\"");
	/* The extremes of every number. */
	expect_msgpack(MP("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
		       "18446744073709551615");
	expect_msgpack(MP("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
		       "-9223372036854775808");
	expect_msgpack(MP("\xca\x3f\xc0\x00\x00"), "1.5");
	expect_msgpack(MP("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "null");
	expect_msgpack(MP("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"), "null");
	expect_msgpack(MP("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"), "null");
	expect_msgpack(MP("\xcb\x80\x00\x00\x00\x00\x00\x00\x00"), "-0.0");
	expect_msgpack(MP("\xcb\x00\x00\x00\x00\x00\x00\x00\x01"), "5e-324");
	/* Keys that are not strings become strings of their JSON. */
	expect_msgpack(MP("\x81\x01\x02"), "{\"1\":2}");
	expect_msgpack(MP("\x81\xc0\xc3"), "{\"null\":true}");
	expect_msgpack(MP("\x81\x91\x01\xc2"), "{\"[1]\":false}");
	expect_msgpack(MP("\x81\x81\xa1k\xa1v\x00"),
		       "{\"{\\\"k\\\":\\\"v\\\"}\":0}");
	expect_msgpack(MP("\x81\xa1\xff\x00"), "{\"\\ufffd\":0}");
	expect_msgpack(MP("\x81\xc4\x01\x01\x00"), "{\"\\\"AQ==\\\"\":0}");
	/* Ext has no JSON form. */
	expect_msgpack(MP("\x92\xd4\x01\x00\x01"), "[null,1]");
}

static void test_hostile_msgpack_rejected_by_parser(void **state)
{
	static const struct {
		const char *b;
		size_t n;
	} bad[] = {
		{MP("\xdd\xff\xff\xff\xff")}, /* 4 G elements claimed */
		{MP("\xdf\xff\xff\xff\xff")}, /* 4 G pairs claimed */
		{MP("\xdb\xff\xff\xff\xff"
		    "ab")},                   /* 4 GiB string claimed */
		{MP("\xc6\x7f\xff\xff\xff")}, /* 2 GiB binary claimed */
		{MP("\xc1")},                 /* never used */
		{MP("\x92\x01")},             /* truncated */
		{MP("\x01\x02")},             /* trailing */
	};
	char deep[40];
	af_doc *doc = NULL;
	char *json = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(af_doc_parse(&doc, bad[i].b, bad[i].n),
				     AF_OK);
		assert_null(doc);
	}
	/* 33 levels are refused by the parser; 32 print. */
	memset(deep, 0x91, 33);
	deep[33] = 0x01;
	assert_int_not_equal(af_doc_parse(&doc, deep, 34), AF_OK);
	assert_int_equal(af_doc_parse(&doc, deep + 1, 33), AF_OK);
	assert_int_equal(cli_value_to_json(af_doc_root(doc), &json, NULL),
			 AF_OK);
	assert_int_equal(strlen(json), 32 * 2 + 1);
	free(json);
	af_doc_destroy(&doc);
	/* A missing value prints as null. */
	assert_int_equal(cli_value_to_json(NULL, &json, NULL), AF_OK);
	assert_string_equal(json, "null");
	free(json);
}

/* Random and mutated bytes: whatever the parser accepts must print as
 * valid JSON that reads back; nothing may crash (ASan and valgrind
 * watch). */
static void test_random_bytes(void **state)
{
	static const unsigned char seed[] =
		"\x84\xa1"
		"a\x93\x01\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\xa2hi\xa1"
		"b\xc4\x02\xff\x00\xa1"
		"c\x81\x01\xc3\xa1"
		"d\xcf\xff\xff\xff\xff\xff\xff\xff\xff";
	unsigned char buf[64];
	unsigned rng = 12345;
	int printed = 0;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len;
		af_doc *doc = NULL;
		char *json = NULL;
		if (round % 2 == 0) {
			len = sizeof(seed) - 1;
			memcpy(buf, seed, len);
			for (int k = 0; k < 3; k++) {
				rng = rng * 1103515245u + 12345u;
				buf[(rng >> 8) % len] =
					(unsigned char)(rng >> 16);
			}
		} else {
			rng = rng * 1103515245u + 12345u;
			len = 1 + (rng >> 8) % sizeof(buf);
			for (size_t k = 0; k < len; k++) {
				rng = rng * 1103515245u + 12345u;
				buf[k] = (unsigned char)(rng >> 16);
			}
		}
		if (af_doc_parse(&doc, buf, len) != AF_OK)
			continue;
		assert_int_equal(
			cli_value_to_json(af_doc_root(doc), &json, NULL),
			AF_OK);
		{
			/* Valid JSON, and valid UTF-8. */
			af_payload *p = NULL;
			char why[128];
			af_err err;
			assert_int_equal(af_payload_new(&p), AF_OK);
			assert_true(cli_utf8_valid(json, strlen(json)));
			err = cli_json_to_payload(json, p, why, sizeof(why));
			/* Only \u0000 in a string is refused. */
			if (err != AF_OK && strstr(why, "\\u0000") == NULL)
				fail_msg("%s: %s", json, why);
			af_payload_destroy(&p);
		}
		printed++;
		free(json);
		af_doc_destroy(&doc);
	}
	assert_true(printed > 100);
}

/* Random JSON-ish text never crashes the reader. */
static void test_random_json(void **state)
{
	static const char alphabet[] = "{}[]\":,0123456789.eE-+ tfnrul\\\xff";
	char text[48];
	unsigned rng = 777;
	af_payload *p = NULL;

	(void)state;
	assert_int_equal(af_payload_new(&p), AF_OK);
	for (int round = 0; round < 20000; round++) {
		size_t len;
		rng = rng * 1103515245u + 12345u;
		len = (rng >> 8) % (sizeof(text) - 1);
		for (size_t k = 0; k < len; k++) {
			rng = rng * 1103515245u + 12345u;
			text[k] =
				alphabet[(rng >> 16) % (sizeof(alphabet) - 1)];
		}
		text[len] = '\0';
		af_payload_reset(p);
		(void)cli_json_to_payload(text, p, NULL, 0);
	}
	af_payload_destroy(&p);
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(cli_utf8_valid("", 0));
	assert_true(cli_utf8_valid("abc", 3));
	assert_true(cli_utf8_valid("\xf4\x8f\xbf\xbf", 4));
	assert_false(cli_utf8_valid("\xf4\x90\x80\x80", 4));
	assert_false(cli_utf8_valid("\xe0\x80\x80", 3));
	assert_false(cli_utf8_valid("\xed\xbf\xbf", 3));
	assert_false(cli_utf8_valid("\xc3", 1));
	assert_false(cli_utf8_valid("\x80", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_numbers_keep_their_kind),
		cmocka_unit_test(test_msgpack_round_trip),
		cmocka_unit_test(test_nesting_limit),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_hostile_msgpack),
		cmocka_unit_test(test_hostile_msgpack_rejected_by_parser),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_random_json),
		cmocka_unit_test(test_utf8_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
