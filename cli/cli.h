/*
 * The actorflow command: subcommands and the exit codes scripts rely on.
 */
#ifndef AF_CLI_H
#define AF_CLI_H

#include <stddef.h>

#include <actorflow/err.h>

/* Exit codes, part of the command's interface (documented in --help and
 * README.md). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_OTHER = 1,    /* anything not below */
	CLI_EXIT_USAGE = 2,    /* bad arguments, bad JSON, bad config */
	CLI_EXIT_TIMEOUT = 3,  /* no answer within --timeout */
	CLI_EXIT_PEERDOWN = 4, /* the process serving the address went away */
	CLI_EXIT_REMOTE = 5,   /* the actor answered with an error */
	CLI_EXIT_NOBODY = 6    /* ask, stream, tell, stats: no socket file at
				  an ipc address; nothing was sent */
};

#define CLI_EXIT_CODES_HELP                                                    \
	"Exit codes:\n"                                                        \
	"  0  ok\n"                                                            \
	"  1  any other failure\n"                                             \
	"  2  bad input or usage (arguments, JSON, address, config)\n"         \
	"  3  timeout: no answer within --timeout (also an actor's\n"          \
	"     AF_ETIMEDOUT: the deadline travels with the request)\n"          \
	"  4  peer down: the process serving the address went away\n"          \
	"  5  remote error: the actor answered with an error, printed on\n"    \
	"     stderr as 'error: AF_EINVAL: <its message>'\n"

/* The code only ask, stream, tell and stats give. */
#define CLI_EXIT_NOBODY_HELP                                                   \
	"  6  no node listening: no socket file at the ipc address's path\n"   \
	"     (or not a socket); nothing was sent\n"

/* Each subcommand: argv[0] is the subcommand's name. Returns the exit
 * code. */
int cli_node_main(int argc, char **argv);
int cli_ask_main(int argc, char **argv);
int cli_stream_main(int argc, char **argv);
int cli_tell_main(int argc, char **argv);
int cli_run_main(int argc, char **argv);
int cli_gather_main(int argc, char **argv);
int cli_keygen_main(int argc, char **argv);
int cli_stats_main(int argc, char **argv);
int cli_up_main(int argc, char **argv);

/* The symbolic name of an error code ("AF_EINVAL"), or its number as text
 * for application codes; buf holds the number. */
const char *cli_errname(int code, char *buf, size_t cap);

#endif
