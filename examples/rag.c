/*
 * Retrieval-augmented answers: the C shape of
 *
 *     documents = SimpleDirectoryReader("examples/data").load_data()
 *     index = VectorStoreIndex.from_documents(documents)
 *     engine = index.as_query_engine(streaming=True)
 *     answers = await asyncio.gather(*(engine.aquery(q) for q in questions))
 *     for answer in answers:
 *         print(answer, answer.source_nodes)
 *
 * Four actors do the work: "retrieval" indexes the folder in SQLite (FTS5
 * for BM25 keyword search), "chat" writes answers, "query" ties them
 * together (retrieve, build the prompt, synthesize), and "gather" sends
 * every question to the query actor at once and streams each answer back
 * as soon as it is complete, with the chunks it was drawn from.
 *
 * With no configuration it runs offline: BM25 retrieval and the
 * extractive chat provider, which is NOT a language model (it quotes the
 * retrieved sentences that bear on the question). Set OPENAI_BASE_URL
 * and/or OPENAI_API_KEY (and OPENAI_MODEL), or OLLAMA_HOST (and
 * OLLAMA_MODEL), to have a real model write the answers.
 *
 *     rag [--data DIR] [--db FILE] [--questions FILE]
 *         [--response-mode compact|refine|tree_summarize|no_text]
 *         [--top-k N] [question ...]
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 300000
#define MAX_QUESTIONS 64

static const char *default_questions[] = {
	"How long does a worker bee take to develop from egg to adult?",
	"How do bees tell each other where the flowers are?",
	"What is the varroa mite and why is it dangerous?",
	"Why does honey crystallise?",
};

typedef struct options {
	const char *data;
	const char *db;
	const char *questions_file;
	const char *response_mode;
	int top_k;
	const char *questions[MAX_QUESTIONS];
	char *owned[MAX_QUESTIONS]; /* lines read from questions_file */
	size_t n_questions;
} options;

static int usage(void)
{
	fprintf(stderr,
		"usage: rag [--data DIR] [--db FILE] [--questions FILE]\n"
		"           [--response-mode compact|refine|tree_summarize|"
		"no_text]\n"
		"           [--top-k N] [question ...]\n");
	return 2;
}

/* Reads one question per non-empty line of path. */
static int read_questions(options *o, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL &&
	       o->n_questions < MAX_QUESTIONS) {
		size_t n = strcspn(line, "\r\n");

		line[n] = '\0';
		if (n == 0)
			continue;
		o->owned[o->n_questions] = strdup(line);
		if (o->owned[o->n_questions] == NULL)
			break;
		o->questions[o->n_questions] = o->owned[o->n_questions];
		o->n_questions++;
	}
	fclose(f);
	return 0;
}

static int parse_args(options *o, int argc, char **argv)
{
	o->data = "examples/data";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return -1;
		if (a[0] != '-' || a[1] != '-') {
			if (o->n_questions < MAX_QUESTIONS)
				o->questions[o->n_questions++] = a;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "--data") == 0)
			o->data = v;
		else if (strcmp(a, "--db") == 0)
			o->db = v;
		else if (strcmp(a, "--questions") == 0)
			o->questions_file = v;
		else if (strcmp(a, "--response-mode") == 0)
			o->response_mode = v;
		else if (strcmp(a, "--top-k") == 0)
			o->top_k = atoi(v);
		else
			return -1;
	}
	if (o->questions_file != NULL &&
	    read_questions(o, o->questions_file) != 0)
		return -1;
	if (o->n_questions == 0) {
		for (size_t i = 0;
		     i < sizeof default_questions / sizeof default_questions[0];
		     i++)
			o->questions[o->n_questions++] = default_questions[i];
	}
	return 0;
}

/* Prints an error reply's code and text. */
static void report(const char *what, af_err err, af_msg *m)
{
	const char *text = NULL;

	af_msg_error(m, &text);
	fprintf(stderr, "rag: %s: %s: %s\n", what, af_errname(err),
		text != NULL ? text : af_strerror(err));
}

static af_err start_actors(af_system *sys, const options *o)
{
	af_retrieval_config rcfg;
	af_chat_config ccfg;
	af_query_config qcfg;
	af_err err;

	af_retrieval_config_init(&rcfg);
	rcfg.db_path = o->db;
	af_chat_config_from_env(&ccfg);
	af_query_config_init(&qcfg);
	qcfg.response_mode = o->response_mode;
	qcfg.top_k = o->top_k;
	if ((err = af_spawn(sys, "retrieval", &af_retrieval_ops, &rcfg,
			    NULL)) != AF_OK ||
	    (err = af_spawn(sys, "chat", &af_chat_ops, &ccfg, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "gather", &af_gather_ops, NULL, NULL)) !=
		    AF_OK ||
	    (err = af_spawn(sys, "query", &af_query_ops, &qcfg, NULL)) != AF_OK)
		return err;
	fprintf(stderr, "chat: %s%s%s%s\n", ccfg.provider,
		ccfg.model != NULL ? ", model " : "",
		ccfg.model != NULL ? ccfg.model : "",
		strcmp(ccfg.provider, "extractive") == 0
			? " (quotes the retrieved text; not a language model)"
			: "");
	return AF_OK;
}

/* load_dir: indexes the folder, reporting what was stored. */
static af_err index_folder(af_client *c, const char *dir)
{
	af_payload *p = NULL;
	af_msg *reply = NULL;
	af_err err;

	if (af_payload_new(&p) != AF_OK)
		return AF_ENOMEM;
	af_pack_map(p, 1);
	af_pack_str(p, "path");
	af_pack_str(p, dir);
	err = af_client_request(c, "retrieval", "load_dir", p, TIMEOUT_MS,
				&reply);
	if (err == AF_OK) {
		const af_value *v = af_msg_payload(reply);

		printf("indexed %lld documents (%lld chunks, %lld bytes) "
		       "from %s\n",
		       (long long)af_value_get_int(v, "documents", 0),
		       (long long)af_value_get_int(v, "chunks", 0),
		       (long long)af_value_get_int(v, "bytes", 0), dir);
	} else {
		report("load_dir", err, reply);
	}
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	return err;
}

/* One gather whose items are stream_query requests, one per question,
 * answered as each completes. */
static af_payload *gather_request(const options *o)
{
	af_payload *p;

	if (af_payload_new(&p) != AF_OK)
		return NULL;
	af_pack_map(p, 2);
	af_pack_str(p, "as_completed");
	af_pack_bool(p, true);
	af_pack_str(p, "items");
	af_pack_array(p, (uint32_t)o->n_questions);
	for (size_t i = 0; i < o->n_questions; i++) {
		af_pack_map(p, 3);
		af_pack_str(p, "to");
		af_pack_str(p, "query");
		af_pack_str(p, "type");
		af_pack_str(p, "stream_query");
		af_pack_str(p, "payload");
		af_pack_map(p, 1);
		af_pack_str(p, "query");
		af_pack_str(p, o->questions[i]);
	}
	if (af_payload_status(p) != AF_OK)
		af_payload_destroy(&p);
	return p;
}

static void print_str(const char *prefix, const af_value *v)
{
	const char *s = "";
	size_t n = 0;

	af_value_str(v, &s, &n);
	printf("%s%.*s\n", prefix, (int)n, s);
}

/* Prints one finished item of the gather: the question, its answer and
 * the chunks it came from. */
static bool print_answer(const options *o, const af_value *slot)
{
	int64_t index = af_value_get_int(slot, "index", -1);
	const af_value *sources;

	if (index < 0 || (size_t)index >= o->n_questions)
		return false;
	printf("\n[%lld] %s\n", (long long)index + 1, o->questions[index]);
	if (!af_value_get_bool(slot, "ok", false)) {
		const af_value *e = af_value_get(slot, "error");

		print_str("    error: ", af_value_get(e, "message"));
		return false;
	}
	print_str("    ", af_value_get(slot, "text"));
	sources = af_value_get(af_value_get(slot, "value"), "source_nodes");
	for (size_t i = 0; i < af_value_len(sources); i++) {
		const af_value *s = af_value_at(sources, i);
		const char *id = "";
		size_t n = 0;

		af_value_str(af_value_get(s, "id"), &id, &n);
		printf("    source %zu: %.*s (score %.2f)\n", i + 1, (int)n, id,
		       af_value_get_double(s, "score", 0));
	}
	return true;
}

static af_err answer_all(af_client *c, const options *o)
{
	af_payload *p = gather_request(o);
	af_stream *s = NULL;
	af_msg *m = NULL;
	af_err err;
	size_t failed = 0;

	if (p == NULL)
		return AF_ENOMEM;
	printf("answering %zu question%s at once\n", o->n_questions,
	       o->n_questions == 1 ? "" : "s");
	err = af_client_stream(c, "gather", "gather", p, TIMEOUT_MS, &s);
	while (err == AF_OK &&
	       (err = af_stream_next(s, TIMEOUT_MS, &m)) == AF_OK) {
		if (!print_answer(o, af_msg_payload(m)))
			failed++;
		fflush(stdout);
		af_msg_destroy(&m);
	}
	if (err == AF_EOF)
		err = failed == 0 ? AF_OK : AF_EREMOTE;
	else
		report("gather", err, m);
	af_msg_destroy(&m);
	af_stream_close(&s);
	af_payload_destroy(&p);
	return err;
}

int main(int argc, char **argv)
{
	options o = {0};
	af_system *sys = NULL;
	af_client *client = NULL;
	af_err err;
	int status = 1;

	if (parse_args(&o, argc, argv) != 0) {
		status = usage();
		goto done;
	}
	if ((err = af_system_new(&sys, NULL)) != AF_OK ||
	    (err = start_actors(sys, &o)) != AF_OK ||
	    (err = af_client_new(&client, sys)) != AF_OK) {
		fprintf(stderr, "rag: %s\n", af_strerror(err));
		goto done;
	}
	if (index_folder(client, o.data) == AF_OK &&
	    answer_all(client, &o) == AF_OK)
		status = 0;
done:
	af_client_destroy(&client);
	af_system_destroy(&sys);
	for (size_t i = 0; i < MAX_QUESTIONS; i++)
		free(o.owned[i]);
	return status;
}
