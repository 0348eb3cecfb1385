#include "connections.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void connections_init(connections *c)
{
	memset(c, 0, sizeof(*c));
}

void connections_fini(connections *c)
{
	memset(c, 0, sizeof(*c));
}

void connections_add(connections *c, const char *endpoint)
{
	const char *colon;

	if (endpoint == NULL)
		return;
	if (strncmp(endpoint, "ipc://", 6) == 0 &&
	    c->nipc < CLI_CONNECTIONS_MAX)
		c->ipc_paths[c->nipc++] = endpoint + 6;
	else if (strncmp(endpoint, "tcp://", 6) == 0 &&
		 c->ntcp < CLI_CONNECTIONS_MAX &&
		 (colon = strrchr(endpoint, ':')) != NULL)
		c->tcp_ports[c->ntcp++] =
			(unsigned)strtoul(colon + 1, NULL, 10);
}

/* The inodes of this process's sockets, so that connections of another
 * process on the same path (a new node started after this one removed
 * its socket file) do not count. */
typedef struct inodes {
	unsigned long *v;
	size_t n;
	size_t cap;
} inodes;

static int own_sockets(inodes *in)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[300];
		char link[64];
		unsigned long ino;
		ssize_t n;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		if (in->n == in->cap) {
			size_t cap = in->cap == 0 ? 64 : in->cap * 2;
			unsigned long *v = realloc(in->v, cap * sizeof(*v));
			if (v == NULL) {
				closedir(d);
				return -1;
			}
			in->v = v;
			in->cap = cap;
		}
		in->v[in->n++] = ino;
	}
	closedir(d);
	return 0;
}

static int has(const inodes *in, unsigned long ino)
{
	for (size_t i = 0; i < in->n; i++)
		if (in->v[i] == ino)
			return 1;
	return 0;
}

/* /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path"; an
 * accepted connection carries its listener's path, state 03 while
 * connected. */
static int count_unix(const connections *c, const inodes *in)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[4352];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned st;
		unsigned long ino;
		int off = 0;
		char *path;
		if (sscanf(line, "%*s %*s %*s %*s %*s %x %lu %n", &st, &ino,
			   &off) != 2 ||
		    off == 0 || st != 3 || !has(in, ino))
			continue;
		path = line + off;
		path[strcspn(path, "\n")] = '\0';
		for (size_t i = 0; i < c->nipc; i++)
			if (strcmp(path, c->ipc_paths[i]) == 0)
				n++;
	}
	fclose(f);
	return n;
}

/* /proc/net/tcp{,6}: "sl local rem st ... uid timeout inode"; state 01 is
 * ESTABLISHED, the local port is hex after the ':'. */
static int count_tcp(const char *file, const connections *c, const inodes *in)
{
	FILE *f = fopen(file, "r");
	char line[512];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		char local[64];
		unsigned st;
		unsigned long ino;
		char *colon;
		unsigned port;
		if (sscanf(line, "%*s %63s %*s %x %*s %*s %*s %*s %*s %lu",
			   local, &st, &ino) != 3 ||
		    st != 1 || !has(in, ino))
			continue;
		colon = strrchr(local, ':');
		if (colon == NULL)
			continue;
		port = (unsigned)strtoul(colon + 1, NULL, 16);
		for (size_t i = 0; i < c->ntcp; i++)
			if (c->tcp_ports[i] == port)
				n++;
	}
	fclose(f);
	return n;
}

int connections_count(const connections *c)
{
	inodes in = {0};
	int total = 0;

	if (c->nipc == 0 && c->ntcp == 0)
		return 0;
	if (own_sockets(&in) != 0) {
		free(in.v);
		return -1;
	}
	if (c->nipc > 0) {
		int n = count_unix(c, &in);
		total = n < 0 ? -1 : n;
	}
	if (total >= 0 && c->ntcp > 0)
		total += count_tcp("/proc/net/tcp", c, &in) +
			 count_tcp("/proc/net/tcp6", c, &in);
	free(in.v);
	return total;
}
