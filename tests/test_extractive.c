/* The extractive answerer: where it finds the question and the context,
 * which sentences it picks and in what order, its fixed replies, hostile
 * bytes, a large context, and the pieces an answer streams in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extractive.h"

/* The answerer's fixed replies, as extractive.c words them. */
#define NO_CONTEXT                                                             \
	"I can only answer from context given in the prompt, and there is "    \
	"none: I am an extractive answerer, not a language model."
#define NO_ANSWER "The context given does not answer the question."

#define MSG(r, c)                                                              \
	{                                                                      \
		r, sizeof(r) - 1, c, sizeof(c) - 1                             \
	}

/* LlamaIndex's text_qa template around two retrieved chunks. */
#define RAG_PROMPT(query)                                                      \
	"Context information is below.\n"                                      \
	"---------------------\n"                                              \
	"file_path: docs/animals.txt\n"                                        \
	"\n"                                                                   \
	"The cheetah is the fastest land animal. It can reach 110 km/h in "    \
	"short bursts.\n"                                                      \
	"Cheetahs live mostly in the savannas of Africa.\n"                    \
	"\n"                                                                   \
	"file_path: docs/plants.txt\n"                                         \
	"\n"                                                                   \
	"The baobab tree stores water in its trunk. Some baobabs are more "    \
	"than a thousand years old.\n"                                         \
	"---------------------\n"                                              \
	"Given the context information and not prior knowledge, answer the "   \
	"query.\n"                                                             \
	"Query: " query "\n"                                                   \
	"Answer: "

/* Answers msgs, asserts AF_OK, and returns the answer to free. */
static char *answer_n(const af_extractive_msg *msgs, size_t n, size_t max)
{
	char *answer = (char *)"unset";

	assert_int_equal(af__extractive_answer(msgs, n, max, &answer), AF_OK);
	assert_non_null(answer);
	return answer;
}

static void expect(const af_extractive_msg *msgs, size_t n, size_t max,
		   const char *want)
{
	char *answer = answer_n(msgs, n, max);

	assert_string_equal(answer, want);
	free(answer);
}

static void expect_user(const char *content, size_t max, const char *want)
{
	af_extractive_msg m = {"user", 4, content, strlen(content)};

	expect(&m, 1, max, want);
}

/* Whether s[0..len) is valid UTF-8 (no overlong forms, no surrogates). */
static bool valid_utf8(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t c;
		size_t n;

		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if (u[i] >= 0xc2 && u[i] <= 0xdf)
			n = 2;
		else if ((u[i] & 0xf0) == 0xe0)
			n = 3;
		else if (u[i] >= 0xf0 && u[i] <= 0xf4)
			n = 4;
		else
			return false;
		if (len - i < n)
			return false;
		c = u[i] & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (u[i + k] & 0x3f);
		}
		if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
		    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

static void test_rag_prompt(void **state)
{
	/* The system prompt is not context when the template fences its
	 * own: "expert" would pick it otherwise. */
	af_extractive_msg where[] = {
		MSG("system", "You are an expert Q&A system."),
		MSG("user", RAG_PROMPT("Where do cheetahs live? Answer as an "
				       "expert.")),
	};
	/* The question shares "context" and "information" with the
	 * template's own lines: only the fenced chunks may answer. */
	af_extractive_msg baobab[] = {
		MSG("user",
		    RAG_PROMPT("What information does the context give about "
			       "baobab trees?")),
	};
	char *answer;

	answer = answer_n(where, 2, 0);
	assert_string_equal(answer,
			    "The cheetah is the fastest land animal. Cheetahs "
			    "live mostly in the savannas of Africa.");
	assert_null(strstr(answer, "---"));
	assert_null(strstr(answer, "file_path"));
	free(answer);

	answer = answer_n(baobab, 1, 0);
	assert_string_equal(answer, "The baobab tree stores water in its "
				    "trunk. Some baobabs are more than a "
				    "thousand years old.");
	free(answer);
}

/* LlamaIndex's refine template: the question sits in "The original query
 * is as follows:", and the existing answer is context too. */
static void test_refine_prompt(void **state)
{
	expect_user(
		"The original query is as follows: Where do cheetahs "
		"live?\n"
		"We have provided an existing answer: Cheetahs live in "
		"Africa.\n"
		"We have the opportunity to refine the existing answer "
		"(only if needed) with some more context below.\n"
		"------------\n"
		"A few cheetahs still live in Iran. Lions hunt at night.\n"
		"------------\n"
		"Given the new context, refine the original answer to "
		"better answer the query. If the context isn't useful, "
		"return the original answer.\n"
		"Refined Answer: ",
		0,
		"Cheetahs live in Africa. A few cheetahs still live in Iran.");
}

static void test_no_relevant_sentence(void **state)
{
	af_extractive_msg m[] = {
		MSG("system", "Cats sleep for most of the day. Dogs bark."),
		MSG("user", "What is the price of gold?"),
	};
	af_extractive_msg stop[] = {
		MSG("system", "Cats sleep for most of the day."),
		MSG("user", "What is it?"), /* stopwords only */
	};

	expect(m, 2, 0, NO_ANSWER);
	expect(stop, 2, 0, NO_ANSWER);
}

static void test_no_context(void **state)
{
	af_extractive_msg only_questions[] = {
		MSG("system", "----------\n\n"),
		MSG("user", "hello"),
	};
	af_extractive_msg chat[] = {
		MSG("user", "hello"),
		MSG("assistant", NO_CONTEXT),
		MSG("user", "What is a language model?"),
	};

	expect_user("hello", 0, NO_CONTEXT);
	expect_user("", 0, NO_CONTEXT);
	expect(only_questions, 2, 0, NO_CONTEXT);
	/* Its own earlier reply is not context to quote back; the earlier
	 * "hello" is context, which does not answer. */
	expect(chat, 3, 0, NO_ANSWER);
}

static void test_stemming(void **state)
{
	expect_user("The farm keeps one cat in the barn. Horses eat hay.\n\n"
		    "How many cats are there?",
		    0, "The farm keeps one cat in the barn.");
	expect_user("Tom stopped running after the race. The sun set.\n\n"
		    "When does Tom stop runs?",
		    0, "Tom stopped running after the race.");
	expect_user("Two boxes arrived today. A letter came.\n\n"
		    "Where is the box?",
		    0, "Two boxes arrived today.");
}

static void test_order_preserved(void **state)
{
	/* The second sentence scores best; the first still comes first. */
	expect_user("Owls hunt at night.\n"
		    "Barn owls hunt mice at night in open fields.\n"
		    "Rain fell on Tuesday.\n\n"
		    "When do barn owls hunt mice?",
		    0,
		    "Owls hunt at night. Barn owls hunt mice at night in open "
		    "fields.");
}

static void test_max_sentences(void **state)
{
	const char *context = "Apples grow on trees. Pears grow on trees too. "
			      "Plums grow on small trees. Figs grow on trees "
			      "in warm places.\n\nWhat grows on trees?";

	expect_user(context, 1, "Apples grow on trees.");
	expect_user(context, 2,
		    "Apples grow on trees. Pears grow on trees too.");
	expect_user(context, 0,
		    "Apples grow on trees. Pears grow on trees too. Plums "
		    "grow on small trees.");
	expect_user(context, 100,
		    "Apples grow on trees. Pears grow on trees too. Plums "
		    "grow on small trees. Figs grow on trees in warm places.");
}

/* A sentence far weaker than the best is dropped even with room left. */
static void test_weak_sentences_dropped(void **state)
{
	expect_user("The red fox dens in quiet forests across Europe.\n"
		    "Many animals live in Europe, and so do many people, "
		    "cities, rivers, mountains, lakes and roads.\n\n"
		    "Where does the red fox den?",
		    0, "The red fox dens in quiet forests across Europe.");
}

static void test_question_marker(void **state)
{
	af_extractive_msg m[] = {
		MSG("system", "Venus is the hottest planet."),
		MSG("user", "Mars has two moons. Jupiter has many moons.\n"
			    "**QUESTION:** How many moons does Mars have?\n"
			    "\n"
			    "Saturn has rings.\n"),
	};

	expect(m, 2, 0, "Mars has two moons. Jupiter has many moons.");
	/* The marker alone on its line: the question is below it, and the
	 * text after it is context again. */
	expect_user("Question:\nWhich planet has rings?\n\nMars has two "
		    "moons.\nSaturn has rings.",
		    0, "Saturn has rings.");
	/* The last marker wins; the one before is context that asks. */
	expect_user("Q: Which planet has rings?\nSaturn has rings. Mars is "
		    "red.\nQuery: Which planet is red?\nAnswer:",
		    0, "Mars is red.");
}

static void test_paragraph_and_line_questions(void **state)
{
	af_extractive_msg turns[] = {
		MSG("system", "The sky is blue. Grass is green."),
		MSG("user", "What colour is grass?"),
		MSG("assistant", "Grass is green."),
		MSG("user", "And the sky?"),
	};
	af_extractive_msg roles[] = {
		MSG("User", "Tom is a cat.\nWho is Tom?"),
	};

	/* One paragraph of several lines: the last line asks. */
	expect_user("Tom is a cat.\nWho is Tom?", 0, "Tom is a cat.");
	/* Several paragraphs: the last one asks, over two lines. */
	expect_user("Tom is a cat.\n\nBob is a dog.\n\nTell me\nabout Bob.", 0,
		    "Bob is a dog.");
	expect(turns, 4, 0, "The sky is blue.");
	expect(roles, 1, 0, "Tom is a cat.");
}

static void test_sentence_splitting(void **state)
{
	/* Abbreviations, initials and decimals do not end a sentence. */
	expect_user("Cats sleep a lot, e.g. 16 hours a day. Dogs sleep 12.5 "
		    "hours. Dr. J. Smith studied cats.\n\nHow long do cats "
		    "sleep?",
		    1, "Cats sleep a lot, e.g. 16 hours a day.");
	expect_user("The parcel weighs 3.5 kg. It left on Monday.\n\nHow much "
		    "does the parcel weigh?",
		    0, "The parcel weighs 3.5 kg.");
	/* A hard-wrapped sentence is one sentence; a list item is one too,
	 * and a line without a period ends at its line break. */
	expect_user("The quick fox\njumps over the lazy dog. Birds sing.\n"
		    "1. Otters hold hands while they sleep\n"
		    "2. Otters use stones as tools\n\n"
		    "Which animal jumps over the dog? What do otters use?",
		    0,
		    "The quick fox jumps over the lazy dog. 2. Otters use "
		    "stones as tools");
	/* A sentence that asks does not answer. */
	expect_user("Do whales sing? Whales sing long songs.\n\nDo whales "
		    "sing?",
		    0, "Whales sing long songs.");
}

static void test_duplicates_once(void **state)
{
	af_extractive_msg m[] = {
		MSG("system", "Chunk one. The vault key is under the mat.\n\n"
			      "The vault key is   under the mat. Chunk two."),
		MSG("user", "Where is the vault key?"),
	};

	expect(m, 2, 0, "The vault key is under the mat.");
}

static void test_invalid_input(void **state)
{
	af_extractive_msg system = MSG("system", "No user here.");
	af_extractive_msg nul_role = {NULL, 0, "hi", 2};
	af_extractive_msg bad = {"user", 4, NULL, 3};
	char *answer = (char *)"unset";

	assert_int_equal(af__extractive_answer(&system, 1, 0, &answer),
			 AF_EINVAL);
	assert_null(answer);
	assert_int_equal(af__extractive_answer(NULL, 0, 0, &answer), AF_EINVAL);
	assert_int_equal(af__extractive_answer(&nul_role, 1, 0, &answer),
			 AF_EINVAL);
	assert_int_equal(af__extractive_answer(&bad, 1, 0, &answer), AF_EINVAL);
	assert_int_equal(af__extractive_answer(&system, 1, 0, NULL), AF_EINVAL);
}

static void test_hostile_bytes(void **state)
{
	static const char context[] =
		"The \xff\xfe vault\0 key is \xc3 under the \xe6\x97\xa5 "
		"mat.\x01\x02 Over\xc0\xaflong \xed\xa0\x80 bytes.\0\0\n"
		"\xf0\x9f\x98\x80 \xe2\x80\x94 naïve café key.";
	af_extractive_msg m[] = {
		{"system", 6, context, sizeof(context) - 1},
		{"user", 4, "Where\0is the \xff key?", 19},
	};
	char *answer = answer_n(m, 2, 0);

	assert_true(valid_utf8(answer, strlen(answer)));
	assert_non_null(strstr(answer, "vault key is"));
	assert_non_null(strstr(answer, "\xef\xbf\xbd"));
	assert_non_null(strstr(answer, "naïve café key."));
	free(answer);
}

/* Random bytes and structure from a fixed seed: never a crash, always an
 * answer that is valid UTF-8. */
static void test_random_messages(void **state)
{
	static const char *const roles[] = {"user", "system", "assistant",
					    "tool"};
	static const char *const pieces[] = {
		"Question:", "Answer:",      "\n",    "\n\n",    "-----",
		". ",        "cat",          "cats ", "e.g.",    "3.5",
		"\xff",      "\xe6\x97",     "?",     "Query: ", " ",
		"\0",        "file_path: x",
	};
	uint64_t seed = 42;

	for (int round = 0; round < 300; round++) {
		af_extractive_msg m[4];
		char *buf[4];
		size_t n = 1 + round % 4;
		char *answer;
		af_err err;

		for (size_t i = 0; i < n; i++) {
			size_t len = 0, cap = 256;

			buf[i] = malloc(cap);
			assert_non_null(buf[i]);
			for (int k = 0; k < 40; k++) {
				const char *p;
				size_t plen;

				seed = seed * 6364136223846793005ull + 1;
				p = pieces[(seed >> 33) %
					   (sizeof(pieces) / sizeof(*pieces))];
				plen = p[0] == '\0' ? 1 : strlen(p);
				if (len + plen > cap)
					break;
				memcpy(buf[i] + len, p, plen);
				len += plen;
			}
			seed = seed * 6364136223846793005ull + 1;
			m[i].role = roles[(seed >> 33) % 4];
			m[i].role_len = strlen(m[i].role);
			m[i].content = buf[i];
			m[i].content_len = len;
		}
		err = af__extractive_answer(m, n, round % 5, &answer);
		assert_true(err == AF_OK || err == AF_EINVAL);
		if (err == AF_OK) {
			assert_true(valid_utf8(answer, strlen(answer)));
			free(answer);
		}
		for (size_t i = 0; i < n; i++)
			free(buf[i]);
	}
}

static void test_large_context(void **state)
{
	const size_t size = 500 * 1024;
	const char *needle = "The golden key opens the old vault. ";
	char *context = malloc(size + 256);
	size_t len = 0;
	af_extractive_msg m[2];
	char *answer;

	assert_non_null(context);
	for (int i = 0; len < size; i++) {
		if (i == 7000)
			len += (size_t)sprintf(context + len, "%s", needle);
		len += (size_t)sprintf(context + len,
				       "Item %d is stored in bin %d. ", i,
				       i % 97);
		if (i % 10 == 9)
			context[len++] = '\n';
	}
	m[0] = (af_extractive_msg){"system", 6, context, len};
	m[1] = (af_extractive_msg){"user", 4, "What opens the vault?", 21};
	answer = answer_n(m, 2, 0);
	assert_string_equal(answer, "The golden key opens the old vault.");
	free(answer);

	/* All of it as the user message's context, and a question that
	 * many sentences answer. */
	memcpy(context + len, "\n\nWhere is item 5?", 17);
	m[0] = (af_extractive_msg){"user", 4, context, len + 17};
	answer = answer_n(m, 1, 0);
	assert_non_null(strstr(answer, "Item 5 is stored in bin 5."));
	free(answer);
	free(context);
}

/* Streams text in pieces and checks they cover it exactly and never cut
 * a UTF-8 sequence. */
static void check_pieces(const char *text, size_t len, size_t words)
{
	size_t at = 0;

	while (at < len) {
		size_t n = af__extractive_piece(text + at, len - at, words);

		assert_true(n > 0 && n <= len - at);
		at += n;
		if (at < len)
			assert_true(((unsigned char)text[at] & 0xc0) != 0x80);
	}
	assert_int_equal(at, len);
}

static void test_pieces(void **state)
{
	const char *text = "one two three four five six";
	const char *utf8 = "naïve café 日本語の文 \xf0\x9f\x98\x80 x";
	char long_word[1000];

	assert_int_equal(af__extractive_piece(text, 0, 0), 0);
	assert_int_equal(af__extractive_piece(text, strlen(text), 0),
			 strlen("one two three four "));
	assert_int_equal(af__extractive_piece(text, strlen(text), 2),
			 strlen("one two "));
	assert_int_equal(af__extractive_piece(text, 7, 4), 7);
	assert_int_equal(af__extractive_piece("  a  b", 6, 1), 5);

	for (size_t words = 0; words < 6; words++) {
		check_pieces(text, strlen(text), words);
		check_pieces(NO_CONTEXT, strlen(NO_CONTEXT), words);
		check_pieces(utf8, strlen(utf8), words);
	}
	/* A word longer than a piece may be is cut, between characters. */
	for (size_t i = 0; i + 2 <= sizeof(long_word); i += 2)
		memcpy(long_word + i, "\xc3\xa9", 2);
	for (size_t off = 0; off < 4; off++) {
		memcpy(long_word + off, "\xe6\x97\xa5", 3);
		check_pieces(long_word, sizeof(long_word), 1);
		assert_true(af__extractive_piece(long_word, sizeof(long_word),
						 1) < sizeof(long_word));
	}
	/* Bytes that are not UTF-8 still come out in pieces. */
	memset(long_word, 0x80, sizeof(long_word));
	assert_true(af__extractive_piece(long_word, sizeof(long_word), 1) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rag_prompt),
		cmocka_unit_test(test_refine_prompt),
		cmocka_unit_test(test_no_relevant_sentence),
		cmocka_unit_test(test_no_context),
		cmocka_unit_test(test_stemming),
		cmocka_unit_test(test_order_preserved),
		cmocka_unit_test(test_max_sentences),
		cmocka_unit_test(test_weak_sentences_dropped),
		cmocka_unit_test(test_question_marker),
		cmocka_unit_test(test_paragraph_and_line_questions),
		cmocka_unit_test(test_sentence_splitting),
		cmocka_unit_test(test_duplicates_once),
		cmocka_unit_test(test_invalid_input),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_random_messages),
		cmocka_unit_test(test_large_context),
		cmocka_unit_test(test_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
