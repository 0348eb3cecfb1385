/*
 * JSON from model servers as a cJSON tree (shared by the built-in actors
 * that talk to them): parsing a server's text with a bound on nesting,
 * and reading optional fields. For documents read whole: embeddings and
 * error bodies. The chat providers' answers, streamed or not, go through
 * json_reader.h, which builds no tree.
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

#endif
