#include <limits.h>
#include <msgpack.h>
#include <string.h>

#include "envelope.h"
#include "payload_internal.h"

#define ENVELOPE_FIELDS 8

static bool kind_valid(uint64_t kind)
{
	return kind >= AF_KIND_TELL && kind <= AF_KIND_CREDIT;
}

/* Writers for the header's fields, the counterparts of the readers below:
 * a header is a handful of unsigned integers and short strings, written
 * straight into the caller's buffer on every send. */
static uint8_t *wr_uint(uint8_t *w, uint64_t v)
{
	int n;

	if (v <= 0x7f) {
		*w++ = (uint8_t)v;
		return w;
	}
	if (v <= UINT8_MAX) {
		*w++ = 0xcc;
		n = 1;
	} else if (v <= UINT16_MAX) {
		*w++ = 0xcd;
		n = 2;
	} else if (v <= UINT32_MAX) {
		*w++ = 0xce;
		n = 4;
	} else {
		*w++ = 0xcf;
		n = 8;
	}
	for (int i = n - 1; i >= 0; i--)
		*w++ = (uint8_t)(v >> (8 * i));
	return w;
}

static uint8_t *wr_opt_str(uint8_t *w, const char *s, size_t len)
{
	if (s == NULL) {
		*w++ = 0xc0;
		return w;
	}
	if (len <= 31) {
		*w++ = (uint8_t)(0xa0 | len);
	} else {
		/* Strings are at most 255 bytes here: str8 always fits. */
		*w++ = 0xd9;
		*w++ = (uint8_t)len;
	}
	memcpy(w, s, len);
	return w + len;
}

static size_t uint_size(uint64_t v)
{
	return v <= 0x7f         ? 1
	       : v <= UINT8_MAX  ? 2
	       : v <= UINT16_MAX ? 3
	       : v <= UINT32_MAX ? 5
				 : 9;
}

static size_t opt_str_size(const char *s, size_t len)
{
	return s == NULL ? 1 : len <= 31 ? 1 + len : 2 + len;
}

static size_t header_size(const af__envelope *env)
{
	return 1 + uint_size(AF__PROTOCOL_VERSION) + uint_size(env->kind) +
	       uint_size(env->id) + uint_size(env->seq) +
	       opt_str_size(env->type, env->type_len) + uint_size(env->ttl_ms) +
	       opt_str_size(env->to, env->to_len);
}

af_err af__envelope_header(uint8_t *buf, size_t cap, size_t *len,
			   const af__envelope *env)
{
	uint8_t *w = buf;

	if (buf == NULL || len == NULL || env == NULL)
		return AF_EINVAL;
	if (!kind_valid(env->kind))
		return AF_EINVAL;
	if ((env->type != NULL && env->type_len > AF__TYPE_MAX) ||
	    (env->to != NULL && env->to_len > AF__NAME_MAX))
		return AF_EINVAL;
	if (cap < header_size(env))
		return AF_EINVAL;
	*w++ = 0x90 | ENVELOPE_FIELDS;
	w = wr_uint(w, AF__PROTOCOL_VERSION);
	w = wr_uint(w, (uint64_t)env->kind);
	w = wr_uint(w, env->id);
	w = wr_uint(w, env->seq);
	w = wr_opt_str(w, env->type, env->type_len);
	w = wr_uint(w, env->ttl_ms);
	w = wr_opt_str(w, env->to, env->to_len);
	*len = (size_t)(w - buf);
	return AF_OK;
}

/* In-place readers for the header's fields: the header has a fixed shape
 * of scalars, so reading them where they lie spares the allocation of a
 * tree per message; the payload goes through msgpack-c. Each returns false
 * on anything but the expected type or on truncation. */
static bool rd_be(const uint8_t *p, size_t len, size_t *pos, unsigned n,
		  uint64_t *out)
{
	uint64_t v = 0;

	if (len - *pos < n)
		return false;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[*pos + i];
	*pos += n;
	*out = v;
	return true;
}

static bool rd_uint(const uint8_t *p, size_t len, size_t *pos, uint64_t *out)
{
	uint8_t b;

	if (*pos >= len)
		return false;
	b = p[(*pos)++];
	if (b <= 0x7f) {
		*out = b;
		return true;
	}
	if (b >= 0xcc && b <= 0xcf)
		return rd_be(p, len, pos, 1u << (b - 0xcc), out);
	return false;
}

static bool rd_opt_str(const uint8_t *p, size_t len, size_t *pos, size_t max,
		       const char **s, size_t *slen)
{
	uint8_t b;
	uint64_t n;

	if (*pos >= len)
		return false;
	b = p[(*pos)++];
	if (b == 0xc0) {
		*s = NULL;
		*slen = 0;
		return true;
	}
	if (b >= 0xa0 && b <= 0xbf)
		n = b & 0x1f;
	else if (b < 0xd9 || b > 0xdb ||
		 !rd_be(p, len, pos, 1u << (b - 0xd9), &n))
		return false;
	if (n > max || len - *pos < n)
		return false;
	*s = (const char *)p + *pos;
	*slen = (size_t)n;
	*pos += (size_t)n;
	return true;
}

static bool rd_array(const uint8_t *p, size_t len, size_t *pos, uint64_t *n)
{
	uint8_t b;

	if (*pos >= len)
		return false;
	b = p[(*pos)++];
	if (b >= 0x90 && b <= 0x9f) {
		*n = b & 0x0f;
		return true;
	}
	if (b == 0xdc || b == 0xdd)
		return rd_be(p, len, pos, b == 0xdc ? 2 : 4, n);
	return false;
}

/* Reads the header at data and finds where the payload ends: at the end
 * of data (whole), or after the payload's first value (prefix, for the
 * envelopes inside a batch). */
static af_err decode(af__envelope *env, const void *data, size_t len,
		     size_t max_size, size_t *used)
{
	const uint8_t *p = data;
	size_t pos = 0;
	uint64_t fields, version, kind;

	memset(env, 0, sizeof(*env));
	if (len > max_size)
		return AF_EMSGSIZE;
	if (!rd_array(p, len, &pos, &fields) || fields == 0)
		return AF_EPROTO;
	/* The version is judged before the shape, so that a later version
	 * with more or fewer fields is still reported as a version mismatch. */
	if (!rd_uint(p, len, &pos, &version))
		return AF_EPROTO;
	if (version != AF__PROTOCOL_VERSION)
		return AF_EVERSION;
	if (fields != ENVELOPE_FIELDS)
		return AF_EPROTO;
	if (!rd_uint(p, len, &pos, &kind) || !kind_valid(kind) ||
	    !rd_uint(p, len, &pos, &env->id) ||
	    !rd_uint(p, len, &pos, &env->seq) ||
	    !rd_opt_str(p, len, &pos, AF__TYPE_MAX, &env->type,
			&env->type_len) ||
	    !rd_uint(p, len, &pos, &env->ttl_ms) ||
	    !rd_opt_str(p, len, &pos, AF__NAME_MAX, &env->to, &env->to_len))
		return AF_EPROTO;
	env->kind = (af_kind)kind;
	env->payload_data = p + pos;
	env->payload_len = len - pos;
	if (used == NULL) {
		/* msgpack-c trusts declared container sizes and allocates for
		 * them up front, so nothing reaches it before this check. The
		 * envelope array is one level of msgpack-c's fixed parse
		 * depth. A batch's envelopes are checked one by one as they are
		 * delivered (and before any unpacking of the whole). */
		if (env->kind != AF_KIND_BATCH &&
		    af__msgpack_check(env->payload_data, env->payload_len,
				      AF__PARSE_DEPTH - 1) != AF_OK)
			return AF_EPROTO;
		return AF_OK;
	}
	if (af__msgpack_first(env->payload_data, env->payload_len,
			      AF__PARSE_DEPTH - 1, &env->payload_len) != AF_OK)
		return AF_EPROTO;
	*used = pos + env->payload_len;
	return AF_OK;
}

int64_t af__envelope_deadline_us(const af__envelope *env, int64_t now_us)
{
	uint64_t ttl = env->ttl_ms;

	if (ttl == 0)
		return -1;
	/* A peer may send any uint64; times are int64 microseconds. */
	if (ttl > AF__TTL_MAX_MS)
		ttl = AF__TTL_MAX_MS;
	return now_us + (int64_t)ttl * 1000;
}

bool af__envelope_salvage(const void *data, size_t len, uint64_t *version,
			  uint64_t *kind, uint64_t *id)
{
	size_t pos = 0;
	uint64_t fields;

	return data != NULL && rd_array(data, len, &pos, &fields) &&
	       fields >= 3 && rd_uint(data, len, &pos, version) &&
	       rd_uint(data, len, &pos, kind) && rd_uint(data, len, &pos, id);
}

af_err af__envelope_decode_header(af__envelope *env, const void *data,
				  size_t len, size_t max_size)
{
	return decode(env, data, len, max_size, NULL);
}

af_err af__envelope_decode_first(af__envelope *env, const void *data,
				 size_t len, size_t max_size, size_t *used)
{
	return decode(env, data, len, max_size, used);
}

af_err af__envelope_payload(af__envelope *env, msgpack_zone *zone)
{
	msgpack_object *obj;
	size_t off = 0;

	if (env->payload != NULL)
		return AF_OK;
	if (env->kind == AF_KIND_BATCH &&
	    af__msgpack_check(env->payload_data, env->payload_len,
			      AF__PARSE_DEPTH - 1) != AF_OK)
		return AF_EPROTO;
	obj = msgpack_zone_malloc(zone, sizeof(*obj));
	if (obj == NULL)
		return AF_ENOMEM;
	switch (msgpack_unpack(env->payload_data, env->payload_len, &off, zone,
			       obj)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return AF_ENOMEM;
	default:
		return AF_EPROTO;
	}
	if (off != env->payload_len)
		return AF_EPROTO;
	env->payload = obj;
	return AF_OK;
}

af_err af__envelope_decode(af__envelope *env, const void *data, size_t len,
			   size_t max_size, msgpack_zone *zone)
{
	af_err err = af__envelope_decode_header(env, data, len, max_size);

	return err != AF_OK ? err : af__envelope_payload(env, zone);
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
