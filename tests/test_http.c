/*
 * The HTTP engine's pure parts: the backoff schedule and how a server's
 * error body becomes a one-line message. The transfers themselves are
 * tested through the chat actor against the mock server (test_chat.c).
 */
#include <string.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "http.h"

/* MAX_DEPTH of json.h, whose cJSON include path this test does
 * not have. */
#define MAX_DEPTH 64

static void test_backoff_doubles_with_jitter_and_caps(void **state)
{
	/* Full jitter draws from [d/2, d]. */
	for (uint32_t rnd = 0; rnd < 2000; rnd += 7) {
		int64_t first = af__http_backoff_ms(500, 30000, 1, rnd);
		int64_t third = af__http_backoff_ms(500, 30000, 3, rnd);
		int64_t tenth = af__http_backoff_ms(500, 30000, 10, rnd);

		assert_in_range(first, 250, 500);
		assert_in_range(third, 1000, 2000);
		assert_in_range(tenth, 15000, 30000);
	}
	assert_int_equal(af__http_backoff_ms(500, 30000, 1, 0), 250);
	assert_int_equal(af__http_backoff_ms(500, 30000, 1, 250), 500);
	/* A huge attempt number neither overflows nor passes the cap. */
	assert_in_range(af__http_backoff_ms(500, 30000, 1000000, 12345), 15000,
			30000);
}

static void error_text(const char *body, const char *want)
{
	char out[256];

	af__http_error_text(body, body != NULL ? strlen(body) : 0, out,
			    sizeof(out));
	assert_string_equal(out, want);
}

/* Retry-After and retry-after-ms values: numbers with optional blanks
 * around; anything else is -1 (the computed backoff then applies), and a
 * huge wait stops at a day. */
static void test_retry_after_values(void **state)
{
	assert_int_equal(af__http_wait_ms("2", 1000), 2000);
	assert_int_equal(af__http_wait_ms(" 2 ", 1000), 2000);
	assert_int_equal(af__http_wait_ms("0", 1000), 0);
	assert_int_equal(af__http_wait_ms("1.5", 1000), -1);
	assert_int_equal(af__http_wait_ms("-5", 1000), -1);
	assert_int_equal(af__http_wait_ms("soon", 1000), -1);
	assert_int_equal(af__http_wait_ms("", 1000), -1);
	assert_int_equal(af__http_wait_ms("2 s", 1000), -1);
	assert_int_equal(
		af__http_wait_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1000), -1);
	assert_int_equal(af__http_wait_ms("99999999999999999999", 1000),
			 86400000);
	assert_int_equal(af__http_wait_ms("1500", 1), 1500);
	assert_int_equal(af__http_wait_ms("\t250 ", 1), 250);
	assert_int_equal(af__http_wait_ms("1500.75", 1), 1500);
	assert_int_equal(af__http_wait_ms("abc", 1), -1);
	assert_int_equal(af__http_wait_ms("99999999999999999999", 1), 86400000);
	(void)state;
}

static void test_error_text_reads_every_server_shape(void **state)
{
	/* OpenAI, vLLM, llama.cpp */
	error_text("{\"error\":{\"message\":\"Rate limit reached\","
		   "\"type\":\"requests\"}}",
		   "Rate limit reached");
	/* Ollama */
	error_text("{\"error\":\"model 'x' not found\"}",
		   "model 'x' not found");
	/* FastAPI-style servers */
	error_text("{\"detail\":\"Not Found\"}", "Not Found");
	error_text("{\"message\":\"overloaded\"}", "overloaded");
	/* Not JSON: the body itself, on one line. */
	error_text("<html>\r\n<b>502 Bad Gateway</b>\n</html>",
		   "<html>  <b>502 Bad Gateway</b> </html>");
	error_text(NULL, "");
	error_text("", "");
}

static void test_error_text_is_bounded(void **state)
{
	char body[1000];
	char out[64];

	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	af__http_error_text(body, strlen(body), out, sizeof(out));
	assert_int_equal(strlen(out), sizeof(out) - 1);
	af__http_error_text(body, strlen(body), out, 1);
	assert_string_equal(out, "");
}

/* Appends n copies of s to buf at *at. */
static void put_times(char *buf, size_t *at, const char *s, int n)
{
	for (int i = 0; i < n; i++) {
		memcpy(buf + *at, s, strlen(s));
		*at += strlen(s);
	}
	buf[*at] = '\0';
}

/* {"message":"ok","x":[[...]]} with arrays nested levels deep inside the
 * object, so that the whole text is levels + 1 deep. */
static void nested(char *buf, int levels)
{
	size_t at = 0;

	put_times(buf, &at, "{\"message\":\"ok\",\"x\":", 1);
	put_times(buf, &at, "[", levels);
	put_times(buf, &at, "]", levels);
	put_times(buf, &at, "}", 1);
}

static void test_json_depth_is_bounded(void **state)
{
	char body[4096];
	size_t at = 0;

	/* A text the bound refuses is not parsed: the error text is then
	 * the body itself. */
	nested(body, MAX_DEPTH - 1);
	error_text(body, "ok");
	nested(body, MAX_DEPTH);
	af__http_error_text(body, strlen(body), body + 2048, 256);
	assert_memory_equal(body + 2048, "{\"message\":\"ok\"", 15);
	/* More brackets than the bound, but not nested: the exact scan
	 * looks past the quick count. */
	put_times(body, &at, "{\"message\":\"ok\",\"x\":[", 1);
	put_times(body, &at, "[],{},", 2 * MAX_DEPTH);
	put_times(body, &at, "[]]}", 1);
	error_text(body, "ok");
	/* Brackets in strings, escaped quotes among them, do not nest. */
	at = 0;
	put_times(body, &at, "{\"message\":\"a\\\"", 1);
	put_times(body, &at, "[{", MAX_DEPTH);
	put_times(body, &at, "\"}", 1);
	af__http_error_text(body, strlen(body), body + 2048, 256);
	assert_memory_equal(body + 2048, "a\"[{[{", 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_with_jitter_and_caps),
		cmocka_unit_test(test_retry_after_values),
		cmocka_unit_test(test_error_text_reads_every_server_shape),
		cmocka_unit_test(test_error_text_is_bounded),
		cmocka_unit_test(test_json_depth_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
