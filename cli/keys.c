#include "keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Key files are a line or two: anything larger is not one. */
#define KEY_FILE_MAX 4096

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/* Finds the key in text: the first line that is neither empty nor a
 * comment, without its trailing blanks. */
static bool parse_key(char *text, char key[AF_CURVE_KEY_LEN + 1])
{
	char *line = text;

	while (line != NULL && *line != '\0') {
		char *next = strchr(line, '\n');
		char *end;
		if (next != NULL)
			*next++ = '\0';
		end = line + strlen(line);
		while (end > line &&
		       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line != '\0' && *line != '#') {
			if (!af_curve_key_valid(line))
				return false;
			memcpy(key, line, AF_CURVE_KEY_LEN + 1);
			return true;
		}
		line = next;
	}
	return false;
}

static af_err read_key(const char *path, bool secret,
		       char key[AF_CURVE_KEY_LEN + 1], char *err, size_t cap)
{
	char text[KEY_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	bool ok;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, cap, "cannot read %s: %s", path, strerror(errno));
		return AF_ESYS;
	}
	/* The mode of the file opened, not of whatever the path names a
	 * moment later. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, cap, "%s is not a regular file", path);
		close(fd);
		return AF_EINVAL;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, cap,
			 "%s: mode %04o lets group or others read the "
			 "secret key: refused (chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return AF_EINVAL;
	}
	while (len < KEY_FILE_MAX &&
	       (n = read(fd, text + len, KEY_FILE_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, cap, "cannot read %s: %s", path,
				 strerror(errno));
			close(fd);
			wipe(text, len);
			return AF_ESYS;
		}
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	ok = strlen(text) == len && parse_key(text, key);
	wipe(text, sizeof(text));
	if (!ok) {
		snprintf(err, cap,
			 "%s holds no CURVE %s key (a line of 40 Z85 "
			 "characters, as `actorflow keygen` writes)",
			 path, secret ? "secret" : "public");
		return AF_EINVAL;
	}
	return AF_OK;
}

af_err cli_key_read_public(const char *path, char key[AF_CURVE_KEY_LEN + 1],
			   char *err, size_t cap)
{
	return read_key(path, false, key, err, cap);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s);
	size_t m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

af_err cli_key_read_secret(const char *path, char key[AF_CURVE_KEY_LEN + 1],
			   char *err, size_t cap)
{
	char *full;
	af_err rc;

	if (!ends_with(path, ".key"))
		return read_key(path, true, key, err, cap);
	full = malloc(strlen(path) + sizeof(CLI_KEY_SECRET_SUFFIX));
	if (full == NULL)
		return AF_ENOMEM;
	strcpy(full, path);
	strcat(full, CLI_KEY_SECRET_SUFFIX);
	rc = read_key(full, true, key, err, cap);
	free(full);
	return rc;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

af_err cli_keys_read_dir(const char *dir, char (**keys)[AF_CURVE_KEY_LEN + 1],
			 size_t *n, char *err, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t count = 0;
	size_t names_cap = 0;
	af_err rc = AF_OK;

	*keys = NULL;
	*n = 0;
	if (d == NULL) {
		snprintf(err, cap, "cannot read the directory %s: %s", dir,
			 strerror(errno));
		return AF_ESYS;
	}
	while (rc == AF_OK && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !ends_with(e->d_name, ".key"))
			continue;
		if (count == names_cap) {
			size_t c = names_cap ? names_cap * 2 : 16;
			char **nn = realloc(names, c * sizeof(*nn));
			if (nn == NULL) {
				rc = AF_ENOMEM;
				break;
			}
			names = nn;
			names_cap = c;
		}
		names[count] = strdup(e->d_name);
		if (names[count] == NULL)
			rc = AF_ENOMEM;
		else
			count++;
	}
	closedir(d);
	if (rc == AF_OK && count == 0) {
		snprintf(err, cap,
			 "%s holds no public key file (NAME.key): no client "
			 "could connect",
			 dir);
		rc = AF_EINVAL;
	}
	if (rc == AF_OK) {
		qsort(names, count, sizeof(*names), name_cmp);
		*keys = calloc(count, sizeof(**keys));
		if (*keys == NULL)
			rc = AF_ENOMEM;
	}
	for (size_t i = 0; i < count && rc == AF_OK; i++) {
		size_t len = strlen(dir) + strlen(names[i]) + 2;
		char *path = malloc(len);
		if (path == NULL) {
			rc = AF_ENOMEM;
			break;
		}
		snprintf(path, len, "%s/%s", dir, names[i]);
		rc = cli_key_read_public(path, (*keys)[i], err, cap);
		free(path);
	}
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	if (rc != AF_OK) {
		free(*keys);
		*keys = NULL;
		return rc;
	}
	*n = count;
	return AF_OK;
}

static af_err write_key_file(const char *path, mode_t mode, const char *head,
			     const char *key, char *err, size_t cap)
{
	char text[256];
	int len = snprintf(text, sizeof(text), "%s\n%s\n", head, key);
	ssize_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0) {
		snprintf(err, cap, "cannot create %s: %s%s", path,
			 strerror(errno),
			 errno == EEXIST ? " (not overwritten)" : "");
		wipe(text, sizeof(text));
		return errno == EEXIST ? AF_EEXIST : AF_ESYS;
	}
	/* The umask may only take permissions away; make the mode exact. */
	if (fchmod(fd, mode) != 0)
		done = -1;
	while (done >= 0 && done < len) {
		ssize_t n = write(fd, text + done, (size_t)(len - done));
		if (n < 0 && errno == EINTR)
			continue;
		done = n < 0 ? -1 : done + n;
	}
	wipe(text, sizeof(text));
	if (close(fd) != 0 || done < 0) {
		snprintf(err, cap, "cannot write %s: %s", path,
			 strerror(errno));
		unlink(path);
		return AF_ESYS;
	}
	return AF_OK;
}

af_err cli_keygen_write(const char *dir, const char *name,
			char pub[AF_CURVE_KEY_LEN + 1], char *err, size_t cap)
{
	char secret[AF_CURVE_KEY_LEN + 1];
	char *pub_path;
	char *sec_path;
	size_t len;
	af_err rc;

	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL) {
		snprintf(err, cap,
			 "'%s' is not a key name (not empty, no '/', not "
			 "starting with '.')",
			 name);
		return AF_EINVAL;
	}
	len = strlen(dir) + strlen(name) + sizeof(CLI_KEY_SECRET_SUFFIX) + 8;
	pub_path = malloc(len);
	sec_path = malloc(len);
	if (pub_path == NULL || sec_path == NULL) {
		free(pub_path);
		free(sec_path);
		return AF_ENOMEM;
	}
	snprintf(pub_path, len, "%s/%s.key", dir, name);
	snprintf(sec_path, len, "%s/%s.key" CLI_KEY_SECRET_SUFFIX, dir, name);
	rc = af_curve_keypair(pub, secret);
	if (rc != AF_OK)
		snprintf(err, cap, "cannot make a keypair: %s",
			 af_strerror(rc));
	/* Neither file is written if either exists. */
	if (rc == AF_OK &&
	    (access(pub_path, F_OK) == 0 || access(sec_path, F_OK) == 0)) {
		snprintf(err, cap, "%s exists: not overwritten",
			 access(pub_path, F_OK) == 0 ? pub_path : sec_path);
		rc = AF_EEXIST;
	}
	if (rc == AF_OK)
		rc = write_key_file(sec_path, 0600,
				    "# actorflow CURVE secret key: keep it "
				    "private (mode 0600)",
				    secret, err, cap);
	if (rc == AF_OK) {
		rc = write_key_file(pub_path, 0644,
				    "# actorflow CURVE public key", pub, err,
				    cap);
		if (rc != AF_OK)
			unlink(sec_path);
	}
	wipe(secret, sizeof(secret));
	free(pub_path);
	free(sec_path);
	return rc;
}
