#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "actorflow/payload.h"
#include "envelope.h"
#include "payload_internal.h"

/* af_value is the public name of msgpack_object: the views handed out are
 * objects inside a msgpack zone, so no copy or wrapper is needed. */
static const msgpack_object *obj(const af_value *v)
{
	return (const msgpack_object *)v;
}

static const af_value *val(const msgpack_object *o)
{
	return (const af_value *)o;
}

af_type af_value_type(const af_value *v)
{
	if (v == NULL)
		return AF_TYPE_NONE;
	switch (obj(v)->type) {
	case MSGPACK_OBJECT_NIL:
		return AF_TYPE_NIL;
	case MSGPACK_OBJECT_BOOLEAN:
		return AF_TYPE_BOOL;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return AF_TYPE_INT;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return AF_TYPE_FLOAT;
	case MSGPACK_OBJECT_STR:
		return AF_TYPE_STR;
	case MSGPACK_OBJECT_BIN:
		return AF_TYPE_BIN;
	case MSGPACK_OBJECT_ARRAY:
		return AF_TYPE_ARRAY;
	case MSGPACK_OBJECT_MAP:
		return AF_TYPE_MAP;
	case MSGPACK_OBJECT_EXT:
		return AF_TYPE_EXT;
	}
	return AF_TYPE_NONE;
}

af_err af_value_bool(const af_value *v, bool *out)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	if (obj(v)->type != MSGPACK_OBJECT_BOOLEAN)
		return AF_ETYPE;
	*out = obj(v)->via.boolean;
	return AF_OK;
}

af_err af_value_int(const af_value *v, int64_t *out)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	switch (obj(v)->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (obj(v)->via.u64 > INT64_MAX)
			return AF_ERANGE;
		*out = (int64_t)obj(v)->via.u64;
		return AF_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = obj(v)->via.i64;
		return AF_OK;
	default:
		return AF_ETYPE;
	}
}

af_err af_value_uint(const af_value *v, uint64_t *out)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	switch (obj(v)->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = obj(v)->via.u64;
		return AF_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		/* msgpack-c files every non-negative integer, however encoded,
		 * as positive, so a negative one is always below zero. */
		return AF_ERANGE;
	default:
		return AF_ETYPE;
	}
}

af_err af_value_double(const af_value *v, double *out)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	switch (obj(v)->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = obj(v)->via.f64;
		return AF_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double)obj(v)->via.u64;
		return AF_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double)obj(v)->via.i64;
		return AF_OK;
	default:
		return AF_ETYPE;
	}
}

af_err af_value_str(const af_value *v, const char **s, size_t *len)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	if (obj(v)->type != MSGPACK_OBJECT_STR)
		return AF_ETYPE;
	/* msgpack-c gives an empty string a NULL ptr; callers get "". */
	*s = obj(v)->via.str.size > 0 ? obj(v)->via.str.ptr : "";
	*len = obj(v)->via.str.size;
	return AF_OK;
}

af_err af_value_bin(const af_value *v, const void **data, size_t *len)
{
	if (v == NULL)
		return AF_ENOTFOUND;
	if (obj(v)->type != MSGPACK_OBJECT_BIN)
		return AF_ETYPE;
	*data = obj(v)->via.bin.size > 0 ? obj(v)->via.bin.ptr : "";
	*len = obj(v)->via.bin.size;
	return AF_OK;
}

char *af_value_strdup(const af_value *v)
{
	const char *s;
	size_t len;
	char *copy;

	if (af_value_str(v, &s, &len) != AF_OK)
		return NULL;
	copy = malloc(len + 1);
	if (copy == NULL)
		return NULL;
	if (len > 0)
		memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

static bool str_is(const msgpack_object *o, const char *s, size_t len)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
	       (len == 0 || memcmp(o->via.str.ptr, s, len) == 0);
}

bool af_value_str_eq(const af_value *v, const char *s)
{
	if (v == NULL || s == NULL)
		return false;
	return str_is(obj(v), s, strlen(s));
}

size_t af_value_len(const af_value *v)
{
	if (v == NULL)
		return 0;
	switch (obj(v)->type) {
	case MSGPACK_OBJECT_ARRAY:
		return obj(v)->via.array.size;
	case MSGPACK_OBJECT_MAP:
		return obj(v)->via.map.size;
	case MSGPACK_OBJECT_STR:
		return obj(v)->via.str.size;
	case MSGPACK_OBJECT_BIN:
		return obj(v)->via.bin.size;
	default:
		return 0;
	}
}

const af_value *af_value_at(const af_value *v, size_t i)
{
	if (v == NULL || obj(v)->type != MSGPACK_OBJECT_ARRAY ||
	    i >= obj(v)->via.array.size)
		return NULL;
	return val(&obj(v)->via.array.ptr[i]);
}

const af_value *af_value_key_at(const af_value *v, size_t i)
{
	if (v == NULL || obj(v)->type != MSGPACK_OBJECT_MAP ||
	    i >= obj(v)->via.map.size)
		return NULL;
	return val(&obj(v)->via.map.ptr[i].key);
}

const af_value *af_value_val_at(const af_value *v, size_t i)
{
	if (v == NULL || obj(v)->type != MSGPACK_OBJECT_MAP ||
	    i >= obj(v)->via.map.size)
		return NULL;
	return val(&obj(v)->via.map.ptr[i].val);
}

const af_value *af_value_get(const af_value *v, const char *key)
{
	const msgpack_object_map *map;
	size_t key_len;

	if (v == NULL || key == NULL || obj(v)->type != MSGPACK_OBJECT_MAP)
		return NULL;
	map = &obj(v)->via.map;
	key_len = strlen(key);
	/* With duplicate keys the first one wins. */
	for (uint32_t i = 0; i < map->size; i++) {
		if (str_is(&map->ptr[i].key, key, key_len))
			return val(&map->ptr[i].val);
	}
	return NULL;
}

int64_t af_value_get_int(const af_value *map, const char *key, int64_t dflt)
{
	int64_t v;

	return af_value_int(af_value_get(map, key), &v) == AF_OK ? v : dflt;
}

double af_value_get_double(const af_value *map, const char *key, double dflt)
{
	double v;

	return af_value_double(af_value_get(map, key), &v) == AF_OK ? v : dflt;
}

bool af_value_get_bool(const af_value *map, const char *key, bool dflt)
{
	bool v;

	return af_value_bool(af_value_get(map, key), &v) == AF_OK ? v : dflt;
}

struct af_doc {
	msgpack_zone zone;
	msgpack_object root;
	/* The strings and binaries of root point into this copy. */
	char data[];
};

af_err af_doc_parse(af_doc **out, const void *data, size_t len)
{
	af_doc *d;
	size_t off = 0;
	af_err err;

	if (out == NULL)
		return AF_EINVAL;
	*out = NULL;
	if (len == 0)
		return AF_EPROTO;
	if (data == NULL)
		return AF_EINVAL;
	/* Before any allocation: the checked input bounds what msgpack-c
	 * allocates by its length. */
	if (af__msgpack_check(data, len, AF__PARSE_DEPTH) != AF_OK)
		return AF_EPROTO;
	if (len > SIZE_MAX - sizeof(*d))
		return AF_ENOMEM;
	d = malloc(sizeof(*d) + len);
	if (d == NULL)
		return AF_ENOMEM;
	memcpy(d->data, data, len);
	if (!msgpack_zone_init(&d->zone, MSGPACK_ZONE_CHUNK_SIZE)) {
		err = AF_ENOMEM;
		goto free_doc;
	}
	switch (msgpack_unpack(d->data, len, &off, &d->zone, &d->root)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		err = AF_ENOMEM;
		goto destroy_zone;
	default:
		err = AF_EPROTO;
		goto destroy_zone;
	}
	*out = d;
	return AF_OK;

destroy_zone:
	msgpack_zone_destroy(&d->zone);
free_doc:
	free(d);
	return err;
}

void af_doc_destroy(af_doc **d)
{
	if (d == NULL || *d == NULL)
		return;
	msgpack_zone_destroy(&(*d)->zone);
	free(*d);
	*d = NULL;
}

const af_value *af_doc_root(const af_doc *d)
{
	if (d == NULL)
		return NULL;
	return val(&d->root);
}
