#include <stdio.h>
#include <string.h>

#include "ctx.h"
#include "envelope.h"

af_err af__addr_parse(const char *addr, const char **key, size_t *key_len,
		      bool *remote, const char **to, size_t *to_len)
{
	const char *scheme_end;
	const char *hash;

	if (addr == NULL || addr[0] == '\0')
		return AF_EADDR;
	scheme_end = strstr(addr, "://");
	if (scheme_end == NULL) {
		/* A local actor's name: reached by inproc; the target needs no
		 * "to" because the connection leads to it alone. */
		*key = addr;
		*key_len = strlen(addr);
		*remote = false;
		*to = NULL;
		*to_len = 0;
		return *key_len <= AF__NAME_MAX ? AF_OK : AF_EADDR;
	}
	if (strncmp(addr, "ipc://", 6) != 0 && strncmp(addr, "tcp://", 6) != 0)
		return AF_EADDR;
	hash = strchr(scheme_end + 3, '#');
	*key = addr;
	*remote = true;
	if (hash == NULL) {
		*key_len = strlen(addr);
		*to = NULL;
		*to_len = 0;
	} else {
		*key_len = (size_t)(hash - addr);
		*to = hash + 1;
		*to_len = strlen(hash + 1);
		if (*to_len == 0 || *to_len > AF__NAME_MAX)
			return AF_EADDR;
	}
	return *key_len > 6 ? AF_OK : AF_EADDR;
}

bool af__addr_is_name(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > AF__NAME_MAX ||
	    memchr(s, '\0', len) != NULL || memchr(s, '#', len) != NULL)
		return false;
	/* "://" would read as an endpoint. */
	for (size_t i = 0; i + 3 <= len; i++)
		if (memcmp(s + i, "://", 3) == 0)
			return false;
	return true;
}

void af__inproc_endpoint(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "inproc://af/%s", name);
}
