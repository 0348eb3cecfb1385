/*
 * The retrieval actor's sentence-aware chunker (actors/retrieval/
 * splitter.c): sizes, overlap, sentence and paragraph boundaries, an
 * over-long sentence, UTF-8 and empty text.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "splitter.h"

/* Words of s[0, len): runs of non-white-space bytes. */
static size_t count_words(const char *s, size_t len)
{
	size_t n = 0;
	bool in = false;

	for (size_t i = 0; i < len; i++) {
		bool sp = strchr(" \t\n\r\f\v", s[i]) != NULL;

		if (!sp && !in)
			n++;
		in = !sp;
	}
	return n;
}

static char *chunk_str(const char *text, af_span s)
{
	char *c = strndup(text + s.off, s.len);

	assert_non_null(c);
	return c;
}

/* Every chunk within size words, trimmed, and the chunks cover every
 * word of the text in order. */
static void check_chunks(const char *text, const af_span *v, size_t n,
			 size_t size)
{
	size_t covered = 0;

	for (size_t i = 0; i < n; i++) {
		assert_true(v[i].len > 0);
		assert_true(count_words(text + v[i].off, v[i].len) <= size);
		assert_false(strchr(" \n\t", text[v[i].off]) != NULL);
		assert_false(strchr(" \n\t", text[v[i].off + v[i].len - 1]) !=
			     NULL);
		if (i > 0)
			assert_true(v[i].off > v[i - 1].off);
		/* No word is left out between two chunks. */
		if (v[i].off > covered)
			assert_int_equal(
				count_words(text + covered, v[i].off - covered),
				0);
		covered = v[i].off + v[i].len;
	}
	if (n > 0)
		assert_int_equal(
			count_words(text + covered, strlen(text) - covered), 0);
}

static void test_empty(void **state)
{
	af_span *v = (af_span *)1;
	size_t n = 7;

	assert_int_equal(af__split("", 0, 10, 2, &v, &n), AF_OK);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_int_equal(af__split(" \n\n\t ", 5, 10, 2, &v, &n), AF_OK);
	assert_int_equal(n, 0);
	assert_null(v);
}

static void test_bad_sizes(void **state)
{
	af_span *v;
	size_t n;

	assert_int_equal(af__split("a b", 3, 0, 0, &v, &n), AF_EINVAL);
	assert_int_equal(af__split("a b", 3, 5, 5, &v, &n), AF_EINVAL);
	assert_int_equal(af__split("a b", 3, 5, -1, &v, &n), AF_EINVAL);
}

static void test_one_chunk(void **state)
{
	const char *t = "  The hive is warm. Bees fan their wings!  ";
	af_span *v;
	size_t n;
	char *c;

	assert_int_equal(af__split(t, strlen(t), 100, 10, &v, &n), AF_OK);
	assert_int_equal(n, 1);
	c = chunk_str(t, v[0]);
	assert_string_equal(c, "The hive is warm. Bees fan their wings!");
	free(c);
	free(v);
}

/* Sentences of four words each pack by whole sentences. */
static void test_sentence_boundaries(void **state)
{
	const char *t = "One two three four. Five six seven eight. "
			"Nine ten eleven twelve. Thirteen fourteen fifteen "
			"sixteen.";
	af_span *v;
	size_t n;
	char *c;

	assert_int_equal(af__split(t, strlen(t), 9, 0, &v, &n), AF_OK);
	assert_int_equal(n, 2);
	c = chunk_str(t, v[0]);
	assert_string_equal(c, "One two three four. Five six seven eight.");
	free(c);
	c = chunk_str(t, v[1]);
	assert_string_equal(c, "Nine ten eleven twelve. Thirteen fourteen "
			       "fifteen sixteen.");
	free(c);
	check_chunks(t, v, n, 9);
	free(v);
}

/* The next chunk starts with the last sentence of the one before when
 * it fits in the overlap. */
static void test_overlap(void **state)
{
	const char *t = "A b c d. E f g h. I j k l. M n o p. Q r s t.";
	af_span *v;
	size_t n;
	char *c;

	assert_int_equal(af__split(t, strlen(t), 8, 4, &v, &n), AF_OK);
	assert_int_equal(n, 4);
	c = chunk_str(t, v[0]);
	assert_string_equal(c, "A b c d. E f g h.");
	free(c);
	c = chunk_str(t, v[1]);
	assert_string_equal(c, "E f g h. I j k l.");
	free(c);
	c = chunk_str(t, v[3]);
	assert_string_equal(c, "M n o p. Q r s t.");
	free(c);
	check_chunks(t, v, n, 8);
	free(v);
	/* An overlap smaller than a sentence takes none. */
	assert_int_equal(af__split(t, strlen(t), 8, 3, &v, &n), AF_OK);
	assert_int_equal(n, 3);
	c = chunk_str(t, v[1]);
	assert_string_equal(c, "I j k l. M n o p.");
	free(c);
	free(v);
}

/* A blank line ends a sentence even without a full stop. */
static void test_paragraphs(void **state)
{
	const char *t = "# Waggle dance\n\nForagers dance to say where "
			"food is\n\nThe angle gives the direction";
	af_span *v;
	size_t n;
	char *c;

	assert_int_equal(af__split(t, strlen(t), 8, 0, &v, &n), AF_OK);
	assert_int_equal(n, 3);
	c = chunk_str(t, v[0]);
	assert_string_equal(c, "# Waggle dance");
	free(c);
	c = chunk_str(t, v[1]);
	assert_string_equal(c, "Foragers dance to say where food is");
	free(c);
	free(v);
}

/* A sentence longer than a chunk is cut into pieces of chunk_size words. */
static void test_long_sentence(void **state)
{
	char t[4096];
	size_t len = 0;
	af_span *v;
	size_t n;

	for (int i = 0; i < 250; i++)
		len += (size_t)snprintf(t + len, sizeof(t) - len, "w%d ", i);
	t[len - 1] = '.';
	assert_int_equal(af__split(t, len, 100, 20, &v, &n), AF_OK);
	assert_int_equal(n, 3);
	assert_int_equal(count_words(t + v[0].off, v[0].len), 100);
	assert_int_equal(count_words(t + v[1].off, v[1].len), 100);
	assert_int_equal(count_words(t + v[2].off, v[2].len), 50);
	assert_int_equal(v[0].off, 0);
	/* Pieces are whole units: no overlap can fit beside them. */
	assert_true(v[1].off >= v[0].off + v[0].len);
	check_chunks(t, v, n, 100);
	free(v);
}

/* Many sentences of many sizes: every chunk within the size. */
static void test_sizes(void **state)
{
	size_t cap = 200000, len = 0;
	char *t = malloc(cap);
	unsigned seed = 7;
	af_span *v;
	size_t n;

	assert_non_null(t);
	while (len + 200 < cap) {
		int words =
			1 +
			(int)((seed = seed * 1103515245 + 12345) >> 16) % 40;

		for (int w = 0; w < words; w++)
			len += (size_t)snprintf(t + len, cap - len, "x%d%s", w,
						w + 1 < words ? " " : ". ");
		if (seed % 7 == 0)
			len += (size_t)snprintf(t + len, cap - len, "\n\n");
	}
	t[len] = '\0';
	assert_int_equal(af__split(t, len, 64, 16, &v, &n), AF_OK);
	assert_true(n > 100);
	check_chunks(t, v, n, 64);
	free(v);
	assert_int_equal(af__split(t, len, 1, 0, &v, &n), AF_OK);
	assert_int_equal(n, count_words(t, len));
	free(v);
	free(t);
}

/* Multi-byte characters stay whole: cuts fall on white space only. */
static void test_utf8(void **state)
{
	const char *t = "Ünïcödé bees “dance”. Пчёлы танцуют. 蜜蜂 跳舞。 "
			"🐝 🐝 🐝 🐝 🐝 🐝.";
	af_span *v;
	size_t n;

	assert_int_equal(af__split(t, strlen(t), 3, 1, &v, &n), AF_OK);
	assert_true(n >= 4);
	for (size_t i = 0; i < n; i++) {
		unsigned char first = (unsigned char)t[v[i].off];
		unsigned char after = (unsigned char)t[v[i].off + v[i].len];

		/* Neither end is a continuation byte. */
		assert_true((first & 0xc0) != 0x80);
		assert_true(after == '\0' || after == ' ');
	}
	check_chunks(t, v, n, 3);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bad_sizes),
		cmocka_unit_test(test_one_chunk),
		cmocka_unit_test(test_sentence_boundaries),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_paragraphs),
		cmocka_unit_test(test_long_sentence),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
