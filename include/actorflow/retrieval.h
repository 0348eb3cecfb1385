/*
 * actorflow: the retrieval actor, aretrieve for C.
 *
 * Spawn it with af_retrieval_ops and an af_retrieval_config:
 *
 *   af_retrieval_config cfg;
 *   af_retrieval_config_init(&cfg);
 *   cfg.db_path = "index.db";          (NULL: in memory)
 *   af_spawn(sys, "retrieval", &af_retrieval_ops, &cfg, NULL);
 *
 * Documents are split into chunks and stored in SQLite, with an FTS5 index
 * for BM25 keyword search (the default, offline). With an embeddings
 * endpoint configured, every chunk also gets a vector, and retrieval can
 * rank by cosine similarity or fuse both rankings.
 *
 * Chunking follows LlamaIndex's SentenceSplitter: text is cut into
 * paragraphs, paragraphs into sentences, and sentences (words, for a
 * sentence longer than a chunk) are packed into chunks of at most
 * chunk_size tokens; each chunk after the first starts with whole
 * sentences from the end of the one before, up to chunk_overlap tokens. A
 * token is approximated by a word (a run of non-space characters), so the
 * sizes are counted in words.
 *
 * Requests (msgpack maps):
 *   insert     {"id": str, "text": str, "metadata": {str: str|int|float|
 *              bool}} one document, or {"documents": [{...}, ...]} several
 *              in one transaction. Re-inserting an id replaces that
 *              document. Reply {"documents": int, "chunks": int}.
 *   load_dir   {"path": str, "recursive": bool (default true)}: every .txt
 *              and .md file under path, in one transaction. A document's
 *              id is its path relative to path; its metadata
 *              {"file_path": that path, "file_name": its last part}.
 *              Names starting with '.' are passed over, as are files
 *              with no words; symbolic links to files are followed, to
 *              folders not (so a loop cannot trap the walk). A
 *              name it would use that is not UTF-8 fails it
 *              (AF_EINVAL), as does a file that is not UTF-8 text.
 *              Reply {"documents": int, "chunks": int, "bytes": int
 *              (of text)}.
 *              The folder is walked when the request arrives; its
 *              files are then read, checked and split in slices of at
 *              most 64 files or 8 MiB, one per turn of the actor's
 *              loop, so other requests are answered between slices.
 *              Nothing is stored until every file has been read (the
 *              documents are then written in one transaction, as an
 *              insert's): a bad file anywhere, or a requester that
 *              gives up (af_cancel, af_stream_close, its deadline),
 *              stores nothing, and stops the work.
 *              Sent as a stream (af_request_stream, af_client_stream,
 *              `actorflow ask`), it answers with a progress chunk after
 *              each slice, {"files": int, "files_total": int, "bytes":
 *              int, "bytes_total": int} (files read of those the walk
 *              found, and their sizes as it found them; the last chunk
 *              has files == files_total), then ends with the reply
 *              above as the end's payload. A chunk the consumer has no
 *              credit for is left out, not waited for. A folder with
 *              no files, or a plain request, gets the plain reply.
 *   delete     {"id": str}. Reply {"deleted": int (0 or 1), "chunks": int}.
 *   retrieve   {"query": str, "top_k": int (default the config's, 2),
 *              "mode": "bm25" | "vector" | "hybrid" (default the
 *              config's, "bm25")}. Reply {"nodes": [node, ...]}, best
 *              first, at most top_k, where a node is
 *                {"id": str       the chunk's id, "<doc id>#<position>",
 *                 "doc_id": str, "position": int (the chunk's number in
 *                 its document, from 0), "score": float (higher is
 *                 better: -bm25() of FTS5, the cosine similarity, or the
 *                 reciprocal rank fusion sum), "text": str,
 *                 "metadata": {...}}
 *              The query's words (runs of letters, digits and non-ASCII
 *              characters) are searched for, each quoted, joined with
 *              OR: FTS5 syntax in a query is only words, and a query
 *              with no word finds nothing. A query of more than
 *              AF_RETRIEVAL_MAX_QUERY_WORDS (1024) words is refused.
 *              Hybrid fuses the two rankings, each taken to depth
 *              max(2 * top_k, 20), by sum of 1 / (60 + rank).
 *   stats      nil. Reply {"documents": int, "chunks": int,
 *              "embedded": int (chunks with a vector)}.
 * Metadata values may also be nil. Tells of these types are ignored:
 * they would have nowhere to send the answer or the error.
 * Errors (the reply's text names the field, file or id at fault):
 *   AF_EINVAL     a payload of bad shape; an empty id, text or query;
 *                 text that is not UTF-8; top_k < 1 or above max_top_k;
 *                 an unknown mode; vector or hybrid with no embeddings
 *                 configured
 *   AF_ENOTFOUND  load_dir of a path that does not exist
 *   AF_ESYS       a file that cannot be read (load_dir: nothing of the
 *                 folder is stored)
 *   AF_EMSGSIZE   a document above max_document_bytes; a load_dir of
 *                 files above max_load_bytes in all
 *   AF_EIO        SQLite failed (a corrupt or read-only database file)
 *   embeddings    the chat actor's HTTP errors (AF_EHTTP, AF_EPEERDOWN,
 *                 AF_ETIMEDOUT, AF_EPROTO) from the embeddings endpoint
 * Ingest is transactional: a request that fails stores nothing, and a
 * document being replaced stays as it was.
 *
 * The actor's own work (splitting, SQLite, cosine ranking) runs on its
 * thread, one request at a time; requests to the embeddings endpoint run
 * concurrently on its loop, so inserts and retrieves that wait for
 * vectors do not hold up the others. A load_dir's reading is cut into
 * slices the same way; its final write, and an insert's, are one step.
 * Writes (insert, load_dir, delete) still take effect in the order the
 * actor receives them: a write that waits for its vectors or files leaves
 * alone any document that a write received after it has stored or
 * deleted meanwhile (it counts that document in its reply, as stored and
 * then replaced). A delete that comes while an insert of the same id
 * waits answers "deleted" for what was stored when it came.
 *
 * One retrieval actor per database file: the actor is the only writer it
 * expects (SQLite's locks would fail a second writer at once with AF_EIO,
 * since a handler never waits), and its vectors in memory see only its
 * own writes. Other processes reach the index through the actor.
 */
#ifndef ACTORFLOW_RETRIEVAL_H
#define ACTORFLOW_RETRIEVAL_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The retrieval actor's ops; its config is an af_retrieval_config. */
extern const af_actor_ops af_retrieval_ops;

/* Defaults for the fields of af_retrieval_config left at 0. */
#define AF_RETRIEVAL_CHUNK_SIZE 1024
#define AF_RETRIEVAL_CHUNK_OVERLAP 200
#define AF_RETRIEVAL_TOP_K 2
#define AF_RETRIEVAL_MAX_TOP_K 1000
/* The most words a retrieve's query may hold (each one is a term). */
#define AF_RETRIEVAL_MAX_QUERY_WORDS 1024

typedef struct af_retrieval_config {
	/* The SQLite database file, created when missing and reopened with
	 * its documents after a restart; NULL or ":memory:": in memory. A
	 * file that is not a database (or not this actor's) fails the spawn
	 * with AF_EIO. */
	const char *db_path;
	int chunk_size; /* words per chunk; 0: 1024 */
	/* Words; 0: 200 (a fifth of chunk_size when that is 200 or
	 * less), < 0: none. Must be below chunk_size (else AF_EINVAL). */
	int chunk_overlap;
	int top_k; /* a retrieve that gives none; 0: 2 */
	/* The largest top_k accepted; 0: 1000. Above INT_MAX / 2 fails
	 * the spawn with AF_EINVAL. */
	int max_top_k;
	/* "bm25", "vector" or "hybrid"; NULL: "bm25". */
	const char *mode;
	/* The largest document accepted, in bytes; 0: 16 MiB. */
	size_t max_document_bytes;
	/* The most a load_dir reads, in bytes over all its files (as the
	 * walk finds their sizes): all of it is held until the one write at
	 * the end. 0: 1 GiB. */
	size_t max_load_bytes;

	/* Embeddings: "openai" (POST {base_url}/embeddings) or "ollama"
	 * (POST {base_url}/api/embed); NULL: none (bm25 only). */
	const char *embed_provider;
	const char *embed_base_url; /* NULL: the provider's default */
	const char *embed_model;    /* NULL: the provider's default */
	/* The name of the environment variable that holds the API key
	 * (NULL: none sent). Read once, at spawn; never logged. */
	const char *embed_api_key_env;
	int embed_batch_size;     /* texts per request; 0: 64 */
	int embed_max_concurrent; /* requests at once; 0: 4 */
	int embed_max_retries;    /* < 0: 0; default 3 */
	int64_t embed_timeout_ms; /* one request; 0: 60 s */
	/* A PEM file of the certificate authorities an https embeddings
	 * server is verified against; NULL: the system's. */
	const char *embed_ca_file;
} af_retrieval_config;

/* Fills c with the defaults: in memory, bm25, no embeddings. Any thread. */
void af_retrieval_config_init(af_retrieval_config *c);

#ifdef __cplusplus
}
#endif
#endif
