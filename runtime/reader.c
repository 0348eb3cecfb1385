/*
 * Reading encoded msgpack in place (af_reader, see payload.h).
 *
 * Each read looks at one value's first byte, checks that the bytes it
 * needs are there, and only then moves on, so a failed read leaves the
 * reader where it was and untrusted bytes can never send it past their
 * end. Skipping a whole value (af_read_raw) is the walk that checks
 * received payloads, which also bounds its nesting.
 */
#include <stdint.h>
#include <string.h>

#include "actorflow/payload.h"
#include "envelope.h"
#include "payload_internal.h"

/* The type of the value that starts with byte b; AF_TYPE_NONE for 0xc1,
 * the one byte msgpack never uses. */
static af_type type_of(uint8_t b)
{
	if (b <= 0x7f || b >= 0xe0)
		return AF_TYPE_INT;
	if (b <= 0x8f)
		return AF_TYPE_MAP;
	if (b <= 0x9f)
		return AF_TYPE_ARRAY;
	if (b <= 0xbf)
		return AF_TYPE_STR;
	switch (b) {
	case 0xc0:
		return AF_TYPE_NIL;
	case 0xc2:
	case 0xc3:
		return AF_TYPE_BOOL;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return AF_TYPE_BIN;
	case 0xc7:
	case 0xc8:
	case 0xc9:
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		return AF_TYPE_EXT;
	case 0xca:
	case 0xcb:
		return AF_TYPE_FLOAT;
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		return AF_TYPE_INT;
	case 0xd9:
	case 0xda:
	case 0xdb:
		return AF_TYPE_STR;
	case 0xdc:
	case 0xdd:
		return AF_TYPE_ARRAY;
	case 0xde:
	case 0xdf:
		return AF_TYPE_MAP;
	default:
		return AF_TYPE_NONE;
	}
}

/* The first byte of the next value, when that value is of type want (or
 * of type also, unless that is AF_TYPE_NONE). */
static af_err next(const af_reader *r, af_type want, af_type also, uint8_t *b)
{
	af_type t;

	if (r == NULL)
		return AF_EINVAL;
	if (r->pos >= r->len)
		return AF_ENOTFOUND;
	*b = r->data[r->pos];
	t = type_of(*b);
	if (t == AF_TYPE_NONE)
		return AF_EPROTO;
	return t == want || (also != AF_TYPE_NONE && t == also) ? AF_OK
								: AF_ETYPE;
}

/* The n-byte big-endian number at off bytes past the reader's place. */
static bool be(const af_reader *r, size_t off, unsigned n, uint64_t *out)
{
	uint64_t v = 0;

	if (r->len - r->pos < off + n)
		return false;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | r->data[r->pos + off + i];
	*out = v;
	return true;
}

void af_reader_init(af_reader *r, const void *data, size_t len)
{
	if (r == NULL)
		return;
	r->data = data;
	r->len = data != NULL ? len : 0;
	r->pos = 0;
}

af_type af_reader_type(const af_reader *r)
{
	if (r == NULL || r->pos >= r->len)
		return AF_TYPE_NONE;
	return type_of(r->data[r->pos]);
}

/* A container's header: its elements (twice the pairs of a map), which
 * must not be more than the bytes left, since each takes one at least. */
static af_err container(af_reader *r, bool map, uint32_t *n)
{
	uint8_t b;
	uint64_t count;
	size_t header = 1;
	af_err err =
		next(r, map ? AF_TYPE_MAP : AF_TYPE_ARRAY, AF_TYPE_NONE, &b);

	if (err != AF_OK)
		return err;
	if (n == NULL)
		return AF_EINVAL;
	if (b <= 0x9f) {
		count = b & 0x0f;
	} else {
		header += b == 0xdc || b == 0xde ? 2 : 4;
		if (!be(r, 1, (unsigned)header - 1, &count))
			return AF_EPROTO;
	}
	if ((map ? 2 * count : count) > r->len - r->pos - header)
		return AF_EPROTO;
	r->pos += header;
	*n = (uint32_t)count;
	return AF_OK;
}

af_err af_read_array(af_reader *r, uint32_t *n)
{
	return container(r, false, n);
}

af_err af_read_map(af_reader *r, uint32_t *n)
{
	return container(r, true, n);
}

af_err af_read_nil(af_reader *r)
{
	uint8_t b;
	af_err err = next(r, AF_TYPE_NIL, AF_TYPE_NONE, &b);

	if (err == AF_OK)
		r->pos++;
	return err;
}

af_err af_read_bool(af_reader *r, bool *out)
{
	uint8_t b;
	af_err err = next(r, AF_TYPE_BOOL, AF_TYPE_NONE, &b);

	if (err != AF_OK)
		return err;
	if (out == NULL)
		return AF_EINVAL;
	*out = b == 0xc3;
	r->pos++;
	return AF_OK;
}

/* The integer at the reader's place, which takes *size bytes: its value
 * in *u when it is not negative, else in *i. */
static af_err integer(const af_reader *r, bool *neg, uint64_t *u, int64_t *i,
		      size_t *size)
{
	uint8_t b;
	uint64_t v;
	unsigned n;
	af_err err = next(r, AF_TYPE_INT, AF_TYPE_NONE, &b);

	if (err != AF_OK)
		return err;
	*neg = false;
	*size = 1;
	if (b <= 0x7f) {
		*u = b;
		return AF_OK;
	}
	if (b >= 0xe0) {
		*neg = true;
		*i = (int8_t)b;
		return AF_OK;
	}
	n = b <= 0xcf ? 1u << (b - 0xcc) : 1u << (b - 0xd0);
	if (!be(r, 1, n, &v))
		return AF_EPROTO;
	*size += n;
	if (b <= 0xcf) {
		*u = v;
		return AF_OK;
	}
	/* A signed encoding: extend its sign bit, then file a value that is
	 * not negative as unsigned, as msgpack-c does. */
	if (n < 8 && (v >> (8 * n - 1)) != 0)
		v |= UINT64_MAX << (8 * n);
	if ((v >> 63) == 0) {
		*u = v;
		return AF_OK;
	}
	*neg = true;
	*i = -(int64_t)(~v) - 1;
	return AF_OK;
}

af_err af_read_int(af_reader *r, int64_t *out)
{
	bool neg;
	uint64_t u = 0;
	int64_t i = 0;
	size_t size;
	af_err err = integer(r, &neg, &u, &i, &size);

	if (err != AF_OK)
		return err;
	if (out == NULL)
		return AF_EINVAL;
	if (!neg && u > INT64_MAX)
		return AF_ERANGE;
	*out = neg ? i : (int64_t)u;
	r->pos += size;
	return AF_OK;
}

af_err af_read_uint(af_reader *r, uint64_t *out)
{
	bool neg;
	uint64_t u = 0;
	int64_t i = 0;
	size_t size;
	af_err err = integer(r, &neg, &u, &i, &size);

	if (err != AF_OK)
		return err;
	if (out == NULL)
		return AF_EINVAL;
	if (neg)
		return AF_ERANGE;
	*out = u;
	r->pos += size;
	return AF_OK;
}

af_err af_read_double(af_reader *r, double *out)
{
	uint8_t b;
	uint64_t v;
	af_err err = next(r, AF_TYPE_FLOAT, AF_TYPE_INT, &b);

	if (err != AF_OK)
		return err;
	if (out == NULL)
		return AF_EINVAL;
	if (b == 0xca) {
		uint32_t bits;
		float f;
		if (!be(r, 1, 4, &v))
			return AF_EPROTO;
		bits = (uint32_t)v;
		memcpy(&f, &bits, sizeof(f));
		*out = f;
		r->pos += 5;
		return AF_OK;
	}
	if (b == 0xcb) {
		if (!be(r, 1, 8, &v))
			return AF_EPROTO;
		memcpy(out, &v, sizeof(*out));
		r->pos += 9;
		return AF_OK;
	}
	{
		bool neg;
		uint64_t u = 0;
		int64_t i = 0;
		size_t size;
		err = integer(r, &neg, &u, &i, &size);
		if (err != AF_OK)
			return err;
		*out = neg ? (double)i : (double)u;
		r->pos += size;
		return AF_OK;
	}
}

/* A string's or a binary's header and body. */
static af_err body(af_reader *r, bool str, const void **data, size_t *len)
{
	uint8_t b;
	uint64_t n;
	unsigned width;
	af_err err = next(r, str ? AF_TYPE_STR : AF_TYPE_BIN, AF_TYPE_NONE, &b);

	if (err != AF_OK)
		return err;
	if (data == NULL || len == NULL)
		return AF_EINVAL;
	if (b >= 0xa0 && b <= 0xbf) {
		width = 0;
		n = b & 0x1f;
	} else {
		/* str8/16/32 (0xd9-0xdb), bin8/16/32 (0xc4-0xc6). */
		width = 1u << (str ? b - 0xd9 : b - 0xc4);
		if (!be(r, 1, width, &n))
			return AF_EPROTO;
	}
	if (n > r->len - r->pos - 1 - width)
		return AF_EPROTO;
	/* As the af_value readers do: an empty one is "", never NULL. */
	*data = n > 0 ? (const void *)(r->data + r->pos + 1 + width) : "";
	*len = (size_t)n;
	r->pos += 1 + width + (size_t)n;
	return AF_OK;
}

af_err af_read_str(af_reader *r, const char **s, size_t *len)
{
	return body(r, true, (const void **)s, len);
}

af_err af_read_bin(af_reader *r, const void **data, size_t *len)
{
	return body(r, false, data, len);
}

af_err af_read_raw(af_reader *r, const void **data, size_t *len)
{
	size_t used;

	if (r == NULL || data == NULL || len == NULL)
		return AF_EINVAL;
	if (r->pos >= r->len)
		return AF_ENOTFOUND;
	if (af__msgpack_first(r->data + r->pos, r->len - r->pos,
			      AF__PARSE_DEPTH, &used) != AF_OK)
		return AF_EPROTO;
	*data = r->data + r->pos;
	*len = used;
	r->pos += used;
	return AF_OK;
}
