#include "json.h"

#include <string.h>

/* cJSON's parser recurses once per level: measure the depth first, over
 * the bytes, skipping strings, so a hostile server cannot exhaust the
 * actor's stack. */
static bool depth_ok(const char *s, size_t len)
{
	int depth = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > AF_JSON_MAX_DEPTH)
				return false;
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return true;
}

cJSON *af__json_parse(const char *text, size_t len, const char **why)
{
	cJSON *v;

	if (!depth_ok(text, len)) {
		*why = "nested too deep";
		return NULL;
	}
	v = cJSON_ParseWithLength(text, len);
	if (v == NULL)
		*why = "not valid JSON";
	return v;
}

const char *af__json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}
