/*
 * Two actors exchanging requests: "pinger" asks "ponger" ten times, each
 * time with the next number, and reports the total to main() when done.
 * The C shape of
 *
 *     async def pinger(): return sum([await ponger(i) for i in range(10)])
 *     asyncio.run(pinger())
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>

/* ponger: answers {"n": x} with {"n": x * 2}. */
static af_err ponger_handle(af_ctx *ctx, void *state, af_msg *m)
{
	int64_t n = af_value_get_int(af_msg_payload(m), "n", 0);
	af_payload *p;
	af_err err;

	if ((err = af_payload_new(&p)) != AF_OK)
		return err;
	af_pack_map(p, 1);
	af_pack_str(p, "n");
	af_pack_int(p, n * 2);
	err = af_reply(ctx, m, p);
	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops ponger_ops = {
	.type_name = "ponger",
	.handle = ponger_handle,
};

/* pinger: on "run", sends ten requests one after another without ever
 * blocking its loop, then answers "run" with the sum of the replies. */
typedef struct pinger {
	af_pending *run;
	int64_t next;
	int64_t sum;
} pinger;

static void send_next(af_ctx *ctx, pinger *pg);

static void on_pong(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	pinger *pg = arg;

	if (status != AF_OK) {
		af_pending_error(ctx, &pg->run, status, "ponger failed: %s",
				 af_strerror(status));
		return;
	}
	pg->sum += af_value_get_int(af_msg_payload(reply), "n", 0);
	send_next(ctx, pg);
}

static void send_next(af_ctx *ctx, pinger *pg)
{
	af_payload *p;
	af_err err;

	if (pg->next == 10) {
		if (af_payload_new(&p) == AF_OK) {
			af_pack_map(p, 1);
			af_pack_str(p, "sum");
			af_pack_int(p, pg->sum);
			af_pending_reply(ctx, &pg->run, p);
			af_payload_destroy(&p);
		}
		return;
	}
	if ((err = af_payload_new(&p)) == AF_OK) {
		af_pack_map(p, 1);
		af_pack_str(p, "n");
		af_pack_int(p, pg->next++);
		err = af_request(ctx, "ponger", "ping", p, 1000, on_pong, pg,
				 NULL);
		af_payload_destroy(&p);
	}
	if (err != AF_OK)
		af_pending_error(ctx, &pg->run, err, NULL);
}

static af_err pinger_init(af_ctx *ctx, const void *config, void **state)
{
	*state = calloc(1, sizeof(pinger));
	return *state != NULL ? AF_OK : AF_ENOMEM;
}

static af_err pinger_handle(af_ctx *ctx, void *state, af_msg *m)
{
	pinger *pg = state;
	af_err err = af_defer(ctx, m, &pg->run);

	if (err == AF_OK)
		send_next(ctx, pg);
	return err;
}

static void pinger_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops pinger_ops = {
	.type_name = "pinger",
	.init = pinger_init,
	.handle = pinger_handle,
	.stop = pinger_stop,
};

int main(void)
{
	af_system *sys = NULL;
	af_client *client = NULL;
	af_msg *reply = NULL;
	af_err err;

	if ((err = af_system_new(&sys, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "ponger", &ponger_ops, NULL, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "pinger", &pinger_ops, NULL, NULL)) != AF_OK ||
	    (err = af_client_new(&client, sys)) != AF_OK)
		goto out;
	err = af_client_request(client, "pinger", "run", NULL, 5000, &reply);
	if (err == AF_OK)
		printf("pinger: sum of ten pongs = %lld\n",
		       (long long)af_value_get_int(af_msg_payload(reply), "sum",
						   -1));
	af_msg_destroy(&reply);
out:
	if (err != AF_OK)
		fprintf(stderr, "ping_pong: %s\n", af_strerror(err));
	af_client_destroy(&client);
	af_system_destroy(&sys);
	return err == AF_OK ? 0 : 1;
}
