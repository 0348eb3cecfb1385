#include "vectors.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct af_vindex {
	int dim;
	size_t rows; /* rows in use, dead ones included */
	size_t dead;
	size_t cap;
	int room_dim; /* the dimension m's cap rows were sized for */
	int64_t *ids; /* increasing; a dead row's id is negated minus one */
	float *m;     /* rows * dim floats */
};

af_err af__vindex_new(af_vindex **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? AF_OK : AF_ENOMEM;
}

void af__vindex_destroy(af_vindex **vp)
{
	if (vp == NULL || *vp == NULL)
		return;
	free((*vp)->ids);
	free((*vp)->m);
	free(*vp);
	*vp = NULL;
}

int af__vindex_dim(const af_vindex *v)
{
	return v->dim;
}

size_t af__vindex_count(const af_vindex *v)
{
	return v->rows - v->dead;
}

static bool live(int64_t id)
{
	return id >= 0;
}

/* The id a row was made for, dead or alive. */
static int64_t id_of(int64_t stored)
{
	return stored >= 0 ? stored : -stored - 1;
}

/* The first row whose id is >= id. */
static size_t lower_bound(const af_vindex *v, int64_t id)
{
	size_t lo = 0, hi = v->rows;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (id_of(v->ids[mid]) < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void compact(af_vindex *v)
{
	size_t d = (size_t)v->dim, to = 0;

	for (size_t i = 0; i < v->rows; i++) {
		if (!live(v->ids[i]))
			continue;
		if (to != i) {
			v->ids[to] = v->ids[i];
			memcpy(v->m + to * d, v->m + i * d, d * sizeof(float));
		}
		to++;
	}
	v->rows = to;
	v->dead = 0;
}

/* Makes room for at least want rows of d floats, doubling. */
static af_err grow(af_vindex *v, size_t want, size_t d)
{
	size_t cap = v->cap ? v->cap : 1024;
	int64_t *ids;
	float *m;

	while (cap < want)
		cap *= 2;
	/* Room reserved for vectors of another dimension, and never used
	 * (the index is empty, or it would hold that dimension), is resized
	 * too. */
	if (cap == v->cap && (size_t)v->room_dim == d)
		return AF_OK;
	if (cap > SIZE_MAX / sizeof(float) / d)
		return AF_ENOMEM;
	ids = realloc(v->ids, cap * sizeof(*ids));
	if (ids == NULL)
		return AF_ENOMEM;
	v->ids = ids;
	m = realloc(v->m, cap * d * sizeof(*m));
	if (m == NULL)
		return AF_ENOMEM;
	v->m = m;
	v->cap = cap;
	v->room_dim = (int)d;
	return AF_OK;
}

af_err af__vindex_reserve(af_vindex *v, size_t n, int dim)
{
	if (dim <= 0 || (v->dim != 0 && dim != v->dim))
		return AF_EINVAL;
	if (n > SIZE_MAX - v->rows)
		return AF_ENOMEM;
	return grow(v, v->rows + n, (size_t)dim);
}

af_err af__vindex_add(af_vindex *v, int64_t id, const float *vec, int dim)
{
	size_t d = (size_t)dim, at;
	double norm = 0;
	float *row;

	if (dim <= 0 || id < 0 || (v->dim != 0 && dim != v->dim))
		return AF_EINVAL;
	if ((v->rows == v->cap || (size_t)v->room_dim != d) &&
	    grow(v, v->rows + 1, d) != AF_OK)
		return AF_ENOMEM;
	v->dim = dim;
	at = v->rows;
	if (at > 0 && id_of(v->ids[at - 1]) >= id) {
		at = lower_bound(v, id);
		memmove(v->ids + at + 1, v->ids + at,
			(v->rows - at) * sizeof(*v->ids));
		memmove(v->m + (at + 1) * d, v->m + at * d,
			(v->rows - at) * d * sizeof(float));
	}
	v->ids[at] = id;
	row = v->m + at * d;
	for (size_t i = 0; i < d; i++)
		norm += (double)vec[i] * vec[i];
	norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
	for (size_t i = 0; i < d; i++)
		row[i] = (float)(vec[i] * norm);
	v->rows++;
	return AF_OK;
}

void af__vindex_remove(af_vindex *v, int64_t id)
{
	size_t at = lower_bound(v, id);

	if (at == v->rows || v->ids[at] != id)
		return;
	v->ids[at] = -id - 1;
	if (++v->dead * 2 > v->rows)
		compact(v);
	if (v->rows == 0) {
		/* Empty: the next vectors may be of another dimension (a
		 * new embedding model), and the room was sized for these. */
		free(v->ids);
		free(v->m);
		v->ids = NULL;
		v->m = NULL;
		v->cap = 0;
		v->room_dim = 0;
		v->dim = 0;
	}
}

/* Eight partial sums let the compiler keep them in vector registers;
 * one running sum would be a chain of dependent adds. */
static float dot(const float *a, const float *b, size_t d)
{
	float s[8] = {0};
	float total = 0;
	size_t i = 0;

	for (; i + 8 <= d; i += 8) {
		for (size_t j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	}
	for (; i < d; i++)
		total += a[i] * b[i];
	for (size_t j = 0; j < 8; j++)
		total += s[j];
	return total;
}

af_err af__vindex_top(const af_vindex *v, const float *q, int dim, int k,
		      int64_t *ids, double *scores, size_t *n)
{
	size_t d = (size_t)dim, have = 0;
	double norm = 0;
	float *qn;

	*n = 0;
	if (v->rows == v->dead)
		return AF_OK;
	if (dim != v->dim || k < 1)
		return AF_EINVAL;
	qn = malloc(d * sizeof(*qn));
	if (qn == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < d; i++)
		norm += (double)q[i] * q[i];
	norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
	for (size_t i = 0; i < d; i++)
		qn[i] = (float)(q[i] * norm);
	/* The best k so far, sorted, best first: a new one is placed by
	 * insertion, which is rare once the list is full. */
	for (size_t r = 0; r < v->rows; r++) {
		double s;
		size_t j;

		if (!live(v->ids[r]))
			continue;
		s = dot(qn, v->m + r * d, d);
		if (have == (size_t)k && s <= scores[have - 1])
			continue;
		j = have < (size_t)k ? have++ : have - 1;
		while (j > 0 && scores[j - 1] < s) {
			scores[j] = scores[j - 1];
			ids[j] = ids[j - 1];
			j--;
		}
		scores[j] = s;
		ids[j] = v->ids[r];
	}
	free(qn);
	*n = have;
	return AF_OK;
}
