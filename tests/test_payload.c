/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "actorflow/actorflow.h"
#include "payload_internal.h"

/* Parses what p holds; the test fails unless the writer is consistent. */
static af_doc *parse_payload(const af_payload *p)
{
	af_doc *d = NULL;
	size_t len;
	const void *data = af_payload_data(p, &len);

	assert_int_equal(af_payload_status(p), AF_OK);
	assert_int_equal(af_doc_parse(&d, data, len), AF_OK);
	assert_non_null(d);
	return d;
}

static af_doc *parse_bytes(const void *data, size_t len)
{
	af_doc *d = NULL;

	assert_int_equal(af_doc_parse(&d, data, len), AF_OK);
	return d;
}

static af_payload *new_payload(void)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_non_null(p);
	return p;
}

static void assert_str_value(const af_value *v, const char *want,
			     size_t want_len)
{
	const char *s;
	size_t len;

	assert_int_equal(af_value_type(v), AF_TYPE_STR);
	assert_int_equal(af_value_str(v, &s, &len), AF_OK);
	assert_non_null(s);
	assert_int_equal(len, want_len);
	assert_memory_equal(s, want, want_len);
	assert_int_equal(af_value_len(v), want_len);
}

static void test_scalars_round_trip(void **state)
{
	static const char with_nul[] = {'a', '\0', 'b'};
	static const unsigned char blob[] = {0, 1, 0xff, 0, 0x80};
	af_payload *p = new_payload();
	af_doc *d;
	const af_value *root, *v;
	bool b;
	int64_t i;
	uint64_t u;
	double x;
	const void *bin;
	size_t len;

	af_pack_map_begin(p);
	af_pack_str(p, "nil");
	af_pack_nil(p);
	af_pack_str(p, "t");
	af_pack_bool(p, true);
	af_pack_str(p, "f");
	af_pack_bool(p, false);
	af_pack_str(p, "imin");
	af_pack_int(p, INT64_MIN);
	af_pack_str(p, "imax");
	af_pack_int(p, INT64_MAX);
	af_pack_str(p, "neg");
	af_pack_int(p, -1);
	af_pack_str(p, "umax");
	af_pack_uint(p, UINT64_MAX);
	af_pack_str(p, "d");
	af_pack_double(p, -3.25);
	af_pack_str(p, "inf");
	af_pack_double(p, INFINITY);
	af_pack_str(p, "s");
	af_pack_str(p, "h\xc3\xa9llo");
	af_pack_str(p, "empty");
	af_pack_str(p, "");
	af_pack_str(p, "nul");
	af_pack_strn(p, with_nul, sizeof(with_nul));
	af_pack_str(p, "strnull");
	af_pack_str(p, NULL);
	af_pack_str(p, "bin");
	af_pack_bin(p, blob, sizeof(blob));
	af_pack_str(p, "bin0");
	af_pack_bin(p, NULL, 0);
	assert_int_equal(af_pack_map_end(p), AF_OK);

	d = parse_payload(p);
	root = af_doc_root(d);
	assert_int_equal(af_value_type(root), AF_TYPE_MAP);
	assert_int_equal(af_value_len(root), 15);

	assert_int_equal(af_value_type(af_value_get(root, "nil")), AF_TYPE_NIL);
	assert_int_equal(af_value_bool(af_value_get(root, "t"), &b), AF_OK);
	assert_true(b);
	assert_int_equal(af_value_bool(af_value_get(root, "f"), &b), AF_OK);
	assert_false(b);
	assert_int_equal(af_value_int(af_value_get(root, "imin"), &i), AF_OK);
	assert_true(i == INT64_MIN);
	assert_int_equal(af_value_int(af_value_get(root, "imax"), &i), AF_OK);
	assert_true(i == INT64_MAX);
	assert_int_equal(af_value_int(af_value_get(root, "neg"), &i), AF_OK);
	assert_true(i == -1);
	assert_int_equal(af_value_uint(af_value_get(root, "umax"), &u), AF_OK);
	assert_true(u == UINT64_MAX);
	assert_int_equal(af_value_type(af_value_get(root, "d")), AF_TYPE_FLOAT);
	assert_int_equal(af_value_double(af_value_get(root, "d"), &x), AF_OK);
	assert_true(x == -3.25);
	assert_int_equal(af_value_double(af_value_get(root, "inf"), &x), AF_OK);
	assert_true(isinf(x) && x > 0);
	assert_str_value(af_value_get(root, "s"), "h\xc3\xa9llo", 6);
	assert_str_value(af_value_get(root, "empty"), "", 0);
	assert_str_value(af_value_get(root, "nul"), with_nul, 3);
	assert_int_equal(af_value_type(af_value_get(root, "strnull")),
			 AF_TYPE_NIL);

	v = af_value_get(root, "bin");
	assert_int_equal(af_value_type(v), AF_TYPE_BIN);
	assert_int_equal(af_value_bin(v, &bin, &len), AF_OK);
	assert_int_equal(len, sizeof(blob));
	assert_memory_equal(bin, blob, sizeof(blob));
	assert_int_equal(af_value_len(v), sizeof(blob));
	assert_int_equal(af_value_bin(af_value_get(root, "bin0"), &bin, &len),
			 AF_OK);
	assert_int_equal(len, 0);
	assert_non_null(bin);

	/* Keys come back in order. */
	assert_true(af_value_str_eq(af_value_key_at(root, 0), "nil"));
	assert_true(af_value_str_eq(af_value_key_at(root, 14), "bin0"));
	assert_int_equal(af_value_type(af_value_val_at(root, 1)), AF_TYPE_BOOL);
	assert_null(af_value_key_at(root, 15));
	assert_null(af_value_val_at(root, 15));

	af_doc_destroy(&d);
	assert_null(d);
	af_payload_destroy(&p);
	assert_null(p);
}

/* Each value sits at a boundary between two msgpack encodings. */
static const int64_t int_samples[] = {
	0,
	1,
	0x7f,
	0x80,
	0xff,
	0x100,
	0xffff,
	0x10000,
	0xffffffff,
	0x100000000,
	-1,
	-32,
	-33,
	-128,
	-129,
	-32768,
	-32769,
	INT32_MIN,
	(int64_t)INT32_MIN - 1,
	INT64_MIN,
	INT64_MAX,
};

static void test_int_encodings(void **state)
{
	af_payload *p = new_payload();

	for (size_t k = 0; k < sizeof(int_samples) / sizeof(int_samples[0]);
	     k++) {
		int64_t v = int_samples[k], got;
		uint64_t ugot;
		double x;
		af_doc *d;

		af_payload_reset(p);
		assert_int_equal(af_pack_int(p, v), AF_OK);
		d = parse_payload(p);
		assert_int_equal(af_value_type(af_doc_root(d)), AF_TYPE_INT);
		assert_int_equal(af_value_int(af_doc_root(d), &got), AF_OK);
		assert_true(got == v);
		assert_int_equal(af_value_double(af_doc_root(d), &x), AF_OK);
		assert_true(x == (double)v);
		assert_int_equal(af_value_uint(af_doc_root(d), &ugot),
				 v < 0 ? AF_ERANGE : AF_OK);
		if (v >= 0)
			assert_true(ugot == (uint64_t)v);
		af_doc_destroy(&d);

		if (v < 0)
			continue;
		af_payload_reset(p);
		assert_int_equal(af_pack_uint(p, (uint64_t)v), AF_OK);
		d = parse_payload(p);
		assert_int_equal(af_value_uint(af_doc_root(d), &ugot), AF_OK);
		assert_true(ugot == (uint64_t)v);
		af_doc_destroy(&d);
	}
	af_payload_destroy(&p);
}

static void test_range_and_type_errors(void **state)
{
	af_payload *p = new_payload();
	af_doc *d;
	const af_value *r;
	int64_t i;
	uint64_t u;
	double x;
	bool b;
	const char *s;
	const void *bin;
	size_t len;

	af_pack_array(p, 5);
	af_pack_uint(p, (uint64_t)INT64_MAX + 1);
	af_pack_int(p, -1);
	af_pack_str(p, "7");
	af_pack_double(p, 7.0);
	af_pack_bin(p, "x", 1);
	d = parse_payload(p);
	r = af_doc_root(d);

	assert_int_equal(af_value_int(af_value_at(r, 0), &i), AF_ERANGE);
	assert_int_equal(af_value_uint(af_value_at(r, 0), &u), AF_OK);
	assert_true(u == (uint64_t)INT64_MAX + 1);
	assert_int_equal(af_value_uint(af_value_at(r, 1), &u), AF_ERANGE);
	assert_int_equal(af_value_int(af_value_at(r, 2), &i), AF_ETYPE);
	assert_int_equal(af_value_double(af_value_at(r, 2), &x), AF_ETYPE);
	assert_int_equal(af_value_bool(af_value_at(r, 2), &b), AF_ETYPE);
	assert_int_equal(af_value_bin(af_value_at(r, 2), &bin, &len), AF_ETYPE);
	/* A float is not an integer, even a whole one. */
	assert_int_equal(af_value_int(af_value_at(r, 3), &i), AF_ETYPE);
	assert_int_equal(af_value_uint(af_value_at(r, 3), &u), AF_ETYPE);
	assert_int_equal(af_value_str(af_value_at(r, 4), &s, &len), AF_ETYPE);
	assert_null(af_value_strdup(af_value_at(r, 4)));
	assert_false(af_value_str_eq(af_value_at(r, 4), "x"));
	/* Indexing what is not an array, or past its end. */
	assert_null(af_value_at(r, 5));
	assert_null(af_value_at(af_value_at(r, 2), 0));
	assert_null(af_value_get(r, "x"));
	assert_null(af_value_key_at(r, 0));
	assert_int_equal(af_value_len(af_value_at(r, 0)), 0);

	af_doc_destroy(&d);
	af_payload_destroy(&p);
}

static void test_null_value(void **state)
{
	bool b;
	int64_t i;
	uint64_t u;
	double x;
	const char *s;
	const void *bin;
	size_t len;

	assert_int_equal(af_value_type(NULL), AF_TYPE_NONE);
	assert_int_equal(af_value_bool(NULL, &b), AF_ENOTFOUND);
	assert_int_equal(af_value_int(NULL, &i), AF_ENOTFOUND);
	assert_int_equal(af_value_uint(NULL, &u), AF_ENOTFOUND);
	assert_int_equal(af_value_double(NULL, &x), AF_ENOTFOUND);
	assert_int_equal(af_value_str(NULL, &s, &len), AF_ENOTFOUND);
	assert_int_equal(af_value_bin(NULL, &bin, &len), AF_ENOTFOUND);
	assert_null(af_value_strdup(NULL));
	assert_false(af_value_str_eq(NULL, ""));
	assert_int_equal(af_value_len(NULL), 0);
	assert_null(af_value_at(NULL, 0));
	assert_null(af_value_key_at(NULL, 0));
	assert_null(af_value_val_at(NULL, 0));
	assert_null(af_value_get(NULL, "k"));
	assert_int_equal(af_value_get_int(NULL, "k", 42), 42);
	assert_true(af_value_get_double(NULL, "k", 1.5) == 1.5);
	assert_true(af_value_get_bool(NULL, "k", true));
	/* Lookups chain without checks in between. */
	assert_int_equal(
		af_value_int(af_value_get(af_value_at(NULL, 3), "a"), &i),
		AF_ENOTFOUND);
	assert_null(af_doc_root(NULL));
}

/* [1.5f, fixext1(5, 07), ext8(-1, "abc")], written by hand because the
 * writer has no float32 or ext calls. */
static const unsigned char float_ext_doc[] = {
	0x93, 0xca, 0x3f, 0xc0, 0x00, 0x00, 0xd4, 0x05,
	0x07, 0xc7, 0x03, 0xff, 'a',  'b',  'c',
};

static void test_float32_and_ext(void **state)
{
	af_doc *d = parse_bytes(float_ext_doc, sizeof(float_ext_doc));
	const af_value *r = af_doc_root(d);
	af_payload *p = new_payload();
	const void *out;
	size_t len;
	double x;

	assert_int_equal(af_value_type(af_value_at(r, 0)), AF_TYPE_FLOAT);
	assert_int_equal(af_value_double(af_value_at(r, 0), &x), AF_OK);
	assert_true(x == 1.5);
	assert_int_equal(af_value_type(af_value_at(r, 1)), AF_TYPE_EXT);
	assert_int_equal(af_value_type(af_value_at(r, 2)), AF_TYPE_EXT);
	assert_int_equal(af_value_len(af_value_at(r, 2)), 0);

	/* Forwarding keeps every byte, float32 and ext included. */
	assert_int_equal(af_pack_value(p, r), AF_OK);
	out = af_payload_data(p, &len);
	assert_int_equal(len, sizeof(float_ext_doc));
	assert_memory_equal(out, float_ext_doc, len);

	af_payload_destroy(&p);
	af_doc_destroy(&d);
}

static void test_nested_auto_count(void **state)
{
	af_payload *p = new_payload();
	af_doc *d;
	const af_value *r, *a, *e;
	bool b;

	af_pack_map_begin(p);
	af_pack_str(p, "a");
	af_pack_array_begin(p);
	af_pack_int(p, 1);
	af_pack_int(p, 2);
	af_pack_map_begin(p);
	af_pack_str(p, "x");
	af_pack_bool(p, true);
	af_pack_map_end(p);
	assert_int_equal(af_payload_status(p), AF_EINVAL);
	af_pack_array_end(p);
	af_pack_str(p, "empty_array");
	af_pack_array_begin(p);
	af_pack_array_end(p);
	af_pack_str(p, "empty_map");
	af_pack_map_begin(p);
	af_pack_map_end(p);
	/* A counted array inside a begin: its elements must not be counted
	 * by the enclosing map. */
	af_pack_str(p, "fixed");
	af_pack_array(p, 3);
	af_pack_array_begin(p);
	af_pack_int(p, 3);
	af_pack_array_end(p);
	af_pack_str(p, "z");
	af_pack_map(p, 1);
	af_pack_str(p, "k");
	af_pack_array_begin(p);
	af_pack_nil(p);
	af_pack_array_end(p);
	af_pack_str(p, "last");
	af_pack_int(p, 9);
	assert_int_equal(af_pack_map_end(p), AF_OK);
	assert_int_equal(af_payload_status(p), AF_OK);

	d = parse_payload(p);
	r = af_doc_root(d);
	assert_int_equal(af_value_len(r), 5);
	a = af_value_get(r, "a");
	assert_int_equal(af_value_type(a), AF_TYPE_ARRAY);
	assert_int_equal(af_value_len(a), 3);
	assert_int_equal(
		af_value_bool(af_value_get(af_value_at(a, 2), "x"), &b), AF_OK);
	assert_true(b);
	assert_int_equal(af_value_type(af_value_get(r, "empty_array")),
			 AF_TYPE_ARRAY);
	assert_int_equal(af_value_len(af_value_get(r, "empty_array")), 0);
	assert_int_equal(af_value_type(af_value_get(r, "empty_map")),
			 AF_TYPE_MAP);
	assert_int_equal(af_value_len(af_value_get(r, "empty_map")), 0);
	e = af_value_get(r, "fixed");
	assert_int_equal(af_value_len(e), 3);
	assert_int_equal(af_value_len(af_value_at(e, 0)), 1);
	assert_true(af_value_str_eq(af_value_at(e, 1), "z"));
	assert_int_equal(af_value_len(af_value_get(af_value_at(e, 2), "k")), 1);
	assert_int_equal(af_value_get_int(r, "last", 0), 9);

	af_doc_destroy(&d);
	af_payload_destroy(&p);
}

static void test_large_containers_and_strings(void **state)
{
	enum { N = 70000 };
	af_payload *p = new_payload();
	char *big = malloc(N);
	af_doc *d;
	const af_value *r;
	const char *s;
	size_t len;
	int64_t v;

	assert_non_null(big);
	for (size_t i = 0; i < N; i++)
		big[i] = (char)('a' + i % 26);
	af_pack_map_begin(p);
	af_pack_str(p, "items");
	af_pack_array_begin(p);
	for (int i = 0; i < N; i++)
		af_pack_int(p, i);
	af_pack_array_end(p);
	af_pack_str(p, "big");
	af_pack_strn(p, big, N);
	af_pack_str(p, "bigbin");
	af_pack_bin(p, big, N);
	assert_int_equal(af_pack_map_end(p), AF_OK);

	d = parse_payload(p);
	r = af_doc_root(d);
	assert_int_equal(af_value_len(af_value_get(r, "items")), N);
	assert_int_equal(
		af_value_int(af_value_at(af_value_get(r, "items"), N - 1), &v),
		AF_OK);
	assert_int_equal(v, N - 1);
	assert_int_equal(af_value_str(af_value_get(r, "big"), &s, &len), AF_OK);
	assert_int_equal(len, N);
	assert_memory_equal(s, big, N);
	assert_int_equal(af_value_len(af_value_get(r, "bigbin")), N);

	af_doc_destroy(&d);
	af_payload_destroy(&p);
	free(big);
}

static void test_max_nesting(void **state)
{
	af_payload *p = new_payload();
	af_doc *d;
	const af_value *v;

	for (int i = 0; i < 32; i++)
		assert_int_equal(af_pack_array_begin(p), AF_OK);
	assert_int_equal(af_pack_int(p, 7), AF_OK);
	for (int i = 0; i < 32; i++)
		assert_int_equal(af_pack_array_end(p), AF_OK);
	d = parse_payload(p);
	v = af_doc_root(d);
	for (int i = 0; i < 32; i++)
		v = af_value_at(v, 0);
	assert_int_equal(af_value_type(v), AF_TYPE_INT);
	af_doc_destroy(&d);

	af_payload_reset(p);
	for (int i = 0; i < 32; i++) {
		af_pack_map_begin(p);
		af_pack_str(p, "k");
	}
	assert_int_equal(af_pack_array_begin(p), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);

	/* A counted container that is the last element of a counted one takes
	 * its slot, so this chain is unbounded for the writer; the parser
	 * still refuses it for its depth. */
	af_payload_reset(p);
	for (int i = 0; i < 100; i++)
		assert_int_equal(af_pack_array(p, 1), AF_OK);
	assert_int_equal(af_pack_nil(p), AF_OK);
	assert_int_equal(af_payload_status(p), AF_OK);
	{
		size_t len;
		const void *data = af_payload_data(p, &len);

		d = NULL;
		assert_int_equal(af_doc_parse(&d, data, len), AF_EPROTO);
		assert_null(d);
	}
	af_payload_destroy(&p);
}

static void test_sticky_error(void **state)
{
	af_payload *p = new_payload();
	af_doc *d;

	assert_int_equal(af_pack_array_end(p), AF_EINVAL);
	assert_int_equal(af_pack_int(p, 1), AF_EINVAL);
	assert_int_equal(af_pack_str(p, "x"), AF_EINVAL);
	assert_int_equal(af_pack_map_begin(p), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);

	/* A first error of another kind sticks just the same. */
	af_payload_reset(p);
	assert_int_equal(af_payload_status(p), AF_OK);
	assert_int_equal(af_pack_array_begin(p), AF_OK);
	assert_int_equal(af_pack_value(p, NULL), AF_ENOTFOUND);
	assert_int_equal(af_pack_array_end(p), AF_ENOTFOUND);
	assert_int_equal(af_payload_status(p), AF_ENOTFOUND);

	assert_int_equal(af_pack_strn(p, NULL, 3), AF_ENOTFOUND);
	af_payload_reset(p);
	assert_int_equal(af_pack_strn(p, NULL, 3), AF_EINVAL);
	af_payload_reset(p);
	assert_int_equal(af_pack_bin(p, NULL, 1), AF_EINVAL);

	/* Reset clears the error and the bytes. */
	af_payload_reset(p);
	assert_int_equal(af_pack_int(p, 5), AF_OK);
	d = parse_payload(p);
	assert_int_equal(af_value_type(af_doc_root(d)), AF_TYPE_INT);
	af_doc_destroy(&d);
	af_payload_destroy(&p);
}

static void test_unbalanced_end(void **state)
{
	af_payload *p = new_payload();

	assert_int_equal(af_pack_map_begin(p), AF_OK);
	assert_int_equal(af_pack_array_end(p), AF_EINVAL);

	af_payload_reset(p);
	af_pack_array_begin(p);
	assert_int_equal(af_pack_map_end(p), AF_EINVAL);

	af_payload_reset(p);
	af_pack_array_begin(p);
	af_pack_array_end(p);
	assert_int_equal(af_pack_array_end(p), AF_EINVAL);

	/* Ending a begin while a counted array inside it is short. */
	af_payload_reset(p);
	af_pack_array_begin(p);
	af_pack_array(p, 2);
	af_pack_int(p, 1);
	assert_int_equal(af_pack_array_end(p), AF_EINVAL);

	af_payload_destroy(&p);
}

static void test_odd_map(void **state)
{
	af_payload *p = new_payload();

	af_pack_map_begin(p);
	af_pack_str(p, "k");
	assert_int_equal(af_pack_map_end(p), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);

	af_payload_reset(p);
	af_pack_map_begin(p);
	af_pack_str(p, "k");
	af_pack_int(p, 1);
	af_pack_str(p, "k2");
	assert_int_equal(af_pack_map_end(p), AF_EINVAL);
	af_payload_destroy(&p);
}

static void test_incomplete_and_extra_values(void **state)
{
	af_payload *p = new_payload();

	/* A counted container still short of elements cannot be sent. */
	af_pack_array(p, 2);
	af_pack_int(p, 1);
	assert_int_equal(af_payload_status(p), AF_EINVAL);
	af_pack_int(p, 2);
	assert_int_equal(af_payload_status(p), AF_OK);

	/* A payload is one value: a second one would corrupt the envelope. */
	assert_int_equal(af_pack_int(p, 3), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);

	af_payload_reset(p);
	af_pack_map(p, 0);
	assert_int_equal(af_pack_map_begin(p), AF_EINVAL);
	af_payload_destroy(&p);
}

static void test_pack_value_forwarding(void **state)
{
	af_payload *src = new_payload();
	af_payload *fwd = new_payload();
	af_doc *d1, *d2;
	const af_value *r;
	const void *a, *b;
	size_t alen, blen;

	af_pack_map_begin(src);
	af_pack_str(src, "n");
	af_pack_double(src, 0.5);
	af_pack_str(src, "list");
	af_pack_array_begin(src);
	af_pack_str(src, "x");
	af_pack_bin(src, "\0\1", 2);
	af_pack_int(src, -70000);
	af_pack_array_end(src);
	af_pack_map_end(src);
	d1 = parse_payload(src);

	af_pack_map_begin(fwd);
	af_pack_str(fwd, "fwd");
	assert_int_equal(af_pack_value(fwd, af_doc_root(d1)), AF_OK);
	af_pack_str(fwd, "list");
	assert_int_equal(
		af_pack_value(fwd, af_value_get(af_doc_root(d1), "list")),
		AF_OK);
	assert_int_equal(af_pack_map_end(fwd), AF_OK);
	d2 = parse_payload(fwd);
	r = af_doc_root(d2);
	assert_int_equal(af_value_len(r), 2);

	/* The copy re-encodes to the same bytes as the original. */
	af_payload_reset(src);
	af_pack_value(src, af_doc_root(d1));
	af_payload_reset(fwd);
	af_pack_value(fwd, af_value_get(r, "fwd"));
	a = af_payload_data(src, &alen);
	b = af_payload_data(fwd, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	assert_true(msgpack_object_equal(
		*(const msgpack_object *)af_value_get(r, "list"),
		*(const msgpack_object *)af_value_get(af_doc_root(d1),
						      "list")));

	af_doc_destroy(&d1);
	af_doc_destroy(&d2);
	af_payload_destroy(&src);
	af_payload_destroy(&fwd);
}

static void test_doc_parse_rejects(void **state)
{
	static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff,
						   0xff};
	static const unsigned char huge_str[] = {0xdb, 0xff, 0xff,
						 0xff, 0xff, 'a'};
	static const unsigned char trailing[] = {0x01, 0x02};
	static const unsigned char truncated[] = {0x92, 0x01};
	static const unsigned char reserved[] = {0xc1};
	static const unsigned char ok[] = {0x91, 0xc0};
	unsigned char deep[40];
	af_doc *d = (af_doc *)1;

	assert_int_equal(af_doc_parse(&d, ok, 0), AF_EPROTO);
	assert_null(d);
	assert_int_equal(af_doc_parse(&d, huge_array, sizeof(huge_array)),
			 AF_EPROTO);
	assert_int_equal(af_doc_parse(&d, huge_str, sizeof(huge_str)),
			 AF_EPROTO);
	assert_int_equal(af_doc_parse(&d, trailing, sizeof(trailing)),
			 AF_EPROTO);
	assert_int_equal(af_doc_parse(&d, truncated, sizeof(truncated)),
			 AF_EPROTO);
	assert_int_equal(af_doc_parse(&d, reserved, sizeof(reserved)),
			 AF_EPROTO);
	assert_int_equal(af_doc_parse(NULL, ok, sizeof(ok)), AF_EINVAL);
	assert_int_equal(af_doc_parse(&d, NULL, 2), AF_EINVAL);

	/* msgpack-c parses 32 levels; deeper must be AF_EPROTO, not the
	 * AF_ENOMEM its parser would report. */
	memset(deep, 0x91, sizeof(deep));
	deep[32] = 0xc0;
	assert_int_equal(af_doc_parse(&d, deep, 33), AF_OK);
	af_doc_destroy(&d);
	deep[32] = 0x91;
	deep[33] = 0xc0;
	assert_int_equal(af_doc_parse(&d, deep, 34), AF_EPROTO);
	assert_null(d);
}

static void test_payload_bytes(void **state)
{
	af_payload *p = new_payload();
	const unsigned char *b;
	size_t len = 0;

	b = af__payload_bytes(NULL, &len);
	assert_int_equal(len, 1);
	assert_int_equal(b[0], 0xc0);
	b = af__payload_bytes(p, &len);
	assert_int_equal(len, 1);
	assert_int_equal(b[0], 0xc0);
	af_pack_int(p, 300);
	b = af__payload_bytes(p, &len);
	assert_int_equal(len, 3);
	assert_int_equal(b[0], 0xcd);

	assert_int_equal(af_payload_status(NULL), AF_OK);
	assert_null(af_payload_data(NULL, &len));
	assert_int_equal(len, 0);
	af_payload_destroy(&p);
}

static void test_null_writer(void **state)
{
	af_payload *p = NULL;

	assert_int_equal(af_payload_new(NULL), AF_EINVAL);
	assert_int_equal(af_pack_nil(NULL), AF_EINVAL);
	assert_int_equal(af_pack_bool(NULL, true), AF_EINVAL);
	assert_int_equal(af_pack_int(NULL, 1), AF_EINVAL);
	assert_int_equal(af_pack_uint(NULL, 1), AF_EINVAL);
	assert_int_equal(af_pack_double(NULL, 1), AF_EINVAL);
	assert_int_equal(af_pack_str(NULL, "x"), AF_EINVAL);
	assert_int_equal(af_pack_strn(NULL, "x", 1), AF_EINVAL);
	assert_int_equal(af_pack_bin(NULL, "x", 1), AF_EINVAL);
	assert_int_equal(af_pack_array(NULL, 1), AF_EINVAL);
	assert_int_equal(af_pack_map(NULL, 1), AF_EINVAL);
	assert_int_equal(af_pack_array_begin(NULL), AF_EINVAL);
	assert_int_equal(af_pack_array_end(NULL), AF_EINVAL);
	assert_int_equal(af_pack_map_begin(NULL), AF_EINVAL);
	assert_int_equal(af_pack_map_end(NULL), AF_EINVAL);
	assert_int_equal(af_pack_value(NULL, NULL), AF_EINVAL);
	af_payload_reset(NULL);
	af_payload_destroy(NULL);
	af_payload_destroy(&p);
	af_doc_destroy(NULL);
	af_doc_destroy((af_doc **)&p);
}

static void test_lookup_helpers(void **state)
{
	/* {"a": 1, "ab": 2, 5: 3, "a": 4, "i": "s", "big": 2^63, "d": 2,
	 *  "b": true} */
	static const unsigned char doc[] = {
		0x88, 0xa1, 'a', 0x01, 0xa2, 'a',  'b',  0x02, 0x05,
		0x03, 0xa1, 'a', 0x04, 0xa1, 'i',  0xa1, 's',  0xa3,
		'b',  'i',  'g', 0xcf, 0x80, 0,    0,    0,    0,
		0,    0,    0,   0xa1, 'd',  0x02, 0xa1, 'b',  0xc3,
	};
	af_doc *d = parse_bytes(doc, sizeof(doc));
	const af_value *r = af_doc_root(d);
	char *copy;

	assert_int_equal(af_value_get_int(r, "a", 0), 1);
	assert_int_equal(af_value_get_int(r, "ab", 0), 2);
	assert_null(af_value_get(r, "abc"));
	assert_null(af_value_get(r, ""));
	assert_null(af_value_get(r, NULL));
	assert_int_equal(af_value_get_int(r, "i", -5), -5);
	assert_int_equal(af_value_get_int(r, "big", -6), -6);
	assert_int_equal(af_value_get_int(r, "missing", -7), -7);
	assert_true(af_value_get_double(r, "d", 0) == 2.0);
	assert_true(af_value_get_double(r, "i", 0.25) == 0.25);
	assert_true(af_value_get_bool(r, "b", false));
	assert_false(af_value_get_bool(r, "a", false));
	assert_true(af_value_str_eq(af_value_get(r, "i"), "s"));
	assert_false(af_value_str_eq(af_value_get(r, "i"), "st"));
	assert_false(af_value_str_eq(af_value_get(r, "i"), ""));
	assert_false(af_value_str_eq(af_value_get(r, "i"), NULL));
	copy = af_value_strdup(af_value_get(r, "i"));
	assert_string_equal(copy, "s");
	free(copy);
	af_doc_destroy(&d);
}

static void test_strdup_embedded(void **state)
{
	af_payload *p = new_payload();
	af_doc *d;
	char *copy;

	af_pack_strn(p, "a\0b", 3);
	d = parse_payload(p);
	copy = af_value_strdup(af_doc_root(d));
	assert_non_null(copy);
	assert_memory_equal(copy, "a\0b", 4);
	free(copy);
	af_doc_destroy(&d);

	af_payload_reset(p);
	af_pack_str(p, "");
	d = parse_payload(p);
	copy = af_value_strdup(af_doc_root(d));
	assert_string_equal(copy, "");
	assert_true(af_value_str_eq(af_doc_root(d), ""));
	free(copy);
	af_doc_destroy(&d);
	af_payload_destroy(&p);
}

/* Bytes a writer holds, as a value for af_pack_raw. */
static const void *bytes_of(const af_payload *p, size_t *len)
{
	assert_int_equal(af_payload_status(p), AF_OK);
	return af_payload_data(p, len);
}

static void test_pack_raw(void **state)
{
	af_payload *src = new_payload();
	af_payload *p = new_payload();
	const void *raw, *b;
	size_t raw_len, blen;
	af_doc *d;
	const af_value *r;

	af_pack_map_begin(src);
	af_pack_str(src, "n");
	af_pack_double(src, 0.5);
	af_pack_str(src, "list");
	af_pack_array_begin(src);
	af_pack_str(src, "x");
	af_pack_bin(src, "\0\1", 2);
	af_pack_int(src, -70000);
	af_pack_array_end(src);
	af_pack_map_end(src);
	raw = bytes_of(src, &raw_len);

	/* Appended as they are, and counted as one element by a begin, a
	 * counted container and the top level alike. */
	af_pack_map_begin(p);
	af_pack_str(p, "fwd");
	assert_int_equal(af_pack_raw(p, raw, raw_len), AF_OK);
	af_pack_str(p, "two");
	af_pack_array(p, 2);
	assert_int_equal(af_pack_raw(p, "\xa1x", 2), AF_OK);
	assert_int_equal(af_pack_raw(p, raw, raw_len), AF_OK);
	assert_int_equal(af_pack_map_end(p), AF_OK);
	d = parse_payload(p);
	r = af_doc_root(d);
	assert_int_equal(af_value_len(r), 2);
	assert_true(af_value_get_double(af_value_get(r, "fwd"), "n", 0) == 0.5);
	assert_int_equal(af_value_len(af_value_get(r, "two")), 2);
	assert_true(
		af_value_str_eq(af_value_at(af_value_get(r, "two"), 0), "x"));
	af_doc_destroy(&d);

	/* The bytes themselves, not an encoding of their value: the
	 * source's 32-bit container headers stay. */
	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "fwd");
	af_pack_raw(p, raw, raw_len);
	af_pack_str(p, "two");
	af_pack_array(p, 2);
	af_pack_raw(p, "\xa1x", 2);
	af_pack_raw(p, raw, raw_len);
	b = bytes_of(p, &blen);
	{
		unsigned char *w = malloc(2 * raw_len + 16);
		size_t n = 0;

		assert_non_null(w);
		memcpy(w + n,
		       "\x82\xa3"
		       "fwd",
		       5);
		n += 5;
		memcpy(w + n, raw, raw_len);
		n += raw_len;
		memcpy(w + n,
		       "\xa3"
		       "two"
		       "\x92\xa1x",
		       7);
		n += 7;
		memcpy(w + n, raw, raw_len);
		n += raw_len;
		assert_int_equal(blen, n);
		assert_memory_equal(b, w, n);
		free(w);
	}

	/* A whole payload, and a second value after it refused. */
	af_payload_reset(p);
	assert_int_equal(af_pack_raw(p, "\xc0", 1), AF_OK);
	assert_int_equal(af_payload_status(p), AF_OK);
	assert_int_equal(af_pack_raw(p, "\xc0", 1), AF_EINVAL);

	af_payload_destroy(&src);
	af_payload_destroy(&p);
}

static void test_pack_raw_rejects(void **state)
{
	static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff,
						   0xff};
	static const unsigned char huge_str[] = {0xdb, 0xff, 0xff,
						 0xff, 0xff, 'a'};
	static const unsigned char trailing[] = {0x01, 0x02};
	static const unsigned char truncated[] = {0x92, 0x01};
	static const unsigned char truncated_str[] = {0xa5, 'a', 'b'};
	static const unsigned char truncated_map[] = {0x81, 0xa1, 'k'};
	static const unsigned char reserved[] = {0xc1};
	static const unsigned char ok[] = {0x91, 0xc0};
	const struct {
		const unsigned char *data;
		size_t len;
	} bad[] = {
		{ok, 0},
		{huge_array, sizeof(huge_array)},
		{huge_str, sizeof(huge_str)},
		{trailing, sizeof(trailing)},
		{truncated, sizeof(truncated)},
		{truncated_str, sizeof(truncated_str)},
		{truncated_map, sizeof(truncated_map)},
		{reserved, sizeof(reserved)},
	};
	unsigned char deep[40];
	af_payload *p = new_payload();
	size_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		af_payload_reset(p);
		af_pack_array_begin(p);
		af_pack_int(p, 1);
		af_payload_data(p, &len);
		assert_int_equal(af_pack_raw(p, bad[i].data, bad[i].len),
				 AF_EPROTO);
		/* Nothing was appended, and the error sticks. */
		{
			size_t now;
			af_payload_data(p, &now);
			assert_int_equal(now, len);
		}
		assert_int_equal(af_pack_int(p, 2), AF_EPROTO);
		assert_int_equal(af_pack_array_end(p), AF_EPROTO);
		assert_int_equal(af_payload_status(p), AF_EPROTO);
	}

	af_payload_reset(p);
	assert_int_equal(af_pack_raw(p, NULL, 1), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);
	af_payload_reset(p);
	assert_int_equal(af_pack_raw(p, NULL, 0), AF_EINVAL);
	assert_int_equal(af_pack_raw(NULL, ok, sizeof(ok)), AF_EINVAL);

	/* 32 levels on their own are a value; 33 are not. */
	memset(deep, 0x91, sizeof(deep));
	deep[32] = 0xc0;
	af_payload_reset(p);
	assert_int_equal(af_pack_raw(p, deep, 33), AF_OK);
	assert_int_equal(af_payload_status(p), AF_OK);
	deep[32] = 0x91;
	deep[33] = 0xc0;
	af_payload_reset(p);
	assert_int_equal(af_pack_raw(p, deep, 34), AF_EPROTO);

	/* Nesting counts the writer's open containers: 30 open take a value
	 * of two levels, not of three. */
	af_payload_reset(p);
	for (int i = 0; i < 30; i++)
		af_pack_array_begin(p);
	assert_int_equal(af_pack_raw(p, deep + 31, 3), AF_OK);
	assert_int_equal(af_pack_raw(p, deep + 30, 4), AF_EINVAL);
	assert_int_equal(af_payload_status(p), AF_EINVAL);

	af_payload_destroy(&p);
}

/* ---- a message's payload bytes ----------------------------------------- */

/* Actor "raw": answers "fwd" with the request's payload bytes as they
 * arrived; checks each tell's bytes against {"i": <tells before it>}; and
 * answers "count" with {"tells": n, "ok": matching}. Nothing here asserts:
 * it runs on the actor's thread, and the test reads what it answers. */
typedef struct raw_actor {
	af_payload *out;
	af_payload *want;
	int64_t tells;
	int64_t tells_ok;
} raw_actor;

static af_err raw_init(af_ctx *ctx, const void *config, void **state)
{
	raw_actor *r = calloc(1, sizeof(*r));

	if (r == NULL || af_payload_new(&r->out) != AF_OK ||
	    af_payload_new(&r->want) != AF_OK) {
		if (r != NULL)
			af_payload_destroy(&r->out);
		free(r);
		return AF_ENOMEM;
	}
	*state = r;
	return AF_OK;
}

static af_err raw_handle(af_ctx *ctx, void *state, af_msg *m)
{
	raw_actor *r = state;
	const void *data;
	const void *want;
	size_t len;
	size_t want_len;
	af_err err = af_msg_payload_raw(m, &data, &len);

	if (err != AF_OK)
		return err;
	af_payload_reset(r->out);
	if (af_msg_kind(m) == AF_KIND_TELL) {
		af_payload_reset(r->want);
		af_pack_map(r->want, 1);
		af_pack_str(r->want, "i");
		af_pack_int(r->want, r->tells++);
		want = af_payload_data(r->want, &want_len);
		if (len == want_len && memcmp(data, want, len) == 0)
			r->tells_ok++;
		return AF_OK;
	}
	if (strcmp(af_msg_type(m), "count") == 0) {
		af_pack_map(r->out, 2);
		af_pack_str(r->out, "tells");
		af_pack_int(r->out, r->tells);
		af_pack_str(r->out, "ok");
		af_pack_int(r->out, r->tells_ok);
	} else {
		af_pack_raw(r->out, data, len);
	}
	return af_reply(ctx, m, r->out);
}

static void raw_stop(af_ctx *ctx, void *state)
{
	raw_actor *r = state;

	af_payload_destroy(&r->out);
	af_payload_destroy(&r->want);
	free(r);
}

static const af_actor_ops raw_ops = {
	.type_name = "raw",
	.init = raw_init,
	.handle = raw_handle,
	.stop = raw_stop,
};

/* Actor "teller": on any request, tells "raw" three times in one turn
 * (one batch), then asks it to "count" and answers with that reply's
 * bytes as they arrived. */
static void teller_counted(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	af_pending *p = arg;
	af_payload *out = NULL;
	const void *data;
	size_t len;

	if (status != AF_OK) {
		af_pending_error(ctx, &p, status, NULL);
		return;
	}
	if (af_payload_new(&out) != AF_OK ||
	    af_msg_payload_raw(reply, &data, &len) != AF_OK ||
	    af_pack_raw(out, data, len) != AF_OK)
		af_pending_error(ctx, &p, AF_ENOMEM, NULL);
	else
		af_pending_reply(ctx, &p, out);
	af_payload_destroy(&out);
}

static af_err teller_handle(af_ctx *ctx, void *state, af_msg *m)
{
	af_payload *tell = NULL;
	af_pending *p = NULL;
	af_err err = af_payload_new(&tell);

	for (int i = 0; i < 3 && err == AF_OK; i++) {
		af_payload_reset(tell);
		af_pack_map(tell, 1);
		af_pack_str(tell, "i");
		af_pack_int(tell, i);
		err = af_tell(ctx, "raw", "tell", tell);
	}
	af_payload_destroy(&tell);
	if (err == AF_OK)
		err = af_defer(ctx, m, &p);
	if (err == AF_OK &&
	    (err = af_request(ctx, "raw", "count", NULL, 5000, teller_counted,
			      p, NULL)) != AF_OK)
		af_pending_error(ctx, &p, err, NULL);
	return err;
}

static const af_actor_ops teller_ops = {
	.type_name = "teller",
	.handle = teller_handle,
};

static void test_msg_payload_raw(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *p = new_payload();
	af_msg *reply = NULL;
	const void *sent, *got;
	size_t sent_len, got_len;

	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "raw", &raw_ops, NULL, NULL), AF_OK);
	assert_int_equal(af_spawn(sys, "teller", &teller_ops, NULL, NULL),
			 AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);

	/* A payload forwarded as it arrived comes back byte for byte, 32-bit
	 * headers and all; the client's own copy of the reply reads the
	 * same way. */
	af_pack_map_begin(p);
	af_pack_str(p, "list");
	af_pack_array_begin(p);
	af_pack_str(p, "x");
	af_pack_double(p, 1.5);
	af_pack_array_end(p);
	af_pack_map_end(p);
	sent = bytes_of(p, &sent_len);
	assert_int_equal(af_client_request(c, "raw", "fwd", p, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_msg_payload_raw(reply, &got, &got_len), AF_OK);
	assert_int_equal(got_len, sent_len);
	assert_memory_equal(got, sent, sent_len);
	assert_int_equal(
		af_value_len(af_value_get(af_msg_payload(reply), "list")), 2);
	af_msg_destroy(&reply);

	/* No payload is a nil. */
	assert_int_equal(af_client_request(c, "raw", "fwd", NULL, 5000, &reply),
			 AF_OK);
	assert_int_equal(af_msg_payload_raw(reply, &got, &got_len), AF_OK);
	assert_int_equal(got_len, 1);
	assert_int_equal(*(const unsigned char *)got, 0xc0);

	assert_int_equal(af_msg_payload_raw(NULL, &got, &got_len), AF_EINVAL);
	assert_int_equal(af_msg_payload_raw(reply, NULL, &got_len), AF_EINVAL);
	assert_int_equal(af_msg_payload_raw(reply, &got, NULL), AF_EINVAL);
	af_msg_destroy(&reply);

	/* Tells that travelled in one batch each have their own bytes, and
	 * an actor forwards a reply it received. */
	assert_int_equal(
		af_client_request(c, "teller", "go", NULL, 5000, &reply),
		AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "tells", -1),
			 3);
	assert_int_equal(af_value_get_int(af_msg_payload(reply), "ok", -1), 3);
	af_msg_destroy(&reply);

	af_client_destroy(&c);
	af_system_destroy(&sys);
	af_payload_destroy(&p);
}

/* ---- reading in place -------------------------------------------------- */

static void test_reader_walk(void **state)
{
	static const unsigned char blob[] = {0, 0xff, 7};
	af_payload *p = new_payload();
	af_payload *list = new_payload();
	af_payload *fwd = new_payload();
	af_reader r, saved;
	const void *data, *raw, *want;
	const char *s;
	size_t len, raw_len, want_len;
	uint32_t n;
	bool b;
	int64_t i;
	uint64_t u;
	double x;
	af_doc *d;

	af_pack_array_begin(list);
	af_pack_int(list, 1);
	af_pack_str(list, "x");
	af_pack_map(list, 1);
	af_pack_str(list, "k");
	af_pack_array(list, 1);
	af_pack_int(list, 2);
	af_pack_array_end(list);
	want = bytes_of(list, &want_len);

	af_pack_map(p, 9);
	af_pack_str(p, "nil");
	af_pack_nil(p);
	af_pack_str(p, "t");
	af_pack_bool(p, true);
	af_pack_str(p, "i");
	af_pack_int(p, -5);
	af_pack_str(p, "u");
	af_pack_uint(p, UINT64_MAX);
	af_pack_str(p, "d");
	af_pack_double(p, 0.25);
	af_pack_str(p, "s");
	af_pack_str(p, "hi");
	af_pack_str(p, "e");
	af_pack_str(p, "");
	af_pack_str(p, "b");
	af_pack_bin(p, blob, sizeof(blob));
	af_pack_str(p, "list");
	af_pack_raw(p, want, want_len);
	data = bytes_of(p, &len);

	af_reader_init(&r, data, len);
	assert_int_equal(af_reader_type(&r), AF_TYPE_MAP);
	assert_int_equal(af_read_map(&r, &n), AF_OK);
	assert_int_equal(n, 9);

	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "nil", 3);
	assert_int_equal(af_reader_type(&r), AF_TYPE_NIL);
	assert_int_equal(af_read_nil(&r), AF_OK);

	assert_int_equal(af_read_raw(&r, &raw, &raw_len), AF_OK); /* "t" */
	assert_int_equal(af_read_bool(&r, &b), AF_OK);
	assert_true(b);

	af_read_raw(&r, &raw, &raw_len);
	assert_int_equal(af_reader_type(&r), AF_TYPE_INT);
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_int_equal(i, -5);

	af_read_raw(&r, &raw, &raw_len);
	assert_int_equal(af_read_int(&r, &i), AF_ERANGE);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_true(u == UINT64_MAX);

	af_read_raw(&r, &raw, &raw_len);
	assert_int_equal(af_reader_type(&r), AF_TYPE_FLOAT);
	assert_int_equal(af_read_double(&r, &x), AF_OK);
	assert_true(x == 0.25);

	af_read_raw(&r, &raw, &raw_len);
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
	assert_int_equal(len, 2);
	assert_memory_equal(s, "hi", 2);

	af_read_raw(&r, &raw, &raw_len);
	s = NULL;
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
	assert_int_equal(len, 0);
	assert_string_equal(s, "");

	af_read_raw(&r, &raw, &raw_len);
	assert_int_equal(af_reader_type(&r), AF_TYPE_BIN);
	assert_int_equal(af_read_bin(&r, &raw, &raw_len), AF_OK);
	assert_int_equal(raw_len, sizeof(blob));
	assert_memory_equal(raw, blob, sizeof(blob));

	/* A copy reads on from the same place: the list whole, then the same
	 * list element by element. */
	af_read_raw(&r, &raw, &raw_len);
	saved = r;
	assert_int_equal(af_read_raw(&r, &raw, &raw_len), AF_OK);
	assert_int_equal(raw_len, want_len);
	assert_memory_equal(raw, want, want_len);
	assert_int_equal(af_reader_type(&r), AF_TYPE_NONE);
	assert_int_equal(af_read_raw(&r, &raw, &raw_len), AF_ENOTFOUND);
	assert_int_equal(af_read_nil(&r), AF_ENOTFOUND);

	r = saved;
	assert_int_equal(af_read_array(&r, &n), AF_OK);
	assert_int_equal(n, 3);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_int_equal(u, 1);
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
	assert_int_equal(af_read_map(&r, &n), AF_OK);
	assert_int_equal(n, 1);
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
	/* A value taken whole goes on with af_pack_raw. */
	assert_int_equal(af_read_raw(&r, &raw, &raw_len), AF_OK);
	assert_int_equal(af_pack_raw(fwd, raw, raw_len), AF_OK);
	d = parse_payload(fwd);
	assert_int_equal(af_value_type(af_doc_root(d)), AF_TYPE_ARRAY);
	assert_int_equal(af_value_get_int(af_doc_root(d), "k", 0), 0);
	assert_int_equal(af_value_int(af_value_at(af_doc_root(d), 0), &i),
			 AF_OK);
	assert_int_equal(i, 2);
	af_doc_destroy(&d);
	assert_int_equal(af_reader_type(&r), AF_TYPE_NONE);

	af_payload_destroy(&p);
	af_payload_destroy(&list);
	af_payload_destroy(&fwd);
}

static void test_reader_numbers(void **state)
{
	/* Every integer encoding, then a float32 and a float64. */
	static const unsigned char nums[] = {
		0x05,                                     /* fixint 5 */
		0xe0,                                     /* fixint -32 */
		0xcc, 0xff,                               /* u8 255 */
		0xcd, 0x01, 0x00,                         /* u16 256 */
		0xce, 0x00, 0x01, 0x00, 0x00,             /* u32 65536 */
		0xcf, 0x80, 0,    0,    0,    0, 0, 0, 0, /* u64 2^63 */
		0xd0, 0x80,                               /* i8 -128 */
		0xd1, 0x00, 0x10,                         /* i16 16 */
		0xd2, 0xff, 0xff, 0xff, 0xfe,             /* i32 -2 */
		0xd3, 0x80, 0,    0,    0,    0, 0, 0, 0, /* i64 min */
		0xca, 0x3f, 0xc0, 0x00, 0x00,             /* float32 1.5 */
		0xcb, 0x40, 0x04, 0,    0,    0, 0, 0, 0, /* float64 2.5 */
	};
	af_reader r;
	int64_t i;
	uint64_t u;
	double x;

	af_reader_init(&r, nums, sizeof(nums));
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_int_equal(i, 5);
	assert_int_equal(af_read_uint(&r, &u), AF_ERANGE);
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_int_equal(i, -32);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_int_equal(u, 255);
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_int_equal(i, 256);
	assert_int_equal(af_read_double(&r, &x), AF_OK);
	assert_true(x == 65536.0);
	assert_int_equal(af_read_int(&r, &i), AF_ERANGE);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_true(u == (uint64_t)1 << 63);
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_int_equal(i, -128);
	/* A signed encoding of a value that is not negative is a uint. */
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_int_equal(u, 16);
	assert_int_equal(af_read_double(&r, &x), AF_OK);
	assert_true(x == -2.0);
	assert_int_equal(af_read_int(&r, &i), AF_OK);
	assert_true(i == INT64_MIN);
	assert_int_equal(af_read_int(&r, &i), AF_ETYPE);
	assert_int_equal(af_read_double(&r, &x), AF_OK);
	assert_true(x == 1.5);
	assert_int_equal(af_read_double(&r, &x), AF_OK);
	assert_true(x == 2.5);
	assert_int_equal(af_read_double(&r, &x), AF_ENOTFOUND);
}

static void test_reader_rejects(void **state)
{
	static const unsigned char truncated_str[] = {0xa5, 'a', 'b'};
	static const unsigned char truncated_str8[] = {0xd9};
	static const unsigned char truncated_u32[] = {0xce, 0, 0};
	static const unsigned char truncated_f64[] = {0xcb, 0, 0};
	static const unsigned char truncated_bin[] = {0xc5, 0x00, 0x09, 1};
	static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff,
						   0xff};
	static const unsigned char huge_map[] = {0x83, 0x01, 0x02};
	static const unsigned char truncated[] = {0x92, 0x01};
	static const unsigned char reserved[] = {0xc1};
	static const unsigned char one[] = {0x01, 0xa1, 'x'};
	unsigned char deep[40];
	af_reader r;
	const void *raw;
	const char *s;
	size_t len;
	uint32_t n;
	uint64_t u;
	double x;
	bool b;

	/* A read of another type fails and moves nothing. */
	af_reader_init(&r, one, sizeof(one));
	assert_int_equal(af_read_str(&r, &s, &len), AF_ETYPE);
	assert_int_equal(af_read_map(&r, &n), AF_ETYPE);
	assert_int_equal(af_read_bool(&r, &b), AF_ETYPE);
	assert_int_equal(af_read_nil(&r), AF_ETYPE);
	assert_int_equal(af_read_bin(&r, &raw, &len), AF_ETYPE);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_int_equal(af_read_uint(&r, &u), AF_ETYPE);
	assert_int_equal(af_read_double(&r, &x), AF_ETYPE);
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);

	/* Values that end past the bytes, or bytes msgpack does not use, are
	 * malformed; the reader stays put. */
	af_reader_init(&r, truncated_str, sizeof(truncated_str));
	assert_int_equal(af_read_str(&r, &s, &len), AF_EPROTO);
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_EPROTO);
	assert_int_equal(af_reader_type(&r), AF_TYPE_STR);
	af_reader_init(&r, truncated_str8, sizeof(truncated_str8));
	assert_int_equal(af_read_str(&r, &s, &len), AF_EPROTO);
	af_reader_init(&r, truncated_u32, sizeof(truncated_u32));
	assert_int_equal(af_read_uint(&r, &u), AF_EPROTO);
	assert_int_equal(af_reader_type(&r), AF_TYPE_INT);
	af_reader_init(&r, truncated_f64, sizeof(truncated_f64));
	assert_int_equal(af_read_double(&r, &x), AF_EPROTO);
	af_reader_init(&r, truncated_bin, sizeof(truncated_bin));
	assert_int_equal(af_read_bin(&r, &raw, &len), AF_EPROTO);
	af_reader_init(&r, reserved, sizeof(reserved));
	assert_int_equal(af_reader_type(&r), AF_TYPE_NONE);
	assert_int_equal(af_read_nil(&r), AF_EPROTO);
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_EPROTO);

	/* A container may not claim more elements than bytes remain. */
	af_reader_init(&r, huge_array, sizeof(huge_array));
	assert_int_equal(af_read_array(&r, &n), AF_EPROTO);
	af_reader_init(&r, huge_map, sizeof(huge_map));
	assert_int_equal(af_read_map(&r, &n), AF_EPROTO);
	af_reader_init(&r, truncated, sizeof(truncated));
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_EPROTO);
	assert_int_equal(af_read_array(&r, &n), AF_EPROTO);
	assert_int_equal(af_reader_type(&r), AF_TYPE_ARRAY);

	/* Taking a value whole bounds its nesting as parsing does. */
	memset(deep, 0x91, sizeof(deep));
	deep[32] = 0xc0;
	af_reader_init(&r, deep, 33);
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_OK);
	assert_int_equal(len, 33);
	deep[32] = 0x91;
	deep[33] = 0xc0;
	af_reader_init(&r, deep, 34);
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_EPROTO);

	/* No bytes, and NULL arguments. */
	af_reader_init(&r, NULL, 5);
	assert_int_equal(af_reader_type(&r), AF_TYPE_NONE);
	assert_int_equal(af_read_raw(&r, &raw, &len), AF_ENOTFOUND);
	af_reader_init(NULL, one, sizeof(one));
	assert_int_equal(af_reader_type(NULL), AF_TYPE_NONE);
	assert_int_equal(af_read_nil(NULL), AF_EINVAL);
	assert_int_equal(af_read_raw(NULL, &raw, &len), AF_EINVAL);
	af_reader_init(&r, one, sizeof(one));
	assert_int_equal(af_read_int(&r, NULL), AF_EINVAL);
	assert_int_equal(af_read_raw(&r, NULL, &len), AF_EINVAL);
	assert_int_equal(af_read_raw(&r, &raw, NULL), AF_EINVAL);
	assert_int_equal(af_read_uint(&r, &u), AF_OK);
	assert_int_equal(af_read_str(&r, NULL, &len), AF_EINVAL);
	assert_int_equal(af_read_str(&r, &s, &len), AF_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_round_trip),
		cmocka_unit_test(test_int_encodings),
		cmocka_unit_test(test_range_and_type_errors),
		cmocka_unit_test(test_null_value),
		cmocka_unit_test(test_float32_and_ext),
		cmocka_unit_test(test_nested_auto_count),
		cmocka_unit_test(test_large_containers_and_strings),
		cmocka_unit_test(test_max_nesting),
		cmocka_unit_test(test_sticky_error),
		cmocka_unit_test(test_unbalanced_end),
		cmocka_unit_test(test_odd_map),
		cmocka_unit_test(test_incomplete_and_extra_values),
		cmocka_unit_test(test_pack_value_forwarding),
		cmocka_unit_test(test_doc_parse_rejects),
		cmocka_unit_test(test_payload_bytes),
		cmocka_unit_test(test_null_writer),
		cmocka_unit_test(test_lookup_helpers),
		cmocka_unit_test(test_strdup_embedded),
		cmocka_unit_test(test_pack_raw),
		cmocka_unit_test(test_pack_raw_rejects),
		cmocka_unit_test(test_msg_payload_raw),
		cmocka_unit_test(test_reader_walk),
		cmocka_unit_test(test_reader_numbers),
		cmocka_unit_test(test_reader_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
