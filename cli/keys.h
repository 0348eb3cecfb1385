/*
 * CURVE key files (the format is described in include/actorflow/curve.h):
 * NAME.key holds a public key, NAME.key_secret a secret key and must be
 * accessible to its owner alone. Every function writes a one-line message
 * naming the file into err on failure, never a key.
 */
#ifndef AF_CLI_KEYS_H
#define AF_CLI_KEYS_H

#include <stddef.h>

#include <actorflow/actorflow.h>

#define CLI_KEY_SECRET_SUFFIX "_secret"

/* Reads the public key file at path into key. AF_OK; AF_EINVAL (no key in
 * it), AF_ESYS (cannot be read). */
af_err cli_key_read_public(const char *path, char key[AF_CURVE_KEY_LEN + 1],
			   char *err, size_t cap);

/* Reads a secret key file, refusing one that group or others may access.
 * path may name NAME.key_secret, or NAME.key with NAME.key_secret beside
 * it. AF_OK; AF_EINVAL (no key in it, or its mode lets others in),
 * AF_ESYS, AF_ENOMEM. */
af_err cli_key_read_secret(const char *path, char key[AF_CURVE_KEY_LEN + 1],
			   char *err, size_t cap);

/* Reads every public key file (NAME.key) of dir into *keys, *n of them,
 * sorted by file name; *keys is freed by the caller. AF_OK; AF_EINVAL
 * (a bad file, or none), AF_ESYS, AF_ENOMEM. */
af_err cli_keys_read_dir(const char *dir, char (**keys)[AF_CURVE_KEY_LEN + 1],
			 size_t *n, char *err, size_t cap);

/* Makes a keypair and writes dir/NAME.key (0644) and dir/NAME.key_secret
 * (0600), refusing to overwrite either; pub receives the public key.
 * AF_OK; AF_EINVAL (a bad name), AF_EEXIST, AF_ESYS, AF_ENOTSUP. */
af_err cli_keygen_write(const char *dir, const char *name,
			char pub[AF_CURVE_KEY_LEN + 1], char *err, size_t cap);

#endif
