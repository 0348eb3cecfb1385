#include "up_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_config.h"

#define MAX_FILE_BYTES (16u << 20)

/* ---- where a key is ---------------------------------------------------- */

/* cJSON keeps no positions. As in node_config.c, the nth member met in a
 * pre-order walk of the tree is the nth key of the text; here each key's
 * offset is kept besides its line, to cut an inline node config out of
 * the text. */
typedef struct key_pos {
	size_t line;
	size_t offset; /* of the byte after the key's ':' */
} key_pos;

typedef struct parse {
	const char *path;
	const char *text;
	key_pos *keys;
	size_t nkeys;
	const cJSON *root;
	char *err;
	size_t err_cap;
} parse;

/* The offset of the end of the string starting at t[i] == '"'. */
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

static af_err index_keys(parse *p)
{
	const char *t = p->text;
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
		if (p->nkeys == cap) {
			key_pos *k;
			cap = cap == 0 ? 64 : cap * 2;
			k = realloc(p->keys, cap * sizeof(*k));
			if (k == NULL)
				return AF_ENOMEM;
			p->keys = k;
		}
		p->keys[p->nkeys].line = at;
		p->keys[p->nkeys].offset = j + 1;
		p->nkeys++;
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

/* The index in p->keys of item's key; for an array element, of its first
 * key. False when unknown. */
static bool key_of(const parse *p, const cJSON *item, size_t *n)
{
	*n = 0;
	if (item == NULL)
		return false;
	if (item->string == NULL)
		item = item->child;
	return item != NULL && item->string != NULL &&
	       find_member(p->root, item, n) && *n < p->nkeys;
}

static af_err fail(parse *p, const cJSON *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static af_err fail(parse *p, const cJSON *at, const char *fmt, ...)
{
	size_t k;
	int n;
	va_list ap;

	if (key_of(p, at, &k))
		n = snprintf(p->err, p->err_cap, "%s:%zu: ", p->path,
			     p->keys[k].line);
	else
		n = snprintf(p->err, p->err_cap, "%s: ", p->path);
	if (n < 0 || (size_t)n >= p->err_cap)
		return AF_EINVAL;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->err_cap - (size_t)n, fmt, ap);
	va_end(ap);
	return AF_EINVAL;
}

static const char *json_type_name(const cJSON *v)
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

static bool listed(const char *const *keys, const char *k)
{
	for (size_t i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], k) == 0)
			return true;
	return false;
}

static af_err unknown_key(parse *p, const char *where, const cJSON *v,
			  const char *const *keys)
{
	char list[256] = "";

	for (size_t i = 0; keys[i] != NULL; i++) {
		strncat(list, i > 0 ? ", " : "",
			sizeof(list) - strlen(list) - 1);
		strncat(list, keys[i], sizeof(list) - strlen(list) - 1);
	}
	return fail(p, v, "%s: unknown key \"%s\" (known: %s)", where,
		    v->string, list);
}

/* ---- restart policies -------------------------------------------------- */

static const char *const restart_keys[] = {
	"policy",   "backoff_ms", "backoff_max_ms", "max_restarts", "window_ms",
	"on_limit", NULL};

static af_err read_ms(parse *p, const cJSON *v, const char *where, int64_t lo,
		      int64_t *out)
{
	double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;

	if (!isfinite(d) || d != floor(d) || d < (double)lo || d > 86400000.0)
		return fail(p, v,
			    "%s.%s: expected an integer from %lld to "
			    "86400000",
			    where, v->string, (long long)lo);
	*out = (int64_t)d;
	return AF_OK;
}

static af_err read_restart(parse *p, const cJSON *obj, const char *where,
			   cli_up_restart *r)
{
	af_err err;

	if (obj == NULL)
		return AF_OK;
	if (!cJSON_IsObject(obj))
		return fail(p, obj, "%s: expected an object, got %s", where,
			    json_type_name(obj));
	for (const cJSON *v = obj->child; v != NULL; v = v->next) {
		int64_t n;
		if (!listed(restart_keys, v->string))
			return unknown_key(p, where, v, restart_keys);
		if (strcmp(v->string, "policy") == 0) {
			const char *s = cJSON_GetStringValue(v);
			if (s != NULL && strcmp(s, "on-failure") == 0)
				r->policy = CLI_UP_ON_FAILURE;
			else if (s != NULL && strcmp(s, "always") == 0)
				r->policy = CLI_UP_ALWAYS;
			else if (s != NULL && strcmp(s, "never") == 0)
				r->policy = CLI_UP_NEVER;
			else
				return fail(
					p, v,
					"%s.policy: expected \"on-failure\", "
					"\"always\" or \"never\"",
					where);
		} else if (strcmp(v->string, "on_limit") == 0) {
			const char *s = cJSON_GetStringValue(v);
			if (s != NULL && strcmp(s, "give_up") == 0)
				r->stop_all_on_limit = false;
			else if (s != NULL && strcmp(s, "stop") == 0)
				r->stop_all_on_limit = true;
			else
				return fail(p, v,
					    "%s.on_limit: expected \"give_up\" "
					    "or \"stop\"",
					    where);
		} else if (strcmp(v->string, "max_restarts") == 0) {
			if ((err = read_ms(p, v, where, 0, &n)) != AF_OK)
				return err;
			if (n > 1000000)
				return fail(p, v,
					    "%s.max_restarts: at most 1000000",
					    where);
			r->max_restarts = (int)n;
		} else {
			int64_t lo =
				strcmp(v->string, "window_ms") == 0 ? 1 : 0;
			if ((err = read_ms(p, v, where, lo, &n)) != AF_OK)
				return err;
			if (strcmp(v->string, "backoff_ms") == 0)
				r->backoff_ms = n;
			else if (strcmp(v->string, "backoff_max_ms") == 0)
				r->backoff_max_ms = n;
			else
				r->window_ms = n;
		}
	}
	if (r->backoff_max_ms < r->backoff_ms)
		return fail(p, obj,
			    "%s: backoff_max_ms (%lld) is below backoff_ms "
			    "(%lld)",
			    where, (long long)r->backoff_max_ms,
			    (long long)r->backoff_ms);
	return AF_OK;
}

/* ---- node configs ------------------------------------------------------ */

/* The text of the object whose key is p->keys[k], from its '{' to its
 * '}', preceded by as many newlines as put its first line where the up
 * file has it: the node config reader then names the up file's lines. */
static af_err cut_inline(parse *p, size_t k, char **out)
{
	const char *t = p->text;
	size_t line = p->keys[k].line;
	size_t i = p->keys[k].offset;
	size_t start;
	int depth = 0;
	char *s;

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
	if (t[start] != '{' || t[i] == '\0')
		return AF_EINVAL; /* cJSON parsed it: cannot be */
	s = malloc(line - 1 + (i + 1 - start) + 1);
	if (s == NULL)
		return AF_ENOMEM;
	memset(s, '\n', line - 1);
	memcpy(s + line - 1, t + start, i + 1 - start);
	s[line - 1 + i + 1 - start] = '\0';
	*out = s;
	return AF_OK;
}

/* The path of a node config named in the up file: relative ones are taken
 * from the up file's folder. */
static char *resolve(const char *up_path, const char *file)
{
	const char *slash = strrchr(up_path, '/');
	size_t dir_len;
	char *s;

	if (file[0] == '/' || slash == NULL)
		return strdup(file);
	dir_len = (size_t)(slash - up_path);
	s = malloc(dir_len + 1 + strlen(file) + 1);
	if (s != NULL)
		sprintf(s, "%.*s/%s", (int)dir_len, up_path, file);
	return s;
}

static af_err check_node_config(parse *p, cli_up_node *n, const cJSON *cfg,
				const char *where)
{
	cli_node_config nc;
	char err[1024];
	af_err rc;

	if (n->config_path != NULL) {
		rc = cli_node_config_load(&nc, n->config_path, err,
					  sizeof(err));
	} else {
		size_t k;
		if (!key_of(p, cfg, &k))
			return fail(p, cfg, "%s: cannot place it", where);
		rc = cut_inline(p, k, &n->inline_text);
		if (rc == AF_OK)
			rc = cli_node_config_parse(&nc, n->inline_text, p->path,
						   err, sizeof(err));
		else
			snprintf(err, sizeof(err), "%s: out of memory",
				 p->path);
	}
	if (rc == AF_OK)
		n->grace_ms = nc.grace_ms;
	else
		snprintf(p->err, p->err_cap, "%s (%s, node \"%s\")", err, where,
			 n->name);
	cli_node_config_free(&nc);
	if (rc == AF_OK && n->inline_text != NULL) {
		/* The node reads it from a file of its own: without the
		 * padding. */
		size_t pad = strspn(n->inline_text, "\n");
		memmove(n->inline_text, n->inline_text + pad,
			strlen(n->inline_text + pad) + 1);
	}
	return rc;
}

/* ---- the file ---------------------------------------------------------- */

static const char *const top_keys[] = {"name", "restart", "nodes", NULL};
static const char *const node_keys[] = {"name", "config", "restart", NULL};

static af_err read_node(parse *p, cli_up_config *c, const cJSON *item, size_t i,
			const cli_up_restart *defaults)
{
	cli_up_node *n = &c->nodes[i];
	const cJSON *name;
	const cJSON *cfg;
	char where[64];
	char rwhere[80];
	af_err err;

	snprintf(where, sizeof(where), "nodes[%zu]", i);
	n->restart = *defaults;
	if (!cJSON_IsObject(item))
		return fail(p, item, "%s: expected an object, got %s", where,
			    json_type_name(item));
	for (const cJSON *v = item->child; v != NULL; v = v->next)
		if (!listed(node_keys, v->string))
			return unknown_key(p, where, v, node_keys);
	name = cJSON_GetObjectItemCaseSensitive(item, "name");
	if (name == NULL)
		return fail(p, item, "%s: no \"name\"", where);
	if (!cJSON_IsString(name) || name->valuestring[0] == '\0' ||
	    strlen(name->valuestring) > 64 ||
	    strspn(name->valuestring,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_.-") != strlen(name->valuestring))
		return fail(p, name,
			    "%s.name: expected 1 to 64 letters, digits, '_', "
			    "'.' or '-'",
			    where);
	n->name = name->valuestring;
	for (size_t k = 0; k < i; k++)
		if (strcmp(c->nodes[k].name, n->name) == 0)
			return fail(p, name,
				    "%s.name: \"%s\" is taken by nodes[%zu]",
				    where, n->name, k);
	snprintf(rwhere, sizeof(rwhere), "%s.restart", where);
	err = read_restart(p, cJSON_GetObjectItemCaseSensitive(item, "restart"),
			   rwhere, &n->restart);
	if (err != AF_OK)
		return err;
	cfg = cJSON_GetObjectItemCaseSensitive(item, "config");
	snprintf(rwhere, sizeof(rwhere), "%s.config", where);
	if (cfg == NULL)
		return fail(p, item, "%s: no \"config\"", where);
	if (cJSON_IsString(cfg)) {
		if (cfg->valuestring[0] == '\0')
			return fail(p, cfg, "%s: an empty path", rwhere);
		n->config_path = resolve(p->path, cfg->valuestring);
		if (n->config_path == NULL)
			return AF_ENOMEM;
	} else if (!cJSON_IsObject(cfg)) {
		return fail(p, cfg,
			    "%s: expected a file name or an object (the node "
			    "config inline), got %s",
			    rwhere, json_type_name(cfg));
	}
	return check_node_config(p, n, cfg, rwhere);
}

static af_err read_top(parse *p, cli_up_config *c, const cJSON *root)
{
	cli_up_restart defaults = {
		.policy = CLI_UP_ON_FAILURE,
		.backoff_ms = 100,
		.backoff_max_ms = 10000,
		.max_restarts = 5,
		.window_ms = 60000,
	};
	const cJSON *v;
	const cJSON *nodes;
	af_err err;
	size_t i;

	if (!cJSON_IsObject(root))
		return fail(p, NULL, "expected an object at the top, got %s",
			    json_type_name(root));
	for (v = root->child; v != NULL; v = v->next)
		if (!listed(top_keys, v->string))
			return unknown_key(p, "the top level", v, top_keys);
	v = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (v != NULL && !cJSON_IsString(v))
		return fail(p, v, "name: expected a string, got %s",
			    json_type_name(v));
	c->name = v != NULL ? v->valuestring : "up";
	err = read_restart(p, cJSON_GetObjectItemCaseSensitive(root, "restart"),
			   "restart", &defaults);
	if (err != AF_OK)
		return err;
	nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
	if (nodes == NULL)
		return fail(p, NULL, "no \"nodes\": list the nodes to start");
	if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) == 0)
		return fail(p, nodes,
			    "nodes: expected a non-empty array, got %s",
			    json_type_name(nodes));
	c->nnodes = (size_t)cJSON_GetArraySize(nodes);
	c->nodes = calloc(c->nnodes, sizeof(*c->nodes));
	if (c->nodes == NULL)
		return AF_ENOMEM;
	i = 0;
	for (v = nodes->child; v != NULL; v = v->next, i++)
		if ((err = read_node(p, c, v, i, &defaults)) != AF_OK)
			return err;
	return AF_OK;
}

af_err cli_up_config_parse(cli_up_config *c, const char *text, const char *path,
			   char *err, size_t err_cap)
{
	parse p = {.path = path, .text = text, .err = err, .err_cap = err_cap};
	const char *end = NULL;
	cJSON *root;
	af_err rc;

	memset(c, 0, sizeof(*c));
	root = cJSON_ParseWithOpts(text, &end, 1);
	if (root == NULL) {
		size_t line = 1;
		size_t col = 1;
		for (const char *q = text; end != NULL && q < end && *q; q++) {
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
	c->json = root;
	p.root = root;
	rc = index_keys(&p);
	if (rc == AF_OK)
		rc = read_top(&p, c, root);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	free(p.keys);
	return rc;
}

af_err cli_up_config_load(cli_up_config *c, const char *path, char *err,
			  size_t err_cap)
{
	FILE *f;
	char *text;
	size_t len;
	af_err rc;

	memset(c, 0, sizeof(*c));
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		return AF_ESYS;
	}
	text = malloc(MAX_FILE_BYTES + 1);
	if (text == NULL) {
		fclose(f);
		snprintf(err, err_cap, "%s: out of memory", path);
		return AF_ENOMEM;
	}
	len = fread(text, 1, MAX_FILE_BYTES + 1, f);
	if (ferror(f)) {
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		rc = AF_ESYS;
	} else if (len > MAX_FILE_BYTES) {
		snprintf(err, err_cap, "%s: larger than 16 MiB: not an up file",
			 path);
		rc = AF_EINVAL;
	} else {
		text[len] = '\0';
		if (strlen(text) != len) {
			snprintf(err, err_cap, "%s: holds a NUL byte: not JSON",
				 path);
			rc = AF_EINVAL;
		} else {
			rc = cli_up_config_parse(c, text, path, err, err_cap);
		}
	}
	free(text);
	fclose(f);
	return rc;
}

void cli_up_config_free(cli_up_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nnodes; i++) {
		free(c->nodes[i].config_path);
		free(c->nodes[i].inline_text);
	}
	free(c->nodes);
	cJSON_Delete(c->json);
	memset(c, 0, sizeof(*c));
}
