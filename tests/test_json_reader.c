/*
 * The chunk reader (actors/http/json_reader.c): picking members of JSON
 * objects by path, refusing every malformed text with a reason, and
 * reading the next text right after any failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "json.h"
#include "json_reader.h"

enum {
	CHOICES,
	CHOICE,
	CONTENT,
	FINISH,
	ERROR,
	ERROR_MESSAGE,
	USAGE,
	PROMPT_TOKENS,
	MODEL,
	NPICKS
};

static const char *const paths[NPICKS] = {
	[CHOICES] = "choices",
	[CHOICE] = "choices.0",
	[CONTENT] = "choices.0.delta.content",
	[FINISH] = "choices.0.finish_reason",
	[ERROR] = "error",
	[ERROR_MESSAGE] = "error.message",
	[USAGE] = "usage",
	[PROMPT_TOKENS] = "usage.prompt_tokens",
	[MODEL] = "model",
};

static const char good[] = "{\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}";

static int setup(void **state)
{
	af_json_reader *r;

	assert_int_equal(af__json_reader_new(&r, paths, NPICKS), AF_OK);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	af_json_reader *r = *state;

	af__json_reader_destroy(&r);
	assert_null(r);
	return 0;
}

static af_err read_text(af_json_reader *r, const char *text, af_json_pick *out)
{
	const char *why = NULL;

	return af__json_read(r, text, strlen(text), out, &why);
}

/* The reader reads a good chunk right: nothing of the last text stayed. */
static void assert_reads_good(af_json_reader *r)
{
	af_json_pick out[NPICKS];

	assert_int_equal(read_text(r, good, out), AF_OK);
	assert_int_equal(out[CONTENT].kind, AF_JSON_STRING);
	assert_string_equal(out[CONTENT].str, "ok");
	assert_int_equal(out[ERROR].kind, AF_JSON_ABSENT);
}

static void test_openai_chunk(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];
	const char *chunk =
		"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
		"\"created\":1733000000,\"model\":\"gpt-4o-mini\","
		"\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"
		"\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
		"\"finish_reason\":null}]}";

	assert_int_equal(read_text(r, chunk, out), AF_OK);
	assert_int_equal(out[CHOICES].kind, AF_JSON_ARRAY);
	assert_int_equal(out[CHOICE].kind, AF_JSON_OBJECT);
	assert_int_equal(out[CONTENT].kind, AF_JSON_STRING);
	assert_string_equal(out[CONTENT].str, "Hello");
	assert_int_equal(out[CONTENT].len, 5);
	assert_int_equal(out[FINISH].kind, AF_JSON_NULL);
	assert_int_equal(out[MODEL].kind, AF_JSON_STRING);
	assert_string_equal(out[MODEL].str, "gpt-4o-mini");
	assert_int_equal(out[USAGE].kind, AF_JSON_ABSENT);
	assert_int_equal(out[ERROR].kind, AF_JSON_ABSENT);
	/* The same reader, text after text. */
	for (int i = 0; i < 100; i++)
		assert_reads_good(r);
}

static void test_usage_chunk_and_numbers(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];

	assert_int_equal(
		read_text(r,
			  "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
			  "\"completion_tokens\":30}}",
			  out),
		AF_OK);
	assert_int_equal(out[CHOICES].kind, AF_JSON_ARRAY);
	assert_int_equal(out[CHOICE].kind, AF_JSON_ABSENT);
	assert_int_equal(out[USAGE].kind, AF_JSON_OBJECT);
	assert_int_equal(out[PROMPT_TOKENS].kind, AF_JSON_NUMBER);
	assert_true(out[PROMPT_TOKENS].number == 12.0);

	assert_int_equal(
		read_text(r, "{\"usage\":{\"prompt_tokens\":-2.5e3}}", out),
		AF_OK);
	assert_true(out[PROMPT_TOKENS].number == -2500.0);
	/* Beyond long long and double: read as a double, not refused. */
	assert_int_equal(
		read_text(r,
			  "{\"usage\":{\"prompt_tokens\":"
			  "1234567890123456789012345678901234567890123456789012"
			  "34567890123456789012345678901234567890}}",
			  out),
		AF_OK);
	assert_true(out[PROMPT_TOKENS].number > 1e89);
	assert_int_equal(
		read_text(r, "{\"usage\":{\"prompt_tokens\":1e400}}", out),
		AF_OK);
	assert_true(isinf(out[PROMPT_TOKENS].number));
}

static void test_strings_decoded(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];

	assert_int_equal(
		read_text(r,
			  "{\"choices\":[{\"delta\":{\"content\":"
			  "\"caf\\u00e9 \\\"q\\\"\\n\\ud83d\\ude00\"}}]}",
			  out),
		AF_OK);
	assert_string_equal(out[CONTENT].str,
			    "caf\xc3\xa9 \"q\"\n\xf0\x9f\x98\x80");
	/* A NUL of the text's own is kept, and counted. */
	assert_int_equal(read_text(r,
				   "{\"choices\":[{\"delta\":{\"content\":"
				   "\"a\\u0000b\"}}]}",
				   out),
			 AF_OK);
	assert_int_equal(out[CONTENT].len, 3);
	assert_memory_equal(out[CONTENT].str, "a\0b", 4);
}

static void test_paths_match_exactly(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];

	/* The right key at the wrong depth is not the member. */
	assert_int_equal(read_text(r,
				   "{\"delta\":{\"content\":\"x\"},"
				   "\"choices\":{\"0\":{\"delta\":{\"content\":"
				   "\"y\"}}}}",
				   out),
			 AF_OK);
	assert_int_equal(out[CHOICES].kind, AF_JSON_OBJECT);
	assert_int_equal(out[CHOICE].kind, AF_JSON_ABSENT);
	assert_int_equal(out[CONTENT].kind, AF_JSON_ABSENT);
	/* Nested arrays do not count as the outer array's elements. */
	assert_int_equal(read_text(r,
				   "{\"choices\":[[{\"delta\":{\"content\":"
				   "\"inner\"}}],{\"delta\":{\"content\":"
				   "\"second\"}}]}",
				   out),
			 AF_OK);
	assert_int_equal(out[CHOICE].kind, AF_JSON_ARRAY);
	assert_int_equal(out[CONTENT].kind, AF_JSON_ABSENT);
	/* A repeated key: the first counts, as cJSON's lookup finds. */
	assert_int_equal(read_text(r,
				   "{\"model\":\"first\",\"model\":\"second\","
				   "\"error\":{\"message\":\"m1\"},"
				   "\"error\":\"plain\"}",
				   out),
			 AF_OK);
	assert_string_equal(out[MODEL].str, "first");
	assert_int_equal(out[ERROR].kind, AF_JSON_OBJECT);
	assert_string_equal(out[ERROR_MESSAGE].str, "m1");
	/* Nor is a repeated key's value looked into. */
	assert_int_equal(read_text(r,
				   "{\"choices\":[],\"choices\":[{\"delta\":"
				   "{\"content\":\"late\"}}]}",
				   out),
			 AF_OK);
	assert_int_equal(out[CHOICES].kind, AF_JSON_ARRAY);
	assert_int_equal(out[CHOICE].kind, AF_JSON_ABSENT);
	assert_int_equal(out[CONTENT].kind, AF_JSON_ABSENT);
	/* Keys are compared whole, bytes and length. */
	assert_int_equal(read_text(r, "{\"mode\":\"a\",\"models\":\"b\"}", out),
			 AF_OK);
	assert_int_equal(out[MODEL].kind, AF_JSON_ABSENT);
}

static void test_many_long_strings(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];
	size_t n = 1 << 20;
	char *text = malloc(3 * n + 200);
	size_t at;

	assert_non_null(text);
	/* Three long picked strings: the reader's buffer grows while it
	 * reads, and every pick still points at its own text. */
	at = (size_t)sprintf(text, "{\"model\":\"");
	memset(text + at, 'm', n);
	at += n;
	at += (size_t)sprintf(text + at, "\",\"error\":{\"message\":\"");
	memset(text + at, 'e', n);
	at += n;
	at += (size_t)sprintf(text + at,
			      "\"},\"choices\":[{\"delta\":{\"content\":\"");
	memset(text + at, 'c', n);
	at += n;
	strcpy(text + at, "\"}}]}");
	assert_int_equal(read_text(r, text, out), AF_OK);
	assert_int_equal(out[MODEL].len, n);
	assert_int_equal(out[ERROR_MESSAGE].len, n);
	assert_int_equal(out[CONTENT].len, n);
	assert_true(out[MODEL].str[0] == 'm' && out[MODEL].str[n - 1] == 'm' &&
		    out[MODEL].str[n] == '\0');
	assert_true(out[ERROR_MESSAGE].str[0] == 'e' &&
		    out[ERROR_MESSAGE].str[n - 1] == 'e');
	assert_true(out[CONTENT].str[0] == 'c' &&
		    out[CONTENT].str[n - 1] == 'c');
	free(text);
	assert_reads_good(r);
}

static void test_malformed_refused_then_reads_on(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
		{"", "not valid JSON"},
		{"   ", "not valid JSON"},
		{"{", "not valid JSON"},
		{"{\"a\":}", "not valid JSON"},
		{"{\"a\":1,}", "not valid JSON"},
		{"{'a':1}", "not valid JSON"},
		{"{\"a\":tru}", "not valid JSON"},
		{"{\"a\":\"abc", "not valid JSON"},
		{"{\"a\":01}", "not valid JSON"},
		{"{/* c */}", "not valid JSON"},
		{"{\"a\":\"\xff\"}", "not valid JSON"},
		{"{\"a\":\"\\x\"}", "not valid JSON"},
		{"{} x", "not valid JSON"},
		/* Cut short after the object: yajl would keep "5" or the
		 * string for the next text if the reader let it. */
		{"{} 5", "not valid JSON"},
		{"{} \"abc", "not valid JSON"},
		{"{}{}", "more than one value"},
		{"{} {\"model\":\"x\"}", "more than one value"},
		{"[1]", "not an object"},
		{"\"s\"", "not an object"},
		{"null", "not an object"},
		{"5", "not valid JSON"},
		{"5 ", "not an object"},
	};
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;
		af_err err = af__json_read(r, bad[i].text, strlen(bad[i].text),
					   out, &why);

		if (err != AF_EPROTO || why == NULL ||
		    strcmp(why, bad[i].why) != 0)
			fail_msg("%s: %s (%s), want %s", bad[i].text,
				 af_errname(err), why ? why : "-", bad[i].why);
		for (int k = 0; k < NPICKS; k++)
			assert_int_equal(out[k].kind, AF_JSON_ABSENT);
		assert_reads_good(r);
	}
	/* White space after the object is fine. */
	assert_int_equal(read_text(r, "{\"model\":\"m\"} \r\n\t", out), AF_OK);
	assert_string_equal(out[MODEL].str, "m");
}

/* An object holding levels - 1 arrays, one in the other: levels deep. */
static void nested(char *text, int levels)
{
	size_t at = (size_t)sprintf(text, "{\"a\":");

	for (int i = 1; i < levels; i++)
		text[at++] = '[';
	for (int i = 1; i < levels; i++)
		text[at++] = ']';
	strcpy(text + at, "}");
}

static void test_depth_bound(void **state)
{
	af_json_reader *r = *state;
	af_json_pick out[NPICKS];
	char text[2 * AF_JSON_MAX_DEPTH + 16];
	const char *why = NULL;

	nested(text, AF_JSON_MAX_DEPTH);
	assert_int_equal(read_text(r, text, out), AF_OK);
	nested(text, AF_JSON_MAX_DEPTH + 1);
	assert_int_equal(af__json_read(r, text, strlen(text), out, &why),
			 AF_EPROTO);
	assert_string_equal(why, "nested too deep");
	assert_reads_good(r);
}

static void test_bad_paths_refused(void **state)
{
	static const char *const empty[] = {""};
	static const char *const hole[] = {"a..b"};
	static const char *const trailing[] = {"a."};
	static const char *const deep[] = {"a.b.c.d.e"};
	const char *many[AF_JSON_MAX_PICKS + 1];
	af_json_reader *r = NULL;

	assert_int_equal(af__json_reader_new(&r, empty, 1), AF_EINVAL);
	assert_null(r);
	assert_int_equal(af__json_reader_new(&r, hole, 1), AF_EINVAL);
	assert_int_equal(af__json_reader_new(&r, trailing, 1), AF_EINVAL);
	assert_int_equal(af__json_reader_new(&r, deep, 1), AF_EINVAL);
	for (size_t i = 0; i <= AF_JSON_MAX_PICKS; i++)
		many[i] = "a";
	assert_int_equal(af__json_reader_new(&r, many, AF_JSON_MAX_PICKS + 1),
			 AF_EINVAL);
	assert_int_equal(af__json_reader_new(&r, many, AF_JSON_MAX_PICKS),
			 AF_OK);
	af__json_reader_destroy(&r);
	af__json_reader_destroy(&r); /* NULL is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_openai_chunk, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_usage_chunk_and_numbers,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_strings_decoded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_paths_match_exactly, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_many_long_strings, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_malformed_refused_then_reads_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth_bound, setup,
						teardown),
		cmocka_unit_test(test_bad_paths_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
