/*
 * CURVE keys: checking them, setting them on sockets, the keys a system's
 * outgoing connections use, and exports with CURVE. The ZAP handler that
 * admits clients is in zap.c.
 */
#include "curve.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctx.h"
#include "system.h"

void af__curve_wipe(void *p, size_t n)
{
	/* Through a volatile pointer, so the compiler cannot drop the stores
	 * to memory about to be freed or to go out of scope. */
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

bool af_curve_available(void)
{
	return zmq_has("curve") != 0;
}

static bool key_decode(const char *key, uint8_t out[32])
{
	return key != NULL && strlen(key) == AF_CURVE_KEY_LEN &&
	       zmq_z85_decode(out, key) != NULL;
}

bool af_curve_key_valid(const char *key)
{
	uint8_t bin[32];
	bool ok = key_decode(key, bin);

	af__curve_wipe(bin, sizeof(bin));
	return ok;
}

af_err af_curve_keypair(char public_key[AF_CURVE_KEY_LEN + 1],
			char secret_key[AF_CURVE_KEY_LEN + 1])
{
	if (public_key == NULL || secret_key == NULL)
		return AF_EINVAL;
	if (!af_curve_available())
		return AF_ENOTSUP;
	return zmq_curve_keypair(public_key, secret_key) == 0 ? AF_OK : AF_ESYS;
}

af_err af_curve_public(const char *secret_key,
		       char public_key[AF_CURVE_KEY_LEN + 1])
{
	if (public_key == NULL || !af_curve_key_valid(secret_key))
		return AF_EINVAL;
	if (!af_curve_available())
		return AF_ENOTSUP;
	return zmq_curve_public(public_key, secret_key) == 0 ? AF_OK : AF_ESYS;
}

af_err af__curve_client_set(af__curve_client *out, const af_curve_keys *keys)
{
	af_err err;

	if (keys == NULL || !af_curve_key_valid(keys->server_key) ||
	    !af_curve_key_valid(keys->secret_key) ||
	    (keys->public_key != NULL && !af_curve_key_valid(keys->public_key)))
		return AF_EINVAL;
	err = af_curve_public(keys->secret_key, out->pub);
	if (err != AF_OK)
		return err;
	/* A public key given with its secret key must be its own: a
	 * mismatch would only show as refused handshakes later. */
	if (keys->public_key != NULL && strcmp(keys->public_key, out->pub) != 0)
		return AF_EINVAL;
	memcpy(out->server, keys->server_key, AF_CURVE_KEY_LEN + 1);
	memcpy(out->secret, keys->secret_key, AF_CURVE_KEY_LEN + 1);
	return AF_OK;
}

/* ---- sockets ----------------------------------------------------------- */

af_err af__curve_bind_on(void *sock, const af__curve_bind *b)
{
	int one = 1;

	/* Keys are passed with their NUL: 41 bytes is Z85 to ZeroMQ. */
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->secret,
			   AF_CURVE_KEY_LEN + 1) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, b->domain,
			   strlen(b->domain)) != 0)
		return AF_ESYS;
	return AF_OK;
}

void af__curve_bind_off(void *sock)
{
	uint8_t zero_key[32] = {0};
	int zero = 0;

	/* Setting a key selects CURVE again, so the mechanism goes back to
	 * NULL last. */
	zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zero_key, sizeof(zero_key));
	zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &zero, sizeof(zero));
	zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "", 0);
}

af_err af__curve_connect(af_ctx *ctx, void *sock, const char *endpoint,
			 bool *curve)
{
	af__curve_client k;
	bool found = false;
	af_err err = AF_OK;

	*curve = false;
	if (ctx->curve != NULL) {
		k = *ctx->curve;
		found = true;
	} else if (ctx->sys != NULL) {
		af_system *sys = ctx->sys;
		const af__curve_route *r;
		const af__curve_route *fallback = NULL;
		pthread_mutex_lock(&sys->mu);
		for (r = sys->curve_routes; r != NULL; r = r->next) {
			if (r->endpoint == NULL)
				fallback = r;
			else if (strcmp(r->endpoint, endpoint) == 0)
				break;
		}
		if (r == NULL)
			r = fallback;
		if (r != NULL) {
			k = r->keys;
			found = true;
		}
		pthread_mutex_unlock(&sys->mu);
	}
	if (!found)
		return AF_OK;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k.server,
			   AF_CURVE_KEY_LEN + 1) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k.pub,
			   AF_CURVE_KEY_LEN + 1) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k.secret,
			   AF_CURVE_KEY_LEN + 1) != 0)
		err = AF_ESYS;
	else
		*curve = true;
	af__curve_wipe(&k, sizeof(k));
	return err;
}

/* ---- a system's outgoing keys ------------------------------------------ */

static void route_free(af__curve_route *r)
{
	af__curve_wipe(&r->keys, sizeof(r->keys));
	free(r->endpoint);
	free(r);
}

af_err af_system_set_curve(af_system *sys, const char *endpoint,
			   const af_curve_keys *keys)
{
	af__curve_route *r = NULL;
	af__curve_route *old = NULL;
	af_err err;

	if (sys == NULL)
		return AF_EINVAL;
	if (keys != NULL) {
		if (!af_curve_available())
			return AF_ENOTSUP;
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return AF_ENOMEM;
		err = af__curve_client_set(&r->keys, keys);
		if (err == AF_OK && endpoint != NULL &&
		    (r->endpoint = strdup(endpoint)) == NULL)
			err = AF_ENOMEM;
		if (err != AF_OK) {
			route_free(r);
			return err;
		}
	}
	pthread_mutex_lock(&sys->mu);
	for (af__curve_route **pp = &sys->curve_routes; *pp != NULL;
	     pp = &(*pp)->next) {
		af__curve_route *e = *pp;
		if ((e->endpoint == NULL && endpoint == NULL) ||
		    (e->endpoint != NULL && endpoint != NULL &&
		     strcmp(e->endpoint, endpoint) == 0)) {
			*pp = e->next;
			old = e;
			break;
		}
	}
	if (r != NULL) {
		r->next = sys->curve_routes;
		sys->curve_routes = r;
	}
	pthread_mutex_unlock(&sys->mu);
	if (old != NULL)
		route_free(old);
	return AF_OK;
}

void af__curve_routes_free(af_system *sys)
{
	while (sys->curve_routes != NULL) {
		af__curve_route *r = sys->curve_routes;
		sys->curve_routes = r->next;
		route_free(r);
	}
}

/* ---- exports ----------------------------------------------------------- */

/* Checks opts' keys and registers the endpoint's allowed clients with the
 * system's ZAP handler. */
static af_err prepare_bind(af_system *sys, const af_export_opts *opts,
			   af__curve_bind *b)
{
	size_t n = opts->curve_nallowed;
	uint8_t(*keys)[32];
	af_err err = AF_OK;

	if (!af_curve_available())
		return AF_ENOTSUP;
	if (!af_curve_key_valid(opts->curve_secret_key) || n == 0 ||
	    opts->curve_allowed_keys == NULL)
		return AF_EINVAL;
	keys = malloc(n * sizeof(*keys));
	if (keys == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < n && err == AF_OK; i++)
		if (!key_decode(opts->curve_allowed_keys[i], keys[i]))
			err = AF_EINVAL;
	if (err == AF_OK)
		err = af__zap_add_domain(sys, (const uint8_t(*)[32])keys, n,
					 b->domain, sizeof(b->domain));
	free(keys);
	if (err == AF_OK)
		memcpy(b->secret, opts->curve_secret_key, AF_CURVE_KEY_LEN + 1);
	return err;
}

af_err af_export_with(af_system *sys, const char *name, const char *endpoint,
		      const af_export_opts *opts)
{
	af__curve_bind b;
	af_err err;

	if (opts == NULL || opts->curve_secret_key == NULL)
		return af_export(sys, name, endpoint);
	if (sys == NULL || name == NULL || endpoint == NULL)
		return AF_EINVAL;
	err = prepare_bind(sys, opts, &b);
	if (err == AF_OK)
		err = af__export(sys, name, endpoint, &b);
	af__curve_wipe(&b, sizeof(b));
	return err;
}

af_err af_system_export_with(af_system *sys, const char *endpoint,
			     const af_export_opts *opts)
{
	af__curve_bind b;
	af_err err;

	if (opts == NULL || opts->curve_secret_key == NULL)
		return af_system_export(sys, endpoint);
	if (sys == NULL || endpoint == NULL)
		return AF_EINVAL;
	err = prepare_bind(sys, opts, &b);
	if (err == AF_OK)
		err = af__system_export(sys, endpoint, &b);
	af__curve_wipe(&b, sizeof(b));
	return err;
}
