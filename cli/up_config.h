/*
 * The file of `actorflow up`: the nodes a supervisor starts, each from a
 * node config (a file, or the config inline), and how it restarts them.
 *
 *   {"name": "rag",                         (optional, shown in the log)
 *    "restart": {                           (optional: every node's default)
 *      "policy": "on-failure",              ("on-failure": after a signal or
 *                                           a non-zero status; "always":
 *                                           also after status 0; "never")
 *      "backoff_ms": 100,                   (first delay, doubling...)
 *      "backoff_max_ms": 10000,             (...up to this)
 *      "max_restarts": 5,                   (at most this many restarts...)
 *      "window_ms": 60000,                  (...within this long)
 *      "on_limit": "give_up"},              (past it: "give_up" on the node,
 *                                           or "stop" every node)
 *    "nodes": [
 *      {"name": "retrieval",
 *       "config": "retrieval.json",         (a path, relative to this
 *                                           file's folder, or an object:
 *                                           the node config inline)
 *       "restart": {"max_restarts": 3}}]}   (overrides the default's keys)
 *
 * Unknown keys are errors, and so is a node config that is wrong: every
 * node's config is read and checked before any node starts, and messages
 * name the file, the line and the key, as the node's own do.
 */
#ifndef AF_CLI_UP_CONFIG_H
#define AF_CLI_UP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <actorflow/err.h>

#include "json_file.h"

typedef enum cli_up_policy {
	CLI_UP_ON_FAILURE,
	CLI_UP_ALWAYS,
	CLI_UP_NEVER
} cli_up_policy;

typedef struct cli_up_restart {
	cli_up_policy policy;
	int64_t backoff_ms;
	int64_t backoff_max_ms;
	int max_restarts;
	int64_t window_ms;
	bool stop_all_on_limit; /* "on_limit": "stop" */
} cli_up_restart;

typedef struct cli_up_node {
	const char *name;
	/* The file the node is started on: config_path, or for an inline
	 * config, a file the supervisor writes inline_text to. */
	char *config_path; /* NULL for an inline config */
	char *inline_text; /* the config's text as the up file has it */
	int64_t grace_ms;  /* the node config's, for the stop */
	cli_up_restart restart;
} cli_up_node;

typedef struct cli_up_config {
	cli_json_file file; /* the parsed file: names point into it */
	const char *name;
	cli_up_node *nodes;
	size_t nnodes;
} cli_up_config;

/* Reads and checks the file at path (at most 16 MiB) and every node
 * config it names. AF_OK; otherwise a one-line message in err ("up.json:7:
 * nodes[1].restart: unknown key \"backof_ms\"") and AF_EINVAL (a file is
 * wrong), AF_ESYS (cannot be read) or AF_ENOMEM. cli_up_config_free frees
 * it in every case. */
af_err cli_up_config_load(cli_up_config *c, const char *path, char *err,
			  size_t err_cap);

/* The same from text; path names it in messages and is the base of the
 * relative paths of node configs. */
af_err cli_up_config_parse(cli_up_config *c, const char *text, const char *path,
			   char *err, size_t err_cap);

void cli_up_config_free(cli_up_config *c);

#endif
