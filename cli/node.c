/*
 * `actorflow node --config FILE`: a process hosting the actors its config
 * lists, exported on ipc:// or tcp:// endpoints, until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <actorflow/actorflow.h>

#include "cli.h"
#include "curve_config.h"
#include "node_config.h"

static const char node_help[] =
	"Usage: actorflow node --config FILE\n"
	"\n"
	"Hosts the actors FILE lists and exports them, prints 'ready' on\n"
	"stdout once it serves, and runs until SIGTERM or SIGINT.\n"
	"\n"
	"FILE is JSON:\n"
	"  {\"name\": \"node1\",\n"
	"   \"endpoint\": \"ipc:///run/af/node1.sock\",  whole system: "
	"ENDPOINT#name\n"
	"   \"ipc_dir\": \"/run/af\",       base of relative ipc:// paths\n"
	"   \"allow_public\": false,      tcp beyond loopback, see below\n"
	"   \"grace_ms\": 5000,           time in-flight work gets on "
	"SIGTERM\n"
	"   \"max_message_size\": 16777216,\n"
	"   \"curve\": {\"secret_key_file\": \"k/node.key_secret\",\n"
	"             \"allowed_keys_dir\": \"k/clients\"},  CURVE on every "
	"endpoint\n"
	"   \"remotes\": [{\"endpoint\": \"tcp://10.0.0.2:5555\",\n"
	"                \"curve_key\": \"k/node.key_secret\",\n"
	"                \"server_key\": \"k/node2.key\"}],\n"
	"   \"actors\": [{\"type\": \"chat|retrieval|query|gather|offload\",\n"
	"               \"name\": \"chat\", \"config\": {...},\n"
	"               \"export\": \"ipc://chat.sock\", "
	"\"mailbox_capacity\": 1000}]}\n"
	"\n"
	"An actor's \"config\" takes the fields of its af_<type>_config\n"
	"struct, same names (include/actorflow/<type>.h). Unknown keys are\n"
	"errors, and so are values the actor would refuse at start\n"
	"(chunk_overlap not below chunk_size, top_k above max_top_k, a\n"
	"negative count, a template without its placeholders), each named\n"
	"with its file, line and key. Directories of ipc sockets are\n"
	"created owner-only (0700); a directory others can write to is\n"
	"refused. tcp://:PORT binds\n"
	"127.0.0.1. A tcp host other than loopback (127.0.0.0/8 in any\n"
	"spelling, ::1, localhost) is refused unless the node has \"curve\"\n"
	"(then one address or interface of the machine may be bound) or\n"
	"\"allow_public\": true, which every interface (*, 0.0.0.0, ::, 0)\n"
	"needs in any case.\n"
	"\n"
	"With \"curve\", every endpoint speaks CURVE and admits only clients\n"
	"whose public key is allowed (\"allowed_keys_dir\": each NAME.key in\n"
	"it; \"allowed_keys\": a list of files); others are refused at the\n"
	"handshake. \"remotes\" gives the keys the node's actors use to\n"
	"reach CURVE endpoints of other nodes (no \"endpoint\": any remote).\n"
	"Key files come from `actorflow keygen`; a secret file that group or\n"
	"others can read is refused.\n"
	"\n"
	"On SIGTERM or SIGINT the node stops taking new requests (its ipc\n"
	"socket files go at once; a request arriving on a connection made\n"
	"before is answered AF_ESTOPPED), waits up to grace_ms for the\n"
	"requests in flight to be answered, stops every actor (work still\n"
	"running is answered AF_ESTOPPED) and exits 0. A second signal skips\n"
	"the wait.\n"
	"\n"
	"Exit codes: 0 stopped by a signal; 2 bad usage or config, or\n"
	"anything else that fails before 'ready' (an actor's init failed,\n"
	"an endpoint is taken, a db_path cannot be opened): `actorflow up`\n"
	"does not restart a node that exits 2 before it is ready; 1 out of\n"
	"memory reading the config.\n";

/* Makes the directory of an ipc socket: missing parts are created
 * owner-only; the last one must then belong to this user and be writable
 * by no one else, or another user could replace the socket. */
static int ensure_private_dir(const char *dir, char *err, size_t cap)
{
	char path[4096];
	struct stat st;
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path)) {
		snprintf(err, cap, "bad directory '%s'", dir);
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (char *q = path + 1;; q++) {
		if (*q == '/' || *q == '\0') {
			char saved = *q;
			*q = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST) {
				snprintf(err, cap, "cannot create %s: %s", path,
					 strerror(errno));
				return -1;
			}
			*q = saved;
			if (saved == '\0')
				break;
		}
	}
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, cap, "%s is not a directory", path);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		snprintf(err, cap,
			 "%s is not private (owner %u, mode %03o): ipc sockets "
			 "go in a directory only their owner can write to "
			 "(chmod 700, or set \"ipc_dir\")",
			 path, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 0777));
		return -1;
	}
	return 0;
}

/* Why an ipc path cannot be bound, when something other than a socket is
 * there (the runtime says AF_EEXIST for that and for a live node's socket
 * alike); NULL when it may be. */
static const char *ipc_path_taken(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return "exists and is not a socket";
	return NULL;
}

static int prepare_ipc(const char *endpoint, char *err, size_t cap)
{
	char dir[4096];
	const char *why;
	char *slash;

	if (endpoint == NULL || strncmp(endpoint, "ipc://", 6) != 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s", endpoint + 6);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		snprintf(dir, sizeof(dir), "/");
	else
		*slash = '\0';
	if (ensure_private_dir(dir, err, cap) != 0)
		return -1;
	/* Said before any actor starts; a socket file is the runtime's to
	 * judge (a live node's, or one a killed node left). */
	if ((why = ipc_path_taken(endpoint + 6)) != NULL) {
		snprintf(err, cap, "cannot export on %s: %s %s", endpoint,
			 endpoint + 6, why);
		return -1;
	}
	return 0;
}

/* What an export's failure means, for the message: in buf. */
static const char *export_error(const char *endpoint, af_err rc, char *buf,
				size_t cap)
{
	const char *why;

	if (rc != AF_EEXIST)
		return af_strerror(rc);
	/* Something put there since prepare_ipc looked. */
	if (strncmp(endpoint, "ipc://", 6) == 0 &&
	    (why = ipc_path_taken(endpoint + 6)) != NULL) {
		snprintf(buf, cap, "%s %s", endpoint + 6, why);
		return buf;
	}
	return "in use by another process";
}

/* The retrieval actor opens its db_path in its init, and a failure there
 * comes back from af_spawn as a bare code: the runtime keeps no text of
 * an init's error. What can be seen from here (a folder that is missing,
 * is not one or cannot be written to, for the database and its -wal and
 * -shm files; a file that cannot be read and written) is said before any
 * actor starts, naming the actor, the key and the value. */
static int check_db_path(const cli_actor_spec *s, char *err, size_t cap)
{
	const char *path;
	char dir[4096];
	const char *slash;
	struct stat st;

	if (strcmp(s->type, "retrieval") != 0)
		return 0;
	path = s->cfg.retrieval.db_path;
	if (path == NULL || strcmp(path, ":memory:") == 0 ||
	    strncmp(path, "file:", 5) == 0)
		return 0;
	slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) != 0) {
		snprintf(err, cap, "%.400s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, cap, "%.400s is not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, cap, "%.400s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			snprintf(err, cap, "it is a directory");
			return -1;
		}
		if (access(path, R_OK | W_OK) != 0) {
			snprintf(err, cap, "%s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a signal of set for at most ms (forever when ms < 0). */
static int wait_signal(const sigset_t *set, int64_t ms)
{
	struct timespec ts;

	if (ms < 0)
		return sigwaitinfo(set, NULL);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	return sigtimedwait(set, NULL, &ts);
}

/* Stops taking new requests, then gives those in flight grace_ms to be
 * answered, looking for a second signal between slices of the wait. */
static void drain(af_system *sys, const cli_node_config *c, const sigset_t *set)
{
	int64_t deadline = now_ms() + c->grace_ms;
	uint64_t left = 0;

	for (;;) {
		int64_t wait = deadline - now_ms();
		if (wait < 0)
			wait = 0;
		if (af_system_drain(sys, wait < 50 ? wait : 50, &left) !=
			    AF_OK ||
		    left == 0 || wait == 0)
			break;
		if (wait_signal(set, 0) > 0)
			break; /* a second signal: stop now */
	}
}

/* The signals that stop the node. */
static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

/* Exits CLI_EXIT_USAGE (2) for whatever fails before 'ready' is printed:
 * the same config would fail the same way again, and `up` does not
 * restart a node that exits 2 before it is ready. */
static int run(const cli_node_config *c)
{
	af_system_opts opts = {.max_message_size = c->max_message_size};
	af_system *sys = NULL;
	sigset_t set;
	char err[AF_INIT_ERROR_MAX + 128];
	af_err rc;

	for (size_t i = 0; i < c->nactors; i++)
		if (prepare_ipc(c->actors[i].export_endpoint, err,
				sizeof(err)) != 0) {
			fprintf(stderr, "actorflow node: %s\n", err);
			return CLI_EXIT_USAGE;
		}
	if (prepare_ipc(c->endpoint, err, sizeof(err)) != 0) {
		fprintf(stderr, "actorflow node: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < c->nactors; i++)
		if (check_db_path(&c->actors[i], err, sizeof(err)) != 0) {
			fprintf(stderr,
				"actorflow node: actor '%s' (%s): db_path %s: "
				"cannot open: %s\n",
				c->actors[i].name, c->actors[i].type,
				c->actors[i].cfg.retrieval.db_path, err);
			return CLI_EXIT_USAGE;
		}
	/* Blocked since cli_node_main began: taken by sigwait on this
	 * thread only. */
	stop_signals(&set);
	rc = af_system_new(&sys, &opts);
	if (rc != AF_OK) {
		fprintf(stderr, "actorflow node: cannot start: %s\n",
			af_strerror(rc));
		return CLI_EXIT_USAGE;
	}
	/* Before any actor runs: its first connection may be to a remote. */
	rc = cli_curve_apply_remotes(c->curve, sys);
	if (rc != AF_OK) {
		fprintf(stderr, "actorflow node: remotes: %s\n",
			af_strerror(rc));
		goto fail;
	}
	for (size_t i = 0; i < c->nactors; i++) {
		const cli_actor_spec *s = &c->actors[i];
		rc = cli_actor_spawn(sys, s, err, sizeof(err));
		if (rc != AF_OK) {
			fprintf(stderr, "actorflow node: %s\n", err);
			goto fail;
		}
		if (s->export_endpoint != NULL &&
		    (rc = af_export_with(sys, s->name, s->export_endpoint,
					 cli_curve_export_opts(c->curve))) !=
			    AF_OK) {
			fprintf(stderr,
				"actorflow node: cannot export '%s' on %s: "
				"%s\n",
				s->name, s->export_endpoint,
				export_error(s->export_endpoint, rc, err,
					     sizeof(err)));
			goto fail;
		}
	}
	if (c->endpoint != NULL &&
	    (rc = af_system_export_with(sys, c->endpoint,
					cli_curve_export_opts(c->curve))) !=
		    AF_OK) {
		fprintf(stderr, "actorflow node: cannot export on %s: %s\n",
			c->endpoint,
			export_error(c->endpoint, rc, err, sizeof(err)));
		goto fail;
	}
	printf("ready\n");
	fflush(stdout);
	while (wait_signal(&set, -1) < 0) {
	}
	drain(sys, c, &set);
	af_system_destroy(&sys);
	return CLI_EXIT_OK;
fail:
	af_system_destroy(&sys);
	return CLI_EXIT_USAGE;
}

int cli_node_main(int argc, char **argv)
{
	const char *path = NULL;
	cli_node_config c;
	sigset_t set;
	char err[1024];
	af_err rc;
	int code;

	/* First of all, before the config is read: a SIGTERM or SIGINT that
	 * comes while the node starts then waits for it to serve, and stops
	 * it cleanly, instead of killing it half-started. Every thread made
	 * later (the actors') inherits the mask, so sigwait in run() takes
	 * them. */
	stop_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(node_help, stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
		} else {
			fprintf(stderr,
				"actorflow node: unexpected '%s' (see "
				"actorflow node --help)\n",
				argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		fprintf(stderr, "actorflow node: --config FILE is required "
				"(see actorflow node --help)\n");
		return CLI_EXIT_USAGE;
	}
	rc = cli_node_config_load(&c, path, err, sizeof(err));
	if (rc != AF_OK) {
		fprintf(stderr, "actorflow node: %s\n", err);
		cli_node_config_free(&c);
		return rc == AF_ENOMEM ? CLI_EXIT_OTHER : CLI_EXIT_USAGE;
	}
	/* Socket files and databases the node creates are its user's
	 * alone. */
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	code = run(&c);
	cli_node_config_free(&c);
	return code;
}
