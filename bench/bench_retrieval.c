/*
 * bench_retrieval.c - the retrieval actor against SQLite used directly.
 *
 *   ingest    --mb MB of generated text (documents of about 8 KB) sent
 *             to the actor in insert requests of about 1 MB, into a
 *             database file; against the reference: the same documents
 *             inserted by this thread straight into an FTS5 table (one
 *             row per document, no splitting) in one transaction.
 *   bm25      --chunks documents of one chunk each; --queries retrieves
 *             of three middling words, one at a time (latency p50/p99),
 *             then with --concurrency in flight (requests/s); against
 *             the reference: the same FTS5 query run by this thread on a
 *             table of the same texts.
 *   vector    the same index with embeddings of --dim dimensions from a
 *             mock embeddings server in this process; retrieves one at a
 *             time (each embeds its query over HTTP, then ranks). The
 *             reference: the cosine top-k over as many vectors of that
 *             dimension, computed by this thread with no HTTP.
 *
 * Prints RESULT lines (workload, impl, size, value, unit), ratios last:
 *   RESULT ingest actorflow 100MB 20.1 MB/s
 *   RESULT ingest_ratio actorflow 100MB 0.52 x   (actor / direct speed)
 *
 *   bench_retrieval [--mb 100] [--chunks 100000] [--dim 384]
 *                   [--queries 2000] [--concurrency 64] [--no-vector]
 */
#include <actorflow/actorflow.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mockllm.h"

#define BENCH_NAME "bench_retrieval"
#include "benchlib.h"
#include "textgen.h"

#define TIMEOUT_MS 600000
#define DOC_BYTES 8192
#define BATCH_BYTES (1 << 20)
#define TOP_K 2

typedef struct options {
	int mb;
	int chunks;
	int dim;
	int queries;
	int concurrency;
	bool vector;
} options;

static char tmpdir[] = "/tmp/af-bench-retrieval-XXXXXX";

static void remove_db(const char *name)
{
	static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char path[256];

	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s/%s%s", tmpdir, name, suffix[i]);
		unlink(path);
	}
}

static void result(const char *work, const char *impl, const char *size,
		   double v, const char *unit)
{
	printf("RESULT %s %s %s %.3f %s\n", work, impl, size, v, unit);
	fflush(stdout);
}

static void request_ok(af_client *c, const char *type, af_payload *p,
		       af_msg **reply)
{
	af_err err =
		af_client_request(c, "retrieval", type, p, TIMEOUT_MS, reply);

	if (err != AF_OK) {
		const char *text = NULL;

		af_msg_error(*reply, &text);
		fprintf(stderr, BENCH_NAME ": %s: %s: %s\n", type,
			af_errname(err), text != NULL ? text : "");
		exit(1);
	}
}

/* ---- SQLite straight from this thread --------------------------------- */

static sqlite3 *direct_open(const char *name)
{
	char path[256];
	sqlite3 *db;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
			 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 "CREATE VIRTUAL TABLE t USING fts5(text, tokenize="
			 "'porter unicode61');",
			 NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, BENCH_NAME ": sqlite: %s\n",
			sqlite3_errmsg(db));
		exit(1);
	}
	return db;
}

static void direct_exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, BENCH_NAME ": sqlite: %s\n",
			sqlite3_errmsg(db));
		exit(1);
	}
}

/* ---- ingest ------------------------------------------------------------ */

static char **make_docs(int mb, size_t *n_docs)
{
	size_t n = (size_t)mb * (1 << 20) / DOC_BYTES;
	char **docs = calloc(n, sizeof *docs);
	textgen *g = textgen_new(42);

	if (docs == NULL || g == NULL)
		die("make_docs", AF_ENOMEM);
	for (size_t i = 0; i < n; i++) {
		docs[i] = malloc(DOC_BYTES + 1);
		if (docs[i] == NULL)
			die("make_docs", AF_ENOMEM);
		textgen_text(g, docs[i], DOC_BYTES + 1, DOC_BYTES);
	}
	free(g);
	*n_docs = n;
	return docs;
}

static double ingest_actor(af_client *c, char **docs, size_t n)
{
	af_payload *p;
	af_msg *reply = NULL;
	size_t bytes = 0, i = 0;
	int64_t t0 = now_ns();

	check(af_payload_new(&p), "payload");
	while (i < n) {
		size_t batch = 0, len = 0;
		char id[32];

		while (i + batch < n && len < BATCH_BYTES)
			len += strlen(docs[i + batch++]);
		af_payload_reset(p);
		af_pack_map(p, 1);
		af_pack_str(p, "documents");
		af_pack_array(p, (uint32_t)batch);
		for (size_t k = 0; k < batch; k++) {
			snprintf(id, sizeof id, "doc%zu", i + k);
			af_pack_map(p, 2);
			af_pack_str(p, "id");
			af_pack_str(p, id);
			af_pack_str(p, "text");
			af_pack_str(p, docs[i + k]);
		}
		request_ok(c, "insert", p, &reply);
		af_msg_destroy(&reply);
		bytes += len;
		i += batch;
	}
	af_payload_destroy(&p);
	return (double)bytes / (1 << 20) / ((double)(now_ns() - t0) / 1e9);
}

static double ingest_direct(char **docs, size_t n)
{
	sqlite3 *db = direct_open("direct-ingest.db");
	sqlite3_stmt *ins;
	size_t bytes = 0;
	int64_t t0 = now_ns();

	direct_exec(db, "BEGIN");
	sqlite3_prepare_v2(db, "INSERT INTO t(text) VALUES (?)", -1, &ins,
			   NULL);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(docs[i]);

		sqlite3_bind_text(ins, 1, docs[i], (int)len, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die("direct insert", AF_EIO);
		sqlite3_reset(ins);
		bytes += len;
	}
	sqlite3_finalize(ins);
	direct_exec(db, "COMMIT");
	sqlite3_close(db);
	return (double)bytes / (1 << 20) / ((double)(now_ns() - t0) / 1e9);
}

static void bench_ingest(const options *o)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_retrieval_config cfg;
	char path[256], size[32];
	size_t n;
	char **docs = make_docs(o->mb, &n);
	double actor, direct;

	snprintf(path, sizeof path, "%s/actor-ingest.db", tmpdir);
	snprintf(size, sizeof size, "%dMB", o->mb);
	af_retrieval_config_init(&cfg);
	cfg.db_path = path;
	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "retrieval", &af_retrieval_ops, &cfg, NULL),
	      "spawn retrieval");
	check(af_client_new(&c, sys), "client");
	direct = ingest_direct(docs, n);
	actor = ingest_actor(c, docs, n);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	remove_db("actor-ingest.db");
	remove_db("direct-ingest.db");
	for (size_t i = 0; i < n; i++)
		free(docs[i]);
	free(docs);
	result("ingest", "actorflow", size, actor, "MB/s");
	result("ingest", "sqlite-direct", size, direct, "MB/s");
	result("ingest_ratio", "actorflow", size, actor / direct, "x");
}

/* ---- retrieve ---------------------------------------------------------- */

typedef struct corpus {
	char **texts;
	char **queries;
	int n_texts;
	int n_queries;
} corpus;

static void make_corpus(corpus *cp, const options *o)
{
	textgen *g = textgen_new(7);
	char buf[512];

	if (g == NULL)
		die("corpus", AF_ENOMEM);
	cp->n_texts = o->chunks;
	cp->n_queries = o->queries;
	cp->texts = calloc((size_t)o->chunks, sizeof *cp->texts);
	cp->queries = calloc((size_t)o->queries, sizeof *cp->queries);
	if (cp->texts == NULL || cp->queries == NULL)
		die("corpus", AF_ENOMEM);
	for (int i = 0; i < o->chunks; i++) {
		textgen_text(g, buf, sizeof buf, 360);
		if ((cp->texts[i] = strdup(buf)) == NULL)
			die("corpus", AF_ENOMEM);
	}
	for (int i = 0; i < o->queries; i++) {
		snprintf(buf, sizeof buf, "%s %s %s", textgen_query_word(g),
			 textgen_query_word(g), textgen_query_word(g));
		if ((cp->queries[i] = strdup(buf)) == NULL)
			die("corpus", AF_ENOMEM);
	}
	free(g);
}

static void free_corpus(corpus *cp)
{
	for (int i = 0; i < cp->n_texts; i++)
		free(cp->texts[i]);
	for (int i = 0; i < cp->n_queries; i++)
		free(cp->queries[i]);
	free(cp->texts);
	free(cp->queries);
}

static void insert_corpus(af_client *c, const corpus *cp)
{
	af_payload *p;
	af_msg *reply = NULL;
	const int batch = 2000;

	check(af_payload_new(&p), "payload");
	for (int i = 0; i < cp->n_texts; i += batch) {
		int n = cp->n_texts - i < batch ? cp->n_texts - i : batch;
		char id[32];

		af_payload_reset(p);
		af_pack_map(p, 1);
		af_pack_str(p, "documents");
		af_pack_array(p, (uint32_t)n);
		for (int k = 0; k < n; k++) {
			snprintf(id, sizeof id, "c%d", i + k);
			af_pack_map(p, 2);
			af_pack_str(p, "id");
			af_pack_str(p, id);
			af_pack_str(p, "text");
			af_pack_str(p, cp->texts[i + k]);
		}
		request_ok(c, "insert", p, &reply);
		af_msg_destroy(&reply);
	}
	af_payload_destroy(&p);
}

static void pack_retrieve(af_payload *p, const char *query, const char *mode)
{
	af_payload_reset(p);
	af_pack_map(p, 3);
	af_pack_str(p, "query");
	af_pack_str(p, query);
	af_pack_str(p, "top_k");
	af_pack_int(p, TOP_K);
	af_pack_str(p, "mode");
	af_pack_str(p, mode);
}

/* One retrieve at a time: p50 and p99 in microseconds. */
static void latency_actor(af_client *c, const corpus *cp, const char *mode,
			  double *p50, double *p99)
{
	int64_t *ns = calloc((size_t)cp->n_queries, sizeof *ns);
	af_payload *p;
	af_msg *reply = NULL;

	check(af_payload_new(&p), "payload");
	for (int i = 0; i < cp->n_queries; i++) {
		int64_t t0 = now_ns();

		pack_retrieve(p, cp->queries[i], mode);
		request_ok(c, "retrieve", p, &reply);
		ns[i] = now_ns() - t0;
		if (af_value_len(
			    af_value_get(af_msg_payload(reply), "nodes")) == 0)
			die("retrieve found nothing", AF_ENOTFOUND);
		af_msg_destroy(&reply);
	}
	*p50 = percentile_us(ns, cp->n_queries, 0.5);
	*p99 = percentile_us(ns, cp->n_queries, 0.99);
	af_payload_destroy(&p);
	free(ns);
}

/* Requests per second with concurrency retrieves in flight. */
static double throughput_actor(af_client *c, const corpus *cp, int concurrency)
{
	af_stream **s = calloc((size_t)concurrency, sizeof *s);
	af_payload *p;
	af_msg *m = NULL;
	int sent = 0, done = 0;
	int64_t t0 = now_ns();

	check(af_payload_new(&p), "payload");
	for (; sent < concurrency && sent < cp->n_queries; sent++) {
		pack_retrieve(p, cp->queries[sent], "bm25");
		check(af_client_stream(c, "retrieval", "retrieve", p,
				       TIMEOUT_MS, &s[sent]),
		      "send");
	}
	/* One actor answers in the order it was asked: wait on the slots in
	 * the order they were filled. */
	for (int k = 0; done < cp->n_queries; k = (k + 1) % concurrency) {
		af_err err;

		if (s[k] == NULL)
			continue;
		err = af_stream_next(s[k], TIMEOUT_MS, &m);
		if (err != AF_EOF)
			die("retrieve", err);
		af_msg_destroy(&m);
		af_stream_close(&s[k]);
		done++;
		if (sent < cp->n_queries) {
			pack_retrieve(p, cp->queries[sent++], "bm25");
			check(af_client_stream(c, "retrieval", "retrieve", p,
					       TIMEOUT_MS, &s[k]),
			      "send");
		}
	}
	af_payload_destroy(&p);
	free(s);
	return cp->n_queries / ((double)(now_ns() - t0) / 1e9);
}

/* The FTS5 query the actor runs, from this thread: words quoted and
 * joined with OR, best bm25 first. */
static void latency_direct(const corpus *cp, double *p50, double *p99,
			   double *rps)
{
	sqlite3 *db = direct_open("direct-bm25.db");
	sqlite3_stmt *ins, *q;
	int64_t *ns = calloc((size_t)cp->n_queries, sizeof *ns);
	int64_t t0;

	direct_exec(db, "BEGIN");
	sqlite3_prepare_v2(db, "INSERT INTO t(text) VALUES (?)", -1, &ins,
			   NULL);
	for (int i = 0; i < cp->n_texts; i++) {
		sqlite3_bind_text(ins, 1, cp->texts[i], -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die("direct insert", AF_EIO);
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	direct_exec(db, "COMMIT");
	sqlite3_prepare_v2(db,
			   "SELECT rowid, text, -bm25(t) FROM t WHERE t MATCH ?"
			   " ORDER BY bm25(t) LIMIT ?",
			   -1, &q, NULL);
	t0 = now_ns();
	for (int i = 0; i < cp->n_queries; i++) {
		char match[256], a[64], b[64], c[64];
		int64_t t1 = now_ns();
		int rows = 0;

		sscanf(cp->queries[i], "%63s %63s %63s", a, b, c);
		snprintf(match, sizeof match, "\"%s\" OR \"%s\" OR \"%s\"", a,
			 b, c);
		sqlite3_bind_text(q, 1, match, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(q, 2, TOP_K);
		while (sqlite3_step(q) == SQLITE_ROW)
			rows++;
		sqlite3_reset(q);
		ns[i] = now_ns() - t1;
		if (rows == 0)
			die("direct query found nothing", AF_ENOTFOUND);
	}
	*rps = cp->n_queries / ((double)(now_ns() - t0) / 1e9);
	*p50 = percentile_us(ns, cp->n_queries, 0.5);
	*p99 = percentile_us(ns, cp->n_queries, 0.99);
	sqlite3_finalize(q);
	sqlite3_close(db);
	remove_db("direct-bm25.db");
	free(ns);
}

/* Cosine top-k over n random unit vectors of dim dimensions. */
static void vector_direct(int n, int dim, int queries, double *p50, double *p99)
{
	float *m = malloc((size_t)n * dim * sizeof *m);
	float *q = malloc((size_t)dim * sizeof *q);
	int64_t *ns = calloc((size_t)queries, sizeof *ns);
	textgen *g = textgen_new(3);

	if (m == NULL || q == NULL || ns == NULL || g == NULL)
		die("vectors", AF_ENOMEM);
	for (size_t i = 0; i < (size_t)n * dim; i++)
		m[i] = (float)(textgen_next(g) % 2001) / 1000.0f - 1.0f;
	for (int k = 0; k < queries; k++) {
		int64_t t0 = now_ns();
		float best[TOP_K] = {-2, -2};
		int at[TOP_K] = {-1, -1};

		for (int d = 0; d < dim; d++)
			q[d] = (float)(textgen_next(g) % 2001) / 1000.0f - 1.0f;
		for (int i = 0; i < n; i++) {
			const float *v = m + (size_t)i * dim;
			float dot = 0;

			for (int d = 0; d < dim; d++)
				dot += v[d] * q[d];
			if (dot > best[TOP_K - 1]) {
				int j = TOP_K - 1;

				while (j > 0 && dot > best[j - 1]) {
					best[j] = best[j - 1];
					at[j] = at[j - 1];
					j--;
				}
				best[j] = dot;
				at[j] = i;
			}
		}
		ns[k] = now_ns() - t0;
		if (at[0] < 0)
			die("vector top-k", AF_ENOTFOUND);
	}
	*p50 = percentile_us(ns, queries, 0.5);
	*p99 = percentile_us(ns, queries, 0.99);
	free(g);
	free(ns);
	free(q);
	free(m);
}

static void bench_retrieve(const options *o)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_retrieval_config cfg;
	mockllm *mock = NULL;
	mockllm_opts mo = {.embed_dim = o->dim};
	corpus cp;
	char path[256], size[32];
	double a50, a99, d50, d99, rps_actor, rps_direct;

	make_corpus(&cp, o);
	snprintf(path, sizeof path, "%s/actor-retrieve.db", tmpdir);
	snprintf(size, sizeof size, "%d", o->chunks);
	af_retrieval_config_init(&cfg);
	cfg.db_path = path;
	if (o->vector) {
		if (mockllm_start_ex(&mock, &mo, 0, 2) != 0)
			die("mock server", AF_ESYS);
		cfg.embed_provider = "openai";
		cfg.embed_base_url = mockllm_url(mock);
	}
	check(af_system_new(&sys, NULL), "system");
	check(af_spawn(sys, "retrieval", &af_retrieval_ops, &cfg, NULL),
	      "spawn retrieval");
	check(af_client_new(&c, sys), "client");
	insert_corpus(c, &cp);

	latency_direct(&cp, &d50, &d99, &rps_direct);
	latency_actor(c, &cp, "bm25", &a50, &a99);
	result("retrieve_bm25_p50", "actorflow", size, a50, "us");
	result("retrieve_bm25_p50", "sqlite-direct", size, d50, "us");
	result("retrieve_bm25_p99", "actorflow", size, a99, "us");
	result("retrieve_bm25_p99", "sqlite-direct", size, d99, "us");
	rps_actor = throughput_actor(c, &cp, o->concurrency);
	result("retrieve_bm25_rps", "actorflow", size, rps_actor, "req/s");
	result("retrieve_bm25_rps", "sqlite-direct", size, rps_direct, "req/s");
	result("retrieve_bm25_p50_ratio", "actorflow", size, a50 / d50, "x");
	result("retrieve_bm25_rps_ratio", "actorflow", size,
	       rps_actor / rps_direct, "x");
	if (o->vector) {
		vector_direct(o->chunks, o->dim, o->queries / 10 + 1, &d50,
			      &d99);
		latency_actor(c, &cp, "vector", &a50, &a99);
		result("retrieve_vector_p50", "actorflow", size, a50, "us");
		result("retrieve_vector_p50", "c-direct", size, d50, "us");
		result("retrieve_vector_p99", "actorflow", size, a99, "us");
		result("retrieve_vector_p99", "c-direct", size, d99, "us");
		result("retrieve_vector_p50_ratio", "actorflow", size,
		       a50 / d50, "x");
	}
	af_client_destroy(&c);
	af_system_destroy(&sys);
	mockllm_stop(&mock);
	remove_db("actor-retrieve.db");
	free_corpus(&cp);
}

int main(int argc, char **argv)
{
	options o = {.mb = 100,
		     .chunks = 100000,
		     .dim = 384,
		     .queries = 2000,
		     .concurrency = 64,
		     .vector = true};

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "0";

		if (strcmp(argv[i], "--mb") == 0)
			o.mb = atoi(v), i++;
		else if (strcmp(argv[i], "--chunks") == 0)
			o.chunks = atoi(v), i++;
		else if (strcmp(argv[i], "--dim") == 0)
			o.dim = atoi(v), i++;
		else if (strcmp(argv[i], "--queries") == 0)
			o.queries = atoi(v), i++;
		else if (strcmp(argv[i], "--concurrency") == 0)
			o.concurrency = atoi(v), i++;
		else if (strcmp(argv[i], "--no-vector") == 0)
			o.vector = false;
		else {
			fprintf(stderr,
				"usage: bench_retrieval [--mb MB] [--chunks N]"
				" [--dim D] [--queries Q] [--concurrency C]"
				" [--no-vector]\n");
			return 2;
		}
	}
	if (o.mb < 1 || o.chunks < 1 || o.dim < 1 || o.queries < 1 ||
	    o.concurrency < 1 || mkdtemp(tmpdir) == NULL) {
		fprintf(stderr, BENCH_NAME ": bad arguments or no temp dir\n");
		return 2;
	}
	bench_ingest(&o);
	bench_retrieve(&o);
	rmdir(tmpdir);
	return 0;
}
