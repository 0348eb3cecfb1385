/*
 * The retrieval actor's parts, shared by its files:
 *   retrieval.c  the actor: config, requests, retrieve (bm25, vector,
 *                hybrid) and the replies;
 *   ingest.c     documents from insert requests and files: checked,
 *                split, and written in one transaction;
 *   load_dir.c   load_dir: the folder's walk, then its files read in
 *                slices between other requests, with progress;
 *   splitter.c   the sentence-aware chunker;
 *   store.c      SQLite: documents, chunks, FTS5;
 *   vectors.c    the normalised vectors in memory, cosine top-k;
 *   embed.c      batched embedding requests on the shared HTTP engine.
 *
 * All of it runs on the retrieval actor's thread.
 */
#ifndef AF_RETRIEVAL_INTERNAL_H
#define AF_RETRIEVAL_INTERNAL_H

#include <actorflow/actorflow.h>
#include <actorflow/retrieval.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "splitter.h"
#include "store.h"
#include "vectors.h"

/* Room for an error's text: it names the field, file or id at fault. */
#define RETRIEVAL_WHY 512

typedef enum retrieval_mode {
	MODE_BM25,
	MODE_VECTOR,
	MODE_HYBRID
} retrieval_mode;

typedef struct retrieval retrieval;

/* A document of an ingest request, checked and split; owns its bytes. */
typedef struct rdoc {
	char *id; /* NUL-terminated, id_len bytes */
	size_t id_len;
	char *text;
	size_t text_len;
	void *metadata; /* one msgpack map */
	size_t metadata_len;
	af_span *spans; /* its chunks, spans of text */
	size_t n_spans;
} rdoc;

/* The documents of one insert or load_dir request. */
typedef struct ringest {
	rdoc *docs;
	size_t n;
	size_t cap;
	size_t chunks;  /* over every document */
	uint64_t bytes; /* of text, over every document */
	bool from_dir;  /* a load_dir: the reply says bytes too */
	uint64_t seq;   /* its place among the writes (af__ingest_open) */
} ringest;

struct retrieval {
	af_ctx *ctx;
	af_store *store;
	af_vindex *vectors;
	af_embedder *embed; /* NULL: no embeddings configured */
	int chunk_size;
	int chunk_overlap;
	int top_k;
	int max_top_k;
	retrieval_mode mode;
	size_t max_document_bytes;
	size_t max_load_bytes;
	int64_t embed_timeout_ms;
	af_payload *out;  /* reused to encode replies */
	af_payload *meta; /* reused to encode metadata */
	struct rwait *waits;
	struct rload *loads; /* load_dir requests reading their files */
	/* The chunk ids the write in progress removed and added, applied to
	 * the vectors in memory once it commits. */
	int64_t *removed;
	size_t n_removed;
	size_t cap_removed;
	int64_t *added;
	size_t cap_added;
	/* Writes (insert, load_dir, delete) take effect in the order they
	 * arrive, though one may wait for embeddings or files while later
	 * ones finish: each is numbered on arrival, and while any waits,
	 * the documents written are noted in the store with their write's
	 * number (af__store_note_write). */
	uint64_t write_seq; /* the last number given */
	size_t writes_open; /* ingests numbered and not yet freed */
	bool writes_noted;  /* the store holds notes to forget */
};

/* Writes the reason for a failure, from fmt, into why (RETRIEVAL_WHY
 * bytes) and returns err, so that a check fails in one statement. */
af_err af__ingest_why(char *why, af_err err, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Appends the documents of an insert request's payload (one document, or
 * "documents": [...]) to in. AF_OK; AF_EINVAL, AF_EMSGSIZE with why
 * filled; AF_ENOMEM. */
af_err af__ingest_parse(retrieval *r, const af_value *payload, ringest *in,
			char *why);

/* Reads the file at path (id: its path under the folder) and appends it
 * to in as a document, with metadata {"file_path": id, "file_name": its
 * last part}; a file with no words is passed over. AF_OK; AF_ESYS,
 * AF_EINVAL, AF_EMSGSIZE with why filled; AF_ENOMEM. */
af_err af__ingest_file(retrieval *r, ringest *in, const char *path,
		       const char *id, char *why);

/* Starts the load_dir request m for the folder path: walks it at once
 * (an error is answered at once), then reads its files in slices, one per
 * turn of the loop, and stores them with af__retrieval_store. Returns
 * what the handler returns. */
af_err af__load_dir_start(retrieval *r, af_msg *m, const char *path,
			  bool recursive);

/* Frees the load_dir requests still reading, when the actor stops (the
 * runtime answered them and settled their timers). */
void af__load_dir_free_all(retrieval *r);

/* Stores in (taken) and answers *p with the counts, now or once the
 * chunks are embedded: with af_pending_end when p is a stream, else
 * af_pending_reply; with an error when storing fails. Sets *p to NULL. */
void af__retrieval_store(retrieval *r, af_pending **p, ringest *in);

/* Writes in's documents in one transaction, replacing those of the same
 * ids, each chunk with its vector from vectors (chunk i of the whole
 * request at i * dim) when vectors is not NULL; then updates the vectors
 * in memory. Nothing is written on failure: AF_EIO, AF_EPROTO (vectors of
 * another dimension than the index's), AF_ENOMEM, with why filled. */
af_err af__ingest_commit(retrieval *r, const ringest *in, const float *vectors,
			 int dim, char *why);

/* The chunks' texts of in, in order, for embedding: arrays of in->chunks
 * pointers and lengths (malloc'ed, the caller frees both). AF_ENOMEM. */
af_err af__ingest_texts(const ringest *in, const char ***texts, size_t **lens);

/* An af_store_removed_fn (arg: the retrieval) that notes a chunk removed
 * by the write in progress, for the vectors in memory. AF_ENOMEM. */
af_err af__ingest_note_removed(void *arg, int64_t chunk);

/* Numbers in as the latest write, on the request's arrival. */
void af__ingest_open(retrieval *r, ringest *in);

/* Notes in the store, inside the write's transaction, that the write
 * numbered seq wrote the document id[0, len), when writes other than
 * this one are open (others_open): an older one may finish later. */
af_err af__write_note(retrieval *r, const char *id, size_t len, uint64_t seq,
		      bool others_open);

/* Frees in's documents and ends its write; in may be reused after (not
 * numbered). */
void af__ingest_free(retrieval *r, ringest *in);

#endif
