#include <stddef.h>

#include "actorflow/err.h"

struct err_info {
	int code;
	const char *name;
	const char *text;
};

static const struct err_info err_table[] = {
	{AF_OK, "AF_OK", "success"},
	{AF_ENOMEM, "AF_ENOMEM", "out of memory"},
	{AF_EINVAL, "AF_EINVAL", "invalid argument"},
	{AF_ENOTFOUND, "AF_ENOTFOUND", "not found"},
	{AF_EEXIST, "AF_EEXIST", "name already taken"},
	{AF_ETIMEDOUT, "AF_ETIMEDOUT", "deadline passed"},
	{AF_EAGAIN, "AF_EAGAIN", "mailbox full, try again"},
	{AF_ECANCELED, "AF_ECANCELED", "cancelled by the requester"},
	{AF_EPEERDOWN, "AF_EPEERDOWN", "peer went away"},
	{AF_ESTOPPED, "AF_ESTOPPED", "actor stopping or stopped"},
	{AF_EPROTO, "AF_EPROTO", "malformed or unexpected message"},
	{AF_EMSGSIZE, "AF_EMSGSIZE", "message too large"},
	{AF_EVERSION, "AF_EVERSION", "unsupported protocol version"},
	{AF_ENOTSUP, "AF_ENOTSUP", "no handler for this message type"},
	{AF_ENOREPLY, "AF_ENOREPLY", "handler returned without replying"},
	{AF_ETYPE, "AF_ETYPE", "value of another type"},
	{AF_ERANGE, "AF_ERANGE", "number out of range"},
	{AF_ESYS, "AF_ESYS", "system call failed"},
	{AF_EADDR, "AF_EADDR", "malformed address or endpoint"},
	{AF_EREMOTE, "AF_EREMOTE", "remote side failed"},
	{AF_EOF, "AF_EOF", "stream ended"},
	{AF_EHTTP, "AF_EHTTP", "HTTP error status"},
	{AF_EIO, "AF_EIO", "storage error"},
	{AF_EAUTH, "AF_EAUTH", "authentication refused"},
	{AF_EUSER, "AF_EUSER", "application error"},
};

static const struct err_info *lookup(int err)
{
	/* Codes are dense from AF_OK, so the common case is a direct index;
	 * the scan covers AF_EUSER and stays right if the table grows. */
	const size_t n = sizeof(err_table) / sizeof(err_table[0]);

	if (err >= 0 && (size_t)err < n && err_table[err].code == err)
		return &err_table[err];
	for (size_t i = 0; i < n; i++) {
		if (err_table[i].code == err)
			return &err_table[i];
	}
	return NULL;
}

const char *af_strerror(int err)
{
	const struct err_info *info = lookup(err);

	return info != NULL ? info->text : "unknown error";
}

const char *af_errname(int err)
{
	const struct err_info *info = lookup(err);

	return info != NULL ? info->name : NULL;
}
