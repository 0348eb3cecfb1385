/*
 * `actorflow run FLOW` and `actorflow gather FILE`: the steps of a flow
 * file, one after the other, each one's result kept for the references of
 * the next (flow.h, ref.h).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <actorflow/actorflow.h>

#include "cli.h"
#include "flow.h"
#include "functions.h"
#include "json_msgpack.h"
#include "ref.h"

#define DEFAULT_TIMEOUT_MS 60000

static const char run_help[] =
	"Usage: actorflow run [--timeout MS] FLOW\n"
	"\n"
	"Runs the steps of the flow file FLOW in order, printing a header\n"
	"line per step ('== NAME: DO TO TYPE') and what the step prints:\n"
	"ask the reply as JSON, stream its \"delta\" text as it arrives,\n"
	"gather one line per item ('[i] ok: ...' or '[i] error: ...'), tell\n"
	"nothing. It stops at the first step that fails, unless that step\n"
	"says \"continue_on_error\": true.\n"
	"\n"
	"FLOW is JSON:\n"
	"  {\"description\": \"...\", \"python\": \"...\",   (for the reader)\n"
	"   \"actors\": [{\"type\": \"offload\", \"name\": \"pool\"}, ...],\n"
	"                 hosted here for the flow (as in a node config)\n"
	"   \"steps\": [{\"name\": \"retrieve\", \"do\": "
	"\"ask|stream|tell|gather\",\n"
	"              \"to\": \"retrieval\" or \"ipc:///x.sock#retrieval\",\n"
	"              \"type\": \"retrieve\", \"payload\": {...},\n"
	"              \"print\": true|false|\"text ${steps.NAME...}\",\n"
	"              \"timeout_ms\": 60000, \"background\": false,\n"
	"              \"continue_on_error\": false}, ...]}\n"
	"A gather step takes \"items\": [{\"to\", \"type\", \"payload\"}, "
	"...]\n"
	"and \"concurrency\", \"item_timeout_ms\", \"mode\", \"as_completed\"\n"
	"(include/actorflow/gather.h); its \"to\" defaults to a gather actor\n"
	"of the flow's own.\n"
	"\n"
	"References: a payload string \"${steps.NAME.key[0].key}\" is "
	"replaced\n"
	"by that part of the result of the earlier step NAME (the value\n"
	"itself when it is the whole string, else its text; [*] takes every\n"
	"element). ${flow.dir} is the flow file's folder: paths in payloads\n"
	"are given to the actors as they are, relative to the working\n"
	"directory, so write \"${flow.dir}/../data\" for one beside the flow.\n"
	"Results: ask and gather the reply; stream {\"text\", \"end\",\n"
	"\"chunks\"}; tell null; a failed step {\"error\": {\"code\", "
	"\"name\",\n"
	"\"message\"}}. A \"background\" step is started and the flow goes "
	"on;\n"
	"it is waited for when referred to, or at the end.\n"
	"\n"
	"Offload actors hosted by the command (here or in a node config) run\n"
	"these functions by name ({\"fn\": NAME, \"args\": ARGS}):\n"
	"  sleep_ms    ARGS n or {\"ms\": n}: a blocking sleep, returns n\n"
	"  word_count  ARGS a string or {\"text\": s}: its number of words\n"
	"  echo        returns ARGS\n"
	"  fail        ARGS {\"code\": n, \"message\": s}: fails with them\n"
	"\n"
	"Options:\n"
	"  --timeout MS  deadline of each step that gives none (default "
	"60000)\n"
	"  --help        this text\n"
	"\n" CLI_EXIT_CODES_HELP
	"A reference that does not fit a result also exits 2; a gather with a\n"
	"failed item exits as that item's error (3 for a timeout, else 5).\n";

static const char gather_help[] =
	"Usage: actorflow gather [--to ADDR] [--as-completed] [--timeout MS] "
	"FILE\n"
	"\n"
	"Sends the gather request FILE holds to the gather actor at ADDR\n"
	"(without --to, one hosted in this process) and prints one line per\n"
	"item, in order ('[i] ok: VALUE' or '[i] error: CODE: MESSAGE'; an\n"
	"item answered by a stream shows its text), or as they complete with\n"
	"--as-completed.\n"
	"\n"
	"FILE is a JSON array of items, [{\"to\": ADDR, \"type\": T, "
	"\"payload\": P}],\n"
	"or a map: {\"items\": [...], \"concurrency\": n, \"item_timeout_ms\": "
	"n,\n"
	"\"mode\": \"collect\"|\"fail_fast\", \"as_completed\": bool}, which "
	"may also\n"
	"list \"actors\" to host here (as in a node config; see actorflow run\n"
	"--help for the functions of an offload actor). An item's \"to\" is\n"
	"as the gather actor sees it: a name of its process, or ipc://...#x.\n"
	"\n"
	"Options:\n"
	"  --to ADDR       the gather actor (ipc://...#gather)\n"
	"  --as-completed  print each item as it finishes\n"
	"  --timeout MS    deadline of the whole gather (default 60000)\n"
	"  --help          this text\n"
	"\n" CLI_EXIT_CODES_HELP
	"An item that failed exits as its error (3 for a timeout, else 5).\n";

typedef struct step_run {
	af_stream *stream; /* in flight */
	af_doc *result;    /* once done */
	bool started;
	bool done;
	int code; /* exit code of the step, once done */
} step_run;

typedef struct runner {
	const char *prog;
	cli_flow *flow;
	af_system *sys;
	af_client *client;
	step_run *runs;
	int64_t timeout_ms;
	bool headers;
	int stop_code; /* set when a step awaited by a reference failed */
} runner;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *kind_word(cli_step_kind k)
{
	switch (k) {
	case CLI_STEP_ASK:
		return "ask";
	case CLI_STEP_STREAM:
		return "stream";
	case CLI_STEP_TELL:
		return "tell";
	case CLI_STEP_GATHER:
	default:
		return "gather";
	}
}

/* The exit code of err; remote: the actor answered with it. */
static int exit_code(af_err err, bool remote)
{
	if (err == AF_ETIMEDOUT)
		return CLI_EXIT_TIMEOUT;
	if (remote)
		return CLI_EXIT_REMOTE;
	switch (err) {
	case AF_EPEERDOWN:
		return CLI_EXIT_PEERDOWN;
	case AF_EADDR:
	case AF_EINVAL:
	case AF_ENOTFOUND:
	case AF_EMSGSIZE:
		return CLI_EXIT_USAGE;
	default:
		return CLI_EXIT_OTHER;
	}
}

static af_err doc_of(af_payload *p, af_doc **out)
{
	const void *data;
	size_t len;
	af_err err = af_payload_status(p);

	if (err != AF_OK)
		return err;
	data = af_payload_data(p, &len);
	return af_doc_parse(out, data, len);
}

static af_err doc_of_msg(const af_msg *m, af_doc **out)
{
	const void *data;
	size_t len;
	af_err err = af_msg_payload_raw(m, &data, &len);

	if (err != AF_OK || len == 0) {
		static const unsigned char nil = 0xc0;
		data = &nil;
		len = 1;
	}
	return af_doc_parse(out, data, len);
}

/* {"error": {"code", "name", "message"}}: a failed step's result. */
static void set_error_result(step_run *sr, int code, const char *text)
{
	af_payload *p = NULL;
	char num[24];

	if (af_payload_new(&p) != AF_OK)
		return;
	af_pack_map(p, 1);
	af_pack_str(p, "error");
	af_pack_map(p, 3);
	af_pack_str(p, "code");
	af_pack_int(p, code);
	af_pack_str(p, "name");
	af_pack_str(p, cli_errname(code, num, sizeof(num)));
	af_pack_str(p, "message");
	af_pack_str(p, text != NULL ? text : af_strerror(code));
	af_doc_destroy(&sr->result);
	doc_of(p, &sr->result);
	af_payload_destroy(&p);
}

/* Says that step s failed with err and returns the exit code. */
static int step_failed(runner *r, size_t i, af_err err, const af_msg *m,
		       int code)
{
	const cli_step *s = &r->flow->steps[i];
	const char *text = NULL;
	char num[24];

	if (m != NULL && af_msg_kind(m) == AF_KIND_ERROR)
		af_msg_error(m, &text);
	if (text == NULL || text[0] == '\0')
		text = af_strerror(err);
	fflush(stdout);
	fprintf(stderr, "error: step '%s': %s: %s\n", s->name,
		cli_errname(err, num, sizeof(num)), text);
	set_error_result(&r->runs[i], err, text);
	return code;
}

/* ---- references -------------------------------------------------------- */

static int finish_step(runner *r, size_t i);

static const af_value *lookup(void *user, const char *name, size_t len,
			      char *err, size_t cap)
{
	runner *r = user;

	for (size_t i = 0; i < r->flow->nsteps; i++) {
		const cli_step *s = &r->flow->steps[i];
		step_run *sr = &r->runs[i];
		if (strlen(s->name) != len || memcmp(s->name, name, len) != 0)
			continue;
		if (sr->started && !sr->done) {
			/* A background step: its result is awaited here. */
			int code = finish_step(r, i);
			if (code != CLI_EXIT_OK && !s->continue_on_error) {
				r->stop_code = code;
				snprintf(err, cap, "step '%s' failed", s->name);
				return NULL;
			}
		}
		if (!sr->done || sr->result == NULL) {
			snprintf(err, cap, "step '%s' has no result yet",
				 s->name);
			return NULL;
		}
		return af_doc_root(sr->result);
	}
	snprintf(err, cap, "no step '%.*s'", (int)len, name);
	return NULL;
}

static cli_ref_env env_of(runner *r)
{
	return (cli_ref_env){
		.step = lookup, .user = r, .flow_dir = r->flow->dir};
}

/* A reference that does not fit: exit 2, or the code of a step it
 * awaited that failed. */
static int ref_failed(runner *r, size_t i, const char *what, const char *why)
{
	const cli_step *s = &r->flow->steps[i];

	fflush(stdout);
	if (r->stop_code != 0)
		return r->stop_code;
	if (s->line > 0)
		fprintf(stderr, "%s: %s:%zu: step '%s': %s: %s\n", r->prog,
			r->flow->file.path, s->line, s->name, what, why);
	else
		fprintf(stderr, "%s: step '%s': %s: %s\n", r->prog, s->name,
			what, why);
	return CLI_EXIT_USAGE;
}

/* ---- starting a step --------------------------------------------------- */

typedef struct collect collect;
static int print_after(runner *r, size_t i, collect *c);

static af_err gather_payload(runner *r, const cli_step *s, af_payload *p,
			     char *why, size_t cap)
{
	cli_ref_env env = env_of(r);
	uint32_t n = 2;
	af_err err;

	for (const char *const *o = cli_gather_options; *o != NULL; o++)
		if (af_value_get(s->options, *o) != NULL)
			n++;
	af_pack_map(p, n);
	af_pack_str(p, "items");
	err = cli_ref_expand(&env, s->items, p, why, cap);
	if (err != AF_OK)
		return err;
	for (const char *const *o = cli_gather_options; *o != NULL; o++) {
		const af_value *v = af_value_get(s->options, *o);
		if (v == NULL)
			continue;
		af_pack_str(p, *o);
		af_pack_value(p, v);
	}
	af_pack_str(p, "as_completed");
	return af_pack_bool(p, s->as_completed);
}

static int start_step(runner *r, size_t i)
{
	const cli_step *s = &r->flow->steps[i];
	step_run *sr = &r->runs[i];
	cli_ref_env env = env_of(r);
	af_payload *p = NULL;
	char why[1024];
	int64_t timeout = s->timeout_ms > 0 ? s->timeout_ms : r->timeout_ms;
	af_err err = af_payload_new(&p);

	if (err != AF_OK)
		return step_failed(r, i, err, NULL, CLI_EXIT_OTHER);
	if (s->kind == CLI_STEP_GATHER)
		err = gather_payload(r, s, p, why, sizeof(why));
	else
		err = cli_ref_expand(&env, s->payload, p, why, sizeof(why));
	if (err == AF_OK)
		err = af_payload_status(p);
	if (err != AF_OK) {
		int code = err == AF_ENOMEM ? step_failed(r, i, err, NULL,
							  CLI_EXIT_OTHER)
					    : ref_failed(r, i, "payload", why);
		af_payload_destroy(&p);
		return code;
	}
	if (r->headers && s->kind == CLI_STEP_GATHER)
		printf("== %s: gather %s (%zu items)%s\n", s->name, s->to,
		       af_value_len(s->items),
		       s->background ? " (background)" : "");
	else if (r->headers)
		printf("== %s: %s %s %s%s\n", s->name, kind_word(s->kind),
		       s->to, s->type, s->background ? " (background)" : "");
	fflush(stdout);
	sr->started = true;
	if (s->kind == CLI_STEP_TELL) {
		af_payload *nil = NULL;
		err = af_client_tell(r->client, s->to, s->type, p, timeout);
		af_payload_destroy(&p);
		sr->done = true;
		if (err != AF_OK)
			return sr->code = step_failed(r, i, err, NULL,
						      exit_code(err, false));
		if (af_payload_new(&nil) == AF_OK && af_pack_nil(nil) == AF_OK)
			doc_of(nil, &sr->result);
		af_payload_destroy(&nil);
		return sr->code = print_after(r, i, NULL);
	}
	err = af_client_stream(r->client, s->to, s->type, p, timeout,
			       &sr->stream);
	af_payload_destroy(&p);
	if (err != AF_OK) {
		sr->done = true;
		return sr->code = step_failed(r, i, err, NULL,
					      exit_code(err, false));
	}
	return CLI_EXIT_OK;
}

/* ---- finishing a step -------------------------------------------------- */

/* What a step collects while its answer arrives. */
struct collect {
	char *text; /* the deltas of a stream */
	size_t text_len;
	bool at_line_start;
	size_t chunks;
	af_doc **slots; /* a gather's as_completed chunks, by index */
	size_t nslots;
};

static void print_json_line(const af_value *v)
{
	char *json = NULL;

	if (cli_value_to_json(v, &json, NULL) == AF_OK)
		printf("%s\n", json);
	else
		printf("(a value that cannot be printed as JSON)\n");
	free(json);
}

/* One line for a gather slot; the slot's failure, if any, in *failed. */
static void print_slot(size_t index, const af_value *slot, bool print)
{
	bool ok = false;
	char *text = NULL;
	size_t len = 0;

	if (!print)
		return;
	af_value_bool(af_value_get(slot, "ok"), &ok);
	if (ok) {
		const af_value *t = af_value_get(slot, "text");
		if (af_value_type(t) != AF_TYPE_STR)
			t = af_value_get(slot, "value");
		cli_value_text(t, &text, &len);
		printf("[%zu] ok: %s\n", index, text != NULL ? text : "");
	} else {
		const af_value *e = af_value_get(slot, "error");
		int64_t code = af_value_get_int(e, "code", AF_EREMOTE);
		char num[24];
		cli_value_text(af_value_get(e, "message"), &text, &len);
		printf("[%zu] error: %s: %s\n", index,
		       cli_errname((int)code, num, sizeof(num)),
		       text != NULL ? text : "");
	}
	free(text);
	fflush(stdout);
}

/* The exit code of a gather whose slots are in results: the first failed
 * item's (3 for a timeout, else 5). */
static int slots_code(runner *r, size_t i, const af_value *results)
{
	for (size_t k = 0; k < af_value_len(results); k++) {
		const af_value *slot = af_value_at(results, k);
		bool ok = false;
		if (af_value_bool(af_value_get(slot, "ok"), &ok) == AF_OK &&
		    !ok) {
			int64_t code =
				af_value_get_int(af_value_get(slot, "error"),
						 "code", AF_EREMOTE);
			fflush(stdout);
			fprintf(stderr,
				"error: step '%s': item %zu failed (see its "
				"line)\n",
				r->flow->steps[i].name, k);
			return exit_code((af_err)code, true);
		}
	}
	return CLI_EXIT_OK;
}

static void on_chunk(runner *r, size_t i, const af_msg *m, collect *c,
		     bool print)
{
	const cli_step *s = &r->flow->steps[i];
	const af_value *v = af_msg_payload(m);
	const char *d;
	size_t len;

	c->chunks++;
	if (s->kind == CLI_STEP_GATHER) {
		int64_t index = af_value_get_int(v, "index", -1);
		if (index >= 0 && (size_t)index < c->nslots &&
		    c->slots[index] == NULL)
			doc_of_msg(m, &c->slots[index]);
		print_slot(index < 0 ? 0 : (size_t)index, v, print);
		return;
	}
	if (af_value_str(af_value_get(v, "delta"), &d, &len) == AF_OK) {
		char *t = realloc(c->text, c->text_len + len + 1);
		if (t != NULL) {
			memcpy(t + c->text_len, d, len);
			c->text_len += len;
			t[c->text_len] = '\0';
			c->text = t;
		}
		if (print && s->kind == CLI_STEP_STREAM && len > 0) {
			fwrite(d, 1, len, stdout);
			fflush(stdout);
			c->at_line_start = d[len - 1] == '\n';
		}
	} else if (print && s->kind == CLI_STEP_STREAM) {
		if (!c->at_line_start)
			putchar('\n');
		print_json_line(v);
		c->at_line_start = true;
	}
}

/* The result of a step whose answer ended with end (a reply or a stream's
 * end). */
static af_err make_result(const cli_step *s, const af_msg *end, collect *c,
			  af_doc **out)
{
	af_payload *p = NULL;
	af_err err;

	if (s->kind == CLI_STEP_ASK ||
	    (s->kind == CLI_STEP_GATHER && !s->as_completed))
		return doc_of_msg(end, out);
	if ((err = af_payload_new(&p)) != AF_OK)
		return err;
	if (s->kind == CLI_STEP_STREAM) {
		af_pack_map(p, 3);
		af_pack_str(p, "text");
		af_pack_strn(p, c->text != NULL ? c->text : "", c->text_len);
		af_pack_str(p, "end");
		af_pack_value(p, af_msg_payload(end));
		af_pack_str(p, "chunks");
		af_pack_uint(p, c->chunks);
	} else {
		/* as_completed: the slots again in input order, as a plain
		 * gather's reply, with the end's counts. */
		const af_value *e = af_msg_payload(end);
		af_pack_map(p, 3);
		af_pack_str(p, "results");
		af_pack_array(p, (uint32_t)c->nslots);
		for (size_t k = 0; k < c->nslots; k++) {
			if (c->slots[k] != NULL)
				af_pack_value(p, af_doc_root(c->slots[k]));
			else
				af_pack_nil(p);
		}
		af_pack_str(p, "completed");
		af_pack_value(p, af_value_get(e, "completed"));
		af_pack_str(p, "failed");
		af_pack_value(p, af_value_get(e, "failed"));
	}
	err = doc_of(p, out);
	af_payload_destroy(&p);
	return err;
}

/* Prints what the step prints once done (its "print" template, an ask's
 * reply, a plain gather's slots); the exit code. */
static int print_after(runner *r, size_t i, collect *c)
{
	const cli_step *s = &r->flow->steps[i];
	step_run *sr = &r->runs[i];
	const af_value *v = af_doc_root(sr->result);

	if (c != NULL && s->kind == CLI_STEP_STREAM && s->print &&
	    s->print_tmpl == NULL && !c->at_line_start)
		putchar('\n');
	if (s->print_tmpl != NULL) {
		cli_ref_env env = env_of(r);
		char why[1024];
		char *text = NULL;
		if (cli_ref_text(&env, s->print_tmpl, strlen(s->print_tmpl),
				 &text, why, sizeof(why)) != AF_OK)
			return ref_failed(r, i, "print", why);
		printf("%s\n", text);
		free(text);
	} else if (s->print && s->kind == CLI_STEP_ASK) {
		print_json_line(v);
	} else if (s->print && s->kind == CLI_STEP_STREAM && c->chunks == 0) {
		/* A plain reply to a stream request. */
		print_json_line(af_value_get(v, "end"));
	} else if (s->print && s->kind == CLI_STEP_GATHER && !s->as_completed) {
		const af_value *results = af_value_get(v, "results");
		for (size_t k = 0; k < af_value_len(results); k++)
			print_slot(k, af_value_at(results, k), true);
	}
	fflush(stdout);
	if (s->kind == CLI_STEP_GATHER)
		return slots_code(r, i, af_value_get(v, "results"));
	return CLI_EXIT_OK;
}

/* Waits for the answer of step i, prints it and keeps its result. */
static int finish_step(runner *r, size_t i)
{
	const cli_step *s = &r->flow->steps[i];
	step_run *sr = &r->runs[i];
	int64_t timeout = s->timeout_ms > 0 ? s->timeout_ms : r->timeout_ms;
	int64_t deadline = now_ms() + timeout;
	/* A background step prints once awaited: mark where. */
	bool print = s->print && s->print_tmpl == NULL;
	collect c = {.at_line_start = true};
	af_msg *m = NULL;
	af_err err;
	int code;

	if (sr->done)
		return sr->code;
	sr->done = true;
	if (s->background && r->headers) {
		printf("== %s: done (background)\n", s->name);
		fflush(stdout);
	}
	if (s->kind == CLI_STEP_GATHER && s->as_completed) {
		c.nslots = af_value_len(s->items);
		c.slots = calloc(c.nslots > 0 ? c.nslots : 1, sizeof(*c.slots));
		if (c.slots == NULL) {
			af_stream_close(&sr->stream);
			return sr->code = step_failed(r, i, AF_ENOMEM, NULL,
						      CLI_EXIT_OTHER);
		}
	}
	for (;;) {
		/* The stream's own deadline ends it; the margin only guards
		 * against waiting forever should that fail. */
		int64_t left = deadline - now_ms();
		err = af_stream_next(sr->stream, (left > 0 ? left : 0) + 1000,
				     &m);
		if (err == AF_EAGAIN) {
			if (now_ms() >= deadline + 1000) {
				err = AF_ETIMEDOUT;
				break;
			}
			continue;
		}
		if (err != AF_OK)
			break;
		on_chunk(r, i, m, &c, print);
		af_msg_destroy(&m);
	}
	if (err == AF_EOF) {
		err = make_result(s, m, &c, &sr->result);
		code = err == AF_OK
			       ? print_after(r, i, &c)
			       : step_failed(r, i, err, NULL, CLI_EXIT_OTHER);
	} else {
		if (print && s->kind == CLI_STEP_STREAM && !c.at_line_start)
			putchar('\n');
		code = step_failed(
			r, i, err, m,
			exit_code(err, m != NULL && af_msg_kind(m) ==
							    AF_KIND_ERROR));
	}
	af_msg_destroy(&m);
	af_stream_close(&sr->stream);
	for (size_t k = 0; k < c.nslots; k++)
		af_doc_destroy(&c.slots[k]);
	free(c.slots);
	free(c.text);
	return sr->code = code;
}

/* ---- the flow ---------------------------------------------------------- */

static int host(runner *r)
{
	const cli_flow *f = r->flow;
	af_err err = af_system_new(&r->sys, NULL);

	if (err != AF_OK) {
		fprintf(stderr, "%s: cannot start: %s\n", r->prog,
			af_strerror(err));
		return CLI_EXIT_OTHER;
	}
	for (size_t i = 0; i < f->nactors; i++) {
		const cli_actor_spec *s = &f->actors[i];
		char why[AF_INIT_ERROR_MAX + 128];

		err = cli_actor_spawn(r->sys, s, why, sizeof(why));
		if (err != AF_OK) {
			fprintf(stderr, "%s: %s\n", r->prog, why);
			return CLI_EXIT_OTHER;
		}
		if (s->export_endpoint != NULL &&
		    (err = af_export(r->sys, s->name, s->export_endpoint)) !=
			    AF_OK) {
			fprintf(stderr,
				"%s: actor '%s' (%s) cannot be exported on "
				"%s: %s: %s\n",
				r->prog, s->name, s->type, s->export_endpoint,
				af_errname(err), af_strerror(err));
			return CLI_EXIT_OTHER;
		}
	}
	if (f->host_gather && (err = af_spawn(r->sys, "gather", &af_gather_ops,
					      NULL, NULL)) != AF_OK) {
		fprintf(stderr, "%s: the gather actor did not start: %s\n",
			r->prog, af_strerror(err));
		return CLI_EXIT_OTHER;
	}
	err = af_client_new(&r->client, r->sys);
	if (err != AF_OK) {
		fprintf(stderr, "%s: %s\n", r->prog, af_strerror(err));
		return CLI_EXIT_OTHER;
	}
	return CLI_EXIT_OK;
}

static int run_steps(runner *r)
{
	const cli_flow *f = r->flow;
	int64_t t0 = now_ms();
	int code;

	for (size_t i = 0; i < f->nsteps; i++) {
		const cli_step *s = &f->steps[i];
		code = start_step(r, i);
		if (code == CLI_EXIT_OK && !s->background)
			code = finish_step(r, i);
		if (r->stop_code != 0)
			return r->stop_code;
		if (code != CLI_EXIT_OK && !s->continue_on_error)
			return code;
		if (code != CLI_EXIT_OK && r->headers)
			printf("== %s failed; continue_on_error: going on\n",
			       s->name);
	}
	/* What is still running in the background is waited for. */
	for (size_t i = 0; i < f->nsteps; i++) {
		if (!r->runs[i].started || r->runs[i].done)
			continue;
		code = finish_step(r, i);
		if (code != CLI_EXIT_OK && !f->steps[i].continue_on_error)
			return code;
	}
	if (r->headers) {
		int64_t ms = now_ms() - t0;
		printf("== done: %zu step%s in %lld.%02lld s\n", f->nsteps,
		       f->nsteps == 1 ? "" : "s", (long long)(ms / 1000),
		       (long long)(ms % 1000 / 10));
	}
	return CLI_EXIT_OK;
}

static int run_flow(const char *prog, cli_flow *f, int64_t timeout_ms,
		    bool headers)
{
	runner r = {.prog = prog,
		    .flow = f,
		    .timeout_ms = timeout_ms,
		    .headers = headers};
	int code;

	r.runs = calloc(f->nsteps, sizeof(*r.runs));
	if (r.runs == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return CLI_EXIT_OTHER;
	}
	code = host(&r);
	if (code == CLI_EXIT_OK)
		code = run_steps(&r);
	fflush(stdout);
	for (size_t i = 0; i < f->nsteps; i++) {
		af_stream_close(&r.runs[i].stream);
		af_doc_destroy(&r.runs[i].result);
	}
	free(r.runs);
	af_client_destroy(&r.client);
	af_system_destroy(&r.sys);
	return code;
}

/* ---- the commands ------------------------------------------------------ */

typedef struct options {
	const char *file;
	const char *to;
	bool as_completed;
	int64_t timeout_ms;
} options;

/* -1: go on; otherwise the exit code. */
static int parse_options(const char *prog, const char *help, bool gather,
			 int argc, char **argv, options *o)
{
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			fputs(help, stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(s, "--timeout") == 0 ||
			   strncmp(s, "--timeout=", 10) == 0) {
			const char *val = s[9] == '='    ? s + 10
					  : i + 1 < argc ? argv[++i]
							 : NULL;
			char *end;
			long long ms;
			if (val == NULL)
				goto missing;
			ms = strtoll(val, &end, 10);
			if (*val == '\0' || *end != '\0' || ms <= 0 ||
			    ms > 86400000LL * 365) {
				fprintf(stderr,
					"actorflow %s: --timeout '%s' is not "
					"a number of milliseconds above 0\n",
					prog, val);
				return CLI_EXIT_USAGE;
			}
			o->timeout_ms = ms;
		} else if (gather && (strcmp(s, "--to") == 0 ||
				      strncmp(s, "--to=", 5) == 0)) {
			o->to = s[4] == '='    ? s + 5
				: i + 1 < argc ? argv[++i]
					       : NULL;
			if (o->to == NULL)
				goto missing;
		} else if (gather && strcmp(s, "--as-completed") == 0) {
			o->as_completed = true;
		} else if (strncmp(s, "--", 2) == 0 || o->file != NULL) {
			fprintf(stderr,
				"actorflow %s: unexpected '%s' (see actorflow "
				"%s --help)\n",
				prog, s, prog);
			return CLI_EXIT_USAGE;
		} else {
			o->file = s;
		}
	}
	if (o->file == NULL) {
		fprintf(stderr,
			"actorflow %s: a FILE is required (see actorflow %s "
			"--help)\n",
			prog, prog);
		return CLI_EXIT_USAGE;
	}
	return -1;
missing:
	fprintf(stderr, "actorflow %s: '%s' needs a value\n", prog,
		argv[argc - 1]);
	return CLI_EXIT_USAGE;
}

static int load_failed(const char *prog, af_err rc, const char *err)
{
	fprintf(stderr, "actorflow %s: %s\n", prog, err);
	return rc == AF_ENOMEM ? CLI_EXIT_OTHER : CLI_EXIT_USAGE;
}

/* actorflow run and actorflow gather: the same but for how the file is
 * read and what is printed. */
static int run_main(const char *prog, const char *help, bool gather, int argc,
		    char **argv)
{
	options o = {0};
	cli_flow f;
	char err[1024];
	char title[32];
	int code = parse_options(prog, help, gather, argc, argv, &o);
	af_err rc;

	if (code >= 0)
		return code;
	signal(SIGPIPE, SIG_IGN);
	if (gather)
		rc = cli_flow_load_gather(&f, o.file, o.to, err, sizeof(err));
	else
		rc = cli_flow_load(&f, o.file, err, sizeof(err));
	if (rc != AF_OK) {
		code = load_failed(prog, rc, err);
	} else {
		if (o.as_completed)
			f.steps[0].as_completed = true;
		snprintf(title, sizeof(title), "actorflow %s", prog);
		code = run_flow(title, &f, o.timeout_ms, !gather);
	}
	cli_flow_free(&f);
	return code;
}

int cli_run_main(int argc, char **argv)
{
	return run_main("run", run_help, false, argc, argv);
}

int cli_gather_main(int argc, char **argv)
{
	return run_main("gather", gather_help, true, argc, argv);
}
