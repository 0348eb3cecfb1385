/*
 * CURVE inside the runtime: the keys an endpoint binds with, the keys an
 * outgoing connection uses, and the ZAP handler (zap.c) that admits the
 * clients an endpoint allows.
 */
#ifndef AF_RUNTIME_CURVE_H
#define AF_RUNTIME_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actorflow/curve.h"

/* What an exported endpoint binds with: its secret key and the ZAP domain
 * that names its allowed clients. */
typedef struct af__curve_bind {
	char secret[AF_CURVE_KEY_LEN + 1];
	char domain[32];
} af__curve_bind;

/* A client side's keys, all Z85 and NUL-terminated. */
typedef struct af__curve_client {
	char server[AF_CURVE_KEY_LEN + 1];
	char pub[AF_CURVE_KEY_LEN + 1];
	char secret[AF_CURVE_KEY_LEN + 1];
} af__curve_client;

/* The keys af_system_set_curve set for one endpoint (NULL: the default). */
typedef struct af__curve_route {
	struct af__curve_route *next;
	char *endpoint;
	af__curve_client keys;
} af__curve_route;

/* Copies and checks keys into out. AF_OK or AF_EINVAL. */
af_err af__curve_client_set(af__curve_client *out, const af_curve_keys *keys);

/* Sets the CURVE options of a server socket for the next bind, and clears
 * them after it (ZeroMQ copies a socket's options at each bind, so other
 * endpoints of the socket stay plain). On the socket's thread. */
af_err af__curve_bind_on(void *sock, const af__curve_bind *b);
void af__curve_bind_off(void *sock);

/* Sets CURVE on an outgoing socket before its connect to endpoint (the
 * address's part before '#'): ctx's own keys (a client's), else the
 * system's for that endpoint, else its default. *curve says whether any
 * applied. AF_OK or AF_ESYS. */
af_err af__curve_connect(af_ctx *ctx, void *sock, const char *endpoint,
			 bool *curve);

/* Frees the system's outgoing keys (af_system_destroy). */
void af__curve_routes_free(af_system *sys);

/* Overwrites n bytes of secret material. */
void af__curve_wipe(void *p, size_t n);

/* ---- the ZAP handler (zap.c) ------------------------------------------- */

/* Registers a new ZAP domain admitting the n client public keys (32 bytes
 * each) and writes its name to domain; starts the system's ZAP handler on
 * first use. AF_OK, AF_ENOMEM, AF_EEXIST (another handler is bound in the
 * context), AF_ESYS. Any thread. */
af_err af__zap_add_domain(af_system *sys, const uint8_t (*keys)[32], size_t n,
			  char *domain, size_t cap);

/* Stops the system's ZAP handler, if it runs, and frees its domains. Called
 * by af_system_destroy after every actor stopped, before the ZeroMQ context
 * is terminated. */
void af__zap_stop(af_system *sys);

#endif
