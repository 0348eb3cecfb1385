#define _GNU_SOURCE /* strtod_l */
#include "json_reader.h"

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "json.h"

/* The paths as a tree of their components: node 0 is the top object, a
 * node's children the keys (or array indices) under it, in a list. */
#define MAX_NODES (AF_JSON_MAX_PICKS * AF_JSON_PATH_DEPTH + 1)

typedef struct node {
	const char *key; /* NULL: an array index */
	size_t key_len;
	long index;
	uint32_t ends;    /* the paths that end here */
	int first_child;  /* -1: none */
	int next_sibling; /* -1: none */
} node;

/* An open object or array, from the top down: at, the node it is (-1: on
 * no path); in an object, child the node of the key being read, and seen
 * the children whose key came already (a repeated key is not followed:
 * the first counts, as cJSON's lookup finds); in an array, index counts
 * its elements so far. */
typedef struct level {
	int at;
	int child;
	uint64_t seen;
	long index;
	bool array;
} level;

struct af_json_reader {
	yajl_handle parser;
	/* JSON's numbers have a '.' whatever locale the program set: strtod
	 * would follow LC_NUMERIC, strtod_l with this does not. */
	locale_t c_numeric;
	node nodes[MAX_NODES];
	int nnodes;
	size_t n;    /* paths */
	char *names; /* the paths' keys, one block */
	/* One text's read. */
	af_json_pick *out;
	uint32_t filled;                  /* picks found */
	size_t str_at[AF_JSON_MAX_PICKS]; /* a string's offset in strings */
	char *strings;
	size_t strings_len;
	size_t strings_cap;
	level levels[AF_JSON_MAX_DEPTH];
	int depth;       /* levels open */
	bool begun;      /* the top value began */
	bool closed;     /* the top value ended */
	size_t end_at;   /* the byte after it */
	const char *why; /* set: the read failed */
	af_err err;
};

static int fail(af_json_reader *r, af_err err, const char *why)
{
	r->err = err;
	r->why = why;
	return 0; /* yajl stops at once */
}

/* ---- matching ---------------------------------------------------------- */

static int child_by_key(const af_json_reader *r, int at,
			const unsigned char *key, size_t len)
{
	for (int c = r->nodes[at].first_child; c >= 0;
	     c = r->nodes[c].next_sibling) {
		const node *n = &r->nodes[c];

		if (n->key != NULL && n->key_len == len &&
		    memcmp(n->key, key, len) == 0)
			return c;
	}
	return -1;
}

static int child_by_index(const af_json_reader *r, int at, long index)
{
	for (int c = r->nodes[at].first_child; c >= 0;
	     c = r->nodes[c].next_sibling) {
		if (r->nodes[c].key == NULL && r->nodes[c].index == index)
			return c;
	}
	return -1;
}

/* A value begins: returns its node (-1: on no path), and sets the kind of
 * the picks that end there, not yet filled; *picks says which. */
static int begin_value(af_json_reader *r, af_json_kind kind, uint32_t *picks)
{
	level *l;
	int at;

	*picks = 0;
	if (r->depth == 0)
		return 0;
	l = &r->levels[r->depth - 1];
	if (!l->array)
		at = l->child;
	else
		at = l->at >= 0 ? child_by_index(r, l->at, l->index) : -1;
	if (l->array)
		l->index++;
	if (at < 0)
		return -1;
	*picks = r->nodes[at].ends & ~r->filled;
	r->filled |= *picks;
	for (uint32_t m = *picks; m != 0; m &= m - 1)
		r->out[__builtin_ctz(m)].kind = kind;
	return at;
}

/* ---- yajl's callbacks -------------------------------------------------- */

/* Whether a value may begin here: the text holds one object. */
static bool may_begin(af_json_reader *r, bool object)
{
	if (r->depth > 0)
		return true;
	if (r->begun)
		return fail(r, AF_EPROTO, "more than one value");
	if (!object)
		return fail(r, AF_EPROTO, "not an object");
	r->begun = true;
	return true;
}

/* A scalar; one may fill several picks (*picks). */
static int scalar(af_json_reader *r, af_json_kind kind, uint32_t *picks)
{
	if (!may_begin(r, false))
		return 0;
	(void)begin_value(r, kind, picks);
	return 1;
}

static int on_null(void *ctx)
{
	uint32_t picks;

	return scalar(ctx, AF_JSON_NULL, &picks);
}

static int on_boolean(void *ctx, int value)
{
	uint32_t picks;

	return scalar(ctx, value ? AF_JSON_TRUE : AF_JSON_FALSE, &picks);
}

static int on_number(void *ctx, const char *text, size_t len)
{
	af_json_reader *r = ctx;
	char buf[64];
	uint32_t picks;
	double v;

	if (!scalar(r, AF_JSON_NUMBER, &picks))
		return 0;
	if (picks == 0)
		return 1; /* most numbers of a chunk are read by nobody */
	/* yajl has checked the grammar, and strtod wants a NUL: a copy, on
	 * the heap only for a number longer than any count. */
	if (len < sizeof(buf)) {
		memcpy(buf, text, len);
		buf[len] = '\0';
		v = strtod_l(buf, NULL, r->c_numeric);
	} else {
		char *big = strndup(text, len);

		if (big == NULL)
			return fail(r, AF_ENOMEM, "out of memory");
		v = strtod_l(big, NULL, r->c_numeric);
		free(big);
	}
	for (uint32_t m = picks; m != 0; m &= m - 1)
		r->out[__builtin_ctz(m)].number = v;
	return 1;
}

static bool keep_string(af_json_reader *r, const unsigned char *s, size_t len)
{
	size_t need = r->strings_len + len + 1;

	if (need > r->strings_cap) {
		size_t cap =
			r->strings_cap * 2 > need ? r->strings_cap * 2 : need;
		char *b = realloc(r->strings, cap);

		if (b == NULL)
			return false;
		r->strings = b;
		r->strings_cap = cap;
	}
	memcpy(r->strings + r->strings_len, s, len);
	r->strings[r->strings_len + len] = '\0';
	r->strings_len = need;
	return true;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
	af_json_reader *r = ctx;
	uint32_t picks;
	size_t at = r->strings_len;

	if (!scalar(r, AF_JSON_STRING, &picks))
		return 0;
	if (picks == 0)
		return 1;
	/* yajl's decoded text lives only until its next token: copied. */
	if (!keep_string(r, s, len))
		return fail(r, AF_ENOMEM, "out of memory");
	for (uint32_t m = picks; m != 0; m &= m - 1) {
		int i = __builtin_ctz(m);

		r->str_at[i] = at;
		r->out[i].len = len;
	}
	return 1;
}

static int open_level(af_json_reader *r, bool array)
{
	uint32_t picks;
	level *l;
	int at;

	if (!may_begin(r, !array))
		return 0;
	if (r->depth == AF_JSON_MAX_DEPTH)
		return fail(r, AF_EPROTO, "nested too deep");
	at = begin_value(r, array ? AF_JSON_ARRAY : AF_JSON_OBJECT, &picks);
	l = &r->levels[r->depth++];
	l->at = at >= 0 && r->nodes[at].first_child >= 0 ? at : -1;
	l->child = -1;
	l->seen = 0;
	l->index = 0;
	l->array = array;
	return 1;
}

static int close_level(af_json_reader *r)
{
	if (--r->depth == 0) {
		r->closed = true;
		/* yajl has counted the bytes of the closing bracket. */
		r->end_at = yajl_get_bytes_consumed(r->parser);
	}
	return 1;
}

static int on_start_map(void *ctx)
{
	return open_level(ctx, false);
}

static int on_start_array(void *ctx)
{
	return open_level(ctx, true);
}

static int on_end(void *ctx)
{
	return close_level(ctx);
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
	af_json_reader *r = ctx;
	level *l = &r->levels[r->depth - 1];

	l->child = l->at >= 0 ? child_by_key(r, l->at, key, len) : -1;
	if (l->child > 0) {
		/* Node 0 is the top: a child is 1 to 64. */
		uint64_t bit = 1ull << (l->child - 1);

		if (l->seen & bit)
			l->child = -1;
		l->seen |= bit;
	}
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end,
};

/* ---- the reader -------------------------------------------------------- */

/* One parser reads every text: with multiple values allowed, it takes a
 * new value after a finished one. After a failure its state is spoilt,
 * and a new one replaces it. */
static af_err new_parser(af_json_reader *r)
{
	if (r->parser != NULL)
		yajl_free(r->parser);
	r->parser = yajl_alloc(&callbacks, NULL, r);
	if (r->parser == NULL)
		return AF_ENOMEM;
	yajl_config(r->parser, yajl_allow_multiple_values, 1);
	return AF_OK;
}

/* The child of node at for one component, made when new. */
static int add_child(af_json_reader *r, int at, const char *key, size_t len,
		     long index)
{
	int c = key != NULL
			? child_by_key(r, at, (const unsigned char *)key, len)
			: child_by_index(r, at, index);
	node *n;

	if (c >= 0)
		return c;
	c = r->nnodes++;
	n = &r->nodes[c];
	n->key = key;
	n->key_len = len;
	n->index = index;
	n->ends = 0;
	n->first_child = -1;
	n->next_sibling = r->nodes[at].first_child;
	r->nodes[at].first_child = c;
	return c;
}

/* Adds path i, "a.0.b", to the tree; its keys are copied into *names. */
static af_err add_path(af_json_reader *r, size_t i, const char *text,
		       char **names)
{
	const char *s = text;
	int at = 0;

	for (int depth = 1;; depth++) {
		const char *dot = strchr(s, '.');
		size_t len = dot != NULL ? (size_t)(dot - s) : strlen(s);
		char *end;
		long index;

		if (len == 0 || depth > AF_JSON_PATH_DEPTH)
			return AF_EINVAL;
		index = strtol(s, &end, 10);
		if (end == s + len && s[0] >= '0' && s[0] <= '9') {
			at = add_child(r, at, NULL, 0, index);
		} else {
			memcpy(*names, s, len);
			(*names)[len] = '\0';
			at = add_child(r, at, *names, len, 0);
			*names += len + 1;
		}
		if (dot == NULL)
			break;
		s = dot + 1;
	}
	r->nodes[at].ends |= 1u << i;
	return AF_OK;
}

af_err af__json_reader_new(af_json_reader **out, const char *const *paths,
			   size_t n)
{
	af_json_reader *r;
	size_t names_len = 0;
	char *names;
	af_err err;

	*out = NULL;
	if (n > AF_JSON_MAX_PICKS)
		return AF_EINVAL;
	for (size_t i = 0; i < n; i++)
		names_len += strlen(paths[i]) + 1;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return AF_ENOMEM;
	r->n = n;
	r->names = names = malloc(names_len + 1);
	r->nodes[0].first_child = -1;
	r->nnodes = 1;
	r->c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	err = r->names == NULL || r->c_numeric == (locale_t)0 ? AF_ENOMEM
							      : new_parser(r);
	for (size_t i = 0; err == AF_OK && i < n; i++)
		err = add_path(r, i, paths[i], &names);
	if (err != AF_OK) {
		af__json_reader_destroy(&r);
		return err;
	}
	*out = r;
	return AF_OK;
}

void af__json_reader_destroy(af_json_reader **rp)
{
	af_json_reader *r = *rp;

	if (r == NULL)
		return;
	if (r->parser != NULL)
		yajl_free(r->parser);
	if (r->c_numeric != (locale_t)0)
		freelocale(r->c_numeric);
	free(r->names);
	free(r->strings);
	free(r);
	*rp = NULL;
}

/* Whether only JSON's white space follows the top value. */
static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
			return false;
	}
	return true;
}

af_err af__json_read(af_json_reader *r, const char *text, size_t len,
		     af_json_pick *out, const char **why)
{
	yajl_status st;
	af_err err;

	memset(out, 0, r->n * sizeof(*out));
	if (r->parser == NULL && new_parser(r) != AF_OK) {
		*why = "out of memory"; /* the last failure's new parser */
		return AF_ENOMEM;
	}
	r->out = out;
	r->filled = 0;
	r->strings_len = 0;
	r->depth = 0;
	r->begun = r->closed = false;
	r->why = NULL;
	st = yajl_parse(r->parser, (const unsigned char *)text, len);
	/* What follows the object must be nothing but space: a token cut
	 * short there would wait in yajl for the next text. */
	if (r->why == NULL && (st != yajl_status_ok || !r->closed ||
			       !only_space(text + r->end_at, len - r->end_at)))
		fail(r, AF_EPROTO, "not valid JSON");
	if (r->why == NULL) {
		for (size_t i = 0; i < r->n; i++) {
			if (out[i].kind == AF_JSON_STRING)
				out[i].str = r->strings + r->str_at[i];
		}
		return AF_OK;
	}
	*why = r->why;
	err = r->err;
	memset(out, 0, r->n * sizeof(*out));
	return new_parser(r) != AF_OK ? AF_ENOMEM : err;
}
