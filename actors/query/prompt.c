/*
 * Prompt templates and context packing (see prompt.h).
 *
 * The templates are our own wording of the usual retrieval prompt shape:
 * instructions, the context between two separator lines, then the
 * question after "Query:" and an answer marker. That shape is also what
 * the extractive provider reads (actors/chat/extractive.c): it takes the
 * question from the "Query:" line, the context from between the fences
 * and, in a refine prompt, the answer so far from the "Existing answer:"
 * line, and ignores the instructions. So the instruction lines hold no
 * colon, which could make them read as a label.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

#define SEPARATOR "--------------------"

const char af__prompt_qa[] =
	"Below is context retrieved for a question.\n" SEPARATOR "\n"
	"{context_str}\n" SEPARATOR "\n"
	"Using only the context above, and no outside knowledge, answer the "
	"query. If the context does not hold the answer, say so.\n"
	"Query: {query_str}\n"
	"Answer: ";

const char af__prompt_refine[] =
	"Query: {query_str}\n"
	"Existing answer: {existing_answer}\n"
	"Below is more context, which may improve the existing "
	"answer.\n" SEPARATOR "\n"
	"{context_str}\n" SEPARATOR "\n"
	"Improve the existing answer with the new context where it helps. "
	"Where it does not, repeat the existing answer as it is.\n"
	"Refined answer: ";

const char af__prompt_summary[] =
	"Below is context from several sources.\n" SEPARATOR "\n"
	"{context_str}\n" SEPARATOR "\n"
	"Using only the information from these sources, and no outside "
	"knowledge, answer the query.\n"
	"Query: {query_str}\n"
	"Answer: ";

#define CONTEXT "{context_str}"
#define QUERY "{query_str}"
#define EXISTING "{existing_answer}"

af_err af__prompt_check(const char *tmpl, bool refine)
{
	if (tmpl == NULL || strstr(tmpl, QUERY) == NULL ||
	    strstr(tmpl, CONTEXT) == NULL)
		return AF_EINVAL;
	if (refine && strstr(tmpl, EXISTING) == NULL)
		return AF_EINVAL;
	return AF_OK;
}

/* A growing string. */
typedef struct strbuf {
	char *s;
	size_t len;
	size_t cap;
	bool failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *grown;
		while (cap < b->len + n + 1)
			cap *= 2;
		grown = realloc(b->s, cap);
		if (grown == NULL) {
			b->failed = true;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* The string built, owned by the caller; NULL (and nothing held) when
 * memory ran out. */
static char *sb_take(strbuf *b)
{
	if (b->failed || b->s == NULL) {
		free(b->s);
		*b = (strbuf){0};
		return NULL;
	}
	return b->s;
}

char *af__prompt_fill(const char *tmpl, const char *context, const char *query,
		      const char *existing)
{
	static const char *const names[] = {CONTEXT, QUERY, EXISTING};
	const char *values[] = {context, query, existing};
	strbuf b = {0};
	const char *p = tmpl;

	sb_add(&b, "", 0);
	while (*p != '\0') {
		const char *brace = strchr(p, '{');
		size_t i;
		if (brace == NULL) {
			sb_add(&b, p, strlen(p));
			break;
		}
		sb_add(&b, p, (size_t)(brace - p));
		for (i = 0; i < 3; i++)
			if (strncmp(brace, names[i], strlen(names[i])) == 0)
				break;
		if (i == 3) {
			sb_add(&b, "{", 1);
			p = brace + 1;
			continue;
		}
		if (values[i] != NULL)
			sb_add(&b, values[i], strlen(values[i]));
		p = brace + strlen(names[i]);
	}
	return sb_take(&b);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

size_t af__prompt_words(const char *s, size_t len)
{
	size_t n = 0;
	bool in_word = false;

	for (size_t i = 0; i < len; i++) {
		if (!is_space(s[i]) && !in_word)
			n++;
		in_word = !is_space(s[i]);
	}
	return n;
}

/* The packing under way: the contexts made and the one being filled. */
typedef struct packer {
	af__packs *out;
	size_t cap;
	strbuf cur;
	size_t cur_words;
	bool failed;
} packer;

static void pack_flush(packer *k)
{
	char *text;

	if (k->failed || k->cur_words == 0)
		return;
	if (k->out->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 8;
		char **grown = realloc(k->out->text, cap * sizeof(*grown));
		if (grown == NULL) {
			k->failed = true;
			return;
		}
		k->out->text = grown;
		k->cap = cap;
	}
	text = sb_take(&k->cur);
	if (text == NULL) {
		k->failed = true;
		return;
	}
	k->out->text[k->out->n++] = text;
	k->cur = (strbuf){0};
	k->cur_words = 0;
}

static void pack_piece(packer *k, const char *s, size_t len, size_t words,
		       size_t budget, bool one_each)
{
	if (words == 0)
		return;
	if (one_each || k->cur_words + words > budget)
		pack_flush(k);
	if (k->cur_words > 0)
		sb_add(&k->cur, "\n\n", 2);
	sb_add(&k->cur, s, len);
	k->cur_words += words;
	if (k->cur.failed)
		k->failed = true;
}

/* Adds one text, in pieces of at most budget words when it is longer. */
static void pack_text(packer *k, const char *s, size_t len, size_t budget,
		      bool one_each)
{
	size_t words = af__prompt_words(s, len);
	size_t at = 0;

	if (words <= budget) {
		pack_piece(k, s, len, words, budget, one_each);
		return;
	}
	while (at < len && !k->failed) {
		size_t start;
		size_t end;
		size_t n = 0;
		while (at < len && is_space(s[at]))
			at++;
		if (at == len)
			break;
		start = at;
		for (;;) {
			while (at < len && !is_space(s[at]))
				at++;
			end = at;
			if (++n == budget)
				break;
			while (at < len && is_space(s[at]))
				at++;
			if (at == len)
				break;
		}
		pack_piece(k, s + start, end - start, n, budget, one_each);
	}
}

af_err af__prompt_pack(const char *const *text, const size_t *len, size_t n,
		       size_t budget, bool one_each, af__packs *out)
{
	packer k = {.out = out};

	if (budget == 0)
		budget = 1;
	for (size_t i = 0; i < n && !k.failed; i++)
		pack_text(&k, text[i], len[i], budget, one_each);
	pack_flush(&k);
	if (k.failed) {
		free(k.cur.s);
		af__packs_free(out);
		return AF_ENOMEM;
	}
	return AF_OK;
}

void af__packs_free(af__packs *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->text[i]);
	free(p->text);
	p->text = NULL;
	p->n = 0;
}
