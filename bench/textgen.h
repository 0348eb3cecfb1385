/*
 * Deterministic English-like text for the retrieval benchmarks: words
 * made of syllables, drawn with Zipf's law from a fixed vocabulary (so a
 * few words are everywhere and most are rare, as in real text), in
 * sentences of 6 to 20 words.
 */
#ifndef AF_BENCH_TEXTGEN_H
#define AF_BENCH_TEXTGEN_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXTGEN_WORDS 20000

typedef struct textgen {
	uint64_t rng;
	char words[TEXTGEN_WORDS][16];
	double cdf[TEXTGEN_WORDS];
} textgen;

static inline uint64_t textgen_next(textgen *g)
{
	/* xorshift64*: fast, and the same on every machine. */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 2685821657736338717ULL;
}

static inline textgen *textgen_new(uint64_t seed)
{
	static const char *syl[] = {"ka",  "lo",  "mi",  "ne",  "ru",
				    "sa",  "te",  "vo",  "bri", "sto",
				    "qua", "der", "fen", "gal", "hor",
				    "jun", "pel", "tor", "wic", "zan"};
	const size_t nsyl = sizeof syl / sizeof syl[0];
	textgen *g = calloc(1, sizeof *g);
	double sum = 0;

	if (g == NULL)
		return NULL;
	g->rng = seed | 1;
	for (size_t i = 0; i < TEXTGEN_WORDS; i++) {
		/* Word i spells i in base nsyl: unique, 1 to 4 syllables. */
		size_t v = i, len = 0;

		do {
			size_t n = strlen(syl[v % nsyl]);

			memcpy(g->words[i] + len, syl[v % nsyl], n);
			len += n;
			v /= nsyl;
		} while (v > 0);
		g->words[i][len] = '\0';
		sum += 1.0 / (double)(i + 1);
		g->cdf[i] = sum;
	}
	for (size_t i = 0; i < TEXTGEN_WORDS; i++)
		g->cdf[i] /= sum;
	return g;
}

/* A word drawn with Zipf's law: word i has weight 1 / (i + 1). */
static inline const char *textgen_word(textgen *g)
{
	double u = (double)(textgen_next(g) >> 11) / 9007199254740992.0;
	size_t lo = 0, hi = TEXTGEN_WORDS - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (g->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return g->words[lo];
}

/* A word of middling frequency (ranks 100 to 5099): what a query asks. */
static inline const char *textgen_query_word(textgen *g)
{
	return g->words[100 + textgen_next(g) % 5000];
}

/* Writes sentences into buf until about n bytes (at most size - 1), NUL
 * terminated; returns the length. */
static inline size_t textgen_text(textgen *g, char *buf, size_t size, size_t n)
{
	size_t len = 0;

	if (n >= size)
		n = size - 1;
	while (len + 200 < n) {
		size_t words = 6 + textgen_next(g) % 15;

		for (size_t w = 0; w < words; w++) {
			const char *word = textgen_word(g);
			size_t wl = strlen(word);

			memcpy(buf + len, word, wl);
			if (w == 0)
				buf[len] = (char)(buf[len] - 'a' + 'A');
			len += wl;
			buf[len++] = w + 1 < words ? ' ' : '.';
		}
		buf[len++] = textgen_next(g) % 6 == 0 ? '\n' : ' ';
	}
	buf[len] = '\0';
	return len;
}

#endif
