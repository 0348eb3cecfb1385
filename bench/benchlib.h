/*
 * What every actorflow benchmark program needs: a monotonic clock, a way
 * to stop at the first failed call, and percentiles of timings. A program
 * defines BENCH_NAME (its name, for messages) before including this
 * header.
 */
#ifndef AF_BENCHLIB_H
#define AF_BENCHLIB_H

#include <actorflow/actorflow.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including benchlib.h"
#endif

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Prints "BENCH_NAME: what: error" and exits 1. */
static inline void die(const char *what, int err)
{
	fprintf(stderr, BENCH_NAME ": %s: %s\n", what, af_strerror(err));
	exit(1);
}

static inline void check(af_err err, const char *what)
{
	if (err != AF_OK)
		die(what, err);
}

/* A qsort comparison of int64_t values. */
static inline int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a;
	int64_t y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The p-th quantile (0..1) of n nanosecond figures, in microseconds.
 * Sorts ns in place. */
static inline double percentile_us(int64_t *ns, int n, double p)
{
	qsort(ns, (size_t)n, sizeof *ns, cmp_i64);
	return (double)ns[(int)(p * (n - 1))] / 1e3;
}

#endif
