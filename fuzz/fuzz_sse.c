/*
 * libFuzzer target: parses untrusted bytes as a Server-Sent Events stream
 * three ways, in one feed, in pieces cut where the input says, and a byte
 * at a time, and checks that all three give the same events, the same
 * result and the same af__sse_pending, that no event is larger than
 * max_event, and that no buffer grows past it. Built and run by
 * scripts/fuzz.sh.
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

#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STOP 4242
#define MAX_CUTS 8

#define require(cond)                                                          \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

/* Every event a parse dispatched, end to end: name, NUL, length, data. */
struct log {
	char *bytes;
	size_t len;
	size_t cap;
	size_t events;
	size_t stop_at; /* stop the parse at this event (1-based); 0: never */
	size_t max_event;
};

static void log_append(struct log *l, const void *bytes, size_t len)
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

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct log *l = arg;
	size_t name_len = strlen(name);

	require(name_len < 64);
	require(len <= l->max_event);
	require(data[len] == '\0');
	log_append(l, name, name_len + 1);
	log_append(l, &len, sizeof(len));
	log_append(l, data, len);
	l->events++;
	if (l->stop_at > 0 && l->events == l->stop_at)
		return STOP;
	return 0;
}

/* Parses text in the pieces that end at each of the ncuts ascending cuts
 * and at the end; *pending is af__sse_pending after the last feed. */
static int parse(size_t max_event, const char *text, size_t len,
		 const size_t *cuts, size_t ncuts, struct log *l, bool *pending)
{
	af_sse s;
	size_t from = 0;
	int rc = 0;

	af__sse_init(&s, max_event);
	l->max_event = s.max_event;
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

static void require_same(const struct log *a, int rc_a, bool pending_a,
			 const struct log *b, int rc_b, bool pending_b)
{
	require(rc_a == rc_b);
	require(a->events == b->events);
	require(a->len == b->len);
	require(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
	/* After an error or a stop, what is held depends on where the
	 * feed ended, so only a parse that ran to the end is compared. */
	if (rc_a == 0)
		require(pending_a == pending_b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct log one = {0}, cut = {0}, bytes = {0};
	size_t cuts[MAX_CUTS];
	size_t ncuts, len, max_event;
	const char *text;
	uint32_t x;
	bool p_one, p_cut, p_bytes;
	int rc_one, rc_cut, rc_bytes;

	if (size < 2)
		return 0;
	max_event = (size_t)data[0] * 16;
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

	rc_one = parse(max_event, text, len, NULL, 0, &one, &p_one);
	rc_cut = parse(max_event, text, len, cuts, ncuts, &cut, &p_cut);
	require_same(&one, rc_one, p_one, &cut, rc_cut, p_cut);

	/* A byte at a time is the most cuts there can be; 4 KiB of input
	 * is cheap enough to parse so. */
	if (len <= 4096) {
		size_t all[4096];

		for (size_t i = 0; i < len; i++)
			all[i] = i + 1;
		rc_bytes = parse(max_event, text, len, all,
				 len > 0 ? len - 1 : 0, &bytes, &p_bytes);
		require_same(&one, rc_one, p_one, &bytes, rc_bytes, p_bytes);
	}

	free(one.bytes);
	free(cut.bytes);
	free(bytes.bytes);
	return 0;
}
