/*
 * A node for the cross-process tests: hosts an "echo" actor (testlib.h)
 * exported on the endpoint given as the first argument.
 *
 *   test_node ENDPOINT [MAX_MESSAGE_SIZE [SYSTEM_ENDPOINT]]
 *
 * With SYSTEM_ENDPOINT the whole system is exported there as well.
 * Prints "ready" once it serves, "hung N" each time the echo actor holds
 * its Nth "hang" request, "cancelled N" each time one of its streams is
 * cancelled, or "error CODE" if it cannot start; stops when its standard
 * input closes.
 *
 *   test_node --consume ADDRESS
 *
 * Plays a stream consumer instead: opens an endless "stream" at ADDRESS,
 * reads one chunk, prints "streaming" and then reads no more, until its
 * standard input closes (or it is killed, which is the point).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static test_signal hung;
static test_signal cancelled;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct reporter {
	test_signal *signal;
	const char *what;
} reporter;

static void *report(void *arg)
{
	const reporter *r = arg;

	for (int n = 1;; n++) {
		while (!test_signal_wait(r->signal, n, 60000)) {
		}
		pthread_mutex_lock(&out_mu);
		printf("%s %d\n", r->what, n);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
	}
	return NULL;
}

static int consume(const char *addr)
{
	af_client *c = NULL;
	af_stream *s = NULL;
	af_payload *args = NULL;
	af_msg *m = NULL;
	char buf[64];
	af_err err = af_client_new(&c, NULL);

	if (err == AF_OK)
		err = af_payload_new(&args);
	if (err == AF_OK) {
		af_pack_map(args, 1);
		af_pack_str(args, "n");
		af_pack_int(args, 0);
		err = af_client_stream(c, addr, "stream", args, 600000, &s);
	}
	if (err == AF_OK)
		err = af_stream_next(s, 10000, &m);
	af_msg_destroy(&m);
	af_payload_destroy(&args);
	printf(err == AF_OK ? "streaming\n" : "error %d\n", err);
	fflush(stdout);
	while (err == AF_OK && read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	af_stream_close(&s);
	af_client_destroy(&c);
	return err == AF_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	static reporter hung_reporter = {&hung, "hung"};
	static reporter cancel_reporter = {&cancelled, "cancelled"};
	static stream_watch watch = {.cancelled = &cancelled};
	af_system_opts opts = {0};
	echo_config cfg = {.hung = &hung, .streams = &watch};
	af_system *sys = NULL;
	pthread_t t;
	char buf[64];
	af_err err;

	if (argc == 3 && strcmp(argv[1], "--consume") == 0)
		return consume(argv[2]);
	if (argc < 2)
		return 2;
	if (argc > 2)
		opts.max_message_size = strtoul(argv[2], NULL, 10);
	test_signal_init(&hung);
	test_signal_init(&cancelled);
	err = af_system_new(&sys, &opts);
	if (err == AF_OK)
		err = af_spawn(sys, "echo", &test_echo_ops, &cfg, NULL);
	if (err == AF_OK)
		err = af_export(sys, "echo", argv[1]);
	if (err == AF_OK && argc > 3)
		err = af_system_export(sys, argv[3]);
	if (err != AF_OK) {
		printf("error %d\n", err);
		fflush(stdout);
		af_system_destroy(&sys);
		return 1;
	}
	pthread_create(&t, NULL, report, &hung_reporter);
	pthread_detach(t);
	pthread_create(&t, NULL, report, &cancel_reporter);
	pthread_detach(t);
	pthread_mutex_lock(&out_mu);
	printf("ready\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	af_system_destroy(&sys);
	return 0;
}
