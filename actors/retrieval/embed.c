/*
 * Embedding requests. A job's texts are cut into batches of batch_size;
 * at most max_concurrent of a job's batches are in flight at once (the
 * HTTP engine caps the actor's total likewise), so a large insert holds
 * the bodies of a few batches in memory, not of all of them. Each answer
 * is parsed whole when it ends and its vectors copied into the job's
 * matrix at the batch's place.
 */
#include "embed.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../http/http.h"
#include "../http/json.h"

/* An answer larger than this is refused: 64 vectors of 4,096 dimensions
 * print in about 6 MB. */
#define ANSWER_MAX (256u * 1024 * 1024)

typedef struct batch {
	af_embed_job *job;
	size_t first; /* its first text */
	size_t n;
	af_http_xfer *xfer;
	char *body; /* the answer so far */
	size_t len;
	size_t cap;
} batch;

struct af_embed_job {
	af_embedder *e;
	const char *const *texts;
	const size_t *lens;
	size_t n;
	int64_t timeout_ms;
	af_embed_done_fn done;
	void *arg;
	batch *batches;
	size_t n_batches;
	size_t started;
	size_t finished;
	size_t in_flight;
	float *vectors; /* n * dim, allocated by the first answer */
	int dim;
	af_embed_job *prev;
	af_embed_job *next;
};

struct af_embedder {
	af_ctx *ctx;
	af_http *http;
	bool ollama;
	char *url; /* the endpoint itself */
	char *model;
	char *api_key; /* NULL: none */
	size_t batch_size;
	size_t max_concurrent;
	af_embed_job *jobs;
};

/* ---- the embedder ------------------------------------------------------ */

/* "host:port" becomes "http://host:port"; trailing '/' go, then path. */
static char *endpoint(const char *base, const char *path)
{
	bool scheme = strstr(base, "://") != NULL;
	size_t len = strlen(base);
	size_t cap = len + strlen(path) + 8;
	char *out = malloc(cap);

	if (out == NULL)
		return NULL;
	while (len > 0 && base[len - 1] == '/')
		len--;
	snprintf(out, cap, "%s%.*s%s", scheme ? "" : "http://", (int)len, base,
		 path);
	return out;
}

af_err af__embedder_new(af_embedder **out, af_ctx *ctx,
			const af_retrieval_config *cfg)
{
	const char *provider = cfg->embed_provider;
	const char *base, *model, *key = NULL;
	af_http_opts http;
	af_embedder *e;
	af_err err = AF_ENOMEM;

	if (provider == NULL || (strcmp(provider, "openai") != 0 &&
				 strcmp(provider, "ollama") != 0))
		return af_init_fail(ctx, AF_EINVAL,
				    "retrieval: unknown embed_provider \"%s\" "
				    "(known: openai, ollama)",
				    provider != NULL ? provider : "");
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return AF_ENOMEM;
	e->ctx = ctx;
	e->ollama = strcmp(provider, "ollama") == 0;
	base = cfg->embed_base_url;
	if (base == NULL)
		base = e->ollama ? "http://localhost:11434"
				 : "https://api.openai.com/v1";
	model = cfg->embed_model;
	if (model == NULL)
		model = e->ollama ? "nomic-embed-text"
				  : "text-embedding-3-small";
	e->url = endpoint(base, e->ollama ? "/api/embed" : "/embeddings");
	e->model = strdup(model);
	if (cfg->embed_api_key_env != NULL)
		key = getenv(cfg->embed_api_key_env);
	if (key != NULL && *key != '\0')
		e->api_key = strdup(key);
	if (e->url == NULL || e->model == NULL ||
	    (key != NULL && *key != '\0' && e->api_key == NULL))
		goto free_e;
	e->batch_size =
		cfg->embed_batch_size > 0 ? (size_t)cfg->embed_batch_size : 64;
	e->max_concurrent = cfg->embed_max_concurrent > 0
				    ? (size_t)cfg->embed_max_concurrent
				    : 4;
	http = (af_http_opts){
		.max_concurrent = (int)e->max_concurrent,
		.max_retries = cfg->embed_max_retries,
		.ca_file = cfg->embed_ca_file,
	};
	err = af__http_new(&e->http, ctx, &http);
	if (err != AF_OK)
		goto free_e;
	*out = e;
	return AF_OK;
free_e:
	af__embedder_destroy(&e);
	return err;
}

/* ---- a job ------------------------------------------------------------- */

static void free_job(af_embed_job *j)
{
	af_embedder *e = j->e;

	for (size_t i = 0; i < j->n_batches; i++) {
		af__http_abort(e->http, &j->batches[i].xfer);
		free(j->batches[i].body);
	}
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		e->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	free(j->batches);
	free(j->vectors);
	free(j);
}

/* Ends the job: its requests still running are aborted first, so done
 * may start others at once. */
static void end_job(af_embed_job *j, af_err err, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static void end_job(af_embed_job *j, af_err err, const char *fmt, ...)
{
	af_embed_done_fn done = j->done;
	void *arg = j->arg;
	af_ctx *ctx = j->e->ctx;
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < j->n_batches; i++)
		af__http_abort(j->e->http, &j->batches[i].xfer);
	if (err == AF_OK) {
		done(ctx, arg, AF_OK, "", j->vectors, j->dim);
	} else {
		done(ctx, arg, err, msg, NULL, 0);
	}
	free_job(j);
}

/* The body: {"model": m, "input": [texts]}. NULL when memory ran out. */
static char *batch_body(const af_embed_job *j, const batch *b)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *input = cJSON_CreateArray();
	char *text = NULL;

	if (root == NULL || input == NULL ||
	    cJSON_AddStringToObject(root, "model", j->e->model) == NULL ||
	    !cJSON_AddItemToObject(root, "input", input)) {
		cJSON_Delete(input);
		goto free_root;
	}
	for (size_t i = b->first; i < b->first + b->n; i++) {
		/* cJSON takes C strings: a copy with its NUL. */
		char *t = strndup(j->texts[i], j->lens[i]);
		cJSON *s = t != NULL ? cJSON_CreateString(t) : NULL;

		free(t);
		if (s == NULL || !cJSON_AddItemToArray(input, s)) {
			cJSON_Delete(s);
			goto free_root;
		}
	}
	text = cJSON_PrintUnformatted(root);
free_root:
	cJSON_Delete(root);
	return text;
}

static af_err on_data(void *arg, const char *buf, size_t len)
{
	batch *b = arg;

	if (len > ANSWER_MAX - b->len)
		return AF_EMSGSIZE;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *grown;

		while (cap < b->len + len)
			cap *= 2;
		grown = realloc(b->body, cap);
		if (grown == NULL)
			return AF_ENOMEM;
		b->body = grown;
		b->cap = cap;
	}
	memcpy(b->body + b->len, buf, len);
	b->len += len;
	return AF_OK;
}

/* Copies one vector (a JSON array of numbers) to text i's place. The
 * first vector of the job sets its dimension and allocates the matrix. */
static af_err take_vector(af_embed_job *j, size_t i, const cJSON *vec,
			  const char **why)
{
	int dim = cJSON_GetArraySize(vec);
	const cJSON *x;
	float *row;

	if (!cJSON_IsArray(vec) || dim < 1 || dim > AF_EMBED_MAX_DIM) {
		*why = "an embedding that is not an array of 1 to 65536 "
		       "numbers";
		return AF_EPROTO;
	}
	if (j->vectors == NULL) {
		if (j->n > SIZE_MAX / sizeof(float) / (size_t)dim) {
			*why = "too many dimensions";
			return AF_EPROTO;
		}
		j->vectors = calloc(j->n * (size_t)dim, sizeof(float));
		if (j->vectors == NULL) {
			*why = "out of memory";
			return AF_ENOMEM;
		}
		j->dim = dim;
	} else if (dim != j->dim) {
		*why = "embeddings of different dimensions";
		return AF_EPROTO;
	}
	row = j->vectors + i * (size_t)dim;
	cJSON_ArrayForEach(x, vec)
	{
		/* Converting a double outside float's range is undefined
		 * behaviour, and a NaN would poison every cosine. */
		if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) ||
		    fabs(x->valuedouble) > FLT_MAX) {
			*why = "an embedding holds something not a finite "
			       "number";
			return AF_EPROTO;
		}
		*row++ = (float)x->valuedouble;
	}
	return AF_OK;
}

/* Reads a batch's answer into the job's matrix. */
static af_err read_answer(af_embed_job *j, batch *b, const char **why)
{
	cJSON *root = af__json_parse(b->body, b->len, why);
	const cJSON *list, *item;
	bool *seen = NULL;
	size_t k = 0;
	af_err err = AF_EPROTO;

	if (root == NULL)
		return AF_EPROTO;
	list = cJSON_GetObjectItemCaseSensitive(
		root, j->e->ollama ? "embeddings" : "data");
	if (!cJSON_IsArray(list)) {
		*why = j->e->ollama ? "an answer without \"embeddings\""
				    : "an answer without \"data\"";
		goto free_root;
	}
	if ((size_t)cJSON_GetArraySize(list) != b->n) {
		*why = "an answer with a different number of embeddings than "
		       "texts sent";
		goto free_root;
	}
	seen = calloc(b->n, sizeof(*seen));
	if (seen == NULL) {
		*why = "out of memory";
		err = AF_ENOMEM;
		goto free_root;
	}
	cJSON_ArrayForEach(item, list)
	{
		const cJSON *vec = item;
		size_t at = k++;

		if (!j->e->ollama) {
			/* OpenAI says which input each one is for. */
			const cJSON *index =
				cJSON_GetObjectItemCaseSensitive(item, "index");

			vec = cJSON_GetObjectItemCaseSensitive(item,
							       "embedding");
			if (cJSON_IsNumber(index)) {
				if (index->valuedouble < 0 ||
				    index->valuedouble >= (double)b->n) {
					*why = "an embedding index out of "
					       "range";
					goto free_seen;
				}
				at = (size_t)index->valuedouble;
			}
		}
		if (seen[at]) {
			*why = "two embeddings for one text";
			goto free_seen;
		}
		seen[at] = true;
		err = take_vector(j, b->first + at, vec, why);
		if (err != AF_OK)
			goto free_seen;
	}
	err = AF_OK;
free_seen:
	free(seen);
free_root:
	cJSON_Delete(root);
	return err;
}

static af_err start_batch(af_embed_job *j, batch *b);

static void on_done(af_ctx *ctx, void *arg, af_err err, long status,
		    const char *msg)
{
	batch *b = arg;
	af_embed_job *j = b->job;
	const char *why = NULL;

	b->xfer = NULL;
	j->in_flight--;
	if (err != AF_OK) {
		end_job(j, err, "embeddings: %s", msg);
		return;
	}
	err = read_answer(j, b, &why);
	free(b->body);
	b->body = NULL;
	b->len = b->cap = 0;
	if (err != AF_OK) {
		end_job(j, err, "embeddings: %s", why);
		return;
	}
	if (++j->finished == j->n_batches) {
		end_job(j, AF_OK, "%s", "");
		return;
	}
	while (j->started < j->n_batches &&
	       j->in_flight < j->e->max_concurrent) {
		err = start_batch(j, &j->batches[j->started++]);
		if (err != AF_OK) {
			end_job(j, err, "embeddings: starting a request: %s",
				af_strerror(err));
			return;
		}
	}
}

static af_err start_batch(af_embed_job *j, batch *b)
{
	static const af_http_cbs cbs = {
		.on_data = on_data,
		.on_done = on_done,
	};
	af_http_req r = {
		.url = j->e->url,
		.bearer = j->e->api_key,
		.timeout_ms = j->timeout_ms,
	};
	char *body = batch_body(j, b);
	af_err err;

	if (body == NULL)
		return AF_ENOMEM;
	r.body = body;
	r.body_len = strlen(body);
	err = af__http_start(j->e->http, &r, &cbs, b, &b->xfer);
	cJSON_free(body);
	if (err == AF_OK)
		j->in_flight++;
	return err;
}

af_err af__embed_start(af_embedder *e, const char *const *texts,
		       const size_t *lens, size_t n, int64_t timeout_ms,
		       af_embed_done_fn done, void *arg, af_embed_job **out)
{
	af_embed_job *j;
	af_err err = AF_OK;

	if (n == 0 || done == NULL)
		return AF_EINVAL;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return AF_ENOMEM;
	j->e = e;
	j->texts = texts;
	j->lens = lens;
	j->n = n;
	j->timeout_ms = timeout_ms;
	j->done = done;
	j->arg = arg;
	j->n_batches = (n + e->batch_size - 1) / e->batch_size;
	j->batches = calloc(j->n_batches, sizeof(*j->batches));
	if (j->batches == NULL) {
		free(j);
		return AF_ENOMEM;
	}
	for (size_t i = 0; i < j->n_batches; i++) {
		batch *b = &j->batches[i];

		b->job = j;
		b->first = i * e->batch_size;
		b->n = n - b->first < e->batch_size ? n - b->first
						    : e->batch_size;
	}
	j->next = e->jobs;
	if (e->jobs != NULL)
		e->jobs->prev = j;
	e->jobs = j;
	while (err == AF_OK && j->started < j->n_batches &&
	       j->in_flight < e->max_concurrent)
		err = start_batch(j, &j->batches[j->started++]);
	if (err != AF_OK) {
		free_job(j);
		return err;
	}
	*out = j;
	return AF_OK;
}

void af__embed_cancel(af_embed_job **jp)
{
	if (jp == NULL || *jp == NULL)
		return;
	free_job(*jp);
	*jp = NULL;
}

void af__embedder_destroy(af_embedder **ep)
{
	af_embedder *e;

	if (ep == NULL || *ep == NULL)
		return;
	e = *ep;
	*ep = NULL;
	while (e->jobs != NULL)
		free_job(e->jobs);
	af__http_destroy(&e->http);
	free(e->url);
	free(e->model);
	if (e->api_key != NULL) {
		memset(e->api_key, 0, strlen(e->api_key));
		free(e->api_key);
	}
	free(e);
}
