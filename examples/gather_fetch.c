/*
 * Three slow fetches at once through the gather actor. The C shape of
 *
 *     async def fetch(url):
 *         await asyncio.sleep(2)          # simulated I/O
 *         return f"<contents of {url}>"
 *
 *     results = await asyncio.gather(fetch(a), fetch(b), fetch(c))
 *
 * "fetch" answers each request after 2 s with a timer, never blocking its
 * loop, so it holds all three at once; the gather actor sends the three,
 * and answers with their results in order once the last is in: about 2 s
 * in all, not 6. Offline and deterministic.
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FETCH_MS 2000

/* ---- fetch: simulated I/O ---------------------------------------------- */

typedef struct fetch_call {
	af_pending *req;
	char *url;
} fetch_call;

static void fetch_call_free(fetch_call *c)
{
	free(c->url);
	free(c);
}

/* The I/O "completes": answer {"url": url, "body": "<contents of url>"}. */
static void fetch_done(af_ctx *ctx, void *arg)
{
	fetch_call *c = arg;
	char body[512];
	af_payload *p = NULL;
	af_err err = af_payload_new(&p);

	if (err == AF_OK) {
		snprintf(body, sizeof(body), "<contents of %s>", c->url);
		af_pack_map(p, 2);
		af_pack_str(p, "url");
		af_pack_str(p, c->url);
		af_pack_str(p, "body");
		af_pack_str(p, body);
		err = af_pending_reply(ctx, &c->req, p);
	}
	if (err != AF_OK)
		af_pending_error(ctx, &c->req, err, NULL);
	af_payload_destroy(&p);
	fetch_call_free(c);
}

/* Keeps the request and starts its 2 s of "I/O". A fetch whose requester
 * gives up first is still answered when its timer fires; that answer goes
 * nowhere. */
static af_err fetch_handle(af_ctx *ctx, void *state, af_msg *m)
{
	fetch_call *c = calloc(1, sizeof(*c));
	af_err err;

	if (c == NULL)
		return AF_ENOMEM;
	c->url = af_value_strdup(af_value_get(af_msg_payload(m), "url"));
	if (c->url == NULL) {
		fetch_call_free(c);
		return af_reply_error(ctx, m, AF_EINVAL, "fetch: no \"url\"");
	}
	err = af_defer(ctx, m, &c->req);
	if (err != AF_OK)
		goto undo_call;
	err = af_timer_start(ctx, FETCH_MS, 0, fetch_done, c, NULL);
	if (err != AF_OK)
		goto undo_defer;
	return AF_OK;
undo_defer:
	af_pending_error(ctx, &c->req, err, NULL);
undo_call:
	fetch_call_free(c);
	return err;
}

static const af_actor_ops fetch_ops = {
	.type_name = "fetch",
	.handle = fetch_handle,
};

/* ---- main: the gather -------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* {"items": [{"to": "fetch", "type": "fetch", "payload": {"url": u}},
 * ...]} */
static af_err build_gather(af_payload *p, const char *const *urls, int n)
{
	af_pack_map(p, 1);
	af_pack_str(p, "items");
	af_pack_array(p, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		af_pack_map(p, 3);
		af_pack_str(p, "to");
		af_pack_str(p, "fetch");
		af_pack_str(p, "type");
		af_pack_str(p, "fetch");
		af_pack_str(p, "payload");
		af_pack_map(p, 1);
		af_pack_str(p, "url");
		af_pack_str(p, urls[i]);
	}
	return af_payload_status(p);
}

static void print_results(af_msg *reply)
{
	const af_value *results =
		af_value_get(af_msg_payload(reply), "results");

	for (size_t i = 0; i < af_value_len(results); i++) {
		const af_value *slot = af_value_at(results, i);
		const af_value *value = af_value_get(slot, "value");
		const char *s;
		size_t len;
		if (!af_value_get_bool(slot, "ok", false)) {
			char *msg = af_value_strdup(af_value_get(
				af_value_get(slot, "error"), "message"));
			printf("  [%zu] error: %s\n", i, msg ? msg : "?");
			free(msg);
		} else if (af_value_str(af_value_get(value, "body"), &s,
					&len) == AF_OK) {
			printf("  [%zu] %.*s\n", i, (int)len, s);
		}
	}
}

int main(void)
{
	static const char *const urls[] = {
		"https://example.com/a",
		"https://example.com/b",
		"https://example.com/c",
	};
	af_system *sys = NULL;
	af_client *client = NULL;
	af_payload *p = NULL;
	af_msg *reply = NULL;
	double start;
	af_err err;

	if ((err = af_system_new(&sys, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "fetch", &fetch_ops, NULL, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "gather", &af_gather_ops, NULL, NULL)) !=
		    AF_OK ||
	    (err = af_client_new(&client, sys)) != AF_OK ||
	    (err = af_payload_new(&p)) != AF_OK ||
	    (err = build_gather(p, urls, 3)) != AF_OK)
		goto out;
	printf("gathering fetch(a), fetch(b), fetch(c), %d ms each\n",
	       FETCH_MS);
	start = now_s();
	err = af_client_request(client, "gather", "gather", p, 10000, &reply);
	if (err == AF_OK) {
		print_results(reply);
		printf("elapsed: %.2f s (one after another: %.1f s)\n",
		       now_s() - start, 3 * FETCH_MS / 1000.0);
	}
out:
	if (err != AF_OK)
		fprintf(stderr, "gather_fetch: %s\n", af_strerror(err));
	af_msg_destroy(&reply);
	af_payload_destroy(&p);
	af_client_destroy(&client);
	af_system_destroy(&sys);
	return err == AF_OK ? 0 : 1;
}
