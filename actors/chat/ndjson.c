/*
 * The newline-delimited JSON splitter. See ndjson.h.
 *
 * Every non-blank line is copied once into n->line, even one that lies whole
 * in the buffer being fed: the caller's buffer is read-only and the line
 * handed over must end with a NUL. Blank lines are skipped before any copy.
 *
 * The bound: a line without its end ("\n" or "\r\n") may be max_line bytes.
 * A line cut by the end of a feed is held with at most one more byte, a
 * "\r" that may turn out to precede the "\n", so n->line never grows past
 * max_line + 2 bytes (the 2 for that "\r" and a NUL).
 */
#include "ndjson.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Buffers start this small: most streamed lines are a few hundred bytes. */
#define NDJSON_MIN_CAP 256

void af__ndjson_init(af_ndjson *n, size_t max_line)
{
	memset(n, 0, sizeof(*n));
	if (max_line == 0)
		max_line = (size_t)1 << 20;
	/* Sizes are computed as max_line + 2 and doubled below it; this keeps
	 * both from overflowing. No server line comes near it. */
	if (max_line > SIZE_MAX / 4)
		max_line = SIZE_MAX / 4;
	n->max_line = max_line;
}

/* Grows n->line to at least need bytes, by doubling so that appends are
 * amortised O(1), but never past the bound. */
static int reserve(af_ndjson *n, size_t need)
{
	size_t limit = n->max_line + 2;
	size_t cap;
	char *p;

	if (need <= n->cap)
		return AF_OK;
	cap = n->cap > 0 ? n->cap : NDJSON_MIN_CAP;
	while (cap < need)
		cap *= 2;
	if (cap > limit)
		cap = limit;
	p = realloc(n->line, cap);
	if (p == NULL)
		return AF_ENOMEM;
	n->line = p;
	n->cap = cap;
	return AF_OK;
}

static bool is_blank(const char *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (bytes[i] != ' ' && bytes[i] != '\t' && bytes[i] != '\r')
			return false;
	return true;
}

/* Hands over the held bytes followed by len more, which together make a
 * line whose "\n" (or the end of the stream) has come. */
static int complete(af_ndjson *n, const char *bytes, size_t len,
		    af_ndjson_line_fn fn, void *arg)
{
	size_t total = n->len + len;
	char last;
	int rc;

	if (total == 0)
		return AF_OK;
	last = len > 0 ? bytes[len - 1] : n->line[n->len - 1];
	if (last == '\r') {
		total--;
		if (len > 0)
			len--;
		else
			n->len--;
	}
	if (total > n->max_line)
		return AF_EMSGSIZE;
	if (is_blank(n->line, n->len) && is_blank(bytes, len)) {
		n->len = 0;
		free(n->line);
		n->line = NULL;
		n->cap = 0;
		return AF_OK;
	}
	rc = reserve(n, total + 1);
	if (rc != AF_OK)
		return rc;
	if (len > 0)
		memcpy(n->line + n->len, bytes, len);
	n->line[total] = '\0';
	/* The line is consumed whatever fn returns. */
	n->len = 0;
	rc = fn(arg, n->line, total);
	/* Nothing is held between lines: a parser per open stream would keep
	 * its buffer through the stream's long waits (as sse.c). */
	free(n->line);
	n->line = NULL;
	n->cap = 0;
	return rc;
}

/* Keeps the start of a line that a feed cut, for the next feed. */
static int hold(af_ndjson *n, const char *bytes, size_t len)
{
	size_t total;
	int rc;

	/* One byte past the bound is allowed only for a "\r" that a "\n"
	 * may follow; the held bytes never exceed max_line + 1. */
	if (len > n->max_line + 1 - n->len)
		return AF_EMSGSIZE;
	total = n->len + len;
	if (total == n->max_line + 1 && bytes[len - 1] != '\r')
		return AF_EMSGSIZE;
	rc = reserve(n, total);
	if (rc != AF_OK)
		return rc;
	memcpy(n->line + n->len, bytes, len);
	n->len = total;
	return AF_OK;
}

int af__ndjson_feed(af_ndjson *n, const char *buf, size_t len,
		    af_ndjson_line_fn fn, void *arg)
{
	size_t i = 0;
	const char *end;
	int rc;

	while (i < len) {
		end = memchr(buf + i, '\n', len - i);
		if (end == NULL)
			return hold(n, buf + i, len - i);
		rc = complete(n, buf + i, (size_t)(end - (buf + i)), fn, arg);
		if (rc != 0)
			return rc;
		i = (size_t)(end - buf) + 1;
	}
	return AF_OK;
}

bool af__ndjson_pending(const af_ndjson *n)
{
	return !is_blank(n->line, n->len);
}

int af__ndjson_finish(af_ndjson *n, af_ndjson_line_fn fn, void *arg)
{
	/* The end of the stream ends the last line as a "\n" would, so a
	 * trailing "\r" is dropped and a blank last line skipped alike. */
	return complete(n, NULL, 0, fn, arg);
}

void af__ndjson_free(af_ndjson *n)
{
	free(n->line);
	n->line = NULL;
	n->len = 0;
	n->cap = 0;
}
