/* A program of a user of actorflow: built against an installed copy by
 * scripts/check_install.sh, through find_package and through pkg-config. */
#include <actorflow/actorflow.h>
#include <stdio.h>

static af_err greet(af_ctx *ctx, void *state, af_msg *m)
{
	af_payload *p;
	af_payload_new(&p);
	af_pack_str(p, "hello from an actor");
	af_err err = af_reply(ctx, m, p); /* the payload is copied */
	af_payload_destroy(&p);
	return err;
}

static const af_actor_ops greeter = {.type_name = "greeter", .handle = greet};

int main(void)
{
	af_system *sys;
	af_client *c;
	af_msg *reply;
	const char *s;
	size_t n;
	af_system_new(&sys, NULL);
	af_spawn(sys, "greeter", &greeter, NULL, NULL); /* returns after init */
	af_client_new(&c, sys);
	if (af_client_request(c, "greeter", "hi", NULL, 1000, &reply) ==
		    AF_OK &&
	    af_value_str(af_msg_payload(reply), &s, &n) == AF_OK)
		printf("%.*s\n", (int)n, s);
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_system_destroy(&sys); /* stops and joins every actor */
}
