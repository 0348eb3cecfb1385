/*
 * CURVE in a node config: the keys of the endpoints the node binds, and
 * of the connections its actors make to other nodes.
 *
 *   "curve": {"secret_key_file": "keys/node1.key_secret",
 *             "allowed_keys_dir": "keys/clients",   (every NAME.key in it)
 *             "allowed_keys": ["keys/query.key"]},  (and/or these files)
 *   "remotes": [{"endpoint": "tcp://10.0.0.2:5555", (omitted: every
 *                                                  remote endpoint)
 *                "curve_key": "keys/node1.key_secret", (own keypair)
 *                "server_key": "keys/node2.key"}]   (the remote's public)
 *
 * "curve" applies to every endpoint the node binds ("endpoint" and each
 * actor's "export"). Key files are read, and a secret file open to group
 * or others refused, when the config is read.
 */
#ifndef AF_CLI_CURVE_CONFIG_H
#define AF_CLI_CURVE_CONFIG_H

#include <stddef.h>

#include <actorflow/actorflow.h>

#include "json_file.h"

typedef char cli_key[AF_CURVE_KEY_LEN + 1];

typedef struct cli_curve_remote {
	const char *endpoint; /* into the config's tree; NULL: every one */
	cli_key server;
	cli_key secret;
} cli_curve_remote;

typedef struct cli_curve_config {
	/* The endpoints' keys: has_server when "curve" was given. */
	int has_server;
	cli_key secret;
	cli_key *allowed;
	const char **allowed_ptrs;
	size_t nallowed;
	af_export_opts export_opts; /* points into the above */
	cli_curve_remote *remotes;
	size_t nremotes;
} cli_curve_config;

/* Reads "curve" and "remotes" of the object root into *out (NULL when
 * neither is there). AF_OK; AF_EINVAL with the message in f's err;
 * AF_ENOMEM. Free with cli_curve_config_free in every case. */
af_err cli_curve_config_read(cli_json_file *f, const cJSON *root,
			     cli_curve_config **out);

/* The options to export with: NULL for plain endpoints. */
const af_export_opts *cli_curve_export_opts(const cli_curve_config *c);

/* Gives sys the remotes' keys. AF_OK or the af_system_set_curve error. */
af_err cli_curve_apply_remotes(const cli_curve_config *c, af_system *sys);

/* Wipes the keys and frees. Accepts NULL. */
void cli_curve_config_free(cli_curve_config *c);

#endif
