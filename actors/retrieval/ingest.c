/*
 * Ingest: documents from a request or the files of a folder are checked
 * (UTF-8, size, shape), split into chunks, and written in one
 * transaction, so a request that fails anywhere stores nothing. The
 * folder's walk and its work in slices are in load_dir.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../chat/utf8.h"
#include "retrieval_internal.h"

/* Longest document id accepted, in bytes. */
#define ID_MAX 4096

af_err af__ingest_why(char *why, af_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, RETRIEVAL_WHY, fmt, ap);
	va_end(ap);
	return err;
}

void af__ingest_open(retrieval *r, ringest *in)
{
	in->seq = ++r->write_seq;
	r->writes_open++;
}

af_err af__write_note(retrieval *r, const char *id, size_t len, uint64_t seq,
		      bool others_open)
{
	af_err err;

	if (!others_open)
		return AF_OK; /* no other write waits */
	err = af__store_note_write(r->store, id, len, seq);
	if (err == AF_OK)
		r->writes_noted = true;
	return err;
}

void af__ingest_free(retrieval *r, ringest *in)
{
	for (size_t i = 0; i < in->n; i++) {
		free(in->docs[i].id);
		free(in->docs[i].text);
		free(in->docs[i].metadata);
		free(in->docs[i].spans);
	}
	free(in->docs);
	in->docs = NULL;
	in->n = in->cap = in->chunks = 0;
	in->bytes = 0;
	if (in->seq == 0)
		return;
	in->seq = 0;
	if (--r->writes_open == 0 && r->writes_noted) {
		af__store_forget_writes(r->store);
		r->writes_noted = false;
	}
}

/* Adds a document; takes text (a malloc'ed copy) whatever happens. The
 * id and metadata are copied. */
static af_err add_doc(retrieval *r, ringest *in, const char *id, size_t id_len,
		      char *text, size_t text_len, const void *metadata,
		      size_t metadata_len, const char *what, char *why)
{
	rdoc *d;
	af_err err;

	if (in->n == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 16;
		rdoc *docs = realloc(in->docs, cap * sizeof(*docs));

		if (docs == NULL) {
			free(text);
			return AF_ENOMEM;
		}
		in->docs = docs;
		in->cap = cap;
	}
	d = &in->docs[in->n];
	memset(d, 0, sizeof(*d));
	d->text = text;
	d->text_len = text_len;
	err = af__split(text, text_len, r->chunk_size, r->chunk_overlap,
			&d->spans, &d->n_spans);
	if (err != AF_OK) {
		free(text);
		return err;
	}
	if (d->n_spans == 0) {
		free(text);
		return af__ingest_why(why, AF_EINVAL, "%s has no words", what);
	}
	d->id = malloc(id_len + 1);
	d->metadata = malloc(metadata_len);
	if (d->id == NULL || d->metadata == NULL) {
		free(d->id);
		free(d->metadata);
		free(d->spans);
		free(text);
		return AF_ENOMEM;
	}
	memcpy(d->id, id, id_len);
	d->id[id_len] = '\0';
	d->id_len = id_len;
	memcpy(d->metadata, metadata, metadata_len);
	d->metadata_len = metadata_len;
	in->n++;
	in->chunks += d->n_spans;
	in->bytes += text_len;
	return AF_OK;
}

/* Metadata is a map of string keys to strings, numbers, booleans or nil;
 * what it holds goes back to requesters as it came. */
static bool metadata_ok(const af_value *m)
{
	if (af_value_type(m) != AF_TYPE_MAP)
		return false;
	for (size_t i = 0; i < af_value_len(m); i++) {
		const af_value *k = af_value_key_at(m, i);
		const char *s;
		size_t len;

		if (af_value_str(k, &s, &len) != AF_OK ||
		    !af__utf8_text_ok(s, len))
			return false;
		switch (af_value_type(af_value_val_at(m, i))) {
		case AF_TYPE_NIL:
		case AF_TYPE_BOOL:
		case AF_TYPE_INT:
		case AF_TYPE_FLOAT:
			break;
		case AF_TYPE_STR:
			if (af_value_str(af_value_val_at(m, i), &s, &len) !=
				    AF_OK ||
			    !af__utf8_text_ok(s, len))
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

/* One document map of an insert: {"id", "text", "metadata"?}. where
 * names it in errors ("documents[3]"). */
static af_err parse_doc(retrieval *r, const af_value *doc, const char *where,
			ringest *in, char *why)
{
	const af_value *meta = af_value_get(doc, "metadata");
	const char *id, *text;
	size_t id_len, text_len;
	const void *meta_bytes;
	size_t meta_len;
	char *copy;
	char what[160];
	af_err err;

	if (af_value_type(doc) != AF_TYPE_MAP)
		return af__ingest_why(why, AF_EINVAL, "%s must be a map",
				      where);
	if (af_value_str(af_value_get(doc, "id"), &id, &id_len) != AF_OK)
		return af__ingest_why(why, AF_EINVAL,
				      "%s: \"id\" must be a string", where);
	if (id_len == 0 || id_len > ID_MAX || !af__utf8_text_ok(id, id_len))
		return af__ingest_why(
			why, AF_EINVAL,
			"%s: \"id\" must be 1 to %d bytes of UTF-8", where,
			ID_MAX);
	snprintf(what, sizeof(what), "%s \"%.*s\"", where,
		 id_len > 100 ? 100 : (int)id_len, id);
	if (af_value_str(af_value_get(doc, "text"), &text, &text_len) != AF_OK)
		return af__ingest_why(why, AF_EINVAL,
				      "%s: \"text\" must be a string", what);
	if (text_len == 0)
		return af__ingest_why(why, AF_EINVAL, "%s: \"text\" is empty",
				      what);
	if (text_len > r->max_document_bytes)
		return af__ingest_why(
			why, AF_EMSGSIZE,
			"%s: %zu bytes of text, above the limit of %zu", what,
			text_len, r->max_document_bytes);
	if (!af__utf8_text_ok(text, text_len))
		return af__ingest_why(
			why, AF_EINVAL,
			"%s: \"text\" is not valid UTF-8 (or holds a "
			"NUL)",
			what);
	af_payload_reset(r->meta);
	if (meta == NULL || af_value_type(meta) == AF_TYPE_NIL) {
		af_pack_map(r->meta, 0);
	} else if (metadata_ok(meta)) {
		af_pack_value(r->meta, meta);
	} else {
		return af__ingest_why(
			why, AF_EINVAL,
			"%s: \"metadata\" must map strings to strings, "
			"numbers, booleans or nil",
			what);
	}
	if ((err = af_payload_status(r->meta)) != AF_OK)
		return err;
	meta_bytes = af_payload_data(r->meta, &meta_len);
	copy = malloc(text_len + 1);
	if (copy == NULL)
		return AF_ENOMEM;
	memcpy(copy, text, text_len);
	copy[text_len] = '\0';
	return add_doc(r, in, id, id_len, copy, text_len, meta_bytes, meta_len,
		       what, why);
}

af_err af__ingest_parse(retrieval *r, const af_value *payload, ringest *in,
			char *why)
{
	const af_value *docs = af_value_get(payload, "documents");
	char where[32];
	af_err err;

	if (af_value_type(payload) != AF_TYPE_MAP)
		return af__ingest_why(why, AF_EINVAL,
				      "an insert request is a map");
	if (docs == NULL || af_value_type(docs) == AF_TYPE_NIL)
		return parse_doc(r, payload, "document", in, why);
	if (af_value_type(docs) != AF_TYPE_ARRAY || af_value_len(docs) == 0)
		return af__ingest_why(
			why, AF_EINVAL,
			"\"documents\" must be a non-empty array");
	for (size_t i = 0; i < af_value_len(docs); i++) {
		snprintf(where, sizeof(where), "documents[%zu]", i);
		err = parse_doc(r, af_value_at(docs, i), where, in, why);
		if (err != AF_OK)
			return err;
	}
	return AF_OK;
}

/* ---- files of load_dir ------------------------------------------------ */

af_err af__ingest_file(retrieval *r, ringest *in, const char *path,
		       const char *id, char *why)
{
	const char *name = strrchr(id, '/');
	char *text = NULL;
	size_t len = 0, cap;
	struct stat st;
	const char *skip;
	const void *meta;
	size_t meta_len;
	char what[256];
	af_err err;
	/* O_NONBLOCK: a named pipe (or a link to one) with a text file's
	 * name would otherwise block the actor's thread in open until some
	 * writer came; it is refused below as not a file. Reads of a regular
	 * file are not affected. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) != 0) {
		err = af__ingest_why(why, AF_ESYS, "cannot read %s: %s", id,
				     strerror(errno));
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		err = af__ingest_why(why, AF_ESYS, "cannot read %s: not a file",
				     id);
		goto close_fd;
	}
	if ((uint64_t)st.st_size > r->max_document_bytes) {
		err = af__ingest_why(why, AF_EMSGSIZE,
				     "%s: %lld bytes, above the limit of %zu",
				     id, (long long)st.st_size,
				     r->max_document_bytes);
		goto close_fd;
	}
	cap = (size_t)st.st_size + 1;
	text = malloc(cap);
	if (text == NULL) {
		err = AF_ENOMEM;
		goto close_fd;
	}
	/* The file may change while read: stop at the size it had. */
	while (len < cap - 1) {
		ssize_t n = read(fd, text + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = af__ingest_why(why, AF_ESYS, "cannot read %s: %s",
					     id, strerror(errno));
			goto free_text;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	close(fd);
	fd = -1;
	if (!af__utf8_text_ok(text, len)) {
		err = af__ingest_why(why, AF_EINVAL,
				     "%s is not UTF-8 text (or holds a NUL)",
				     id);
		goto free_text;
	}
	/* A byte order mark is not text. */
	skip = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? text + 3
								: text;
	if (skip != text) {
		memmove(text, skip, len - 3);
		len -= 3;
		text[len] = '\0';
	}
	/* A file with no words (empty, or white space) is not a document;
	 * it is skipped rather than failing the folder. */
	if (strspn(text, " \t\n\r\f\v") == len) {
		free(text);
		return AF_OK;
	}
	af_payload_reset(r->meta);
	af_pack_map(r->meta, 2);
	af_pack_str(r->meta, "file_path");
	af_pack_str(r->meta, id);
	af_pack_str(r->meta, "file_name");
	af_pack_str(r->meta, name != NULL ? name + 1 : id);
	if ((err = af_payload_status(r->meta)) != AF_OK)
		goto free_text;
	meta = af_payload_data(r->meta, &meta_len);
	snprintf(what, sizeof(what), "%s", id);
	return add_doc(r, in, id, strlen(id), text, len, meta, meta_len, what,
		       why);
free_text:
	free(text);
close_fd:
	if (fd >= 0)
		close(fd);
	return err;
}

/* ---- writing ----------------------------------------------------------- */

af_err af__ingest_note_removed(void *arg, int64_t chunk)
{
	retrieval *r = arg;

	if (r->n_removed == r->cap_removed) {
		size_t cap = r->cap_removed ? r->cap_removed * 2 : 256;
		int64_t *v = realloc(r->removed, cap * sizeof(*v));

		if (v == NULL)
			return AF_ENOMEM;
		r->removed = v;
		r->cap_removed = cap;
	}
	r->removed[r->n_removed++] = chunk;
	return AF_OK;
}

af_err af__ingest_commit(retrieval *r, const ringest *in, const float *vectors,
			 int dim, char *why)
{
	int have = af__vindex_dim(r->vectors);
	size_t g = 0;
	af_err err;

	if (vectors != NULL && have != 0 && dim != have)
		return af__ingest_why(
			why, AF_EPROTO,
			"the embeddings have %d dimensions; the index "
			"holds vectors of %d",
			dim, have);
	if (in->chunks > r->cap_added) {
		int64_t *v = realloc(r->added, in->chunks * sizeof(*v));

		if (v == NULL)
			return AF_ENOMEM;
		r->added = v;
		r->cap_added = in->chunks;
	}
	/* Room for the new vectors before anything is written: once the
	 * commit is done, putting them in memory must not fail. */
	if (vectors != NULL &&
	    (err = af__vindex_reserve(r->vectors, in->chunks, dim)) != AF_OK)
		return err;
	r->n_removed = 0;
	err = af__store_begin(r->store);
	if (err != AF_OK)
		goto failed;
	for (size_t i = 0; i < in->n; i++) {
		const rdoc *d = &in->docs[i];
		int64_t doc;
		bool found, later = false;

		if (r->writes_noted)
			err = af__store_written_later(
				r->store, d->id, d->id_len, in->seq, &later);
		if (err != AF_OK)
			goto rollback;
		if (later) {
			/* A write that came after this one has stored or
			 * deleted the document: it stays as that left it. */
			for (size_t k = 0; k < d->n_spans; k++)
				r->added[g++] = 0;
			continue;
		}
		err = af__store_delete(r->store, d->id, d->id_len,
				       af__ingest_note_removed, r, &found,
				       NULL);
		if (err == AF_OK)
			err = af__write_note(r, d->id, d->id_len, in->seq,
					     r->writes_open > 1);
		if (err == AF_OK)
			err = af__store_add_doc(r->store, d->id, d->id_len,
						d->metadata, d->metadata_len,
						&doc);
		for (size_t k = 0; k < d->n_spans && err == AF_OK; k++, g++)
			err = af__store_add_chunk(
				r->store, doc, (int64_t)k,
				d->text + d->spans[k].off, d->spans[k].len,
				vectors != NULL ? vectors + g * (size_t)dim
						: NULL,
				vectors != NULL ? dim : 0, &r->added[g]);
		if (err != AF_OK)
			goto rollback;
	}
	err = af__store_commit(r->store);
	if (err != AF_OK)
		goto rollback;
	/* Added first, then removed: a document given twice in one request
	 * added chunks that its second copy removed. */
	for (size_t k = 0; k < in->chunks && vectors != NULL; k++) {
		if (r->added[k] == 0)
			continue; /* its document was left to a later write */
		/* Cannot fail: the room is reserved and the dimension
		 * checked. */
		err = af__vindex_add(r->vectors, r->added[k],
				     vectors + k * (size_t)dim, dim);
		if (err != AF_OK)
			return af__ingest_why(
				why, err,
				"stored, but the vectors in memory are "
				"incomplete: %s",
				af_strerror(err));
	}
	for (size_t k = 0; k < r->n_removed; k++)
		af__vindex_remove(r->vectors, r->removed[k]);
	return AF_OK;
rollback:
	af__store_rollback(r->store);
failed:
	return af__ingest_why(why, err, "storing: %s",
			      err == AF_ENOMEM ? "out of memory"
					       : af__store_errmsg(r->store));
}

af_err af__ingest_texts(const ringest *in, const char ***texts, size_t **lens)
{
	const char **t = malloc(in->chunks * sizeof(*t));
	size_t *l = malloc(in->chunks * sizeof(*l));
	size_t g = 0;

	if (t == NULL || l == NULL) {
		free(t);
		free(l);
		return AF_ENOMEM;
	}
	for (size_t i = 0; i < in->n; i++) {
		const rdoc *d = &in->docs[i];

		for (size_t k = 0; k < d->n_spans; k++, g++) {
			t[g] = d->text + d->spans[k].off;
			l[g] = d->spans[k].len;
		}
	}
	*texts = t;
	*lens = l;
	return AF_OK;
}
