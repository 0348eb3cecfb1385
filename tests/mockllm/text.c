/*
 * text.c - buffers, JSON escaping and embeddings for the mock server.
 */
#include "text.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(buf *b, size_t more)
{
	size_t need;
	char *data;
	size_t cap;

	if (b->failed)
		return -1;
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	data = realloc(b->data, cap);
	if (data == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = data;
	b->cap = cap;
	return 0;
}

void buf_put(buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) != 0)
		return;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void buf_puts(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void buf_printf(buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_reserve(b, 0) != 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	/* Most events fit the room already there; the rest print twice. */
	if ((size_t)n >= b->cap - b->len) {
		if (buf_reserve(b, (size_t)n) != 0)
			return;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

void buf_put_json(buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[6] = {'\\', 'u', '0', '0', 0, 0};

		if (*p == '"' || *p == '\\') {
			esc[1] = (char)*p;
			buf_put(b, esc, 2);
		} else if (*p == '\n') {
			buf_put(b, "\\n", 2);
		} else if (*p < 0x20) {
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			buf_put(b, esc, 6);
		} else {
			/* UTF-8 goes through as it is: JSON allows it. */
			buf_put(b, p, 1);
		}
	}
}

void buf_reset(buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void buf_free(buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

char *json_escape(const char *s)
{
	buf b = {0};

	buf_put_json(&b, s);
	buf_put(&b, "", 0);
	if (b.failed) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

int word_count(const char *s)
{
	int n = 0;
	int in_word = 0;

	for (; *s; s++) {
		int space = isspace((unsigned char)*s);

		if (!space && !in_word)
			n++;
		in_word = !space;
	}
	return n;
}

static int word_byte(unsigned char c)
{
	return c >= 0x80 || isalnum(c);
}

void embed_text(const char *s, float *v, int dim)
{
	const unsigned char *p = (const unsigned char *)s;
	double norm = 0;

	memset(v, 0, (size_t)dim * sizeof(*v));
	while (*p) {
		/* FNV-1a over the lowercased word. */
		uint64_t h = 14695981039346656037u;

		if (!word_byte(*p)) {
			p++;
			continue;
		}
		for (; *p && word_byte(*p); p++) {
			h ^= (uint64_t)tolower(*p);
			h *= 1099511628211u;
		}
		v[h % (uint64_t)dim] += (h >> 63) ? -1.0f : 1.0f;
	}
	for (int i = 0; i < dim; i++)
		norm += (double)v[i] * v[i];
	if (norm > 0) {
		norm = sqrt(norm);
		for (int i = 0; i < dim; i++)
			v[i] = (float)(v[i] / norm);
	}
}
