#include "splitter.h"

#include <stdbool.h>
#include <stdlib.h>

/* A sentence, or a piece of an over-long one: the words it spans. */
typedef struct unit {
	size_t off;
	size_t len;
	size_t words;
} unit;

typedef struct units {
	unit *v;
	size_t n;
	size_t cap;
} units;

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* True when the word w[0, len) ends a sentence: its last character, once
 * closing quotes and brackets are set aside, is '.', '!' or '?'. */
static bool ends_sentence(const char *w, size_t len)
{
	while (len > 0) {
		char c = w[len - 1];

		if (c == '"' || c == '\'' || c == ')' || c == ']')
			len--;
		else if (len >= 3 && (unsigned char)w[len - 3] == 0xe2 &&
			 (unsigned char)w[len - 2] == 0x80 &&
			 ((unsigned char)c == 0x9d || (unsigned char)c == 0x99))
			len -= 3; /* a closing curly quote */
		else
			return c == '.' || c == '!' || c == '?';
	}
	return false;
}

/* True when the white space s[0, len) holds a blank line. */
static bool blank_line(const char *s, size_t len)
{
	int newlines = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && ++newlines == 2)
			return true;
	}
	return false;
}

static af_err push(units *u, size_t off, size_t end, size_t words)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		unit *v = realloc(u->v, cap * sizeof(*v));

		if (v == NULL)
			return AF_ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = (unit){.off = off, .len = end - off, .words = words};
	return AF_OK;
}

/* Cuts the text into units of at most max words, in one pass. */
static af_err find_units(const char *text, size_t len, size_t max, units *u)
{
	size_t i = 0;
	size_t start = 0; /* the current unit's first byte */
	size_t words = 0; /* its words so far */

	while (i < len) {
		size_t w, end, gap;

		while (i < len && is_space(text[i]))
			i++;
		if (i == len)
			break;
		w = i;
		while (i < len && !is_space(text[i]))
			i++;
		end = i;
		if (words == 0)
			start = w;
		words++;
		gap = i;
		while (gap < len && is_space(text[gap]))
			gap++;
		if (words == max || ends_sentence(text + w, end - w) ||
		    blank_line(text + end, gap - end) || gap == len) {
			if (push(u, start, end, words) != AF_OK)
				return AF_ENOMEM;
			words = 0;
		}
		i = gap;
	}
	return AF_OK;
}

static af_err emit(af_span **out, size_t *n, size_t *cap, const unit *first,
		   const unit *last)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		af_span *v = realloc(*out, c * sizeof(*v));

		if (v == NULL)
			return AF_ENOMEM;
		*out = v;
		*cap = c;
	}
	(*out)[(*n)++] = (af_span){
		.off = first->off,
		.len = last->off + last->len - first->off,
	};
	return AF_OK;
}

af_err af__split(const char *text, size_t len, int chunk_size,
		 int chunk_overlap, af_span **out, size_t *n)
{
	units u = {0};
	af_span *spans = NULL;
	size_t count = 0, cap = 0;
	size_t first = 0, next = 0, words = 0;
	size_t start, ov;
	size_t size, overlap;
	af_err err;

	*out = NULL;
	*n = 0;
	if (chunk_size < 1 || chunk_overlap < 0 || chunk_overlap >= chunk_size)
		return AF_EINVAL;
	size = (size_t)chunk_size;
	overlap = (size_t)chunk_overlap;
	err = find_units(text, len, size, &u);
	if (err != AF_OK)
		goto free_units;
	/* Chunk [first, next) holds words words; it grows while the next
	 * unit fits, then is emitted and the next one starts with its tail. */
	while (next < u.n) {
		if (words + u.v[next].words <= size) {
			words += u.v[next++].words;
			continue;
		}
		err = emit(&spans, &count, &cap, &u.v[first], &u.v[next - 1]);
		if (err != AF_OK)
			goto free_spans;
		/* The overlap: whole units from the end of that chunk, never
		 * its first, so the next chunk starts further on. */
		start = next;
		ov = 0;
		while (start - 1 > first &&
		       ov + u.v[start - 1].words <= overlap)
			ov += u.v[--start].words;
		/* Then room for the unit that did not fit. */
		while (start < next && ov + u.v[next].words > size)
			ov -= u.v[start++].words;
		first = start;
		words = ov;
	}
	if (next > first) {
		err = emit(&spans, &count, &cap, &u.v[first], &u.v[next - 1]);
		if (err != AF_OK)
			goto free_spans;
	}
	free(u.v);
	*out = spans;
	*n = count;
	return AF_OK;
free_spans:
	free(spans);
free_units:
	free(u.v);
	return err;
}
