/*
 * The quality of retrieval on the bundled corpus: every question of
 * tests/eval/questions.tsv is sent to a retrieval actor that indexed
 * examples/data, and the rank of the document that answers it is scored.
 * Prints hit rate at top_k 2 and 5 and mean reciprocal rank (over the top
 * 10) for bm25; fails when the hit rate at 5 is under 0.8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"

#define MRR_DEPTH 10
#define MAX_QUESTIONS 512

typedef struct question {
	char *text;
	char *doc_id;
} question;

typedef struct eval_set {
	question q[MAX_QUESTIONS];
	size_t n;
} eval_set;

/* Reads "question<TAB>doc_id" lines after the header. */
static void load_set(eval_set *set, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	bool header = true;

	assert_non_null(f);
	while (fgets(line, sizeof line, f) != NULL && set->n < MAX_QUESTIONS) {
		char *tab = strchr(line, '\t');

		line[strcspn(line, "\r\n")] = '\0';
		if (header || tab == NULL || line[0] == '\0') {
			header = false;
			continue;
		}
		*tab = '\0';
		set->q[set->n].text = strdup(line);
		set->q[set->n].doc_id = strdup(tab + 1);
		assert_non_null(set->q[set->n].text);
		assert_non_null(set->q[set->n].doc_id);
		set->n++;
	}
	fclose(f);
}

static void free_set(eval_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->q[i].text);
		free(set->q[i].doc_id);
	}
}

static void request_ok(af_client *c, const char *type, af_payload *p,
		       af_msg **reply)
{
	af_err err = af_client_request(c, "retrieval", type, p, 60000, reply);

	if (err != AF_OK) {
		const char *text = NULL;

		af_msg_error(*reply, &text);
		fail_msg("%s: %s: %s", type, af_errname(err),
			 text != NULL ? text : "");
	}
}

/* The rank (from 1) of the first node from doc_id, 0 when none. */
static int rank_of(af_client *c, af_payload *p, const question *q)
{
	af_msg *reply = NULL;
	const af_value *nodes;
	int rank = 0;

	af_payload_reset(p);
	af_pack_map(p, 2);
	af_pack_str(p, "query");
	af_pack_str(p, q->text);
	af_pack_str(p, "top_k");
	af_pack_int(p, MRR_DEPTH);
	request_ok(c, "retrieve", p, &reply);
	nodes = af_value_get(af_msg_payload(reply), "nodes");
	for (size_t i = 0; i < af_value_len(nodes) && rank == 0; i++)
		if (af_value_str_eq(
			    af_value_get(af_value_at(nodes, i), "doc_id"),
			    q->doc_id))
			rank = (int)i + 1;
	af_msg_destroy(&reply);
	return rank;
}

static void bm25_quality(void **state)
{
	af_system *sys = NULL;
	af_client *c = NULL;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	af_retrieval_config cfg;
	eval_set *set = calloc(1, sizeof *set);
	size_t hit2 = 0, hit5 = 0;
	double rr = 0;

	(void)state;
	assert_non_null(set);
	load_set(set, AF_SOURCE_DIR "/tests/eval/questions.tsv");
	assert_true(set->n >= 40);

	af_retrieval_config_init(&cfg);
	assert_int_equal(af_system_new(&sys, NULL), AF_OK);
	assert_int_equal(
		af_spawn(sys, "retrieval", &af_retrieval_ops, &cfg, NULL),
		AF_OK);
	assert_int_equal(af_client_new(&c, sys), AF_OK);
	assert_int_equal(af_payload_new(&p), AF_OK);
	af_pack_map(p, 1);
	af_pack_str(p, "path");
	af_pack_str(p, AF_SOURCE_DIR "/examples/data");
	request_ok(c, "load_dir", p, &reply);
	assert_true(af_value_get_int(af_msg_payload(reply), "documents", 0) >=
		    24);
	af_msg_destroy(&reply);

	for (size_t i = 0; i < set->n; i++) {
		int rank = rank_of(c, p, &set->q[i]);

		hit2 += rank >= 1 && rank <= 2;
		hit5 += rank >= 1 && rank <= 5;
		rr += rank > 0 ? 1.0 / rank : 0;
		if (rank == 0 || rank > 5)
			printf("# miss at 5 (rank %d): %s -> %s\n", rank,
			       set->q[i].text, set->q[i].doc_id);
	}
	printf("# bm25 over %zu questions: hit@2 %.3f  hit@5 %.3f  "
	       "MRR@%d %.3f\n",
	       set->n, (double)hit2 / set->n, (double)hit5 / set->n, MRR_DEPTH,
	       rr / set->n);
	assert_true((double)hit5 / set->n >= 0.8);

	af_payload_destroy(&p);
	af_client_destroy(&c);
	af_system_destroy(&sys);
	free_set(set);
	free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bm25_quality),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
