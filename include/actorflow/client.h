/*
 * actorflow: talking to actors from a thread that is not an actor.
 *
 * A client is what a program's main() (or any other plain thread) uses to
 * reach actors: a blocking request with a timeout, and a tell. It is the C
 * form of `asyncio.run(main())` plus `await`. A client belongs to the thread
 * that uses it (it is not thread-safe); create one per thread.
 */
#ifndef ACTORFLOW_CLIENT_H
#define ACTORFLOW_CLIENT_H

#include <stdint.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_client af_client;

/* Creates a client. With sys it reaches sys's actors by name as well as
 * remote addresses; with sys == NULL it reaches only remote (ipc://,
 * tcp://) addresses, for programs that host no actors. Caller owns *out.
 * AF_OK, AF_ENOMEM, AF_ESYS. */
af_err af_client_new(af_client **out, af_system *sys);

/* Frees the client; outstanding requests are abandoned. Accepts NULL; sets
 * *c to NULL. Destroy clients before their system. */
void af_client_destroy(af_client **c);

/* Sends a request and waits up to timeout_ms (> 0) for its outcome.
 * AF_OK: *reply is the reply, owned by the caller (af_msg_destroy).
 * A remote error: its code is returned and *reply is the error message
 * (read its text with af_msg_error), owned by the caller.
 * AF_ETIMEDOUT (including a mailbox still full at the deadline),
 * AF_EPEERDOWN, AF_ENOTFOUND, AF_EADDR, AF_EINVAL, AF_EMSGSIZE: *reply is
 * NULL. payload may be NULL and is copied. */
af_err af_client_request(af_client *c, const char *addr, const char *type,
			 const af_payload *payload, int64_t timeout_ms,
			 af_msg **reply);

/* Sends a one-way message, waiting up to timeout_ms for room in a full
 * mailbox (0: do not wait). AF_OK, AF_EAGAIN (timeout_ms == 0),
 * AF_ETIMEDOUT, AF_ENOTFOUND, AF_EADDR, AF_EINVAL, AF_EMSGSIZE. */
af_err af_client_tell(af_client *c, const char *addr, const char *type,
		      const af_payload *payload, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
