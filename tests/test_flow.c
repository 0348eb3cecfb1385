/* Scripted flows: `actorflow run` on every bundled flow of examples/flows
 * and on flows written here (bad files, references that do not fit, a
 * failing step, continue_on_error), `actorflow gather`, each run as a
 * child process; and the reference syntax itself (cli/ref.h), in
 * process. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json_msgpack.h"
#include "ref.h"
#include "testlib.h"

extern char **environ;

static char dir[64];

typedef test_output result;

/* The helpers of testlib.h, for the actorflow command. */
#define now_ms test_now_ms
#define run(r, ...) test_run((r), AF_CLI_PATH, __VA_ARGS__)

static void show(const result *r)
{
	print_message("exit %d after %lld ms\nstdout:\n%s\nstderr:\n%s\n",
		      r->code, (long long)r->ms, r->out, r->err);
}

/* Runs a bundled flow, from another working directory than the
 * repository's (paths in the flows go through ${flow.dir}). */
static void run_bundled(result *r, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/examples/flows/%s", AF_SOURCE_DIR,
		 name);
	run(r, "run", path, NULL);
	if (r->code != 0)
		show(r);
}

static const char *flow_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/af_flow_XXXXXX");
	if (mkdtemp(dir) == NULL || chdir(dir) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Where needle is in haystack, asserting it is. */
static const char *find(const char *haystack, const char *needle)
{
	const char *at = strstr(haystack, needle);

	if (at == NULL)
		print_message("'%s' not in:\n%s\n", needle, haystack);
	assert_non_null(at);
	return at;
}

/* ---- the bundled flows ------------------------------------------------- */

static void test_gather_fetch(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "gather_fetch.json");
	assert_int_equal(r.code, 0);
	find(r.out, "== fetch: gather gather (3 items)");
	assert_true(find(r.out, "[0] ok: 2000") < find(r.out, "[1] ok: 2000"));
	assert_true(find(r.out, "[1] ok: 2000") < find(r.out, "[2] ok: 2000"));
	/* Three 2 s calls at once, the whole process measured: not 6 s. */
	assert_true(r.ms >= 1900);
	assert_true(r.ms < 3000);
}

static void test_stream_chat(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "stream_chat.json");
	assert_int_equal(r.code, 0);
	find(r.out, "== chat: stream chat stream_chat\n");
	find(r.out, "waggle dance");
	find(r.out, " words in ");
	find(r.out, "finish_reason stop, model extractive");
}

static void test_aretrieve(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "aretrieve.json");
	assert_int_equal(r.code, 0);
	find(r.out, "{\"documents\":3,\"chunks\":3}");
	find(r.out, "best: propolis\nPropolis is a resin");
}

static void test_aquery(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "aquery.json");
	assert_int_equal(r.code, 0);
	find(r.out, "loaded 33 documents");
	find(r.out, "sources: hive_products/honey_crystallisation.md");
	find(r.out, "== stream: stream query stream_query\n");
	find(r.out, "shiver");
}

static void test_to_thread(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "to_thread.json");
	assert_int_equal(r.code, 0);
	/* The steps after the background one ran while it slept. */
	assert_true(find(r.out, "word_count: 11") <
		    find(r.out, "== slow: done (background)"));
	assert_true(find(r.out, "form a cluster") <
		    find(r.out, "== slow: done (background)"));
	find(r.out, "sleep_ms returned 1500");
	assert_true(r.ms >= 1400);
}

static void test_rag(void **state)
{
	result r;

	(void)state;
	run_bundled(&r, "rag.json");
	assert_int_equal(r.code, 0);
	find(r.out, "retrieved: ");
	find(r.out, "hive_products/propolis.md#");
	/* The chat answered from the retrieved text given in its prompt. */
	find(r.out, "Propolis");
	find(r.out, "[0] ok: ");
	find(r.out, "[2] ok: ");
	find(r.out, "sources of the first answer: hive_products/");
}

/* ---- flows written here ------------------------------------------------ */

static const char pool[] =
	"\"actors\": [{\"type\": \"offload\", \"name\": \"pool\"}],\n";

static void test_reference_errors(void **state)
{
	char text[2048];
	const char *path;
	result r;

	(void)state;
	/* A step that is not there: found before anything runs. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"a\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\"}},\n"
		 "  {\"name\": \"b\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\",\n"
		 "   \"payload\": {\"fn\": \"echo\", \"args\": "
		 "\"${steps.nope.x}\"}}]}\n",
		 pool);
	path = flow_file("missing.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "missing.json:7: steps[1] (b).payload: ${steps.nope.x}: "
		    "no step \"nope\" before this one");
	assert_null(strstr(r.out, "== a"));

	/* A path that does not parse. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"a\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\"}},\n"
		 "  {\"name\": \"b\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": \"${steps.a[x]}\"}]}\n",
		 pool);
	path = flow_file("badpath.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "badpath.json:6: steps[1] (b).payload: ${steps.a[x]}: "
		    "after '[' comes an index");

	/* A path that does not fit the result: found when b runs. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"a\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": [1, 2]}},\n"
		 "  {\"name\": \"b\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": \"${steps.a.nodes}\"}}]}\n",
		 pool);
	path = flow_file("mismatch.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.out, "== a: ask pool call\n[1,2]\n");
	find(r.err, "mismatch.json:5: step 'b': payload: ${steps.a.nodes}: "
		    "steps.a is an array, not a map (for .nodes)");
	assert_null(strstr(r.out, "== b"));

	/* An index out of range, in a print template. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"a\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": {\"n\": [1, 2]}},\n"
		 "   \"print\": \"third: ${steps.a.n[2]}\"}]}\n",
		 pool);
	path = flow_file("range.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "step 'a': print: ${steps.a.n[2]}: index 2 is out of "
		    "range: steps.a.n has 2 elements");
}

static void test_values_through_references(void **state)
{
	char text[2048];
	const char *path;
	result r;

	(void)state;
	/* A lone reference keeps the value's type; in text it is text;
	 * $${ is a literal. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"a\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": {\"n\": [1, 2.5], \"s\": \"x\"}}},\n"
		 "  {\"name\": \"b\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": {\"whole\": \"${steps.a.n}\", \"in\": "
		 "\"n=${steps.a.n[1]} s=${steps.a.s} $${not}\", \"all\": "
		 "\"${steps.a.n[*]}\"}}}]}\n",
		 pool);
	path = flow_file("values.json", text);
	run(&r, "run", path, NULL);
	if (r.code != 0)
		show(&r);
	assert_int_equal(r.code, 0);
	find(r.out, "{\"whole\":[1,2.5],\"in\":\"n=2.5 s=x ${not}\","
		    "\"all\":[1,2.5]}");
}

static void test_bad_flow_files(void **state)
{
	const char *path;
	result r;

	(void)state;
	path = flow_file("syntax.json",
			 "{\"steps\": [\n  {\"name\": \"a\",,\n");
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "syntax.json:2:");
	find(r.err, "invalid JSON");

	path = flow_file("key.json",
			 "{\"steps\": [\n"
			 "  {\"name\": \"a\", \"do\": \"ask\",\n"
			 "   \"to\": \"ipc:///tmp/x.sock#a\", \"type\": "
			 "\"t\",\n"
			 "   \"paylod\": {}}]}\n");
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "key.json:4: steps[0]: unknown key \"paylod\"");

	path = flow_file("do.json", "{\"steps\": [\n"
				    "  {\"name\": \"a\",\n"
				    "   \"do\": \"fly\"}]}\n");
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "do.json:3: steps[0] (a).do: unknown \"fly\"");

	path = flow_file("to.json",
			 "{\"steps\": [\n"
			 "  {\"name\": \"a\", \"do\": \"ask\",\n"
			 "   \"to\": \"nobody\", \"type\": \"t\"}]}\n");
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "to.json:3: steps[0] (a).to: no actor \"nobody\"");

	path = flow_file("actor.json",
			 "{\"actors\": [{\"type\": \"offload\",\n"
			 "              \"config\": {\"worker\": 2}}],\n"
			 " \"steps\": [{\"name\": \"a\", \"do\": \"tell\", "
			 "\"to\": \"offload\", \"type\": \"t\"}]}\n");
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "actor.json:2: actors[0].config: unknown key \"worker\"");

	run(&r, "run", "/nonexistent/flow.json", NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "/nonexistent/flow.json: No such file");
}

static void test_failing_step(void **state)
{
	char text[2048];
	const char *path;
	result r;

	(void)state;
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"boom\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"fail\", "
		 "\"args\": {\"message\": \"it broke\"}}},\n"
		 "  {\"name\": \"after\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\"}}]}\n",
		 pool);
	path = flow_file("fail.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 5);
	find(r.err, "error: step 'boom': AF_EUSER: it broke");
	assert_null(strstr(r.out, "== after"));

	/* The same step allowed to fail: the next one reads its error. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"boom\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"fail\", "
		 "\"args\": {\"message\": \"it broke\"}},\n"
		 "   \"continue_on_error\": true},\n"
		 "  {\"name\": \"after\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"echo\", "
		 "\"args\": \"${steps.boom.error.message} "
		 "(${steps.boom.error.code})\"}}]}\n",
		 pool);
	path = flow_file("continue.json", text);
	run(&r, "run", path, NULL);
	if (r.code != 0)
		show(&r);
	assert_int_equal(r.code, 0);
	find(r.err, "error: step 'boom': AF_EUSER: it broke");
	find(r.out, "== boom failed; continue_on_error: going on\n");
	find(r.out, "== after: ask pool call\n\"it broke (1000)\"\n");

	/* A step that times out exits 3. */
	snprintf(text, sizeof(text),
		 "{%s \"steps\": [\n"
		 "  {\"name\": \"slow\", \"do\": \"ask\", \"to\": \"pool\",\n"
		 "   \"type\": \"call\", \"payload\": {\"fn\": \"sleep_ms\", "
		 "\"args\": 2000}, \"timeout_ms\": 200}]}\n",
		 pool);
	path = flow_file("slow.json", text);
	run(&r, "run", path, NULL);
	assert_int_equal(r.code, 3);
	find(r.err, "error: step 'slow': AF_ETIMEDOUT");
}

static void test_gather_command(void **state)
{
	const char *path;
	result r;

	(void)state;
	path = flow_file(
		"g.json",
		"{\"actors\": [{\"type\": \"offload\", \"name\": \"pool\",\n"
		"              \"config\": {\"workers\": 2}}],\n"
		" \"items\": [\n"
		"  {\"to\": \"pool\", \"type\": \"call\", \"payload\": "
		"{\"fn\": \"sleep_ms\", \"args\": 400}},\n"
		"  {\"to\": \"pool\", \"type\": \"call\", \"payload\": "
		"{\"fn\": \"word_count\", \"args\": \"one two three\"}}]}\n");
	run(&r, "gather", path, NULL);
	if (r.code != 0)
		show(&r);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "[0] ok: 400\n[1] ok: 3\n");

	/* As completed: the quick one first. */
	run(&r, "gather", "--as-completed", path, NULL);
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "[1] ok: 3\n[0] ok: 400\n");

	/* A failed item: its line, and exit 5. */
	path = flow_file(
		"gfail.json",
		"{\"actors\": [{\"type\": \"offload\", \"name\": \"pool\"}],\n"
		" \"items\": [\n"
		"  {\"to\": \"pool\", \"type\": \"call\", \"payload\": "
		"{\"fn\": \"echo\", \"args\": 1}},\n"
		"  {\"to\": \"pool\", \"type\": \"call\", \"payload\": "
		"{\"fn\": \"nothing\"}}]}\n");
	run(&r, "gather", path, NULL);
	assert_int_equal(r.code, 5);
	find(r.out, "[0] ok: 1\n[1] error: AF_ENOTFOUND: ");

	/* An array of items needs addresses the gather actor can reach. */
	path = flow_file("garr.json", "[{\"to\": \"pool\", \"type\": \"x\"}]");
	run(&r, "gather", path, NULL);
	assert_int_equal(r.code, 2);
	find(r.err, "no actor \"pool\"");
}

/* ---- the reference syntax, in process ---------------------------------- */

static af_doc *doc_of_json(const char *json)
{
	af_payload *p = NULL;
	af_doc *d = NULL;
	const void *data;
	size_t len;
	char why[128];

	assert_int_equal(af_payload_new(&p), AF_OK);
	assert_int_equal(cli_json_to_payload(json, p, why, sizeof(why)), AF_OK);
	data = af_payload_data(p, &len);
	assert_int_equal(af_doc_parse(&d, data, len), AF_OK);
	af_payload_destroy(&p);
	return d;
}

static af_doc *retrieved;

static const af_value *lookup(void *user, const char *name, size_t len,
			      char *err, size_t cap)
{
	(void)user;
	if (len == 8 && memcmp(name, "retrieve", 8) == 0)
		return af_doc_root(retrieved);
	snprintf(err, cap, "no step '%.*s'", (int)len, name);
	return NULL;
}

static bool known(void *user, const char *name, size_t len)
{
	(void)user;
	return len == 8 && memcmp(name, "retrieve", 8) == 0;
}

/* Expands the JSON template tmpl; the result as JSON, or NULL with why. */
static char *expand(const char *tmpl, char *why, size_t cap)
{
	cli_ref_env env = {.step = lookup, .flow_dir = "/flows"};
	af_doc *t = doc_of_json(tmpl);
	af_payload *p = NULL;
	af_doc *d = NULL;
	char *json = NULL;
	const void *data;
	size_t len;

	assert_int_equal(af_payload_new(&p), AF_OK);
	if (cli_ref_expand(&env, af_doc_root(t), p, why, cap) == AF_OK) {
		data = af_payload_data(p, &len);
		assert_int_equal(af_doc_parse(&d, data, len), AF_OK);
		assert_int_equal(cli_value_to_json(af_doc_root(d), &json, NULL),
				 AF_OK);
	}
	af_doc_destroy(&d);
	af_payload_destroy(&p);
	af_doc_destroy(&t);
	return json;
}

static void expect(const char *tmpl, const char *want)
{
	char why[256] = "";
	char *got = expand(tmpl, why, sizeof(why));

	if (got == NULL)
		print_message("%s: %s\n", tmpl, why);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void expect_error(const char *tmpl, const char *want)
{
	char why[256] = "";
	char *got = expand(tmpl, why, sizeof(why));

	assert_null(got);
	if (strstr(why, want) == NULL)
		print_message("%s: '%s' has no '%s'\n", tmpl, why, want);
	assert_non_null(strstr(why, want));
}

static void test_ref_syntax(void **state)
{
	char why[256];

	(void)state;
	retrieved = doc_of_json(
		"{\"nodes\": [{\"text\": \"Bees dance.\", \"score\": 1.5},"
		" {\"text\": \"Wax.\", \"score\": 2}], \"n\": 2, \"ok\": "
		"true}");
	expect("\"${steps.retrieve.nodes[0].text}\"", "\"Bees dance.\"");
	expect("\"${steps.retrieve.n}\"", "2");
	expect("\"${steps.retrieve.nodes[1].score}\"", "2");
	expect("\"${steps.retrieve.nodes[0].score}\"", "1.5");
	expect("\"${steps.retrieve.nodes[*].text}\"",
	       "[\"Bees dance.\",\"Wax.\"]");
	expect("\"Context:\\n${steps.retrieve.nodes[*].text}\\nQ\"",
	       "\"Context:\\nBees dance.\\nWax.\\nQ\"");
	expect("{\"k\": \"${steps.retrieve.ok} ${steps.retrieve.nodes[1]}\"}",
	       "{\"k\":\"true {\\\"text\\\":\\\"Wax.\\\",\\\"score\\\":2}\"}");
	expect("[\"$${x}\", \"a$b\", 1.0, 3]", "[\"${x}\",\"a$b\",1.0,3]");
	expect("\"${flow.dir}/../data\"", "\"/flows/../data\"");
	expect("\"${steps.retrieve}\"",
	       "{\"nodes\":[{\"text\":\"Bees dance.\",\"score\":1.5},"
	       "{\"text\":\"Wax.\",\"score\":2}],\"n\":2,\"ok\":true}");

	expect_error("\"${steps.other.x}\"", "no step 'other'");
	expect_error("\"${steps.retrieve.nodes[2].text}\"",
		     "index 2 is out of range: steps.retrieve.nodes has 2 "
		     "elements");
	expect_error("\"${steps.retrieve.nodes.text}\"",
		     "steps.retrieve.nodes is an array, not a map (for .text)");
	expect_error("\"${steps.retrieve.n[0]}\"",
		     "steps.retrieve.n is a number, not an array (for [0])");
	expect_error("\"${steps.retrieve.missing}\"",
		     "steps.retrieve has no key \"missing\"");
	expect_error("\"${steps.retrieve.nodes[*].nope}\"",
		     "steps.retrieve.nodes[*] has no key \"nope\"");

	assert_int_equal(cli_ref_check("a ${steps.retrieve.x[1][*]} b", 29,
				       known, NULL, why, sizeof(why)),
			 AF_OK);
	assert_int_equal(cli_ref_check("${steps.other}", 14, known, NULL, why,
				       sizeof(why)),
			 AF_EINVAL);
	assert_non_null(strstr(why, "no step \"other\" before this one"));
	assert_int_equal(cli_ref_check("${steps.retrieve", 16, known, NULL, why,
				       sizeof(why)),
			 AF_EINVAL);
	assert_non_null(strstr(why, "without its \"}\""));
	assert_int_equal(
		cli_ref_check("${env.HOME}", 11, known, NULL, why, sizeof(why)),
		AF_EINVAL);
	assert_int_equal(cli_ref_check("${steps.retrieve.}", 18, known, NULL,
				       why, sizeof(why)),
			 AF_EINVAL);
	assert_int_equal(cli_ref_check("${steps.retrieve[1}", 19, known, NULL,
				       why, sizeof(why)),
			 AF_EINVAL);
	af_doc_destroy(&retrieved);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_syntax),
		cmocka_unit_test(test_gather_fetch),
		cmocka_unit_test(test_stream_chat),
		cmocka_unit_test(test_aretrieve),
		cmocka_unit_test(test_aquery),
		cmocka_unit_test(test_to_thread),
		cmocka_unit_test(test_rag),
		cmocka_unit_test(test_reference_errors),
		cmocka_unit_test(test_values_through_references),
		cmocka_unit_test(test_bad_flow_files),
		cmocka_unit_test(test_failing_step),
		cmocka_unit_test(test_gather_command),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
