#include "up_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_file.h"
#include "node_config.h"

/* ---- restart policies -------------------------------------------------- */

static const char *const restart_keys[] = {
	"policy",   "backoff_ms", "backoff_max_ms", "max_restarts", "window_ms",
	"on_limit", NULL};

static af_err read_ms(cli_json_file *f, const cJSON *v, const char *where,
		      int64_t lo, int64_t *out)
{
	double d;

	if (!cli_json_integral(v, (double)lo, 86400000.0, &d))
		return cli_json_fail(f, v,
				     "%s.%s: expected an integer from %lld to "
				     "86400000",
				     where, v->string, (long long)lo);
	*out = (int64_t)d;
	return AF_OK;
}

static af_err read_restart(cli_json_file *f, const cJSON *obj,
			   const char *where, cli_up_restart *r)
{
	af_err err;

	if (obj == NULL)
		return AF_OK;
	if (!cJSON_IsObject(obj))
		return cli_json_fail(f, obj, "%s: expected an object, got %s",
				     where, cli_json_type_name(obj));
	for (const cJSON *v = obj->child; v != NULL; v = v->next) {
		int64_t n = 0;
		if (!cli_json_listed(restart_keys, v->string))
			return cli_json_unknown_key(f, where, v, restart_keys);
		if (strcmp(v->string, "policy") == 0) {
			const char *s = cJSON_GetStringValue(v);
			if (s != NULL && strcmp(s, "on-failure") == 0)
				r->policy = CLI_UP_ON_FAILURE;
			else if (s != NULL && strcmp(s, "always") == 0)
				r->policy = CLI_UP_ALWAYS;
			else if (s != NULL && strcmp(s, "never") == 0)
				r->policy = CLI_UP_NEVER;
			else
				return cli_json_fail(
					f, v,
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
				return cli_json_fail(
					f, v,
					"%s.on_limit: expected \"give_up\" "
					"or \"stop\"",
					where);
		} else if (strcmp(v->string, "max_restarts") == 0) {
			if ((err = read_ms(f, v, where, 0, &n)) != AF_OK)
				return err;
			if (n > 1000000)
				return cli_json_fail(
					f, v,
					"%s.max_restarts: at most 1000000",
					where);
			r->max_restarts = (int)n;
		} else {
			int64_t lo =
				strcmp(v->string, "window_ms") == 0 ? 1 : 0;
			if ((err = read_ms(f, v, where, lo, &n)) != AF_OK)
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
		return cli_json_fail(
			f, obj,
			"%s: backoff_max_ms (%lld) is below backoff_ms "
			"(%lld)",
			where, (long long)r->backoff_max_ms,
			(long long)r->backoff_ms);
	return AF_OK;
}

/* ---- node configs ------------------------------------------------------ */

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

static af_err check_node_config(cli_json_file *f, cli_up_node *n,
				const cJSON *cfg, const char *where)
{
	cli_node_config nc = {0}; /* freed on every path, even before a read */
	char err[1024];
	af_err rc;

	if (n->config_path != NULL) {
		rc = cli_node_config_load(&nc, n->config_path, err,
					  sizeof(err));
	} else {
		/* Cut out with its lines where the up file has them, so that
		 * the node config reader names the up file's lines. */
		rc = cli_json_cut(f, cfg, &n->inline_text);
		if (rc == AF_EINVAL)
			return cli_json_fail(f, cfg, "%s: cannot place it",
					     where);
		if (rc == AF_OK)
			rc = cli_node_config_parse(&nc, n->inline_text, f->path,
						   err, sizeof(err));
		else
			snprintf(err, sizeof(err), "%s: out of memory",
				 f->path);
	}
	if (rc == AF_OK)
		n->grace_ms = nc.grace_ms;
	else
		snprintf(f->err, f->err_cap, "%s (%s, node \"%s\")", err, where,
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

static af_err read_node(cli_json_file *f, cli_up_config *c, const cJSON *item,
			size_t i, const cli_up_restart *defaults)
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
		return cli_json_fail(f, item, "%s: expected an object, got %s",
				     where, cli_json_type_name(item));
	for (const cJSON *v = item->child; v != NULL; v = v->next)
		if (!cli_json_listed(node_keys, v->string))
			return cli_json_unknown_key(f, where, v, node_keys);
	name = cJSON_GetObjectItemCaseSensitive(item, "name");
	if (name == NULL)
		return cli_json_fail(f, item, "%s: no \"name\"", where);
	if (!cJSON_IsString(name) || name->valuestring[0] == '\0' ||
	    strlen(name->valuestring) > 64 ||
	    strspn(name->valuestring,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_.-") != strlen(name->valuestring))
		return cli_json_fail(
			f, name,
			"%s.name: expected 1 to 64 letters, digits, '_', "
			"'.' or '-'",
			where);
	n->name = name->valuestring;
	for (size_t k = 0; k < i; k++)
		if (strcmp(c->nodes[k].name, n->name) == 0)
			return cli_json_fail(
				f, name,
				"%s.name: \"%s\" is taken by nodes[%zu]", where,
				n->name, k);
	snprintf(rwhere, sizeof(rwhere), "%s.restart", where);
	err = read_restart(f, cJSON_GetObjectItemCaseSensitive(item, "restart"),
			   rwhere, &n->restart);
	if (err != AF_OK)
		return err;
	cfg = cJSON_GetObjectItemCaseSensitive(item, "config");
	snprintf(rwhere, sizeof(rwhere), "%s.config", where);
	if (cfg == NULL)
		return cli_json_fail(f, item, "%s: no \"config\"", where);
	if (cJSON_IsString(cfg)) {
		if (cfg->valuestring[0] == '\0')
			return cli_json_fail(f, cfg, "%s: an empty path",
					     rwhere);
		n->config_path = resolve(f->path, cfg->valuestring);
		if (n->config_path == NULL)
			return AF_ENOMEM;
	} else if (!cJSON_IsObject(cfg)) {
		return cli_json_fail(
			f, cfg,
			"%s: expected a file name or an object (the node "
			"config inline), got %s",
			rwhere, cli_json_type_name(cfg));
	}
	return check_node_config(f, n, cfg, rwhere);
}

static af_err read_top(cli_json_file *f, cli_up_config *c, const cJSON *root)
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
		return cli_json_fail(f, NULL,
				     "expected an object at the top, got %s",
				     cli_json_type_name(root));
	for (v = root->child; v != NULL; v = v->next)
		if (!cli_json_listed(top_keys, v->string))
			return cli_json_unknown_key(f, "the top level", v,
						    top_keys);
	v = cJSON_GetObjectItemCaseSensitive(root, "name");
	if ((err = cli_json_want_string(f, v, "name")) != AF_OK)
		return err;
	c->name = v != NULL ? v->valuestring : "up";
	err = read_restart(f, cJSON_GetObjectItemCaseSensitive(root, "restart"),
			   "restart", &defaults);
	if (err != AF_OK)
		return err;
	nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
	if (nodes == NULL)
		return cli_json_fail(f, NULL,
				     "no \"nodes\": list the nodes to start");
	if (!cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) == 0)
		return cli_json_fail(
			f, nodes, "nodes: expected a non-empty array, got %s",
			cli_json_type_name(nodes));
	c->nnodes = (size_t)cJSON_GetArraySize(nodes);
	c->nodes = calloc(c->nnodes, sizeof(*c->nodes));
	if (c->nodes == NULL)
		return AF_ENOMEM;
	i = 0;
	for (v = nodes->child; v != NULL; v = v->next, i++)
		if ((err = read_node(f, c, v, i, &defaults)) != AF_OK)
			return err;
	return AF_OK;
}

/* Checks the file read into c->file with rc. */
static af_err read_file(cli_up_config *c, af_err rc, const char *path,
			char *err, size_t err_cap)
{
	if (rc == AF_OK)
		rc = read_top(&c->file, c, c->file.root);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	return rc;
}

af_err cli_up_config_parse(cli_up_config *c, const char *text, const char *path,
			   char *err, size_t err_cap)
{
	memset(c, 0, sizeof(*c));
	return read_file(
		c, cli_json_file_parse(&c->file, text, path, err, err_cap),
		path, err, err_cap);
}

af_err cli_up_config_load(cli_up_config *c, const char *path, char *err,
			  size_t err_cap)
{
	memset(c, 0, sizeof(*c));
	return read_file(c,
			 cli_json_file_load(&c->file, path, 16, "an up file",
					    err, err_cap),
			 path, err, err_cap);
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
	cli_json_file_free(&c->file);
	memset(c, 0, sizeof(*c));
}
