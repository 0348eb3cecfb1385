/*
 * actorflow: CURVE authentication and encryption for ipc:// and tcp://
 * endpoints (ZeroMQ's CurveZMQ: Curve25519 keys, every message encrypted).
 *
 * A server endpoint holds a secret key and a set of allowed client public
 * keys: a connection is accepted only from a client holding one of those
 * keys and knowing the server's public key; every other connection fails
 * its handshake and nothing it sent reaches an actor. A client (an af_client
 * or an actor's outgoing connection) holds its own keypair and the server's
 * public key.
 *
 * Keys are 40-character Z85 strings (ZeroMQ's text form of a 32-byte key).
 * The runtime copies them, never logs them, and clears its copies of secret
 * keys when it is done with them.
 *
 * What a refused client sees: each of its requests outstanding on that
 * connection ends with AF_EAUTH as soon as the handshake fails (a wrong or
 * missing client key, a wrong server key, or no CURVE at all against a CURVE
 * endpoint), well before its deadline, and the connection is dropped.
 * A later request makes a new connection, refused the same way; on a
 * heavily loaded host (seen under valgrind) that second refusal is
 * sometimes not reported and the request ends with AF_ETIMEDOUT at its
 * deadline instead. A refused request never reaches an actor. A tell is
 * accepted locally (queued for the connection) and never delivered.
 *
 * Key files, as the actorflow command reads and writes them (`actorflow
 * keygen NAME`):
 *   NAME.key         the public key: lines starting with '#' and empty lines
 *                    are ignored; the first other line is the 40-character
 *                    Z85 key. Safe to share.
 *   NAME.key_secret  the secret key, same format. Must not be readable by
 *                    group or others (mode 0600 or stricter): a file that is
 *                    is refused. The public key is derived from it.
 */
#ifndef ACTORFLOW_CURVE_H
#define ACTORFLOW_CURVE_H

#include <stddef.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Characters of a Z85 key, without the terminating NUL. */
#define AF_CURVE_KEY_LEN 40

/* True when CURVE can be used: libzmq was built with it. Any thread. */
bool af_curve_available(void);

/* Makes a new keypair: public_key and secret_key receive 40 Z85 characters
 * and a NUL. AF_OK, AF_ENOTSUP (no CURVE in libzmq), AF_EINVAL (NULL), or
 * AF_ESYS. Any thread. */
af_err af_curve_keypair(char public_key[AF_CURVE_KEY_LEN + 1],
			char secret_key[AF_CURVE_KEY_LEN + 1]);

/* Derives the public key of secret_key (Z85) into public_key (40 Z85
 * characters and a NUL). AF_OK, AF_EINVAL (not a Z85 key), AF_ENOTSUP. Any
 * thread. */
af_err af_curve_public(const char *secret_key,
		       char public_key[AF_CURVE_KEY_LEN + 1]);

/* True when key is a 40-character Z85 key. */
bool af_curve_key_valid(const char *key);

/* ---- servers ----------------------------------------------------------- */

typedef struct af_export_opts {
	/* The endpoint's CURVE secret key (Z85). NULL: no CURVE, the endpoint
	 * takes plaintext connections from anyone who can reach it (as
	 * af_export). */
	const char *curve_secret_key;
	/* The public keys (Z85) of the clients allowed to connect, nallowed
	 * of them (at least one with a secret key). Copied. */
	const char *const *curve_allowed_keys;
	size_t curve_nallowed;
} af_export_opts;

/* af_export with options: with opts->curve_secret_key, the endpoint speaks
 * CURVE and accepts only the allowed clients (checked by a ZAP handler the
 * system starts on its first CURVE export and stops in af_system_destroy).
 * Other endpoints of the same actor are not affected. opts may be NULL.
 * AF_OK, AF_EINVAL (a key is not Z85, or no allowed key), AF_ENOTSUP (no
 * CURVE in libzmq), AF_EEXIST (another ZAP handler runs in the system's
 * ZeroMQ context), and the errors of af_export. Any thread. */
af_err af_export_with(af_system *sys, const char *name, const char *endpoint,
		      const af_export_opts *opts);

/* af_system_export with options, as af_export_with. */
af_err af_system_export_with(af_system *sys, const char *endpoint,
			     const af_export_opts *opts);

/* ---- clients ----------------------------------------------------------- */

typedef struct af_curve_keys {
	/* The public key of the server connected to (Z85). */
	const char *server_key;
	/* This side's secret key (Z85). */
	const char *secret_key;
	/* This side's public key (Z85); NULL: derived from secret_key. */
	const char *public_key;
} af_curve_keys;

/* Makes the connections that sys's actors and clients open from now on to
 * endpoint use CURVE with keys (copied). endpoint is an address's part
 * before '#', exactly as written in addresses ("tcp://10.0.0.2:5555");
 * NULL sets the keys for every remote endpoint that has none of its own.
 * keys NULL removes the entry. Connections already open keep what they
 * have. A client created with af_client_opts.curve uses those keys
 * instead. AF_OK, AF_EINVAL (a key is not Z85), AF_ENOMEM, AF_ENOTSUP. Any
 * thread. */
af_err af_system_set_curve(af_system *sys, const char *endpoint,
			   const af_curve_keys *keys);

#ifdef __cplusplus
}
#endif
#endif
