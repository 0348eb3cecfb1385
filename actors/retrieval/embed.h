/*
 * Embeddings for the retrieval actor: texts sent in batches to an
 * OpenAI-compatible endpoint (POST {base}/embeddings, {"model", "input":
 * [texts]} answered {"data": [{"index", "embedding": [floats]}]}) or to
 * Ollama's (POST {base}/api/embed, the same body, answered
 * {"embeddings": [[floats], ...]}), over the shared HTTP engine
 * (actors/http) on the actor's loop, several batches at once.
 *
 * Every function runs on the retrieval actor's thread.
 */
#ifndef AF_RETRIEVAL_EMBED_H
#define AF_RETRIEVAL_EMBED_H

#include <actorflow/actorflow.h>
#include <stddef.h>
#include <stdint.h>

typedef struct af_embedder af_embedder;
typedef struct af_embed_job af_embed_job;

/* The largest dimension accepted from a server. */
#define AF_EMBED_MAX_DIM 65536

/* A job's end. On AF_OK, vectors holds n * dim floats, the vector of text
 * i at i * dim, borrowed for the call. Otherwise err is the failure and
 * msg (borrowed) says what failed: AF_EHTTP, AF_ETIMEDOUT, AF_EPEERDOWN
 * (from the engine), AF_EPROTO (an answer of the wrong shape, count or
 * dimension), AF_ENOMEM. The job is freed when this returns. */
typedef void (*af_embed_done_fn)(af_ctx *ctx, void *arg, af_err err,
				 const char *msg, const float *vectors,
				 int dim);

/* Creates the embedder from cfg's embed_* fields (cfg->embed_provider
 * must be "openai" or "ollama", else AF_EINVAL) on ctx's loop. Reads the
 * API key from the environment now. Caller owns *out. AF_OK, AF_EINVAL,
 * AF_ENOMEM, AF_ESYS. */
af_err af__embedder_new(af_embedder **out, af_ctx *ctx,
			const af_retrieval_config *cfg);

/* Aborts every job (their done callbacks are not called) and frees e.
 * Accepts NULL; sets *e to NULL. */
void af__embedder_destroy(af_embedder **e);

/* Embeds n (>= 1) texts: texts[i] of lens[i] bytes, UTF-8 with no NUL,
 * which must stay valid until the job ends. timeout_ms (> 0) bounds each
 * request. On AF_OK done will be called exactly once, never from inside
 * this call, unless the job is cancelled first; *out names the job until
 * then. AF_ENOMEM, AF_EINVAL. */
af_err af__embed_start(af_embedder *e, const char *const *texts,
		       const size_t *lens, size_t n, int64_t timeout_ms,
		       af_embed_done_fn done, void *arg, af_embed_job **out);

/* Ends a job now, without calling its done callback, aborting its
 * requests. Accepts NULL; sets *j to NULL. Not from inside done. */
void af__embed_cancel(af_embed_job **j);

#endif
