/*
 * The worker pool behind the offload actor. See pool.h.
 *
 * A worker that finishes a job appends it to the done list and writes the
 * eventfd only when the list was empty: the owner takes the whole list at
 * once, so one wake-up serves every job done before it looks. The owner
 * clears the eventfd before it takes the list, never after: a job done in
 * between finds the list empty again and writes again, so no wake-up is
 * lost.
 */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct af__pool {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or the pool stops */
	af__pool_job *queue_head;
	af__pool_job *queue_tail;
	size_t queued;
	size_t capacity;
	size_t running;
	af__pool_job *done_head;
	af__pool_job *done_tail;
	bool stopping;
	int fd;
	pthread_t *threads;
	int nthreads; /* started, and to be joined */
};

static void queue_unlink(af__pool *pool, af__pool_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		pool->queue_head = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	else
		pool->queue_tail = job->prev;
	job->prev = job->next = NULL;
	pool->queued--;
}

/* Called with the mutex held; true when the owner must be woken. */
static bool done_append(af__pool *pool, af__pool_job *job)
{
	bool was_empty = pool->done_head == NULL;

	job->state = AF__JOB_DONE;
	job->next = NULL;
	if (was_empty)
		pool->done_head = job;
	else
		pool->done_tail->next = job;
	pool->done_tail = job;
	return was_empty;
}

static void wake_owner(af__pool *pool)
{
	uint64_t one = 1;

	/* An eventfd write fails only when its counter would overflow, and
	 * a counter that high is readable already. */
	if (write(pool->fd, &one, sizeof(one)) < 0) {
	}
}

static void *worker_main(void *arg)
{
	af__pool *pool = arg;

	pthread_mutex_lock(&pool->mu);
	for (;;) {
		af__pool_job *job;

		while (pool->queue_head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->work, &pool->mu);
		if (pool->stopping)
			break;
		job = pool->queue_head;
		queue_unlink(pool, job);
		job->state = AF__JOB_RUNNING;
		pool->running++;
		pthread_mutex_unlock(&pool->mu);

		job->run(job);

		pthread_mutex_lock(&pool->mu);
		pool->running--;
		if (done_append(pool, job))
			wake_owner(pool);
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* Asks every worker to stop and joins them; each first finishes the job
 * it runs. */
static void stop_workers(af__pool *pool)
{
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);
	pool->nthreads = 0;
}

static af_err start_workers(af__pool *pool, int workers, const char *name)
{
	for (int i = 0; i < workers; i++) {
		char thread_name[16];
		if (pthread_create(&pool->threads[i], NULL, worker_main,
				   pool) != 0) {
			stop_workers(pool);
			return AF_ESYS;
		}
		pool->nthreads++;
		/* Named threads make top -H, perf and gdb speak of the pool
		 * they belong to. */
		snprintf(thread_name, sizeof(thread_name), "%.9s.%u", name,
			 (unsigned)i % 1000u);
		pthread_setname_np(pool->threads[i], thread_name);
	}
	return AF_OK;
}

af_err af__pool_new(af__pool **out, int workers, size_t capacity,
		    const char *name)
{
	af__pool *pool;
	af_err err = AF_ESYS;

	if (workers < 1)
		return AF_EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (pool == NULL)
		return AF_ENOMEM;
	pool->capacity = capacity;
	pool->threads = calloc((size_t)workers, sizeof(*pool->threads));
	if (pool->threads == NULL) {
		err = AF_ENOMEM;
		goto free_pool;
	}
	if (pthread_mutex_init(&pool->mu, NULL) != 0)
		goto free_threads;
	if (pthread_cond_init(&pool->work, NULL) != 0)
		goto destroy_mutex;
	pool->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->fd < 0)
		goto destroy_cond;
	err = start_workers(pool, workers, name);
	if (err != AF_OK)
		goto close_fd;
	*out = pool;
	return AF_OK;

close_fd:
	close(pool->fd);
destroy_cond:
	pthread_cond_destroy(&pool->work);
destroy_mutex:
	pthread_mutex_destroy(&pool->mu);
free_threads:
	free(pool->threads);
free_pool:
	free(pool);
	return err;
}

void af__pool_destroy(af__pool **pp, void (*drop)(af__pool_job *job))
{
	af__pool *pool = pp != NULL ? *pp : NULL;
	af__pool_job *job;

	if (pool == NULL)
		return;
	*pp = NULL;
	stop_workers(pool);
	/* No worker runs now: the lists are the caller's alone. */
	while ((job = pool->queue_head) != NULL) {
		queue_unlink(pool, job);
		job->state = AF__JOB_NEW;
		drop(job);
	}
	while ((job = pool->done_head) != NULL) {
		pool->done_head = job->next;
		job->next = NULL;
		drop(job);
	}
	close(pool->fd);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->mu);
	free(pool->threads);
	free(pool);
}

int af__pool_fd(const af__pool *pool)
{
	return pool->fd;
}

af_err af__pool_push(af__pool *pool, af__pool_job *job)
{
	af_err err = AF_OK;

	pthread_mutex_lock(&pool->mu);
	/* Jobs an idle worker is about to take are not waiting: only those
	 * beyond the idle workers count against the capacity. */
	if (pool->queued >=
	    pool->capacity + ((size_t)pool->nthreads - pool->running)) {
		err = AF_EAGAIN;
	} else {
		job->state = AF__JOB_QUEUED;
		job->next = NULL;
		job->prev = pool->queue_tail;
		if (pool->queue_tail != NULL)
			pool->queue_tail->next = job;
		else
			pool->queue_head = job;
		pool->queue_tail = job;
		pool->queued++;
		pthread_cond_signal(&pool->work);
	}
	pthread_mutex_unlock(&pool->mu);
	return err;
}

bool af__pool_unqueue(af__pool *pool, af__pool_job *job)
{
	bool queued;

	pthread_mutex_lock(&pool->mu);
	queued = job->state == AF__JOB_QUEUED;
	if (queued) {
		queue_unlink(pool, job);
		job->state = AF__JOB_NEW;
	}
	pthread_mutex_unlock(&pool->mu);
	return queued;
}

af__pool_job *af__pool_take_done(af__pool *pool)
{
	af__pool_job *list;
	uint64_t count;

	/* Cleared first; see the top of this file. EAGAIN only means that
	 * nothing was signalled since the last take. */
	if (read(pool->fd, &count, sizeof(count)) < 0) {
	}
	pthread_mutex_lock(&pool->mu);
	list = pool->done_head;
	pool->done_head = pool->done_tail = NULL;
	pthread_mutex_unlock(&pool->mu);
	return list;
}

void af__pool_counts(af__pool *pool, size_t *queued, size_t *running)
{
	pthread_mutex_lock(&pool->mu);
	*queued = pool->queued;
	*running = pool->running;
	pthread_mutex_unlock(&pool->mu);
}
