#include "json_msgpack.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0 when
 * it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

int cli_utf8_valid(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(u + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

/* ---- JSON to msgpack --------------------------------------------------- */

static void set_err(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* Where each number of the text starts and ends, in document order.
 * cJSON keeps a number only as a double, which cannot tell 1 from 1.0
 * nor hold every 64-bit integer; the text can. cJSON's tree lists values
 * in document order, so the nth number node is the nth number token. */
typedef struct numbers {
	size_t *start;
	size_t *len;
	size_t n;
	size_t cap;
} numbers;

typedef struct scan {
	numbers nums;
	int max_depth;
	bool has_nul; /* a string holds \u0000, which cJSON cuts at */
} scan;

static bool numbers_add(numbers *ns, size_t start, size_t len)
{
	if (ns->n == ns->cap) {
		size_t cap = ns->cap == 0 ? 16 : ns->cap * 2;
		size_t *s = realloc(ns->start, cap * sizeof(*s));
		if (s == NULL)
			return false;
		ns->start = s;
		s = realloc(ns->len, cap * sizeof(*s));
		if (s == NULL)
			return false;
		ns->len = s;
		ns->cap = cap;
	}
	ns->start[ns->n] = start;
	ns->len[ns->n] = len;
	ns->n++;
	return true;
}

static bool is_number_char(char c)
{
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' ||
	       c == 'e' || c == 'E';
}

/* One pass over the text outside and inside strings. Run on text that
 * may not be JSON at all: it only counts, and never reads past the NUL. */
static bool scan_text(const char *t, scan *sc)
{
	int depth = 0;
	size_t i = 0;

	while (t[i] != '\0') {
		char c = t[i];
		if (c == '"') {
			i++;
			while (t[i] != '\0' && t[i] != '"') {
				if (t[i] == '\\' && t[i + 1] != '\0') {
					if (t[i + 1] == 'u' &&
					    strncmp(t + i + 2, "0000", 4) == 0)
						sc->has_nul = true;
					i++;
				}
				i++;
			}
			if (t[i] == '"')
				i++;
		} else if (c == '[' || c == '{') {
			if (++depth > sc->max_depth)
				sc->max_depth = depth;
			i++;
		} else if (c == ']' || c == '}') {
			depth--;
			i++;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			size_t start = i;
			while (is_number_char(t[i]))
				i++;
			if (!numbers_add(&sc->nums, start, i - start))
				return false;
		} else {
			i++;
		}
	}
	return true;
}

typedef struct walk {
	const char *text;
	const numbers *nums;
	size_t next_num;
	af_payload *p;
	char *err;
	size_t err_cap;
} walk;

static bool token_is_integer(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
			return false;
	return true;
}

static af_err pack_number(walk *w, const cJSON *item)
{
	const char *tok;
	size_t len;
	char buf[32];

	if (w->next_num >= w->nums->n) {
		/* Cannot happen for text cJSON accepted; refuse, not guess. */
		set_err(w->err, w->err_cap, "cannot read a number");
		return AF_EINVAL;
	}
	tok = w->text + w->nums->start[w->next_num];
	len = w->nums->len[w->next_num];
	w->next_num++;
	if (!token_is_integer(tok, len)) {
		if (!isfinite(item->valuedouble)) {
			set_err(w->err, w->err_cap,
				"number %.*s is out of range", (int)len, tok);
			return AF_ERANGE;
		}
		return af_pack_double(w->p, item->valuedouble);
	}
	if (len >= sizeof(buf)) {
		set_err(w->err, w->err_cap,
			"integer %.20s... does not fit in 64 bits", tok);
		return AF_ERANGE;
	}
	memcpy(buf, tok, len);
	buf[len] = '\0';
	errno = 0;
	if (buf[0] == '-') {
		long long v = strtoll(buf, NULL, 10);
		if (errno == ERANGE) {
			set_err(w->err, w->err_cap,
				"integer %s does not fit in 64 bits", buf);
			return AF_ERANGE;
		}
		return af_pack_int(w->p, (int64_t)v);
	} else {
		unsigned long long v = strtoull(buf, NULL, 10);
		if (errno == ERANGE) {
			set_err(w->err, w->err_cap,
				"integer %s does not fit in 64 bits", buf);
			return AF_ERANGE;
		}
		if (v <= INT64_MAX)
			return af_pack_int(w->p, (int64_t)v);
		return af_pack_uint(w->p, (uint64_t)v);
	}
}

static af_err pack_string(walk *w, const char *s)
{
	size_t len = strlen(s);

	if (!cli_utf8_valid(s, len)) {
		set_err(w->err, w->err_cap, "a string is not valid UTF-8");
		return AF_EINVAL;
	}
	return af_pack_strn(w->p, s, len);
}

static af_err pack_item(walk *w, const cJSON *item)
{
	af_err err;
	uint32_t n = 0;

	for (const cJSON *c = item->child; c != NULL; c = c->next)
		n++;
	if (cJSON_IsNull(item))
		return af_pack_nil(w->p);
	if (cJSON_IsBool(item))
		return af_pack_bool(w->p, cJSON_IsTrue(item));
	if (cJSON_IsNumber(item))
		return pack_number(w, item);
	if (cJSON_IsString(item))
		return pack_string(w, item->valuestring);
	if (cJSON_IsArray(item)) {
		err = af_pack_array(w->p, n);
		for (const cJSON *c = item->child; err == AF_OK && c != NULL;
		     c = c->next)
			err = pack_item(w, c);
		return err;
	}
	if (cJSON_IsObject(item)) {
		err = af_pack_map(w->p, n);
		for (const cJSON *c = item->child; err == AF_OK && c != NULL;
		     c = c->next) {
			err = pack_string(w,
					  c->string != NULL ? c->string : "");
			if (err == AF_OK)
				err = pack_item(w, c);
		}
		return err;
	}
	set_err(w->err, w->err_cap, "unexpected JSON value");
	return AF_EINVAL;
}

/* Line and column (from 1) of offset in text. */
static void position(const char *text, size_t offset, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < offset && text[i] != '\0'; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

af_err cli_json_to_payload(const char *text, af_payload *p, char *err,
			   size_t err_cap)
{
	scan sc;
	cJSON *root = NULL;
	const char *end = NULL;
	walk w;
	af_err rc;

	memset(&sc, 0, sizeof(sc));
	set_err(err, err_cap, "%s", "");
	if (text == NULL || p == NULL) {
		set_err(err, err_cap, "no JSON given");
		return AF_EINVAL;
	}
	if (!scan_text(text, &sc)) {
		rc = AF_ENOMEM;
		set_err(err, err_cap, "out of memory");
		goto done;
	}
	/* Checked before parsing: cJSON's own limit (1000) would report a
	 * syntax error far from the cause. */
	if (sc.max_depth > CLI_JSON_MAX_DEPTH) {
		rc = AF_EINVAL;
		set_err(err, err_cap, "JSON nests deeper than %d levels",
			CLI_JSON_MAX_DEPTH);
		goto done;
	}
	root = cJSON_ParseWithOpts(text, &end, 1);
	if (root == NULL) {
		size_t line;
		size_t col;
		size_t off =
			end != NULL && end >= text ? (size_t)(end - text) : 0;
		position(text, off, &line, &col);
		rc = AF_EINVAL;
		if (text[strspn(text, " \t\r\n")] == '\0')
			set_err(err, err_cap, "empty JSON");
		else
			set_err(err, err_cap,
				"line %zu, column %zu: invalid JSON", line,
				col);
		goto done;
	}
	if (sc.has_nul) {
		rc = AF_EINVAL;
		set_err(err, err_cap, "a string holds \\u0000");
		goto done;
	}
	w = (walk){.text = text,
		   .nums = &sc.nums,
		   .p = p,
		   .err = err,
		   .err_cap = err_cap};
	rc = pack_item(&w, root);
	if (rc == AF_ENOMEM)
		set_err(err, err_cap, "out of memory");
	else if (rc != AF_OK && err != NULL && err[0] == '\0')
		set_err(err, err_cap, "%s", af_strerror(rc));
done:
	cJSON_Delete(root);
	free(sc.nums.start);
	free(sc.nums.len);
	return rc;
}

/* ---- msgpack to JSON --------------------------------------------------- */

typedef struct buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap == 0 ? 256 : b->cap;
		char *d;
		while (cap < b->len + n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->failed = true;
				return;
			}
			cap *= 2;
		}
		d = realloc(b->data, cap);
		if (d == NULL) {
			b->failed = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_puts(buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void emit_string(buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	buf_add(b, "\"", 1);
	while (i < len && !b->failed) {
		unsigned char c = u[i];
		size_t run = i;
		/* Copy plain runs whole. */
		while (run < len && u[run] >= 0x20 && u[run] < 0x80 &&
		       u[run] != '"' && u[run] != '\\')
			run++;
		if (run > i) {
			buf_add(b, s + i, run - i);
			i = run;
			continue;
		}
		if (c == '"') {
			buf_add(b, "\\\"", 2);
			i++;
		} else if (c == '\\') {
			buf_add(b, "\\\\", 2);
			i++;
		} else if (c == '\n') {
			buf_add(b, "\\n", 2);
			i++;
		} else if (c == '\r') {
			buf_add(b, "\\r", 2);
			i++;
		} else if (c == '\t') {
			buf_add(b, "\\t", 2);
			i++;
		} else if (c < 0x20) {
			char esc[7] = {'\\',        'u',         '0', '0',
				       hex[c >> 4], hex[c & 15], '\0'};
			buf_add(b, esc, 6);
			i++;
		} else {
			size_t n = utf8_seq(u + i, len - i);
			if (n == 0) {
				buf_add(b, "\\ufffd", 6);
				i++;
			} else {
				buf_add(b, s + i, n);
				i += n;
			}
		}
	}
	buf_add(b, "\"", 1);
}

static void emit_base64(buf *b, const unsigned char *d, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[4];

	buf_add(b, "\"", 1);
	for (size_t i = 0; i < len && !b->failed; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16;
		size_t left = len - i;
		if (left > 1)
			v |= (uint32_t)d[i + 1] << 8;
		if (left > 2)
			v |= d[i + 2];
		out[0] = tab[(v >> 18) & 63];
		out[1] = tab[(v >> 12) & 63];
		out[2] = left > 1 ? tab[(v >> 6) & 63] : '=';
		out[3] = left > 2 ? tab[v & 63] : '=';
		buf_add(b, out, 4);
	}
	buf_add(b, "\"", 1);
}

static void emit_double(buf *b, double d)
{
	char s[40];
	int prec;
	int exp10;

	if (!isfinite(d)) {
		buf_puts(b, "null");
		return;
	}
	/* The fewest significant digits that read back as the same double,
	 * written out in full unless the exponent makes that long. */
	for (prec = 1; prec < 17; prec++) {
		snprintf(s, sizeof(s), "%.*e", prec - 1, d);
		if (strtod(s, NULL) == d)
			break;
	}
	snprintf(s, sizeof(s), "%.*e", prec - 1, d);
	exp10 = atoi(strchr(s, 'e') + 1);
	if (exp10 >= -5 && exp10 < 17)
		snprintf(s, sizeof(s), "%.*f",
			 prec - 1 - exp10 > 0 ? prec - 1 - exp10 : 0, d);
	else
		snprintf(s, sizeof(s), "%.*g", prec, d);
	buf_puts(b, s);
	if (strpbrk(s, ".eE") == NULL)
		buf_puts(b, ".0");
}

static af_err emit(buf *b, const af_value *v, int depth);

/* A map key: a str as it is, anything else as the string of its JSON. */
static af_err emit_key(buf *b, const af_value *k, int depth)
{
	const char *s;
	size_t len;
	buf tmp = {0};
	af_err err;

	if (af_value_str(k, &s, &len) == AF_OK) {
		emit_string(b, s, len);
		return AF_OK;
	}
	err = emit(&tmp, k, depth);
	if (err == AF_OK && tmp.failed)
		err = AF_ENOMEM;
	if (err == AF_OK)
		emit_string(b, tmp.data, tmp.len);
	free(tmp.data);
	return err;
}

static af_err emit(buf *b, const af_value *v, int depth)
{
	char num[32];
	const char *s;
	const void *d;
	size_t len;
	bool flag;
	int64_t i;
	uint64_t u;
	double f;
	af_err err = AF_OK;

	switch (af_value_type(v)) {
	case AF_TYPE_BOOL:
		af_value_bool(v, &flag);
		buf_puts(b, flag ? "true" : "false");
		break;
	case AF_TYPE_INT:
		if (af_value_int(v, &i) == AF_OK)
			snprintf(num, sizeof(num), "%" PRId64, i);
		else if (af_value_uint(v, &u) == AF_OK)
			snprintf(num, sizeof(num), "%" PRIu64, u);
		else
			snprintf(num, sizeof(num), "null");
		buf_puts(b, num);
		break;
	case AF_TYPE_FLOAT:
		af_value_double(v, &f);
		emit_double(b, f);
		break;
	case AF_TYPE_STR:
		af_value_str(v, &s, &len);
		emit_string(b, s, len);
		break;
	case AF_TYPE_BIN:
		af_value_bin(v, &d, &len);
		emit_base64(b, d, len);
		break;
	case AF_TYPE_ARRAY:
		if (depth >= CLI_JSON_MAX_OUT_DEPTH)
			return AF_ERANGE;
		buf_add(b, "[", 1);
		len = af_value_len(v);
		for (size_t n = 0; n < len && err == AF_OK; n++) {
			if (n > 0)
				buf_add(b, ",", 1);
			err = emit(b, af_value_at(v, n), depth + 1);
		}
		buf_add(b, "]", 1);
		break;
	case AF_TYPE_MAP:
		if (depth >= CLI_JSON_MAX_OUT_DEPTH)
			return AF_ERANGE;
		buf_add(b, "{", 1);
		len = af_value_len(v);
		for (size_t n = 0; n < len && err == AF_OK; n++) {
			if (n > 0)
				buf_add(b, ",", 1);
			err = emit_key(b, af_value_key_at(v, n), depth + 1);
			buf_add(b, ":", 1);
			if (err == AF_OK)
				err = emit(b, af_value_val_at(v, n), depth + 1);
		}
		buf_add(b, "}", 1);
		break;
	case AF_TYPE_NONE:
	case AF_TYPE_NIL:
	case AF_TYPE_EXT:
	default:
		buf_puts(b, "null");
		break;
	}
	return err;
}

af_err cli_value_to_json(const af_value *v, char **out, size_t *len)
{
	buf b = {0};
	af_err err;

	if (out == NULL)
		return AF_EINVAL;
	*out = NULL;
	err = emit(&b, v, 0);
	if (err == AF_OK && b.failed)
		err = AF_ENOMEM;
	if (err != AF_OK) {
		free(b.data);
		return err;
	}
	if (b.data == NULL) {
		b.data = strdup("null");
		if (b.data == NULL)
			return AF_ENOMEM;
		b.len = 4;
	}
	*out = b.data;
	if (len != NULL)
		*len = b.len;
	return AF_OK;
}
