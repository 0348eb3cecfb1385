#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"

/* The walker keeps one counter of unread elements per open container. A
 * fixed array keeps it allocation-free; deeper limits than this are
 * clamped, which no caller needs (msgpack-c itself stops at 32). */
#define CHECK_STACK_MAX 256

/* Reads a big-endian length of n bytes at *pos, advancing it. */
static int read_be(const uint8_t *p, size_t len, size_t *pos, unsigned n,
		   uint64_t *out)
{
	uint64_t v = 0;

	if (len - *pos < n)
		return -1;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[*pos + i];
	*pos += n;
	*out = v;
	return 0;
}

/* Parses the header of the value at *pos. For a container it sets *count to
 * the number of elements that follow (twice the pairs of a map); for
 * anything else it skips the value's body and sets *count to 0. */
static int read_header(const uint8_t *p, size_t len, size_t *pos,
		       bool *is_container, uint64_t *count)
{
	uint8_t b;
	uint64_t n = 0;
	uint64_t body = 0;

	if (*pos >= len)
		return -1;
	b = p[(*pos)++];
	*is_container = false;
	*count = 0;

	if (b <= 0x7f || b >= 0xe0)
		return 0;
	if (b <= 0x8f) {
		*is_container = true;
		*count = 2 * (uint64_t)(b & 0x0f);
		return 0;
	}
	if (b <= 0x9f) {
		*is_container = true;
		*count = b & 0x0f;
		return 0;
	}
	if (b <= 0xbf) {
		body = b & 0x1f;
		goto skip;
	}

	switch (b) {
	case 0xc0:
	case 0xc2:
	case 0xc3:
		return 0;
	case 0xc4:
	case 0xd9:
		if (read_be(p, len, pos, 1, &body) != 0)
			return -1;
		goto skip;
	case 0xc5:
	case 0xda:
		if (read_be(p, len, pos, 2, &body) != 0)
			return -1;
		goto skip;
	case 0xc6:
	case 0xdb:
		if (read_be(p, len, pos, 4, &body) != 0)
			return -1;
		goto skip;
	case 0xc7:
	case 0xc8:
	case 0xc9: {
		/* ext 8/16/32: length, then a type byte, then the data. */
		unsigned width = 1u << (b - 0xc7);

		if (read_be(p, len, pos, width, &body) != 0)
			return -1;
		body += 1;
		goto skip;
	}
	case 0xca:
		body = 4;
		goto skip;
	case 0xcb:
		body = 8;
		goto skip;
	case 0xcc:
	case 0xd0:
		body = 1;
		goto skip;
	case 0xcd:
	case 0xd1:
		body = 2;
		goto skip;
	case 0xce:
	case 0xd2:
		body = 4;
		goto skip;
	case 0xcf:
	case 0xd3:
		body = 8;
		goto skip;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		/* fixext 1/2/4/8/16 plus the type byte. */
		body = 1 + (1u << (b - 0xd4));
		goto skip;
	case 0xdc:
	case 0xdd:
		if (read_be(p, len, pos, b == 0xdc ? 2 : 4, &n) != 0)
			return -1;
		*is_container = true;
		*count = n;
		return 0;
	case 0xde:
	case 0xdf:
		if (read_be(p, len, pos, b == 0xde ? 2 : 4, &n) != 0)
			return -1;
		*is_container = true;
		*count = 2 * n;
		return 0;
	default:
		/* 0xc1 is the one byte msgpack never uses. */
		return -1;
	}

skip:
	if (len - *pos < body)
		return -1;
	*pos += (size_t)body;
	return 0;
}

/* Walks the first value of data; *used receives its length. */
static af_err walk(const void *data, size_t len, unsigned max_depth,
		   size_t *used)
{
	const uint8_t *p = data;
	uint64_t left[CHECK_STACK_MAX];
	unsigned depth = 0;
	size_t pos = 0;
	/* Values announced but not yet read, counting the root. Each needs at
	 * least one byte, so more of them than bytes left is already a lie;
	 * checking the total rather than each container alone also bounds what
	 * msgpack-c allocates for the whole message by its length. */
	uint64_t pending = 1;

	if (data == NULL && len > 0)
		return AF_EPROTO;
	if (max_depth > CHECK_STACK_MAX)
		max_depth = CHECK_STACK_MAX;

	for (;;) {
		bool is_container;
		uint64_t count;

		if (read_header(p, len, &pos, &is_container, &count) != 0)
			return AF_EPROTO;
		pending--;

		if (is_container) {
			if (depth >= max_depth)
				return AF_EPROTO;
			if (pending > len - pos || count > len - pos - pending)
				return AF_EPROTO;
			pending += count;
			if (count > 0) {
				left[depth++] = count;
				continue;
			}
		}

		/* A value is complete: close every container it completes. */
		while (depth > 0 && --left[depth - 1] == 0)
			depth--;
		if (depth == 0) {
			*used = pos;
			return AF_OK;
		}
	}
}

af_err af__msgpack_check(const void *data, size_t len, unsigned max_depth)
{
	size_t used;

	if (walk(data, len, max_depth, &used) != AF_OK || used != len)
		return AF_EPROTO;
	return AF_OK;
}

af_err af__msgpack_first(const void *data, size_t len, unsigned max_depth,
			 size_t *used)
{
	return walk(data, len, max_depth, used);
}
