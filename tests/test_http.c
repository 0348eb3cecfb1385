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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_with_jitter_and_caps),
		cmocka_unit_test(test_error_text_reads_every_server_shape),
		cmocka_unit_test(test_error_text_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
