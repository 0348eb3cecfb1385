/*
 * The harness the stream-parser fuzz targets share: a parser must give the
 * same result fed in one piece, in pieces cut where the input says, and a
 * byte at a time.
 *
 * The first byte of the input chooses the parser's size limit (0: its
 * default, otherwise scale times the byte); the second chooses where the
 * pieces are cut and the record (event, line) at which the callback stops
 * the parse; the rest is the stream. A target supplies split_parse_fn,
 * whose callback logs each record with split_log_record.
 */
#ifndef AF_FUZZ_SPLIT_CHECK_H
#define AF_FUZZ_SPLIT_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "require.h"

#define STOP 4242
#define MAX_CUTS 8

/* Every record a parse handed over, end to end, in a target's encoding. */
struct log {
	char *bytes;
	size_t len;
	size_t cap;
	size_t records;
	size_t stop_at; /* stop the parse at this record (1-based); 0: never */
	size_t max;     /* the parser's size limit, as it set it */
};

static inline void log_append(struct log *l, const void *bytes, size_t len)
{
	if (l->len + len > l->cap) {
		size_t cap = l->cap > 0 ? l->cap : 256;

		while (cap < l->len + len)
			cap *= 2;
		l->bytes = realloc(l->bytes, cap);
		require(l->bytes != NULL);
		l->cap = cap;
	}
	memcpy(l->bytes + l->len, bytes, len);
	l->len += len;
}

/* Counts a logged record: STOP when the parse is to stop there, else 0. */
static inline int split_log_record(struct log *l)
{
	l->records++;
	return l->stop_at > 0 && l->records == l->stop_at ? STOP : 0;
}

/* Parses text in the pieces that end at each of the ncuts ascending cuts
 * and at the end, logging into l; *pending is the parser's "pending"
 * after the last feed. Returns the parse's result. */
typedef int (*split_parse_fn)(size_t max, const char *text, size_t len,
			      const size_t *cuts, size_t ncuts, struct log *l,
			      bool *pending);

static inline void require_same(const struct log *a, int rc_a, bool pending_a,
				const struct log *b, int rc_b, bool pending_b)
{
	require(rc_a == rc_b);
	require(a->records == b->records);
	require(a->len == b->len);
	require(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
	/* After an error or a stop, what is held depends on where the
	 * feed ended, so only a parse that ran to the end is compared. */
	if (rc_a == 0)
		require(pending_a == pending_b);
}

static inline int split_check(const uint8_t *data, size_t size, size_t scale,
			      split_parse_fn parse)
{
	struct log one = {0}, cut = {0}, bytes = {0};
	size_t cuts[MAX_CUTS];
	size_t ncuts, len, max;
	const char *text;
	uint32_t x;
	bool p_one, p_cut, p_bytes;
	int rc_one, rc_cut, rc_bytes;

	if (size < 2)
		return 0;
	max = (size_t)data[0] * scale;
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

	rc_one = parse(max, text, len, NULL, 0, &one, &p_one);
	rc_cut = parse(max, text, len, cuts, ncuts, &cut, &p_cut);
	require_same(&one, rc_one, p_one, &cut, rc_cut, p_cut);

	/* A byte at a time is the most cuts there can be; 4 KiB of input
	 * is cheap enough to parse so. */
	if (len <= 4096) {
		size_t all[4096];

		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		rc_bytes = parse(max, text, len, all, len > 0 ? len - 1 : 0,
				 &bytes, &p_bytes);
		require_same(&one, rc_one, p_one, &bytes, rc_bytes, p_bytes);
	}

	free(one.bytes);
	free(cut.bytes);
	free(bytes.bytes);
	return 0;
}

#endif
