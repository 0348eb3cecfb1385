/*
 * JSON from model servers, through cJSON (shared by the built-in actors
 * that talk to them): parsing a server's text with a bound on nesting,
 * and reading optional fields.
 *
 * cJSON rather than jansson: on the chunks OpenAI-compatible servers
 * stream, cJSON parses in 0.4 us what takes jansson 2 us, and the chat
 * actor parses one per chunk (bench_chat spent 70% of its instructions in
 * jansson's parser).
 */
#ifndef AF_HTTP_JSON_H
#define AF_HTTP_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Deepest nesting accepted from a server: far beyond any real answer, and
 * well inside an actor thread's stack (cJSON's parser recurses). */
#define AF_JSON_MAX_DEPTH 64

/* Parses len bytes (need not be NUL-terminated) as one JSON value. NULL
 * when malformed, nested deeper than AF_JSON_MAX_DEPTH, or out of memory;
 * *why then says which (a constant string). Caller frees with
 * cJSON_Delete. */
cJSON *af__json_parse(const char *text, size_t len, const char **why);

/* The string under key in obj, or NULL (missing, or not a string). */
const char *af__json_str(const cJSON *obj, const char *key);

/* Several members of obj found in one walk over its keys, for the paths
 * that read one object per chunk: cJSON's lookup walks the keys again for
 * each, with a strcmp per key. out[i] becomes the first member named
 * keys[i] (as cJSON_GetObjectItemCaseSensitive would find), or NULL; all
 * NULL when obj is not an object. */
void af__json_members(const cJSON *obj, const char *const *keys,
		      const cJSON **out, size_t n);

#endif
