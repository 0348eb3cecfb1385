#include "ref.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_msgpack.h"

#define MAX_SEGMENTS 32

typedef enum seg_kind { SEG_KEY, SEG_INDEX, SEG_ALL } seg_kind;

typedef struct segment {
	seg_kind kind;
	const char *key; /* SEG_KEY: not NUL-terminated */
	size_t key_len;
	size_t index; /* SEG_INDEX */
	size_t at;    /* offset of the segment in the reference's body */
} segment;

/* One ${...}: its body (between "${" and "}") parsed. */
typedef struct ref {
	const char *body;
	size_t len;
	bool flow_dir; /* ${flow.dir} */
	const char *step;
	size_t step_len;
	segment segs[MAX_SEGMENTS];
	size_t nsegs;
} ref;

static af_err set_err(char *err, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static af_err set_err(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && cap > 0) {
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return AF_EINVAL;
}

static bool name_char(char c)
{
	return c != '.' && c != '[' && c != ']' && c != '}';
}

static af_err parse_ref(const char *body, size_t len, ref *r, char *err,
			size_t cap)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	r->body = body;
	r->len = len;
	if (len == 8 && memcmp(body, "flow.dir", 8) == 0) {
		r->flow_dir = true;
		return AF_OK;
	}
	if (len < 6 || memcmp(body, "steps.", 6) != 0)
		return set_err(err, cap,
			       "${%.*s}: a reference starts with \"steps.\" "
			       "(or is ${flow.dir})",
			       (int)len, body);
	i = 6;
	r->step = body + i;
	while (i < len && name_char(body[i]))
		i++;
	r->step_len = (size_t)(body + i - r->step);
	if (r->step_len == 0)
		return set_err(err, cap,
			       "${%.*s}: no step name after \"steps.\"",
			       (int)len, body);
	while (i < len) {
		segment *s;
		if (r->nsegs == MAX_SEGMENTS)
			return set_err(err, cap,
				       "${%.*s}: more than %d path segments",
				       (int)len, body, MAX_SEGMENTS);
		s = &r->segs[r->nsegs++];
		s->at = i;
		if (body[i] == '.') {
			s->kind = SEG_KEY;
			s->key = body + ++i;
			while (i < len && name_char(body[i]))
				i++;
			s->key_len = (size_t)(body + i - s->key);
			if (s->key_len == 0)
				return set_err(err, cap,
					       "${%.*s}: an empty key after "
					       "'.'",
					       (int)len, body);
		} else if (body[i] == '[' && i + 2 < len &&
			   body[i + 1] == '*' && body[i + 2] == ']') {
			s->kind = SEG_ALL;
			i += 3;
		} else if (body[i] == '[') {
			size_t start = ++i;
			size_t n = 0;
			while (i < len && body[i] >= '0' && body[i] <= '9' &&
			       i - start < 9)
				n = n * 10 + (size_t)(body[i++] - '0');
			if (i == start || i >= len || body[i] != ']')
				return set_err(err, cap,
					       "${%.*s}: after '[' comes an "
					       "index (0 to 999999999) or '*', "
					       "then ']'",
					       (int)len, body);
			s->kind = SEG_INDEX;
			s->index = n;
			i++;
		} else {
			return set_err(err, cap,
				       "${%.*s}: expected .key, [N] or [*] "
				       "at \"%.*s\"",
				       (int)len, body, (int)(len - i),
				       body + i);
		}
	}
	return AF_OK;
}

/* Calls fn for each reference of s in order, and for each literal part
 * (ref NULL). A literal "$${" is given as "${". */
typedef af_err (*part_fn)(void *arg, const char *lit, size_t lit_len,
			  const ref *r);

static af_err each_part(const char *s, size_t len, part_fn fn, void *arg,
			char *err, size_t cap)
{
	size_t i = 0;
	size_t lit = 0;
	af_err rc;

	while (i < len) {
		if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' &&
		    s[i + 2] == '{') {
			if ((rc = fn(arg, s + lit, i - lit, NULL)) != AF_OK)
				return rc;
			lit = i + 1; /* the second '$' starts the literal */
			i += 3;
		} else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
			const char *close = memchr(s + i + 2, '}', len - i - 2);
			ref r;
			if (close == NULL)
				return set_err(
					err, cap,
					"\"%.*s\": a \"${\" without "
					"its \"}\" (write \"$${\" for a "
					"literal \"${\")",
					(int)(len - i > 60 ? 60 : len - i),
					s + i);
			if ((rc = fn(arg, s + lit, i - lit, NULL)) != AF_OK)
				return rc;
			rc = parse_ref(s + i + 2, (size_t)(close - (s + i + 2)),
				       &r, err, cap);
			if (rc == AF_OK)
				rc = fn(arg, NULL, 0, &r);
			if (rc != AF_OK)
				return rc;
			i = (size_t)(close - s) + 1;
			lit = i;
		} else {
			i++;
		}
	}
	return fn(arg, s + lit, len - lit, NULL);
}

bool cli_ref_any(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (s[i] == '$' && s[i + 1] == '{')
			return true;
	return false;
}

/* ---- checking ---------------------------------------------------------- */

typedef struct check {
	bool (*known)(void *user, const char *name, size_t len);
	void *user;
	char *err;
	size_t cap;
} check;

static af_err check_part(void *arg, const char *lit, size_t lit_len,
			 const ref *r)
{
	check *c = arg;

	(void)lit;
	(void)lit_len;
	if (r == NULL || r->flow_dir)
		return AF_OK;
	if (!c->known(c->user, r->step, r->step_len))
		return set_err(c->err, c->cap,
			       "${%.*s}: no step \"%.*s\" before this one",
			       (int)r->len, r->body, (int)r->step_len, r->step);
	return AF_OK;
}

af_err cli_ref_check(const char *s, size_t len,
		     bool (*known)(void *user, const char *name, size_t len),
		     void *user, char *err, size_t err_cap)
{
	check c = {.known = known, .user = user, .err = err, .cap = err_cap};

	return each_part(s, len, check_part, &c, err, err_cap);
}

/* ---- resolving --------------------------------------------------------- */

static const char *type_name(const af_value *v)
{
	switch (af_value_type(v)) {
	case AF_TYPE_NIL:
		return "null";
	case AF_TYPE_BOOL:
		return "a boolean";
	case AF_TYPE_INT:
	case AF_TYPE_FLOAT:
		return "a number";
	case AF_TYPE_STR:
		return "a string";
	case AF_TYPE_BIN:
		return "binary";
	case AF_TYPE_ARRAY:
		return "an array";
	case AF_TYPE_MAP:
		return "a map";
	case AF_TYPE_NONE:
	case AF_TYPE_EXT:
	default:
		return "nothing";
	}
}

static const af_value *map_get(const af_value *m, const char *key, size_t len)
{
	size_t n = af_value_len(m);

	for (size_t i = 0; i < n; i++) {
		const char *k;
		size_t klen;
		if (af_value_str(af_value_key_at(m, i), &k, &klen) == AF_OK &&
		    klen == len && memcmp(k, key, len) == 0)
			return af_value_val_at(m, i);
	}
	return NULL;
}

/* Packs the value at r's path from segment seg on, v being where the path
 * has got to. */
static af_err resolve(const ref *r, size_t seg, const af_value *v,
		      af_payload *out, char *err, size_t cap)
{
	const segment *s;
	af_err rc;

	if (seg == r->nsegs)
		return af_pack_value(out, v);
	s = &r->segs[seg];
	switch (s->kind) {
	case SEG_KEY: {
		const af_value *next;
		if (af_value_type(v) != AF_TYPE_MAP)
			return set_err(err, cap,
				       "${%.*s}: %.*s is %s, not a map (for "
				       ".%.*s)",
				       (int)r->len, r->body, (int)s->at,
				       r->body, type_name(v), (int)s->key_len,
				       s->key);
		next = map_get(v, s->key, s->key_len);
		if (next == NULL)
			return set_err(err, cap,
				       "${%.*s}: %.*s has no key \"%.*s\"",
				       (int)r->len, r->body, (int)s->at,
				       r->body, (int)s->key_len, s->key);
		return resolve(r, seg + 1, next, out, err, cap);
	}
	case SEG_INDEX:
		if (af_value_type(v) != AF_TYPE_ARRAY)
			return set_err(err, cap,
				       "${%.*s}: %.*s is %s, not an array (for "
				       "[%zu])",
				       (int)r->len, r->body, (int)s->at,
				       r->body, type_name(v), s->index);
		if (s->index >= af_value_len(v))
			return set_err(err, cap,
				       "${%.*s}: index %zu is out of range: "
				       "%.*s has %zu element%s",
				       (int)r->len, r->body, s->index,
				       (int)s->at, r->body, af_value_len(v),
				       af_value_len(v) == 1 ? "" : "s");
		return resolve(r, seg + 1, af_value_at(v, s->index), out, err,
			       cap);
	case SEG_ALL:
	default:
		if (af_value_type(v) != AF_TYPE_ARRAY)
			return set_err(err, cap,
				       "${%.*s}: %.*s is %s, not an array (for "
				       "[*])",
				       (int)r->len, r->body, (int)s->at,
				       r->body, type_name(v));
		rc = af_pack_array(out, (uint32_t)af_value_len(v));
		for (size_t i = 0; rc == AF_OK && i < af_value_len(v); i++)
			rc = resolve(r, seg + 1, af_value_at(v, i), out, err,
				     cap);
		return rc;
	}
}

static af_err resolve_ref(const cli_ref_env *env, const ref *r, af_payload *out,
			  char *err, size_t cap)
{
	const af_value *root;
	af_err rc;

	if (r->flow_dir) {
		if (env->flow_dir == NULL)
			return set_err(err, cap,
				       "${flow.dir}: there is no flow file");
		return af_pack_str(out, env->flow_dir);
	}
	root = env->step(env->user, r->step, r->step_len, err, cap);
	if (root == NULL)
		return AF_EINVAL;
	rc = resolve(r, 0, root, out, err, cap);
	if (rc != AF_OK && rc != AF_EINVAL)
		set_err(err, cap, "${%.*s}: %s", (int)r->len, r->body,
			af_strerror(rc));
	return rc;
}

/* ---- text -------------------------------------------------------------- */

static af_err append(char **buf, size_t *len, const char *s, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);

	if (b == NULL)
		return AF_ENOMEM;
	memcpy(b + *len, s, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
	return AF_OK;
}

af_err cli_value_text(const af_value *v, char **buf, size_t *len)
{
	const char *s;
	size_t n;
	char *json = NULL;
	af_err rc;

	if (af_value_str(v, &s, &n) == AF_OK)
		return append(buf, len, s, n);
	if (af_value_type(v) == AF_TYPE_ARRAY) {
		rc = append(buf, len, "", 0);
		for (size_t i = 0; rc == AF_OK && i < af_value_len(v); i++) {
			if (i > 0)
				rc = append(buf, len, "\n", 1);
			if (rc == AF_OK)
				rc = cli_value_text(af_value_at(v, i), buf,
						    len);
		}
		return rc;
	}
	rc = cli_value_to_json(v, &json, &n);
	if (rc == AF_OK)
		rc = append(buf, len, json, n);
	free(json);
	return rc;
}

/* Resolves r and appends its text. */
static af_err ref_text(const cli_ref_env *env, const ref *r, bool json,
		       char **buf, size_t *len, char *err, size_t cap)
{
	af_payload *p = NULL;
	af_doc *doc = NULL;
	const void *data;
	size_t n;
	af_err rc = af_payload_new(&p);

	if (rc == AF_OK)
		rc = resolve_ref(env, r, p, err, cap);
	if (rc == AF_OK)
		rc = af_payload_status(p);
	if (rc == AF_OK) {
		data = af_payload_data(p, &n);
		rc = af_doc_parse(&doc, data, n);
	}
	if (rc == AF_OK) {
		const af_value *v = af_doc_root(doc);
		if (json && af_value_type(v) != AF_TYPE_STR) {
			char *j = NULL;
			rc = cli_value_to_json(v, &j, &n);
			if (rc == AF_OK)
				rc = append(buf, len, j, n);
			free(j);
		} else {
			rc = cli_value_text(v, buf, len);
		}
	}
	if (rc == AF_ENOMEM)
		set_err(err, cap, "out of memory");
	else if (rc != AF_OK && rc != AF_EINVAL)
		set_err(err, cap, "${%.*s}: %s", (int)r->len, r->body,
			af_strerror(rc));
	af_doc_destroy(&doc);
	af_payload_destroy(&p);
	return rc;
}

typedef struct texter {
	const cli_ref_env *env;
	bool json; /* a lone reference prints as JSON */
	char *buf;
	size_t len;
	char *err;
	size_t cap;
} texter;

static af_err text_part(void *arg, const char *lit, size_t lit_len,
			const ref *r)
{
	texter *t = arg;

	if (r == NULL)
		return append(&t->buf, &t->len, lit, lit_len);
	return ref_text(t->env, r, t->json, &t->buf, &t->len, t->err, t->cap);
}

/* Whether s is exactly one reference, parsed into r. */
static bool lone_ref(const char *s, size_t len, ref *r)
{
	const char *close;

	if (len < 3 || s[0] != '$' || s[1] != '{' || s[len - 1] != '}')
		return false;
	close = memchr(s + 2, '}', len - 2);
	if (close != s + len - 1)
		return false;
	return parse_ref(s + 2, len - 3, r, NULL, 0) == AF_OK;
}

af_err cli_ref_text(const cli_ref_env *env, const char *s, size_t len,
		    char **out, char *err, size_t err_cap)
{
	texter t = {.env = env, .err = err, .cap = err_cap};
	ref r;
	af_err rc;

	*out = NULL;
	t.json = lone_ref(s, len, &r);
	rc = append(&t.buf, &t.len, "", 0);
	if (rc == AF_OK)
		rc = each_part(s, len, text_part, &t, err, err_cap);
	if (rc != AF_OK) {
		if (rc == AF_ENOMEM)
			set_err(err, err_cap, "out of memory");
		free(t.buf);
		return rc;
	}
	*out = t.buf;
	return AF_OK;
}

/* ---- templates --------------------------------------------------------- */

static af_err expand_str(const cli_ref_env *env, const af_value *v,
			 af_payload *out, char *err, size_t cap)
{
	const char *s;
	size_t len;
	char *text = NULL;
	ref r;
	af_err rc;

	af_value_str(v, &s, &len);
	if (!cli_ref_any(s, len))
		return af_pack_value(out, v);
	if (lone_ref(s, len, &r))
		return resolve_ref(env, &r, out, err, cap);
	rc = cli_ref_text(env, s, len, &text, err, cap);
	if (rc == AF_OK)
		rc = af_pack_str(out, text);
	free(text);
	return rc;
}

static af_err expand(const cli_ref_env *env, const af_value *v, af_payload *out,
		     char *err, size_t cap)
{
	size_t n = af_value_len(v);
	af_err rc = AF_OK;

	switch (af_value_type(v)) {
	case AF_TYPE_NONE:
		return af_pack_nil(out);
	case AF_TYPE_STR:
		return expand_str(env, v, out, err, cap);
	case AF_TYPE_ARRAY:
		rc = af_pack_array(out, (uint32_t)n);
		for (size_t i = 0; rc == AF_OK && i < n; i++)
			rc = expand(env, af_value_at(v, i), out, err, cap);
		return rc;
	case AF_TYPE_MAP:
		rc = af_pack_map(out, (uint32_t)n);
		for (size_t i = 0; rc == AF_OK && i < n; i++) {
			rc = af_pack_value(out, af_value_key_at(v, i));
			if (rc == AF_OK)
				rc = expand(env, af_value_val_at(v, i), out,
					    err, cap);
		}
		return rc;
	default:
		return af_pack_value(out, v);
	}
}

af_err cli_ref_expand(const cli_ref_env *env, const af_value *tmpl,
		      af_payload *out, char *err, size_t err_cap)
{
	af_err rc;

	if (err != NULL && err_cap > 0)
		err[0] = '\0';
	/* The writer's status is the caller's to check: out may be inside a
	 * container still open. */
	rc = expand(env, tmpl, out, err, err_cap);
	if (rc == AF_ENOMEM)
		set_err(err, err_cap, "out of memory");
	else if (rc != AF_OK && err != NULL && err_cap > 0 && err[0] == '\0')
		set_err(err, err_cap, "%s", af_strerror(rc));
	return rc;
}
