/*
 * The retrieval actor's storage: documents and their chunks in SQLite,
 * with an FTS5 index (porter stemming over unicode61 tokens) for BM25.
 *
 * Schema (version 2; the file's application_id says it is ours):
 *   documents(id INTEGER PRIMARY KEY, name TEXT UNIQUE, metadata BLOB)
 *             name is the document id requests use; metadata is one
 *             msgpack map, sent back as it is;
 *   chunks(id INTEGER PRIMARY KEY AUTOINCREMENT, doc, position, text,
 *          vector BLOB)   vector: float32s in host order, or NULL;
 *   chunks_fts            FTS5 over chunks.text (external content,
 *                         kept in step by the add and delete
 *                         statements, which are faster than triggers).
 * Chunk ids only grow (AUTOINCREMENT), so new chunks sort last.
 *
 * Every function runs on the retrieval actor's thread. Errors: AF_EIO
 * (SQLite failed; af__store_errmsg says why), AF_ENOMEM.
 */
#ifndef AF_RETRIEVAL_STORE_H
#define AF_RETRIEVAL_STORE_H

#include <actorflow/err.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct af_store af_store;

/* A chunk as stored; its pointers are valid until the next call on the
 * store. */
typedef struct af_store_chunk {
	const char *doc; /* the document id */
	size_t doc_len;
	int64_t position; /* the chunk's number in its document */
	const char *text;
	size_t text_len;
	const void *metadata; /* the document's metadata, msgpack */
	size_t metadata_len;
} af_store_chunk;

/* Opens (creating when missing) the database at path; NULL or ":memory:"
 * keeps it in memory. A file that is not a database, or a database of
 * another program or schema version, is AF_EIO with the reason in err
 * (at most errsize bytes). Caller owns *out (af__store_close). */
af_err af__store_open(af_store **out, const char *path, char *err,
		      size_t errsize);

/* Closes the database and frees s. Accepts NULL; sets *s to NULL. */
void af__store_close(af_store **s);

/* SQLite's message for the last failure; valid until the next call. */
const char *af__store_errmsg(af_store *s);

/* A write transaction: begin, then commit, or roll back (which never
 * fails, and undoes everything since begin). */
af_err af__store_begin(af_store *s);
af_err af__store_commit(af_store *s);
void af__store_rollback(af_store *s);

/* Called for each chunk a delete removes, with its id. */
typedef af_err (*af_store_removed_fn)(void *arg, int64_t chunk_id);

/* Deletes the document named id[0, len) and its chunks, calling removed
 * (may be NULL) for each chunk. *found says whether it existed; *chunks
 * (may be NULL) counts the chunks removed. */
af_err af__store_delete(af_store *s, const char *id, size_t len,
			af_store_removed_fn removed, void *arg, bool *found,
			int64_t *chunks);

/* Adds a document (none of that name may exist: delete it first) and
 * sets *doc to its row, for its chunks. */
af_err af__store_add_doc(af_store *s, const char *id, size_t len,
			 const void *metadata, size_t metadata_len,
			 int64_t *doc);

/* Adds a chunk of document doc; vector may be NULL (dim 0). Sets *chunk
 * to its id. */
af_err af__store_add_chunk(af_store *s, int64_t doc, int64_t position,
			   const char *text, size_t len, const float *vector,
			   int dim, int64_t *chunk);

/* BM25 search: at most limit chunk ids with their scores (-bm25(), so
 * higher is better), best first, for the FTS5 expression match (a query
 * made safe by af__store_match). */
af_err af__store_bm25(af_store *s, const char *match, int limit, int64_t *ids,
		      double *scores, size_t *n);

/* Turns a user's query into an FTS5 expression that cannot be anything
 * but a search: each word (a run of letters, digits or non-ASCII bytes)
 * double-quoted, joined with OR. Returns a malloc'ed string the caller
 * frees, "" when the query has no words, NULL when memory ran out. */
char *af__store_match(const char *query, size_t len);

/* How many words af__store_match would search for in query[0, len). */
size_t af__store_words(const char *query, size_t len);

/* The chunk with id chunk; *found false when there is none. Its row
 * stays open (a read transaction) until af__store_chunk_done. */
af_err af__store_chunk(af_store *s, int64_t chunk, af_store_chunk *out,
		       bool *found);

/* Ends the read of the last af__store_chunk, whose pointers are then no
 * longer valid. A row left open would pin the database's snapshot: a file
 * database's WAL could never be checkpointed and reset. */
void af__store_chunk_done(af_store *s);

/* Calls fn for every chunk with a vector, in increasing id order, with
 * the vector's floats (borrowed for the call). */
typedef af_err (*af_store_vector_fn)(void *arg, int64_t chunk,
				     const float *vector, int dim);
af_err af__store_vectors(af_store *s, af_store_vector_fn fn, void *arg);

/* Counts: documents, chunks, chunks with a vector. */
af_err af__store_counts(af_store *s, int64_t *documents, int64_t *chunks,
			int64_t *embedded);

/* The order of writes. While writes wait (for embeddings, for files),
 * each document a write stores or deletes is noted with the write's
 * number (in the write's transaction), so that an earlier write that
 * finishes later leaves the document as the later one left it. */
af_err af__store_note_write(af_store *s, const char *id, size_t len,
			    uint64_t seq);

/* *later: a write numbered after seq has stored or deleted the document
 * named id[0, len) since the notes were last forgotten. */
af_err af__store_written_later(af_store *s, const char *id, size_t len,
			       uint64_t seq, bool *later);

/* Forgets the notes, once no write waits. */
void af__store_forget_writes(af_store *s);

#endif
