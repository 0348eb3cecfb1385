/*
 * A hash map from non-zero 64-bit ids to pointers: outstanding requests and
 * timers are found by id in O(1) whatever their number. Open addressing with
 * linear probing and backward-shift deletion, so there are no tombstones and
 * lookups stay short after many insert/remove cycles.
 */
#ifndef AF_RUNTIME_IDMAP_H
#define AF_RUNTIME_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "actorflow/err.h"

typedef struct af__idmap_slot {
	uint64_t key; /* 0 = empty */
	void *val;
} af__idmap_slot;

typedef struct af__idmap {
	af__idmap_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t len;
} af__idmap;

void af__idmap_init(af__idmap *m);
void af__idmap_fini(af__idmap *m);
/* key must be non-zero and not present. AF_OK or AF_ENOMEM. */
af_err af__idmap_put(af__idmap *m, uint64_t key, void *val);
void *af__idmap_get(const af__idmap *m, uint64_t key);
/* Removes key and returns its value, or NULL when absent. */
void *af__idmap_take(af__idmap *m, uint64_t key);
/* Iterates: *pos starts at 0; returns the next value or NULL at the end.
 * The map must not change during an iteration. */
void *af__idmap_next(const af__idmap *m, size_t *pos, uint64_t *key);

#endif
