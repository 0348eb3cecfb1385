/*
 * The offload actor's worker pool: threads that run jobs taken from a
 * bounded queue, and a list of jobs done that wakes the owning actor
 * through an eventfd.
 *
 * The pool knows nothing of requests: a job is an intrusive link and a
 * function to run. Its owner (one actor thread) queues jobs, takes back
 * ones still waiting, and collects the ones done; the workers only run
 * them. Queue, done list and counts are guarded by one mutex, held for a
 * few pointer moves at a time, so the owner never waits on a job.
 */
#ifndef AF_OFFLOAD_POOL_H
#define AF_OFFLOAD_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "actorflow/err.h"

typedef enum af__job_state {
	AF__JOB_NEW,     /* not given to the pool yet, or taken back */
	AF__JOB_QUEUED,  /* waiting for a worker */
	AF__JOB_RUNNING, /* a worker runs it */
	AF__JOB_DONE     /* in the done list, or handed back to the owner */
} af__job_state;

typedef struct af__pool_job {
	struct af__pool_job *prev;
	struct af__pool_job *next;
	af__job_state state; /* read and written under the pool's mutex */
	/* Runs on a worker thread, outside the mutex. */
	void (*run)(struct af__pool_job *job);
} af__pool_job;

typedef struct af__pool af__pool;

/* Starts workers threads (named name.0, name.1, …; names are cut to what
 * the system keeps) with a queue of at most capacity waiting jobs. Caller
 * owns *out (af__pool_destroy). AF_OK, AF_ENOMEM, AF_ESYS. */
af_err af__pool_new(af__pool **out, int workers, size_t capacity,
		    const char *name);

/* Stops the workers, waiting for the jobs they run to return, then hands
 * every job still queued or done to drop (on the caller's thread) and frees
 * the pool. Accepts NULL; sets *pool to NULL. */
void af__pool_destroy(af__pool **pool, void (*drop)(af__pool_job *job));

/* The eventfd that turns readable when the done list stops being empty;
 * the owner watches it and calls af__pool_take_done. */
int af__pool_fd(const af__pool *pool);

/* Queues job for a worker. AF_OK, or AF_EAGAIN when capacity jobs already
 * wait (the job is left as it was). The pool holds job until it comes back
 * through af__pool_take_done, af__pool_unqueue or af__pool_destroy. */
af_err af__pool_push(af__pool *pool, af__pool_job *job);

/* Takes a pushed job back if it still waits for a worker: true then, and
 * it will never run. False when a worker has it or has run it: it comes
 * back through af__pool_take_done. */
bool af__pool_unqueue(af__pool *pool, af__pool_job *job);

/* Takes the list of jobs done (linked by next, in the order they were
 * done), or NULL, and clears the eventfd's readiness. */
af__pool_job *af__pool_take_done(af__pool *pool);

/* Jobs waiting and jobs running now. */
void af__pool_counts(af__pool *pool, size_t *queued, size_t *running);

#endif
