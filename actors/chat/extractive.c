/*
 * The extractive answerer. See extractive.h.
 *
 * This is not a language model and never pretends to be one: it writes no
 * words of its own except the two fixed replies below. It answers by
 * quoting the sentences of the prompt's context that share the most
 * (weighted) words with the question, in the order they appear. The rules:
 *
 * The question is taken from the last message whose role is "user":
 *  - If a line of it starts with a question marker, the question is the
 *    text after the last such marker, up to the next blank line, separator
 *    line or answer marker (or, when nothing follows the marker on its own
 *    line, the paragraph after it). A marker is a label of at most six
 *    words and a colon at the start of a line, one word of which is
 *    "question" or "query" ("Question:", "Query:", "The original query is
 *    as follows:"), or a lone "Q:"; case does not matter, and Markdown
 *    decoration ("**Question:**", "# Query:") is allowed.
 *  - Otherwise, if the message has several paragraphs (split by blank
 *    lines), the question is its last paragraph; if it has one paragraph
 *    of several lines, the last line ("Tom is a cat.\nWho is Tom?").
 *  - Otherwise it is the whole message.
 * Lines that only hold an answer marker ("Answer:", "Refined Answer:",
 * the same kind of label as a question marker, with "answer" or a lone
 * "A") are prompt scaffolding and never part of the question.
 *
 * The context is everything else, in message order: system messages,
 * earlier and later messages of any role, and the rest of the last user
 * message. Two exceptions: an assistant message that is one of this
 * answerer's own fixed replies is not context, and when the rest of the
 * last user message fences text between separator lines (lines of three
 * or more of - = _ * ~ # + or box-drawing dashes, as in LlamaIndex's
 * "Context information is below.\n-----\n<chunks>\n-----\nGiven the
 * context information ..." template), the context is only the fenced
 * text and the text after an answer marker in that message (a refine
 * prompt's existing answer): the lines around the fences are the
 * template's instructions, and the other messages (a system prompt of
 * rules, the chat so far) are not what the template asks about.
 *
 * The context is cut into sentences. A sentence ends at . ! or ? (with any
 * closing quotes or brackets) followed by white space or a line end, at
 * the CJK full stops 。！？, at a blank or separator line, and at a line
 * break unless the next line starts with a lowercase ASCII letter (then it
 * is taken for hard-wrapped prose). A period does not end a sentence after
 * a word holding a period ("e.g.", "U.S."), a single letter (initials),
 * a common abbreviation ("Dr.", "vs.", "approx."), a number that starts
 * the sentence (a list item "1."), or before a lowercase word; "3.5" never
 * splits, as no space follows its point. Marker labels and list bullets
 * are cut off the start of a line, and metadata lines ("file_path: ...",
 * a snake_case key and a colon), Markdown headings ("## Setup") and
 * separator lines are not sentences. A sentence that ends with a question
 * mark asks rather than answers: it is never chosen, nor counted as a
 * document.
 *
 * Words are runs of ASCII letters and digits and of non-ASCII UTF-8
 * characters other than punctuation and spaces (a number keeps its points:
 * "3.5"); each Han or kana character is a word of its own, as those
 * scripts put no spaces between words. Words are lowercased (ASCII only:
 * no locale is consulted) and cut at 64 bytes; single ASCII letters and a
 * built-in list of English stopwords are dropped. A light stemmer folds
 * inflections of words of three or more bytes: plurals (-sses to -ss, -ies
 * to -y, -s except after s, u or i), then -ing and -ed (-ied to -y; not
 * -eed) when a stem of two or more bytes with a vowel is left, undoubling
 * a final double consonant other than l, s or z, then a final silent e
 * ("cats" -> cat, "boxes" -> box, "running" -> run, "used" and "uses" ->
 * us, "stopped" -> stop, "created" and "create" -> creat).
 *
 * Every sentence is scored against the question's distinct words with
 * BM25, the sentences being the documents: k1 = 1.2, b = 0.75 and idf =
 * ln(1 + (N - df + 0.5) / (df + 0.5)). The best max_sentences sentences
 * with a positive score are chosen, best first, ties going to the earlier
 * sentence; one scoring under 30% of the best is dropped, and so is a
 * sentence whose text repeats one already chosen (overlapping chunks;
 * texts are compared by a 64-bit hash of what the answer would show).
 * The chosen sentences are returned in document order, joined by single
 * spaces, with each run of white space or control characters turned into
 * one space and each byte that is not valid UTF-8 into U+FFFD, so the
 * answer is valid UTF-8 with no NUL inside.
 *
 * When the context has no sentence with a word in it, the answer is the
 * fixed NO_CONTEXT below ("I can only answer from context given in the
 * prompt, and there is none: ..."); when no sentence scores above zero,
 * the fixed NO_ANSWER ("The context given does not answer the question.").
 *
 * The cost is linear in the input plus a sort of the sentences that score:
 * the question's words sit in an open-addressing hash table, and a context
 * word is only looked up there, never stored.
 */
#include "extractive.h"
#include "utf8.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NO_CONTEXT                                                             \
	"I can only answer from context given in the prompt, and there is "    \
	"none: I am an extractive answerer, not a language model."
#define NO_ANSWER "The context given does not answer the question."

#define TERM_MAX 64
#define BM25_K1 1.2
#define BM25_B 0.75
#define KEEP_RATIO 0.3
#define LABEL_WORDS 6

/* A word of the question. */
struct term {
	size_t off; /* in answerer.bytes */
	size_t len;
	uint64_t hash;
	size_t df;      /* context sentences holding it */
	size_t df_mark; /* the last sentence counted in df, plus one */
	size_t tf;
	size_t tf_mark; /* the sentence tf counts for, plus one; 0: added */
	double idf;
};

/* A context sentence that holds at least one word and asks nothing. */
struct sentence {
	const char *p;
	size_t len;
	size_t dl;    /* its words */
	size_t hit0;  /* its question words, in answerer.hits */
	size_t nhits; /* these may repeat */
	double score;
};

typedef struct answerer {
	char *bytes; /* the question's words, back to back */
	size_t bytes_len;
	size_t bytes_cap;
	struct term *terms;
	size_t nterms;
	size_t terms_cap;
	size_t *slots; /* a term's index plus one; 0: empty */
	size_t nslots; /* a power of two, or 0 */
	struct sentence *sents;
	size_t nsents;
	size_t sents_cap;
	size_t *hits;
	size_t nhits;
	size_t hits_cap;
	size_t total_dl;
	size_t seen; /* sentences with a word, asking ones included */
	bool nomem;  /* sticky: an allocation failed */
} answerer;

/* What a line of a message is to the answerer. */
enum line_kind {
	LINE_BLANK,
	LINE_SEPARATOR,
	LINE_META, /* metadata or a heading: a label, not a sentence */
	LINE_QUESTION,
	LINE_ANSWER,
	LINE_TEXT
};

struct line {
	const char *p; /* first byte */
	const char *e; /* its '\n' or the end of the content */
	/* After a marker, where its text starts; else the first non-space. */
	const char *rest;
	enum line_kind kind;
};

/* The sentence being read, open until a boundary closes it. */
struct splitter {
	answerer *a;
	const char *open; /* NULL: none */
	const char *end;  /* the end of the text read into it so far */
};

/* Sorted in byte order for bsearch. */
static const char *const stopwords[] = {
	"a",       "about",   "above",      "after",    "again",
	"against", "all",     "also",       "am",       "an",
	"and",     "any",     "are",        "aren",     "as",
	"at",      "be",      "because",    "been",     "before",
	"being",   "below",   "between",    "both",     "but",
	"by",      "can",     "cannot",     "could",    "couldn",
	"did",     "didn",    "do",         "does",     "doesn",
	"doing",   "don",     "down",       "during",   "each",
	"either",  "else",    "etc",        "ever",     "few",
	"for",     "from",    "further",    "had",      "hadn",
	"has",     "hasn",    "have",       "haven",    "having",
	"he",      "her",     "here",       "hers",     "herself",
	"him",     "himself", "his",        "how",      "however",
	"if",      "in",      "into",       "is",       "isn",
	"it",      "its",     "itself",     "just",     "least",
	"let",     "ll",      "many",       "may",      "me",
	"might",   "more",    "most",       "much",     "must",
	"mustn",   "my",      "myself",     "neither",  "no",
	"nor",     "not",     "now",        "of",       "off",
	"often",   "on",      "once",       "only",     "or",
	"other",   "ought",   "our",        "ours",     "ourselves",
	"out",     "over",    "own",        "please",   "rather",
	"re",      "same",    "shall",      "shan",     "she",
	"should",  "shouldn", "since",      "so",       "some",
	"such",    "than",    "that",       "the",      "their",
	"theirs",  "them",    "themselves", "then",     "there",
	"these",   "they",    "this",       "those",    "though",
	"through", "thus",    "to",         "too",      "under",
	"until",   "up",      "upon",       "us",       "ve",
	"very",    "was",     "wasn",       "we",       "were",
	"weren",   "what",    "whatever",   "when",     "where",
	"whether", "which",   "while",      "who",      "whom",
	"whose",   "why",     "will",       "with",     "within",
	"without", "won",     "would",      "wouldn",   "yet",
	"you",     "your",    "yours",      "yourself", "yourselves",
};

/* Abbreviations a period may follow inside a sentence. */
static const char *const abbreviations[] = {
	"al", "approx", "cf", "co",  "dept", "dr",   "est", "fig", "inc",
	"jr", "ltd",    "mr", "mrs", "ms",   "prof", "sr",  "st",  "vs",
};

/* ---- bytes and characters ----------------------------------------------- */

static bool is_space(char c)
{
	unsigned char u = (unsigned char)c;

	return u <= 0x20 || u == 0x7f;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(char c)
{
	return is_lower(c) || (c >= 'A' && c <= 'Z');
}

/* Whether c is one of the bytes of set; NUL never is. */
static bool in_set(char c, const char *set)
{
	return c != '\0' && strchr(set, c) != NULL;
}

static char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

enum char_class { CH_SPACE, CH_PUNCT, CH_WORD, CH_IDEOGRAPH };

/* A rough class for a code point, enough to find words without tables:
 * the Latin-1 symbols, general punctuation, arrows, math and box drawing,
 * CJK punctuation and emoji are not letters. */
static enum char_class char_class(uint32_t c)
{
	if (c < 0x80) {
		if (is_space((char)c))
			return CH_SPACE;
		if (is_alpha((char)c) || is_digit((char)c))
			return CH_WORD;
		return CH_PUNCT;
	}
	if (c <= 0xa0 || (c >= 0x2000 && c <= 0x200b) || c == 0x2028 ||
	    c == 0x2029 || c == 0x3000 || c == 0xfeff)
		return CH_SPACE;
	if (c <= 0xbf || c == 0xd7 || c == 0xf7 ||
	    (c >= 0x200c && c <= 0x206f) || (c >= 0x2190 && c <= 0x2bff) ||
	    (c >= 0x3001 && c <= 0x303f) || (c >= 0xff01 && c <= 0xff0f) ||
	    (c >= 0xff1a && c <= 0xff20) || (c >= 0x1f000 && c <= 0x1faff))
		return CH_PUNCT;
	if ((c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) ||
	    (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff))
		return CH_IDEOGRAPH;
	return CH_WORD;
}

static const char *skip_space(const char *p, const char *e)
{
	while (p < e && is_space(*p))
		p++;
	return p;
}

static const char *trim_end(const char *p, const char *e)
{
	while (e > p && is_space(e[-1]))
		e--;
	return e;
}

static bool word_eq(const char *p, size_t n, const char *word)
{
	size_t len = strlen(word);

	if (n != len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (to_lower(p[i]) != word[i])
			return false;
	return true;
}

static int compare_word(const void *key, const void *elem)
{
	const char *const *k = key;
	const char *w = *(const char *const *)elem;
	size_t klen = strlen(*k), wlen = strlen(w);
	int c = memcmp(*k, w, klen < wlen ? klen : wlen);

	if (c != 0)
		return c;
	return klen < wlen ? -1 : klen > wlen;
}

/* Whether the lowercase word w[0..n) is in the sorted list. */
static bool in_list(const char *w, size_t n, const char *const *list,
		    size_t count)
{
	char buf[TERM_MAX + 1];
	const char *key = buf;

	if (n > TERM_MAX)
		return false;
	memcpy(buf, w, n);
	buf[n] = '\0';
	return bsearch(&key, list, count, sizeof(*list), compare_word) != NULL;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *u = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ u[i]) * 0x100000001b3ull;
	return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

/* ---- memory ------------------------------------------------------------- */

/* The array p of *cap elements of size bytes, grown (doubling) to hold
 * need; NULL, with a->nomem set and p untouched, when memory runs out. */
static void *grow(answerer *a, void *p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *q;

	if (a->nomem)
		return NULL;
	if (need <= *cap)
		return p;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			goto nomem;
		n *= 2;
	}
	if (n > SIZE_MAX / size)
		goto nomem;
	q = realloc(p, n * size);
	if (q == NULL)
		goto nomem;
	*cap = n;
	return q;
nomem:
	a->nomem = true;
	return NULL;
}

static void answerer_fini(answerer *a)
{
	free(a->bytes);
	free(a->terms);
	free(a->slots);
	free(a->sents);
	free(a->hits);
}

/* ---- words -------------------------------------------------------------- */

/* Reads the next word of [*pos, end) into buf, lowercased and cut at
 * TERM_MAX bytes on a character boundary, and moves *pos past it. Returns
 * its length, 0 when no word is left. */
static size_t next_word(const char **pos, const char *end, char *buf)
{
	const char *p = *pos;
	size_t n = 0, len = 0;
	bool full = false, digit = false;
	enum char_class cls;
	uint32_t cp = 0;

	while (p < end) {
		len = af__utf8_char(p, (size_t)(end - p), &cp);
		if (len == 0) {
			p++;
			continue;
		}
		cls = char_class(cp);
		if (cls == CH_IDEOGRAPH) {
			memcpy(buf, p, len);
			*pos = p + len;
			return len;
		}
		if (cls == CH_WORD)
			break;
		p += len;
	}
	while (p < end) {
		len = af__utf8_char(p, (size_t)(end - p), &cp);
		if (len == 0)
			break;
		if (char_class(cp) != CH_WORD) {
			/* A number keeps its decimal point and drops its
			 * thousands separators: "3.5", "1,000". */
			if ((cp == '.' || cp == ',') && digit && end - p > 1 &&
			    is_digit(p[1])) {
				if (cp == '.' && !full && n < TERM_MAX)
					buf[n++] = '.';
				p++;
				continue;
			}
			break;
		}
		if (!full && n + len <= TERM_MAX) {
			for (size_t i = 0; i < len; i++)
				buf[n++] = to_lower(p[i]);
		} else {
			full = true;
		}
		digit = is_digit((char)cp);
		p += len;
	}
	*pos = p;
	return n;
}

static bool ends_with(const char *w, size_t n, const char *suffix)
{
	size_t len = strlen(suffix);

	return n >= len && memcmp(w + n - len, suffix, len) == 0;
}

/* Any byte past ASCII counts as a vowel: an accented letter likely is. */
static bool has_vowel(const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in_set(w[i], "aeiouy") || (unsigned char)w[i] >= 0x80)
			return true;
	return false;
}

/* The light stemmer described at the top; rewrites w and returns its new
 * length. */
static size_t stem(char *w, size_t n)
{
	bool cut = false;

	if (n < 3)
		return n;
	if (n >= 4) {
		if (ends_with(w, n, "sses")) {
			n -= 2;
		} else if (ends_with(w, n, "ies") && n > 4) {
			n -= 2;
			w[n - 1] = 'y';
		} else if (w[n - 1] == 's' && !in_set(w[n - 2], "sui")) {
			n--;
		}
	}
	if (ends_with(w, n, "ing") && n >= 5 && has_vowel(w, n - 3)) {
		n -= 3;
		cut = true;
	} else if (ends_with(w, n, "ied") && n > 4) {
		n -= 2;
		w[n - 1] = 'y';
	} else if (ends_with(w, n, "ed") && !ends_with(w, n, "eed") && n >= 4 &&
		   has_vowel(w, n - 2)) {
		n -= 2;
		cut = true;
	}
	/* ASCII only: two equal bytes past ASCII end a character. */
	if (cut && n >= 4 && w[n - 1] == w[n - 2] && is_lower(w[n - 1]) &&
	    !in_set(w[n - 1], "aeiouylsz"))
		n--;
	if (n >= 3 && w[n - 1] == 'e' && w[n - 2] != 'e')
		n--;
	return n;
}

/* The next word of [*pos, end) that counts as a term: not a stopword nor
 * a single ASCII letter, stemmed. Returns its length, 0 at the end. */
static size_t next_term(const char **pos, const char *end, char *buf)
{
	size_t n;

	while ((n = next_word(pos, end, buf)) != 0) {
		if (n == 1 && is_alpha(buf[0]))
			continue;
		if (in_list(buf, n, stopwords,
			    sizeof(stopwords) / sizeof(stopwords[0])))
			continue;
		return stem(buf, n);
	}
	return 0;
}

/* ---- the question's terms ----------------------------------------------- */

/* The index of the term w[0..n), or SIZE_MAX. */
static size_t term_find(const answerer *a, const char *w, size_t n, uint64_t h)
{
	size_t mask = a->nslots - 1;

	if (a->nslots == 0)
		return SIZE_MAX;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		size_t slot = a->slots[i];
		const struct term *t;

		if (slot == 0)
			return SIZE_MAX;
		t = &a->terms[slot - 1];
		if (t->hash == h && t->len == n &&
		    memcmp(a->bytes + t->off, w, n) == 0)
			return slot - 1;
	}
}

static void slot_put(size_t *slots, size_t nslots, uint64_t h, size_t index)
{
	size_t mask = nslots - 1, i = h & mask;

	while (slots[i] != 0)
		i = (i + 1) & mask;
	slots[i] = index + 1;
}

/* Keeps the table at most half full, so probes stay short. */
static bool slots_grow(answerer *a)
{
	size_t n = a->nslots ? a->nslots * 2 : 64;
	size_t *slots;

	if (n > SIZE_MAX / sizeof(*slots)) {
		a->nomem = true;
		return false;
	}
	slots = calloc(n, sizeof(*slots));
	if (slots == NULL) {
		a->nomem = true;
		return false;
	}
	for (size_t i = 0; i < a->nterms; i++)
		slot_put(slots, n, a->terms[i].hash, i);
	free(a->slots);
	a->slots = slots;
	a->nslots = n;
	return true;
}

static bool term_add(answerer *a, const char *w, size_t n)
{
	uint64_t h = hash_bytes(HASH_SEED, w, n);
	struct term *t, *terms;
	char *bytes;

	if (term_find(a, w, n, h) != SIZE_MAX)
		return true;
	if ((a->nterms + 1) * 2 > a->nslots && !slots_grow(a))
		return false;
	terms = grow(a, a->terms, &a->terms_cap, a->nterms + 1, sizeof(*terms));
	if (terms == NULL)
		return false;
	a->terms = terms;
	bytes = grow(a, a->bytes, &a->bytes_cap, a->bytes_len + n, 1);
	if (bytes == NULL)
		return false;
	a->bytes = bytes;
	memcpy(a->bytes + a->bytes_len, w, n);
	t = &a->terms[a->nterms];
	memset(t, 0, sizeof(*t));
	t->off = a->bytes_len;
	t->len = n;
	t->hash = h;
	a->bytes_len += n;
	slot_put(a->slots, a->nslots, h, a->nterms);
	a->nterms++;
	return true;
}

static bool add_question(answerer *a, const char *p, const char *e)
{
	char buf[TERM_MAX];
	size_t n;

	while ((n = next_term(&p, e, buf)) != 0)
		if (!term_add(a, buf, n))
			return false;
	return true;
}

/* ---- lines -------------------------------------------------------------- */

/* A line of three or more of - = _ * ~ # + or of the box-drawing and
 * dash characters, and nothing else but spaces. */
static bool is_separator(const char *p, const char *e)
{
	size_t marks = 0, len;
	uint32_t cp;

	for (; p < e; p += len) {
		len = af__utf8_char(p, (size_t)(e - p), &cp);
		if (len == 0)
			return false;
		if (cp < 0x80 && is_space((char)cp))
			continue;
		if ((cp < 0x80 && in_set((char)cp, "-=_*~#+")) ||
		    cp == 0x2013 || cp == 0x2014 ||
		    (cp >= 0x2500 && cp <= 0x257f))
			marks++;
		else
			return false;
	}
	return marks >= 3;
}

/* "file_path: ...": a snake_case key, as LlamaIndex prints metadata. */
static bool is_metadata(const char *p, const char *e)
{
	bool underscore = false;

	for (; p < e && (is_alpha(*p) || is_digit(*p) || *p == '_'); p++)
		if (*p == '_')
			underscore = true;
	return underscore && p < e && *p == ':';
}

/* Whether [p, e) (its first non-space at p) starts with a question or
 * answer label; if so *rest is the text after it. */
static enum line_kind label(const char *p, const char *e, const char **rest)
{
	bool question = false, answer = false;
	size_t words = 0;
	const char *w;

	while (p < e &&
	       (*p == '*' || *p == '#' || *p == '>' || *p == ' ' || *p == '\t'))
		p++;
	while (p < e && words < LABEL_WORDS) {
		size_t n;

		for (w = p; p < e && is_alpha(*p); p++)
			;
		if (p == w)
			break;
		n = (size_t)(p - w);
		words++;
		if (word_eq(w, n, "question") || word_eq(w, n, "query"))
			question = true;
		if (word_eq(w, n, "answer"))
			answer = true;
		/* "Q:" and "A:" only as the whole label. */
		if (words == 1 && p < e && *p == ':') {
			if (word_eq(w, n, "q"))
				question = true;
			if (word_eq(w, n, "a"))
				answer = true;
		}
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
	}
	while (p < e && *p == '*')
		p++;
	if (words == 0 || p == e || *p != ':' || !(question || answer))
		return LINE_TEXT;
	p++;
	while (p < e && (*p == '*' || is_space(*p)))
		p++;
	*rest = p;
	return question ? LINE_QUESTION : LINE_ANSWER;
}

/* Classifies the line [p, e) (e at its '\n' or the end) and sets rest to
 * where its text starts. */
static enum line_kind line_kind(const char *p, const char *e, const char **rest)
{
	const char *s = skip_space(p, e), *h;
	enum line_kind kind;

	*rest = s;
	if (s == e)
		return LINE_BLANK;
	if (is_separator(s, e))
		return LINE_SEPARATOR;
	if (is_metadata(s, e))
		return LINE_META;
	kind = label(s, e, rest);
	if (kind == LINE_TEXT && *s == '#') {
		/* A Markdown heading names a section; it says nothing. */
		for (h = s; h < e && *h == '#'; h++)
			;
		if (h < e && is_space(*h))
			return LINE_META;
	}
	return kind;
}

/* ---- sentences ---------------------------------------------------------- */

/* Adds the sentence [p, e) as a document: counts its words and notes the
 * question's among them. */
static void add_sentence(answerer *a, const char *p, const char *e)
{
	char buf[TERM_MAX];
	const char *end, *q;
	size_t n, dl = 0, hit0 = a->nhits, *hits;
	struct sentence *sents;
	bool asks;

	/* List bullets and heading marks are not part of what a sentence
	 * says. */
	for (;;) {
		const char *b = p;

		while (b < e && in_set(*b, "-*+>#"))
			b++;
		if (b == p && e - p >= 3 && memcmp(p, "\xe2\x80\xa2", 3) == 0)
			b = p + 3;
		if (b == p || b == e || !is_space(*b))
			break;
		p = skip_space(b, e);
	}
	e = trim_end(p, e);
	if (p == e)
		return;
	for (end = e; end > p && in_set(end[-1], "\"')]"); end--)
		;
	asks = (end > p && end[-1] == '?') ||
	       (end - p >= 3 && memcmp(end - 3, "\xef\xbc\x9f", 3) == 0);

	q = p;
	while ((n = next_term(&q, e, buf)) != 0) {
		size_t t = term_find(a, buf, n, hash_bytes(HASH_SEED, buf, n));

		dl++;
		if (t == SIZE_MAX || asks)
			continue;
		hits = grow(a, a->hits, &a->hits_cap, a->nhits + 1,
			    sizeof(*hits));
		if (hits == NULL)
			return;
		a->hits = hits;
		a->hits[a->nhits++] = t;
	}
	if (dl == 0)
		return;
	a->seen++;
	if (asks)
		return;
	sents = grow(a, a->sents, &a->sents_cap, a->nsents + 1, sizeof(*sents));
	if (sents == NULL)
		return;
	a->sents = sents;
	a->sents[a->nsents] = (struct sentence){
		.p = p,
		.len = (size_t)(e - p),
		.dl = dl,
		.hit0 = hit0,
		.nhits = a->nhits - hit0,
	};
	a->nsents++;
	a->total_dl += dl;
	for (size_t i = hit0; i < a->nhits; i++) {
		struct term *t = &a->terms[a->hits[i]];

		if (t->df_mark != a->nsents) {
			t->df_mark = a->nsents;
			t->df++;
		}
	}
}

static void flush(struct splitter *sp)
{
	if (sp->open != NULL)
		add_sentence(sp->a, sp->open, sp->end);
	sp->open = NULL;
}

/* Whether the period at dot, in the sentence that starts at open, ends
 * it; after is the first byte past the period and its closers. */
static bool period_ends(const char *open, const char *dot, const char *after,
			const char *eol)
{
	const char *w = dot, *next;
	size_t n;
	bool digits = true, inner_dot = false;

	while (w > open && !is_space(w[-1]))
		w--;
	while (w < dot && in_set(*w, "(\"'["))
		w++;
	n = (size_t)(dot - w);
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(w[i]))
			digits = false;
		if (w[i] == '.')
			inner_dot = true;
	}
	if (n == 0 || after - dot > 1)
		return true; /* "...", or a period after a closer */
	if (inner_dot || (n == 1 && is_alpha(w[0])))
		return false;
	if (digits && w == open)
		return false;
	if (n <= 6) {
		char buf[8];

		for (size_t i = 0; i < n; i++)
			buf[i] = to_lower(w[i]);
		if (in_list(buf, n, abbreviations,
			    sizeof(abbreviations) / sizeof(abbreviations[0])))
			return false;
	}
	next = skip_space(after, eol);
	return !(next < eol && is_lower(*next));
}

/* Reads the text [s, eol) of one line into the sentences; new says the
 * line starts a sentence whatever the one before it looks like. */
static void split_line(struct splitter *sp, const char *s, const char *eol,
		       bool new)
{
	const char *q = s;

	if (sp->open != NULL && (new || s == eol || !is_lower(*s)))
		flush(sp);
	while (q < eol) {
		const char *after;

		if (sp->open == NULL) {
			q = skip_space(q, eol);
			if (q == eol)
				break;
			sp->open = q;
		}
		if (*q == '.' || *q == '!' || *q == '?') {
			after = q + 1;
			while (after < eol && in_set(*after, ".!?\"')]"))
				after++;
			while (eol - after >= 3 &&
			       (memcmp(after, "\xe2\x80\x99", 3) == 0 ||
				memcmp(after, "\xe2\x80\x9d", 3) == 0))
				after += 3;
			if ((after == eol || is_space(*after)) &&
			    (*q != '.' ||
			     period_ends(sp->open, q, after, eol))) {
				sp->end = after;
				flush(sp);
			}
			q = after;
			continue;
		}
		if (eol - q >= 3 && (memcmp(q, "\xe3\x80\x82", 3) == 0 ||
				     memcmp(q, "\xef\xbc\x81", 3) == 0 ||
				     memcmp(q, "\xef\xbc\x9f", 3) == 0)) {
			sp->end = q + 3;
			flush(sp);
			q += 3;
			continue;
		}
		q++;
	}
	sp->end = eol;
}

/* Reads one line of context into the sentences. */
static void split_context_line(struct splitter *sp, const struct line *l)
{
	switch (l->kind) {
	case LINE_BLANK:
	case LINE_SEPARATOR:
	case LINE_META:
		flush(sp);
		break;
	case LINE_QUESTION:
	case LINE_ANSWER:
		split_line(sp, l->rest, l->e, true);
		break;
	case LINE_TEXT:
		split_line(sp, l->rest, l->e, false);
		break;
	}
}

static const char *line_end(const char *p, const char *e)
{
	const char *nl = memchr(p, '\n', (size_t)(e - p));

	return nl != NULL ? nl : e;
}

/* Reads a whole message's content as context. */
static void split_message(answerer *a, const char *p, size_t len)
{
	struct splitter sp = {.a = a};
	const char *e;
	struct line l;

	if (len == 0)
		return;
	e = p + len;
	for (l.p = p;; l.p = l.e + 1) {
		l.e = line_end(l.p, e);
		l.kind = line_kind(l.p, l.e, &l.rest);
		split_context_line(&sp, &l);
		if (l.e == e)
			break;
	}
	flush(&sp);
}

/* ---- the last user message ---------------------------------------------- */

/* The last user message cut into lines: lines q0 to q1 hold the question,
 * whose text is [qp, qe); when f0 < f1, lines f0 and f1 are the first and
 * last separators outside the question, which fence the context. */
struct user_msg {
	struct line *lines;
	size_t n;
	size_t q0, q1;
	const char *qp, *qe;
	size_t f0, f1;
};

static bool is_content(const struct line *l)
{
	return l->kind == LINE_TEXT || l->kind == LINE_META ||
	       (l->kind == LINE_ANSWER && l->rest < trim_end(l->rest, l->e));
}

/* The question after the last question marker, i. */
static void find_marked(struct user_msg *u, size_t i)
{
	const struct line *lines = u->lines;

	u->q0 = u->q1 = i;
	u->qp = lines[i].rest;
	u->qe = lines[i].e;
	if (lines[i].rest == trim_end(lines[i].rest, lines[i].e)) {
		/* "Question:" alone on its line: the question is the
		 * paragraph below it. */
		for (i++; i < u->n && lines[i].kind == LINE_BLANK; i++)
			;
		if (i < u->n && lines[i].kind == LINE_TEXT) {
			u->q1 = i;
			u->qp = lines[i].rest;
			u->qe = lines[i].e;
		}
	}
	for (i = u->q1 + 1; i < u->n && lines[i].kind == LINE_TEXT; i++) {
		u->q1 = i;
		u->qe = lines[i].e;
	}
}

/* The question of a message with no marker: its last paragraph, the last
 * line of its only paragraph, or all of it. */
static void find_unmarked(struct user_msg *u)
{
	const struct line *lines = u->lines;
	size_t last, first;
	bool before = false;

	for (last = u->n; last > 0 && !is_content(&lines[last - 1]); last--)
		;
	if (last == 0) {
		u->q0 = 0;
		u->q1 = u->n - 1;
	} else {
		last--;
		for (first = last; first > 0 && is_content(&lines[first - 1]);
		     first--)
			;
		for (size_t j = 0; j < first && !before; j++)
			before = is_content(&lines[j]);
		if (before) {
			u->q0 = first;
			u->q1 = last;
		} else if (first < last) {
			u->q0 = u->q1 = last;
		} else {
			u->q0 = 0;
			u->q1 = u->n - 1;
		}
	}
	u->qp = lines[u->q0].p;
	u->qe = lines[u->q1].e;
}

static bool parse_user(answerer *a, struct user_msg *u, const char *p,
		       size_t len)
{
	const char *e = p + len;
	size_t i;
	bool found = false;

	u->n = 1;
	for (const char *s = p; len > 0 && s < e; s++) {
		s = memchr(s, '\n', (size_t)(e - s));
		if (s == NULL)
			break;
		u->n++;
	}
	if (u->n > SIZE_MAX / sizeof(*u->lines) ||
	    (u->lines = malloc(u->n * sizeof(*u->lines))) == NULL) {
		a->nomem = true;
		return false;
	}
	for (i = 0; i < u->n; i++) {
		struct line *l = &u->lines[i];

		l->p = i == 0 ? p : u->lines[i - 1].e + 1;
		l->e = len > 0 ? line_end(l->p, e) : l->p;
		l->kind = line_kind(l->p, l->e, &l->rest);
	}

	for (i = u->n; i > 0 && !found; i--)
		found = u->lines[i - 1].kind == LINE_QUESTION;
	if (found)
		find_marked(u, i);
	else
		find_unmarked(u);

	u->f0 = u->f1 = 0;
	found = false;
	for (i = 0; i < u->n; i++) {
		if (u->lines[i].kind != LINE_SEPARATOR ||
		    (i >= u->q0 && i <= u->q1))
			continue;
		if (!found)
			u->f0 = i;
		u->f1 = i;
		found = true;
	}
	return true;
}

/* Reads the last user message, all but its question, into the context. */
static void split_user(answerer *a, const struct user_msg *u)
{
	struct splitter sp = {.a = a};

	for (size_t i = 0; i < u->n; i++) {
		const struct line *l = &u->lines[i];

		if (i >= u->q0 && i <= u->q1) {
			flush(&sp);
		} else if (u->f0 < u->f1 && (i <= u->f0 || i >= u->f1)) {
			/* Around the fences only an answer's text counts:
			 * the rest is the template's instructions. */
			flush(&sp);
			if (l->kind == LINE_ANSWER)
				split_context_line(&sp, l);
			flush(&sp);
		} else {
			split_context_line(&sp, l);
		}
	}
	flush(&sp);
}

/* ---- the answer --------------------------------------------------------- */

static bool role_is(const af_extractive_msg *m, const char *role)
{
	return m->role != NULL && word_eq(m->role, m->role_len, role);
}

/* Whether an assistant message is one of our own fixed replies, which
 * says nothing about the context. */
static bool is_own_reply(const af_extractive_msg *m)
{
	const char *p = m->content, *e;
	size_t n;

	if (!role_is(m, "assistant") || m->content_len == 0)
		return false;
	e = p + m->content_len;
	p = skip_space(p, e);
	e = trim_end(p, e);
	n = (size_t)(e - p);
	return (n == strlen(NO_CONTEXT) && memcmp(p, NO_CONTEXT, n) == 0) ||
	       (n == strlen(NO_ANSWER) && memcmp(p, NO_ANSWER, n) == 0);
}

/* Writes the sentence [p, p + len) to out (when not NULL) as the answer
 * shows it, and returns how many bytes that takes: at most 3 * len. */
static size_t render(const char *p, size_t len, char *out)
{
	const char *e = p + len;
	size_t n = 0, cl;
	bool space = false;
	uint32_t cp;

	while (p < e) {
		cl = af__utf8_char(p, (size_t)(e - p), &cp);
		if (cl != 0 && char_class(cp) == CH_SPACE) {
			space = true;
			p += cl;
			continue;
		}
		if (space && n > 0) {
			if (out != NULL)
				out[n] = ' ';
			n++;
		}
		space = false;
		if (cl == 0) {
			if (out != NULL)
				memcpy(out + n, "\xef\xbf\xbd", 3);
			n += 3;
			p++;
		} else {
			if (out != NULL)
				memcpy(out + n, p, cl);
			n += cl;
			p += cl;
		}
	}
	return n;
}

static void score(answerer *a)
{
	double n = (double)a->nsents;
	double avgdl = (double)a->total_dl / n;

	for (size_t i = 0; i < a->nterms; i++) {
		struct term *t = &a->terms[i];
		double df = (double)t->df;

		t->idf = log(1.0 + (n - df + 0.5) / (df + 0.5));
	}
	for (size_t i = 0; i < a->nsents; i++) {
		struct sentence *s = &a->sents[i];
		double norm = BM25_K1 *
			      (1.0 - BM25_B + BM25_B * (double)s->dl / avgdl);
		const size_t *h;

		s->score = 0;
		if (s->nhits == 0)
			continue; /* and hits may still be NULL */
		h = a->hits + s->hit0;
		/* Count each term's occurrences, then add each term once:
		 * the marks tell the first pass from the second. */
		for (size_t k = 0; k < s->nhits; k++) {
			struct term *t = &a->terms[h[k]];

			if (t->tf_mark == i + 1) {
				t->tf++;
			} else {
				t->tf_mark = i + 1;
				t->tf = 1;
			}
		}
		for (size_t k = 0; k < s->nhits; k++) {
			struct term *t = &a->terms[h[k]];
			double tf = (double)t->tf;

			if (t->tf_mark != i + 1)
				continue;
			t->tf_mark = 0;
			s->score += t->idf * tf * (BM25_K1 + 1.0) / (tf + norm);
		}
	}
}

struct ranked {
	double score;
	size_t index;
};

/* Best first; qsort is not stable, so the earlier sentence wins a tie
 * explicitly. */
static int by_score(const void *x, const void *y)
{
	const struct ranked *r = x, *s = y;

	if (r->score != s->score)
		return r->score > s->score ? -1 : 1;
	return r->index < s->index ? -1 : r->index > s->index;
}

static int by_position(const void *x, const void *y)
{
	const struct ranked *r = x, *s = y;

	return r->index < s->index ? -1 : r->index > s->index;
}

static af_err fixed(const char *text, char **answer)
{
	size_t n = strlen(text) + 1;

	*answer = malloc(n);
	if (*answer == NULL)
		return AF_ENOMEM;
	memcpy(*answer, text, n);
	return AF_OK;
}

/* Adds h to the set of rendered-text hashes (nslots a power of two, 0
 * marks a free slot); false when it was there already. */
static bool hash_insert(uint64_t *set, size_t nslots, uint64_t h)
{
	size_t mask = nslots - 1;

	h = h != 0 ? h : 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		if (set[i] == h)
			return false;
		if (set[i] == 0) {
			set[i] = h;
			return true;
		}
	}
}

/* Chooses the sentences and writes them out, in document order. */
static af_err choose(answerer *a, size_t max, char **answer)
{
	struct ranked *rank;
	size_t nscored = 0, nchosen = 0, longest = 0, nslots = 2, total = 0;
	uint64_t *set;
	char *scratch, *out;
	af_err err = AF_ENOMEM;

	if (a->nsents > SIZE_MAX / sizeof(*rank))
		return AF_ENOMEM;
	rank = malloc(a->nsents * sizeof(*rank));
	if (rank == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < a->nsents; i++) {
		if (a->sents[i].score > 0)
			rank[nscored++] = (struct ranked){a->sents[i].score, i};
		if (a->sents[i].len > longest)
			longest = a->sents[i].len;
	}
	if (nscored == 0) {
		free(rank);
		return fixed(NO_ANSWER, answer);
	}
	qsort(rank, nscored, sizeof(*rank), by_score);
	if (max > nscored)
		max = nscored;
	while (nslots < 2 * max)
		nslots *= 2;
	set = calloc(nslots, sizeof(*set));
	if (set == NULL)
		goto out_rank;
	if (longest > (SIZE_MAX - 1) / 3 ||
	    (scratch = malloc(3 * longest + 1)) == NULL)
		goto out_set;

	/* A sentence that repeats a chosen one (chunks overlap) would
	 * waste a place: it is skipped. Rendered texts are compared by
	 * their 64-bit hashes. */
	for (size_t k = 0; k < nscored && nchosen < max; k++) {
		const struct sentence *s = &a->sents[rank[k].index];
		size_t n;

		if (rank[k].score < KEEP_RATIO * rank[0].score)
			break;
		n = render(s->p, s->len, scratch);
		if (!hash_insert(set, nslots,
				 hash_bytes(HASH_SEED, scratch, n)))
			continue;
		rank[nchosen++] = rank[k];
	}
	qsort(rank, nchosen, sizeof(*rank), by_position);
	for (size_t k = 0; k < nchosen; k++) {
		const struct sentence *s = &a->sents[rank[k].index];

		/* Each render is at most three times its sentence, which
		 * is part of the input: no sum can overflow. */
		total += render(s->p, s->len, NULL) + 1;
	}
	out = malloc(total);
	if (out == NULL)
		goto out_scratch;
	total = 0;
	for (size_t k = 0; k < nchosen; k++) {
		const struct sentence *s = &a->sents[rank[k].index];

		if (k > 0)
			out[total++] = ' ';
		total += render(s->p, s->len, out + total);
	}
	out[total] = '\0';
	*answer = out;
	err = AF_OK;
out_scratch:
	free(scratch);
out_set:
	free(set);
out_rank:
	free(rank);
	return err;
}

af_err af__extractive_answer(const af_extractive_msg *msgs, size_t n,
			     size_t max_sentences, char **answer)
{
	answerer a = {0};
	struct user_msg u = {0};
	size_t user = SIZE_MAX;
	af_err err;

	if (answer == NULL)
		return AF_EINVAL;
	*answer = NULL;
	if (msgs == NULL && n > 0)
		return AF_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].content == NULL && msgs[i].content_len > 0)
			return AF_EINVAL;
		if (role_is(&msgs[i], "user"))
			user = i;
	}
	if (user == SIZE_MAX)
		return AF_EINVAL;
	if (max_sentences == 0)
		max_sentences = 3;

	/* The question's terms come first: the context is only looked up
	 * against them. */
	/* An empty content may come as NULL, which takes no offset. */
	if (parse_user(&a, &u,
		       msgs[user].content != NULL ? msgs[user].content : "",
		       msgs[user].content_len))
		add_question(&a, u.qp, u.qe);
	for (size_t i = 0; i < n && !a.nomem; i++) {
		if (i == user)
			split_user(&a, &u);
		else if (u.f0 >= u.f1 && !is_own_reply(&msgs[i]))
			split_message(&a, msgs[i].content, msgs[i].content_len);
	}
	if (a.nomem) {
		err = AF_ENOMEM;
	} else if (a.seen == 0) {
		err = fixed(NO_CONTEXT, answer);
	} else if (a.nsents == 0) {
		err = fixed(NO_ANSWER, answer);
	} else {
		score(&a);
		err = choose(&a, max_sentences, answer);
	}
	free(u.lines);
	answerer_fini(&a);
	return err;
}

size_t af__extractive_piece(const char *text, size_t len, size_t words)
{
	size_t i = 0, cap, count = 0;

	if (words == 0)
		words = 4;
	/* A text with no spaces still streams in pieces of bounded size. */
	cap = words > SIZE_MAX / 64 ? SIZE_MAX : words * 64;
	while (i < len && is_space(text[i]))
		i++;
	while (i < len) {
		if (i >= cap) {
			size_t back = 0;

			/* Back up to the start of a character, but only
			 * over what could be one sequence's tail. */
			while (back < 3 && i - back > 0 &&
			       ((unsigned char)text[i - back] & 0xc0) == 0x80)
				back++;
			if (((unsigned char)text[i - back] & 0xc0) == 0x80)
				back = 0; /* not UTF-8 there anyway */
			return i - back > 0 ? i - back : i;
		}
		if (!is_space(text[i])) {
			i++;
			continue;
		}
		count++;
		while (i < len && is_space(text[i]))
			i++;
		if (count == words)
			return i;
	}
	return len;
}
