/*
 * libFuzzer target: the extractive answerer on untrusted messages. The
 * input is cut at 0x1e (record separator) bytes into up to 8 messages;
 * each message's first byte picks its role, the rest is its content. The
 * very first byte of the input picks max_sentences. Each content is copied
 * to a buffer of its exact size, so AddressSanitizer sees any read past a
 * length. The answer must be valid UTF-8 with no NUL inside, and its
 * pieces must cover it exactly without cutting a character. Built and run
 * by scripts/fuzz.sh.
 *
 * FUZZ_SOURCES: actors/chat/extractive.c actors/chat/utf8.c
 * FUZZ_CFLAGS: -Iactors/chat -lm
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extractive.h"
#include "require.h"

#define MAX_MSGS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const roles[] = {"user", "system", "assistant", "tool"};

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

/* Streams text in pieces: they must add up to it and, in valid UTF-8,
 * end between characters. */
static void check_pieces(const char *text, size_t len, size_t words, bool utf8)
{
	size_t at = 0;

	while (at < len) {
		size_t n = af__extractive_piece(text + at, len - at, words);

		require(n > 0 && n <= len - at);
		at += n;
		require(!utf8 || at == len ||
			((unsigned char)text[at] & 0xc0) != 0x80);
	}
	require(af__extractive_piece(text, 0, words) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	af_extractive_msg msgs[MAX_MSGS];
	char *copies[MAX_MSGS];
	size_t n = 0, max, at = 1;
	bool has_user = false;
	char *answer = NULL;
	af_err err;

	if (size == 0)
		return 0;
	max = data[0] % 8;
	while (at < size && n < MAX_MSGS) {
		const uint8_t *end = memchr(data + at, 0x1e, size - at);
		size_t stop = end != NULL ? (size_t)(end - data) : size;
		size_t len = stop - at;
		size_t clen = len > 0 ? len - 1 : 0;

		msgs[n].role = roles[len > 0 ? data[at] % 4 : 0];
		msgs[n].role_len = strlen(msgs[n].role);
		has_user |= msgs[n].role[0] == 'u';
		/* Exactly sized, and NULL for an empty content. */
		copies[n] = clen > 0 ? malloc(clen) : NULL;
		if (clen > 0) {
			require(copies[n] != NULL);
			memcpy(copies[n], data + at + 1, clen);
		}
		msgs[n].content = copies[n];
		msgs[n].content_len = clen;
		n++;
		at = stop + 1;
	}

	err = af__extractive_answer(msgs, n, max, &answer);
	if (has_user) {
		size_t len;

		require(err == AF_OK && answer != NULL);
		len = strlen(answer);
		require(len > 0 && valid_utf8(answer, len));
		check_pieces(answer, len, max, true);
		free(answer);
	} else {
		require(err == AF_EINVAL && answer == NULL);
	}
	for (size_t i = 0; i < n; i++) {
		check_pieces(msgs[i].content, msgs[i].content_len, i,
			     valid_utf8(msgs[i].content, msgs[i].content_len));
		free(copies[i]);
	}
	return 0;
}
