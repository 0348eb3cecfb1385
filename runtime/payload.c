#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "actorflow/payload.h"
#include "envelope.h"
#include "payload_internal.h"

/* Containers still waiting for elements. A begin frame counts what has
 * been packed into it so far; a fixed frame (af_pack_array/af_pack_map)
 * counts down what it still needs, so that elements packed into it are not
 * also counted by an enclosing begin. */
#define FRAMES_MAX 32

enum frame_kind { FRAME_ARRAY, FRAME_MAP, FRAME_FIXED };

struct frame {
	enum frame_kind kind;
	size_t header_off; /* begin frames: where the 32-bit count goes */
	uint64_t n;        /* begin: elements so far; fixed: elements left */
};

struct af_payload {
	msgpack_sbuffer buf;
	msgpack_packer pk;
	af_err err;
	/* A complete top-level value has been started; a payload is one value,
	 * so another one at the top level would corrupt the envelope. */
	bool has_value;
	unsigned depth;
	struct frame frames[FRAMES_MAX];
};

static af_err fail(af_payload *p, af_err err)
{
	p->err = err;
	return err;
}

/* Whether a value may be packed now. */
static af_err can_pack(af_payload *p)
{
	if (p == NULL)
		return AF_EINVAL;
	if (p->err != AF_OK)
		return p->err;
	if (p->depth == 0 && p->has_value)
		return fail(p, AF_EINVAL);
	return AF_OK;
}

/* Records that one element (a scalar, or a container's header) has been
 * packed into the innermost open container. A fixed container is done with
 * once its last element has started: that element's own contents are
 * tracked by its own frame, if any. */
static void count_element(af_payload *p)
{
	struct frame *f;

	if (p->depth == 0) {
		p->has_value = true;
		return;
	}
	f = &p->frames[p->depth - 1];
	if (f->kind == FRAME_FIXED) {
		if (--f->n == 0)
			p->depth--;
	} else {
		f->n++;
	}
}

/* The depth after count_element(), so that a container that is the last
 * element of a fixed one can reuse its slot. */
static unsigned depth_after_count(const af_payload *p)
{
	const struct frame *f;

	if (p->depth == 0)
		return 0;
	f = &p->frames[p->depth - 1];
	return f->kind == FRAME_FIXED && f->n == 1 ? p->depth - 1 : p->depth;
}

static af_err packed(af_payload *p, int rc)
{
	/* The sbuffer's only failure is realloc. */
	if (rc != 0)
		return fail(p, AF_ENOMEM);
	count_element(p);
	return AF_OK;
}

af_err af_payload_new(af_payload **out)
{
	af_payload *p;

	if (out == NULL)
		return AF_EINVAL;
	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return AF_ENOMEM;
	msgpack_sbuffer_init(&p->buf);
	msgpack_packer_init(&p->pk, &p->buf, msgpack_sbuffer_write);
	*out = p;
	return AF_OK;
}

void af_payload_destroy(af_payload **p)
{
	if (p == NULL || *p == NULL)
		return;
	msgpack_sbuffer_destroy(&(*p)->buf);
	free(*p);
	*p = NULL;
}

void af_payload_reset(af_payload *p)
{
	if (p == NULL)
		return;
	p->buf.size = 0;
	p->err = AF_OK;
	p->has_value = false;
	p->depth = 0;
}

af_err af_pack_nil(af_payload *p)
{
	af_err err = can_pack(p);

	return err != AF_OK ? err : packed(p, msgpack_pack_nil(&p->pk));
}

af_err af_pack_bool(af_payload *p, bool v)
{
	af_err err = can_pack(p);

	return err != AF_OK ? err
			    : packed(p, v ? msgpack_pack_true(&p->pk)
					  : msgpack_pack_false(&p->pk));
}

af_err af_pack_int(af_payload *p, int64_t v)
{
	af_err err = can_pack(p);

	return err != AF_OK ? err : packed(p, msgpack_pack_int64(&p->pk, v));
}

af_err af_pack_uint(af_payload *p, uint64_t v)
{
	af_err err = can_pack(p);

	return err != AF_OK ? err : packed(p, msgpack_pack_uint64(&p->pk, v));
}

af_err af_pack_double(af_payload *p, double v)
{
	af_err err = can_pack(p);

	return err != AF_OK ? err : packed(p, msgpack_pack_double(&p->pk, v));
}

af_err af_pack_str(af_payload *p, const char *s)
{
	if (s == NULL)
		return af_pack_nil(p);
	return af_pack_strn(p, s, strlen(s));
}

af_err af_pack_strn(af_payload *p, const char *s, size_t len)
{
	af_err err;
	int rc;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	if ((s == NULL && len > 0) || len > UINT32_MAX)
		return fail(p, AF_EINVAL);
	rc = msgpack_pack_str(&p->pk, len);
	/* An empty body is skipped: s may be NULL, and memcpy must not see it.
	 */
	if (rc == 0 && len > 0)
		rc = msgpack_pack_str_body(&p->pk, s, len);
	return packed(p, rc);
}

af_err af_pack_bin(af_payload *p, const void *data, size_t len)
{
	af_err err;
	int rc;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	if ((data == NULL && len > 0) || len > UINT32_MAX)
		return fail(p, AF_EINVAL);
	rc = msgpack_pack_bin(&p->pk, len);
	if (rc == 0 && len > 0)
		rc = msgpack_pack_bin_body(&p->pk, data, len);
	return packed(p, rc);
}

static af_err pack_fixed(af_payload *p, bool map, uint32_t n)
{
	af_err err;
	unsigned depth;
	int rc;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	depth = depth_after_count(p);
	if (n > 0 && depth >= FRAMES_MAX)
		return fail(p, AF_EINVAL);
	rc = map ? msgpack_pack_map(&p->pk, n) : msgpack_pack_array(&p->pk, n);
	if ((err = packed(p, rc)) != AF_OK)
		return err;
	if (n > 0) {
		p->frames[p->depth++] = (struct frame){
			.kind = FRAME_FIXED,
			.n = map ? 2 * (uint64_t)n : n,
		};
	}
	return AF_OK;
}

af_err af_pack_array(af_payload *p, uint32_t n)
{
	return pack_fixed(p, false, n);
}

af_err af_pack_map(af_payload *p, uint32_t n)
{
	return pack_fixed(p, true, n);
}

static af_err begin(af_payload *p, enum frame_kind kind)
{
	/* A 32-bit count always fits whatever follows, so the header can be
	 * written now and its count patched in at the end. */
	const char header[5] = {(char)(kind == FRAME_MAP ? 0xdf : 0xdd)};
	size_t off;
	af_err err;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	if (depth_after_count(p) >= FRAMES_MAX)
		return fail(p, AF_EINVAL);
	off = p->buf.size;
	if ((err = packed(p, msgpack_sbuffer_write(&p->buf, header,
						   sizeof(header)))) != AF_OK)
		return err;
	p->frames[p->depth++] = (struct frame){
		.kind = kind,
		.header_off = off,
		.n = 0,
	};
	return AF_OK;
}

static af_err end(af_payload *p, enum frame_kind kind)
{
	struct frame *f;
	uint64_t count;
	unsigned char *h;

	if (p == NULL)
		return AF_EINVAL;
	if (p->err != AF_OK)
		return p->err;
	if (p->depth == 0)
		return fail(p, AF_EINVAL);
	f = &p->frames[p->depth - 1];
	if (f->kind != kind)
		return fail(p, AF_EINVAL);
	if (kind == FRAME_MAP && f->n % 2 != 0)
		return fail(p, AF_EINVAL);
	count = kind == FRAME_MAP ? f->n / 2 : f->n;
	if (count > UINT32_MAX)
		return fail(p, AF_EINVAL);
	h = (unsigned char *)p->buf.data + f->header_off;
	h[1] = (unsigned char)(count >> 24);
	h[2] = (unsigned char)(count >> 16);
	h[3] = (unsigned char)(count >> 8);
	h[4] = (unsigned char)count;
	p->depth--;
	return AF_OK;
}

af_err af_pack_array_begin(af_payload *p)
{
	return begin(p, FRAME_ARRAY);
}

af_err af_pack_array_end(af_payload *p)
{
	return end(p, FRAME_ARRAY);
}

af_err af_pack_map_begin(af_payload *p)
{
	return begin(p, FRAME_MAP);
}

af_err af_pack_map_end(af_payload *p)
{
	return end(p, FRAME_MAP);
}

af_err af_pack_value(af_payload *p, const struct af_value *v)
{
	af_err err;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	/* Forwarding a missing field is a mistake worth noticing, the same
	 * AF_ENOTFOUND the readers give. */
	if (v == NULL)
		return fail(p, AF_ENOTFOUND);
	return packed(p,
		      msgpack_pack_object(&p->pk, *(const msgpack_object *)v));
}

af_err af_pack_raw(af_payload *p, const void *msgpack, size_t len)
{
	unsigned room;
	af_err err;

	if ((err = can_pack(p)) != AF_OK)
		return err;
	if (msgpack == NULL)
		return fail(p, AF_EINVAL);
	/* The value's own containers count toward the writer's nesting, as
	 * if they had been packed one by one here. */
	room = FRAMES_MAX - depth_after_count(p);
	if (af__msgpack_check(msgpack, len, room) == AF_OK)
		return packed(p, msgpack_sbuffer_write(&p->buf, msgpack, len));
	/* Bytes that are a value, only too deep for where they go, are the
	 * caller's mistake rather than bad input; the second walk runs only
	 * on this failure. */
	if (room < AF__PARSE_DEPTH &&
	    af__msgpack_check(msgpack, len, AF__PARSE_DEPTH) == AF_OK)
		return fail(p, AF_EINVAL);
	return fail(p, AF_EPROTO);
}

af_err af_payload_status(const af_payload *p)
{
	/* A NULL payload is a valid nil wherever payloads are sent. */
	if (p == NULL)
		return AF_OK;
	if (p->err != AF_OK)
		return p->err;
	return p->depth > 0 ? AF_EINVAL : AF_OK;
}

const void *af_payload_data(const af_payload *p, size_t *len)
{
	if (p == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = p->buf.size;
	return p->buf.data;
}

const void *af__payload_bytes(const af_payload *p, size_t *len)
{
	static const unsigned char nil = 0xc0;

	if (p == NULL || p->buf.size == 0) {
		*len = 1;
		return &nil;
	}
	*len = p->buf.size;
	return p->buf.data;
}
