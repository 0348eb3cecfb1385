#include "json_file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The offset of the end of the string starting at t[i] == '"', counting
 * the newlines in it into *line. */
static size_t skip_string(const char *t, size_t i, size_t *line)
{
	i++;
	while (t[i] != '\0' && t[i] != '"') {
		if (t[i] == '\\' && t[i + 1] != '\0')
			i++;
		else if (t[i] == '\n')
			(*line)++;
		i++;
	}
	return t[i] == '"' ? i + 1 : i;
}

/* The place of every key of the text, in document order. */
static af_err index_keys(cli_json_file *f, const char *t)
{
	size_t line = 1;
	size_t cap = 0;
	size_t i = 0;

	while (t[i] != '\0') {
		size_t at;
		size_t j;
		if (t[i] == '\n')
			line++;
		if (t[i] != '"') {
			i++;
			continue;
		}
		at = line;
		i = skip_string(t, i, &line);
		j = i;
		while (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' ||
		       t[j] == '\n')
			j++;
		if (t[j] != ':')
			continue;
		if (f->nkeys == cap) {
			cli_json_key *k;
			cap = cap == 0 ? 64 : cap * 2;
			k = realloc(f->keys, cap * sizeof(*k));
			if (k == NULL)
				return AF_ENOMEM;
			f->keys = k;
		}
		f->keys[f->nkeys].line = at;
		f->keys[f->nkeys].offset = j + 1;
		f->nkeys++;
	}
	return AF_OK;
}

static bool find_member(const cJSON *node, const cJSON *target, size_t *n)
{
	for (const cJSON *c = node->child; c != NULL; c = c->next) {
		if (c == target)
			return true;
		if (c->string != NULL)
			(*n)++;
		if (find_member(c, target, n))
			return true;
	}
	return false;
}

/* The place of item's key; for an array element, of its first key. NULL
 * when unknown. */
static const cli_json_key *key_of(const cli_json_file *f, const cJSON *item)
{
	size_t n = 0;

	if (item == NULL || f->root == NULL)
		return NULL;
	if (item->string == NULL)
		item = item->child;
	if (item == NULL || item->string == NULL ||
	    !find_member(f->root, item, &n) || n >= f->nkeys)
		return NULL;
	return &f->keys[n];
}

size_t cli_json_line(const cli_json_file *f, const cJSON *item)
{
	const cli_json_key *k = key_of(f, item);

	return k != NULL ? k->line : 0;
}

af_err cli_json_cut(const cli_json_file *f, const cJSON *item, char **out)
{
	const cli_json_key *k = key_of(f, item);
	const char *t = f->text;
	size_t line;
	size_t i;
	size_t start;
	int depth = 0;
	char *s;

	if (k == NULL)
		return AF_EINVAL;
	line = k->line;
	i = k->offset;
	while (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n') {
		if (t[i] == '\n')
			line++;
		i++;
	}
	start = i;
	for (; t[i] != '\0'; i++) {
		if (t[i] == '"') {
			size_t ignored = 0;
			i = skip_string(t, i, &ignored) - 1;
		} else if (t[i] == '{' || t[i] == '[') {
			depth++;
		} else if ((t[i] == '}' || t[i] == ']') && --depth == 0) {
			break;
		}
	}
	if ((t[start] != '{' && t[start] != '[') || t[i] == '\0')
		return AF_EINVAL;
	s = malloc(line - 1 + (i + 1 - start) + 1);
	if (s == NULL)
		return AF_ENOMEM;
	memset(s, '\n', line - 1);
	memcpy(s + line - 1, t + start, i + 1 - start);
	s[line - 1 + i + 1 - start] = '\0';
	*out = s;
	return AF_OK;
}

af_err cli_json_fail(cli_json_file *f, const cJSON *at, const char *fmt, ...)
{
	size_t line = cli_json_line(f, at);
	int n;
	va_list ap;

	if (f->err == NULL || f->err_cap == 0)
		return AF_EINVAL;
	if (line > 0)
		n = snprintf(f->err, f->err_cap, "%s:%zu: ", f->path, line);
	else
		n = snprintf(f->err, f->err_cap, "%s: ", f->path);
	if (n < 0 || (size_t)n >= f->err_cap)
		return AF_EINVAL;
	va_start(ap, fmt);
	vsnprintf(f->err + n, f->err_cap - (size_t)n, fmt, ap);
	va_end(ap);
	return AF_EINVAL;
}

const char *cli_json_type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "something else";
}

bool cli_json_integral(const cJSON *v, double lo, double hi, double *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return false;
	d = v->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < lo || d > hi)
		return false;
	*out = d;
	return true;
}

bool cli_json_listed(const char *const *keys, const char *k)
{
	for (size_t i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], k) == 0)
			return true;
	return false;
}

af_err cli_json_unknown_key(cli_json_file *f, const char *where, const cJSON *v,
			    const char *const *keys)
{
	char list[512] = "";

	for (size_t i = 0; keys != NULL && keys[i] != NULL; i++) {
		strncat(list, i > 0 ? ", " : "",
			sizeof(list) - strlen(list) - 1);
		strncat(list, keys[i], sizeof(list) - strlen(list) - 1);
	}
	return cli_json_fail(f, v, "%s: unknown key \"%s\" (known: %s)", where,
			     v->string, list);
}

af_err cli_json_want_string(cli_json_file *f, const cJSON *v, const char *where)
{
	if (v == NULL || cJSON_IsString(v))
		return AF_OK;
	return cli_json_fail(f, v, "%s: expected a string, got %s", where,
			     cli_json_type_name(v));
}

static int by_key(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a;
	const cJSON *y = *(const cJSON *const *)b;

	return strcmp(x->string, y->string);
}

/* A key given twice in one object is an error: cJSON would keep the
 * first, and the second, the one a reader sees last, would be passed
 * over in silence. Names the key and both lines. */
static af_err check_duplicates(cli_json_file *f, const cJSON *node)
{
	const cJSON **keys;
	size_t n = 0, k = 0;
	af_err rc = AF_OK;

	for (const cJSON *c = node->child; c != NULL; c = c->next) {
		if ((rc = check_duplicates(f, c)) != AF_OK)
			return rc;
		n++;
	}
	if (!cJSON_IsObject(node) || n < 2)
		return AF_OK;
	keys = malloc(n * sizeof(*keys));
	if (keys == NULL) {
		snprintf(f->err, f->err_cap, "%s: out of memory", f->path);
		return AF_ENOMEM;
	}
	for (const cJSON *c = node->child; c != NULL; c = c->next)
		keys[k++] = c;
	qsort(keys, n, sizeof(*keys), by_key);
	for (size_t i = 1; i < n && rc == AF_OK; i++) {
		size_t a, b;

		if (strcmp(keys[i - 1]->string, keys[i]->string) != 0)
			continue;
		a = cli_json_line(f, keys[i - 1]);
		b = cli_json_line(f, keys[i]);
		snprintf(f->err, f->err_cap,
			 "%s:%zu: key \"%s\" given twice (also on line %zu)",
			 f->path, a > b ? a : b, keys[i]->string,
			 a > b ? b : a);
		rc = AF_EINVAL;
	}
	free(keys);
	return rc;
}

af_err cli_json_file_parse(cli_json_file *f, const char *text, const char *path,
			   char *err, size_t err_cap)
{
	const char *end = NULL;
	af_err rc;

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->err = err;
	f->err_cap = err_cap;
	f->text = strdup(text);
	if (f->text == NULL) {
		snprintf(err, err_cap, "%s: out of memory", path);
		return AF_ENOMEM;
	}
	f->root = cJSON_ParseWithOpts(f->text, &end, 1);
	if (f->root == NULL) {
		size_t line = 1;
		size_t col = 1;
		for (const char *q = f->text; end != NULL && q < end && *q;
		     q++) {
			if (*q == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		snprintf(err, err_cap, "%s:%zu:%zu: invalid JSON", path, line,
			 col);
		return AF_EINVAL;
	}
	rc = index_keys(f, f->text);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	if (rc == AF_OK)
		rc = check_duplicates(f, f->root);
	return rc;
}

af_err cli_read_text(FILE *fp, size_t max, char **out)
{
	char *text = NULL;
	size_t len = 0;
	size_t cap = 0;

	*out = NULL;
	for (;;) {
		size_t n;
		if (len > max) {
			free(text);
			return AF_EMSGSIZE;
		}
		/* Room for a byte past max, to see the text is larger, and
		 * for the NUL. */
		if (len + 1 >= cap) {
			char *t;
			cap = cap == 0 ? 8192 : cap * 2;
			if (cap > max + 2)
				cap = max + 2;
			t = realloc(text, cap);
			if (t == NULL) {
				free(text);
				return AF_ENOMEM;
			}
			text = t;
		}
		n = fread(text + len, 1, cap - len - 1, fp);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(fp)) {
		free(text);
		return AF_ESYS;
	}
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		free(text);
		return AF_EINVAL;
	}
	*out = text;
	return AF_OK;
}

af_err cli_json_file_load(cli_json_file *f, const char *path, size_t max_mib,
			  const char *what, char *err, size_t err_cap)
{
	FILE *fp;
	char *text = NULL;
	af_err rc;

	memset(f, 0, sizeof(*f));
	fp = fopen(path, "r");
	if (fp == NULL) {
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		return AF_ESYS;
	}
	rc = cli_read_text(fp, max_mib << 20, &text);
	switch (rc) {
	case AF_OK:
		rc = cli_json_file_parse(f, text, path, err, err_cap);
		break;
	case AF_EMSGSIZE:
		snprintf(err, err_cap, "%s: larger than %zu MiB: not %s", path,
			 max_mib, what);
		rc = AF_EINVAL;
		break;
	case AF_EINVAL:
		snprintf(err, err_cap, "%s: holds a NUL byte: not JSON", path);
		break;
	case AF_ESYS:
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		break;
	default:
		snprintf(err, err_cap, "%s: out of memory", path);
		break;
	}
	free(text);
	fclose(fp);
	return rc;
}

void cli_json_file_free(cli_json_file *f)
{
	if (f == NULL)
		return;
	cJSON_Delete(f->root);
	free(f->keys);
	free(f->text);
	memset(f, 0, sizeof(*f));
}
