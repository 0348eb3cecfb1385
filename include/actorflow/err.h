/*
 * actorflow: error codes.
 *
 * Every fallible call returns an af_err; 0 is success. Codes travel over the
 * wire as integers, so their values are part of the protocol and never
 * change. Applications may define their own codes from AF_EUSER upwards; the
 * runtime carries them unchanged from a handler to the requester.
 */
#ifndef ACTORFLOW_ERR_H
#define ACTORFLOW_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum af_err {
	AF_OK = 0,
	AF_ENOMEM = 1,    /* out of memory */
	AF_EINVAL = 2,    /* invalid argument */
	AF_ENOTFOUND = 3, /* no such actor, timer, watch or key */
	AF_EEXIST = 4,    /* name already taken */
	AF_ETIMEDOUT = 5, /* deadline passed */
	AF_EAGAIN = 6,    /* mailbox full: nothing was sent, try again */
	AF_ECANCELED = 7, /* cancelled by the requester */
	AF_EPEERDOWN = 8, /* the peer process or actor went away */
	AF_ESTOPPED = 9,  /* the actor is stopping or stopped */
	AF_EPROTO = 10,   /* malformed or unexpected message */
	AF_EMSGSIZE = 11, /* message larger than the configured maximum */
	AF_EVERSION = 12, /* unsupported protocol version */
	AF_ENOTSUP = 13,  /* the actor has no handler for this message type */
	AF_ENOREPLY = 14, /* the handler returned without replying */
	AF_ETYPE = 15,    /* a value is not of the requested type */
	AF_ERANGE = 16,   /* a number does not fit the requested type */
	AF_ESYS = 17,     /* a system call failed */
	AF_EADDR = 18,    /* malformed address or endpoint */
	AF_EREMOTE = 19,  /* the remote side failed without a code */
	AF_EOF = 20,      /* the stream has ended */
	AF_EHTTP = 21,    /* an HTTP server answered with an error status */
	AF_EIO = 22,      /* storage failed: a corrupt or unwritable database */
	AF_EAUTH =
		23, /* refused by CURVE: keys missing, wrong or not allowed */
	AF_EUSER = 1000 /* first code free for applications */
} af_err;

/* A one-line English description of err. Never NULL; unknown codes give
 * "unknown error". Thread-safe. */
const char *af_strerror(int err);

/* The symbolic name of err ("AF_ETIMEDOUT"), or NULL for codes the runtime
 * does not define. Thread-safe. */
const char *af_errname(int err);

#ifdef __cplusplus
}
#endif
#endif
