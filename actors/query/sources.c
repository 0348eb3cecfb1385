/*
 * The nodes a query retrieved: read from the retrieval actor's reply
 * (include/actorflow/retrieval.h) in one pass over its bytes, and given
 * back with the answer as source nodes. A node's metadata is kept as the
 * bytes it came as and forwarded with af_pack_raw, never decoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_internal.h"

size_t af__excerpt_len(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	/* Back off continuation bytes (10xxxxxx): the cut then falls just
	 * before the first byte of a character. */
	while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

static bool key_is(const char *key, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(key, name, len) == 0;
}

static bool skip(af_reader *r)
{
	const void *data;
	size_t len;

	return af_read_raw(r, &data, &len) == AF_OK;
}

/* A string field copied; nil leaves *out NULL. False for another type. */
static bool read_strdup(af_reader *r, char **out, size_t *out_len, bool *nomem)
{
	const char *s;
	size_t len;

	if (af_reader_type(r) == AF_TYPE_NIL)
		return af_read_nil(r) == AF_OK;
	if (af_read_str(r, &s, &len) != AF_OK)
		return false;
	free(*out);
	*out = malloc(len + 1);
	if (*out == NULL) {
		*nomem = true;
		return false;
	}
	memcpy(*out, s, len);
	(*out)[len] = '\0';
	if (out_len != NULL)
		*out_len = len;
	return true;
}

static af_err read_node(af_reader *r, qnode *nd, size_t i, char *why,
			size_t why_len)
{
	bool nomem = false;
	uint32_t n;

	if (af_read_map(r, &n) != AF_OK) {
		snprintf(why, why_len, "node %zu is not a map", i);
		return AF_EPROTO;
	}
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		size_t len;
		bool ok = true;
		if (af_read_str(r, &key, &len) != AF_OK) {
			ok = skip(r) && skip(r);
		} else if (key_is(key, len, "id")) {
			ok = read_strdup(r, &nd->id, NULL, &nomem);
		} else if (key_is(key, len, "doc_id")) {
			ok = read_strdup(r, &nd->doc_id, NULL, &nomem);
		} else if (key_is(key, len, "text")) {
			ok = read_strdup(r, &nd->text, &nd->text_len, &nomem);
		} else if (key_is(key, len, "score")) {
			ok = af_reader_type(r) == AF_TYPE_NIL
				     ? af_read_nil(r) == AF_OK
				     : af_read_double(r, &nd->score) == AF_OK;
		} else if (key_is(key, len, "metadata") &&
			   af_reader_type(r) == AF_TYPE_MAP) {
			const void *raw;
			free(nd->metadata);
			nd->metadata = NULL;
			ok = af_read_raw(r, &raw, &nd->metadata_len) == AF_OK;
			if (ok) {
				nd->metadata = malloc(nd->metadata_len);
				if (nd->metadata == NULL)
					nomem = true;
				else
					memcpy(nd->metadata, raw,
					       nd->metadata_len);
			}
		} else {
			ok = skip(r);
		}
		if (nomem)
			return AF_ENOMEM;
		if (!ok) {
			snprintf(why, why_len,
				 "node %zu: a field has the wrong type", i);
			return AF_EPROTO;
		}
	}
	if (nd->text == NULL || nd->id == NULL) {
		snprintf(why, why_len, "node %zu lacks an \"id\" or \"text\"",
			 i);
		return AF_EPROTO;
	}
	return AF_OK;
}

static af_err read_nodes(query *q, af_reader *r, char *why, size_t why_len)
{
	uint32_t n;
	size_t cap = 0;
	af_err err;

	if (af_read_array(r, &n) != AF_OK) {
		snprintf(why, why_len, "\"nodes\" is not an array");
		return AF_EPROTO;
	}
	af__sources_free(q);
	/* The array grows with the nodes actually read: the count in its
	 * header is the peer's word, and a few bytes claiming millions of
	 * nodes must not cost their memory up front. */
	for (uint32_t i = 0; i < n; i++) {
		if (i == cap) {
			size_t grown = cap != 0 ? cap * 2 : 16;
			qnode *nodes =
				realloc(q->nodes, grown * sizeof(*nodes));

			if (nodes == NULL)
				return AF_ENOMEM;
			q->nodes = nodes;
			cap = grown;
		}
		memset(&q->nodes[i], 0, sizeof(q->nodes[i]));
		q->nnodes = i + 1;
		err = read_node(r, &q->nodes[i], i, why, why_len);
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

af_err af__sources_read(query *q, af_msg *reply, char *why, size_t why_len)
{
	const void *data;
	size_t len;
	af_reader r;
	uint32_t n;
	bool seen = false;

	snprintf(why, why_len, "out of memory");
	af_msg_payload_raw(reply, &data, &len);
	af_reader_init(&r, data, len);
	if (af_read_map(&r, &n) != AF_OK) {
		snprintf(why, why_len, "the reply is not a map");
		return AF_EPROTO;
	}
	for (uint32_t k = 0; k < n; k++) {
		const char *key;
		size_t key_len;
		if (af_read_str(&r, &key, &key_len) != AF_OK) {
			if (!skip(&r) || !skip(&r))
				return AF_EPROTO;
		} else if (key_is(key, key_len, "nodes") && !seen) {
			af_err err = read_nodes(q, &r, why, why_len);
			if (err != AF_OK)
				return err;
			seen = true;
		} else if (!skip(&r)) {
			return AF_EPROTO;
		}
	}
	if (!seen) {
		snprintf(why, why_len, "the reply has no \"nodes\"");
		return AF_EPROTO;
	}
	return AF_OK;
}

af_err af__sources_pack(const query *q, af_payload *p)
{
	size_t max = q->qa->excerpt_bytes;

	af_pack_str(p, "source_nodes");
	af_pack_array(p, (uint32_t)q->nnodes);
	for (size_t i = 0; i < q->nnodes; i++) {
		const qnode *nd = &q->nodes[i];
		af_pack_map(p, 5);
		af_pack_str(p, "id");
		af_pack_str(p, nd->id);
		af_pack_str(p, "doc_id");
		af_pack_str(p, nd->doc_id != NULL ? nd->doc_id : "");
		af_pack_str(p, "score");
		af_pack_double(p, nd->score);
		af_pack_str(p, "text");
		af_pack_strn(p, nd->text,
			     af__excerpt_len(nd->text, nd->text_len, max));
		af_pack_str(p, "metadata");
		if (nd->metadata != NULL)
			af_pack_raw(p, nd->metadata, nd->metadata_len);
		else
			af_pack_map(p, 0);
	}
	return af_payload_status(p);
}

void af__sources_free(query *q)
{
	for (size_t i = 0; i < q->nnodes; i++) {
		free(q->nodes[i].id);
		free(q->nodes[i].doc_id);
		free(q->nodes[i].text);
		free(q->nodes[i].metadata);
	}
	free(q->nodes);
	q->nodes = NULL;
	q->nnodes = 0;
}
