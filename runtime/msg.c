#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

static const msgpack_object nil_object = {.type = MSGPACK_OBJECT_NIL};

static af_err decode(af_msg *m, const void *raw, size_t len, size_t max_size,
		     msgpack_zone *zone, size_t *used)
{
	af_err err = used != NULL ? af__envelope_decode_first(&m->env, raw, len,
							      max_size, used)
				  : af__envelope_decode_header(&m->env, raw,
							       len, max_size);

	if (used != NULL && err == AF_OK)
		len = *used;

	m->zone = zone;
	m->raw = raw;
	m->raw_len = len;
	m->route = NULL;
	m->nroute = 0;
	m->reply_to = NULL;
	m->reply_to_len = 0;
	m->answered = false;
	m->deferred = false;
	m->arrived_us = 0;
	m->from_remote = false;
	m->error_code = AF_OK;
	m->error_text = NULL;
	m->own_buf = NULL;
	m->own_zone = NULL;
	if (err != AF_OK)
		return err;
	if (m->env.type_len > 0)
		memcpy(m->type, m->env.type, m->env.type_len);
	m->type[m->env.type_len] = '\0';
	m->deadline_us =
		m->env.ttl_ms > 0
			? af__envelope_deadline_us(&m->env, af__now_us())
			: -1;
	if (m->env.kind == AF_KIND_ERROR) {
		const char *text;
		size_t text_len;
		err = af__envelope_payload(&m->env, zone);
		if (err == AF_ENOMEM)
			return err;
		if (err != AF_OK ||
		    af__error_read(m->env.payload, &m->error_code, &text,
				   &text_len) != AF_OK) {
			m->error_code = AF_EREMOTE;
			text = "malformed error message";
			text_len = strlen(text);
		}
		if (m->error_code == AF_OK)
			m->error_code = AF_EREMOTE;
		m->error_text = strndup(text, text_len);
		if (m->error_text == NULL)
			return AF_ENOMEM;
	}
	return AF_OK;
}

af_err af__msg_decode(af_msg *m, const void *raw, size_t len, size_t max_size,
		      msgpack_zone *zone)
{
	return decode(m, raw, len, max_size, zone, NULL);
}

af_err af__msg_decode_first(af_msg *m, const void *raw, size_t len,
			    size_t max_size, msgpack_zone *zone, size_t *used)
{
	return decode(m, raw, len, max_size, zone, used);
}

void af__msg_clear(af_msg *m)
{
	free(m->error_text);
	m->error_text = NULL;
}

af_err af__msg_clone(const af_msg *m, af_msg **out)
{
	af_msg *c = calloc(1, sizeof(*c));
	af_err err = AF_ENOMEM;

	if (c == NULL)
		return AF_ENOMEM;
	c->own_buf = malloc(m->raw_len);
	c->own_zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (c->own_buf == NULL || c->own_zone == NULL)
		goto fail;
	memcpy(c->own_buf, m->raw, m->raw_len);
	{
		void *buf = c->own_buf;
		msgpack_zone *zone = c->own_zone;
		err = af__msg_decode(c, buf, m->raw_len, SIZE_MAX, zone);
		/* decode resets the ownership fields; restore them. */
		c->own_buf = buf;
		c->own_zone = zone;
	}
	if (err != AF_OK)
		goto fail;
	c->deadline_us = m->deadline_us;
	c->from_remote = m->from_remote;
	*out = c;
	return AF_OK;
fail:
	af_msg_destroy(&c);
	return err;
}

void af_msg_destroy(af_msg **mp)
{
	af_msg *m;

	if (mp == NULL || *mp == NULL)
		return;
	m = *mp;
	*mp = NULL;
	af__msg_clear(m);
	if (m->own_zone != NULL)
		msgpack_zone_free(m->own_zone);
	free(m->own_buf);
	free(m);
}

af_kind af_msg_kind(const af_msg *m)
{
	return m->env.kind;
}

const char *af_msg_type(const af_msg *m)
{
	return m->type;
}

const af_value *af_msg_payload(const af_msg *m)
{
	/* The message is the caller's to read; unpacking on first read only
	 * fills a cache, so it is done through a non-const alias. */
	af_msg *mut = (af_msg *)m;

	if (mut->env.payload == NULL && mut->zone != NULL &&
	    af__envelope_payload(&mut->env, mut->zone) != AF_OK)
		return NULL;
	return (const af_value *)(mut->env.payload ? mut->env.payload
						   : &nil_object);
}

af_err af_msg_payload_raw(const af_msg *m, const void **data, size_t *len)
{
	if (m == NULL || data == NULL || len == NULL)
		return AF_EINVAL;
	/* Decoding found the payload's bytes and checked them; a message
	 * always carries one (a nil when the sender gave none). */
	*data = m->env.payload_data;
	*len = m->env.payload_len;
	return AF_OK;
}

uint64_t af_msg_id(const af_msg *m)
{
	return m->env.id;
}

bool af_msg_is_local(const af_msg *m)
{
	return !m->from_remote;
}

uint64_t af_msg_seq(const af_msg *m)
{
	return m->env.kind == AF_KIND_CHUNK || m->env.kind == AF_KIND_END
		       ? m->env.seq
		       : 0;
}

int64_t af_msg_remaining_ms(const af_msg *m)
{
	return af__remaining_ms(m->deadline_us);
}

int af_msg_error(const af_msg *m, const char **text)
{
	if (m->env.kind != AF_KIND_ERROR)
		return AF_OK;
	if (text != NULL)
		*text = m->error_text;
	return m->error_code;
}
