/*
 * libFuzzer target: splits untrusted bytes as newline-delimited JSON three
 * ways, in one feed, in pieces cut where the input says, and a byte at a
 * time, then finishes, and checks that all three give the same lines, the
 * same result and the same af__ndjson_pending, that every line is within
 * max_line, non-blank and free of "\n", and that the buffer never grows
 * past its bound. Built and run by scripts/fuzz.sh.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STOP 4242
#define MAX_CUTS 8

#define require(cond)                                                          \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

/* Every line a split handed over, end to end, each followed by a NUL. */
struct log {
	char *bytes;
	size_t len;
	size_t cap;
	size_t lines;
	size_t stop_at; /* stop the split at this line (1-based); 0: never */
	size_t max_line;
};

static bool blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

static int on_line(void *arg, const char *line, size_t len)
{
	struct log *l = arg;

	require(len > 0 && len <= l->max_line);
	require(line[len] == '\0');
	require(memchr(line, '\n', len) == NULL);
	require(!blank(line, len));
	if (l->len + len + 1 > l->cap) {
		size_t cap = l->cap > 0 ? l->cap : 256;

		while (cap < l->len + len + 1)
			cap *= 2;
		l->bytes = realloc(l->bytes, cap);
		require(l->bytes != NULL);
		l->cap = cap;
	}
	memcpy(l->bytes + l->len, line, len + 1);
	l->len += len + 1;
	l->lines++;
	if (l->stop_at > 0 && l->lines == l->stop_at)
		return STOP;
	return 0;
}

/* Splits text in the pieces that end at each of the ncuts ascending cuts
 * and at the end, then finishes; *pending is af__ndjson_pending after the
 * last feed. */
static int split(size_t max_line, const char *text, size_t len,
		 const size_t *cuts, size_t ncuts, struct log *l, bool *pending)
{
	af_ndjson n;
	size_t from = 0;
	int rc = 0;

	af__ndjson_init(&n, max_line);
	l->max_line = n.max_line;
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

static void require_same(const struct log *a, int rc_a, bool pending_a,
			 const struct log *b, int rc_b, bool pending_b)
{
	require(rc_a == rc_b);
	require(a->lines == b->lines);
	require(a->len == b->len);
	require(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
	/* After an error or a stop, what is held depends on where the
	 * feed ended, so only a split that ran to the end is compared. */
	if (rc_a == 0)
		require(pending_a == pending_b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log one = {0}, cut = {0}, bytes = {0};
	size_t cuts[MAX_CUTS];
	size_t ncuts, len, max_line;
	const char *text;
	uint32_t x;
	bool p_one, p_cut, p_bytes;
	int rc_one, rc_cut, rc_bytes;

	if (size < 2)
		return 0;
	max_line = (size_t)data[0] * 8;
	text = (const char *)data + 2;
	len = size - 2;

	/* A small generator seeded by the second byte and the length, so
	 * the same input always cuts in the same places. */
	x = (uint32_t)data[1] * 2654435761u + (uint32_t)len;
	ncuts = data[1] % (MAX_CUTS + 1);
	for (size_t i = 0; i < ncuts; i++) {
		x = x * 1103515245u + 12345u;
		cuts[i] = len > 0 ? (x >> 8) % (len + 1) : 0;
	}
	/* Insertion sort: the cuts must ascend, and there are few. */
	for (size_t i = 1; i < ncuts; i++)
		for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t t = cuts[j];

			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	one.stop_at = cut.stop_at = bytes.stop_at = data[1] >> 5;

	rc_one = split(max_line, text, len, NULL, 0, &one, &p_one);
	rc_cut = split(max_line, text, len, cuts, ncuts, &cut, &p_cut);
	require_same(&one, rc_one, p_one, &cut, rc_cut, p_cut);

	/* A byte at a time is the most cuts there can be; 4 KiB of input
	 * is cheap enough to split so. */
	if (len <= 4096) {
		size_t all[4096];

		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		rc_bytes = split(max_line, text, len, all,
				 len > 0 ? len - 1 : 0, &bytes, &p_bytes);
		require_same(&one, rc_one, p_one, &bytes, rc_bytes, p_bytes);
	}

	free(one.bytes);
	free(cut.bytes);
	free(bytes.bytes);
	return 0;
}
