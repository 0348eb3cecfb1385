/*
 * `actorflow up FILE`: a supervisor that runs the nodes FILE lists as
 * child processes (`actorflow node --config ...`) and restarts the ones
 * that fail, with backoff and a restart limit, until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <actorflow/actorflow.h>

#include "cli.h"
#include "up_config.h"

/* What a node that does not stop within its grace period gets on top of
 * it before SIGKILL. */
#define KILL_MARGIN_MS 5000

static const char up_help[] =
	"Usage: actorflow up FILE\n"
	"\n"
	"Starts the nodes FILE lists, each as a child process `actorflow\n"
	"node --config ...`, prints 'ready' on stdout once every node has\n"
	"printed its own, and restarts a node that fails. Events go to\n"
	"stderr, one line each with a timestamp: started pid, ready, exited\n"
	"with status or signal, restarting in N ms, gave up, stopping.\n"
	"\n"
	"FILE is JSON:\n"
	"  {\"name\": \"rag\",\n"
	"   \"restart\": {\"policy\": \"on-failure\",   or \"always\", "
	"\"never\"\n"
	"               \"backoff_ms\": 100,         doubling after each\n"
	"               \"backoff_max_ms\": 10000,   restart, up to this\n"
	"               \"max_restarts\": 5,         at most this many...\n"
	"               \"window_ms\": 60000,        ...within this long,\n"
	"               \"on_limit\": \"give_up\"},    or \"stop\" (every "
	"node)\n"
	"   \"nodes\": [{\"name\": \"retrieval\",\n"
	"              \"config\": \"retrieval.json\",  or the config "
	"inline\n"
	"              \"restart\": {...}}]}          overrides the "
	"default\n"
	"\n"
	"Relative config paths are taken from FILE's folder; every node\n"
	"config is checked before any node starts. \"on-failure\" restarts\n"
	"a node killed by a signal or exiting with a status other than 0,\n"
	"except a node that exits 2 before it is ready (a configuration or\n"
	"start-up error): that one is reported once (\"configuration error,\n"
	"not restarted\"), and if not every node was ready yet the others\n"
	"are stopped.\n"
	"\n"
	"On SIGTERM or SIGINT every node gets SIGTERM and its own grace_ms\n"
	"to finish (then SIGKILL, 5 s later); a second signal is passed on\n"
	"(a node then skips its wait).\n"
	"\n"
	"Exit codes: 0 stopped by a signal and every node exited 0 (or,\n"
	"still starting, died of the SIGTERM it was sent); 1 a node was given\n"
	"up, or did not exit cleanly; 2 bad usage or FILE, or a node's\n"
	"configuration error.\n";

typedef enum node_state {
	NODE_RUNNING, /* started, 'ready' not seen yet */
	NODE_READY,
	NODE_BACKOFF, /* waiting to be started again */
	NODE_DONE,    /* exited and not restarted */
	NODE_GAVE_UP  /* past the restart limit */
} node_state;

typedef struct node {
	const cli_up_node *spec;
	const char *config_file;
	pid_t pid; /* 0: no process */
	int out;   /* its stdout, read end; -1: none */
	char line[256];
	size_t line_len;
	node_state state;
	int64_t restart_at;
	int64_t kill_at; /* stopping: SIGKILL then; 0: not set */
	sigset_t sent;   /* the signals stop_all sent the process */
	/* The times of its restarts within the window, oldest first. */
	int64_t *restarts;
	int nrestarts;
} node;

typedef struct supervisor {
	const cli_up_config *cfg;
	node *nodes;
	size_t nnodes;
	char exe[PATH_MAX];
	char *tmp_dir; /* inline configs; NULL: none */
	int sigfd;
	struct pollfd *fds; /* the loop's: signals, then outputs */
	struct node **owners;
	bool stopping;
	bool said_ready;
	int code;
} supervisor;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One line on stderr: a UTC timestamp, then the message. Written with one
 * write() so it is not mixed with the lines the nodes write to the same
 * stderr. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char buf[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n,
			      ".%03ldZ actorflow up: ", ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t k = write(STDERR_FILENO, buf + off, n - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		off += (size_t)k;
	}
}

/* ---- starting ---------------------------------------------------------- */

static int start(supervisor *s, node *n)
{
	char *argv[] = {"actorflow", "node", "--config", (char *)n->config_file,
			NULL};
	pid_t parent = getpid();
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		say("node %s: cannot make a pipe: %s", n->spec->name,
		    strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		say("node %s: cannot fork: %s", n->spec->name, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		/* The child: async-signal-safe calls only until exec. A node
		 * goes with its supervisor, even one killed with SIGKILL;
		 * in a group of its own it gets a terminal's Ctrl-C through
		 * the supervisor only, once. */
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigset_t none;
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		setpgid(0, 0);
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(127);
		sigaction(SIGPIPE, &dfl, NULL);
		/* The supervisor's mask blocks SIGTERM, SIGINT and SIGCHLD
		 * for its signalfd; the node starts with none blocked and
		 * blocks its own first thing. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(s->exe, argv);
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	n->pid = pid;
	n->out = fds[0];
	n->line_len = 0;
	sigemptyset(&n->sent);
	n->state = NODE_RUNNING;
	say("node %s: started pid %d", n->spec->name, (int)pid);
	return 0;
}

static void close_out(node *n)
{
	if (n->out >= 0)
		close(n->out);
	n->out = -1;
	n->line_len = 0;
}

static void check_all_ready(supervisor *s)
{
	if (s->said_ready || s->stopping)
		return;
	for (size_t i = 0; i < s->nnodes; i++)
		if (s->nodes[i].state != NODE_READY)
			return;
	s->said_ready = true;
	say("every node is ready");
	printf("ready\n");
	fflush(stdout);
}

/* Reads what the node wrote on stdout: 'ready', or anything else, which
 * goes on to stderr under its name. */
static void read_out(supervisor *s, node *n)
{
	for (;;) {
		char c;
		ssize_t k = read(n->out, &c, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0) {
			close_out(n);
			return;
		}
		if (k < 0)
			return;
		if (c != '\n' && n->line_len + 1 < sizeof(n->line)) {
			n->line[n->line_len++] = c;
			continue;
		}
		n->line[n->line_len] = '\0';
		if (strcmp(n->line, "ready") == 0 && n->state == NODE_RUNNING) {
			n->state = NODE_READY;
			say("node %s: ready (pid %d)", n->spec->name,
			    (int)n->pid);
			check_all_ready(s);
		} else if (n->line_len > 0) {
			say("node %s: %s", n->spec->name, n->line);
		}
		n->line_len = 0;
	}
}

/* ---- stopping ---------------------------------------------------------- */

static void stop_all(supervisor *s, int sig)
{
	int64_t now = now_ms();
	bool again = s->stopping;
	int count = 0;

	s->stopping = true;
	for (size_t i = 0; i < s->nnodes; i++) {
		node *n = &s->nodes[i];
		if (n->state == NODE_BACKOFF)
			n->state = NODE_DONE;
		if (n->pid > 0) {
			kill(n->pid, sig);
			sigaddset(&n->sent, sig);
			if (n->kill_at == 0)
				n->kill_at = now + n->spec->grace_ms +
					     KILL_MARGIN_MS;
			count++;
		}
	}
	say("stopping: %s%s to %d node%s",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT", again ? " again" : "", count,
	    count == 1 ? "" : "s");
}

/* ---- exits and restarts ------------------------------------------------ */

static void describe(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited with status %d",
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "ended (wait status %d)", status);
}

/* The restarts still within the window, with now's about to be added:
 * false when the limit is reached. */
static bool may_restart(node *n, int64_t now)
{
	const cli_up_restart *r = &n->spec->restart;
	int keep = 0;

	for (int i = 0; i < n->nrestarts; i++)
		if (now - n->restarts[i] < r->window_ms)
			n->restarts[keep++] = n->restarts[i];
	n->nrestarts = keep;
	return n->nrestarts < r->max_restarts;
}

static void exited(supervisor *s, node *n, int status)
{
	const cli_up_restart *r = &n->spec->restart;
	/* A node blocks SIGTERM and SIGINT first thing and then exits 0
	 * on them; one that got the supervisor's signal before it could
	 * (just after exec) and died of it was stopped as asked all the
	 * same. */
	bool by_our_signal = s->stopping && WIFSIGNALED(status) &&
			     sigismember(&n->sent, WTERMSIG(status)) == 1;
	bool failed =
		WIFEXITED(status) ? WEXITSTATUS(status) != 0 : !by_our_signal;
	/* A node exits 2 for a config or start-up error, before its
	 * 'ready': started again, it would fail the same way. */
	bool config_error = WIFEXITED(status) && WEXITSTATUS(status) == 2 &&
			    n->state == NODE_RUNNING;
	int64_t now = now_ms();
	char how[128];
	int64_t delay;

	describe(status, how, sizeof(how));
	say("node %s: pid %d %s%s", n->spec->name, (int)n->pid, how,
	    by_our_signal ? ", as asked" : "");
	n->pid = 0;
	n->kill_at = 0;
	/* The pipe holds what the node wrote before it went, and then its
	 * end: read it now, before a new process takes the node's place. */
	if (n->out >= 0)
		read_out(s, n);
	close_out(n);
	if (s->stopping) {
		n->state = NODE_DONE;
		if (failed)
			s->code = CLI_EXIT_OTHER;
		return;
	}
	if (config_error) {
		n->state = NODE_GAVE_UP;
		s->code = CLI_EXIT_USAGE;
		say("node %s: configuration error, not restarted",
		    n->spec->name);
		/* Before every node was ready the deployment cannot start:
		 * stop the others, as for a bad file. */
		if (!s->said_ready || r->stop_all_on_limit)
			stop_all(s, SIGTERM);
		return;
	}
	if (r->policy == CLI_UP_NEVER ||
	    (r->policy == CLI_UP_ON_FAILURE && !failed)) {
		n->state = NODE_DONE;
		say("node %s: not restarted (policy %s)", n->spec->name,
		    r->policy == CLI_UP_NEVER ? "never" : "on-failure");
		if (failed)
			s->code = CLI_EXIT_OTHER;
		return;
	}
	if (!may_restart(n, now)) {
		n->state = NODE_GAVE_UP;
		s->code = CLI_EXIT_OTHER;
		say("node %s: gave up: %d restart%s within %lld ms",
		    n->spec->name, n->nrestarts, n->nrestarts == 1 ? "" : "s",
		    (long long)r->window_ms);
		if (r->stop_all_on_limit)
			stop_all(s, SIGTERM);
		return;
	}
	/* The delay doubles with each restart still in the window: a node
	 * that keeps failing is started less and less often, one that has
	 * been well for a window starts again at backoff_ms. */
	delay = r->backoff_ms;
	for (int i = 0; i < n->nrestarts && delay < r->backoff_max_ms; i++)
		delay *= 2;
	if (delay > r->backoff_max_ms)
		delay = r->backoff_max_ms;
	n->restarts[n->nrestarts++] = now;
	n->state = NODE_BACKOFF;
	n->restart_at = now + delay;
	say("node %s: restarting in %lld ms (restart %d of at most %d within "
	    "%lld ms)",
	    n->spec->name, (long long)delay, n->nrestarts, r->max_restarts,
	    (long long)r->window_ms);
}

static void reap(supervisor *s)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (size_t i = 0; i < s->nnodes; i++)
			if (s->nodes[i].pid == pid)
				exited(s, &s->nodes[i], status);
	}
}

static void on_signals(supervisor *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap(s);
		else if (!s->stopping)
			stop_all(s, SIGTERM);
		else
			stop_all(s, (int)si.ssi_signo); /* passed on */
	}
	/* SIGCHLDs merge: look again in case one stood for several. */
	reap(s);
}

static bool anything_left(const supervisor *s)
{
	for (size_t i = 0; i < s->nnodes; i++)
		if (s->nodes[i].pid > 0 || s->nodes[i].state == NODE_BACKOFF)
			return true;
	return false;
}

static void on_timers(supervisor *s)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < s->nnodes; i++) {
		node *n = &s->nodes[i];
		if (n->state == NODE_BACKOFF && n->restart_at <= now &&
		    start(s, n) != 0) {
			n->state = NODE_GAVE_UP;
			s->code = CLI_EXIT_OTHER;
			say("node %s: gave up: cannot start it", n->spec->name);
		}
		if (n->pid > 0 && n->kill_at != 0 && n->kill_at <= now) {
			say("node %s: pid %d still running %d ms past its "
			    "grace period: SIGKILL",
			    n->spec->name, (int)n->pid, KILL_MARGIN_MS);
			kill(n->pid, SIGKILL);
			n->kill_at = 0;
			s->code = CLI_EXIT_OTHER;
		}
	}
}

static int next_timeout(const supervisor *s)
{
	int64_t now = now_ms();
	int64_t soonest = -1;

	for (size_t i = 0; i < s->nnodes; i++) {
		const node *n = &s->nodes[i];
		int64_t at = n->state == NODE_BACKOFF ? n->restart_at
			     : n->pid > 0             ? n->kill_at
						      : 0;
		if (at == 0 && n->state != NODE_BACKOFF)
			continue;
		if (soonest < 0 || at < soonest)
			soonest = at;
	}
	if (soonest < 0)
		return -1;
	return soonest <= now            ? 0
	       : soonest - now > INT_MAX ? INT_MAX
					 : (int)(soonest - now);
}

static int loop(supervisor *s)
{
	struct pollfd *fds = s->fds;
	node **owners = s->owners;

	while (anything_left(s)) {
		nfds_t nfds = 1;
		fds[0] = (struct pollfd){.fd = s->sigfd, .events = POLLIN};
		for (size_t i = 0; i < s->nnodes; i++) {
			if (s->nodes[i].out < 0)
				continue;
			owners[nfds] = &s->nodes[i];
			fds[nfds++] = (struct pollfd){.fd = s->nodes[i].out,
						      .events = POLLIN};
		}
		if (poll(fds, nfds, next_timeout(s)) < 0 && errno != EINTR) {
			say("poll: %s", strerror(errno));
			break;
		}
		/* Output first: a node's 'ready' before its exit. */
		for (nfds_t i = 1; i < nfds; i++)
			if (fds[i].revents != 0 && owners[i]->out == fds[i].fd)
				read_out(s, owners[i]);
		if (fds[0].revents != 0)
			on_signals(s);
		on_timers(s);
	}
	if (!s->stopping)
		say("no node left to run");
	return s->code;
}

/* ---- setting up -------------------------------------------------------- */

/* Inline configs go to files of their own, in a private folder removed at
 * the end. */
static int write_inline(supervisor *s, node *n)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];
	FILE *f;
	size_t len = strlen(n->spec->inline_text);

	if (s->tmp_dir == NULL) {
		char tmpl[PATH_MAX];
		snprintf(tmpl, sizeof(tmpl), "%s/actorflow-up-XXXXXX",
			 tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
		if (mkdtemp(tmpl) == NULL ||
		    (s->tmp_dir = strdup(tmpl)) == NULL) {
			fprintf(stderr, "actorflow up: cannot make %s: %s\n",
				tmpl, strerror(errno));
			return -1;
		}
	}
	snprintf(path, sizeof(path), "%s/%s.json", s->tmp_dir, n->spec->name);
	f = fopen(path, "w");
	if (f == NULL || fwrite(n->spec->inline_text, 1, len, f) != len ||
	    fclose(f) != 0) {
		fprintf(stderr, "actorflow up: cannot write %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	n->config_file = strdup(path);
	return n->config_file == NULL ? -1 : 0;
}

static void cleanup(supervisor *s)
{
	for (size_t i = 0; i < s->nnodes; i++) {
		node *n = &s->nodes[i];
		close_out(n);
		free(n->restarts);
		if (n->spec->inline_text != NULL && n->config_file != NULL) {
			unlink(n->config_file);
			free((char *)n->config_file);
		}
	}
	if (s->tmp_dir != NULL)
		rmdir(s->tmp_dir);
	free(s->tmp_dir);
	free(s->nodes);
	free(s->fds);
	free(s->owners);
	if (s->sigfd >= 0)
		close(s->sigfd);
}

/* The signals the supervisor reads from its signalfd. */
static void loop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static int run(const cli_up_config *cfg)
{
	supervisor s = {.cfg = cfg, .sigfd = -1};
	sigset_t set;
	ssize_t len;
	int code = CLI_EXIT_OTHER;

	len = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);
	if (len <= 0) {
		fprintf(stderr,
			"actorflow up: cannot find its own program: %s\n",
			strerror(errno));
		return CLI_EXIT_OTHER;
	}
	s.exe[len] = '\0';
	s.nnodes = cfg->nnodes;
	s.nodes = calloc(s.nnodes, sizeof(*s.nodes));
	s.fds = calloc(s.nnodes + 1, sizeof(*s.fds));
	s.owners = calloc(s.nnodes + 1, sizeof(*s.owners));
	if (s.nodes == NULL || s.fds == NULL || s.owners == NULL)
		goto out;
	for (size_t i = 0; i < s.nnodes; i++) {
		node *n = &s.nodes[i];
		n->spec = &cfg->nodes[i];
		n->out = -1;
		n->config_file = n->spec->config_path;
		n->restarts = calloc((size_t)n->spec->restart.max_restarts + 1,
				     sizeof(*n->restarts));
		if (n->restarts == NULL)
			goto out;
		if (n->spec->inline_text != NULL && write_inline(&s, n) != 0)
			goto out;
	}
	/* Signals arrive as reads on a descriptor the loop polls, blocked
	 * since cli_up_main began (a child unblocks them before exec). */
	loop_signals(&set);
	s.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.sigfd < 0) {
		fprintf(stderr, "actorflow up: signalfd: %s\n",
			strerror(errno));
		goto out;
	}
	say("%s: starting %zu node%s", cfg->name, s.nnodes,
	    s.nnodes == 1 ? "" : "s");
	/* A signal that came while the files were read: no node to start. */
	on_signals(&s);
	for (size_t i = 0; i < s.nnodes && !s.stopping; i++) {
		if (start(&s, &s.nodes[i]) != 0) {
			s.nodes[i].state = NODE_GAVE_UP;
			s.code = CLI_EXIT_OTHER;
			stop_all(&s, SIGTERM);
			break;
		}
	}
	code = loop(&s);
	say("%s: stopped (exit %d)", cfg->name, code);
out:
	cleanup(&s);
	return code;
}

int cli_up_main(int argc, char **argv)
{
	const char *path = NULL;
	cli_up_config c;
	sigset_t set;
	char err[2048];
	af_err rc;
	int code;

	/* First of all, before the files are read (every node config):
	 * a SIGTERM or SIGINT that comes meanwhile waits in the signalfd,
	 * and the supervisor stops cleanly instead of dying of it. */
	loop_signals(&set);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(up_help, stdout);
			return CLI_EXIT_OK;
		} else if (argv[i][0] == '-' || path != NULL) {
			fprintf(stderr,
				"actorflow up: unexpected '%s' (see actorflow "
				"up --help)\n",
				argv[i]);
			return CLI_EXIT_USAGE;
		}
		path = argv[i];
	}
	if (path == NULL) {
		fprintf(stderr, "actorflow up: FILE is required (see actorflow "
				"up --help)\n");
		return CLI_EXIT_USAGE;
	}
	rc = cli_up_config_load(&c, path, err, sizeof(err));
	if (rc != AF_OK) {
		fprintf(stderr, "actorflow up: %s\n", err);
		cli_up_config_free(&c);
		return rc == AF_ENOMEM ? CLI_EXIT_OTHER : CLI_EXIT_USAGE;
	}
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	code = run(&c);
	cli_up_config_free(&c);
	return code;
}
