/*
 * The retrieval actor's vectors in memory: every embedded chunk's vector,
 * normalised, in one contiguous matrix, for cosine top-k computed in C.
 *
 * The store keeps the vectors as they came; this index is loaded from it
 * at open and changed after each commit, so a retrieve reads no blobs
 * (at 100,000 chunks, reading them per query costs far more than the
 * dot products). Rows are kept in increasing chunk id order; a removed
 * row is marked dead and the matrix is compacted when half of it is.
 *
 * Every function runs on the retrieval actor's thread.
 */
#ifndef AF_RETRIEVAL_VECTORS_H
#define AF_RETRIEVAL_VECTORS_H

#include <actorflow/err.h>
#include <stddef.h>
#include <stdint.h>

typedef struct af_vindex af_vindex;

/* Creates an empty index. Caller owns *out (af__vindex_destroy). AF_OK,
 * AF_ENOMEM. */
af_err af__vindex_new(af_vindex **out);

/* Frees v. Accepts NULL; sets *v to NULL. */
void af__vindex_destroy(af_vindex **v);

/* The dimension of the vectors held; 0 before the first. */
int af__vindex_dim(const af_vindex *v);

/* Live vectors held. */
size_t af__vindex_count(const af_vindex *v);

/* Adds a copy of vec, normalised, for chunk id (a new id: ids are
 * expected to grow, a smaller one is placed in order). AF_EINVAL when dim
 * differs from the vectors held; AF_ENOMEM. */
af_err af__vindex_add(af_vindex *v, int64_t id, const float *vec, int dim);

/* Makes room for n more vectors of dim dimensions, so that the next n
 * af__vindex_add calls cannot fail for want of memory: the way to update
 * the index after a commit without a failure that could leave it out of
 * step with the store. AF_EINVAL when dim differs from the vectors held;
 * AF_ENOMEM. */
af_err af__vindex_reserve(af_vindex *v, size_t n, int dim);

/* Forgets chunk id's vector; nothing when it has none. */
void af__vindex_remove(af_vindex *v, int64_t id);

/* The k (>= 1) chunks most similar to q (dim floats, any length) by
 * cosine, best first: ids[i] and scores[i] for i < *n (*n <= k).
 * AF_EINVAL when dim differs from the vectors held. */
af_err af__vindex_top(const af_vindex *v, const float *q, int dim, int k,
		      int64_t *ids, double *scores, size_t *n);

#endif
