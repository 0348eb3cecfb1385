/*
 * The extractive answerer behind the "extractive" chat provider: the
 * embedded default that lets every flow, example and test run offline and
 * deterministically. It is NOT a language model. It answers from the
 * context in the prompt by picking the sentences most relevant to the
 * question, in the order they appear, and nothing else.
 *
 * Pure functions: no I/O, no global state; safe from any thread.
 */
#ifndef AF_CHAT_EXTRACTIVE_H
#define AF_CHAT_EXTRACTIVE_H

#include <actorflow/err.h>
#include <stddef.h>

/* One chat message as the answerer sees it: role ("system", "user",
 * "assistant") and content, neither NUL-terminated. */
typedef struct af_extractive_msg {
	const char *role;
	size_t role_len;
	const char *content;
	size_t content_len;
} af_extractive_msg;

/* Answers the conversation msgs[0..n). The question is the last user
 * message's question part, the context everything else (see extractive.c
 * for the rule). At most max_sentences sentences (0: 3) are chosen.
 * *answer is a malloc'ed NUL-terminated UTF-8 string the caller frees;
 * when nothing in the context bears on the question it says so in a
 * sentence of its own. AF_OK, AF_EINVAL (no user message), AF_ENOMEM. */
af_err af__extractive_answer(const af_extractive_msg *msgs, size_t n,
			     size_t max_sentences, char **answer);

/* The length of the next piece of text to stream: about words words (0:
 * 4) ending after a space, never cutting a UTF-8 sequence; len when less
 * is left. Returns 0 only when len is 0. */
size_t af__extractive_piece(const char *text, size_t len, size_t words);

#endif
