/*
 * A node for the cross-process tests: hosts an "echo" actor (testlib.h)
 * exported on the endpoint given as the first argument.
 *
 *   test_node ENDPOINT [MAX_MESSAGE_SIZE [SYSTEM_ENDPOINT]]
 *
 * With SYSTEM_ENDPOINT the whole system is exported there as well.
 * Prints "ready" once it serves, "hung N" each time the echo actor holds
 * its Nth "hang" request, or "error CODE" if it cannot start; stops when
 * its standard input closes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testlib.h"

static test_signal hung;

static void *report_hung(void *arg)
{
	for (int n = 1;; n++) {
		while (!test_signal_wait(&hung, n, 60000)) {
		}
		printf("hung %d\n", n);
		fflush(stdout);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	af_system_opts opts = {0};
	echo_config cfg = {.hung = &hung};
	af_system *sys = NULL;
	pthread_t t;
	char buf[64];
	af_err err;

	if (argc < 2)
		return 2;
	if (argc > 2)
		opts.max_message_size = strtoul(argv[2], NULL, 10);
	test_signal_init(&hung);
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
	pthread_create(&t, NULL, report_hung, NULL);
	pthread_detach(t);
	printf("ready\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
	}
	af_system_destroy(&sys);
	return 0;
}
