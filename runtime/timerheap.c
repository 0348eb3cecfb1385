#include "timerheap.h"

#include <stdlib.h>

static int earlier(const af__timer *a, const af__timer *b)
{
	if (a->due_us != b->due_us)
		return a->due_us < b->due_us;
	return a->order < b->order;
}

static void place(af__timerheap *h, size_t i, af__timer *t)
{
	h->items[i] = t;
	t->index = i;
}

static void sift_up(af__timerheap *h, size_t i)
{
	af__timer *t = h->items[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!earlier(t, h->items[parent]))
			break;
		place(h, i, h->items[parent]);
		i = parent;
	}
	place(h, i, t);
}

static void sift_down(af__timerheap *h, size_t i)
{
	af__timer *t = h->items[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= h->len)
			break;
		if (child + 1 < h->len &&
		    earlier(h->items[child + 1], h->items[child]))
			child++;
		if (!earlier(h->items[child], t))
			break;
		place(h, i, h->items[child]);
		i = child;
	}
	place(h, i, t);
}

void af__timerheap_init(af__timerheap *h)
{
	h->items = NULL;
	h->len = 0;
	h->cap = 0;
	h->order = 0;
}

void af__timerheap_fini(af__timerheap *h)
{
	for (size_t i = 0; i < h->len; i++)
		h->items[i]->index = SIZE_MAX;
	free(h->items);
	af__timerheap_init(h);
}

af_err af__timerheap_push(af__timerheap *h, af__timer *t, int64_t due_us)
{
	if (h->len == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		af__timer **items = realloc(h->items, cap * sizeof(*items));
		if (items == NULL)
			return AF_ENOMEM;
		h->items = items;
		h->cap = cap;
	}
	t->due_us = due_us;
	t->order = h->order++;
	place(h, h->len++, t);
	sift_up(h, t->index);
	return AF_OK;
}

void af__timerheap_remove(af__timerheap *h, af__timer *t)
{
	size_t i = t->index;
	af__timer *last;

	if (i == SIZE_MAX || i >= h->len || h->items[i] != t)
		return;
	t->index = SIZE_MAX;
	last = h->items[--h->len];
	if (last == t)
		return;
	place(h, i, last);
	if (i > 0 && earlier(last, h->items[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

af__timer *af__timerheap_peek(const af__timerheap *h)
{
	return h->len ? h->items[0] : NULL;
}
