#include "curve_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

static const char *const curve_keys[] = {"secret_key_file", "allowed_keys_dir",
					 "allowed_keys", NULL};
static const char *const remote_keys[] = {"endpoint", "curve_key", "server_key",
					  NULL};

/* A key file's failure, said at the config line that named it. */
static af_err key_fail(cli_json_file *f, const cJSON *at, const char *where,
		       af_err rc, const char *why)
{
	if (rc == AF_ENOMEM)
		return rc;
	return cli_json_fail(f, at, "%s: %s", where, why);
}

static af_err want_path(cli_json_file *f, const cJSON *v, const char *where)
{
	if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
		return cli_json_fail(f, v, "%s: expected a file name, got %s",
				     where,
				     cJSON_IsString(v) ? "an empty string"
						       : cli_json_type_name(v));
	return AF_OK;
}

static af_err add_allowed(cli_curve_config *c, const cli_key *keys, size_t n)
{
	cli_key *all = realloc(c->allowed, (c->nallowed + n) * sizeof(*all));

	if (all == NULL)
		return AF_ENOMEM;
	memcpy(all + c->nallowed, keys, n * sizeof(*all));
	c->allowed = all;
	c->nallowed += n;
	return AF_OK;
}

static af_err read_server(cli_json_file *f, const cJSON *v, cli_curve_config *c)
{
	const cJSON *sk =
		cJSON_GetObjectItemCaseSensitive(v, "secret_key_file");
	const cJSON *dir =
		cJSON_GetObjectItemCaseSensitive(v, "allowed_keys_dir");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(v, "allowed_keys");
	char why[512];
	af_err rc;

	if (!cJSON_IsObject(v))
		return cli_json_fail(f, v, "curve: expected an object, got %s",
				     cli_json_type_name(v));
	for (const cJSON *m = v->child; m != NULL; m = m->next)
		if (!cli_json_listed(curve_keys, m->string))
			return cli_json_unknown_key(f, "curve", m, curve_keys);
	if (sk == NULL)
		return cli_json_fail(f, v, "curve: no \"secret_key_file\"");
	if ((rc = want_path(f, sk, "curve.secret_key_file")) != AF_OK)
		return rc;
	rc = cli_key_read_secret(sk->valuestring, c->secret, why, sizeof(why));
	if (rc != AF_OK)
		return key_fail(f, sk, "curve.secret_key_file", rc, why);
	if (dir == NULL && list == NULL)
		return cli_json_fail(f, v,
				     "curve: no \"allowed_keys_dir\" or "
				     "\"allowed_keys\": name the clients "
				     "allowed");
	if (dir != NULL) {
		cli_key *keys = NULL;
		size_t n = 0;
		if ((rc = want_path(f, dir, "curve.allowed_keys_dir")) != AF_OK)
			return rc;
		rc = cli_keys_read_dir(dir->valuestring, &keys, &n, why,
				       sizeof(why));
		if (rc == AF_OK)
			rc = add_allowed(c, (const cli_key *)keys, n);
		free(keys);
		if (rc != AF_OK)
			return key_fail(f, dir, "curve.allowed_keys_dir", rc,
					why);
	}
	if (list != NULL) {
		if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
			return cli_json_fail(
				f, list,
				"curve.allowed_keys: expected a non-empty "
				"array of file names");
		for (const cJSON *e = list->child; e != NULL; e = e->next) {
			cli_key k;
			if ((rc = want_path(f, e, "curve.allowed_keys[]")) !=
			    AF_OK)
				return rc;
			rc = cli_key_read_public(e->valuestring, k, why,
						 sizeof(why));
			if (rc == AF_OK)
				rc = add_allowed(c, (const cli_key *)&k, 1);
			if (rc != AF_OK)
				return key_fail(f, list, "curve.allowed_keys",
						rc, why);
		}
	}
	c->allowed_ptrs = calloc(c->nallowed, sizeof(*c->allowed_ptrs));
	if (c->allowed_ptrs == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < c->nallowed; i++)
		c->allowed_ptrs[i] = c->allowed[i];
	c->export_opts.curve_secret_key = c->secret;
	c->export_opts.curve_allowed_keys = c->allowed_ptrs;
	c->export_opts.curve_nallowed = c->nallowed;
	c->has_server = 1;
	return AF_OK;
}

static af_err read_remote(cli_json_file *f, const cJSON *v, size_t i,
			  cli_curve_remote *r)
{
	char where[48];
	char why[512];
	const cJSON *ep = cJSON_GetObjectItemCaseSensitive(v, "endpoint");
	const cJSON *ck = cJSON_GetObjectItemCaseSensitive(v, "curve_key");
	const cJSON *sk = cJSON_GetObjectItemCaseSensitive(v, "server_key");
	af_err rc;

	snprintf(where, sizeof(where), "remotes[%zu]", i);
	if (!cJSON_IsObject(v))
		return cli_json_fail(f, v, "%s: expected an object, got %s",
				     where, cli_json_type_name(v));
	for (const cJSON *m = v->child; m != NULL; m = m->next)
		if (!cli_json_listed(remote_keys, m->string))
			return cli_json_unknown_key(f, where, m, remote_keys);
	if ((rc = cli_json_want_string(f, ep, where)) != AF_OK)
		return rc;
	if (ep != NULL && strncmp(ep->valuestring, "tcp://", 6) != 0 &&
	    strncmp(ep->valuestring, "ipc://", 6) != 0)
		return cli_json_fail(f, ep,
				     "%s.endpoint: \"%s\" must start with "
				     "tcp:// or ipc:// (as in addresses, "
				     "without #actor)",
				     where, ep->valuestring);
	if (ep != NULL && strchr(ep->valuestring, '#') != NULL)
		return cli_json_fail(f, ep,
				     "%s.endpoint: \"%s\": give the endpoint "
				     "without #actor",
				     where, ep->valuestring);
	r->endpoint = ep != NULL ? ep->valuestring : NULL;
	if (ck == NULL || sk == NULL)
		return cli_json_fail(f, v,
				     "%s: \"curve_key\" (this node's keypair) "
				     "and \"server_key\" (the remote's public "
				     "key) are both required",
				     where);
	if ((rc = want_path(f, ck, where)) != AF_OK ||
	    (rc = want_path(f, sk, where)) != AF_OK)
		return rc;
	rc = cli_key_read_secret(ck->valuestring, r->secret, why, sizeof(why));
	if (rc != AF_OK)
		return key_fail(f, ck, where, rc, why);
	rc = cli_key_read_public(sk->valuestring, r->server, why, sizeof(why));
	if (rc != AF_OK)
		return key_fail(f, sk, where, rc, why);
	return AF_OK;
}

af_err cli_curve_config_read(cli_json_file *f, const cJSON *root,
			     cli_curve_config **out)
{
	const cJSON *curve = cJSON_GetObjectItemCaseSensitive(root, "curve");
	const cJSON *remotes =
		cJSON_GetObjectItemCaseSensitive(root, "remotes");
	cli_curve_config *c;
	af_err rc;
	size_t i = 0;

	*out = NULL;
	if (curve == NULL && remotes == NULL)
		return AF_OK;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return AF_ENOMEM;
	*out = c;
	if (curve != NULL && (rc = read_server(f, curve, c)) != AF_OK)
		return rc;
	if (remotes == NULL)
		return AF_OK;
	if (!cJSON_IsArray(remotes))
		return cli_json_fail(f, remotes,
				     "remotes: expected an array, got %s",
				     cli_json_type_name(remotes));
	c->nremotes = (size_t)cJSON_GetArraySize(remotes);
	c->remotes = calloc(c->nremotes ? c->nremotes : 1, sizeof(*c->remotes));
	if (c->remotes == NULL)
		return AF_ENOMEM;
	for (const cJSON *v = remotes->child; v != NULL; v = v->next, i++)
		if ((rc = read_remote(f, v, i, &c->remotes[i])) != AF_OK)
			return rc;
	return AF_OK;
}

const af_export_opts *cli_curve_export_opts(const cli_curve_config *c)
{
	return c != NULL && c->has_server ? &c->export_opts : NULL;
}

af_err cli_curve_apply_remotes(const cli_curve_config *c, af_system *sys)
{
	if (c == NULL)
		return AF_OK;
	for (size_t i = 0; i < c->nremotes; i++) {
		const cli_curve_remote *r = &c->remotes[i];
		af_curve_keys k = {.server_key = r->server,
				   .secret_key = r->secret};
		af_err rc = af_system_set_curve(sys, r->endpoint, &k);
		if (rc != AF_OK)
			return rc;
	}
	return AF_OK;
}

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

void cli_curve_config_free(cli_curve_config *c)
{
	if (c == NULL)
		return;
	if (c->remotes != NULL)
		wipe(c->remotes, c->nremotes * sizeof(*c->remotes));
	free(c->remotes);
	free(c->allowed);
	free(c->allowed_ptrs);
	wipe(c, sizeof(*c));
	free(c);
}
