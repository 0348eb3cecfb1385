/*
 * libFuzzer target: reads untrusted bytes with the chunk reader
 * (actors/http/json_reader.c) and checks it against cJSON and against
 * itself:
 *   - whatever the text, a valid chunk read right after it reads right:
 *     nothing of one text leaks into the next through the reused parser;
 *   - when the reader accepts the text and cJSON parses it too, cJSON
 *     finds an object, and at every path the same kind of value, the same
 *     string and the same number;
 *   - a string pick is NUL-terminated at its length.
 * (cJSON accepts some texts yajl refuses, bad UTF-8 among them, so a
 * refusal is not compared.) Built and run by scripts/fuzz.sh.
 *
 * FUZZ_SOURCES: actors/http/json_reader.c actors/http/json.c
 * FUZZ_PKGS: yajl libcjson
 * FUZZ_CFLAGS: -Iactors/http
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_reader.h"
#include "require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
	"choices",
	"choices.0",
	"choices.0.delta.content",
	"choices.0.finish_reason",
	"error",
	"error.message",
	"usage",
	"usage.prompt_tokens",
	"a",
	"a.1",
	"a.1.b",
	"0",
};
#define NPATHS (sizeof(paths) / sizeof(paths[0]))

/* cJSON's member at a path, first match per key, as the reader means. */
static const cJSON *find(const cJSON *v, const char *path)
{
	char buf[64];
	char *save = NULL;

	strcpy(buf, path);
	for (char *part = strtok_r(buf, ".", &save); part != NULL && v != NULL;
	     part = strtok_r(NULL, ".", &save)) {
		if (part[0] >= '0' && part[0] <= '9')
			v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(part))
					     : NULL;
		else
			v = cJSON_IsObject(v)
				    ? cJSON_GetObjectItemCaseSensitive(v, part)
				    : NULL;
	}
	return v;
}

static af_json_kind kind_of(const cJSON *v)
{
	if (v == NULL)
		return AF_JSON_ABSENT;
	if (cJSON_IsNull(v))
		return AF_JSON_NULL;
	if (cJSON_IsFalse(v))
		return AF_JSON_FALSE;
	if (cJSON_IsTrue(v))
		return AF_JSON_TRUE;
	if (cJSON_IsNumber(v))
		return AF_JSON_NUMBER;
	if (cJSON_IsString(v))
		return AF_JSON_STRING;
	return cJSON_IsObject(v) ? AF_JSON_OBJECT : AF_JSON_ARRAY;
}

static void compare(const af_json_pick *out, const char *text, size_t len)
{
	const char *why;
	cJSON *root = af__json_parse(text, len, &why);

	/* cJSON refuses some texts yajl takes (numbers of 64 digits or more,
	 * lone UTF-16 surrogates); what both read must read the same. */
	if (root == NULL)
		return;
	require(cJSON_IsObject(root));
	for (size_t i = 0; i < NPATHS; i++) {
		const cJSON *v = find(root, paths[i]);

		require(out[i].kind == kind_of(v));
		if (out[i].kind == AF_JSON_STRING) {
			require(out[i].str[out[i].len] == '\0');
			/* cJSON's strings end at a decoded NUL. */
			require(strcmp(out[i].str, v->valuestring) == 0);
		}
		if (out[i].kind == AF_JSON_NUMBER)
			require(out[i].number == v->valuedouble ||
				(isnan(out[i].number) &&
				 isnan(v->valuedouble)));
	}
	cJSON_Delete(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char good[] =
		"{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}";
	af_json_reader *r;
	af_json_pick out[NPATHS];
	const char *why = NULL;
	af_err err;

	require(af__json_reader_new(&r, paths, NPATHS) == AF_OK);
	err = af__json_read(r, (const char *)data, size, out, &why);
	require(err == AF_OK || err == AF_EPROTO);
	if (err == AF_OK)
		compare(out, (const char *)data, size);
	else
		require(why != NULL && out[0].kind == AF_JSON_ABSENT);
	require(af__json_read(r, good, sizeof(good) - 1, out, &why) == AF_OK);
	require(out[2].kind == AF_JSON_STRING && strcmp(out[2].str, "hi") == 0);
	require(out[4].kind == AF_JSON_ABSENT);
	af__json_reader_destroy(&r);
	return 0;
}
