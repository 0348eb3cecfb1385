/*
 * libFuzzer target: parses untrusted bytes as a Server-Sent Events stream
 * three ways, in one feed, in pieces cut where the input says, and a byte
 * at a time (split_check.h), and checks that all three give the same
 * events, the same result and the same af__sse_pending, that no event is
 * larger than max_event, and that no buffer grows past it. Built and run
 * by scripts/fuzz.sh.
 *
 * The first byte of the input chooses max_event (0: the 1 MiB default,
 * otherwise 16 times its value); the second chooses where the pieces are
 * cut and the event at which the callback stops the parse; the rest is
 * the stream.
 *
 * FUZZ_SOURCES: actors/chat/sse.c
 * FUZZ_CFLAGS: -Iactors/chat
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "split_check.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Logs each event as its name, NUL, length, data. */
static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct log *l = arg;
	size_t name_len = strlen(name);

	require(name_len < 64);
	require(len <= l->max);
	require(data[len] == '\0');
	log_append(l, name, name_len + 1);
	log_append(l, &len, sizeof(len));
	log_append(l, data, len);
	return split_log_record(l);
}

static int parse(size_t max_event, const char *text, size_t len,
		 const size_t *cuts, size_t ncuts, struct log *l, bool *pending)
{
	af_sse s;
	size_t from = 0;
	int rc = 0;

	af__sse_init(&s, max_event);
	l->max = s.max_event;
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		rc = af__sse_feed(&s, text + from, to - from, on_event, l);
		require(s.line_cap <= s.max_event + 1);
		require(s.data_cap <= s.max_event + 1);
		require(s.data_len + s.line_len <= s.max_event);
		from = to;
	}
	*pending = af__sse_pending(&s);
	af__sse_free(&s);
	require(rc == 0 || rc == STOP || rc == AF_EMSGSIZE);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return split_check(data, size, 16, parse);
}
