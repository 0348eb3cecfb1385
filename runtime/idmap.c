#include "idmap.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
	/* Ids are sequential; a multiplicative hash spreads them over the
	 * table so that probe runs stay short. */
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

void af__idmap_init(af__idmap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->len = 0;
}

void af__idmap_fini(af__idmap *m)
{
	free(m->slots);
	af__idmap_init(m);
}

static void insert(af__idmap_slot *slots, size_t cap, uint64_t key, void *val)
{
	size_t i = slot_of(key, cap);

	while (slots[i].key != 0)
		i = (i + 1) & (cap - 1);
	slots[i].key = key;
	slots[i].val = val;
}

static af_err grow(af__idmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	af__idmap_slot *slots = calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key != 0)
			insert(slots, cap, m->slots[i].key, m->slots[i].val);
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return AF_OK;
}

af_err af__idmap_put(af__idmap *m, uint64_t key, void *val)
{
	/* Keep the load factor at or below one half. */
	if ((m->len + 1) * 2 > m->cap) {
		af_err err = grow(m);
		if (err != AF_OK)
			return err;
	}
	insert(m->slots, m->cap, key, val);
	m->len++;
	return AF_OK;
}

static size_t find(const af__idmap *m, uint64_t key)
{
	if (m->cap == 0 || key == 0)
		return SIZE_MAX;
	for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->slots[i].key == key)
			return i;
		if (m->slots[i].key == 0)
			return SIZE_MAX;
	}
}

void *af__idmap_get(const af__idmap *m, uint64_t key)
{
	size_t i = find(m, key);

	return i == SIZE_MAX ? NULL : m->slots[i].val;
}

void *af__idmap_take(af__idmap *m, uint64_t key)
{
	size_t i = find(m, key);
	size_t mask = m->cap - 1;
	void *val;

	if (i == SIZE_MAX)
		return NULL;
	val = m->slots[i].val;
	/* Backward-shift: move later members of the probe run into the hole
	 * when their home slot does not lie between the hole and them. */
	for (size_t j = (i + 1) & mask; m->slots[j].key != 0;
	     j = (j + 1) & mask) {
		size_t home = slot_of(m->slots[j].key, m->cap);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].val = NULL;
	m->len--;
	return val;
}

void *af__idmap_next(const af__idmap *m, size_t *pos, uint64_t *key)
{
	for (; *pos < m->cap; (*pos)++) {
		if (m->slots[*pos].key != 0) {
			if (key != NULL)
				*key = m->slots[*pos].key;
			return m->slots[(*pos)++].val;
		}
	}
	return NULL;
}
