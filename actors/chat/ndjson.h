/*
 * An incremental splitter of newline-delimited JSON (one JSON document per
 * line), as Ollama's native API streams chat.
 *
 * Bytes are fed as they arrive, split anywhere. A line ends with "\n"; a
 * "\r" before it is dropped; blank lines (only spaces, tabs or "\r") are
 * skipped. Each complete line is handed over as it is; parsing the JSON is
 * the caller's. A line longer than max_line bytes is an error.
 *
 * Not thread-safe: one splitter belongs to one stream.
 */
#ifndef AF_CHAT_NDJSON_H
#define AF_CHAT_NDJSON_H

#include <actorflow/err.h>
#include <stdbool.h>
#include <stddef.h>

/* Called for each complete, non-blank line (NUL-terminated, len bytes, no
 * line end, borrowed for the call). A non-zero return stops the parse:
 * af__ndjson_feed returns that value. */
typedef int (*af_ndjson_line_fn)(void *arg, const char *line, size_t len);

typedef struct af_ndjson {
	char *line;
	size_t len;
	size_t cap;
	size_t max_line;
} af_ndjson;

/* Prepares n; max_line 0 means 1 MiB. Allocates nothing. */
void af__ndjson_init(af_ndjson *n, size_t max_line);

/* Splits len bytes, calling fn for each line they complete. Returns 0, fn's
 * non-zero value, AF_EMSGSIZE (a line past max_line) or AF_ENOMEM. After
 * any non-zero return (fn's too: the rest of buf is left unsplit) the
 * splitter must only be freed. */
int af__ndjson_feed(af_ndjson *n, const char *buf, size_t len,
		    af_ndjson_line_fn fn, void *arg);

/* True when a partial, non-blank line is held: at the end of the body, the
 * stream was cut mid-line (a last line without "\n" is complete only if the
 * caller hands it over with af__ndjson_finish). */
bool af__ndjson_pending(const af_ndjson *n);

/* Hands over a last line that had no "\n" (servers may omit the final
 * one). Returns as af__ndjson_feed. */
int af__ndjson_finish(af_ndjson *n, af_ndjson_line_fn fn, void *arg);

/* Frees what n holds; n may be initialised again. */
void af__ndjson_free(af_ndjson *n);

#endif
