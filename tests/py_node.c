/*
 * The node the Python client's test talks to: a system with the chat
 * actor (extractive provider), the retrieval actor (in memory), the gather
 * and query actors, and an offload actor whose one function, "sleep",
 * sleeps {"ms": int} milliseconds (a request that is slow on purpose, for
 * timeouts). The whole system is exported on one endpoint:
 *
 *   py_node DIR
 *
 * serves ipc://DIR/node.sock, so actors are addressed as
 * ipc://DIR/node.sock#chat and so on. Prints "ready ENDPOINT" once it
 * serves, or "error NAME" if it cannot start; stops when its standard
 * input closes.
 */
#include <actorflow/actorflow.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* Sleeps args' "ms" (at most a minute) and answers "slept". */
static int sleep_fn(void *user, const af_value *args, af_payload *result,
		    char *msg, size_t msg_size)
{
	int64_t ms = 0;
	struct timespec ts;

	(void)user;
	if (af_value_int(af_value_get(args, "ms"), &ms) != AF_OK || ms < 0 ||
	    ms > 60000) {
		snprintf(msg, msg_size, "sleep takes {\"ms\": 0..60000}");
		return AF_EINVAL;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
	return af_pack_str(result, "slept");
}

static af_err start(af_system *sys, const char *endpoint)
{
	static const af_offload_function functions[] = {
		{.name = "sleep", .fn = sleep_fn},
	};
	af_offload_config offload = {
		.workers = 2, .functions = functions, .nfunctions = 1};
	af_chat_config chat;
	af_retrieval_config retrieval;
	af_query_config query;
	af_err err;

	af_chat_config_init(&chat, "extractive");
	af_retrieval_config_init(&retrieval);
	af_query_config_init(&query);
	err = af_spawn(sys, "chat", &af_chat_ops, &chat, NULL);
	if (err == AF_OK)
		err = af_spawn(sys, "retrieval", &af_retrieval_ops, &retrieval,
			       NULL);
	if (err == AF_OK)
		err = af_spawn(sys, "gather", &af_gather_ops, NULL, NULL);
	if (err == AF_OK)
		err = af_spawn(sys, "query", &af_query_ops, &query, NULL);
	if (err == AF_OK)
		err = af_spawn(sys, "offload", &af_offload_ops, &offload, NULL);
	if (err == AF_OK)
		err = af_system_export(sys, endpoint);
	return err;
}

int main(int argc, char **argv)
{
	char endpoint[PATH_MAX + 16];
	char buf[64];
	af_system *sys = NULL;
	af_err err;

	if (argc != 2) {
		fprintf(stderr, "usage: py_node DIR\n");
		return 2;
	}
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/node.sock", argv[1]);
	err = af_system_new(&sys, NULL);
	if (err == AF_OK)
		err = start(sys, endpoint);
	if (err != AF_OK) {
		printf("error %s\n", af_errname(err));
		fflush(stdout);
		af_system_destroy(&sys);
		return 1;
	}
	printf("ready %s\n", endpoint);
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	af_system_destroy(&sys);
	return 0;
}
