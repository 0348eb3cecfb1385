/*
 * The retrieval actor: ingest (insert, load_dir, delete, replace), BM25,
 * vector and hybrid retrieval against the mock embeddings server (which
 * each test starts on 127.0.0.1 with an ephemeral port), persistence of a
 * file database, and every bad input the actor must refuse while storing
 * nothing.
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <actorflow/actorflow.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
// clang-format on

#include "mockllm.h"
#include "testlib.h"

#define WAIT_MS 20000

typedef struct fixture {
	af_system *sys;
	af_client *client;
	mockllm *mock;
	char dir[64]; /* a temporary folder, removed at teardown */
	char url[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	mockllm_opts o = {.embed_dim = 64};

	assert_non_null(f);
	assert_int_equal(af_system_new(&f->sys, NULL), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	assert_int_equal(mockllm_start(&f->mock, &o), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/af-test-retrieval-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	mockllm_stop(&f->mock);
	/* The folder holds what the tests made in it, symlinks and all. */
	test_remove_dir(f->dir);
	free(f);
	return 0;
}

static void spawn(fixture *f, const af_retrieval_config *cfg)
{
	assert_int_equal(
		af_spawn(f->sys, "retrieval", &af_retrieval_ops, cfg, NULL),
		AF_OK);
}

/* Stops the actor and spawns it again with cfg. The client is made anew:
 * one that spoke to the old actor keeps its connection to the old
 * mailbox. */
static void restart(fixture *f, const af_retrieval_config *cfg)
{
	assert_int_equal(af_stop(f->sys, "retrieval"), AF_OK);
	af_client_destroy(&f->client);
	spawn(f, cfg);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
}

/* A config with embeddings from the mock in dialect provider. */
static void embed_config(fixture *f, af_retrieval_config *cfg,
			 const char *provider)
{
	af_retrieval_config_init(cfg);
	snprintf(f->url, sizeof(f->url), "%s%s", mockllm_url(f->mock),
		 strcmp(provider, "openai") == 0 ? "/v1" : "");
	cfg->embed_provider = provider;
	cfg->embed_base_url = f->url;
	cfg->embed_batch_size = 4;
	cfg->embed_max_retries = 0;
}

static af_err request_ms(fixture *f, const char *type, af_payload *p,
			 int64_t timeout_ms, af_msg **reply)
{
	af_err err = af_client_request(f->client, "retrieval", type, p,
				       timeout_ms, reply);

	af_payload_destroy(&p);
	return err;
}

static af_err request(fixture *f, const char *type, af_payload *p,
		      af_msg **reply)
{
	return request_ms(f, type, p, WAIT_MS, reply);
}

/* The request must fail with code; its text must hold want. */
static void expect_error(fixture *f, const char *type, af_payload *p,
			 af_err code, const char *want)
{
	af_msg *reply = NULL;
	const char *text = NULL;
	af_err err = request(f, type, p, &reply);

	assert_int_equal(err, code);
	if (reply != NULL) {
		af_msg_error(reply, &text);
		if (want != NULL && (text == NULL || !strstr(text, want)))
			fail_msg("error text \"%s\" lacks \"%s\"",
				 text ? text : "(none)", want);
	}
	af_msg_destroy(&reply);
}

static af_payload *new_payload(void)
{
	af_payload *p;

	assert_int_equal(af_payload_new(&p), AF_OK);
	return p;
}

static af_payload *doc(const char *id, const char *text)
{
	af_payload *p = new_payload();

	af_pack_map(p, 2);
	af_pack_str(p, "id");
	af_pack_str(p, id);
	af_pack_str(p, "text");
	af_pack_str(p, text);
	return p;
}

static void insert(fixture *f, const char *id, const char *text)
{
	af_msg *reply = NULL;

	assert_int_equal(request(f, "insert", doc(id, text), &reply), AF_OK);
	af_msg_destroy(&reply);
}

static void delete_doc(fixture *f, const char *id, int64_t deleted)
{
	af_payload *p = new_payload();
	af_msg *m = NULL;

	af_pack_map(p, 1);
	af_pack_str(p, "id");
	af_pack_str(p, id);
	assert_int_equal(request(f, "delete", p, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "deleted", -1),
			 deleted);
	af_msg_destroy(&m);
}

static af_payload *query(const char *q, int64_t top_k, const char *mode)
{
	af_payload *p = new_payload();

	af_pack_map_begin(p);
	af_pack_str(p, "query");
	af_pack_str(p, q);
	if (top_k != 0) {
		af_pack_str(p, "top_k");
		af_pack_int(p, top_k);
	}
	if (mode != NULL) {
		af_pack_str(p, "mode");
		af_pack_str(p, mode);
	}
	af_pack_map_end(p);
	return p;
}

/* Retrieves; the reply is the caller's. */
static af_msg *retrieve(fixture *f, const char *q, int64_t top_k,
			const char *mode)
{
	af_msg *reply = NULL;

	assert_int_equal(request(f, "retrieve", query(q, top_k, mode), &reply),
			 AF_OK);
	return reply;
}

static const af_value *nodes(af_msg *m)
{
	const af_value *n = af_value_get(af_msg_payload(m), "nodes");

	assert_int_equal(af_value_type(n), AF_TYPE_ARRAY);
	return n;
}

/* True when node i's field key is the string s. */
static bool node_is(af_msg *m, size_t i, const char *key, const char *s)
{
	return af_value_str_eq(af_value_get(af_value_at(nodes(m), i), key), s);
}

/* The doc_id of the best node of a retrieve, asserted to be want. */
static void expect_top(fixture *f, const char *q, const char *mode,
		       const char *want)
{
	af_msg *m = retrieve(f, q, 0, mode);

	assert_true(af_value_len(nodes(m)) >= 1);
	if (!node_is(m, 0, "doc_id", want))
		fail_msg("\"%s\" (%s) did not rank %s first", q,
			 mode ? mode : "default", want);
	af_msg_destroy(&m);
}

static void stats(fixture *f, int64_t *docs, int64_t *chunks, int64_t *embedded)
{
	af_msg *m = NULL;
	const af_value *v;

	assert_int_equal(af_client_request(f->client, "retrieval", "stats",
					   NULL, WAIT_MS, &m),
			 AF_OK);
	v = af_msg_payload(m);
	*docs = af_value_get_int(v, "documents", -1);
	*chunks = af_value_get_int(v, "chunks", -1);
	if (embedded != NULL)
		*embedded = af_value_get_int(v, "embedded", -1);
	af_msg_destroy(&m);
}

static void expect_stats(fixture *f, int64_t docs, int64_t chunks)
{
	int64_t d, c;

	stats(f, &d, &c, NULL);
	assert_int_equal(d, docs);
	assert_int_equal(c, chunks);
}

static const char *const bees =
	"Honey bees communicate through the waggle dance. A forager "
	"returning to the hive dances to tell her sisters where flowers are.";
static const char *const soil =
	"Earthworms improve the soil. Their burrows let air and water reach "
	"the roots of plants.";
static const char *const stars =
	"A star is a ball of hot gas. Nuclear fusion in its core turns "
	"hydrogen into helium and gives off light.";

static void insert_three(fixture *f)
{
	insert(f, "bees", bees);
	insert(f, "soil", soil);
	insert(f, "stars", stars);
}

/* ---- bm25 -------------------------------------------------------------- */

static void test_insert_retrieve(void **state)
{
	fixture *f = *state;
	af_msg *m;
	const af_value *n;
	int64_t pos = -1;
	double score = 0;

	spawn(f, NULL);
	insert_three(f);
	expect_stats(f, 3, 3);
	expect_top(f, "How do bees tell where flowers are?", NULL, "bees");
	expect_top(f, "fusion of hydrogen", "bm25", "stars");
	/* Stemming: "burrowing worms" finds "burrows" and "Earthworms"? Only
	 * burrows stems alike; one hit is enough. */
	expect_top(f, "burrowing", NULL, "soil");
	m = retrieve(f, "the hydrogen", 5, NULL);
	assert_int_equal(af_value_len(nodes(m)), 3);
	af_msg_destroy(&m);
	m = retrieve(f, "waggle dance", 0, NULL);
	n = af_value_at(nodes(m), 0);
	assert_int_equal(af_value_len(nodes(m)), 1);
	assert_true(node_is(m, 0, "id", "bees#0"));
	assert_true(node_is(m, 0, "text", bees));
	assert_int_equal(af_value_int(af_value_get(n, "position"), &pos),
			 AF_OK);
	assert_int_equal(pos, 0);
	assert_int_equal(af_value_double(af_value_get(n, "score"), &score),
			 AF_OK);
	assert_true(score > 0);
	assert_int_equal(af_value_type(af_value_get(n, "metadata")),
			 AF_TYPE_MAP);
	af_msg_destroy(&m);
	/* No word at all to search for: no nodes, not an error. */
	m = retrieve(f, "?! ...", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	/* FTS5 syntax in a query is only words. */
	m = retrieve(f, "bees\" OR NEAR(x y) * ^col:", 0, NULL);
	assert_true(node_is(m, 0, "doc_id", "bees"));
	af_msg_destroy(&m);
}

static void test_metadata(void **state)
{
	fixture *f = *state;
	af_payload *p = new_payload();
	af_msg *m = NULL;
	const af_value *meta;
	int64_t i = 0;
	double d = 0;
	bool b = false;

	spawn(f, NULL);
	af_pack_map(p, 3);
	af_pack_str(p, "id");
	af_pack_str(p, "bees");
	af_pack_str(p, "text");
	af_pack_str(p, bees);
	af_pack_str(p, "metadata");
	af_pack_map(p, 5);
	af_pack_str(p, "source");
	af_pack_str(p, "field notes");
	af_pack_str(p, "page");
	af_pack_int(p, 12);
	af_pack_str(p, "weight");
	af_pack_double(p, 0.5);
	af_pack_str(p, "checked");
	af_pack_bool(p, true);
	af_pack_str(p, "author");
	af_pack_nil(p);
	assert_int_equal(request(f, "insert", p, &m), AF_OK);
	af_msg_destroy(&m);
	m = retrieve(f, "waggle", 0, NULL);
	meta = af_value_get(af_value_at(nodes(m), 0), "metadata");
	assert_int_equal(af_value_len(meta), 5);
	assert_true(
		af_value_str_eq(af_value_get(meta, "source"), "field notes"));
	assert_int_equal(af_value_int(af_value_get(meta, "page"), &i), AF_OK);
	assert_int_equal(i, 12);
	assert_int_equal(af_value_double(af_value_get(meta, "weight"), &d),
			 AF_OK);
	assert_true(d == 0.5);
	assert_int_equal(af_value_bool(af_value_get(meta, "checked"), &b),
			 AF_OK);
	assert_true(b);
	assert_int_equal(af_value_type(af_value_get(meta, "author")),
			 AF_TYPE_NIL);
	af_msg_destroy(&m);
}

static void test_replace_and_delete(void **state)
{
	fixture *f = *state;
	af_payload *p;
	af_msg *m = NULL;

	spawn(f, NULL);
	insert_three(f);
	insert(f, "bees", "Bumblebees nest in the ground.");
	expect_stats(f, 3, 3);
	m = retrieve(f, "waggle", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	expect_top(f, "nest", NULL, "bees");

	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "id");
	af_pack_str(p, "bees");
	assert_int_equal(request(f, "delete", p, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "deleted", -1), 1);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "chunks", -1), 1);
	af_msg_destroy(&m);
	expect_stats(f, 2, 2);
	m = retrieve(f, "nest", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	/* Deleting what is not there is no error. */
	delete_doc(f, "bees", 0);
}

static void test_batch_insert(void **state)
{
	fixture *f = *state;
	af_payload *p = new_payload();
	af_msg *m = NULL;
	char id[32], text[128];

	spawn(f, NULL);
	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 101);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "doc%d", i);
		snprintf(text, sizeof(text),
			 "Document number%d speaks of "
			 "topic%d.",
			 i, i % 7);
		af_pack_map(p, 2);
		af_pack_str(p, "id");
		af_pack_str(p, id);
		af_pack_str(p, "text");
		af_pack_str(p, text);
	}
	/* A second copy of an id in one request replaces the first. */
	af_pack_map(p, 2);
	af_pack_str(p, "id");
	af_pack_str(p, "doc5");
	af_pack_str(p, "text");
	af_pack_str(p, "Replaced within the batch.");
	assert_int_equal(request(f, "insert", p, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 101);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "chunks", -1),
			 101);
	af_msg_destroy(&m);
	expect_stats(f, 100, 100);
	expect_top(f, "number42", NULL, "doc42");
	expect_top(f, "replaced", NULL, "doc5");
	m = retrieve(f, "number5", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	m = retrieve(f, "topic3", 1000, NULL);
	assert_int_equal(af_value_len(nodes(m)), 14);
	af_msg_destroy(&m);
}

/* A query of n words: "bees", then n - 1 others. Caller frees. */
static char *long_query(int n)
{
	char *q = malloc((size_t)n * 8 + 8);
	size_t len;

	assert_non_null(q);
	len = (size_t)sprintf(q, "bees");
	for (int i = 1; i < n; i++)
		len += (size_t)sprintf(q + len, " w%d", i);
	return q;
}

/* Each word of a query is a term of the search: past
 * AF_RETRIEVAL_MAX_QUERY_WORDS, a query is refused rather than let hold
 * the actor for as long as it takes. */
static void test_query_word_limit(void **state)
{
	fixture *f = *state;
	char *q = long_query(AF_RETRIEVAL_MAX_QUERY_WORDS);
	char want[64];

	spawn(f, NULL);
	insert_three(f);
	expect_top(f, q, "bm25", "bees");
	free(q);
	q = long_query(AF_RETRIEVAL_MAX_QUERY_WORDS + 1);
	snprintf(want, sizeof(want), "at most %d",
		 AF_RETRIEVAL_MAX_QUERY_WORDS);
	expect_error(f, "retrieve", query(q, 0, NULL), AF_EINVAL, want);
	free(q);
}

static void test_chunks(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_msg *m;

	af_retrieval_config_init(&cfg);
	cfg.chunk_size = 8;
	cfg.chunk_overlap = -1;
	spawn(f, &cfg);
	insert(f, "d",
	       "One two three four. Five six seven eight. Nine ten "
	       "eleven twelve. Apple banana cherry date. Elder fig "
	       "grape honeydew.");
	expect_stats(f, 1, 3);
	m = retrieve(f, "cherry", 0, NULL);
	assert_true(node_is(m, 0, "id", "d#1"));
	assert_true(node_is(m, 0, "text",
			    "Nine ten eleven twelve. Apple "
			    "banana cherry date."));
	af_msg_destroy(&m);
}

/* ---- bad input --------------------------------------------------------- */

static void test_bad_requests(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_payload *p;

	af_retrieval_config_init(&cfg);
	cfg.max_document_bytes = 200;
	spawn(f, &cfg);
	insert_three(f);
	expect_error(f, "retrieve", query("", 0, NULL), AF_EINVAL, "query");
	expect_error(f, "retrieve", query("bees", -1, NULL), AF_EINVAL,
		     "top_k");
	expect_error(f, "retrieve", query("bees", 1000000000, NULL), AF_EINVAL,
		     "top_k");
	expect_error(f, "retrieve", query("bees", 0, "semantic"), AF_EINVAL,
		     "mode");
	expect_error(f, "retrieve", query("bees", 0, "vector"), AF_EINVAL,
		     "embeddings");
	expect_error(f, "retrieve", query("bees", 0, "hybrid"), AF_EINVAL,
		     "embeddings");
	p = new_payload();
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, "bees");
	af_pack_str(p, "top_k");
	af_pack_int(p, 0);
	expect_error(f, "retrieve", p, AF_EINVAL, "top_k");
	p = new_payload();
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, "bees");
	af_pack_str(p, "top_k");
	af_pack_str(p, "two");
	expect_error(f, "retrieve", p, AF_EINVAL, "top_k");
	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "query");
	af_pack_int(p, 7);
	expect_error(f, "retrieve", p, AF_EINVAL, "query");
	expect_error(f, "retrieve", NULL, AF_EINVAL, "map");
	expect_error(f, "retrieve", query("bees \xff\xfe", 0, NULL), AF_EINVAL,
		     "UTF-8");

	expect_error(f, "insert", doc("", "text"), AF_EINVAL, "id");
	expect_error(f, "insert", doc("x", ""), AF_EINVAL, "empty");
	expect_error(f, "insert", doc("x", "   \n\n "), AF_EINVAL, "no words");
	expect_error(f, "insert", doc("bad", "caf\xe9 au lait"), AF_EINVAL,
		     "\"bad\"");
	expect_error(f, "insert", NULL, AF_EINVAL, "map");
	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 0);
	expect_error(f, "insert", p, AF_EINVAL, "documents");
	p = new_payload();
	af_pack_map(p, 2);
	af_pack_str(p, "id");
	af_pack_int(p, 3);
	af_pack_str(p, "text");
	af_pack_str(p, "three");
	expect_error(f, "insert", p, AF_EINVAL, "\"id\"");
	p = new_payload();
	af_pack_map(p, 3);
	af_pack_str(p, "id");
	af_pack_str(p, "m");
	af_pack_str(p, "text");
	af_pack_str(p, "nested metadata");
	af_pack_str(p, "metadata");
	af_pack_map(p, 1);
	af_pack_str(p, "deep");
	af_pack_map(p, 0);
	expect_error(f, "insert", p, AF_EINVAL, "metadata");
	{
		char big[512];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		expect_error(f, "insert", doc("big", big), AF_EMSGSIZE,
			     "\"big\"");
	}
	/* A batch with one bad document stores none of it. */
	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 2);
	af_pack_map(p, 2);
	af_pack_str(p, "id");
	af_pack_str(p, "good");
	af_pack_str(p, "text");
	af_pack_str(p, "A good document.");
	af_pack_map(p, 1);
	af_pack_str(p, "id");
	af_pack_str(p, "no text");
	expect_error(f, "insert", p, AF_EINVAL, "documents[1]");
	expect_error(f, "delete", NULL, AF_EINVAL, "id");
	expect_error(f, "reindex", NULL, AF_ENOTSUP, NULL);
	expect_stats(f, 3, 3);
}

/* ---- load_dir ---------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static af_payload *load_dir_payload(const char *path, int recursive)
{
	af_payload *p = new_payload();

	af_pack_map(p, recursive >= 0 ? 2 : 1);
	af_pack_str(p, "path");
	af_pack_str(p, path);
	if (recursive >= 0) {
		af_pack_str(p, "recursive");
		af_pack_bool(p, recursive != 0);
	}
	return p;
}

static void make_corpus(fixture *f, char *root, size_t size)
{
	char path[256];

	snprintf(root, size, "%s/corpus", f->dir);
	assert_int_equal(mkdir(root, 0700), 0);
	snprintf(path, sizeof(path), "%s/communication", root);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/communication/deeper", root);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(root, "intro.txt", "Bees live in colonies.");
	write_file(root, "notes.md", "# Notes\n\nQueens lay the eggs.");
	write_file(root, "image.png", "not text at all \xff");
	write_file(root, ".hidden.txt", "Hidden drones.");
	write_file(root, "communication/waggle_dance.md", bees);
	write_file(root, "communication/empty.md", " \n");
	write_file(root, "communication/deeper/smell.txt",
		   "\xef\xbb\xbfPheromones carry alarms.");
}

static void test_load_dir(void **state)
{
	fixture *f = *state;
	char root[128], path[256];
	af_msg *m = NULL;
	const af_value *meta;

	spawn(f, NULL);
	make_corpus(f, root, sizeof(root));
	assert_int_equal(request(f, "load_dir", load_dir_payload(root, 0), &m),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 2);
	af_msg_destroy(&m);
	assert_int_equal(request(f, "load_dir", load_dir_payload(root, -1), &m),
			 AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 4);
	assert_true(af_value_get_int(af_msg_payload(m), "bytes", -1) > 100);
	af_msg_destroy(&m);
	/* Loading again replaces: still four. */
	expect_stats(f, 4, 4);
	m = retrieve(f, "waggle", 0, NULL);
	assert_true(node_is(m, 0, "doc_id", "communication/waggle_dance.md"));
	meta = af_value_get(af_value_at(nodes(m), 0), "metadata");
	assert_true(af_value_str_eq(af_value_get(meta, "file_name"),
				    "waggle_dance.md"));
	assert_true(af_value_str_eq(af_value_get(meta, "file_path"),
				    "communication/waggle_dance.md"));
	af_msg_destroy(&m);
	/* The byte order mark is gone. */
	m = retrieve(f, "pheromones", 0, NULL);
	assert_true(node_is(m, 0, "text", "Pheromones carry alarms."));
	af_msg_destroy(&m);
	m = retrieve(f, "drones", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);

	/* Failures store nothing and name what failed. */
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	expect_error(f, "load_dir", load_dir_payload(path, -1), AF_ENOTFOUND,
		     "missing");
	snprintf(path, sizeof(path), "%s/intro.txt", root);
	expect_error(f, "load_dir", load_dir_payload(path, -1), AF_EINVAL,
		     "not a folder");
	write_file(root, "communication/latin1.txt", "caf\xe9 cr\xe8me");
	expect_error(f, "load_dir", load_dir_payload(root, -1), AF_EINVAL,
		     "communication/latin1.txt");
	snprintf(path, sizeof(path), "%s/communication/latin1.txt", root);
	assert_int_equal(unlink(path), 0);
	/* A file that cannot be read (as root, a mode of 000 would not
	 * stop the read): a dangling symbolic link. */
	snprintf(path, sizeof(path), "%s/zz_gone.txt", root);
	assert_int_equal(symlink("/nonexistent/af-test", path), 0);
	expect_error(f, "load_dir", load_dir_payload(root, -1), AF_ESYS,
		     "zz_gone.txt");
	expect_error(f, "load_dir", NULL, AF_EINVAL, "path");
	expect_stats(f, 4, 4);
}

/* ---- load_dir in slices ------------------------------------------------ */

/* A folder f->dir/name of n files, prefix00000.txt and on, each naming
 * word; with a file that is not UTF-8 sorted after them all when
 * bad_last. */
static void make_many(fixture *f, char *root, size_t size, const char *name,
		      const char *prefix, int n, const char *word,
		      bool bad_last)
{
	char file[64], text[256];

	snprintf(root, size, "%s/%s", f->dir, name);
	assert_int_equal(mkdir(root, 0700), 0);
	for (int i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s%05d.txt", prefix, i);
		snprintf(text, sizeof(text),
			 "Note %d of the folder is about the %s. It has a "
			 "second sentence, for the splitter to find.",
			 i, word);
		write_file(root, file, text);
	}
	if (bad_last)
		write_file(root, "zz_bad.txt", "caf\xe9 cr\xe8me");
}

static af_stream *load_dir_stream(fixture *f, const char *root)
{
	af_payload *p = load_dir_payload(root, -1);
	af_stream *s = NULL;

	assert_int_equal(af_client_stream(f->client, "retrieval", "load_dir", p,
					  WAIT_MS, &s),
			 AF_OK);
	af_payload_destroy(&p);
	return s;
}

/* Checks a progress chunk against the one before it (files and bytes
 * grow, the totals stay) and returns its "files". */
static int64_t check_progress(af_msg *m, int64_t total, int64_t *last_files,
			      int64_t *last_bytes, int64_t *bytes_total)
{
	const af_value *v = af_msg_payload(m);
	int64_t files = af_value_get_int(v, "files", -1);
	int64_t bytes = af_value_get_int(v, "bytes", -1);
	int64_t bt = af_value_get_int(v, "bytes_total", -1);

	assert_int_equal(af_msg_kind(m), AF_KIND_CHUNK);
	assert_int_equal(af_value_get_int(v, "files_total", -1), total);
	assert_true(files > *last_files && files <= total);
	assert_true(bytes > *last_bytes && bytes <= bt);
	if (*bytes_total >= 0)
		assert_int_equal(bt, *bytes_total);
	*bytes_total = bt;
	*last_files = files;
	*last_bytes = bytes;
	return files;
}

/* A stream of load_dir: a progress chunk per slice, in order, the last
 * at files_total, then the counts as the end. A plain request gets the
 * plain reply. */
static void test_load_dir_progress(void **state)
{
	fixture *f = *state;
	char root[128];
	int64_t files = 0, bytes = 0, bytes_total = -1;
	uint64_t chunks = 0;
	af_stream *s;
	af_msg *m = NULL;
	af_err err;

	spawn(f, NULL);
	make_many(f, root, sizeof(root), "many", "n", 300, "zebrafish", false);
	s = load_dir_stream(f, root);
	while ((err = af_stream_next(s, WAIT_MS, &m)) == AF_OK) {
		check_progress(m, 300, &files, &bytes, &bytes_total);
		chunks++;
		af_msg_destroy(&m);
	}
	assert_int_equal(err, AF_EOF);
	/* 300 files take several slices of at most 64. */
	assert_true(chunks >= 5);
	assert_int_equal(files, 300);
	assert_int_equal(bytes, bytes_total);
	assert_int_equal(af_msg_kind(m), AF_KIND_END);
	assert_int_equal(af_msg_seq(m), chunks);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 300);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "chunks", -1),
			 300);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "bytes", -1),
			 bytes_total);
	af_msg_destroy(&m);
	af_stream_close(&s);
	expect_stats(f, 300, 300);

	assert_int_equal(request(f, "load_dir", load_dir_payload(root, -1), &m),
			 AF_OK);
	assert_int_equal(af_msg_kind(m), AF_KIND_REPLY);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 300);
	af_msg_destroy(&m);
	expect_stats(f, 300, 300);
}

/* Requests sent while a large load_dir reads its files are answered
 * between its slices: they see nothing of the folder, which is stored
 * only at its end, so they were answered before it. */
static void test_served_during_load_dir(void **state)
{
	fixture *f = *state;
	char root[128];
	int64_t files = 0, bytes = 0, bytes_total = -1;
	af_stream *s;
	af_msg *m = NULL;
	af_err err;

	spawn(f, NULL);
	insert(f, "bees", bees);
	make_many(f, root, sizeof(root), "big", "n", 4000, "zebrafish", false);
	s = load_dir_stream(f, root);
	/* Its first slice is read: the load runs. */
	assert_int_equal(af_stream_next(s, WAIT_MS, &m), AF_OK);
	assert_true(check_progress(m, 4000, &files, &bytes, &bytes_total) <
		    4000);
	af_msg_destroy(&m);
	for (int i = 0; i < 3; i++) {
		m = retrieve(f, "zebrafish", 0, NULL);
		assert_int_equal(af_value_len(nodes(m)), 0);
		af_msg_destroy(&m);
		expect_top(f, "waggle", NULL, "bees");
		expect_stats(f, 1, 1);
	}
	while ((err = af_stream_next(s, WAIT_MS, &m)) == AF_OK) {
		check_progress(m, 4000, &files, &bytes, &bytes_total);
		af_msg_destroy(&m);
	}
	assert_int_equal(err, AF_EOF);
	assert_int_equal(files, 4000);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 4000);
	af_msg_destroy(&m);
	af_stream_close(&s);
	expect_stats(f, 4001, 4001);
	m = retrieve(f, "zebrafish", 3, NULL);
	assert_int_equal(af_value_len(nodes(m)), 3);
	af_msg_destroy(&m);
}

/* A load_dir given up half-way stops and stores nothing. The second
 * folder takes as many slices as the first: had the first gone on, being
 * ahead it would have been stored before the second's end. */
static void test_load_dir_cancel(void **state)
{
	fixture *f = *state;
	char a[128], b[128];
	int64_t files = 0, bytes = 0, bytes_total = -1;
	af_stream *s;
	af_msg *m = NULL;

	spawn(f, NULL);
	insert(f, "bees", bees);
	make_many(f, a, sizeof(a), "a", "a", 2000, "axolotl", false);
	make_many(f, b, sizeof(b), "b", "b", 2000, "zebrafish", false);
	s = load_dir_stream(f, a);
	assert_int_equal(af_stream_next(s, WAIT_MS, &m), AF_OK);
	assert_true(check_progress(m, 2000, &files, &bytes, &bytes_total) <
		    2000);
	af_msg_destroy(&m);
	af_stream_close(&s);
	expect_stats(f, 1, 1);
	assert_int_equal(request(f, "load_dir", load_dir_payload(b, -1), &m),
			 AF_OK);
	af_msg_destroy(&m);
	expect_stats(f, 2001, 2001);
	m = retrieve(f, "axolotl", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
}

/* A bad file found after many good ones fails the folder, naming it,
 * after progress was reported; nothing is stored. */
static void test_load_dir_bad_late(void **state)
{
	fixture *f = *state;
	char root[128];
	int64_t files = 0, bytes = 0, bytes_total = -1;
	uint64_t chunks = 0;
	const char *text = NULL;
	af_stream *s;
	af_msg *m = NULL;
	af_err err;

	spawn(f, NULL);
	insert(f, "bees", bees);
	make_many(f, root, sizeof(root), "late", "n", 500, "zebrafish", true);
	s = load_dir_stream(f, root);
	while ((err = af_stream_next(s, WAIT_MS, &m)) == AF_OK) {
		check_progress(m, 501, &files, &bytes, &bytes_total);
		chunks++;
		af_msg_destroy(&m);
	}
	assert_int_equal(err, AF_EINVAL);
	assert_true(chunks >= 7);
	assert_true(files >= 448 && files < 501);
	assert_non_null(m);
	af_msg_error(m, &text);
	assert_non_null(text);
	assert_non_null(strstr(text, "zz_bad.txt"));
	af_msg_destroy(&m);
	af_stream_close(&s);
	expect_stats(f, 1, 1);
	expect_error(f, "load_dir", load_dir_payload(root, -1), AF_EINVAL,
		     "zz_bad.txt");
	expect_stats(f, 1, 1);
}

/* ---- storage ----------------------------------------------------------- */

/* A named pipe called like a text file is not a file: opening it must not
 * wait for a writer (which would hold the actor's thread for good), and
 * the folder fails with AF_ESYS naming it, storing nothing. */
static void test_load_dir_fifo(void **state)
{
	fixture *f = *state;
	char root[128], path[256];
	af_msg *m = NULL;
	const char *text = NULL;

	spawn(f, NULL);
	snprintf(root, sizeof(root), "%s/pipes", f->dir);
	assert_int_equal(mkdir(root, 0700), 0);
	write_file(root, "a.txt", "Bees live in colonies.");
	snprintf(path, sizeof(path), "%s/pipe.txt", root);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(
		request_ms(f, "load_dir", load_dir_payload(root, -1), 3000, &m),
		AF_ESYS);
	assert_non_null(m);
	af_msg_error(m, &text);
	assert_non_null(text);
	assert_non_null(strstr(text, "pipe.txt"));
	af_msg_destroy(&m);
	expect_stats(f, 0, 0);
}

/* File names become ids and metadata strings, which are UTF-8 on the
 * wire: a folder holding a name that is not is refused, storing nothing,
 * and the error text stays UTF-8 itself. */
/* An optional field sent as nil is as good as absent. */
static void test_nil_options_are_absent(void **state)
{
	fixture *f = *state;
	af_payload *p = new_payload();
	af_msg *m = NULL;

	spawn(f, NULL);
	af_pack_map(p, 3);
	af_pack_str(p, "id");
	af_pack_str(p, "bees");
	af_pack_str(p, "text");
	af_pack_str(p, bees);
	af_pack_str(p, "documents");
	af_pack_nil(p);
	assert_int_equal(request(f, "insert", p, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 1);
	af_msg_destroy(&m);

	write_file(f->dir, "soil.txt", soil);
	p = new_payload();
	af_pack_map(p, 2);
	af_pack_str(p, "path");
	af_pack_str(p, f->dir);
	af_pack_str(p, "recursive");
	af_pack_nil(p);
	assert_int_equal(request(f, "load_dir", p, &m), AF_OK);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 1);
	af_msg_destroy(&m);
	expect_stats(f, 2, 2);
}

/* A folder whose files hold more than max_load_bytes in all is refused
 * when walked, before anything is read: all of it would be held in
 * memory until the one write at the end. */
static void test_load_dir_too_large(void **state)
{
	static const char a[] = "Bees visit many flowers for nectar.";
	static const char b[] = "Soil holds many small creatures.";
	fixture *f = *state;
	af_retrieval_config cfg;
	af_msg *m = NULL;
	char want[160], path[128];

	af_retrieval_config_init(&cfg);
	cfg.max_load_bytes = strlen(a) + strlen(b) - 1;
	spawn(f, &cfg);
	write_file(f->dir, "a.txt", a);
	write_file(f->dir, "b.txt", b);
	snprintf(want, sizeof(want), "%s holds %zu bytes", f->dir,
		 strlen(a) + strlen(b));
	expect_error(f, "load_dir", load_dir_payload(f->dir, -1), AF_EMSGSIZE,
		     want);
	snprintf(want, sizeof(want), "at most %zu (max_load_bytes)",
		 cfg.max_load_bytes);
	expect_error(f, "load_dir", load_dir_payload(f->dir, -1), AF_EMSGSIZE,
		     want);
	expect_stats(f, 0, 0);
	/* Under the bound, the folder loads. */
	snprintf(path, sizeof(path), "%s/b.txt", f->dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(
		request(f, "load_dir", load_dir_payload(f->dir, -1), &m),
		AF_OK);
	af_msg_destroy(&m);
	expect_stats(f, 1, 1);
}

static void test_load_dir_bad_name(void **state)
{
	fixture *f = *state;
	char root[128];
	af_msg *m = NULL;
	const char *text = NULL;

	spawn(f, NULL);
	snprintf(root, sizeof(root), "%s/names", f->dir);
	assert_int_equal(mkdir(root, 0700), 0);
	write_file(root, "a.txt", "Bees live in colonies.");
	write_file(root, "caf\xe9.txt", "Latin-1 named notes.");
	assert_int_equal(request(f, "load_dir", load_dir_payload(root, -1), &m),
			 AF_EINVAL);
	assert_non_null(m);
	af_msg_error(m, &text);
	assert_non_null(text);
	assert_non_null(strstr(text, "UTF-8"));
	assert_null(strchr(text, '\xe9'));
	af_msg_destroy(&m);
	expect_stats(f, 0, 0);
}

static void test_persistence(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	char db[128];

	snprintf(db, sizeof(db), "%s/index.db", f->dir);
	af_retrieval_config_init(&cfg);
	cfg.db_path = db;
	spawn(f, &cfg);
	insert_three(f);
	restart(f, &cfg);
	expect_stats(f, 3, 3);
	expect_top(f, "hydrogen", NULL, "stars");
	insert(f, "stars", "Replaced after the restart.");
	restart(f, &cfg);
	expect_stats(f, 3, 3);
	expect_top(f, "restart", NULL, "stars");
}

static int first_column(void *arg, int n, char **values, char **names)
{
	(void)names;
	*(int *)arg = n > 0 && values[0] != NULL ? atoi(values[0]) : -1;
	return 0;
}

/* After a retrieve the actor holds no read transaction on its file: a
 * statement left stepping pins a snapshot, so the WAL can never be
 * checkpointed and reset, and grows for as long as the actor lives. */
static void test_no_snapshot_held(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	sqlite3 *db = NULL;
	int busy = -1;
	char path[128];

	snprintf(path, sizeof(path), "%s/index.db", f->dir);
	af_retrieval_config_init(&cfg);
	cfg.db_path = path;
	spawn(f, &cfg);
	insert_three(f);
	expect_top(f, "hydrogen stars", NULL, "stars");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)",
				      first_column, &busy, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(busy, 0);
}

/* The full-text index stays in step with the chunks it indexes through
 * inserts, replacements and deletes: FTS5's own integrity check, which
 * with rank 1 compares the index with the content table. */
static void test_index_in_step(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_payload *p;
	af_msg *m = NULL;
	sqlite3 *db = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/index.db", f->dir);
	af_retrieval_config_init(&cfg);
	cfg.db_path = path;
	spawn(f, &cfg);
	insert_three(f);
	insert(f, "bees", "Bumblebees nest in the ground.");
	insert(f, "bees", "Honeybees nest in hollow trees.");
	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "id");
	af_pack_str(p, "stars");
	assert_int_equal(request(f, "delete", p, &m), AF_OK);
	af_msg_destroy(&m);
	expect_top(f, "hollow trees", NULL, "bees");
	m = retrieve(f, "Bumblebees", 0, NULL);
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "INSERT INTO chunks_fts(chunks_fts, rank)"
				      " VALUES ('integrity-check', 1)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
}

static void test_corrupt_db(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	char db[128];
	char want[256];
	char junk[8192];
	int fd;

	snprintf(db, sizeof(db), "%s/junk.db", f->dir);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7919 + 13);
	fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	af_retrieval_config_init(&cfg);
	cfg.db_path = db;
	snprintf(want, sizeof(want),
		 "retrieval: db_path %s: not a readable "
		 "database: file is not a database",
		 db);
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg, AF_EIO,
			   want);
	/* A folder where the file should be. */
	cfg.db_path = f->dir;
	snprintf(want, sizeof(want), "retrieval: db_path %s: ", f->dir);
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg, AF_EIO,
			   want);
	/* Settings that cannot work. */
	af_retrieval_config_init(&cfg);
	cfg.chunk_size = 10;
	cfg.chunk_overlap = 10;
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg,
			   AF_EINVAL,
			   "chunk_overlap (10) must be below chunk_size (10)");
	af_retrieval_config_init(&cfg);
	cfg.top_k = 8;
	cfg.max_top_k = 4;
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg,
			   AF_EINVAL, "top_k (8) is above max_top_k (4)");
	af_retrieval_config_init(&cfg);
	cfg.mode = "fuzzy";
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg,
			   AF_EINVAL, "unknown mode \"fuzzy\"");
	af_retrieval_config_init(&cfg);
	cfg.embed_provider = "word2vec";
	test_spawn_refused(f->sys, "retrieval", &af_retrieval_ops, &cfg,
			   AF_EINVAL, "unknown embed_provider \"word2vec\"");
}

/* ---- embeddings -------------------------------------------------------- */

/* Ten documents of one chunk each, in one request. */
static void insert_ten(fixture *f)
{
	static const char *const texts[10] = {
		"Honey bees perform the waggle dance to share flower "
		"locations.",
		"Earthworms aerate the soil with burrows.",
		"Stars fuse hydrogen into helium.",
		"Rivers carve canyons over millions of years.",
		"Volcanoes erupt molten rock called lava.",
		"Owls hunt mice at night with silent wings.",
		"Glaciers are slow rivers of ice.",
		"Coral reefs shelter many fish species.",
		"Lightning is a discharge of static electricity.",
		"Mushrooms are the fruit of underground fungi.",
	};
	af_payload *p = new_payload();
	af_msg *m = NULL;
	char id[16];

	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 10);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "t%d", i);
		af_pack_map(p, 2);
		af_pack_str(p, "id");
		af_pack_str(p, id);
		af_pack_str(p, "text");
		af_pack_str(p, texts[i]);
	}
	assert_int_equal(request(f, "insert", p, &m), AF_OK);
	af_msg_destroy(&m);
}

static void vectors_with(fixture *f, const char *provider)
{
	af_retrieval_config cfg;
	char db[128];
	int64_t d, c, e;
	unsigned before;

	snprintf(db, sizeof(db), "%s/%s.db", f->dir, provider);
	embed_config(f, &cfg, provider);
	cfg.db_path = db;
	spawn(f, &cfg);
	before = mockllm_requests(f->mock);
	insert_ten(f);
	/* Ten texts in batches of four: three requests. */
	assert_int_equal(mockllm_requests(f->mock) - before, 3);
	stats(f, &d, &c, &e);
	assert_int_equal(d, 10);
	assert_int_equal(e, 10);
	before = mockllm_requests(f->mock);
	expect_top(f, "hydrogen helium stars", "vector", "t2");
	expect_top(f, "owls hunt mice", "hybrid", "t5");
	expect_top(f, "volcanoes", NULL, "t4");
	/* One request per vector or hybrid query, none for bm25. */
	assert_int_equal(mockllm_requests(f->mock) - before, 2);

	/* The vectors come back from the file after a restart. */
	restart(f, &cfg);
	expect_top(f, "glaciers ice", "vector", "t6");
	insert(f, "t6", "Penguins swim in cold seas.");
	expect_top(f, "penguins swim", "vector", "t6");
	stats(f, &d, &c, &e);
	assert_int_equal(e, 10);
	/* A server that changed its dimension is refused. */
	{
		mockllm_opts o = {.embed_dim = 32};

		mockllm_set(f->mock, &o);
		expect_error(f, "insert", doc("new", "Whales sing."), AF_EPROTO,
			     "dimensions");
		expect_error(f, "retrieve", query("whales", 0, "vector"),
			     AF_EPROTO, "dimensions");
		o.embed_dim = 64;
		mockllm_set(f->mock, &o);
	}
	expect_stats(f, 10, 10);
}

static void test_vectors_openai(void **state)
{
	vectors_with(*state, "openai");
}

static void test_vectors_ollama(void **state)
{
	vectors_with(*state, "ollama");
}

/* Once every vector is deleted, the next ones may be of another
 * dimension (a new embedding model); while any is left, they may not. */
static void test_new_dimension_once_emptied(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;

	embed_config(f, &cfg, "ollama");
	spawn(f, &cfg);
	insert(f, "bees", bees);
	delete_doc(f, "bees", 1);
	mockllm_set(f->mock, &(mockllm_opts){.embed_dim = 32});
	insert(f, "soil", soil);
	expect_top(f, "soil", "vector", "soil");
	mockllm_set(f->mock, &(mockllm_opts){.embed_dim = 16});
	expect_error(f, "insert", doc("stars", stars), AF_EPROTO, "dimensions");
	expect_stats(f, 1, 1);
}

static void test_embed_fails(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	mockllm_opts o = {.embed_dim = 64,
			  .fault = MOCKLLM_STATUS,
			  .fail_status = 500,
			  .fail_times = 1000,
			  .error_message = "embedder on fire"};
	int64_t d, c, e;

	embed_config(f, &cfg, "ollama");
	spawn(f, &cfg);
	mockllm_set(f->mock, &o);
	expect_error(f, "insert", doc("bees", bees), AF_EHTTP,
		     "embedder on fire");
	expect_error(f, "retrieve", query("bees", 0, "vector"), AF_EHTTP,
		     "500");
	stats(f, &d, &c, &e);
	assert_int_equal(d, 0);
	assert_int_equal(c, 0);
	/* bm25 needs no server. */
	{
		af_msg *m = retrieve(f, "bees", 0, "bm25");

		assert_int_equal(af_value_len(nodes(m)), 0);
		af_msg_destroy(&m);
	}
}

/* A vector holding a number a float cannot hold is the server's error,
 * not a value to store (converting it would be undefined behaviour). */
static void test_embed_huge_number(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	mockllm_opts o = {.embed_dim = 16, .fault = MOCKLLM_HUGE_NUMBER};
	int64_t d, c, e;

	embed_config(f, &cfg, "openai");
	spawn(f, &cfg);
	mockllm_set(f->mock, &o);
	expect_error(f, "insert", doc("bees", bees), AF_EPROTO,
		     "not a finite number");
	stats(f, &d, &c, &e);
	assert_int_equal(d, 0);
	assert_int_equal(c, 0);
}

/* A vector retrieve whose answer is above the system's message limit gets
 * AF_EMSGSIZE at once, as a bm25 one does: the deferred request must not
 * be left unanswered, its cancel hook pointing at freed memory. */
static void test_vector_reply_too_large(void **state)
{
	fixture *f = *state;
	af_system_opts o = {.max_message_size = 4096};
	af_retrieval_config cfg;
	char id[16], text[900];
	af_msg *m = NULL;
	af_err err;

	af_client_destroy(&f->client);
	af_system_destroy(&f->sys);
	assert_int_equal(af_system_new(&f->sys, &o), AF_OK);
	assert_int_equal(af_client_new(&f->client, f->sys), AF_OK);
	embed_config(f, &cfg, "openai");
	spawn(f, &cfg);
	for (int i = 0; i < 10; i++) {
		size_t n = 0;

		while (n + 16 < sizeof(text))
			n += (size_t)snprintf(text + n, sizeof(text) - n,
					      "honey bees %d. ", i);
		snprintf(id, sizeof(id), "d%d", i);
		insert(f, id, text);
	}
	expect_error(f, "retrieve", query("honey bees", 10, "bm25"),
		     AF_EMSGSIZE, NULL);
	err = request_ms(f, "retrieve", query("honey bees", 10, "vector"), 3000,
			 &m);
	af_msg_destroy(&m);
	assert_int_equal(err, AF_EMSGSIZE);
	/* Past the deadline the first try had: the actor is still well. */
	usleep(3500 * 1000);
	expect_stats(f, 10, 10);
}

/* ---- concurrency ------------------------------------------------------- */

static void many_at_once(fixture *f, const char *mode, const char *want)
{
	enum { N = 64 };
	af_stream *s[N];
	af_msg *m = NULL;

	for (int i = 0; i < N; i++) {
		af_payload *p = query("waggle dance of honey bees", 1, mode);

		assert_int_equal(af_client_stream(f->client, "retrieval",
						  "retrieve", p, WAIT_MS,
						  &s[i]),
				 AF_OK);
		af_payload_destroy(&p);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(af_stream_next(s[i], WAIT_MS, &m), AF_EOF);
		assert_true(node_is(m, 0, "doc_id", want));
		af_msg_destroy(&m);
		af_stream_close(&s[i]);
	}
}

static void test_concurrent_retrieves(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;

	embed_config(f, &cfg, "openai");
	spawn(f, &cfg);
	insert_ten(f);
	many_at_once(f, "bm25", "t0");
	many_at_once(f, "vector", "t0");
	many_at_once(f, "hybrid", "t0");
}

/* A server that takes connections and never answers: the kernel accepts
 * them into the backlog of a socket nobody accepts from. */
static int silent_server(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_served_while_embedding(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_stream *slow;
	af_payload *p = doc("late", "A document whose vectors never come.");
	af_msg *m = NULL;
	int port;
	int fd = silent_server(&port);

	af_retrieval_config_init(&cfg);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", port);
	cfg.embed_provider = "openai";
	cfg.embed_base_url = f->url;
	cfg.embed_max_retries = 0;
	spawn(f, &cfg);
	/* bm25 documents need vectors too once an endpoint is set: insert
	 * them through a second actor sharing nothing. Here the index stays
	 * empty; what matters is that answers keep coming. */
	assert_int_equal(af_client_stream(f->client, "retrieval", "insert", p,
					  WAIT_MS, &slow),
			 AF_OK);
	af_payload_destroy(&p);
	for (int i = 0; i < 20; i++) {
		m = retrieve(f, "document", 0, "bm25");
		assert_int_equal(af_value_len(nodes(m)), 0);
		af_msg_destroy(&m);
		expect_stats(f, 0, 0);
	}
	assert_int_equal(af_stream_next(slow, 0, &m), AF_EAGAIN);
	/* Giving up on the insert stops its request; nothing was stored. */
	af_stream_close(&slow);
	expect_stats(f, 0, 0);
	close(fd);
}

/* ---- the order of writes ------------------------------------------------ */

/* Sends an insert of id whose embeddings come late: the mock answers the
 * first embedding request with a 429 asking for a wait of 300 ms, and the
 * insert retries then. Returns once that first request has been made. */
static af_stream *late_insert(fixture *f, const char *id, const char *text)
{
	af_payload *p = doc(id, text);
	unsigned before = mockllm_requests(f->mock);
	af_stream *s;

	mockllm_set(f->mock, &(mockllm_opts){.embed_dim = 64,
					     .fault = MOCKLLM_STATUS,
					     .fail_status = 429,
					     .fail_times = 1,
					     .retry_after_ms = 300});
	assert_int_equal(af_client_stream(f->client, "retrieval", "insert", p,
					  WAIT_MS, &s),
			 AF_OK);
	af_payload_destroy(&p);
	assert_int_equal(mockllm_wait_requests(f->mock, before + 1, WAIT_MS),
			 0);
	return s;
}

/* The late insert's answer: it succeeded, one document. */
static void finish_late_insert(af_stream *s)
{
	af_msg *m = NULL;

	assert_int_equal(af_stream_next(s, WAIT_MS, &m), AF_EOF);
	assert_int_equal(af_msg_kind(m), AF_KIND_REPLY);
	assert_int_equal(af_value_get_int(af_msg_payload(m), "documents", -1),
			 1);
	af_msg_destroy(&m);
	af_stream_close(&s);
}

/* Writes take effect in the order they arrive: an insert whose embeddings
 * come late does not undo a later insert, or a later delete, of the same
 * document. */
static void test_writes_apply_in_arrival_order(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_stream *slow;
	af_msg *m = NULL;

	embed_config(f, &cfg, "ollama");
	cfg.embed_max_retries = 1;
	spawn(f, &cfg);
	insert(f, "other", "Nothing about the sea here.");

	slow = late_insert(f, "x", "The first walrus text.");
	insert(f, "x", "The second walrus text.");
	finish_late_insert(slow);
	m = retrieve(f, "walrus", 5, "bm25");
	assert_int_equal(af_value_len(nodes(m)), 1);
	assert_true(node_is(m, 0, "text", "The second walrus text."));
	af_msg_destroy(&m);
	m = retrieve(f, "walrus", 5, "vector");
	assert_true(node_is(m, 0, "text", "The second walrus text."));
	af_msg_destroy(&m);

	slow = late_insert(f, "x", "The third walrus text.");
	delete_doc(f, "x", 1);
	finish_late_insert(slow);
	m = retrieve(f, "walrus", 5, "bm25");
	assert_int_equal(af_value_len(nodes(m)), 0);
	af_msg_destroy(&m);
	expect_stats(f, 1, 1);

	/* With nothing waiting, a write is a write. */
	insert(f, "x", "The fourth walrus text.");
	expect_top(f, "walrus", "bm25", "x");
	expect_stats(f, 2, 2);
}

/* An insert whose only document a later delete took reserves room for
 * its vectors and adds none; vectors of a larger dimension after it get
 * room of their own (they once overflowed the room reserved for the
 * smaller ones, under ASan a heap-buffer-overflow). */
static void test_unused_room_of_another_dimension(void **state)
{
	fixture *f = *state;
	af_retrieval_config cfg;
	af_stream *slow;
	af_payload *p;
	af_msg *m = NULL;
	char id[16];

	embed_config(f, &cfg, "ollama");
	cfg.embed_max_retries = 1;
	spawn(f, &cfg);
	slow = late_insert(f, "x", "The walrus text.");
	delete_doc(f, "x", 0);
	finish_late_insert(slow);
	expect_stats(f, 0, 0);
	mockllm_set(f->mock, &(mockllm_opts){.embed_dim = 768});
	p = new_payload();
	af_pack_map(p, 1);
	af_pack_str(p, "documents");
	af_pack_array(p, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		af_pack_map(p, 2);
		af_pack_str(p, "id");
		af_pack_str(p, id);
		af_pack_str(p, "text");
		af_pack_str(p, i == 42 ? bees : soil);
	}
	assert_int_equal(request(f, "insert", p, &m), AF_OK);
	af_msg_destroy(&m);
	expect_stats(f, 100, 100);
	expect_top(f, "waggle dance", "vector", "d42");
}

/* An insert sent while a load_dir of the same file is still reading is
 * not overwritten by the folder's older file. */
static void test_insert_during_load_dir_stays(void **state)
{
	fixture *f = *state;
	char root[128];
	af_stream *s;
	af_msg *m = NULL;
	af_err err;

	spawn(f, NULL);
	make_many(f, root, sizeof(root), "order", "n", 300, "gardens", false);
	write_file(root, "zz.txt", "The old zebra file.");
	s = load_dir_stream(f, root);
	insert(f, "zz.txt", "The new zebra text.");
	while ((err = af_stream_next(s, WAIT_MS, &m)) == AF_OK)
		af_msg_destroy(&m);
	assert_int_equal(err, AF_EOF);
	af_msg_destroy(&m);
	af_stream_close(&s);
	m = retrieve(f, "zebra", 1, NULL);
	assert_true(node_is(m, 0, "text", "The new zebra text."));
	af_msg_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_insert_retrieve, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_and_delete, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_insert, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_word_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_fifo, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_nil_options_are_absent,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_too_large, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_bad_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_progress, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_served_during_load_dir,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_cancel, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_dir_bad_late, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_writes_apply_in_arrival_order, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_insert_during_load_dir_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_unused_room_of_another_dimension, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_index_in_step, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_snapshot_held, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_db, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vectors_openai, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_new_dimension_once_emptied,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_vectors_ollama, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_embed_huge_number, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_embed_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_vector_reply_too_large,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_retrieves,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_served_while_embedding,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
