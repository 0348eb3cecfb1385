/*
 * `actorflow ask`, `stream`, `tell` and `stats`: one message to an actor of
 * another process, from a shell.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <actorflow/actorflow.h>

#include "cli.h"
#include "json_file.h"
#include "json_msgpack.h"
#include "keys.h"
#include "node_config.h"

#define DEFAULT_TIMEOUT_MS 60000
/* The most JSON text taken from a file or stdin: four times the largest
 * message a node takes by default (16 MiB), as JSON is wordier than
 * msgpack; the node judges the message itself. */
#define MAX_JSON_MIB 64

static const char ask_help[] =
	"Usage: actorflow ask [--timeout MS] [--quiet] ADDR TYPE "
	"[JSON|-|@FILE]\n"
	"\n"
	"Sends a request of type TYPE with JSON as its payload (none: nil)\n"
	"to the actor at ADDR and prints the reply as JSON on stdout.\n"
	"The request is sent as a stream: an actor that reports progress\n"
	"(the retrieval actor's load_dir) sends chunks before its answer,\n"
	"printed on stderr, on a terminal as one line rewritten in place,\n"
	"else one line each: \"load_dir: 12/40 files, 3.1/9.8 MB\" for\n"
	"{\"files\", \"files_total\", \"bytes\", \"bytes_total\"}, any other\n"
	"chunk as a JSON line. The stream's end is printed as a reply is.\n"
	"  --quiet       no progress on stderr\n";

static const char stream_help[] =
	"Usage: actorflow stream [--timeout MS] [--json] ADDR TYPE "
	"[JSON|-|@FILE]\n"
	"\n"
	"Sends a request whose answer is a stream and prints it as it comes:\n"
	"by default the \"delta\" text of each chunk as it is, flushed at "
	"once,\n"
	"then a newline (a chunk without a \"delta\" string is printed as a\n"
	"JSON line; a plain reply instead of a stream is printed as JSON).\n"
	"With --json: one JSON line per chunk, {\"chunk\": PAYLOAD, \"seq\": "
	"N},\n"
	"and one for the end, {\"end\": PAYLOAD}.\n";

static const char tell_help[] =
	"Usage: actorflow tell [--timeout MS] ADDR TYPE [JSON|-|@FILE]\n"
	"\n"
	"Sends a one-way message; no answer. Exit 0 means the message was\n"
	"handed to the transport, waiting up to --timeout for room in a full\n"
	"mailbox.\n";

static const char stats_help[] =
	"Usage: actorflow stats [--timeout MS] ADDR\n"
	"\n"
	"Prints the statistics of the actor at ADDR as JSON (it answers the\n"
	"reserved request type \"af.stats\" itself): tells and requests it\n"
	"took, errors it answered, requests in flight, mailbox depth and\n"
	"latency percentiles in microseconds:\n"
	"  {\"name\":\"chat\",\"type\":\"chat\",\"tells\":0,\"requests\":3,\n"
	"   \"errors\":0,\"in_flight\":1,\"mailbox_depth\":0,\"answered\":2,\n"
	"   \"latency_us\":{\"p50\":...,\"p90\":...,\"p99\":...,\"max\":...}}\n"
	"ADDR without #actor (or ending in #) names a node's endpoint: every\n"
	"actor of the node, {\"system\": {\"dropped\",\"refused\",\"late\",\n"
	"\"unroutable\"}, \"actors\": [...]}.\n";

static const char json_help[] =
	"\n"
	"JSON is the payload itself, or, as curl takes it, - to read it from\n"
	"stdin or @FILE to read it from FILE (for a payload too large for\n"
	"the command line; at most 64 MiB):\n"
	"  actorflow ask ADDR#retrieval insert @doc.json\n"
	"  make_doc | actorflow ask ADDR#retrieval insert -\n";

static const char common_help[] =
	"\n"
	"ADDR is ipc:///path/node.sock#actor or tcp://127.0.0.1:PORT#actor.\n"
	"JSON numbers written without '.' or an exponent travel as msgpack\n"
	"integers, others as floats; binary values print as base64 strings.\n"
	"\n"
	"Options:\n"
	"  --timeout MS  deadline of the whole request (default 60000)\n"
	"  --curve-key FILE   this side's CURVE secret key file (NAME.key or\n"
	"                     NAME.key_secret of `actorflow keygen`)\n"
	"  --server-key FILE  the node's CURVE public key file (NAME.key);\n"
	"                     both are needed to reach a node with \"curve\"\n"
	"  --help        this text\n"
	"\n" CLI_EXIT_CODES_HELP CLI_EXIT_NOBODY_HELP "\n"
	"An ipc:// address is looked at before anything is sent: with no\n"
	"socket file at its path, exit 6 at once, not at the timeout (a\n"
	"script may retry). A socket file nobody accepts on (left by a node\n"
	"that was killed, until its restart) is waited on up to --timeout.\n"
	"A tcp:// port must be from 1 to 65535, an ipc:// path at most 107\n"
	"bytes (exit 2).\n";

typedef enum verb { VERB_ASK, VERB_STREAM, VERB_TELL, VERB_STATS } verb;

typedef struct args {
	const char *prog;
	const char *addr;
	const char *type;
	const char *json; /* the argument: JSON, "-" or "@FILE" */
	int64_t timeout_ms;
	bool json_lines;
	/* ask --quiet: no progress on stderr */
	bool quiet;
	const char *curve_key;  /* --curve-key: own secret key file */
	const char *server_key; /* --server-key: the node's public key */
	char addr_buf[1024];    /* stats: ADDR less a trailing '#' */
} args;

const char *cli_errname(int code, char *buf, size_t cap)
{
	const char *name = af_errname(code);

	if (name != NULL)
		return name;
	snprintf(buf, cap, "%d", code);
	return buf;
}

static void print_help(verb v)
{
	fputs(v == VERB_ASK      ? ask_help
	      : v == VERB_STREAM ? stream_help
	      : v == VERB_STATS  ? stats_help
				 : tell_help,
	      stdout);
	if (v != VERB_STATS)
		fputs(json_help, stdout);
	fputs(common_help, stdout);
}

static int usage(const args *a, const char *fmt, const char *what)
{
	fprintf(stderr, "actorflow %s: ", a->prog);
	fprintf(stderr, fmt, what);
	fprintf(stderr, " (see actorflow %s --help)\n", a->prog);
	return CLI_EXIT_USAGE;
}

/* stats takes ADDR alone, with or without an actor's name. */
static int parse_stats_addr(args *a, int npos, const char **pos)
{
	size_t len;

	if (npos != 1)
		return usage(a, "%s",
			     npos == 0 ? "ADDR is required"
				       : "only ADDR is taken");
	len = strlen(pos[0]);
	if ((strncmp(pos[0], "ipc://", 6) != 0 &&
	     strncmp(pos[0], "tcp://", 6) != 0) ||
	    len >= sizeof(a->addr_buf))
		return usage(a,
			     "address '%s' is not ipc://PATH[#ACTOR] or "
			     "tcp://HOST:PORT[#ACTOR]",
			     pos[0]);
	memcpy(a->addr_buf, pos[0], len + 1);
	if (a->addr_buf[len - 1] == '#')
		a->addr_buf[len - 1] = '\0';
	a->addr = a->addr_buf;
	a->type = "af.stats";
	return -1;
}

/* Checks the endpoint of a->addr (up to '#') as a connect would take it:
 * -1 when it may be used; otherwise the exit code, after saying why. An
 * ipc:// path with no socket file behind it is said at once (the connect
 * would wait for one up to the timeout, and a tell would report success
 * for a message that went nowhere). */
static int check_endpoint(const args *a)
{
	struct sockaddr_un sa;
	const char *hash = strchr(a->addr, '#');
	size_t len = hash != NULL ? (size_t)(hash - a->addr) : strlen(a->addr);
	char path[sizeof(sa.sun_path) + 1];
	struct stat st;

	if (strncmp(a->addr, "tcp://", 6) == 0) {
		const char *hostport = a->addr + 6;
		const char *end = a->addr + len;
		const char *colon = NULL;
		for (const char *q = hostport; q < end; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL || colon == hostport)
			return usage(a, "address '%s' is not tcp://HOST:PORT",
				     a->addr);
		if (cli_tcp_port(colon + 1, (size_t)(end - colon - 1)) < 0)
			return usage(a,
				     "address '%s': the port must be a number "
				     "from 1 to 65535",
				     a->addr);
		return -1;
	}
	/* ipc:// (parse_args saw to that). */
	len -= 6;
	if (len == 0)
		return usage(a, "address '%s' has no socket path", a->addr);
	if (len >= sizeof(sa.sun_path)) {
		fprintf(stderr,
			"actorflow %s: address '%s': the socket path is %zu "
			"bytes, at most %zu fit (see actorflow %s --help)\n",
			a->prog, a->addr, len, sizeof(sa.sun_path) - 1,
			a->prog);
		return CLI_EXIT_USAGE;
	}
	memcpy(path, a->addr + 6, len);
	path[len] = '\0';
	/* A Linux abstract socket ("@name") has no file to look at. */
	if (path[0] == '@')
		return -1;
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -1; /* cannot look: the connect will say */
		fprintf(stderr,
			"actorflow %s: no node listening at %s (no such "
			"file)\n",
			a->prog, path);
		return CLI_EXIT_NOBODY;
	}
	if (!S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
			"actorflow %s: no node listening at %s (not a "
			"socket)\n",
			a->prog, path);
		return CLI_EXIT_NOBODY;
	}
	return -1;
}

/* True when s is the option name, alone or as name=VALUE. */
static bool option_is(const char *s, const char *name)
{
	size_t n = strlen(name);

	return strncmp(s, name, n) == 0 && (s[n] == '\0' || s[n] == '=');
}

/* -1: go on; otherwise the exit code. */
static int parse_args(verb v, int argc, char **argv, args *a)
{
	const char *pos[3] = {NULL, NULL, NULL};
	int npos = 0;
	bool options = true;

	a->prog = argv[0];
	a->timeout_ms = DEFAULT_TIMEOUT_MS;
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char *val = NULL;
		if (options && strcmp(s, "--") == 0) {
			options = false;
		} else if (options &&
			   (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
			print_help(v);
			return CLI_EXIT_OK;
		} else if (options && v == VERB_STREAM &&
			   strcmp(s, "--json") == 0) {
			a->json_lines = true;
		} else if (options && v == VERB_ASK &&
			   (strcmp(s, "--quiet") == 0 ||
			    strcmp(s, "-q") == 0)) {
			a->quiet = true;
		} else if (options && strncmp(s, "--timeout", 9) == 0 &&
			   (s[9] == '\0' || s[9] == '=')) {
			char *end;
			long long ms;
			if (s[9] == '=')
				val = s + 10;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage(a, "%s needs a value",
					     "--timeout");
			ms = strtoll(val, &end, 10);
			if (*val == '\0' || *end != '\0' || ms <= 0 ||
			    ms > 86400000LL * 365)
				return usage(a,
					     "--timeout '%s' is not a number "
					     "of milliseconds above 0",
					     val);
			a->timeout_ms = ms;
		} else if (options && (option_is(s, "--curve-key") ||
				       option_is(s, "--server-key"))) {
			const char *name =
				s[2] == 'c' ? "--curve-key" : "--server-key";
			if (strchr(s, '=') != NULL)
				val = strchr(s, '=') + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage(a, "%s needs a file", name);
			if (s[2] == 'c')
				a->curve_key = val;
			else
				a->server_key = val;
		} else if (options && strncmp(s, "--", 2) == 0) {
			return usage(a, "unknown option '%s'", s);
		} else if (npos < 3) {
			pos[npos++] = s;
		} else {
			return usage(a, "unexpected argument '%s'", s);
		}
	}
	if (v == VERB_STATS)
		return parse_stats_addr(a, npos, pos);
	if (npos < 2)
		return usage(a, "%s", "ADDR and TYPE are required");
	a->addr = pos[0];
	a->type = pos[1];
	a->json = pos[2];
	if ((strncmp(a->addr, "ipc://", 6) != 0 &&
	     strncmp(a->addr, "tcp://", 6) != 0) ||
	    strchr(a->addr, '#') == NULL || strchr(a->addr, '#')[1] == '\0')
		return usage(a,
			     "address '%s' is not ipc://PATH#ACTOR or "
			     "tcp://HOST:PORT#ACTOR",
			     a->addr);
	return -1;
}

/* The exit code for err, after saying what happened on stderr. msg, when
 * not NULL, is the error message the remote side sent. */
static int report(const args *a, af_err err, const af_msg *msg)
{
	char num[24];
	const char *text = NULL;

	if (msg != NULL && af_msg_kind(msg) == AF_KIND_ERROR) {
		/* The error's own code: a stream reports a producer's
		 * AF_EAGAIN or AF_EOF as AF_EREMOTE (see af_stream_next). */
		int code = af_msg_error(msg, &text);

		fprintf(stderr, "error: %s: %s\n",
			cli_errname(code, num, sizeof(num)),
			text != NULL && text[0] != '\0' ? text
							: af_strerror(code));
		/* The requester's deadline travels with the request: a node's
		 * gateway or the actor may see it pass a moment before this
		 * process does, and answer AF_ETIMEDOUT. Either way the
		 * deadline passed. */
		return code == AF_ETIMEDOUT ? CLI_EXIT_TIMEOUT
					    : CLI_EXIT_REMOTE;
	}
	switch (err) {
	case AF_ETIMEDOUT:
		fprintf(stderr,
			"error: AF_ETIMEDOUT: no answer from %s within "
			"%lld ms\n",
			a->addr, (long long)a->timeout_ms);
		return CLI_EXIT_TIMEOUT;
	case AF_EAUTH:
		fprintf(stderr,
			"error: AF_EAUTH: %s refused the connection: CURVE "
			"keys missing, wrong or not allowed (--curve-key, "
			"--server-key)\n",
			a->addr);
		return CLI_EXIT_OTHER;
	case AF_EPEERDOWN:
		fprintf(stderr,
			"error: AF_EPEERDOWN: the process serving %s went "
			"away\n",
			a->addr);
		return CLI_EXIT_PEERDOWN;
	case AF_EADDR:
	case AF_EINVAL:
	case AF_ENOTFOUND:
	case AF_EMSGSIZE:
		fprintf(stderr, "error: %s: %s\n",
			cli_errname(err, num, sizeof(num)), af_strerror(err));
		return CLI_EXIT_USAGE;
	default:
		fprintf(stderr, "error: %s: %s\n",
			cli_errname(err, num, sizeof(num)), af_strerror(err));
		return CLI_EXIT_OTHER;
	}
}

static int print_json(const af_value *v, const char *before, const char *after)
{
	char *json = NULL;
	af_err err = cli_value_to_json(v, &json, NULL);

	if (err != AF_OK) {
		fprintf(stderr, "error: cannot print the answer as JSON: %s\n",
			af_strerror(err));
		return CLI_EXIT_OTHER;
	}
	printf("%s%s%s\n", before, json, after);
	fflush(stdout);
	free(json);
	return CLI_EXIT_OK;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints the chunk m of a raw stream; true when the output now ends with a
 * newline. */
static int print_raw_chunk(const af_msg *m, bool *at_line_start)
{
	const af_value *delta = af_value_get(af_msg_payload(m), "delta");
	const char *s;
	size_t len;

	if (af_value_str(delta, &s, &len) == AF_OK) {
		if (len > 0) {
			fwrite(s, 1, len, stdout);
			*at_line_start = s[len - 1] == '\n';
		}
		fflush(stdout);
		return CLI_EXIT_OK;
	}
	if (!*at_line_start)
		putchar('\n');
	*at_line_start = true;
	return print_json(af_msg_payload(m), "", "");
}

/* The next part of s, waiting until deadline (ms, now_ms's clock). The
 * stream's own deadline ends it; the margin only guards against waiting
 * forever should that fail. */
static af_err next_part(af_stream *s, int64_t deadline, af_msg **m)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		af_err err = af_stream_next(s, (left > 0 ? left : 0) + 1000, m);

		if (err != AF_EAGAIN)
			return err;
		if (now_ms() >= deadline + 1000)
			return AF_ETIMEDOUT;
	}
}

static int do_stream(const args *a, af_client *c, const af_payload *p)
{
	af_stream *s = NULL;
	af_msg *m = NULL;
	bool at_line_start = true;
	bool any_chunk = false;
	int64_t deadline = now_ms() + a->timeout_ms;
	int code = CLI_EXIT_OK;
	af_err err;

	err = af_client_stream(c, a->addr, a->type, p, a->timeout_ms, &s);
	if (err != AF_OK)
		return report(a, err, NULL);
	for (;;) {
		err = next_part(s, deadline, &m);
		if (err != AF_OK)
			break;
		any_chunk = true;
		if (a->json_lines) {
			char before[48];
			snprintf(before, sizeof(before),
				 "{\"seq\":%llu,\"chunk\":",
				 (unsigned long long)af_msg_seq(m));
			code = print_json(af_msg_payload(m), before, "}");
		} else {
			code = print_raw_chunk(m, &at_line_start);
		}
		af_msg_destroy(&m);
		if (code != CLI_EXIT_OK)
			break;
	}
	if (code == CLI_EXIT_OK) {
		if (!a->json_lines && !at_line_start)
			putchar('\n');
		if (err == AF_EOF) {
			if (a->json_lines)
				code = print_json(af_msg_payload(m),
						  "{\"end\":", "}");
			else if (!any_chunk && af_msg_kind(m) == AF_KIND_REPLY)
				code = print_json(af_msg_payload(m), "", "");
		} else {
			fflush(stdout);
			code = report(a, err, m);
		}
	}
	fflush(stdout);
	af_msg_destroy(&m);
	af_stream_close(&s);
	return code;
}

/* Where a progress line on stderr stands. */
typedef struct progress {
	bool tty;   /* one line, rewritten with \r */
	size_t len; /* of the line shown (tty), 0: none */
} progress;

/* n and total in one unit, chosen by total: "3.1/9.8 MB". */
static void format_bytes(char *buf, size_t cap, uint64_t n, uint64_t total)
{
	static const char *const units[] = {"kB", "MB", "GB", "TB"};
	double div = 1000;
	size_t u = 0;

	if (total < 1000) {
		snprintf(buf, cap, "%llu/%llu B", (unsigned long long)n,
			 (unsigned long long)total);
		return;
	}
	while (u + 1 < sizeof(units) / sizeof(units[0]) &&
	       (double)total >= div * 1000) {
		div *= 1000;
		u++;
	}
	snprintf(buf, cap, "%.1f/%.1f %s", (double)n / div, (double)total / div,
		 units[u]);
}

/* Shows a progress chunk: "TYPE: 12/40 files, 3.1/9.8 MB" for the
 * retrieval actor's shape, else the chunk as JSON. One that cannot be
 * printed is left out: progress only informs. */
static void show_progress(const args *a, progress *pr, const af_msg *m)
{
	const af_value *v = af_msg_payload(m);
	int64_t files = af_value_get_int(v, "files", -1);
	int64_t files_total = af_value_get_int(v, "files_total", -1);
	int64_t bytes = af_value_get_int(v, "bytes", -1);
	int64_t bytes_total = af_value_get_int(v, "bytes_total", -1);
	char *json = NULL;
	char buf[512];
	char sizes[64];
	const char *line = buf;
	size_t len;

	if (files >= 0 && files_total >= 0 && bytes >= 0 && bytes_total >= 0) {
		format_bytes(sizes, sizeof(sizes), (uint64_t)bytes,
			     (uint64_t)bytes_total);
		snprintf(buf, sizeof(buf), "%.200s: %lld/%lld files, %s",
			 a->type, (long long)files, (long long)files_total,
			 sizes);
	} else if (cli_value_to_json(v, &json, NULL) == AF_OK) {
		line = json;
	} else {
		return;
	}
	len = strlen(line);
	if (pr->tty) {
		/* Spaces cover what a longer line before left. */
		fprintf(stderr, "\r%s%*s", line,
			pr->len > len ? (int)(pr->len - len) : 0, "");
		pr->len = len > pr->len ? len : pr->len;
		if (pr->len == 0)
			pr->len = 1;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	fflush(stderr);
	free(json);
}

/* Ends the progress line on a terminal, before anything else is said. */
static void end_progress(progress *pr)
{
	if (pr->len > 0)
		fputc('\n', stderr);
	pr->len = 0;
}

/* ask: a request sent as a stream, so that an actor may report progress
 * before its answer; an actor that answers plainly is printed as
 * before. */
static int do_ask(const args *a, af_client *c, const af_payload *p)
{
	progress pr = {.tty = isatty(STDERR_FILENO) == 1};
	af_stream *s = NULL;
	af_msg *m = NULL;
	int64_t deadline = now_ms() + a->timeout_ms;
	int code;
	af_err err;

	err = af_client_stream(c, a->addr, a->type, p, a->timeout_ms, &s);
	if (err != AF_OK)
		return report(a, err, NULL);
	while ((err = next_part(s, deadline, &m)) == AF_OK) {
		if (!a->quiet)
			show_progress(a, &pr, m);
		af_msg_destroy(&m);
	}
	end_progress(&pr);
	code = err == AF_EOF ? print_json(af_msg_payload(m), "", "")
			     : report(a, err, m);
	af_msg_destroy(&m);
	af_stream_close(&s);
	return code;
}

/* The client, with CURVE keys when given. -1, or the exit code after
 * saying why there is none. */
static int client_new(const args *a, af_client **c)
{
	char secret[AF_CURVE_KEY_LEN + 1];
	char server[AF_CURVE_KEY_LEN + 1];
	char why[512];
	af_curve_keys keys = {.server_key = server, .secret_key = secret};
	af_client_opts opts = {.curve = &keys};
	af_err err;

	if ((a->curve_key == NULL) != (a->server_key == NULL)) {
		fprintf(stderr,
			"actorflow %s: --curve-key and --server-key go "
			"together\n",
			a->prog);
		return CLI_EXIT_USAGE;
	}
	if (a->curve_key == NULL)
		err = af_client_new(c, NULL);
	else if ((err = cli_key_read_secret(a->curve_key, secret, why,
					    sizeof(why))) != AF_OK ||
		 (err = cli_key_read_public(a->server_key, server, why,
					    sizeof(why))) != AF_OK) {
		fprintf(stderr, "actorflow %s: %s\n", a->prog, why);
		return err == AF_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_OTHER;
	} else {
		err = af_client_new_opts(c, NULL, &opts);
	}
	memset(secret, 0, sizeof(secret));
	return err == AF_OK ? -1 : report(a, err, NULL);
}

/* Reads all of fp (named name in messages) into *out, NUL-terminated.
 * -1 when read; otherwise the exit code, after saying why on stderr. */
static int read_all(const args *a, FILE *fp, const char *name, char **out)
{
	af_err err = cli_read_text(fp, (size_t)MAX_JSON_MIB << 20, out);

	switch (err) {
	case AF_OK:
		return -1;
	case AF_EMSGSIZE:
		fprintf(stderr,
			"actorflow %s: %s: larger than %d MiB: not a "
			"payload\n",
			a->prog, name, MAX_JSON_MIB);
		return CLI_EXIT_USAGE;
	case AF_EINVAL:
		fprintf(stderr, "actorflow %s: %s holds a NUL byte: not JSON\n",
			a->prog, name);
		return CLI_EXIT_USAGE;
	case AF_ESYS:
		fprintf(stderr, "actorflow %s: cannot read %s: %s\n", a->prog,
			name, strerror(errno));
		return CLI_EXIT_USAGE;
	default:
		return report(a, err, NULL);
	}
}

/* The JSON text of the payload: the argument itself, or what "-" (stdin)
 * or "@FILE" names, in *buf (the caller frees it). -1, or the exit code
 * after saying why there is none. */
static int payload_text(const args *a, const char **text, char **buf,
			char *name, size_t name_cap)
{
	const char *arg = a->json;
	FILE *fp;
	int code;

	*buf = NULL;
	*text = arg;
	snprintf(name, name_cap, "argument");
	/* Neither '-' alone nor '@' starts a JSON text: no payload is
	 * taken for another. */
	if (strcmp(arg, "-") == 0 || strcmp(arg, "@-") == 0) {
		snprintf(name, name_cap, "stdin");
		code = read_all(a, stdin, name, buf);
	} else if (arg[0] == '@') {
		snprintf(name, name_cap, "%s", arg + 1);
		fp = fopen(arg + 1, "r");
		if (fp == NULL) {
			fprintf(stderr, "actorflow %s: cannot read %s: %s\n",
				a->prog, arg + 1, strerror(errno));
			return CLI_EXIT_USAGE;
		}
		code = read_all(a, fp, name, buf);
		fclose(fp);
	} else {
		return -1;
	}
	*text = *buf;
	return code;
}

static int run(verb v, int argc, char **argv)
{
	args a = {0};
	af_payload *p = NULL;
	af_client *c = NULL;
	af_msg *reply = NULL;
	char why[256];
	int code = parse_args(v, argc, argv, &a);
	af_err err;

	if (code >= 0)
		return code;
	/* A reader that goes away (| head) ends the output, not the
	 * process with a signal. */
	signal(SIGPIPE, SIG_IGN);
	if (a.json != NULL) {
		const char *text;
		char *buf;
		char name[256];
		code = payload_text(&a, &text, &buf, name, sizeof(name));
		if (code >= 0)
			return code;
		err = af_payload_new(&p);
		if (err == AF_OK) {
			err = cli_json_to_payload(text, p, why, sizeof(why));
			if (err != AF_OK && err != AF_ENOMEM) {
				fprintf(stderr,
					"actorflow %s: bad JSON %s%s: %s\n",
					a.prog,
					buf == NULL                  ? ""
					: strcmp(name, "stdin") == 0 ? "on "
								     : "in ",
					name, why);
				af_payload_destroy(&p);
				free(buf);
				return CLI_EXIT_USAGE;
			}
		}
		free(buf);
		if (err != AF_OK) {
			af_payload_destroy(&p);
			return report(&a, err, NULL);
		}
	}
	code = check_endpoint(&a);
	if (code < 0)
		code = client_new(&a, &c);
	if (code >= 0) {
		af_payload_destroy(&p);
		return code;
	}
	switch (v) {
	case VERB_ASK:
		code = do_ask(&a, c, p);
		break;
	case VERB_STREAM:
		code = do_stream(&a, c, p);
		break;
	case VERB_TELL:
		err = af_client_tell(c, a.addr, a.type, p, a.timeout_ms);
		code = err == AF_OK ? CLI_EXIT_OK : report(&a, err, NULL);
		break;
	case VERB_STATS:
		err = af_client_request(c, a.addr, a.type, NULL, a.timeout_ms,
					&reply);
		code = err == AF_OK ? print_json(af_msg_payload(reply), "", "")
				    : report(&a, err, reply);
		break;
	}
	af_msg_destroy(&reply);
	af_client_destroy(&c);
	af_payload_destroy(&p);
	return code;
}

int cli_ask_main(int argc, char **argv)
{
	return run(VERB_ASK, argc, argv);
}

int cli_stream_main(int argc, char **argv)
{
	return run(VERB_STREAM, argc, argv);
}

int cli_tell_main(int argc, char **argv)
{
	return run(VERB_TELL, argc, argv);
}

int cli_stats_main(int argc, char **argv)
{
	return run(VERB_STATS, argc, argv);
}
