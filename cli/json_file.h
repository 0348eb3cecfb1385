/*
 * A JSON file read with cJSON for the actorflow command's own files (node
 * configs, flows, up files), with what a message about it needs: the line
 * of each key, so that an error reads "flow.json:12: steps[2].do: ...",
 * and its offset, so that a value can be cut out of the text.
 *
 * cJSON keeps no positions. The text does: every object key is a string
 * followed by ':', and cJSON's tree lists members in document order, so
 * the nth member met in a pre-order walk of the tree is the nth key of the
 * text.
 */
#ifndef AF_CLI_JSON_FILE_H
#define AF_CLI_JSON_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include <actorflow/err.h>

/* Where a key is in the text. */
typedef struct cli_json_key {
	size_t line;
	size_t offset; /* of the byte after the key's ':' */
} cli_json_key;

typedef struct cli_json_file {
	const char *path;   /* as given, only named in messages */
	char *text;         /* the file's text, NUL-terminated */
	cJSON *root;        /* the parsed text */
	cli_json_key *keys; /* every key of the text, in document order */
	size_t nkeys;
	char *err; /* where cli_json_fail writes */
	size_t err_cap;
} cli_json_file;

/* Reads all of fp into *out (malloc'ed, NUL-terminated; the caller frees
 * it). AF_OK; AF_EMSGSIZE when it holds more than max bytes; AF_EINVAL
 * when it holds a NUL byte (a parser would stop there, unseen); AF_ESYS
 * when reading failed (errno says why); AF_ENOMEM. */
af_err cli_read_text(FILE *fp, size_t max, char **out);

/* Reads the file at path (at most max_mib MiB, no NUL byte) and parses
 * it. AF_OK; otherwise a one-line message in err ("x.json:3:7: invalid
 * JSON", "x.json: larger than 64 MiB: not <what>") and AF_EINVAL, AF_ESYS
 * (cannot be read) or AF_ENOMEM. path and err must outlive f, which
 * later messages are written through. cli_json_file_free frees it in
 * every case. */
af_err cli_json_file_load(cli_json_file *f, const char *path, size_t max_mib,
			  const char *what, char *err, size_t err_cap);

/* The same for text already read (copied); path is only named in
 * messages. */
af_err cli_json_file_parse(cli_json_file *f, const char *text, const char *path,
			   char *err, size_t err_cap);

/* Frees what f holds. Accepts a zeroed f. */
void cli_json_file_free(cli_json_file *f);

/* The line of item's key; for an array element, of its first key. 0 when
 * unknown. */
size_t cli_json_line(const cli_json_file *f, const cJSON *item);

/* The text of item's value, an object or an array, as the file has it,
 * preceded by as many newlines as put its first line where the file has
 * it: a reader of the text then names the file's lines. AF_OK, with *out
 * malloc'ed (the caller frees it); AF_EINVAL when item's key is not
 * placed or its value is not an object or array; AF_ENOMEM. */
af_err cli_json_cut(const cli_json_file *f, const cJSON *item, char **out);

/* Writes "path:line: <fmt...>" (or "path: ..." when at is NULL or its line
 * unknown) into f's err and returns AF_EINVAL. */
af_err cli_json_fail(cli_json_file *f, const cJSON *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "a string", "an object", ... for messages. */
const char *cli_json_type_name(const cJSON *v);

/* True when v is an integral number within [lo, hi], stored in *out. */
bool cli_json_integral(const cJSON *v, double lo, double hi, double *out);

/* True when k is one of the NULL-terminated keys. */
bool cli_json_listed(const char *const *keys, const char *k);

/* Fails for the member v whose key is not one of keys: "<where>: unknown
 * key "x" (known: a, b)". */
af_err cli_json_unknown_key(cli_json_file *f, const char *where, const cJSON *v,
			    const char *const *keys);

/* AF_OK when v is NULL (absent) or a string; fails otherwise. */
af_err cli_json_want_string(cli_json_file *f, const cJSON *v,
			    const char *where);

#endif
