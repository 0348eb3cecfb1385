/*
 * The retrieval actor: insert, load_dir, delete, retrieve and stats
 * requests (see include/actorflow/retrieval.h). Written against the
 * public runtime API only, as a user's actor would be.
 *
 * A request that needs embeddings (an insert with an endpoint configured,
 * a vector or hybrid retrieve) is deferred while its texts are embedded
 * on the loop, and finished from the embedding job's end; the actor
 * serves other requests meanwhile. A load_dir reads its files in slices
 * between other requests (load_dir.c). Everything else is answered at
 * once.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../chat/utf8.h"
#include "retrieval_internal.h"

/* RRF's constant: fused score = sum of 1 / (k + rank) over the rankings. */
#define RRF_K 60
/* Hybrid fuses each ranking to this depth at least (or 2 * top_k). */
#define HYBRID_DEPTH 20

/* A request waiting for embeddings. */
typedef struct rwait {
	retrieval *r;
	af_pending *p;
	af_embed_job *job;
	bool retrieve;
	bool end; /* answered with af_pending_end: a load_dir's stream */
	/* An ingest: its documents and the chunk texts being embedded. */
	ringest in;
	const char **texts;
	size_t *lens;
	/* A retrieve. */
	char *query;
	size_t query_len;
	int top_k;
	retrieval_mode mode;
	struct rwait *prev;
	struct rwait *next;
} rwait;

/* ---- configuration ----------------------------------------------------- */

void af_retrieval_config_init(af_retrieval_config *c)
{
	memset(c, 0, sizeof(*c));
	c->embed_max_retries = 3;
}

static bool mode_named(const char *s, size_t len, retrieval_mode *out)
{
	static const struct {
		const char *name;
		retrieval_mode mode;
	} modes[] = {
		{"bm25", MODE_BM25},
		{"vector", MODE_VECTOR},
		{"hybrid", MODE_HYBRID},
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strlen(modes[i].name) == len &&
		    memcmp(modes[i].name, s, len) == 0) {
			*out = modes[i].mode;
			return true;
		}
	}
	return false;
}

/* ---- replies ----------------------------------------------------------- */

/* Packs the node for chunk id with score; nothing when the chunk is gone.
 * *packed counts the nodes. */
static af_err pack_node(retrieval *r, int64_t id, double score,
			uint32_t *packed)
{
	af_store_chunk c;
	bool found;
	char pos[24];
	af_err err = af__store_chunk(r->store, id, &c, &found);

	if (err != AF_OK || !found)
		return err;
	snprintf(pos, sizeof(pos), "#%lld", (long long)c.position);
	af_pack_map(r->out, 6);
	af_pack_str(r->out, "id");
	{
		size_t n = c.doc_len + strlen(pos);
		char *full = malloc(n);

		if (full == NULL)
			return AF_ENOMEM;
		memcpy(full, c.doc, c.doc_len);
		memcpy(full + c.doc_len, pos, strlen(pos));
		af_pack_strn(r->out, full, n);
		free(full);
	}
	af_pack_str(r->out, "doc_id");
	af_pack_strn(r->out, c.doc, c.doc_len);
	af_pack_str(r->out, "position");
	af_pack_int(r->out, c.position);
	af_pack_str(r->out, "score");
	af_pack_double(r->out, score);
	af_pack_str(r->out, "text");
	af_pack_strn(r->out, c.text, c.text_len);
	af_pack_str(r->out, "metadata");
	af_pack_raw(r->out, c.metadata, c.metadata_len);
	(*packed)++;
	/* Packing errors are sticky: pack_nodes reads them at the end (the
	 * status reads AF_EINVAL while the array is open). */
	return AF_OK;
}

/* {"nodes": [...]} for n ranked chunks, into r->out. */
static af_err pack_nodes(retrieval *r, const int64_t *ids, const double *scores,
			 size_t n)
{
	uint32_t packed = 0;
	af_err err = AF_OK;

	af_payload_reset(r->out);
	af_pack_map(r->out, 1);
	af_pack_str(r->out, "nodes");
	af_pack_array_begin(r->out);
	for (size_t i = 0; i < n && err == AF_OK; i++)
		err = pack_node(r, ids[i], scores[i], &packed);
	af__store_chunk_done(r->store);
	af_pack_array_end(r->out);
	return err != AF_OK ? err : af_payload_status(r->out);
}

/* {"documents", "chunks"} (and "bytes" for a load_dir) into r->out. */
static af_err pack_counts(retrieval *r, const ringest *in)
{
	af_payload_reset(r->out);
	af_pack_map(r->out, in->from_dir ? 3 : 2);
	af_pack_str(r->out, "documents");
	af_pack_uint(r->out, in->n);
	af_pack_str(r->out, "chunks");
	af_pack_uint(r->out, in->chunks);
	if (in->from_dir) {
		af_pack_str(r->out, "bytes");
		af_pack_uint(r->out, in->bytes);
	}
	return af_payload_status(r->out);
}

/* ---- retrieve ---------------------------------------------------------- */

typedef struct ranked {
	int64_t id;
	double score;
} ranked;

static int by_score(const void *a, const void *b)
{
	const ranked *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Reciprocal rank fusion of two rankings into the first k of out (which
 * has room for na + nb). Returns how many. */
static size_t fuse(const int64_t *a, size_t na, const int64_t *b, size_t nb,
		   ranked *out, size_t k)
{
	size_t n = 0;

	for (size_t i = 0; i < na; i++)
		out[n++] = (ranked){a[i], 1.0 / (RRF_K + (double)i + 1)};
	for (size_t i = 0; i < nb; i++) {
		double s = 1.0 / (RRF_K + (double)i + 1);
		size_t j = 0;

		while (j < na && out[j].id != b[i])
			j++;
		if (j < na)
			out[j].score += s;
		else
			out[n++] = (ranked){b[i], s};
	}
	qsort(out, n, sizeof(*out), by_score);
	return n < k ? n : k;
}

/* Ranks and packs the answer to a retrieve into r->out. q is the query's
 * vector (NULL for bm25). */
static af_err rank(retrieval *r, const char *query, size_t query_len, int top_k,
		   retrieval_mode mode, const float *q, int dim, char *why)
{
	size_t depth = mode == MODE_HYBRID ? (size_t)(2 * top_k > HYBRID_DEPTH
							      ? 2 * top_k
							      : HYBRID_DEPTH)
					   : (size_t)top_k;
	int64_t *ids = malloc(2 * depth * sizeof(*ids));
	double *scores = malloc(2 * depth * sizeof(*scores));
	ranked *fused = NULL;
	size_t nb = 0, nv = 0;
	char *match = NULL;
	af_err err = AF_ENOMEM;

	if (ids == NULL || scores == NULL)
		goto free_all;
	if (mode != MODE_VECTOR) {
		match = af__store_match(query, query_len);
		if (match == NULL)
			goto free_all;
		err = af__store_bm25(r->store, match, (int)depth, ids, scores,
				     &nb);
		if (err != AF_OK) {
			snprintf(why, RETRIEVAL_WHY, "bm25 search: %s",
				 err == AF_ENOMEM ? "out of memory"
						  : af__store_errmsg(r->store));
			goto free_all;
		}
	}
	if (mode != MODE_BM25) {
		err = af__vindex_top(r->vectors, q, dim, (int)depth, ids + nb,
				     scores + nb, &nv);
		if (err == AF_EINVAL) {
			snprintf(why, RETRIEVAL_WHY,
				 "the query's embedding has %d dimensions; "
				 "the index holds vectors of %d",
				 dim, af__vindex_dim(r->vectors));
			err = AF_EPROTO;
		}
		if (err != AF_OK)
			goto free_all;
	}
	if (mode == MODE_HYBRID) {
		size_t n;

		fused = malloc((nb + nv + 1) * sizeof(*fused));
		if (fused == NULL)
			goto free_all;
		n = fuse(ids, nb, ids + nb, nv, fused, (size_t)top_k);
		for (size_t i = 0; i < n; i++) {
			ids[i] = fused[i].id;
			scores[i] = fused[i].score;
		}
		err = pack_nodes(r, ids, scores, n);
	} else {
		err = pack_nodes(r, ids, scores, nb + nv);
	}
	if (err != AF_OK)
		snprintf(why, RETRIEVAL_WHY, "reading the chunks: %s",
			 err == AF_EIO ? af__store_errmsg(r->store)
				       : af_strerror(err));
free_all:
	free(match);
	free(fused);
	free(scores);
	free(ids);
	return err;
}

/* ---- requests waiting for embeddings ----------------------------------- */

static void free_wait(rwait *w)
{
	retrieval *r = w->r;

	af__embed_cancel(&w->job);
	/* A request no answer could be sent to (af_pending_* failed) stays
	 * with the runtime, which answers it when the actor stops: it must
	 * then call nothing of w's. */
	if (w->p != NULL)
		af_pending_on_cancel(w->p, NULL, NULL);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		r->waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	af__ingest_free(r, &w->in);
	free(w->texts);
	free(w->lens);
	free(w->query);
	free(w);
}

static void on_cancel(af_ctx *ctx, void *arg)
{
	rwait *w = arg;

	/* The requester gave up: stop embedding for it. The runtime frees
	 * the pending request after this returns. */
	w->p = NULL;
	free_wait(w);
}

static void on_embedded(af_ctx *ctx, void *arg, af_err err, const char *msg,
			const float *vectors, int dim)
{
	rwait *w = arg;
	retrieval *r = w->r;
	char why[RETRIEVAL_WHY] = "";

	w->job = NULL; /* freed when this returns */
	if (err != AF_OK) {
		af_pending_error(ctx, &w->p, err, "%s", msg);
		free_wait(w);
		return;
	}
	if (w->retrieve) {
		err = rank(r, w->query, w->query_len, w->top_k, w->mode,
			   vectors, dim, why);
	} else {
		err = af__ingest_commit(r, &w->in, vectors, dim, why);
		if (err == AF_OK)
			err = pack_counts(r, &w->in);
	}
	if (err == AF_OK &&
	    (err = w->end ? af_pending_end(ctx, &w->p, r->out)
			  : af_pending_reply(ctx, &w->p, r->out)) != AF_OK)
		snprintf(why, sizeof(why), "cannot send the answer: %s",
			 af_strerror(err));
	if (err != AF_OK)
		af_pending_error(ctx, &w->p, err, "%s",
				 why[0] ? why : af_strerror(err));
	free_wait(w);
}

/* Starts embedding n texts for m, which it defers, or for the request
 * p already deferred (m NULL), which w then holds. On failure nothing is
 * deferred, p stays the caller's, and w is freed. */
static af_err start_wait(retrieval *r, af_msg *m, af_pending *p, rwait *w,
			 const char *const *texts, const size_t *lens, size_t n)
{
	int64_t timeout = r->embed_timeout_ms;
	int64_t left =
		m != NULL ? af_msg_remaining_ms(m) : af_pending_remaining_ms(p);
	af_err err;

	if (left >= 0 && left < timeout)
		timeout = left > 0 ? left : 1;
	w->r = r;
	w->next = r->waits;
	if (r->waits != NULL)
		r->waits->prev = w;
	r->waits = w;
	err = af__embed_start(r->embed, texts, lens, n, timeout, on_embedded, w,
			      &w->job);
	if (err == AF_OK && m != NULL)
		err = af_defer(r->ctx, m, &w->p);
	if (err != AF_OK) {
		free_wait(w);
		return err;
	}
	if (m == NULL)
		w->p = p;
	af_pending_on_cancel(w->p, on_cancel, w);
	return AF_OK;
}

/* ---- handlers ---------------------------------------------------------- */

static af_err reply_counts(retrieval *r, af_msg *m, const ringest *in)
{
	af_err err = pack_counts(r, in);

	return err != AF_OK ? err : af_reply(r->ctx, m, r->out);
}

/* Stores in (taken) now, or once its chunks are embedded. */
static af_err ingest(retrieval *r, af_msg *m, ringest *in)
{
	char why[RETRIEVAL_WHY] = "";
	rwait *w;
	af_err err;

	if (r->embed == NULL) {
		err = af__ingest_commit(r, in, NULL, 0, why);
		if (err == AF_OK)
			err = reply_counts(r, m, in);
		else
			err = af_reply_error(r->ctx, m, err, "%s", why);
		af__ingest_free(r, in);
		return err;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		af__ingest_free(r, in);
		return AF_ENOMEM;
	}
	w->in = *in;
	memset(in, 0, sizeof(*in));
	err = af__ingest_texts(&w->in, &w->texts, &w->lens);
	if (err != AF_OK) {
		af__ingest_free(r, &w->in);
		free(w);
		return err;
	}
	return start_wait(r, m, NULL, w, w->texts, w->lens, w->in.chunks);
}

void af__retrieval_store(retrieval *r, af_pending **p, ringest *in)
{
	char why[RETRIEVAL_WHY] = "";
	bool end = af_pending_is_stream(*p);
	rwait *w;
	af_err err = AF_OK;

	if (in->n > 0 && r->embed != NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			err = AF_ENOMEM;
			goto answer;
		}
		w->end = end;
		w->in = *in;
		memset(in, 0, sizeof(*in));
		err = af__ingest_texts(&w->in, &w->texts, &w->lens);
		if (err != AF_OK) {
			af__ingest_free(r, &w->in);
			free(w);
			goto answer;
		}
		err = start_wait(r, NULL, *p, w, w->texts, w->lens,
				 w->in.chunks);
		if (err == AF_OK) {
			*p = NULL; /* the wait answers it */
			return;
		}
		goto answer;
	}
	/* A folder of files with no words stores nothing: there is nothing
	 * to write. */
	if (in->n > 0)
		err = af__ingest_commit(r, in, NULL, 0, why);
	if (err == AF_OK)
		err = pack_counts(r, in);
	if (err == AF_OK)
		err = end ? af_pending_end(r->ctx, p, r->out)
			  : af_pending_reply(r->ctx, p, r->out);
	if (err != AF_OK && why[0] == '\0')
		snprintf(why, sizeof(why), "cannot send the answer: %s",
			 af_strerror(err));
answer:
	if (err != AF_OK)
		af_pending_error(r->ctx, p, err, "%s",
				 why[0] ? why : af_strerror(err));
	af__ingest_free(r, in);
}

static af_err handle_insert(retrieval *r, af_msg *m)
{
	ringest in = {0};
	char why[RETRIEVAL_WHY] = "";
	af_err err;

	af__ingest_open(r, &in);
	err = af__ingest_parse(r, af_msg_payload(m), &in, why);
	if (err != AF_OK) {
		af__ingest_free(r, &in);
		return af_reply_error(r->ctx, m, err, "%s",
				      why[0] ? why : af_strerror(err));
	}
	return ingest(r, m, &in);
}

static af_err handle_load_dir(retrieval *r, af_msg *m)
{
	const af_value *payload = af_msg_payload(m);
	const af_value *rec = af_value_get(payload, "recursive");
	bool recursive = true;
	char *path;
	af_err err;

	if (af_value_type(af_value_get(payload, "path")) != AF_TYPE_STR)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "load_dir needs \"path\", a string");
	if (rec != NULL && af_value_type(rec) != AF_TYPE_NIL &&
	    af_value_bool(rec, &recursive) != AF_OK)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"recursive\" must be a boolean");
	path = af_value_strdup(af_value_get(payload, "path"));
	if (path == NULL)
		return AF_ENOMEM;
	if (*path == '\0' ||
	    strlen(path) != af_value_len(af_value_get(payload, "path"))) {
		free(path);
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"path\" must be a non-empty string "
				      "without NUL");
	}
	err = af__load_dir_start(r, m, path, recursive);
	free(path);
	return err;
}

static af_err handle_delete(retrieval *r, af_msg *m)
{
	const af_value *id = af_value_get(af_msg_payload(m), "id");
	const char *s;
	size_t len;
	bool found = false;
	int64_t chunks = 0;
	uint64_t seq = ++r->write_seq;
	af_err err;

	if (af_value_str(id, &s, &len) != AF_OK || len == 0)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "delete needs \"id\", a non-empty "
				      "string");
	r->n_removed = 0;
	err = af__store_begin(r->store);
	if (err == AF_OK)
		err = af__store_delete(r->store, s, len,
				       af__ingest_note_removed, r, &found,
				       &chunks);
	/* A write still waiting, older than this delete, must not bring
	 * the document back. */
	if (err == AF_OK)
		err = af__write_note(r, s, len, seq, r->writes_open > 0);
	if (err == AF_OK)
		err = af__store_commit(r->store);
	if (err != AF_OK) {
		af__store_rollback(r->store);
		return af_reply_error(r->ctx, m, err, "deleting \"%.*s\": %s",
				      len > 100 ? 100 : (int)len, s,
				      err == AF_ENOMEM
					      ? "out of memory"
					      : af__store_errmsg(r->store));
	}
	for (size_t k = 0; k < r->n_removed; k++)
		af__vindex_remove(r->vectors, r->removed[k]);
	af_payload_reset(r->out);
	af_pack_map(r->out, 2);
	af_pack_str(r->out, "deleted");
	af_pack_int(r->out, found ? 1 : 0);
	af_pack_str(r->out, "chunks");
	af_pack_int(r->out, chunks);
	return af_reply(r->ctx, m, r->out);
}

static af_err handle_retrieve(retrieval *r, af_msg *m)
{
	const af_value *payload = af_msg_payload(m);
	const af_value *top = af_value_get(payload, "top_k");
	const af_value *mode_v = af_value_get(payload, "mode");
	char why[RETRIEVAL_WHY] = "";
	retrieval_mode mode = r->mode;
	const char *query, *s;
	size_t query_len, len, words;
	int64_t top_k = r->top_k;
	rwait *w;
	af_err err;

	if (af_value_type(payload) != AF_TYPE_MAP)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "a retrieve request is a map");
	if (af_value_str(af_value_get(payload, "query"), &query, &query_len) !=
	    AF_OK)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "retrieve needs \"query\", a string");
	if (query_len == 0 || !af__utf8_text_ok(query, query_len))
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"query\" must be non-empty UTF-8 text");
	/* Every word is a term of the search: a query of a million words
	 * would hold the actor for seconds. */
	words = af__store_words(query, query_len);
	if (words > AF_RETRIEVAL_MAX_QUERY_WORDS)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"query\" has %zu words; at most %d",
				      words, AF_RETRIEVAL_MAX_QUERY_WORDS);
	if (top != NULL && af_value_type(top) != AF_TYPE_NIL &&
	    (af_value_int(top, &top_k) != AF_OK || top_k < 1 ||
	     top_k > r->max_top_k))
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"top_k\" must be an integer from 1 to "
				      "%d",
				      r->max_top_k);
	if (mode_v != NULL && af_value_type(mode_v) != AF_TYPE_NIL &&
	    (af_value_str(mode_v, &s, &len) != AF_OK ||
	     !mode_named(s, len, &mode)))
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "\"mode\" must be \"bm25\", \"vector\" "
				      "or \"hybrid\"");
	if (mode == MODE_BM25) {
		err = rank(r, query, query_len, (int)top_k, mode, NULL, 0, why);
		if (err != AF_OK)
			return af_reply_error(r->ctx, m, err, "%s",
					      why[0] ? why : af_strerror(err));
		return af_reply(r->ctx, m, r->out);
	}
	if (r->embed == NULL)
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "mode \"%s\" needs an embeddings "
				      "endpoint, and none is configured",
				      mode == MODE_VECTOR ? "vector"
							  : "hybrid");
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return AF_ENOMEM;
	w->retrieve = true;
	w->query = malloc(query_len + 1);
	if (w->query == NULL) {
		free(w);
		return AF_ENOMEM;
	}
	memcpy(w->query, query, query_len);
	w->query[query_len] = '\0';
	w->query_len = query_len;
	w->top_k = (int)top_k;
	w->mode = mode;
	return start_wait(r, m, NULL, w, (const char *const *)&w->query,
			  &w->query_len, 1);
}

static af_err handle_stats(retrieval *r, af_msg *m)
{
	int64_t docs, chunks, embedded;
	af_err err = af__store_counts(r->store, &docs, &chunks, &embedded);

	if (err != AF_OK)
		return af_reply_error(r->ctx, m, err, "counting: %s",
				      af__store_errmsg(r->store));
	af_payload_reset(r->out);
	af_pack_map(r->out, 3);
	af_pack_str(r->out, "documents");
	af_pack_int(r->out, docs);
	af_pack_str(r->out, "chunks");
	af_pack_int(r->out, chunks);
	af_pack_str(r->out, "embedded");
	af_pack_int(r->out, embedded);
	return af_reply(r->ctx, m, r->out);
}

static af_err handle(af_ctx *ctx, void *state, af_msg *m)
{
	static const struct {
		const char *type;
		af_err (*fn)(retrieval *r, af_msg *m);
	} ops[] = {
		{"insert", handle_insert}, {"load_dir", handle_load_dir},
		{"delete", handle_delete}, {"retrieve", handle_retrieve},
		{"stats", handle_stats},
	};
	const char *type = af_msg_type(m);

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(ops[i].type, type) != 0)
			continue;
		/* A tell would have nowhere to send the answer or the
		 * error, and an ingest nobody hears of is not wanted. */
		if (af_msg_kind(m) != AF_KIND_REQUEST)
			return AF_OK;
		return ops[i].fn(state, m);
	}
	return AF_ENOTSUP;
}

/* ---- the actor --------------------------------------------------------- */

static af_err load_vector(void *arg, int64_t chunk, const float *vec, int dim)
{
	retrieval *r = arg;

	return af__vindex_add(r->vectors, chunk, vec, dim);
}

static void free_actor(retrieval *r)
{
	while (r->waits != NULL) {
		r->waits->p = NULL;
		free_wait(r->waits);
	}
	af__load_dir_free_all(r);
	af__embedder_destroy(&r->embed);
	af__vindex_destroy(&r->vectors);
	af__store_close(&r->store);
	af_payload_destroy(&r->out);
	af_payload_destroy(&r->meta);
	free(r->removed);
	free(r->added);
	free(r);
}

/* What init refuses in a configuration, said the way af_spawn passes on. */
static af_err config_error(af_ctx *ctx, retrieval *r,
			   const af_retrieval_config *cfg)
{
	if (r->chunk_overlap >= r->chunk_size)
		return af_init_fail(ctx, AF_EINVAL,
				    "retrieval: chunk_overlap (%d) must be "
				    "below chunk_size (%d)",
				    r->chunk_overlap, r->chunk_size);
	/* A hybrid retrieve ranks each list to twice top_k, counted in an
	 * int. */
	if (r->max_top_k > INT_MAX / 2)
		return af_init_fail(ctx, AF_EINVAL,
				    "retrieval: max_top_k (%d) is above %d",
				    r->max_top_k, INT_MAX / 2);
	if (r->top_k > r->max_top_k)
		return af_init_fail(ctx, AF_EINVAL,
				    "retrieval: top_k (%d) is above max_top_k "
				    "(%d)",
				    r->top_k, r->max_top_k);
	if (cfg->mode != NULL &&
	    !mode_named(cfg->mode, strlen(cfg->mode), &r->mode))
		return af_init_fail(ctx, AF_EINVAL,
				    "retrieval: unknown mode \"%s\" (known: "
				    "bm25, vector, hybrid)",
				    cfg->mode);
	return AF_OK;
}

static af_err init(af_ctx *ctx, const void *config, void **state)
{
	const af_retrieval_config *cfg = config;
	af_retrieval_config dflt;
	char why[RETRIEVAL_WHY] = "";
	retrieval *r;
	af_err err;

	if (cfg == NULL) {
		af_retrieval_config_init(&dflt);
		cfg = &dflt;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return AF_ENOMEM;
	r->ctx = ctx;
	r->chunk_size =
		cfg->chunk_size > 0 ? cfg->chunk_size : AF_RETRIEVAL_CHUNK_SIZE;
	r->chunk_overlap = cfg->chunk_overlap > 0 ? cfg->chunk_overlap
			   : cfg->chunk_overlap < 0
				   ? 0
				   : AF_RETRIEVAL_CHUNK_OVERLAP;
	if (cfg->chunk_overlap == 0 && r->chunk_overlap >= r->chunk_size)
		r->chunk_overlap = r->chunk_size / 5; /* the default's ratio */
	r->max_top_k =
		cfg->max_top_k > 0 ? cfg->max_top_k : AF_RETRIEVAL_MAX_TOP_K;
	r->top_k = cfg->top_k > 0 ? cfg->top_k : AF_RETRIEVAL_TOP_K;
	r->max_document_bytes = cfg->max_document_bytes > 0
					? cfg->max_document_bytes
					: (size_t)16 << 20;
	r->max_load_bytes =
		cfg->max_load_bytes > 0 ? cfg->max_load_bytes : (size_t)1 << 30;
	r->embed_timeout_ms =
		cfg->embed_timeout_ms > 0 ? cfg->embed_timeout_ms : 60000;
	err = config_error(ctx, r, cfg);
	if (err != AF_OK)
		goto fail;
	if (cfg->embed_provider != NULL) {
		err = af__embedder_new(&r->embed, ctx, cfg);
		if (err != AF_OK)
			goto fail;
	}
	err = af_payload_new(&r->out);
	if (err == AF_OK)
		err = af_payload_new(&r->meta);
	if (err == AF_OK)
		err = af__vindex_new(&r->vectors);
	if (err != AF_OK)
		goto fail;
	err = af__store_open(&r->store, cfg->db_path, why, sizeof(why));
	if (err != AF_OK) {
		af_init_fail(
			ctx, err, "retrieval: db_path %s: %s",
			cfg->db_path != NULL ? cfg->db_path : ":memory:", why);
		goto fail;
	}
	err = af__store_vectors(r->store, load_vector, r);
	if (err != AF_OK) {
		af_init_fail(ctx, err,
			     "retrieval: reading the stored vectors of %s: %s",
			     cfg->db_path != NULL ? cfg->db_path : ":memory:",
			     af_strerror(err));
		goto fail;
	}
	*state = r;
	return AF_OK;
fail:
	free_actor(r);
	return err;
}

static void stop(af_ctx *ctx, void *state)
{
	/* Deferred requests still open were answered AF_ESTOPPED by the
	 * runtime; their waits and transfers are freed here. */
	free_actor(state);
}

const af_actor_ops af_retrieval_ops = {
	.type_name = "retrieval",
	.init = init,
	.handle = handle,
	.stop = stop,
};
