/*
 * The Server-Sent Events parser. See sse.h.
 *
 * Line ends are found with memchr, each byte of a feed searched at most once
 * for "\n" and once for "\r". A line that ends inside the buffer being fed
 * is read where it lies; only a line cut by the end of a feed is copied
 * into s->line, to be completed by the next one. The data of "data:" lines
 * is copied once, into s->data, because lines are joined and the callback
 * gets a NUL-terminated string.
 *
 * The bound holds at every step: the data held plus the line being read
 * never exceed max_event, so neither buffer grows past max_event + 1 bytes
 * (the 1 for a NUL).
 *
 * Neither buffer is kept once emptied: a chat actor holds a parser per open
 * stream, and between events (most of a stream's life) it holds nothing.
 * That costs a malloc and a free per event, where keeping them cost 360
 * bytes per stream (bench_chat, 10,000 streams: 3.6 MB).
 */
#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Buffers start this small: most events are a few hundred bytes. */
#define SSE_MIN_CAP 256

void af__sse_init(af_sse *s, size_t max_event)
{
	memset(s, 0, sizeof(*s));
	if (max_event == 0)
		max_event = (size_t)1 << 20;
	/* Sizes are computed as max_event + 1 and doubled below it; this
	 * keeps both from overflowing. No server event comes near it. */
	if (max_event > SIZE_MAX / 4)
		max_event = SIZE_MAX / 4;
	s->max_event = max_event;
}

/* Grows *buf to hold at least need bytes, by doubling so that appends are
 * amortised O(1), but never past limit bytes; need <= limit. */
static int reserve(char **buf, size_t *cap, size_t need, size_t limit)
{
	size_t n;
	char *p;

	if (need <= *cap)
		return AF_OK;
	n = *cap > 0 ? *cap : SSE_MIN_CAP;
	while (n < need)
		n *= 2;
	if (n > limit)
		n = limit;
	p = realloc(*buf, n);
	if (p == NULL)
		return AF_ENOMEM;
	*buf = p;
	*cap = n;
	return AF_OK;
}

static void set_event(af_sse *s, const char *value, size_t len)
{
	size_t max = sizeof(s->event) - 1;

	if (len > max) {
		/* Cut before a UTF-8 continuation byte, so a long name
		 * becomes a shorter valid one rather than invalid UTF-8. */
		len = max;
		while (len > 0 && ((unsigned char)value[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(s->event, value, len);
	s->event[len] = '\0';
}

static int append_data(af_sse *s, const char *value, size_t len)
{
	size_t sep = s->has_data ? 1 : 0;
	int rc;

	/* The caller checked that the whole line fits the bound, and a data
	 * value is at least four bytes ("data") shorter than its line, so
	 * the separator and the NUL fit too. */
	rc = reserve(&s->data, &s->data_cap, s->data_len + sep + len + 1,
		     s->max_event + 1);
	if (rc != AF_OK)
		return rc;
	if (sep)
		s->data[s->data_len++] = '\n';
	memcpy(s->data + s->data_len, value, len);
	s->data_len += len;
	s->data[s->data_len] = '\0';
	s->has_data = true;
	return AF_OK;
}

static int dispatch(af_sse *s, af_sse_event_fn fn, void *arg)
{
	int rc = 0;

	/* An event with only an "event:" line, or only comments, is not
	 * dispatched, but a "data:" line with an empty value is. */
	if (s->has_data)
		rc = fn(arg, s->event, s->data != NULL ? s->data : "",
			s->data_len);
	free(s->data);
	s->data = NULL;
	s->data_cap = 0;
	s->data_len = 0;
	s->has_data = false;
	s->event[0] = '\0';
	return rc;
}

/* Handles one complete line, without its end. */
static int process_line(af_sse *s, const char *line, size_t len,
			af_sse_event_fn fn, void *arg)
{
	const char *colon;
	const char *value;
	size_t name_len, value_len;

	if (len == 0)
		return dispatch(s, fn, arg);
	if (line[0] == ':')
		return AF_OK;
	colon = memchr(line, ':', len);
	if (colon != NULL) {
		name_len = (size_t)(colon - line);
		value = colon + 1;
		value_len = len - name_len - 1;
		if (value_len > 0 && value[0] == ' ') {
			value++;
			value_len--;
		}
	} else {
		/* A field name alone has the empty string as its value. */
		name_len = len;
		value = line + len;
		value_len = 0;
	}
	if (name_len == 4 && memcmp(line, "data", 4) == 0)
		return append_data(s, value, value_len);
	if (name_len == 5 && memcmp(line, "event", 5) == 0)
		set_event(s, value, value_len);
	/* "id" and "retry" matter to a browser reconnecting, not to a chat
	 * client; unknown fields are ignored as the standard says. */
	return AF_OK;
}

/* The room left for the line being read. */
static size_t room(const af_sse *s)
{
	return s->max_event - s->data_len - s->line_len;
}

/* Keeps the start of a line that a feed cut, for the next feed. */
static int hold(af_sse *s, const char *bytes, size_t len)
{
	int rc;

	rc = reserve(&s->line, &s->line_cap, s->line_len + len, s->max_event);
	if (rc != AF_OK)
		return rc;
	memcpy(s->line + s->line_len, bytes, len);
	s->line_len += len;
	return AF_OK;
}

/* Where the next byte c lies at or after from, or len when there is none.
 * *at keeps the last answer (SIZE_MAX: none yet), so each byte of a feed
 * is searched for c at most once, however many lines it holds. */
static size_t next_of(const char *buf, size_t from, size_t len, char c,
		      size_t *at)
{
	const char *p;

	if (*at == SIZE_MAX || *at < from) {
		p = memchr(buf + from, c, len - from);
		*at = p != NULL ? (size_t)(p - buf) : len;
	}
	return *at;
}

int af__sse_feed(af_sse *s, const char *buf, size_t len, af_sse_event_fn fn,
		 void *arg)
{
	size_t i = 0;
	size_t j, n;
	size_t lf = SIZE_MAX;
	size_t cr = SIZE_MAX;
	int rc;

	while (i < len) {
		/* The "\n" of a "\r\n" that a previous line end began. */
		if (s->after_cr) {
			s->after_cr = false;
			if (buf[i] == '\n') {
				i++;
				continue;
			}
		}
		/* Lines are found with memchr, not byte by byte. */
		j = next_of(buf, i, len, '\n', &lf);
		n = next_of(buf, i, len, '\r', &cr);
		if (n < j)
			j = n;
		if (j - i > room(s))
			return AF_EMSGSIZE;
		if (j == len)
			return hold(s, buf + i, j - i);
		s->after_cr = buf[j] == '\r';
		if (s->line_len == 0) {
			rc = process_line(s, buf + i, j - i, fn, arg);
		} else {
			rc = hold(s, buf + i, j - i);
			if (rc != AF_OK)
				return rc;
			/* The line is consumed whatever process_line
			 * returns. */
			n = s->line_len;
			s->line_len = 0;
			rc = process_line(s, s->line, n, fn, arg);
			free(s->line);
			s->line = NULL;
			s->line_cap = 0;
		}
		if (rc != 0)
			return rc;
		i = j + 1;
	}
	return AF_OK;
}

bool af__sse_pending(const af_sse *s)
{
	/* A name given by "event:" belongs to an event whose data was still
	 * to come; a line end alone ("\r" awaiting its "\n") holds nothing. */
	return s->line_len > 0 || s->has_data || s->event[0] != '\0';
}

void af__sse_free(af_sse *s)
{
	free(s->line);
	free(s->data);
	s->line = NULL;
	s->data = NULL;
	s->line_len = s->line_cap = 0;
	s->data_len = s->data_cap = 0;
	s->has_data = false;
	s->after_cr = false;
	s->event[0] = '\0';
}
