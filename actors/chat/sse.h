/*
 * An incremental Server-Sent Events parser (the text/event-stream format of
 * the WHATWG HTML standard), as OpenAI-compatible servers stream chat.
 *
 * Bytes are fed as they arrive, split anywhere: mid-line, mid-"\r\n",
 * mid-UTF-8 sequence. Lines end with "\n", "\r\n" or "\r"; a blank line
 * dispatches the event; lines starting with ":" are comments; "data:" lines
 * are joined with "\n"; a single space after the colon is dropped; "event:"
 * names the event; other fields ("id:", "retry:") are ignored. An event
 * with no data line is not dispatched.
 *
 * Memory is bounded: an event (its data plus the line being read) larger
 * than max_event bytes is an error, so a server cannot grow it without end.
 *
 * Not thread-safe: one parser belongs to one stream.
 */
#ifndef AF_CHAT_SSE_H
#define AF_CHAT_SSE_H

#include <actorflow/err.h>
#include <stdbool.h>
#include <stddef.h>

/* Called for each complete event. event is its name ("" when none was
 * given), data its data (NUL-terminated, len bytes, borrowed for the call).
 * A non-zero return stops the parse: af__sse_feed returns that value. */
typedef int (*af_sse_event_fn)(void *arg, const char *event, const char *data,
			       size_t len);

typedef struct af_sse {
	char *line; /* the line being read, without its end */
	size_t line_len;
	size_t line_cap;
	char *data; /* the event's data lines so far, joined with '\n' */
	size_t data_len;
	size_t data_cap;
	bool has_data;
	bool after_cr; /* the last byte was '\r': a '\n' next ends nothing */
	char event[64];
	size_t max_event;
} af_sse;

/* Prepares s; max_event 0 means 1 MiB. Allocates nothing. */
void af__sse_init(af_sse *s, size_t max_event);

/* Parses len bytes, calling fn for each event they complete. Returns 0;
 * fn's non-zero value; AF_EMSGSIZE when an event grows past max_event;
 * AF_ENOMEM. After any non-zero return (fn's too: the rest of buf is left
 * unparsed) the parser must only be freed. */
int af__sse_feed(af_sse *s, const char *buf, size_t len, af_sse_event_fn fn,
		 void *arg);

/* True when bytes of an unfinished line or event are held: at the end of
 * the body, this means the stream was cut mid-event. */
bool af__sse_pending(const af_sse *s);

/* Frees what s holds; s may be initialised again. */
void af__sse_free(af_sse *s);

#endif
