/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The parser is compiled into this test with realloc redirected, so that a
 * test can make any allocation fail and see AF_ENOMEM come back instead of
 * a crash or a leak. stdlib.h is included above, so sse.c's own include of
 * it declares nothing under the redirected name.
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
#include "sse.c"
#undef realloc

#define STOP 4242

struct event {
	char name[64];
	char *data;
	size_t len;
};

/* The events a parse dispatched, in order. */
struct record {
	struct event *ev;
	size_t n;
	size_t cap;
	size_t stop_at; /* return STOP from this event on (1-based); 0: never */
};

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct record *r = arg;
	struct event *e;

	assert_non_null(name);
	assert_non_null(data);
	assert_true(strlen(name) < sizeof(e->name));
	assert_int_equal(data[len], '\0');
	if (r->n == r->cap) {
		r->cap = r->cap > 0 ? r->cap * 2 : 8;
		r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
		assert_non_null(r->ev);
	}
	e = &r->ev[r->n++];
	strcpy(e->name, name);
	e->data = malloc(len + 1);
	assert_non_null(e->data);
	memcpy(e->data, data, len + 1);
	e->len = len;
	if (r->stop_at > 0 && r->n >= r->stop_at)
		return STOP;
	return 0;
}

static void record_free(struct record *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->ev[i].data);
	free(r->ev);
	memset(r, 0, sizeof(*r));
}

/* Parses in with a new parser, fed in pieces that end at the ncuts
 * positions in cuts (ascending) and at the end. Returns the first non-zero
 * result of a feed, or 0; *pending is af__sse_pending at the end. */
static int parse_cut(size_t max, const char *in, size_t len, const size_t *cuts,
		     size_t ncuts, struct record *r, bool *pending)
{
	af_sse s;
	size_t from = 0;
	int rc = 0;

	af__sse_init(&s, max);
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		rc = af__sse_feed(&s, in + from, to - from, on_event, r);
		/* A buffer never grows past the bound, whatever the input. */
		assert_true(s.line_cap <= s.max_event + 1);
		assert_true(s.data_cap <= s.max_event + 1);
		from = to;
	}
	if (pending != NULL)
		*pending = af__sse_pending(&s);
	af__sse_free(&s);
	return rc;
}

static int parse(size_t max, const char *in, struct record *r, bool *pending)
{
	return parse_cut(max, in, strlen(in), NULL, 0, r, pending);
}

/* Parses in one byte per feed. */
static int parse_bytes(size_t max, const char *in, size_t len, struct record *r,
		       bool *pending)
{
	af_sse s;
	int rc = 0;

	af__sse_init(&s, max);
	for (size_t i = 0; i < len && rc == 0; i++)
		rc = af__sse_feed(&s, in + i, 1, on_event, r);
	if (pending != NULL)
		*pending = af__sse_pending(&s);
	af__sse_free(&s);
	return rc;
}

/* want holds n (name, data) pairs. */
static void assert_events(const struct record *r, const char *const *want,
			  size_t n)
{
	assert_int_equal(r->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(r->ev[i].name, want[2 * i]);
		assert_int_equal(r->ev[i].len, strlen(want[2 * i + 1]));
		assert_memory_equal(r->ev[i].data, want[2 * i + 1],
				    r->ev[i].len);
	}
}

static void assert_same(const struct record *a, const struct record *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		assert_string_equal(a->ev[i].name, b->ev[i].name);
		assert_int_equal(a->ev[i].len, b->ev[i].len);
		assert_memory_equal(a->ev[i].data, b->ev[i].data, a->ev[i].len);
	}
}

/* Parses in one piece and expects the n events in want, and nothing
 * pending at the end. */
static void check(const char *in, const char *const *want, size_t n)
{
	struct record r = {0};
	bool pending;

	assert_int_equal(parse(0, in, &r, &pending), 0);
	assert_events(&r, want, n);
	assert_false(pending);
	record_free(&r);
}

#define CHECK(in, ...)                                                         \
	do {                                                                   \
		const char *const want_[] = {__VA_ARGS__};                     \
		check(in, want_, sizeof(want_) / sizeof(want_[0]) / 2);        \
	} while (0)

static void check_none(const char *in)
{
	check(in, NULL, 0);
}

static void test_lf(void **state)
{
	CHECK("data: a\n\ndata: b\n\n", "", "a", "", "b");
}

static void test_crlf(void **state)
{
	CHECK("data: a\r\n\r\ndata: b\r\n\r\n", "", "a", "", "b");
}

static void test_cr(void **state)
{
	CHECK("data: a\r\rdata: b\r\r", "", "a", "", "b");
}

static void test_mixed_line_ends(void **state)
{
	CHECK("data: a\r\ndata: b\n\r\n", "", "a\nb");
	CHECK("event: x\rdata: c\r\n\n", "x", "c");
	/* "\n\r" is two line ends, the second one a blank line. */
	CHECK("data: d\n\rdata: e\n\n", "", "d", "", "e");
	/* "\r\r\n" is a line end, then a blank line ended by "\r\n". */
	CHECK("data: f\r\r\ndata: g\r\n\n", "", "f", "", "g");
}

static void test_crlf_split_counts_once(void **state)
{
	static const char *const pieces[] = {"data: a\r", "\ndata: b\r", "\n\r",
					     "\n"};
	struct record r = {0};
	af_sse s;

	af__sse_init(&s, 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(af__sse_feed(&s, pieces[i], strlen(pieces[i]),
					      on_event, &r),
				 0);
	assert_false(af__sse_pending(&s));
	af__sse_free(&s);
	/* Had a "\n" after a cut "\r" counted again, it would have been a
	 * blank line dispatching "a" alone. */
	assert_events(&r, (const char *const[]){"", "a\nb"}, 1);
	record_free(&r);
}

static void test_comments(void **state)
{
	CHECK(": hello\ndata: a\n: mid\n:\ndata: b\n\n", "", "a\nb");
	check_none(":data: not data\n\n");
	check_none(": only a comment\n\n: another\r\n\r\n");
}

static void test_multiline_data(void **state)
{
	CHECK("data: one\ndata: two\ndata: three\n\n", "", "one\ntwo\nthree");
	CHECK("data: one\ndata:\ndata: three\n\n", "", "one\n\nthree");
	CHECK("data:\ndata:\n\n", "", "\n");
}

static void test_event_names(void **state)
{
	CHECK("event: delta\ndata: x\n\ndata: y\n\n", "delta", "x", "", "y");
	/* A blank line forgets the name even when it dispatches nothing. */
	CHECK("event: a\n\ndata: z\n\n", "", "z");
	/* The last name given wins, and its place among the data lines does
	 * not matter. */
	CHECK("data: 1\nevent: a\ndata: 2\nevent: b\n\n", "b", "1\n2");
	CHECK("event:tight\ndata: t\n\n", "tight", "t");
	CHECK("event:\ndata: e\n\n", "", "e");
}

static void test_event_name_truncated(void **state)
{
	char in[256];
	char want[64];

	/* 100 bytes of name keep the first 63. */
	memset(want, 'e', 63);
	want[63] = '\0';
	strcpy(in, "event: ");
	memset(in + 7, 'e', 100);
	strcpy(in + 107, "\ndata: d\n\n");
	CHECK(in, want, "d");

	/* A two-byte character across the cut is left out whole. */
	memset(want, 'a', 62);
	want[62] = '\0';
	strcpy(in, "event: ");
	memset(in + 7, 'a', 62);
	strcpy(in + 69, "\xc3\xa9tail\ndata: d\n\n");
	CHECK(in, want, "d");

	/* Exactly 63 bytes fit. */
	memset(want, 'b', 63);
	want[63] = '\0';
	snprintf(in, sizeof(in), "event: %s\ndata: d\n\n", want);
	CHECK(in, want, "d");
}

static void test_no_data_no_event(void **state)
{
	check_none("event: ping\n\n");
	check_none("id: 1\nretry: 10\n\n");
	check_none("\n\n\r\n\r\r");
	check_none("");
}

static void test_field_without_colon(void **state)
{
	CHECK("data\n\n", "", "");
	CHECK("data\ndata\n\n", "", "\n");
	CHECK("event\ndata: x\n\n", "", "x");
	CHECK("foo\ndata: x\nbar\n\n", "", "x");
	check_none("dat\n\ndata \n\n");
}

static void test_data_without_space(void **state)
{
	CHECK("data:x\n\n", "", "x");
	/* Only one space is dropped. */
	CHECK("data:  two\n\n", "", " two");
	CHECK("data: \n\n", "", "");
	CHECK("data:\n\n", "", "");
	CHECK("data:\tx\n\n", "", "\tx");
	CHECK("data: a: b\n\n", "", "a: b");
	/* Field names are exact. */
	check_none("data : x\n\nDATA: x\n\n Data: x\n\n");
}

/* Events: ("delta", "{"x":"hé"}\nsecond"), ("", "世界 🎉\n"),
 * ("", "last"); then a cut event. */
static const char rich[] = ": comment\r\n"
			   "event: delta\r\n"
			   "data: {\"x\":\"h\xc3\xa9\"}\r\n"
			   "data:second\r"
			   "\r"
			   "data: \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89\n"
			   "id: 7\n"
			   "retry: 100\n"
			   "data\n"
			   "\n"
			   "event: ping\n"
			   "\n"
			   "data: last\r\n"
			   "\r\n"
			   "data: cut";

static void test_rich_stream(void **state)
{
	struct record r = {0};
	bool pending;

	assert_int_equal(parse(0, rich, &r, &pending), 0);
	assert_events(&r,
		      (const char *const[]){
			      "delta", "{\"x\":\"h\xc3\xa9\"}\nsecond", "",
			      "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x8e\x89\n", "",
			      "last"},
		      3);
	assert_true(pending);
	record_free(&r);
}

static void test_byte_at_a_time(void **state)
{
	struct record one = {0}, bytes = {0};
	bool p1, p2;

	assert_int_equal(parse(0, rich, &one, &p1), 0);
	assert_int_equal(parse_bytes(0, rich, strlen(rich), &bytes, &p2), 0);
	assert_same(&one, &bytes);
	assert_true(p1 == p2);
	record_free(&one);
	record_free(&bytes);
}

static void test_every_split(void **state)
{
	size_t len = strlen(rich);
	struct record one = {0};
	bool p1, p2;

	assert_int_equal(parse(0, rich, &one, &p1), 0);
	/* Every pair of cut positions, which covers every single one (a
	 * cut at 0 or at the end is an empty feed). */
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct record r = {0};
			size_t cuts[2] = {a, b};

			assert_int_equal(
				parse_cut(0, rich, len, cuts, 2, &r, &p2), 0);
			assert_same(&one, &r);
			assert_true(p1 == p2);
			record_free(&r);
		}
	}
	record_free(&one);
}

static void test_utf8_split(void **state)
{
	/* 2-, 3- and 4-byte characters, cut inside each one. */
	static const char in[] =
		"data: h\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8e\x89\n"
		"event: \xc3\xa9v\n\n";
	static const char data[] = "h\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x8e\x89";
	size_t len = strlen(in);

	for (size_t a = 1; a < len; a++) {
		struct record r = {0};
		size_t cut = a;

		assert_int_equal(parse_cut(0, in, len, &cut, 1, &r, NULL), 0);
		assert_events(&r, (const char *const[]){"\xc3\xa9v", data}, 1);
		record_free(&r);
	}
}

static void test_oversize(void **state)
{
	struct record r = {0};
	char in[64];

	/* One line of 16 bytes fits max_event 16; 17 do not, whether the
	 * line comes whole or a byte at a time. */
	assert_int_equal(parse(16, "data: 0123456789\n\n", &r, NULL), 0);
	assert_events(&r, (const char *const[]){"", "0123456789"}, 1);
	record_free(&r);
	assert_int_equal(parse(16, "data: 0123456789a\n\n", &r, NULL),
			 AF_EMSGSIZE);
	assert_int_equal(r.n, 0);
	strcpy(in, "data: 0123456789a\n\n");
	assert_int_equal(parse_bytes(16, in, strlen(in), &r, NULL),
			 AF_EMSGSIZE);
	/* A line too long is refused before its end arrives. */
	assert_int_equal(parse(16, "data: 0123456789a", &r, NULL), AF_EMSGSIZE);
	/* Comments count: they are held like any line. */
	assert_int_equal(parse(16, ": 34567890123456789\n", &r, NULL),
			 AF_EMSGSIZE);
	assert_int_equal(r.n, 0);

	/* Data lines add up: 5 + 1 + 5 bytes held, then a 7-byte line. */
	assert_int_equal(
		parse(16, "data: 12345\ndata: 12345\ndata: 1\n\n", &r, NULL),
		AF_EMSGSIZE);
	assert_int_equal(r.n, 0);
	/* The bound is per event: dispatching frees the room. */
	assert_int_equal(parse(16,
			       "data: 12345\ndata: 1234\n\n"
			       "data: 12345\ndata: 1234\n\n",
			       &r, NULL),
			 0);
	assert_int_equal(r.n, 2);
	record_free(&r);
}

static void test_callback_stops(void **state)
{
	static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	struct record r = {.stop_at = 2};
	af_sse s;

	af__sse_init(&s, 0);
	assert_int_equal(af__sse_feed(&s, in, strlen(in), on_event, &r), STOP);
	assert_int_equal(r.n, 2);
	af__sse_free(&s);
	record_free(&r);

	/* The same when the stopping event ends in a later feed. */
	r.stop_at = 1;
	af__sse_init(&s, 0);
	assert_int_equal(af__sse_feed(&s, in, 8, on_event, &r), 0);
	assert_int_equal(af__sse_feed(&s, in + 8, strlen(in) - 8, on_event, &r),
			 STOP);
	assert_int_equal(r.n, 1);
	af__sse_free(&s);
	record_free(&r);
}

static void test_pending(void **state)
{
	static const struct {
		const char *in;
		bool pending;
	} cases[] = {
		{"", false},
		{"data: a\n\n", false},
		{"data: a\n\ndata: b", true},
		{"data: a\n", true},
		{"data: a\r", true},
		{"data: a\n\r", false},
		{"data: a\r\n\r", false},
		{"data: a\n\n: keepalive\n", false},
		{"data: a\n\n:", true},
		{"event: x\n", true},
		{"id: 1\n", false},
		{"event: x\n\n", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct record r = {0};
		bool pending;

		assert_int_equal(parse(0, cases[i].in, &r, &pending), 0);
		if (pending != cases[i].pending)
			fail_msg("pending(\"%s\") is %d", cases[i].in, pending);
		record_free(&r);
	}
}

/* What an OpenAI-compatible server streams for a chat completion. */
static const char openai[] =
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
	"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	"\"content\":\"\"},\"finish_reason\":null}]}\n\n"
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
	"\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Bonjour\"},"
	"\"finish_reason\":null}]}\n\n"
	": OPENROUTER PROCESSING\n\n"
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
	"\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \xc3\xa0 "
	"tous\"},\"finish_reason\":null}]}\n\n"
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
	"\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
	"\n\n"
	"data: [DONE]\n\n";

static void test_openai_stream(void **state)
{
	size_t len = strlen(openai);
	size_t cuts[64];
	size_t ncuts = 0;
	struct record r = {0};
	bool pending;

	/* Pieces of 37 bytes, as a socket might hand them over. */
	for (size_t at = 37; at < len; at += 37)
		cuts[ncuts++] = at;
	assert_int_equal(parse_cut(0, openai, len, cuts, ncuts, &r, &pending),
			 0);
	assert_false(pending);
	assert_int_equal(r.n, 5);
	for (size_t i = 0; i < r.n; i++)
		assert_string_equal(r.ev[i].name, "");
	assert_non_null(strstr(r.ev[1].data, "\"content\":\"Bonjour\""));
	assert_non_null(strstr(r.ev[2].data, "\xc3\xa0 tous"));
	assert_string_equal(r.ev[4].data, "[DONE]");
	record_free(&r);
}

static void test_init_and_free(void **state)
{
	af_sse s;
	struct record r = {0};

	af__sse_init(&s, 0);
	assert_int_equal(s.max_event, (size_t)1 << 20);
	assert_false(af__sse_pending(&s));
	assert_int_equal(af__sse_feed(&s, NULL, 0, on_event, &r), 0);
	af__sse_free(&s);
	af__sse_free(&s);

	/* A freed parser may be initialised and used again. */
	af__sse_init(&s, 32);
	assert_int_equal(af__sse_feed(&s, "data: x", 7, on_event, &r), 0);
	af__sse_free(&s);
	af__sse_init(&s, 32);
	assert_int_equal(af__sse_feed(&s, "\n\n", 2, on_event, &r), 0);
	assert_int_equal(r.n, 0);
	af__sse_free(&s);
}

static void test_out_of_memory(void **state)
{
	struct record want = {0};
	size_t len = strlen(rich);

	assert_int_equal(parse(0, rich, &want, NULL), 0);
	/* Refuse the first allocation, then the second, and so on, until a
	 * parse needs no more than it is given. Each parse either fails
	 * with AF_ENOMEM or gives every event; none leaks. */
	for (long k = 0;; k++) {
		struct record one = {0}, bytes = {0};
		int rc1, rc2;

		allocs_refused = 0;
		allocs_left = k;
		rc1 = parse(0, rich, &one, NULL);
		allocs_left = k;
		rc2 = parse_bytes(0, rich, len, &bytes, NULL);
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
		cmocka_unit_test(test_lf),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_cr),
		cmocka_unit_test(test_mixed_line_ends),
		cmocka_unit_test(test_crlf_split_counts_once),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_multiline_data),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_event_name_truncated),
		cmocka_unit_test(test_no_data_no_event),
		cmocka_unit_test(test_field_without_colon),
		cmocka_unit_test(test_data_without_space),
		cmocka_unit_test(test_rich_stream),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_utf8_split),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_openai_stream),
		cmocka_unit_test(test_init_and_free),
		cmocka_unit_test(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
