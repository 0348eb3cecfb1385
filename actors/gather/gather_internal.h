/*
 * The gather actor's parts, shared by its files:
 *   gather.c  the actor: requests, a gather's life (start, pump, deadline,
 *             cancel, end) and the reaping of ended gathers;
 *   item.c    one item: sending it, its answer, collecting a stream;
 *   slots.c   results: encoding slots, holding them within the byte limit,
 *             the final reply, the as_completed stream;
 *   target.c  items waiting for room in a full mailbox.
 *
 * All of it runs on the gather actor's thread; nothing here is shared with
 * another thread.
 */
#ifndef AF_GATHER_INTERNAL_H
#define AF_GATHER_INTERNAL_H

#include <actorflow/actorflow.h>
#include <actorflow/gather.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gather_actor gather_actor;
typedef struct gather gather;
typedef struct item item;
typedef struct target target;
typedef struct collect collect;
typedef struct queued queued;

typedef enum item_state {
	ITEM_WAITING, /* not started: behind the concurrency limit */
	ITEM_BLOCKED, /* started, waiting for room in its target's mailbox */
	ITEM_RUNNING, /* sent: its request is outstanding */
	ITEM_DONE     /* its slot is stored or sent */
} item_state;

struct item {
	gather *g;
	/* Address, type and payload (its encoded bytes; NULL when it has
	 * none) point into the request's payload while its handler runs,
	 * then into g->request. The strings are not NUL-terminated: print
	 * them with %.*s. */
	const char *to;
	const char *type;
	const void *payload;
	size_t payload_len;
	uint32_t to_len;
	uint32_t type_len;
	int64_t timeout_ms;  /* its own deadline; 0: none */
	int64_t deadline_ns; /* set when started; 0: none */
	uint64_t req;        /* the request's id while running */
	collect *stream;     /* a streamed answer being collected */
	target *wait;        /* while blocked */
	item *wait_prev;
	item *wait_next;
	/* Collect mode: where its slot lies, in the reply's bytes or in
	 * g->slots (slots.c). */
	size_t slot_off;
	size_t slot_len;
	uint32_t index;
	/* Why the gather cancelled the item itself (its stream grew past
	 * the limit, memory ran out): the cancel's outcome reports this. */
	af_err abort_code;
	item_state state;
};

/* A slot waiting for the as_completed reader's credit. */
struct queued {
	af_payload *slot;
	size_t bytes;
	uint32_t index;
	bool ok;
};

struct gather {
	gather_actor *ga;
	af_pending *req; /* NULL once answered or cancelled */
	/* A copy of the request's payload, made when its handler returns:
	 * the items point into it from then on. */
	char *request;
	item *items;
	uint32_t n;
	uint32_t started; /* items started: the next to start */
	uint32_t active;  /* started (blocked or running), not done */
	uint32_t done;
	uint32_t failed;
	uint32_t limit; /* concurrency; 0: none */
	int64_t item_timeout_ms;
	int64_t deadline_ns; /* 0: none */
	int64_t deadline_ms; /* the same as a duration, for messages */
	uint64_t deadline_timer;
	bool fail_fast;
	bool as_completed;
	bool pumping;  /* gather_pump is on the stack */
	bool frozen;   /* ending: items are no longer started or heard */
	bool closed;   /* ended: waiting to be reaped */
	bool want_end; /* as_completed: end the stream once queue drains */
	/* Bytes of results the gather holds: stored or queued slots and
	 * streams being collected; bounded by the config's max_bytes. */
	size_t held;
	/* Collect mode: the reply, into which slots are packed while they
	 * come in input order (emitted of them so far, ending at out_len
	 * bytes after a header of out_header bytes); then the other slots
	 * (nslots of them) in the order their items finished, added to the
	 * reply in input order at the end (slots.c). */
	af_payload *out;
	size_t out_header;
	size_t out_len;
	uint32_t emitted;
	char *slots;
	size_t slots_len;
	size_t slots_cap;
	uint32_t nslots;
	/* as_completed: slots that met a full credit window, oldest first.
	 * Each item queues at most once, so n entries always suffice. */
	queued *queue;
	uint32_t qhead;
	uint32_t qlen;
	gather *prev;
	gather *next;
};

struct gather_actor {
	af_gather_config cfg;
	/* Payload writers reused for items' payloads and for slots. */
	af_payload *scratch;
	/* An item's address and type made C strings, to send it. */
	char *cstr[2];
	size_t cstr_cap[2];
	gather *live;
	gather *dead; /* ended, freed on the next turn */
	target *targets;
	bool reap_armed;
};

/* ---- gather.c ---------------------------------------------------------- */

/* Monotonic nanoseconds. */
int64_t af__gather_now_ns(void);
/* The scratch payload, emptied; NULL when memory ran out. */
af_payload *af__gather_scratch(gather_actor *ga);
/* An item finished and its slot is stored or sent (ok: the slot says
 * "ok": true): starts the next items, or ends the gather after the last. */
void af__gather_item_done(af_ctx *ctx, item *it, bool ok);
/* Fails the gather with code and a printf-style message, cancelling what
 * still runs. Does nothing to a gather that ended already. */
void af__gather_fail(af_ctx *ctx, gather *g, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;
/* Ends a gather whose request is answered (or cancelled): cancels what
 * still runs and hands it to the reaper. */
void af__gather_close(af_ctx *ctx, gather *g);
/* Frees ended gathers and idle targets on the next turn of the loop. */
void af__gather_reap_soon(af_ctx *ctx, gather_actor *ga);

/* ---- item.c ------------------------------------------------------------ */

/* Starts it: sends it, or queues it behind a full mailbox; a send that
 * fails fills its slot with the error. *now_ns is the time, read once
 * per batch of items (0: not read yet). */
void af__item_start(af_ctx *ctx, item *it, int64_t *now_ns);
/* Sends it now. AF_OK (running), AF_EAGAIN (the target's mailbox is full;
 * nothing was sent), AF_ETIMEDOUT (its deadline passed before it could
 * go), or the send's error. *now_ns as for af__item_start. */
af_err af__item_send(af_ctx *ctx, item *it, int64_t *now_ns);
/* Fails it with the error of a send that could not be made. */
void af__item_unsent(af_ctx *ctx, item *it, af_err err);
/* Cancels it if it runs and forgets a stream being collected; its
 * gather is frozen, so the outcome is not heard. */
void af__item_abandon(af_ctx *ctx, item *it);
/* True when its deadline (own or the gather's) has passed. */
bool af__item_expired(const item *it, int64_t now_ns);

/* ---- slots.c ----------------------------------------------------------- */

/* The writer to pack the slot of item it into: the reply itself when it
 * is its turn in input order (collect mode), else the emptied scratch.
 * NULL when memory ran out. */
af_payload *af__slot_writer(item *it);
/* Packs the slot of item it into p, a writer from af__slot_writer: ok
 * with the value encoded in len bytes at value (an answer's payload, as
 * it arrived), or an error. AF_OK or the writer's error. */
af_err af__slot_pack_raw(af_payload *p, const item *it, const void *value,
			 size_t len);
af_err af__slot_pack_error(af_payload *p, const item *it, int code,
			   const char *text);
/* Stores the slot of item it, packed in *slot (the writer
 * af__slot_writer gave, or a stream's own): kept for the reply (collect
 * mode) or sent to the reader (as_completed; queued while its credit is
 * out, and then *slot is taken and set to NULL). A successful
 * slot that would take the gather over its byte limit becomes an
 * AF_EMSGSIZE error (or fails a fail_fast gather). Returns whether the
 * slot stored is ok; the gather may have ended (g->closed) when this
 * returns. */
bool af__slot_store(af_ctx *ctx, item *it, af_payload **slot, bool ok);
/* Every item is done: answers with the results (collect mode), or ends
 * the stream once the queued slots are sent (as_completed). */
void af__slots_finish(af_ctx *ctx, gather *g);
/* Frees what the slots hold. */
void af__slots_free(gather *g);

/* ---- target.c ---------------------------------------------------------- */

/* The target of the len bytes at addr (not NUL-terminated) when items
 * already wait there for room: a new one queues behind them rather than
 * overtaking them. NULL when none wait. */
target *af__target_busy(gather_actor *ga, const char *addr, size_t len);
/* Queues it behind the items waiting at t, a target af__target_busy
 * gave. */
void af__target_join(item *it, target *t);
/* Queues it (blocked) until the mailbox at addr, its target, has room.
 * AF_OK or AF_ENOMEM. */
af_err af__target_wait(af_ctx *ctx, item *it, const char *addr);
/* Takes a blocked item out of its queue. */
void af__target_forget(af_ctx *ctx, item *it);
/* Frees targets nobody waits on (all of them with all, at stop). */
void af__target_reap(gather_actor *ga, bool all);

#endif
