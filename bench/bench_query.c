/*
 * bench_query.c - what the actor pipeline adds to a query.
 *
 * Indexes a folder (default: the bundled corpus) with a retrieval actor
 * into a database file, then answers the same questions two ways, one
 * after the other, question by question:
 *
 *   actorflow  a client's "query" request to a query actor, which asks
 *              the retrieval actor (bm25) and then the chat actor
 *              (extractive provider) by message, each on its own thread;
 *   direct     the same work in this one thread with no actor and no
 *              message: the retrieval store's BM25 query on the same
 *              file (af__store_bm25, af__store_chunk), the query actor's
 *              own packing and QA template, and the extractive answerer.
 *
 * Both must give the same answer text for every question (checked).
 * Prints RESULT lines (workload, impl, size, value, unit), the median
 * difference last:
 *   RESULT query_p50 actorflow 2 412.3 us
 *   RESULT query_added_p50 actorflow 2 187.0 us   (actor p50 - direct p50)
 *
 *   bench_query [--data DIR] [--questions FILE] [--queries N] [--top-k K]
 */
#include <actorflow/actorflow.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extractive.h"
#include "prompt.h"
#include "store.h"

#define BENCH_NAME "bench_query"
#include "benchlib.h"

#define TIMEOUT_MS 120000
#define MAX_QUESTIONS 512
/* The query actor's default context budget, in words. */
#define CONTEXT_WORDS 3000

typedef struct options {
	const char *data;
	const char *questions;
	int queries;
	int top_k;
} options;

static char tmpdir[] = "/tmp/af-bench-query-XXXXXX";

static void result(const char *work, const char *impl, int top_k, double v,
		   const char *unit)
{
	printf("RESULT %s %s %d %.3f %s\n", work, impl, top_k, v, unit);
	fflush(stdout);
}

/* Removes the database file and what SQLite keeps beside it. */
static void remove_db(const char *db)
{
	static const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char path[300];

	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "%s%s", db, suffix[i]);
		unlink(path);
	}
}

/* The first column of every line after the header of a TSV file. */
static size_t read_questions(const char *path, char **q)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	size_t n = 0;
	bool header = true;

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	while (fgets(line, sizeof line, f) != NULL && n < MAX_QUESTIONS) {
		line[strcspn(line, "\t\r\n")] = '\0';
		if (header || line[0] == '\0') {
			header = false;
			continue;
		}
		q[n] = strdup(line);
		if (q[n] == NULL)
			die("questions", AF_ENOMEM);
		n++;
	}
	fclose(f);
	if (n == 0) {
		fprintf(stderr, BENCH_NAME ": no questions in %s\n", path);
		exit(1);
	}
	return n;
}

/* ---- the actors -------------------------------------------------------- */

static void start_actors(af_system *sys, const char *db, int top_k)
{
	af_retrieval_config rcfg;
	af_chat_config ccfg;
	af_query_config qcfg;

	af_retrieval_config_init(&rcfg);
	rcfg.db_path = db;
	rcfg.top_k = top_k;
	af_chat_config_init(&ccfg, "extractive");
	af_query_config_init(&qcfg);
	check(af_spawn(sys, "retrieval", &af_retrieval_ops, &rcfg, NULL),
	      "spawn retrieval");
	check(af_spawn(sys, "chat", &af_chat_ops, &ccfg, NULL), "spawn chat");
	check(af_spawn(sys, "gather", &af_gather_ops, NULL, NULL),
	      "spawn gather");
	check(af_spawn(sys, "query", &af_query_ops, &qcfg, NULL),
	      "spawn query");
}

static void request_ok(af_client *c, const char *to, const char *type,
		       const af_payload *p, af_msg **reply)
{
	af_err err = af_client_request(c, to, type, p, TIMEOUT_MS, reply);

	if (err != AF_OK) {
		const char *text = NULL;

		af_msg_error(*reply, &text);
		fprintf(stderr, BENCH_NAME ": %s: %s: %s\n", type,
			af_errname(err), text != NULL ? text : "");
		exit(1);
	}
}

static void load_dir(af_client *c, const char *dir)
{
	af_payload *p;
	af_msg *reply = NULL;

	check(af_payload_new(&p), "payload");
	af_pack_map(p, 1);
	af_pack_str(p, "path");
	af_pack_str(p, dir);
	request_ok(c, "retrieval", "load_dir", p, &reply);
	fprintf(stderr, "indexed %lld documents, %lld chunks\n",
		(long long)af_value_get_int(af_msg_payload(reply), "documents",
					    0),
		(long long)af_value_get_int(af_msg_payload(reply), "chunks",
					    0));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
}

/* One query through the actors; returns its answer (caller frees). */
static char *actor_query(af_client *c, af_payload *p, const char *question)
{
	af_msg *reply = NULL;
	char *answer;

	af_payload_reset(p);
	af_pack_map(p, 1);
	af_pack_str(p, "query");
	af_pack_str(p, question);
	request_ok(c, "query", "query", p, &reply);
	answer = af_value_strdup(
		af_value_get(af_msg_payload(reply), "response"));
	af_msg_destroy(&reply);
	if (answer == NULL)
		die("query: no response", AF_EPROTO);
	return answer;
}

/* ---- the same work in one thread --------------------------------------- */

/* BM25 top_k, the QA prompt over the packed chunks, the extractive
 * answer: what the three actors do for a compact query of one pack. */
static char *direct_query(af_store *s, int top_k, const char *question)
{
	int64_t ids[64];
	double scores[64];
	char *texts[64];
	size_t lens[64];
	size_t n = 0;
	af__packs packs = {0};
	char *match = af__store_match(question, strlen(question));
	char *prompt;
	char *answer = NULL;
	af_extractive_msg msg = {.role = "user", .role_len = 4};

	if (match == NULL)
		die("match", AF_ENOMEM);
	check(af__store_bm25(s, match, top_k, ids, scores, &n), "bm25");
	for (size_t i = 0; i < n; i++) {
		af_store_chunk ch;
		bool found = false;

		check(af__store_chunk(s, ids[i], &ch, &found), "chunk");
		if (!found)
			die("chunk: missing", AF_ENOTFOUND);
		texts[i] = strndup(ch.text, ch.text_len);
		lens[i] = ch.text_len;
		if (texts[i] == NULL)
			die("chunk", AF_ENOMEM);
	}
	check(af__prompt_pack((const char *const *)texts, lens, n,
			      CONTEXT_WORDS, false, &packs),
	      "pack");
	if (packs.n != 1)
		die("direct: the chunks need more than one pack", AF_EINVAL);
	prompt = af__prompt_fill(af__prompt_qa, packs.text[0], question, NULL);
	if (prompt == NULL)
		die("prompt", AF_ENOMEM);
	msg.content = prompt;
	msg.content_len = strlen(prompt);
	check(af__extractive_answer(&msg, 1, 0, &answer), "extractive");
	free(prompt);
	af__packs_free(&packs);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(match);
	return answer;
}

/* ---- main -------------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: bench_query [--data DIR] [--questions FILE] "
			"[--queries N] [--top-k K]\n");
	return 2;
}

static int parse_args(options *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			return -1;
		if (strcmp(argv[i], "--data") == 0)
			o->data = v;
		else if (strcmp(argv[i], "--questions") == 0)
			o->questions = v;
		else if (strcmp(argv[i], "--queries") == 0)
			o->queries = atoi(v);
		else if (strcmp(argv[i], "--top-k") == 0)
			o->top_k = atoi(v);
		else
			return -1;
		i++;
	}
	return o->queries > 0 && o->top_k > 0 && o->top_k <= 64 ? 0 : -1;
}

int main(int argc, char **argv)
{
	options o = {.data = AF_SOURCE_DIR "/examples/data",
		     .questions = AF_SOURCE_DIR "/tests/eval/questions.tsv",
		     .queries = 2000,
		     .top_k = 2};
	char *questions[MAX_QUESTIONS];
	size_t nq;
	char db[256];
	char err[256];
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *p = NULL;
	af_store *store = NULL;
	int64_t *actor_ns, *direct_ns;
	double actor_p50, direct_p50;

	if (parse_args(&o, argc, argv) != 0)
		return usage();
	nq = read_questions(o.questions, questions);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db, sizeof db, "%s/index.db", tmpdir);

	check(af_system_new(&sys, NULL), "system");
	start_actors(sys, db, o.top_k);
	check(af_client_new(&c, sys), "client");
	check(af_payload_new(&p), "payload");
	load_dir(c, o.data);
	/* A second connection to the file the retrieval actor wrote. */
	if (af__store_open(&store, db, err, sizeof err) != AF_OK) {
		fprintf(stderr, BENCH_NAME ": %s: %s\n", db, err);
		return 1;
	}

	actor_ns = calloc((size_t)o.queries, sizeof *actor_ns);
	direct_ns = calloc((size_t)o.queries, sizeof *direct_ns);
	if (actor_ns == NULL || direct_ns == NULL)
		die("latencies", AF_ENOMEM);
	/* A warm-up round over every question, checking that both ways
	 * give the same answer. */
	for (size_t i = 0; i < nq; i++) {
		char *a = actor_query(c, p, questions[i]);
		char *d = direct_query(store, o.top_k, questions[i]);

		if (strcmp(a, d) != 0) {
			fprintf(stderr,
				BENCH_NAME ": answers differ for \"%s\":\n"
					   "  actor:  %s\n  direct: %s\n",
				questions[i], a, d);
			return 1;
		}
		free(a);
		free(d);
	}
	for (int i = 0; i < o.queries; i++) {
		const char *q = questions[(size_t)i % nq];
		int64_t t0 = now_ns();
		char *a = actor_query(c, p, q);
		int64_t t1 = now_ns();
		char *d = direct_query(store, o.top_k, q);
		int64_t t2 = now_ns();

		actor_ns[i] = t1 - t0;
		direct_ns[i] = t2 - t1;
		free(a);
		free(d);
	}
	actor_p50 = percentile_us(actor_ns, o.queries, 0.5);
	direct_p50 = percentile_us(direct_ns, o.queries, 0.5);
	result("query_p50", "direct", o.top_k, direct_p50, "us");
	result("query_p99", "direct", o.top_k,
	       percentile_us(direct_ns, o.queries, 0.99), "us");
	result("query_p50", "actorflow", o.top_k, actor_p50, "us");
	result("query_p99", "actorflow", o.top_k,
	       percentile_us(actor_ns, o.queries, 0.99), "us");
	result("query_added_p50", "actorflow", o.top_k, actor_p50 - direct_p50,
	       "us");

	free(actor_ns);
	free(direct_ns);
	af__store_close(&store);
	af_payload_destroy(&p);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	for (size_t i = 0; i < nq; i++)
		free(questions[i]);
	remove_db(db);
	rmdir(tmpdir);
	return 0;
}
