#include "functions.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#define SLEEP_MAX_MS 600000

static int sleep_ms(void *user, const af_value *args, af_payload *result,
		    char *msg, size_t msg_size)
{
	const af_value *v = af_value_type(args) == AF_TYPE_MAP
				    ? af_value_get(args, "ms")
				    : args;
	int64_t ms;
	struct timespec ts;

	(void)user;
	if (af_value_int(v, &ms) != AF_OK || ms < 0 || ms > SLEEP_MAX_MS) {
		snprintf(msg, msg_size,
			 "sleep_ms takes an integer from 0 to %d, or "
			 "{\"ms\": n}",
			 SLEEP_MAX_MS);
		return AF_EINVAL;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	/* The worker blocks, as the Python function would: that is what
	 * the demonstration is about. */
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
	return af_pack_int(result, ms);
}

static int word_count(void *user, const af_value *args, af_payload *result,
		      char *msg, size_t msg_size)
{
	const af_value *v = af_value_type(args) == AF_TYPE_MAP
				    ? af_value_get(args, "text")
				    : args;
	const char *s;
	size_t len;
	int64_t words = 0;
	int in_word = 0;

	(void)user;
	if (af_value_str(v, &s, &len) != AF_OK) {
		snprintf(msg, msg_size,
			 "word_count takes a string, or {\"text\": s}");
		return AF_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
			    c == '\f' || c == '\v';
		if (!space && !in_word)
			words++;
		in_word = !space;
	}
	return af_pack_int(result, words);
}

static int echo(void *user, const af_value *args, af_payload *result, char *msg,
		size_t msg_size)
{
	(void)user;
	(void)msg;
	(void)msg_size;
	if (args == NULL)
		return af_pack_nil(result);
	return af_pack_value(result, args);
}

static int fail(void *user, const af_value *args, af_payload *result, char *msg,
		size_t msg_size)
{
	int64_t code = af_value_get_int(args, "code", AF_EUSER);
	const char *text = NULL;
	size_t len = 0;

	(void)user;
	(void)result;
	if (code <= 0 || code > INT32_MAX) {
		snprintf(msg, msg_size, "fail: \"code\" must be above 0");
		return AF_EINVAL;
	}
	if (af_value_str(af_value_get(args, "message"), &text, &len) == AF_OK)
		snprintf(msg, msg_size, "%.*s", (int)len, text);
	else
		snprintf(msg, msg_size, "failed as asked");
	return (int)code;
}

const af_offload_function cli_functions[] = {
	{.name = "sleep_ms", .fn = sleep_ms},
	{.name = "word_count", .fn = word_count},
	{.name = "echo", .fn = echo},
	{.name = "fail", .fn = fail},
};

const size_t cli_nfunctions = sizeof(cli_functions) / sizeof(cli_functions[0]);
