/*
 * The connections clients hold to a node's endpoints, as the kernel lists
 * them (/proc/net/unix, /proc/net/tcp, /proc/net/tcp6): how a stopping
 * node knows whether anyone may still be waiting for an answer. Linux only;
 * elsewhere the count is unknown and a stopping node waits its whole grace
 * period.
 */
#ifndef AF_CLI_CONNECTIONS_H
#define AF_CLI_CONNECTIONS_H

#include <stddef.h>

#define CLI_CONNECTIONS_MAX 64

typedef struct connections {
	const char *ipc_paths[CLI_CONNECTIONS_MAX];
	size_t nipc;
	unsigned tcp_ports[CLI_CONNECTIONS_MAX];
	size_t ntcp;
} connections;

void connections_init(connections *c);
/* Remembers an endpoint the node binds (NULL and others are ignored). The
 * string must outlive c. */
void connections_add(connections *c, const char *endpoint);
/* Connections accepted by this process on those endpoints and still open;
 * -1 when they cannot be counted. */
int connections_count(const connections *c);
void connections_fini(connections *c);

#endif
