/*
 * Items waiting for room in a full mailbox.
 *
 * A send that finds its target's mailbox full (AF_EAGAIN) does not fail
 * the item: the item joins that target's queue, and one af_when_writable
 * per target resumes the queue, in order, when the mailbox has room, until
 * it is full again. An item that starts while others wait for the same
 * target queues behind them without trying: it must not overtake them, and
 * a send bound to fail would cost a frame built for nothing.
 *
 * While a queue is not empty a slow timer also looks at it: it finds items
 * whose deadline passed while they waited, and a target that went away
 * before a wait could be registered (the send then fails, AF_ENOTFOUND). A
 * target that stops while the wait is out calls the wait, like room does.
 * The timer is a safety net, not a poll: room is found through the wait.
 *
 * Targets sit in a list: they are few, since a mailbox fills only once it
 * holds its capacity (1000 by default) of this actor's messages.
 */
#include <stdlib.h>
#include <string.h>

#include "gather_internal.h"

#define RETRY_MS 250

struct target {
	target *next;
	gather_actor *ga;
	item *head;
	item *tail;
	uint64_t retry_timer;
	size_t len;
	bool writable_wait; /* an af_when_writable is outstanding */
	char addr[];
};

static target *target_find(gather_actor *ga, const char *addr, size_t len)
{
	for (target *t = ga->targets; t != NULL; t = t->next)
		if (t->len == len && memcmp(t->addr, addr, len) == 0)
			return t;
	return NULL;
}

target *af__target_busy(gather_actor *ga, const char *addr, size_t len)
{
	target *t = ga->targets != NULL ? target_find(ga, addr, len) : NULL;

	return t != NULL && t->head != NULL ? t : NULL;
}

/* Appends it to t's queue. */
static void push(target *t, item *it)
{
	it->wait = t;
	it->wait_prev = t->tail;
	it->wait_next = NULL;
	if (t->tail != NULL)
		t->tail->wait_next = it;
	else
		t->head = it;
	t->tail = it;
	it->state = ITEM_BLOCKED;
}

void af__target_join(item *it, target *t)
{
	push(t, it);
}

static void unqueue(af_ctx *ctx, target *t, item *it)
{
	if (it->wait_prev != NULL)
		it->wait_prev->wait_next = it->wait_next;
	else
		t->head = it->wait_next;
	if (it->wait_next != NULL)
		it->wait_next->wait_prev = it->wait_prev;
	else
		t->tail = it->wait_prev;
	it->wait_prev = it->wait_next = NULL;
	it->wait = NULL;
	if (t->head == NULL) {
		if (t->retry_timer != 0)
			af_timer_cancel(ctx, t->retry_timer);
		t->retry_timer = 0;
		af__gather_reap_soon(ctx, t->ga);
	}
}

static void target_flush(af_ctx *ctx, target *t);

static void on_writable(af_ctx *ctx, void *arg)
{
	target *t = arg;

	t->writable_wait = false;
	target_flush(ctx, t);
	if (t->head == NULL)
		af__gather_reap_soon(ctx, t->ga);
}

/* Fails the items whose deadline passed while they waited. Failing one
 * may end its gather, which takes its other items out of this queue: the
 * walk then starts over from the head. */
static void expire(af_ctx *ctx, target *t)
{
	int64_t now = af__gather_now_ns();
	item *it = t->head;

	while (it != NULL) {
		item *next = it->wait_next;
		if (af__item_expired(it, now)) {
			unqueue(ctx, t, it);
			af__item_unsent(ctx, it, AF_ETIMEDOUT);
			if (next != NULL && next->wait != t)
				next = t->head;
		}
		it = next;
	}
}

static void on_retry(af_ctx *ctx, void *arg)
{
	target *t = arg;

	expire(ctx, t);
	target_flush(ctx, t);
}

static void arm(af_ctx *ctx, target *t)
{
	/* An error here (the target just went away) is for the retry timer
	 * to find. */
	if (!t->writable_wait &&
	    af_when_writable(ctx, t->addr, on_writable, t) == AF_OK)
		t->writable_wait = true;
}

/* Sends the queued items in order until the mailbox is full again. */
static void target_flush(af_ctx *ctx, target *t)
{
	int64_t now = 0;
	uint32_t sent = 0;
	item *it;

	while ((it = t->head) != NULL) {
		af_err err;
		/* The clock is read once per batch of sends. */
		if (++sent % 64 == 0)
			now = 0;
		err = af__item_send(ctx, it, &now);
		if (err == AF_EAGAIN) {
			arm(ctx, t);
			return;
		}
		unqueue(ctx, t, it);
		if (err != AF_OK)
			af__item_unsent(ctx, it, err);
	}
}

af_err af__target_wait(af_ctx *ctx, item *it, const char *addr)
{
	gather_actor *ga = it->g->ga;
	size_t len = strlen(addr);
	target *t = target_find(ga, addr, len);

	if (t == NULL) {
		t = calloc(1, sizeof(*t) + len + 1);
		if (t == NULL)
			return AF_ENOMEM;
		t->ga = ga;
		t->len = len;
		memcpy(t->addr, addr, len + 1);
		t->next = ga->targets;
		ga->targets = t;
	}
	if (t->head == NULL && af_timer_start(ctx, RETRY_MS, RETRY_MS, on_retry,
					      t, &t->retry_timer) != AF_OK) {
		af__gather_reap_soon(ctx, ga);
		return AF_ENOMEM;
	}
	push(t, it);
	arm(ctx, t);
	return AF_OK;
}

void af__target_forget(af_ctx *ctx, item *it)
{
	if (it->wait != NULL)
		unqueue(ctx, it->wait, it);
}

void af__target_reap(gather_actor *ga, bool all)
{
	target **tp = &ga->targets;

	while (*tp != NULL) {
		target *t = *tp;
		if (all || (t->head == NULL && !t->writable_wait)) {
			*tp = t->next;
			free(t);
		} else {
			tp = &t->next;
		}
	}
}
