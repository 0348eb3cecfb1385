/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * The splitter is compiled into this test with realloc redirected, so that
 * a test can make any allocation fail and see AF_ENOMEM come back instead
 * of a crash or a leak. stdlib.h is included above, so ndjson.c's own
 * include of it declares nothing under the redirected name.
 */
static long allocs_left = -1; /* -1: every allocation succeeds */
static long allocs_refused;

static void *refusing_realloc(void *p, size_t n)
{
	if (allocs_left == 0) {
		allocs_refused++;
		return NULL;
	}
	if (allocs_left > 0)
		allocs_left--;
	return realloc(p, n);
}

#define realloc refusing_realloc
#include "ndjson.c"
#undef realloc

#define STOP 4242

/* The lines a split handed over, each followed by a NUL, end to end. */
struct record {
	char *bytes;
	size_t len;
	size_t cap;
	size_t n;
	size_t stop_at; /* return STOP from this line on (1-based); 0: never */
};

static int on_line(void *arg, const char *line, size_t len)
{
	struct record *r = arg;

	assert_non_null(line);
	assert_int_equal(line[len], '\0');
	assert_true(len > 0);
	if (r->len + len + 1 > r->cap) {
		r->cap = (r->len + len + 1) * 2;
		r->bytes = realloc(r->bytes, r->cap);
		assert_non_null(r->bytes);
	}
	memcpy(r->bytes + r->len, line, len + 1);
	r->len += len + 1;
	r->n++;
	if (r->stop_at > 0 && r->n >= r->stop_at)
		return STOP;
	return 0;
}

static void record_free(struct record *r)
{
	free(r->bytes);
	memset(r, 0, sizeof(*r));
}

/* Splits in with a new splitter, fed in pieces that end at the ncuts
 * positions in cuts (ascending) and at the end, then finished when finish
 * is set. Returns the first non-zero result, or 0; *pending is
 * af__ndjson_pending before the finish. */
static int split_cut(size_t max, const char *in, size_t len, const size_t *cuts,
		     size_t ncuts, bool finish, struct record *r, bool *pending)
{
	af_ndjson n;
	size_t from = 0;
	int rc = 0;

	af__ndjson_init(&n, max);
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		rc = af__ndjson_feed(&n, in + from, to - from, on_line, r);
		/* The buffer never grows past the bound, whatever the
		 * input. */
		assert_true(n.cap <= n.max_line + 2);
		from = to;
	}
	if (pending != NULL)
		*pending = af__ndjson_pending(&n);
	if (rc == 0 && finish)
		rc = af__ndjson_finish(&n, on_line, r);
	af__ndjson_free(&n);
	return rc;
}

static int split(size_t max, const char *in, bool finish, struct record *r,
		 bool *pending)
{
	return split_cut(max, in, strlen(in), NULL, 0, finish, r, pending);
}

static int split_bytes(size_t max, const char *in, size_t len, bool finish,
		       struct record *r)
{
	af_ndjson n;
	int rc = 0;

	af__ndjson_init(&n, max);
	for (size_t i = 0; i < len && rc == 0; i++)
		rc = af__ndjson_feed(&n, in + i, 1, on_line, r);
	if (rc == 0 && finish)
		rc = af__ndjson_finish(&n, on_line, r);
	af__ndjson_free(&n);
	return rc;
}

/* want holds n lines. */
static void assert_lines(const struct record *r, const char *const *want,
			 size_t n)
{
	size_t at = 0;

	assert_int_equal(r->n, n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(want[i]);

		assert_true(at + len < r->len);
		assert_memory_equal(r->bytes + at, want[i], len + 1);
		at += len + 1;
	}
	assert_int_equal(at, r->len);
}

static void assert_same(const struct record *a, const struct record *b)
{
	assert_int_equal(a->n, b->n);
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->bytes, b->bytes, a->len);
}

/* Splits in one piece, finishes, and expects the n lines in want. */
static void check(const char *in, const char *const *want, size_t n)
{
	struct record r = {0};

	assert_int_equal(split(0, in, true, &r, NULL), 0);
	assert_lines(&r, want, n);
	record_free(&r);
}

#define CHECK(in, ...)                                                         \
	do {                                                                   \
		const char *const want_[] = {__VA_ARGS__};                     \
		check(in, want_, sizeof(want_) / sizeof(want_[0]));            \
	} while (0)

static void check_none(const char *in)
{
	check(in, NULL, 0);
}

/* What Ollama's /api/chat streams. */
static const char ollama[] =
	"{\"model\":\"llama3.2\",\"created_at\":\"2024-07-10T12:00:00Z\","
	"\"message\":{\"role\":\"assistant\",\"content\":\"Bon\"},"
	"\"done\":false}\n"
	"{\"model\":\"llama3.2\",\"created_at\":\"2024-07-10T12:00:01Z\","
	"\"message\":{\"role\":\"assistant\",\"content\":\"jour \xc3\xa0 "
	"\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89\"},\"done\":false}\n"
	"{\"model\":\"llama3.2\",\"created_at\":\"2024-07-10T12:00:02Z\","
	"\"message\":{\"role\":\"assistant\",\"content\":\"\"},"
	"\"done\":true,\"done_reason\":\"stop\",\"total_duration\":4883583458,"
	"\"eval_count\":12}\n";

static void test_ollama_stream(void **state)
{
	size_t len = strlen(ollama);
	size_t cuts[16];
	size_t ncuts = 0;
	struct record r = {0};
	const char *line;
	bool pending;

	/* Pieces of 61 bytes, as a socket might hand them over. */
	for (size_t at = 61; at < len; at += 61)
		cuts[ncuts++] = at;
	assert_int_equal(
		split_cut(0, ollama, len, cuts, ncuts, true, &r, &pending), 0);
	assert_false(pending);
	assert_int_equal(r.n, 3);
	line = r.bytes;
	assert_non_null(strstr(line, "\"content\":\"Bon\""));
	line += strlen(line) + 1;
	assert_non_null(strstr(line, "jour \xc3\xa0 \xe4\xb8\x96"));
	line += strlen(line) + 1;
	assert_non_null(strstr(line, "\"done\":true"));
	record_free(&r);
}

static void test_lines(void **state)
{
	CHECK("{\"a\":1}\n{\"b\":2}\n", "{\"a\":1}", "{\"b\":2}");
	CHECK("x\n", "x");
	/* Spaces inside and around a line are the JSON's business. */
	CHECK("  {\"a\": 1}  \n", "  {\"a\": 1}  ");
}

static void test_cr(void **state)
{
	CHECK("{\"a\":1}\r\n{\"b\":2}\r\n", "{\"a\":1}", "{\"b\":2}");
	/* Only the "\r" before "\n" is a line end's. */
	CHECK("a\rb\n", "a\rb");
	CHECK("a\r\r\n", "a\r");
	CHECK("\ra\r\n", "\ra");
}

static void test_blank_lines(void **state)
{
	CHECK("\n\n  \t\r\n{}\n\r\n \n", "{}");
	check_none("\n");
	check_none("\r\n\r\n");
	check_none(" \t \n\t\r\n   ");
	check_none("");
}

static void test_final_line(void **state)
{
	struct record r = {0};
	bool pending;

	/* Held until the end of the stream says it is whole. */
	assert_int_equal(split(0, "{\"a\":1}\n{\"b\":2}", false, &r, &pending),
			 0);
	assert_true(pending);
	assert_lines(&r, (const char *const[]){"{\"a\":1}"}, 1);
	record_free(&r);
	CHECK("{\"a\":1}\n{\"b\":2}", "{\"a\":1}", "{\"b\":2}");
	/* A trailing "\r" goes as it would before a "\n". */
	CHECK("{\"b\":2}\r", "{\"b\":2}");

	/* A blank remainder is not pending and hands nothing over. */
	assert_int_equal(split(0, "{}\n \t\r", false, &r, &pending), 0);
	assert_false(pending);
	record_free(&r);
	check_none("  \r");

	/* Finishing twice hands the line over once. */
	{
		af_ndjson n;

		af__ndjson_init(&n, 0);
		assert_int_equal(af__ndjson_finish(&n, on_line, &r), 0);
		assert_int_equal(af__ndjson_feed(&n, "last", 4, on_line, &r),
				 0);
		assert_true(af__ndjson_pending(&n));
		assert_int_equal(af__ndjson_finish(&n, on_line, &r), 0);
		assert_false(af__ndjson_pending(&n));
		assert_int_equal(af__ndjson_finish(&n, on_line, &r), 0);
		af__ndjson_free(&n);
		assert_lines(&r, (const char *const[]){"last"}, 1);
		record_free(&r);
	}
}

/* Lines: "{"x":"hé"}", "a\rb", "世界 🎉", "tail". */
static const char rich[] = "{\"x\":\"h\xc3\xa9\"}\r\n"
			   "\n"
			   "  \r\n"
			   "a\rb\n"
			   "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89\r\n"
			   "\t\n"
			   "tail";

static void test_every_split(void **state)
{
	size_t len = strlen(rich);
	struct record one = {0}, bytes = {0};

	assert_int_equal(split(0, rich, true, &one, NULL), 0);
	assert_lines(&one,
		     (const char *const[]){
			     "{\"x\":\"h\xc3\xa9\"}", "a\rb",
			     "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89",
			     "tail"},
		     4);
	assert_int_equal(split_bytes(0, rich, len, true, &bytes), 0);
	assert_same(&one, &bytes);
	record_free(&bytes);
	/* Every pair of cut positions, which covers every single one. */
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct record r = {0};
			size_t cuts[2] = {a, b};

			assert_int_equal(split_cut(0, rich, len, cuts, 2, true,
						   &r, NULL),
					 0);
			assert_same(&one, &r);
			record_free(&r);
		}
	}
	record_free(&one);
}

static void test_oversize(void **state)
{
	struct record r = {0};
	static const char *const fits[] = {"12345678\n", "12345678\r\n",
					   "12345678"};
	static const char *const too_long[] = {"123456789\n", "123456789\r\n",
					       "123456789", "12345678\rx\n",
					       "12345678\r\r\n"};

	/* max_line 8 bounds a line without its end, whole or in bytes. */
	for (size_t i = 0; i < sizeof(fits) / sizeof(fits[0]); i++) {
		assert_int_equal(split(8, fits[i], true, &r, NULL), 0);
		assert_lines(&r, (const char *const[]){"12345678"}, 1);
		record_free(&r);
		assert_int_equal(
			split_bytes(8, fits[i], strlen(fits[i]), true, &r), 0);
		assert_lines(&r, (const char *const[]){"12345678"}, 1);
		record_free(&r);
	}
	for (size_t i = 0; i < sizeof(too_long) / sizeof(too_long[0]); i++) {
		assert_int_equal(split(8, too_long[i], true, &r, NULL),
				 AF_EMSGSIZE);
		assert_int_equal(split_bytes(8, too_long[i],
					     strlen(too_long[i]), true, &r),
				 AF_EMSGSIZE);
		assert_int_equal(r.n, 0);
	}
	/* A line too long is refused before its end arrives, by one byte
	 * or many, in one feed or across two. */
	assert_int_equal(split(8, "123456789", false, &r, NULL), AF_EMSGSIZE);
	assert_int_equal(split(8, "1234567890123456789", false, &r, NULL),
			 AF_EMSGSIZE);
	for (size_t cut = 1; cut < 19; cut++)
		assert_int_equal(split_cut(8, "1234567890123456789", 19, &cut,
					   1, false, &r, NULL),
				 AF_EMSGSIZE);
	/* Blank lines count too: they are held like any line. */
	assert_int_equal(split(8, "          \n", true, &r, NULL), AF_EMSGSIZE);
	/* The bound is per line. */
	assert_int_equal(split(8, "12345678\n12345678\n", true, &r, NULL), 0);
	assert_int_equal(r.n, 2);
	record_free(&r);
}

static void test_callback_stops(void **state)
{
	static const char in[] = "1\n2\n3\n";
	struct record r = {.stop_at = 2};
	af_ndjson n;

	af__ndjson_init(&n, 0);
	assert_int_equal(af__ndjson_feed(&n, in, strlen(in), on_line, &r),
			 STOP);
	assert_int_equal(r.n, 2);
	af__ndjson_free(&n);
	record_free(&r);

	/* The same from af__ndjson_finish. */
	r.stop_at = 2;
	af__ndjson_init(&n, 0);
	assert_int_equal(af__ndjson_feed(&n, "1\n2", 3, on_line, &r), 0);
	assert_int_equal(af__ndjson_finish(&n, on_line, &r), STOP);
	assert_int_equal(r.n, 2);
	af__ndjson_free(&n);
	record_free(&r);
}

static void test_init_and_free(void **state)
{
	af_ndjson n;
	struct record r = {0};

	af__ndjson_init(&n, 0);
	assert_int_equal(n.max_line, (size_t)1 << 20);
	assert_false(af__ndjson_pending(&n));
	assert_int_equal(af__ndjson_feed(&n, NULL, 0, on_line, &r), 0);
	af__ndjson_free(&n);
	af__ndjson_free(&n);

	/* A freed splitter may be initialised and used again. */
	af__ndjson_init(&n, 32);
	assert_int_equal(af__ndjson_feed(&n, "{\"a\"", 4, on_line, &r), 0);
	af__ndjson_free(&n);
	af__ndjson_init(&n, 32);
	assert_int_equal(af__ndjson_feed(&n, ":1}\n", 4, on_line, &r), 0);
	assert_lines(&r, (const char *const[]){":1}"}, 1);
	af__ndjson_free(&n);
	record_free(&r);
}

static void test_out_of_memory(void **state)
{
	struct record want = {0};
	size_t len = strlen(rich);

	assert_int_equal(split(0, rich, true, &want, NULL), 0);
	/* Refuse the first allocation, then the second, and so on, until a
	 * split needs no more than it is given. Each split either fails
	 * with AF_ENOMEM or gives every line; none leaks. */
	for (long k = 0;; k++) {
		struct record one = {0}, bytes = {0};
		int rc1, rc2;

		allocs_refused = 0;
		allocs_left = k;
		rc1 = split(0, rich, true, &one, NULL);
		allocs_left = k;
		rc2 = split_bytes(0, rich, len, true, &bytes);
		allocs_left = -1;
		assert_true(rc1 == 0 || rc1 == AF_ENOMEM);
		assert_true(rc2 == 0 || rc2 == AF_ENOMEM);
		if (rc1 == 0)
			assert_same(&want, &one);
		if (rc2 == 0)
			assert_same(&want, &bytes);
		record_free(&one);
		record_free(&bytes);
		if (allocs_refused == 0)
			break;
		assert_true(rc1 == AF_ENOMEM || rc2 == AF_ENOMEM);
	}
	record_free(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ollama_stream),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_cr),
		cmocka_unit_test(test_blank_lines),
		cmocka_unit_test(test_final_line),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_init_and_free),
		cmocka_unit_test(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
