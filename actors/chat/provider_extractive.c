/*
 * The offline default provider: NOT a language model. extractive.c picks
 * the sentences of the prompt's context that bear on its question, and
 * they are streamed a few words at a time, so flows, examples and tests
 * run with no network and give the same answer every time.
 */
#include <stdlib.h>
#include <string.h>

#include "chat_internal.h"
#include "extractive.h"

/* Whitespace-separated words: the token count this provider reports. */
static int64_t count_words(const char *s, size_t len)
{
	int64_t n = 0;
	bool in_word = false;

	for (size_t i = 0; i < len; i++) {
		bool space = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' ||
			     s[i] == '\r';

		if (!space && !in_word)
			n++;
		in_word = !space;
	}
	return n;
}

static af_err start(chat_call *c, cJSON *messages)
{
	size_t n = (size_t)cJSON_GetArraySize(messages);
	af_extractive_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
	const cJSON *m;
	size_t i = 0;
	int64_t prompt_words = 0;
	char *answer = NULL;
	size_t len;
	size_t at = 0;
	af_err err;

	if (msgs == NULL) {
		cJSON_Delete(messages);
		return af__chat_fail(c, AF_ENOMEM, "extractive: out of memory");
	}
	/* af__chat_messages made every message a role and a content
	 * string. */
	cJSON_ArrayForEach(m, messages)
	{
		msgs[i].role = af__json_str(m, "role");
		msgs[i].role_len = strlen(msgs[i].role);
		msgs[i].content = af__json_str(m, "content");
		msgs[i].content_len = strlen(msgs[i].content);
		prompt_words +=
			count_words(msgs[i].content, msgs[i].content_len);
		i++;
	}
	err = af__extractive_answer(msgs, n, 0, &answer);
	free(msgs);
	cJSON_Delete(messages);
	if (err == AF_EINVAL)
		return af__chat_fail(c, err,
				     "extractive: the conversation has no "
				     "user message");
	if (err != AF_OK)
		return af__chat_fail(c, err, "extractive: %s",
				     af_strerror(err));
	af__chat_set_model(c, "extractive");
	len = strlen(answer);
	while (at < len && err == AF_OK) {
		size_t piece = af__extractive_piece(answer + at, len - at, 4);

		err = af__chat_delta(c, answer + at, piece);
		at += piece;
	}
	if (err == AF_OK) {
		af__chat_set_finish(c, "stop");
		af__chat_set_usage(c, prompt_words, count_words(answer, len));
		af__chat_finish(c, AF_OK);
	}
	free(answer);
	return err;
}

static af_err unused_feed(chat_call *c, const char *buf, size_t len)
{
	return af__chat_fail(c, AF_EPROTO, "extractive: no HTTP body expected");
}

static af_err unused_end(chat_call *c)
{
	return AF_OK;
}

const chat_provider chat__extractive = {
	.name = "extractive",
	.default_base_url = "",
	.default_model = "extractive",
	.start = start,
	.feed = unused_feed,
	.end = unused_end,
};
