/*
 * A binary min-heap of timers ordered by due time. Each timer remembers its
 * index so it can be removed in O(log n) when cancelled; ties are broken by
 * insertion order so timers due at the same moment fire in the order they
 * were started.
 */
#ifndef AF_RUNTIME_TIMERHEAP_H
#define AF_RUNTIME_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/err.h"

typedef struct af__timer af__timer;
typedef void (*af__timer_cb)(af__timer *t);

struct af__timer {
	int64_t due_us;
	uint64_t order;  /* insertion order, for ties */
	size_t index;    /* position in the heap, SIZE_MAX when not in it */
	af__timer_cb cb; /* called when due, after removal from the heap */
};

typedef struct af__timerheap {
	af__timer **items;
	size_t len;
	size_t cap;
	uint64_t order;
} af__timerheap;

void af__timerheap_init(af__timerheap *h);
void af__timerheap_fini(af__timerheap *h);
/* Adds t (not already in a heap) due at due_us. AF_OK or AF_ENOMEM. */
af_err af__timerheap_push(af__timerheap *h, af__timer *t, int64_t due_us);
/* Removes t if it is in the heap. */
void af__timerheap_remove(af__timerheap *h, af__timer *t);
/* The earliest timer or NULL. */
af__timer *af__timerheap_peek(const af__timerheap *h);

#endif
