/*
 * Prompt templates, and the packing of retrieved text into contexts that
 * fit a budget of words. Plain functions over strings: no actor state,
 * safe on any thread.
 */
#ifndef AF_QUERY_PROMPT_H
#define AF_QUERY_PROMPT_H

#include <actorflow/err.h>
#include <stdbool.h>
#include <stddef.h>

/* The built-in templates, written for a model and for the extractive
 * provider alike: the context fenced between separator lines, the
 * question after "Query:", and "Answer:" to close. */
extern const char af__prompt_qa[];
extern const char af__prompt_refine[];
extern const char af__prompt_summary[];

/* Checks a template: AF_OK, or AF_EINVAL when it lacks {query_str} or
 * {context_str}, or (refine) {existing_answer}. */
af_err af__prompt_check(const char *tmpl, bool refine);

/* Returns tmpl with every {context_str}, {query_str} and
 * {existing_answer} replaced by context, query and existing (NULL: "");
 * the texts go in as they are and are not searched for placeholders in
 * turn; other braces stay. Caller frees the result; NULL when memory ran
 * out. */
char *af__prompt_fill(const char *tmpl, const char *context, const char *query,
		      const char *existing);

/* Words in len bytes at s: runs of bytes other than ASCII white space. */
size_t af__prompt_words(const char *s, size_t len);

/* Contexts made of retrieved texts, each at most budget words. */
typedef struct af__packs {
	char **text; /* NUL-terminated, owned */
	size_t n;
} af__packs;

/* Packs the n texts (text[i] of len[i] bytes) into *out in order: each
 * context holds as many whole texts as fit budget words, joined by blank
 * lines (one text each when one_each); a text longer than budget is cut
 * at word boundaries into pieces that fit. No texts make no contexts.
 * *out must be empty ({0}); it is left empty on failure. AF_OK or
 * AF_ENOMEM. */
af_err af__prompt_pack(const char *const *text, const size_t *len, size_t n,
		       size_t budget, bool one_each, af__packs *out);

/* Frees the contexts and empties *p. */
void af__packs_free(af__packs *p);

#endif
