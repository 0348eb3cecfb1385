/*
 * UTF-8 for the chat actor: one decoder, shared by the extractive
 * answerer's word splitter and the check of the texts sent to a server.
 * Pure functions; any thread.
 */
#ifndef AF_CHAT_UTF8_H
#define AF_CHAT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the valid UTF-8 sequence at p (at most n bytes) and, in
 * *cp, its code point; 0 when the bytes there are not one: overlong
 * forms, surrogates and code points past U+10FFFF are not. */
size_t af__utf8_char(const char *p, size_t n, uint32_t *cp);

/* True when s[0..len) is well-formed UTF-8 with no NUL: what a JSON string
 * built with cJSON (which stops at a NUL) carries faithfully. */
bool af__utf8_text_ok(const char *s, size_t len);

#endif
