/*
 * mockllm_server - the mock OpenAI/Ollama server as a process of its own,
 * for benchmarks: the server's CPU is then measured apart from the
 * client's.
 *
 *   mockllm_server [--port N] [--threads N] [--chunks N] [--interval-ms N]
 *                  [--text S] [--crlf] [--split-writes] [--comments]
 *                  [--multiline-data] [--include-usage] [--embed-dim N]
 *                  [--fault ok|status|drop|malformed|error|no-done|stall]
 *                  [--fault-at N] [--fail-status N] [--fail-times N]
 *                  [--ignore-stdin]
 *
 * Binds 127.0.0.1 (port 0, the default, is an ephemeral port) and prints
 * "port N" as its first line on stdout. Serves until SIGTERM or SIGINT,
 * or until stdin reaches its end (unless --ignore-stdin), then prints the
 * CPU seconds it used, "cpu_s X", and its peak RSS, "maxrss_kb N".
 */
#define _GNU_SOURCE

#include "mockllm.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr,
		"usage: mockllm_server [--port N] [--threads N] [--chunks N] "
		"[--interval-ms N]\n"
		"       [--text S] [--crlf] [--split-writes] [--comments] "
		"[--multiline-data]\n"
		"       [--include-usage] [--embed-dim N] [--fault NAME] "
		"[--fault-at N]\n"
		"       [--fail-status N] [--fail-times N] [--ignore-stdin]\n");
	exit(2);
}

static int parse_fault(const char *name)
{
	static const char *const names[] = {
		[MOCKLLM_OK] = "ok",
		[MOCKLLM_STATUS] = "status",
		[MOCKLLM_DROP] = "drop",
		[MOCKLLM_MALFORMED] = "malformed",
		[MOCKLLM_ERROR_EVENT] = "error",
		[MOCKLLM_NO_DONE] = "no-done",
		[MOCKLLM_STALL] = "stall",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	usage();
	return 0;
}

static int number(int argc, char **argv, int *i)
{
	char *end;
	long v;

	if (*i + 1 >= argc)
		usage();
	v = strtol(argv[++*i], &end, 10);
	if (*end != '\0' || v < -1 || v > 1000000000)
		usage();
	return (int)v;
}

/* Blocks until SIGTERM or SIGINT arrives, or stdin ends when watched. */
static void serve(const sigset_t *signals, bool watch_stdin)
{
	struct pollfd fds[2];
	int sfd = signalfd(-1, signals, SFD_CLOEXEC);

	if (sfd < 0) {
		perror("mockllm_server: signalfd");
		return;
	}
	fds[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
	fds[1] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
	for (;;) {
		char junk[256];

		if (poll(fds, watch_stdin ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents != 0)
			break;
		if (watch_stdin && fds[1].revents != 0 &&
		    read(STDIN_FILENO, junk, sizeof(junk)) <= 0)
			break;
	}
	close(sfd);
}

int main(int argc, char **argv)
{
	mockllm_opts opts = {0};
	int port = 0;
	int threads = 1;
	bool watch_stdin = true;
	sigset_t signals;
	mockllm *m;
	struct rusage ru;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--port") == 0)
			port = number(argc, argv, &i);
		else if (strcmp(a, "--threads") == 0)
			threads = number(argc, argv, &i);
		else if (strcmp(a, "--chunks") == 0)
			opts.chunks = number(argc, argv, &i);
		else if (strcmp(a, "--interval-ms") == 0)
			opts.interval_ms = number(argc, argv, &i);
		else if (strcmp(a, "--text") == 0 && i + 1 < argc)
			opts.text = argv[++i];
		else if (strcmp(a, "--crlf") == 0)
			opts.crlf = true;
		else if (strcmp(a, "--split-writes") == 0)
			opts.split_writes = true;
		else if (strcmp(a, "--comments") == 0)
			opts.comments = true;
		else if (strcmp(a, "--multiline-data") == 0)
			opts.multiline_data = true;
		else if (strcmp(a, "--include-usage") == 0)
			opts.include_usage_always = true;
		else if (strcmp(a, "--embed-dim") == 0)
			opts.embed_dim = number(argc, argv, &i);
		else if (strcmp(a, "--fault") == 0 && i + 1 < argc)
			opts.fault = (mockllm_fault)parse_fault(argv[++i]);
		else if (strcmp(a, "--fault-at") == 0)
			opts.fault_at = number(argc, argv, &i);
		else if (strcmp(a, "--fail-status") == 0)
			opts.fail_status = number(argc, argv, &i);
		else if (strcmp(a, "--fail-times") == 0)
			opts.fail_times = number(argc, argv, &i);
		else if (strcmp(a, "--ignore-stdin") == 0)
			watch_stdin = false;
		else
			usage();
	}
	if (port < 0 || port > 65535)
		usage();

	/* Blocked before the server's threads start, so they inherit the
	 * mask and the signals wait for serve() to read them. */
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (mockllm_start_ex(&m, &opts, port, threads) != 0) {
		fprintf(stderr, "mockllm_server: cannot start on port %d\n",
			port);
		return 1;
	}
	printf("port %d\n", mockllm_port(m));
	fflush(stdout);
	serve(&signals, watch_stdin);
	mockllm_stop(&m);

	getrusage(RUSAGE_SELF, &ru);
	printf("cpu_s %.3f\n",
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	printf("maxrss_kb %ld\n", ru.ru_maxrss);
	return 0;
}
