/*
 * `actorflow keygen NAME [--dir DIR]`: a CURVE keypair in key files.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <actorflow/actorflow.h>

#include "cli.h"
#include "keys.h"

static const char keygen_help[] =
	"Usage: actorflow keygen NAME [--dir DIR]\n"
	"\n"
	"Makes a CURVE keypair and writes it to DIR (default: the current\n"
	"directory, created owner-only if missing):\n"
	"  NAME.key         the public key (mode 0644): give it to the other\n"
	"                   side (a node's allowed_keys, a client's\n"
	"                   --server-key)\n"
	"  NAME.key_secret  the secret key (mode 0600): keep it; a secret "
	"file\n"
	"                   that group or others can read is refused\n"
	"Each file holds '#' comment lines and one line of 40 Z85 characters.\n"
	"Existing files are never overwritten. Prints the public key.\n"
	"\n"
	"Exit codes: 0 written, 1 could not write, 2 bad usage.\n";

int cli_keygen_main(int argc, char **argv)
{
	const char *name = NULL;
	const char *dir = ".";
	char pub[AF_CURVE_KEY_LEN + 1];
	char err[512];
	af_err rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(keygen_help, stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "--dir=", 6) == 0) {
			dir = argv[i] + 6;
		} else if (argv[i][0] != '-' && name == NULL) {
			name = argv[i];
		} else {
			fprintf(stderr,
				"actorflow keygen: unexpected '%s' (see "
				"actorflow keygen --help)\n",
				argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (name == NULL) {
		fprintf(stderr, "actorflow keygen: NAME is required (see "
				"actorflow keygen --help)\n");
		return CLI_EXIT_USAGE;
	}
	if (!af_curve_available()) {
		fprintf(stderr, "actorflow keygen: this libzmq has no CURVE "
				"support\n");
		return CLI_EXIT_OTHER;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "actorflow keygen: cannot create %s: %s\n", dir,
			strerror(errno));
		return CLI_EXIT_OTHER;
	}
	rc = cli_keygen_write(dir, name, pub, err, sizeof(err));
	if (rc != AF_OK) {
		fprintf(stderr, "actorflow keygen: %s\n", err);
		return rc == AF_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_OTHER;
	}
	printf("%s\n", pub);
	return CLI_EXIT_OK;
}
