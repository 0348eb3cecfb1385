#include <limits.h>
#include <msgpack.h>
#include <string.h>

#include "envelope.h"
#include "payload_internal.h"

#define ENVELOPE_FIELDS 8

struct fixed_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
};

static int fixed_buf_write(void *data, const char *src, size_t len)
{
	struct fixed_buf *b = data;

	if (b->cap - b->len < len)
		return -1;
	memcpy(b->data + b->len, src, len);
	b->len += len;
	return 0;
}

static bool kind_valid(uint64_t kind)
{
	return kind >= AF_KIND_TELL && kind <= AF_KIND_HEARTBEAT;
}

static int pack_opt_str(msgpack_packer *pk, const char *s, size_t len)
{
	int rc;

	if (s == NULL)
		return msgpack_pack_nil(pk);
	rc = msgpack_pack_str(pk, len);
	if (rc == 0 && len > 0)
		rc = msgpack_pack_str_body(pk, s, len);
	return rc;
}

af_err af__envelope_header(uint8_t *buf, size_t cap, size_t *len,
			   const af__envelope *env)
{
	struct fixed_buf b = {.data = buf, .cap = cap, .len = 0};
	msgpack_packer pk;
	int rc;

	if (buf == NULL || len == NULL || env == NULL)
		return AF_EINVAL;
	if (!kind_valid(env->kind))
		return AF_EINVAL;
	if ((env->type != NULL && env->type_len > AF__TYPE_MAX) ||
	    (env->to != NULL && env->to_len > AF__NAME_MAX))
		return AF_EINVAL;

	msgpack_packer_init(&pk, &b, fixed_buf_write);
	rc = msgpack_pack_array(&pk, ENVELOPE_FIELDS);
	rc = rc ? rc : msgpack_pack_uint32(&pk, AF__PROTOCOL_VERSION);
	rc = rc ? rc : msgpack_pack_uint32(&pk, (uint32_t)env->kind);
	rc = rc ? rc : msgpack_pack_uint64(&pk, env->id);
	rc = rc ? rc : msgpack_pack_uint64(&pk, env->seq);
	rc = rc ? rc : pack_opt_str(&pk, env->type, env->type_len);
	rc = rc ? rc : msgpack_pack_uint64(&pk, env->ttl_ms);
	rc = rc ? rc : pack_opt_str(&pk, env->to, env->to_len);
	/* Only a buffer smaller than AF__HEADER_MAX can fail here. */
	if (rc != 0)
		return AF_EINVAL;
	*len = b.len;
	return AF_OK;
}

static bool read_uint(const msgpack_object *o, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*out = o->via.u64;
	return true;
}

static bool read_opt_str(const msgpack_object *o, size_t max, const char **s,
			 size_t *len)
{
	if (o->type == MSGPACK_OBJECT_NIL) {
		*s = NULL;
		*len = 0;
		return true;
	}
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
		return false;
	/* msgpack-c leaves ptr NULL for an empty string, and NULL means nil
	 * here. */
	*s = o->via.str.size > 0 ? o->via.str.ptr : "";
	*len = o->via.str.size;
	return true;
}

af_err af__envelope_decode(af__envelope *env, const void *data, size_t len,
			   size_t max_size, msgpack_zone *zone)
{
	msgpack_object root;
	const msgpack_object *f;
	size_t off = 0;
	uint64_t version, kind;

	memset(env, 0, sizeof(*env));
	if (len > max_size)
		return AF_EMSGSIZE;
	/* msgpack-c trusts declared container sizes and allocates for them up
	 * front, so nothing reaches it before this check. */
	if (af__msgpack_check(data, len, AF__PARSE_DEPTH) != AF_OK)
		return AF_EPROTO;
	switch (msgpack_unpack(data, len, &off, zone, &root)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return AF_ENOMEM;
	default:
		return AF_EPROTO;
	}

	if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size == 0)
		return AF_EPROTO;
	f = root.via.array.ptr;
	/* The version is judged before the shape, so that a later version
	 * with more or fewer fields is still reported as a version mismatch. */
	if (!read_uint(&f[0], &version))
		return AF_EPROTO;
	if (version != AF__PROTOCOL_VERSION)
		return AF_EVERSION;
	if (root.via.array.size != ENVELOPE_FIELDS)
		return AF_EPROTO;
	if (!read_uint(&f[1], &kind) || !kind_valid(kind))
		return AF_EPROTO;
	if (!read_uint(&f[2], &env->id) || !read_uint(&f[3], &env->seq) ||
	    !read_opt_str(&f[4], AF__TYPE_MAX, &env->type, &env->type_len) ||
	    !read_uint(&f[5], &env->ttl_ms) ||
	    !read_opt_str(&f[6], AF__NAME_MAX, &env->to, &env->to_len))
		return AF_EPROTO;
	env->kind = (af_kind)kind;
	/* The element lives in the zone, as long as the rest of the message. */
	env->payload = &f[7];
	return AF_OK;
}

af_err af__error_payload(af_payload *p, int code, const char *text)
{
	af_pack_map(p, 2);
	af_pack_str(p, "code");
	af_pack_int(p, code);
	af_pack_str(p, "message");
	return af_pack_str(p, text != NULL ? text : af_strerror(code));
}

af_err af__error_read(const msgpack_object *payload, int *code,
		      const char **text, size_t *text_len)
{
	const af_value *map = (const af_value *)payload;
	int64_t c;
	const char *s;
	size_t n;

	if (af_value_int(af_value_get(map, "code"), &c) != AF_OK ||
	    c < INT_MIN || c > INT_MAX)
		return AF_EPROTO;
	/* A peer that sent no usable message still gets a readable one. */
	if (af_value_str(af_value_get(map, "message"), &s, &n) != AF_OK) {
		s = af_strerror((int)c);
		n = strlen(s);
	}
	if (code != NULL)
		*code = (int)c;
	if (text != NULL)
		*text = s;
	if (text_len != NULL)
		*text_len = n;
	return AF_OK;
}
