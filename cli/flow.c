#include "flow.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_msgpack.h"
#include "ref.h"

const char *const cli_gather_options[] = {"concurrency", "item_timeout_ms",
					  "mode", NULL};

static const char *const top_keys[] = {"description", "python", "actors",
				       "steps", NULL};
static const char *const step_keys[] = {
	"name",       "do",           "to",
	"type",       "payload",      "print",
	"timeout_ms", "background",   "continue_on_error",
	"items",      "concurrency",  "item_timeout_ms",
	"mode",       "as_completed", NULL};
static const char *const gather_file_keys[] = {
	"description",     "python", "actors",       "items", "concurrency",
	"item_timeout_ms", "mode",   "as_completed", NULL};

/* ---- the msgpack form -------------------------------------------------- */

/* The file again as msgpack, through the command's one JSON conversion,
 * so that payloads keep what cJSON's doubles lose (1 is an integer, 1.0 a
 * float, every 64-bit integer exact). */
static af_err to_doc(cli_flow *f)
{
	af_payload *p = NULL;
	char why[256];
	const void *data;
	size_t len;
	af_err rc = af_payload_new(&p);

	if (rc == AF_OK)
		rc = cli_json_to_payload(f->file.text, p, why, sizeof(why));
	if (rc == AF_OK) {
		data = af_payload_data(p, &len);
		rc = af_doc_parse(&f->doc, data, len);
	}
	af_payload_destroy(&p);
	if (rc == AF_ENOMEM)
		snprintf(f->file.err, f->file.err_cap, "%s: out of memory",
			 f->file.path);
	else if (rc != AF_OK)
		return cli_json_fail(&f->file, NULL, "%s", why);
	return rc;
}

static af_err set_dir(cli_flow *f)
{
	char *real = realpath(f->file.path, NULL);

	if (real == NULL)
		return cli_json_fail(&f->file, NULL, "cannot find its folder");
	f->dir = strdup(dirname(real));
	free(real);
	return f->dir == NULL ? AF_ENOMEM : AF_OK;
}

/* ---- checks ------------------------------------------------------------ */

typedef struct names {
	const cli_flow *f;
	size_t n; /* steps[0..n) are known */
} names;

static bool known_step(void *user, const char *name, size_t len)
{
	const names *k = user;

	for (size_t i = 0; i < k->n; i++)
		if (strlen(k->f->steps[i].name) == len &&
		    memcmp(k->f->steps[i].name, name, len) == 0)
			return true;
	return false;
}

/* Checks the references of every string under v. */
static af_err check_refs(cli_flow *f, const cJSON *v, const char *where,
			 size_t known)
{
	names k = {.f = f, .n = known};
	char why[512];

	if (cJSON_IsString(v)) {
		if (cli_ref_check(v->valuestring, strlen(v->valuestring),
				  known_step, &k, why, sizeof(why)) != AF_OK)
			return cli_json_fail(&f->file, v, "%s: %s", where, why);
		return AF_OK;
	}
	for (const cJSON *c = v->child; c != NULL; c = c->next)
		if (check_refs(f, c, where, known) != AF_OK)
			return AF_EINVAL;
	return AF_OK;
}

static bool hosted(const cli_flow *f, const char *name)
{
	for (size_t i = 0; i < f->nactors; i++)
		if (strcmp(f->actors[i].name, name) == 0)
			return true;
	return f->host_gather && strcmp(name, "gather") == 0;
}

/* A plain name must be an actor of the flow: found now, with its line,
 * rather than as AF_ENOTFOUND when the step runs. */
static af_err check_to(cli_flow *f, const cJSON *v, const char *where)
{
	const char *to = v->valuestring;

	if (strstr(to, "://") != NULL) {
		if ((strncmp(to, "ipc://", 6) != 0 &&
		     strncmp(to, "tcp://", 6) != 0) ||
		    strchr(to, '#') == NULL || strchr(to, '#')[1] == '\0')
			return cli_json_fail(
				&f->file, v,
				"%s: \"%s\" is not ipc://PATH#ACTOR "
				"or tcp://HOST:PORT#ACTOR",
				where, to);
		return AF_OK;
	}
	if (cli_ref_any(to, strlen(to)))
		return cli_json_fail(&f->file, v,
				     "%s: an address cannot hold a reference",
				     where);
	if (!hosted(f, to))
		return cli_json_fail(&f->file, v,
				     "%s: no actor \"%s\" among the flow's "
				     "\"actors\" (or give ipc://...#%s)",
				     where, to, to);
	return AF_OK;
}

static af_err want_bool(cli_flow *f, const cJSON *v, const char *where,
			bool *out)
{
	if (v == NULL)
		return AF_OK;
	if (!cJSON_IsBool(v))
		return cli_json_fail(&f->file, v,
				     "%s: expected true or false, got %s",
				     where, cli_json_type_name(v));
	*out = cJSON_IsTrue(v);
	return AF_OK;
}

static af_err want_uint(cli_flow *f, const cJSON *v, const char *where)
{
	double d;

	if (v == NULL || cli_json_integral(v, 0, 4294967295.0, &d))
		return AF_OK;
	return cli_json_fail(&f->file, v,
			     "%s: expected a non-negative integer, got %s",
			     where, cli_json_type_name(v));
}

/* The gather options of a step or a gather file: items and the rest. */
static af_err read_gather(cli_flow *f, cli_step *s, const cJSON *obj,
			  const cJSON *items, const char *where, size_t known)
{
	char w[160];
	const cJSON *v;
	size_t i = 0;
	af_err rc;

	if (!cJSON_IsArray(items))
		return cli_json_fail(
			&f->file, items != NULL ? items : obj,
			"%s.items: expected an array, got %s", where,
			items != NULL ? cli_json_type_name(items) : "nothing");
	for (v = items->child; v != NULL; v = v->next, i++) {
		const cJSON *to = cJSON_GetObjectItemCaseSensitive(v, "to");
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
		snprintf(w, sizeof(w), "%s.items[%zu]", where, i);
		if (!cJSON_IsObject(v))
			return cli_json_fail(&f->file, v,
					     "%s: expected an object, got %s",
					     w, cli_json_type_name(v));
		if (!cJSON_IsString(to) || !cJSON_IsString(type))
			return cli_json_fail(
				&f->file, v,
				"%s: an item needs a \"to\" and a \"type\" "
				"string",
				w);
		/* Names are looked up by the gather actor: the flow's own
		 * only when that actor is the flow's too. */
		if (strstr(s->to, "://") == NULL) {
			snprintf(w, sizeof(w), "%s.items[%zu].to", where, i);
			if ((rc = check_to(f, to, w)) != AF_OK)
				return rc;
		}
	}
	if ((rc = check_refs(f, items, where, known)) != AF_OK)
		return rc;
	snprintf(w, sizeof(w), "%s.concurrency", where);
	if ((rc = want_uint(
		     f, cJSON_GetObjectItemCaseSensitive(obj, "concurrency"),
		     w)) != AF_OK)
		return rc;
	snprintf(w, sizeof(w), "%s.item_timeout_ms", where);
	if ((rc = want_uint(
		     f,
		     cJSON_GetObjectItemCaseSensitive(obj, "item_timeout_ms"),
		     w)) != AF_OK)
		return rc;
	v = cJSON_GetObjectItemCaseSensitive(obj, "mode");
	if (v != NULL &&
	    (!cJSON_IsString(v) || (strcmp(v->valuestring, "collect") != 0 &&
				    strcmp(v->valuestring, "fail_fast") != 0)))
		return cli_json_fail(&f->file, v,
				     "%s.mode: expected \"collect\" or "
				     "\"fail_fast\"",
				     where);
	snprintf(w, sizeof(w), "%s.as_completed", where);
	return want_bool(f,
			 cJSON_GetObjectItemCaseSensitive(obj, "as_completed"),
			 w, &s->as_completed);
}

static bool good_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

static af_err read_step(cli_flow *f, const cJSON *item, size_t i,
			const af_value *mp)
{
	cli_step *s = &f->steps[i];
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
	const cJSON *v;
	char where[128];
	char w[160];
	double d;
	af_err rc;

	snprintf(where, sizeof(where), "steps[%zu]", i);
	if (!cJSON_IsObject(item))
		return cli_json_fail(&f->file, item,
				     "%s: expected an object, got %s", where,
				     cli_json_type_name(item));
	s->line = cli_json_line(&f->file, item);
	for (v = item->child; v != NULL; v = v->next)
		if (!cli_json_listed(step_keys, v->string))
			return cli_json_unknown_key(&f->file, where, v,
						    step_keys);
	if (!cJSON_IsString(name) || !good_name(name->valuestring))
		return cli_json_fail(&f->file, name != NULL ? name : item,
				     "%s: a step needs a \"name\" of 1 to 64 "
				     "letters, digits, '_' or '-'",
				     where);
	s->name = name->valuestring;
	for (size_t k = 0; k < i; k++)
		if (strcmp(f->steps[k].name, s->name) == 0)
			return cli_json_fail(&f->file, name,
					     "%s: the name \"%s\" is taken by "
					     "steps[%zu]",
					     where, s->name, k);
	snprintf(where, sizeof(where), "steps[%zu] (%s)", i, s->name);
	v = cJSON_GetObjectItemCaseSensitive(item, "do");
	if (!cJSON_IsString(v))
		return cli_json_fail(&f->file, v != NULL ? v : item,
				     "%s.do: expected \"ask\", \"stream\", "
				     "\"tell\" or \"gather\"",
				     where);
	if (strcmp(v->valuestring, "ask") == 0)
		s->kind = CLI_STEP_ASK;
	else if (strcmp(v->valuestring, "stream") == 0)
		s->kind = CLI_STEP_STREAM;
	else if (strcmp(v->valuestring, "tell") == 0)
		s->kind = CLI_STEP_TELL;
	else if (strcmp(v->valuestring, "gather") == 0)
		s->kind = CLI_STEP_GATHER;
	else
		return cli_json_fail(&f->file, v,
				     "%s.do: unknown \"%s\" (one of ask, "
				     "stream, tell, gather)",
				     where, v->valuestring);

	v = cJSON_GetObjectItemCaseSensitive(item, "to");
	snprintf(w, sizeof(w), "%s.to", where);
	if ((rc = cli_json_want_string(&f->file, v, w)) != AF_OK)
		return rc;
	if (s->kind == CLI_STEP_GATHER) {
		s->to = v != NULL ? v->valuestring : "gather";
		if (v == NULL && !hosted(f, "gather"))
			f->host_gather = true;
	} else if (v == NULL) {
		return cli_json_fail(&f->file, item, "%s: no \"to\"", where);
	} else {
		s->to = v->valuestring;
	}
	if (v != NULL && (rc = check_to(f, v, w)) != AF_OK)
		return rc;

	v = cJSON_GetObjectItemCaseSensitive(item, "type");
	snprintf(w, sizeof(w), "%s.type", where);
	if (s->kind == CLI_STEP_GATHER) {
		if (v != NULL ||
		    cJSON_GetObjectItemCaseSensitive(item, "payload") != NULL)
			return cli_json_fail(
				&f->file, v != NULL ? v : item,
				"%s: a gather takes \"items\", not "
				"\"type\" or \"payload\"",
				where);
		s->type = "gather";
		if ((rc = read_gather(
			     f, s, item,
			     cJSON_GetObjectItemCaseSensitive(item, "items"),
			     where, i)) != AF_OK)
			return rc;
		s->items = af_value_get(mp, "items");
		s->options = mp;
	} else {
		if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
			return cli_json_fail(&f->file, v != NULL ? v : item,
					     "%s: expected a message type "
					     "string",
					     w);
		s->type = v->valuestring;
		for (const char *const *o = cli_gather_options; *o != NULL; o++)
			if (cJSON_GetObjectItemCaseSensitive(item, *o) != NULL)
				return cli_json_fail(
					&f->file,
					cJSON_GetObjectItemCaseSensitive(item,
									 *o),
					"%s: \"%s\" is for a gather step",
					where, *o);
		if (cJSON_GetObjectItemCaseSensitive(item, "items") != NULL ||
		    cJSON_GetObjectItemCaseSensitive(item, "as_completed") !=
			    NULL)
			return cli_json_fail(
				&f->file, item,
				"%s: \"items\" and \"as_completed\" "
				"are for a gather step",
				where);
		v = cJSON_GetObjectItemCaseSensitive(item, "payload");
		snprintf(w, sizeof(w), "%s.payload", where);
		if (v != NULL && (rc = check_refs(f, v, w, i)) != AF_OK)
			return rc;
		s->payload = af_value_get(mp, "payload");
	}

	s->print = true;
	v = cJSON_GetObjectItemCaseSensitive(item, "print");
	snprintf(w, sizeof(w), "%s.print", where);
	if (cJSON_IsString(v)) {
		s->print_tmpl = v->valuestring;
		if ((rc = check_refs(f, v, w, i + 1)) != AF_OK)
			return rc;
	} else if (v != NULL && !cJSON_IsBool(v)) {
		return cli_json_fail(&f->file, v,
				     "%s: expected true, false or a template "
				     "string, got %s",
				     w, cli_json_type_name(v));
	} else if (v != NULL) {
		s->print = cJSON_IsTrue(v);
	}
	snprintf(w, sizeof(w), "%s.background", where);
	if ((rc = want_bool(
		     f, cJSON_GetObjectItemCaseSensitive(item, "background"), w,
		     &s->background)) != AF_OK)
		return rc;
	snprintf(w, sizeof(w), "%s.continue_on_error", where);
	if ((rc = want_bool(f,
			    cJSON_GetObjectItemCaseSensitive(
				    item, "continue_on_error"),
			    w, &s->continue_on_error)) != AF_OK)
		return rc;
	v = cJSON_GetObjectItemCaseSensitive(item, "timeout_ms");
	if (v != NULL) {
		if (!cli_json_integral(v, 1, 86400000.0 * 365, &d))
			return cli_json_fail(&f->file, v,
					     "%s.timeout_ms: expected a "
					     "positive integer",
					     where);
		s->timeout_ms = (int64_t)d;
	}
	return AF_OK;
}

static af_err read_actors(cli_flow *f, const cJSON *actors)
{
	if (actors == NULL)
		return AF_OK;
	/* Relative ipc:// exports have no folder to go in: a flow gives
	 * absolute ones. */
	return cli_actor_specs_read(&f->file, actors, NULL, CLI_BIND_LOOPBACK,
				    &f->actors, &f->nactors);
}

static af_err read_flow(cli_flow *f)
{
	const cJSON *root = f->file.root;
	const cJSON *steps;
	const cJSON *v;
	const af_value *msteps;
	size_t i = 0;
	af_err rc;

	if (!cJSON_IsObject(root))
		return cli_json_fail(&f->file, NULL,
				     "expected an object at the top, got %s",
				     cli_json_type_name(root));
	for (v = root->child; v != NULL; v = v->next)
		if (!cli_json_listed(top_keys, v->string))
			return cli_json_unknown_key(&f->file, "the top level",
						    v, top_keys);
	if ((rc = cli_json_want_string(
		     &f->file,
		     cJSON_GetObjectItemCaseSensitive(root, "description"),
		     "description")) != AF_OK ||
	    (rc = cli_json_want_string(
		     &f->file, cJSON_GetObjectItemCaseSensitive(root, "python"),
		     "python")) != AF_OK)
		return rc;
	if ((rc = read_actors(f, cJSON_GetObjectItemCaseSensitive(
					 root, "actors"))) != AF_OK)
		return rc;
	steps = cJSON_GetObjectItemCaseSensitive(root, "steps");
	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) == 0)
		return cli_json_fail(&f->file, steps,
				     "steps: expected a non-empty array, got "
				     "%s",
				     steps != NULL ? cli_json_type_name(steps)
						   : "nothing");
	if ((rc = to_doc(f)) != AF_OK)
		return rc;
	msteps = af_value_get(af_doc_root(f->doc), "steps");
	f->nsteps = (size_t)cJSON_GetArraySize(steps);
	f->steps = calloc(f->nsteps, sizeof(*f->steps));
	if (f->steps == NULL)
		return AF_ENOMEM;
	for (v = steps->child; v != NULL; v = v->next, i++)
		if ((rc = read_step(f, v, i, af_value_at(msteps, i))) != AF_OK)
			return rc;
	return AF_OK;
}

static af_err read_gather_file(cli_flow *f, const char *to)
{
	const cJSON *root = f->file.root;
	const cJSON *items = root;
	const af_value *mroot;
	cli_step *s;
	af_err rc;

	f->steps = calloc(1, sizeof(*f->steps));
	if (f->steps == NULL)
		return AF_ENOMEM;
	f->nsteps = 1;
	s = &f->steps[0];
	s->name = "gather";
	s->kind = CLI_STEP_GATHER;
	s->type = "gather";
	s->print = true;
	if (cJSON_IsObject(root)) {
		for (const cJSON *v = root->child; v != NULL; v = v->next)
			if (!cli_json_listed(gather_file_keys, v->string))
				return cli_json_unknown_key(&f->file,
							    "the top level", v,
							    gather_file_keys);
		if ((rc = read_actors(f, cJSON_GetObjectItemCaseSensitive(
						 root, "actors"))) != AF_OK)
			return rc;
		items = cJSON_GetObjectItemCaseSensitive(root, "items");
	} else if (!cJSON_IsArray(root)) {
		return cli_json_fail(&f->file, NULL,
				     "expected an array of items or a map "
				     "with \"items\", got %s",
				     cli_json_type_name(root));
	}
	s->to = to;
	if (to == NULL) {
		s->to = "gather";
		f->host_gather = !hosted(f, "gather");
	} else if (strstr(to, "://") == NULL && !hosted(f, to)) {
		return cli_json_fail(&f->file, NULL,
				     "--to %s: no actor of that name in the "
				     "file's \"actors\" (give ipc://...#%s)",
				     to, to);
	}
	if ((rc = read_gather(f, s, cJSON_IsObject(root) ? root : NULL, items,
			      "gather", 0)) != AF_OK)
		return rc;
	if ((rc = to_doc(f)) != AF_OK)
		return rc;
	mroot = af_doc_root(f->doc);
	if (af_value_type(mroot) == AF_TYPE_ARRAY) {
		s->items = mroot;
	} else {
		s->items = af_value_get(mroot, "items");
		s->options = mroot;
	}
	return AF_OK;
}

/* Reads the file at path: a flow, or with gather, the items of one
 * gather step. */
static af_err load(cli_flow *f, const char *path, bool gather, const char *to,
		   char *err, size_t err_cap)
{
	af_err rc;

	memset(f, 0, sizeof(*f));
	rc = cli_json_file_load(&f->file, path, 64, "a config file", err,
				err_cap);
	if (rc == AF_OK)
		rc = set_dir(f);
	if (rc == AF_OK)
		rc = gather ? read_gather_file(f, to) : read_flow(f);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	return rc;
}

af_err cli_flow_load(cli_flow *f, const char *path, char *err, size_t err_cap)
{
	return load(f, path, false, NULL, err, err_cap);
}

af_err cli_flow_load_gather(cli_flow *f, const char *path, const char *to,
			    char *err, size_t err_cap)
{
	return load(f, path, true, to, err, err_cap);
}

void cli_flow_free(cli_flow *f)
{
	if (f == NULL)
		return;
	free(f->steps);
	cli_actor_specs_free(f->actors, f->nactors);
	af_doc_destroy(&f->doc);
	free(f->dir);
	cli_json_file_free(&f->file);
	memset(f, 0, sizeof(*f));
}
