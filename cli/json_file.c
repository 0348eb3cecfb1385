#include "json_file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The line of every key of the text, in document order. */
static af_err index_keys(cli_json_file *f, const char *t)
{
	size_t line = 1;
	size_t cap = 0;
	size_t i = 0;

	while (t[i] != '\0') {
		if (t[i] == '\n') {
			line++;
			i++;
		} else if (t[i] == '"') {
			size_t at = line;
			size_t j;
			i++;
			while (t[i] != '\0' && t[i] != '"') {
				if (t[i] == '\\' && t[i + 1] != '\0')
					i++;
				else if (t[i] == '\n')
					line++;
				i++;
			}
			if (t[i] == '"')
				i++;
			j = i;
			while (t[j] == ' ' || t[j] == '\t' || t[j] == '\r' ||
			       t[j] == '\n')
				j++;
			if (t[j] != ':')
				continue;
			if (f->nkeys == cap) {
				size_t *k;
				cap = cap == 0 ? 64 : cap * 2;
				k = realloc(f->key_lines, cap * sizeof(*k));
				if (k == NULL)
					return AF_ENOMEM;
				f->key_lines = k;
			}
			f->key_lines[f->nkeys++] = at;
		} else {
			i++;
		}
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

size_t cli_json_line(const cli_json_file *f, const cJSON *item)
{
	size_t n = 0;

	if (item == NULL || f->root == NULL)
		return 0;
	if (item->string == NULL)
		item = item->child;
	if (item == NULL || item->string == NULL ||
	    !find_member(f->root, item, &n) || n >= f->nkeys)
		return 0;
	return f->key_lines[n];
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
	return rc;
}

af_err cli_json_file_load(cli_json_file *f, const char *path, char *err,
			  size_t err_cap)
{
	FILE *fp;
	char *text = NULL;
	size_t len = 0;
	size_t cap = 0;
	af_err rc;

	memset(f, 0, sizeof(*f));
	fp = fopen(path, "r");
	if (fp == NULL) {
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		return AF_ESYS;
	}
	for (;;) {
		size_t n;
		if (len + 4096 + 1 > cap) {
			char *t;
			cap = cap == 0 ? 8192 : cap * 2;
			if (cap > (64u << 20)) {
				snprintf(err, err_cap,
					 "%s: larger than 64 MiB: not a "
					 "config file",
					 path);
				free(text);
				fclose(fp);
				return AF_EINVAL;
			}
			t = realloc(text, cap);
			if (t == NULL) {
				free(text);
				fclose(fp);
				snprintf(err, err_cap, "%s: out of memory",
					 path);
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
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		free(text);
		fclose(fp);
		return AF_ESYS;
	}
	fclose(fp);
	text[len] = '\0';
	if (strlen(text) != len) {
		snprintf(err, err_cap, "%s: holds a NUL byte: not JSON", path);
		free(text);
		return AF_EINVAL;
	}
	rc = cli_json_file_parse(f, text, path, err, err_cap);
	free(text);
	return rc;
}

void cli_json_file_free(cli_json_file *f)
{
	if (f == NULL)
		return;
	cJSON_Delete(f->root);
	free(f->key_lines);
	free(f->text);
	memset(f, 0, sizeof(*f));
}
