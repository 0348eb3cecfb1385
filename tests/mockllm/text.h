/*
 * Text helpers for the mock server: a growable byte buffer, JSON string
 * escaping, word counts and the hashed bag-of-words embedding.
 */
#ifndef MOCKLLM_TEXT_H
#define MOCKLLM_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated once it holds anything. A
 * zeroed buf is empty. After a failed append, buf.failed is set and later
 * appends do nothing, so callers check once at the end. */
typedef struct buf {
	char *data;
	size_t len;
	size_t cap;
	int failed;
} buf;

void buf_put(buf *b, const void *data, size_t len);
void buf_puts(buf *b, const char *s);
__attribute__((format(printf, 2, 3))) void buf_printf(buf *b, const char *fmt,
						      ...);
/* Appends s escaped as the inside of a JSON string (no quotes). */
void buf_put_json(buf *b, const char *s);
void buf_reset(buf *b);
void buf_free(buf *b);

/* A malloc'ed copy of s escaped as the inside of a JSON string, or NULL. */
char *json_escape(const char *s);

/* Whitespace-separated words in s. */
int word_count(const char *s);

/* Writes into v (dim floats) the embedding of s: each lowercase word adds
 * +1 or -1 (by its hash) at a place given by its hash, and the result is
 * L2-normalised (all zeros when s has no word). Words are runs of ASCII
 * letters and digits and of non-ASCII bytes, so texts that share words
 * have close vectors. */
void embed_text(const char *s, float *v, int dim);

#endif
