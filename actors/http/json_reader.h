/*
 * Reading a few members out of many small JSON texts, without a tree: the
 * path every chunk of a streamed answer takes (an OpenAI-compatible
 * server sends one JSON object per chunk, Ollama one per line).
 *
 * A reader is made once for a set of paths ("choices.0.delta.content":
 * keys, and array indices written as numbers) and reads text after text.
 * It runs yajl's event parser, which validates the whole text (UTF-8
 * included) as cJSON would but builds nothing; the parser and the reader's
 * buffers are reused from one text to the next, so a chunk costs no
 * allocation once they have grown. cJSON built a tree of one allocation
 * per member and string (25 for a chunk of the OpenAI API) and spent 60 %
 * of the chat actor's instructions per chunk doing it.
 *
 * A reader belongs to one thread at a time.
 */
#ifndef AF_HTTP_JSON_READER_H
#define AF_HTTP_JSON_READER_H

#include <actorflow/actorflow.h>
#include <stddef.h>

/* At most this many paths per reader, of at most AF_JSON_PATH_DEPTH
 * components each. */
#define AF_JSON_MAX_PICKS 16
#define AF_JSON_PATH_DEPTH 4

typedef struct af_json_reader af_json_reader;

typedef enum af_json_kind {
	AF_JSON_ABSENT = 0, /* no member at that path */
	AF_JSON_NULL,
	AF_JSON_FALSE,
	AF_JSON_TRUE,
	AF_JSON_NUMBER,
	AF_JSON_STRING,
	AF_JSON_OBJECT,
	AF_JSON_ARRAY,
} af_json_kind;

/* What a text holds at one path: the first such member when keys repeat
 * (as cJSON's lookup finds). */
typedef struct af_json_pick {
	af_json_kind kind;
	double number; /* AF_JSON_NUMBER */
	/* AF_JSON_STRING: the decoded text, NUL-terminated (it may hold NUL
	 * bytes of its own: len counts them). Owned by the reader, valid
	 * until its next read. */
	const char *str;
	size_t len;
} af_json_pick;

/* Makes a reader for n paths (n <= AF_JSON_MAX_PICKS); the path strings
 * are copied. AF_EINVAL for a path that is empty, has an empty component
 * or more than AF_JSON_PATH_DEPTH of them; AF_ENOMEM. */
af_err af__json_reader_new(af_json_reader **out, const char *const *paths,
			   size_t n);

/* Frees *r (NULL is fine) and sets it to NULL. */
void af__json_reader_destroy(af_json_reader **r);

/* Reads the len bytes of text (need not be NUL-terminated) as exactly one
 * JSON object and fills out[i] for the reader's paths[i]. AF_OK;
 * AF_EPROTO when the text is not valid JSON, not one object, or nested
 * deeper than AF_JSON_MAX_DEPTH (*why says which, a constant string);
 * AF_ENOMEM. out is fully written either way. */
af_err af__json_read(af_json_reader *r, const char *text, size_t len,
		     af_json_pick *out, const char **why);

#endif
