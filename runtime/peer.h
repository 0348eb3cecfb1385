/*
 * Outgoing connections. A context keeps one socket per destination. To a
 * local actor (inproc) it is a PUSH into the actor's inbox: one frame per
 * message, and a local request names the requester's own inbox, where the
 * answer arrives the same way. To a remote endpoint (ipc, tcp) it is a
 * DEALER: the answer comes back on the same connection, so a remote
 * requester never binds an endpoint of its own. Either way everything from
 * one sender to one receiver travels one pipe, in order.
 *
 * A local peer remembers the incarnation of the actor it reached; when the
 * system reports that actors stopped, peers whose actor is gone are closed
 * before anything more is sent, so that a name taken again by a new actor
 * gets a new connection (an inproc connection never follows a new bind of
 * its endpoint). Their outstanding requests end with AF_EPEERDOWN once the
 * answers the old actor sent are taken. A remote peer is
 * watched by a ZeroMQ socket monitor and ZMTP heartbeats: a disconnect
 * ends the requests sent before it with AF_EPEERDOWN while the socket
 * reconnects by itself. A request sent while the peer is down waits up to
 * AF__PEER_DOWN_GRACE_MS for the connection to come back (it goes out when
 * it does), then ends with AF_EPEERDOWN.
 */
#ifndef AF_RUNTIME_PEER_H
#define AF_RUNTIME_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#include "actorflow/actor.h"
#include "loop.h"

typedef struct af__outreq af__outreq;

/* How long a connection to another process's endpoint stays open while it
 * carries nothing, unless af_system_opts.peer_idle_ms says otherwise. */
#define AF__PEER_IDLE_MS 60000

/* How long a request sent to a remote peer that is down waits for the
 * connection to come back before it fails with AF_EPEERDOWN: a restarted
 * process is reconnected to within ZeroMQ's reconnect interval. */
#define AF__PEER_DOWN_GRACE_MS 3000

/* Someone waiting for room in the peer's mailbox. */
typedef struct af__writable_wait {
	struct af__writable_wait *next;
	af_timer_fn fn;
	void *arg;
} af__writable_wait;

typedef struct af__peer {
	af_ctx *ctx;
	char *key; /* an actor's name, or a remote endpoint */
	uint64_t hash;
	void *sock;
	af__watch watch;
	void *mon;
	af__watch mon_watch;
	uint64_t incarnation;
	/* The mailbox gauge of a local actor, counting what is pushed into
	 * its inbox (stats.h); NULL for others. */
	struct af__gauge *gauge;
	bool remote;
	bool closed;
	/* A remote peer speaking CURVE, and whether its current connection
	 * finished its handshake: one that drops before it did was refused. */
	bool curve;
	bool handshaken;
	/* A remote peer's connection as its monitor told it: down from a
	 * disconnect until the next handshake, refused by the server (to be
	 * closed). disconnects counts the disconnects read; a request keeps
	 * the count it was sent at, so that a disconnect read later ends only
	 * requests sent before it (a request the old connection could not
	 * have carried is not failed by that connection's death). */
	bool down;
	bool refused;
	uint64_t disconnects;
	af__outreq *reqs; /* outstanding requests sent through this peer */
	int64_t used_us;  /* a remote peer's last message, either way */
	/* A tell went out on this remote peer since its connection was last
	 * made: ZeroMQ may hold it until the connection is up. */
	bool tell_since_up;
	af__writable_wait *writable_waits;
	/* Tells an actor sends this (local) peer are coalesced into one batch
	 * message, sent once the actor's loop has nothing else ready (at most
	 * AF__LAZY_HOLD_US later): one ZeroMQ message instead of hundreds. A
	 * batch that met a full mailbox waits as pending and goes before
	 * anything else. */
	uint8_t *batch;
	size_t batch_len;
	size_t batch_cap;
	uint32_t batch_count;
	size_t batch_count_at; /* where the batch's element count goes */
	zmq_msg_t pending;
	bool has_pending;
	struct af__peer *next;
	struct af__peer *prev;
} af__peer;

/* The peer for key (creating and connecting it on first use). A local key
 * names an actor of ctx's system: AF_ENOTFOUND when none runs. */
af_err af__peer_get(af_ctx *ctx, const char *key, size_t key_len, bool remote,
		    af__peer **out);
/* Adds a tell (its envelope header and payload bytes) to p's batch,
 * sending the batch first if it is full. AF_OK, AF_EAGAIN (a full batch
 * met a full mailbox; nothing was added), AF_ENOMEM. */
af_err af__peer_batch(af__peer *p, const uint8_t *header, size_t header_len,
		      const void *payload, size_t payload_len);
/* Sends p's pending and open batches. block_ms as in af__peer_send.
 * AF_OK, AF_EAGAIN, AF_ETIMEDOUT. */
af_err af__peer_flush(af__peer *p, int64_t block_ms);
/* True when a tell of this size is worth batching to p. */
bool af__peer_batches(const af__peer *p, size_t size);
/* Queues fn to run once p can take another message. AF_OK or AF_ENOMEM. */
af_err af__peer_when_writable(af__peer *p, af_timer_fn fn, void *arg);
/* Ends the peer's outstanding requests with status, closes its sockets and
 * frees it at the end of the loop turn. */
void af__peer_close(af__peer *p, int status);
/* Closes local peers whose actor is gone (after a stop in the system),
 * moving their outstanding requests to ctx->lost_reqs unsettled: runs no
 * callback, so it is safe inside a handler. */
void af__peers_revalidate(af_ctx *ctx);
/* Reads what a remote peer's monitor has to say now, so that a request
 * about to be sent sees the connection's state of this moment, not the one
 * of the last loop turn (an idle client runs none). Only notes it: the
 * requests a disconnect ends are settled on the next loop turn. */
void af__peer_sync(af__peer *p);
/* The idle time after which sys's contexts close a remote peer, in us; -1:
 * never (sys NULL: a standalone client, the default). */
int64_t af__peer_idle_us(const af_system *sys);
/* Closes the remote peers that carried nothing for ctx->peer_idle_us and
 * have nothing outstanding (the sweep timer's callback). */
void af__peers_sweep(af__timer *t);
/* Closes every peer (context teardown). */
void af__peers_close_all(af_ctx *ctx, int status);
/* Notes that a tell went out on p (af__peers_sweep keeps a peer whose
 * connection is down while it may still hold one). */
static inline void af__peer_sent_tell(af__peer *p)
{
	if (p->remote)
		p->tell_since_up = true;
}
/* Sends frame on p without blocking, or waiting up to block_ms for room.
 * A request to a local peer is preceded by a frame naming the sender's
 * inbox (reply_to, NULL otherwise). Takes the frame on success. AF_OK,
 * AF_EAGAIN, AF_ETIMEDOUT, AF_ESYS. */
af_err af__peer_send(af__peer *p, void *frame, const char *reply_to,
		     int64_t block_ms);

#endif
