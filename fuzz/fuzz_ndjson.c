/*
 * libFuzzer target: splits untrusted bytes as newline-delimited JSON three
 * ways, in one feed, in pieces cut where the input says, and a byte at a
 * time (split_check.h), then finishes, and checks that all three give the
 * same lines, the same result and the same af__ndjson_pending, that every
 * line is within max_line, non-blank and free of "\n", and that the buffer
 * never grows past its bound. Built and run by scripts/fuzz.sh.
 *
 * The first byte of the input chooses max_line (0: the 1 MiB default,
 * otherwise 8 times its value); the second chooses where the pieces are
 * cut and the line at which the callback stops the split; the rest is the
 * stream.
 *
 * FUZZ_SOURCES: actors/chat/ndjson.c
 * FUZZ_CFLAGS: -Iactors/chat
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ndjson.h"
#include "split_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

/* Logs each line followed by a NUL. */
static int on_line(void *arg, const char *line, size_t len)
{
	struct log *l = arg;

	require(len > 0 && len <= l->max);
	require(line[len] == '\0');
	require(memchr(line, '\n', len) == NULL);
	require(!blank(line, len));
	log_append(l, line, len + 1);
	return split_log_record(l);
}

static int split(size_t max_line, const char *text, size_t len,
		 const size_t *cuts, size_t ncuts, struct log *l, bool *pending)
{
	af_ndjson n;
	size_t from = 0;
	int rc = 0;

	af__ndjson_init(&n, max_line);
	l->max = n.max_line;
	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		rc = af__ndjson_feed(&n, text + from, to - from, on_line, l);
		require(n.cap <= n.max_line + 2);
		require(n.len <= n.max_line + 1);
		from = to;
	}
	*pending = af__ndjson_pending(&n);
	if (rc == 0) {
		rc = af__ndjson_finish(&n, on_line, l);
		require(rc != 0 || !af__ndjson_pending(&n));
	}
	af__ndjson_free(&n);
	require(rc == 0 || rc == STOP || rc == AF_EMSGSIZE);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return split_check(data, size, 8, split);
}
