/*
 * The offload actor: requests to run blocking functions, answered when a
 * worker of its pool (pool.c) has run them. Written against the public API
 * only, as a user's actor would be.
 *
 * Each call becomes a job. Everything about the job's request (its
 * af_pending, its deadline timer, its answer) lives on the actor's thread;
 * a worker sees only the function, its input and the result it writes. So
 * a requester that gives up never races a worker: the actor takes a job
 * still waiting back from the queue, and lets one already running finish
 * into a job whose request is gone, whose result it then drops.
 */
#include <actorflow/offload.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

#define DEFAULT_QUEUE_CAPACITY 1024

typedef struct offload offload;

typedef struct job {
	af__pool_job work; /* how the pool sees it */
	offload *o;
	/* What runs: a named function and its arguments, or a pointer. */
	af_offload_fn fn;
	void *user;
	af_doc *args;
	af_offload_ptr_fn ptr_fn;
	void *ptr_arg;
	/* Written by the worker, read once the pool hands the job back. */
	af_payload *result;
	int code;
	char msg[AF_OFFLOAD_MSG_MAX];
	/* The actor's thread only. */
	af_pending *pending; /* NULL once answered or given up */
	uint64_t timer;
	bool has_timer;
} job;

typedef struct named_fn {
	char *name;
	af_offload_fn fn;
	void *user;
} named_fn;

struct offload {
	af__pool *pool;
	int workers;
	size_t capacity;
	named_fn *fns;
	size_t nfns;
	af_payload *scratch;
	/* The counters of the stats request. */
	uint64_t run;
	uint64_t failed;
	uint64_t cancelled;
	uint64_t timed_out;
	uint64_t rejected;
};

static job *job_of(af__pool_job *work)
{
	return (job *)((char *)work - offsetof(job, work));
}

/* ---- the worker's side -------------------------------------------------- */

static void job_fail(job *j, af_err code, const char *msg)
{
	j->code = code;
	snprintf(j->msg, sizeof(j->msg), "offload: %s", msg);
}

/* The payload writer refuses a second value beside the first and counts
 * what a container still lacks, so its status says whether the function
 * wrote one complete value (or nothing): a reply of anything else would
 * not reach the requester. */
static void check_result(job *j)
{
	if (af_payload_status(j->result) != AF_OK)
		job_fail(j, AF_EINVAL,
			 "the function's result is not one complete msgpack "
			 "value");
}

static void job_run(af__pool_job *work)
{
	job *j = job_of(work);
	af_err err = af_payload_new(&j->result);

	if (err != AF_OK) {
		j->code = err;
		return;
	}
	if (j->ptr_fn != NULL)
		j->code = j->ptr_fn(j->ptr_arg, j->result, j->msg,
				    sizeof(j->msg));
	else
		j->code = j->fn(j->user, af_doc_root(j->args), j->result,
				j->msg, sizeof(j->msg));
	/* A message written to the brim loses its last byte rather than
	 * being read past the end. */
	j->msg[sizeof(j->msg) - 1] = '\0';
	if (j->code == AF_OK)
		check_result(j);
}

/* ---- a job's life on the actor's thread --------------------------------- */

/* Frees only memory: what a job holds once its request and timer are
 * gone, which is the case of every job left when the actor stops. */
static void job_release(job *j)
{
	af_doc_destroy(&j->args);
	af_payload_destroy(&j->result);
	free(j);
}

static void job_free(af_ctx *ctx, job *j)
{
	if (j->has_timer)
		af_timer_cancel(ctx, j->timer);
	/* Only an answer that could not be sent (memory ran out) leaves the
	 * request open here. The runtime answers it when the actor stops; its
	 * cancel hook must not call back into a freed job. */
	if (j->pending != NULL)
		af_pending_on_cancel(j->pending, NULL, NULL);
	job_release(j);
}

static void pool_drop(af__pool_job *work)
{
	job_release(job_of(work));
}

/* The request's cancel hook: its requester cancelled it, its deadline
 * passed on the requester's side, the requester went away, or this actor
 * stops. A job still waiting leaves the queue and never runs; one a worker
 * has is freed when it comes back, and its result goes nowhere. */
static void job_cancelled(af_ctx *ctx, void *arg)
{
	job *j = arg;

	/* The runtime frees the af_pending when this hook returns. */
	j->pending = NULL;
	j->o->cancelled++;
	if (j->has_timer) {
		af_timer_cancel(ctx, j->timer);
		j->has_timer = false;
	}
	if (af__pool_unqueue(j->o->pool, &j->work))
		job_free(ctx, j);
}

static void job_expired(af_ctx *ctx, void *arg)
{
	job *j = arg;
	offload *o = j->o;
	bool waiting = af__pool_unqueue(o->pool, &j->work);

	/* A one-shot timer is gone once it fired. */
	j->has_timer = false;
	o->timed_out++;
	af_pending_error(ctx, &j->pending, AF_ETIMEDOUT,
			 waiting ? "offload: the deadline passed while the job "
				   "waited for a worker; it did not run"
				 : "offload: the deadline passed while the job "
				   "ran; its result is dropped");
	if (waiting)
		job_free(ctx, j);
}

static void job_answer(af_ctx *ctx, job *j)
{
	size_t len = 0;
	af_err err;

	if (j->code != AF_OK) {
		if (j->msg[0] != '\0')
			af_pending_error(ctx, &j->pending, j->code, "%s",
					 j->msg);
		else
			af_pending_error(ctx, &j->pending, j->code, NULL);
		return;
	}
	/* A function that wrote nothing answers nil. */
	af_payload_data(j->result, &len);
	err = af_pending_reply(ctx, &j->pending, len > 0 ? j->result : NULL);
	if (err != AF_OK)
		af_pending_error(ctx, &j->pending, err,
				 "offload: cannot send the result: %s",
				 af_strerror(err));
}

/* The pool's eventfd turned readable: answer every job done. */
static void jobs_done(af_ctx *ctx, int fd, unsigned events, void *arg)
{
	offload *o = arg;
	af__pool_job *work = af__pool_take_done(o->pool);

	while (work != NULL) {
		job *j = job_of(work);
		work = work->next;
		o->run++;
		if (j->code != AF_OK)
			o->failed++;
		if (j->pending != NULL)
			job_answer(ctx, j);
		job_free(ctx, j);
	}
}

/* Keeps request m, then gives j to the pool with m's deadline. Answers m
 * itself when the deadline has passed or the queue is full. Takes j. */
static af_err job_start(af_ctx *ctx, offload *o, af_msg *m, job *j)
{
	int64_t left = af_msg_remaining_ms(m);
	af_err err;

	/* 0 is also less than a millisecond left: too little for a job. */
	if (left == 0) {
		o->timed_out++;
		job_free(ctx, j);
		return af_reply_error(ctx, m, AF_ETIMEDOUT,
				      "offload: the deadline passed before "
				      "the job was queued");
	}
	err = af_defer(ctx, m, &j->pending);
	if (err != AF_OK) {
		job_free(ctx, j);
		return err;
	}
	if (left > 0) {
		err = af_timer_start(ctx, left, 0, job_expired, j, &j->timer);
		j->has_timer = err == AF_OK;
	}
	if (err == AF_OK)
		err = af__pool_push(o->pool, &j->work);
	if (err == AF_EAGAIN) {
		o->rejected++;
		af_pending_error(ctx, &j->pending, AF_EAGAIN,
				 "offload queue full: %zu jobs wait for a "
				 "worker; try again later",
				 o->capacity);
	} else if (err != AF_OK) {
		af_pending_error(ctx, &j->pending, err, "offload: %s",
				 af_strerror(err));
	}
	if (err != AF_OK) {
		job_free(ctx, j);
		return AF_OK;
	}
	af_pending_on_cancel(j->pending, job_cancelled, j);
	return AF_OK;
}

/* ---- requests ----------------------------------------------------------- */

static const named_fn *find_fn(const offload *o, const char *name, size_t len)
{
	for (size_t i = 0; i < o->nfns; i++)
		if (strlen(o->fns[i].name) == len &&
		    memcmp(o->fns[i].name, name, len) == 0)
			return &o->fns[i];
	return NULL;
}

/* The job's own copy of the request's "args" (nil when absent): the
 * request's message is gone by the time a worker reads them. */
static af_err copy_args(offload *o, const af_value *args, af_doc **out)
{
	const void *data;
	size_t len;
	af_err err;

	af_payload_reset(o->scratch);
	if (args == NULL)
		af_pack_nil(o->scratch);
	else
		af_pack_value(o->scratch, args);
	err = af_payload_status(o->scratch);
	if (err != AF_OK)
		return err;
	data = af_payload_data(o->scratch, &len);
	return af_doc_parse(out, data, len);
}

static af_err handle_call(af_ctx *ctx, offload *o, af_msg *m)
{
	const af_value *in = af_msg_payload(m);
	const named_fn *f;
	const char *name;
	size_t len;
	job *j;
	af_err err;

	if (af_value_str(af_value_get(in, "fn"), &name, &len) != AF_OK)
		return af_reply_error(ctx, m, AF_EINVAL,
				      "call takes {\"fn\": name, \"args\": "
				      "value}");
	f = find_fn(o, name, len);
	if (f == NULL)
		return af_reply_error(ctx, m, AF_ENOTFOUND,
				      "offload has no function named '%.*s'",
				      (int)(len < 128 ? len : 128), name);
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return AF_ENOMEM;
	j->o = o;
	j->work.run = job_run;
	j->fn = f->fn;
	j->user = f->user;
	err = copy_args(o, af_value_get(in, "args"), &j->args);
	if (err != AF_OK) {
		free(j);
		return err;
	}
	return job_start(ctx, o, m, j);
}

/* Reads a pointer packed as its own bytes. */
static bool read_pointer(const af_value *v, void *out, size_t size)
{
	const void *data;
	size_t len;

	if (af_value_bin(v, &data, &len) != AF_OK || len != size)
		return false;
	memcpy(out, data, size);
	return true;
}

static af_err handle_call_ptr(af_ctx *ctx, offload *o, af_msg *m)
{
	const af_value *in = af_msg_payload(m);
	af_offload_ptr_fn fn = NULL;
	void *arg = NULL;
	job *j;

	/* A pointer means something only in the process that made it; one
	 * from elsewhere would be a jump to wherever a peer likes. */
	if (!af_msg_is_local(m))
		return af_reply_error(ctx, m, AF_EINVAL,
				      "offload takes call_ptr only from its "
				      "own process; use call");
	if (!read_pointer(af_value_get(in, "fn"), &fn, sizeof(fn)) ||
	    fn == NULL ||
	    !read_pointer(af_value_get(in, "arg"), &arg, sizeof(arg)))
		return af_reply_error(ctx, m, AF_EINVAL,
				      "call_ptr takes {\"fn\": pointer, "
				      "\"arg\": pointer}, as "
				      "af_offload_submit builds it");
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return AF_ENOMEM;
	j->o = o;
	j->work.run = job_run;
	j->ptr_fn = fn;
	j->ptr_arg = arg;
	return job_start(ctx, o, m, j);
}

static void pack_count(af_payload *p, const char *key, uint64_t n)
{
	af_pack_str(p, key);
	af_pack_uint(p, n);
}

static af_err reply_stats(af_ctx *ctx, offload *o, af_msg *m)
{
	af_payload *p = o->scratch;
	size_t queued;
	size_t running;

	af__pool_counts(o->pool, &queued, &running);
	af_payload_reset(p);
	af_pack_map(p, 9);
	pack_count(p, "workers", (uint64_t)o->workers);
	pack_count(p, "capacity", o->capacity);
	pack_count(p, "queued", queued);
	pack_count(p, "running", running);
	pack_count(p, "run", o->run);
	pack_count(p, "failed", o->failed);
	pack_count(p, "cancelled", o->cancelled);
	pack_count(p, "timed_out", o->timed_out);
	pack_count(p, "rejected", o->rejected);
	return af_reply(ctx, m, p);
}

static af_err offload_handle(af_ctx *ctx, void *state, af_msg *m)
{
	offload *o = state;
	const char *type = af_msg_type(m);

	/* A tell has nobody to give a result to. */
	if (af_msg_kind(m) != AF_KIND_REQUEST)
		return AF_OK;
	if (strcmp(type, "call") == 0)
		return handle_call(ctx, o, m);
	if (strcmp(type, "call_ptr") == 0)
		return handle_call_ptr(ctx, o, m);
	if (strcmp(type, "stats") == 0)
		return reply_stats(ctx, o, m);
	return af_reply_error(ctx, m, AF_ENOTSUP,
			      "offload takes call, call_ptr and stats, not "
			      "'%s'",
			      type);
}

/* ---- start and stop ----------------------------------------------------- */

static void free_functions(offload *o)
{
	for (size_t i = 0; i < o->nfns; i++)
		free(o->fns[i].name);
	free(o->fns);
	o->fns = NULL;
	o->nfns = 0;
}

static af_err copy_functions(af_ctx *ctx, offload *o,
			     const af_offload_config *cfg)
{
	if (cfg->nfunctions == 0)
		return AF_OK;
	if (cfg->functions == NULL)
		return af_init_fail(ctx, AF_EINVAL,
				    "offload: nfunctions is %zu but functions "
				    "is NULL",
				    cfg->nfunctions);
	o->fns = calloc(cfg->nfunctions, sizeof(*o->fns));
	if (o->fns == NULL)
		return AF_ENOMEM;
	for (size_t i = 0; i < cfg->nfunctions; i++) {
		const af_offload_function *f = &cfg->functions[i];
		if (f->name == NULL || f->fn == NULL)
			return af_init_fail(ctx, AF_EINVAL,
					    "offload: function %zu has no %s",
					    i, f->name == NULL ? "name" : "fn");
		o->fns[i].name = strdup(f->name);
		if (o->fns[i].name == NULL)
			return AF_ENOMEM;
		o->fns[i].fn = f->fn;
		o->fns[i].user = f->user;
		o->nfns++;
	}
	return AF_OK;
}

static int online_cores(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static af_err offload_init(af_ctx *ctx, const void *config, void **state)
{
	static const af_offload_config defaults;
	const af_offload_config *cfg = config != NULL ? config : &defaults;
	offload *o;
	af_err err;

	if (cfg->workers < 0 || cfg->queue_capacity < 0)
		return af_init_fail(ctx, AF_EINVAL,
				    "offload: workers and queue_capacity may "
				    "not be negative");
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return AF_ENOMEM;
	o->workers = cfg->workers > 0 ? cfg->workers : online_cores();
	o->capacity = cfg->queue_capacity > 0 ? (size_t)cfg->queue_capacity
					      : DEFAULT_QUEUE_CAPACITY;
	err = copy_functions(ctx, o, cfg);
	if (err != AF_OK)
		goto free_state;
	err = af_payload_new(&o->scratch);
	if (err != AF_OK)
		goto free_state;
	err = af__pool_new(&o->pool, o->workers, o->capacity, af_self(ctx));
	if (err != AF_OK)
		goto free_scratch;
	err = af_fd_watch(ctx, af__pool_fd(o->pool), AF_FD_READ, jobs_done, o);
	if (err != AF_OK)
		goto destroy_pool;
	*state = o;
	return AF_OK;

destroy_pool:
	af__pool_destroy(&o->pool, pool_drop);
free_scratch:
	af_payload_destroy(&o->scratch);
free_state:
	free_functions(o);
	free(o);
	return err;
}

static void offload_stop(af_ctx *ctx, void *state)
{
	offload *o = state;

	/* The runtime has run the cancel hook of every request still open
	 * (and answered it AF_ESTOPPED) before this: jobs still queued are
	 * abandoned, so they are dropped unrun, and jobs running are waited
	 * for. */
	af_fd_unwatch(ctx, af__pool_fd(o->pool));
	af__pool_destroy(&o->pool, pool_drop);
	af_payload_destroy(&o->scratch);
	free_functions(o);
	free(o);
}

const af_actor_ops af_offload_ops = {
	.type_name = "offload",
	.init = offload_init,
	.handle = offload_handle,
	.stop = offload_stop,
};

/* ---- the requester's side ----------------------------------------------- */

/* The call_ptr payload: each pointer as its own bytes. */
static af_err ptr_payload(af_payload **out, af_offload_ptr_fn fn, void *arg)
{
	af_payload *p = NULL;
	af_err err = af_payload_new(&p);

	if (err != AF_OK)
		return err;
	af_pack_map(p, 2);
	af_pack_str(p, "fn");
	af_pack_bin(p, &fn, sizeof(fn));
	af_pack_str(p, "arg");
	err = af_pack_bin(p, &arg, sizeof(arg));
	if (err != AF_OK)
		af_payload_destroy(&p);
	*out = p;
	return err;
}

af_err af_offload_submit(af_ctx *ctx, const char *addr, af_offload_ptr_fn fn,
			 void *arg, int64_t timeout_ms, af_reply_fn done,
			 void *done_arg, uint64_t *id)
{
	af_payload *p = NULL;
	af_err err;

	if (fn == NULL || done == NULL)
		return AF_EINVAL;
	err = ptr_payload(&p, fn, arg);
	if (err != AF_OK)
		return err;
	err = af_request(ctx, addr, "call_ptr", p, timeout_ms, done, done_arg,
			 id);
	af_payload_destroy(&p);
	return err;
}

af_err af_offload_client_call(af_client *c, const char *addr,
			      af_offload_ptr_fn fn, void *arg,
			      int64_t timeout_ms, af_msg **reply)
{
	af_payload *p = NULL;
	af_err err;

	if (reply != NULL)
		*reply = NULL;
	if (fn == NULL)
		return AF_EINVAL;
	err = ptr_payload(&p, fn, arg);
	if (err != AF_OK)
		return err;
	err = af_client_request(c, addr, "call_ptr", p, timeout_ms, reply);
	af_payload_destroy(&p);
	return err;
}
