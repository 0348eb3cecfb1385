/*
 * The configuration file of `actorflow node`: JSON read with cJSON into
 * the config structs of the built-in actors.
 *
 *   {"name": "node1",                      (optional, shown in messages)
 *    "endpoint": "ipc:///run/af/node1.sock", (optional: the whole system,
 *                                          ENDPOINT#name reaches each actor)
 *    "ipc_dir": "/run/af",                 (optional: base of relative ipc
 *                                          paths, created 0700)
 *    "allow_public": false,                (tcp beyond loopback, see below)
 *    "grace_ms": 5000,                     (in-flight work on SIGTERM)
 *    "max_message_size": 16777216,
 *    "curve": {...}, "remotes": [...],     (optional: CURVE, see
 *                                          curve_config.h)
 *    "actors": [{"type": "chat" | "retrieval" | "query" | "gather" |
 *                        "offload",
 *                "name": "chat",           (default: the type)
 *                "config": {...},          (the fields of af_<type>_config,
 *                                          same names)
 *                "export": "ipc://...",    (optional, this actor alone)
 *                "mailbox_capacity": 1000}]}
 *
 * Unknown keys are errors, so a typo never passes silently. Endpoints are
 * normalised: "ipc://x.sock" (relative) goes into ipc_dir; "tcp://:5555"
 * binds 127.0.0.1, and a loopback host in any spelling (127.1, localhost,
 * [::1]) its plain address. Any other tcp host is refused unless the node
 * speaks CURVE (an address or interface of its own) or allow_public (every
 * interface too: *, 0.0.0.0, :: in any spelling).
 */
#ifndef AF_CLI_NODE_CONFIG_H
#define AF_CLI_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <actorflow/actorflow.h>

#include "json_file.h"

/* Which tcp hosts an endpoint may be bound to. */
typedef enum cli_bind_scope {
	CLI_BIND_LOOPBACK, /* loopback only (127.0.0.0/8, ::1, localhost) */
	CLI_BIND_CURVE,    /* also one address or interface: CURVE admits
			      only allowed clients */
	CLI_BIND_PUBLIC    /* anything, every interface too ("allow_public") */
} cli_bind_scope;

typedef struct cli_actor_spec {
	const char *type;
	const char *name;
	char *export_endpoint; /* normalised; NULL: not exported alone */
	int mailbox_capacity;
	const af_actor_ops *ops;
	const void *config; /* points into cfg, or NULL for defaults */
	union {
		af_chat_config chat;
		af_retrieval_config retrieval;
		af_query_config query;
		af_gather_config gather;
		af_offload_config offload;
	} cfg;
} cli_actor_spec;

typedef struct cli_node_config {
	/* The parsed file: the strings of the specs point into it. */
	cli_json_file file;
	const char *name;
	char *endpoint; /* normalised; NULL: the system is not exported */
	char *ipc_dir;  /* NULL: none given */
	bool allow_public;
	int64_t grace_ms;
	size_t max_message_size;
	cli_actor_spec *actors;
	size_t nactors;
	/* "curve" and "remotes" (curve_config.h); NULL: neither given. */
	struct cli_curve_config *curve;
} cli_node_config;

/* Reads and checks the file at path. AF_OK; otherwise a one-line message
 * in err ("node.json:7: actors[0].config: unknown key \"chunk_sise\"")
 * and AF_EINVAL (the file is wrong), AF_ESYS (cannot be read) or
 * AF_ENOMEM. cli_node_config_free frees it in every case. */
af_err cli_node_config_load(cli_node_config *c, const char *path, char *err,
			    size_t err_cap);

/* Reads and checks config text; path is only named in messages. */
af_err cli_node_config_parse(cli_node_config *c, const char *text,
			     const char *path, char *err, size_t err_cap);

void cli_node_config_free(cli_node_config *c);

/* Reads an "actors" array (the same entries in a node config and a flow)
 * into *out, *n specs, whose strings point into f's tree. ipc_dir (may be
 * NULL) is the base of relative ipc:// exports; scope says which tcp hosts
 * an export may bind (see above). An offload actor gets the built-in functions
 * of functions.h. AF_OK; AF_EINVAL with the message in f's err; AF_ENOMEM. Free
 * *out with cli_actor_specs_free in every case. */
af_err cli_actor_specs_read(cli_json_file *f, const cJSON *actors,
			    const char *ipc_dir, cli_bind_scope scope,
			    cli_actor_spec **out, size_t *n);

void cli_actor_specs_free(cli_actor_spec *specs, size_t n);

/* Spawns the actor s describes in sys. AF_OK; otherwise af_spawn's code,
 * and in err the line to print: "actor 'chat' (chat) did not start:
 * AF_EINVAL: chat: unknown provider ...". */
af_err cli_actor_spawn(af_system *sys, const cli_actor_spec *s, char *err,
		       size_t err_cap);

/* The port of a tcp:// endpoint from the len bytes of text after its last
 * ':': digits making a number from 1 to 65535, or -1. */
long cli_tcp_port(const char *text, size_t len);

#endif
