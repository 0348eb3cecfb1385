/*
 * What every actorflow benchmark program needs: a monotonic clock and a
 * way to stop at the first failed call. A program defines BENCH_NAME
 * (its name, for messages) before including this header.
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

#endif
