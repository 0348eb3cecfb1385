/*
 * A flow file, as `actorflow run` reads it (README.md, "Scripted flows"):
 *
 *   {"description": "...",  "python": "...",   (text for the reader)
 *    "actors": [...],       (optional: hosted in this process for the flow,
 *                           the entries of a node config's "actors")
 *    "steps": [{"name": "retrieve",           ([A-Za-z0-9_-], unique)
 *               "do": "ask" | "stream" | "tell" | "gather",
 *               "to": ADDR,                   (an actor of "actors" by
 *                                             name, or ipc://...#name,
 *                                             tcp://...#name; a gather
 *                                             defaults to "gather")
 *               "type": "retrieve",           (not for gather)
 *               "payload": JSON,              (not for gather)
 *               "items": [...], "concurrency": n, "item_timeout_ms": n,
 *               "mode": "collect" | "fail_fast", "as_completed": bool,
 *                                             (gather only, gather.h)
 *               "print": true | false | "template ${steps...}",
 *               "timeout_ms": n,              (default: --timeout)
 *               "background": bool,           (go on at once; awaited
 *                                             when referred to, or at the
 *                                             end)
 *               "continue_on_error": bool}]}
 *
 * The flow is read whole, and its references checked (ref.h), before any
 * actor starts: a bad file fails with "file:line: steps[i] (name): ...".
 */
#ifndef AF_CLI_FLOW_H
#define AF_CLI_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <actorflow/actorflow.h>

#include "json_file.h"
#include "node_config.h"

typedef enum cli_step_kind {
	CLI_STEP_ASK,
	CLI_STEP_STREAM,
	CLI_STEP_TELL,
	CLI_STEP_GATHER
} cli_step_kind;

typedef struct cli_step {
	const char *name;
	cli_step_kind kind;
	const char *to;
	const char *type;        /* "gather" for a gather */
	const af_value *payload; /* the template; NULL: nil */
	const af_value *items;   /* a gather's items */
	const af_value *options; /* a map holding a gather's options */
	bool as_completed;       /* a gather streams its results */
	bool print;              /* false: print nothing */
	const char *print_tmpl;  /* NULL: the step's usual output */
	bool background;
	bool continue_on_error;
	int64_t timeout_ms; /* 0: the command's --timeout */
	size_t line;        /* of the step in the file */
} cli_step;

typedef struct cli_flow {
	cli_json_file file;
	af_doc *doc; /* the file as msgpack: payload templates point into it */
	char *dir;   /* the file's folder, absolute */
	cli_actor_spec *actors;
	size_t nactors;
	bool host_gather; /* a gather step needs a "gather" actor of its own */
	cli_step *steps;
	size_t nsteps;
} cli_flow;

/* Reads and checks the flow file at path. AF_OK; otherwise a one-line
 * message in err and AF_EINVAL, AF_ESYS or AF_ENOMEM. cli_flow_free frees
 * it in every case. */
af_err cli_flow_load(cli_flow *f, const char *path, char *err, size_t err_cap);

/* Reads a gather file, for `actorflow gather`: a JSON array of items, or
 * a map of a gather payload ("items" and options) that may also hold
 * "actors", "description" and "python". It becomes a flow of one gather
 * step named "gather" sent to to (NULL: a gather actor of its own). */
af_err cli_flow_load_gather(cli_flow *f, const char *path, const char *to,
			    char *err, size_t err_cap);

void cli_flow_free(cli_flow *f);

/* Names of a gather step's keys passed on in the gather payload. */
extern const char *const cli_gather_options[];

#endif
