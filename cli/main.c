/*
 * actorflow: host actors in a process and talk to them from a shell.
 */
#include <stdio.h>
#include <string.h>

#include <actorflow/actorflow.h>

#include "cli.h"

static const char usage_text[] =
	"Usage: actorflow COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  node --config FILE          host the actors FILE lists, exported\n"
	"  ask ADDR TYPE [JSON]        send a request, print the reply as "
	"JSON\n"
	"  stream ADDR TYPE [JSON]     send a request, print its stream\n"
	"  tell ADDR TYPE [JSON]       send a one-way message\n"
	"  run FLOW                    run the steps of a flow file\n"
	"  gather FILE                 send a gather request, print results\n"
	"  keygen NAME [--dir DIR]     write a CURVE keypair to key files\n"
	"  stats ADDR                  an actor's or a node's statistics as "
	"JSON\n"
	"  up FILE                     run the nodes FILE lists, restart "
	"failed ones\n"
	"  help COMMAND                the help of COMMAND (or COMMAND "
	"--help)\n"
	"\n"
	"ADDR is ipc:///path/node.sock#actor or tcp://127.0.0.1:PORT#actor.\n"
	"JSON may be - (read from stdin) or @FILE (read from FILE).\n"
	"\n" CLI_EXIT_CODES_HELP CLI_EXIT_NOBODY_HELP
	"     (ask, stream, tell, stats)\n";

typedef struct command {
	const char *name;
	int (*main)(int argc, char **argv);
} command;

static const command commands[] = {
	{"node", cli_node_main},     {"ask", cli_ask_main},
	{"stream", cli_stream_main}, {"tell", cli_tell_main},
	{"run", cli_run_main},       {"gather", cli_gather_main},
	{"keygen", cli_keygen_main}, {"stats", cli_stats_main},
	{"up", cli_up_main},
};

static const command *find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const command *cmd;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_text, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("actorflow %d.%d.%d\n", AF_VERSION_MAJOR,
		       AF_VERSION_MINOR, AF_VERSION_PATCH);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0) {
		char help[] = "--help";
		char *sub[] = {argc > 2 ? argv[2] : NULL, help, NULL};
		if (argc < 3) {
			fputs(usage_text, stdout);
			return CLI_EXIT_OK;
		}
		cmd = find(argv[2]);
		if (cmd != NULL)
			return cmd->main(2, sub);
	} else {
		cmd = find(argv[1]);
		if (cmd != NULL)
			return cmd->main(argc - 1, argv + 1);
	}
	fprintf(stderr,
		"actorflow: unknown command '%s' (see actorflow --help)\n",
		argv[argc > 2 && strcmp(argv[1], "help") == 0 ? 2 : 1]);
	return CLI_EXIT_USAGE;
}
