#include "system.h"

#include "curve.h"
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_MAILBOX_CAPACITY 1000
#define DEFAULT_STACK_SIZE (256u << 10)

void af__wake_fd(int fd)
{
	uint64_t one = 1;

	/* A full eventfd counter (EAGAIN) still wakes its reader. */
	if (write(fd, &one, sizeof(one)) < 0) {
	}
}

af_err af_system_new(af_system **out, const af_system_opts *opts)
{
	af_system *sys = calloc(1, sizeof(*sys));
	int io_threads =
		opts != NULL && opts->io_threads > 0 ? opts->io_threads : 1;

	if (sys == NULL)
		return AF_ENOMEM;
	sys->max_msg = opts != NULL && opts->max_message_size > 0
			       ? opts->max_message_size
			       : AF__DEFAULT_MAX_MESSAGE;
	sys->peer_idle_ms = opts == NULL || opts->peer_idle_ms == 0
				    ? AF__PEER_IDLE_MS
				    : opts->peer_idle_ms;
	sys->zctx = zmq_ctx_new();
	if (sys->zctx == NULL)
		goto undo_sys;
	/* Each actor holds a mailbox and a socket per peer; ZeroMQ's default
	 * limit of 1023 sockets would cap a system at a few hundred actors. */
	if (zmq_ctx_set(sys->zctx, ZMQ_IO_THREADS, io_threads) != 0 ||
	    zmq_ctx_set(sys->zctx, ZMQ_MAX_SOCKETS,
			zmq_ctx_get(sys->zctx, ZMQ_SOCKET_LIMIT)) != 0)
		goto undo_zctx;
	if (pthread_mutex_init(&sys->mu, NULL) != 0)
		goto undo_zctx;
	if (pthread_cond_init(&sys->cv, NULL) != 0)
		goto undo_mutex;
	atomic_init(&sys->epoch, 1);
	atomic_init(&sys->next_ids, 0);
	atomic_init(&sys->draining, false);
	for (int i = 0; i < AF__STAT_COUNT; i++)
		atomic_init(&sys->stats[i], 0);
	*out = sys;
	return AF_OK;
undo_mutex:
	pthread_mutex_destroy(&sys->mu);
undo_zctx:
	zmq_ctx_term(sys->zctx);
undo_sys:
	free(sys);
	return AF_ESYS;
}

/* Frees an entry and lets go of its mailbox gauge, which peers connected
 * to it may hold a while longer. */
static void actor_free(af__actor *a)
{
	af__gauge_release(a->gauge);
	free(a->init_error);
	free(a);
}

/* The live entry called name: an actor, or with inboxes also a client's
 * inbox. */
static af__actor *find_entry(af_system *sys, const char *name, size_t len,
			     bool inboxes)
{
	for (af__actor *a = sys->actors; a != NULL; a = a->next)
		if (a->phase != AF__ACTOR_EXITED &&
		    (inboxes || !a->inbox_only) && strlen(a->name) == len &&
		    memcmp(a->name, name, len) == 0)
			return a;
	return NULL;
}

static af__actor *find(af_system *sys, const char *name, size_t len)
{
	return find_entry(sys, name, len, false);
}

static void unlink_actor(af_system *sys, af__actor *a)
{
	for (af__actor **pp = &sys->actors; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			return;
		}
	}
}

/* Waits, under sys->mu, until no af_export looks at a, which its caller
 * has unlinked (so no new one finds it) and joined: after this it may be
 * freed. An export waiting on a joined actor returns as soon as it has
 * the lock (its export_done is set, its phase is not running). */
static void wait_for_exports(af_system *sys, af__actor *a)
{
	while (a->export_waiters > 0)
		pthread_cond_wait(&sys->cv, &sys->mu);
}

/* Joins and frees actors that stopped themselves. Called without the lock;
 * takes it. */
static void reap_exited(af_system *sys)
{
	for (;;) {
		af__actor *a;
		pthread_mutex_lock(&sys->mu);
		for (a = sys->actors; a != NULL; a = a->next)
			if (a->phase == AF__ACTOR_EXITED && !a->stop_claimed &&
			    !a->spawning)
				break;
		if (a != NULL) {
			a->stop_claimed = true;
			unlink_actor(sys, a);
		}
		pthread_mutex_unlock(&sys->mu);
		if (a == NULL)
			return;
		pthread_join(a->thread, NULL);
		pthread_mutex_lock(&sys->mu);
		wait_for_exports(sys, a);
		pthread_mutex_unlock(&sys->mu);
		actor_free(a);
	}
}

uint64_t af__system_lookup(af_system *sys, const char *name, size_t len,
			   bool include_stopping)
{
	uint64_t incarnation = 0;
	af__actor *a;

	pthread_mutex_lock(&sys->mu);
	a = find_entry(sys, name, len, true);
	/* An actor in init counts: its mailbox is open, and what init sent
	 * may be answered before init returns. */
	if (a != NULL &&
	    (a->phase == AF__ACTOR_RUNNING || a->phase == AF__ACTOR_STARTING ||
	     (include_stopping && a->phase == AF__ACTOR_STOPPING)))
		incarnation = a->incarnation;
	pthread_mutex_unlock(&sys->mu);
	return incarnation;
}

uint64_t af__system_lookup_gauge(af_system *sys, const char *name, size_t len,
				 af__gauge **gauge)
{
	uint64_t incarnation = 0;
	af__actor *a;

	*gauge = NULL;
	pthread_mutex_lock(&sys->mu);
	a = find_entry(sys, name, len, true);
	if (a != NULL &&
	    (a->phase == AF__ACTOR_RUNNING || a->phase == AF__ACTOR_STARTING)) {
		incarnation = a->incarnation;
		if (a->gauge != NULL) {
			af__gauge_hold(a->gauge);
			*gauge = a->gauge;
		}
	}
	pthread_mutex_unlock(&sys->mu);
	return incarnation;
}

af_err af__system_add_inbox(af_system *sys, char *name, size_t cap)
{
	af__actor *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return AF_ENOMEM;
	a->sys = sys;
	a->inbox_only = true;
	a->wake_fd = -1;
	a->phase = AF__ACTOR_RUNNING;
	pthread_mutex_lock(&sys->mu);
	/* '#' cannot appear in an actor's name, so these never collide. */
	snprintf(a->name, sizeof(a->name), "client#%llu",
		 (unsigned long long)++sys->next_client);
	a->incarnation = ++sys->next_incarnation;
	a->next = sys->actors;
	sys->actors = a;
	pthread_mutex_unlock(&sys->mu);
	snprintf(name, cap, "%s", a->name);
	return AF_OK;
}

void af__system_remove_inbox(af_system *sys, const char *name)
{
	af__actor *a;

	pthread_mutex_lock(&sys->mu);
	a = find_entry(sys, name, strlen(name), true);
	if (a != NULL && a->inbox_only) {
		unlink_actor(sys, a);
		af__system_bump_epoch(sys);
	} else {
		a = NULL;
	}
	pthread_mutex_unlock(&sys->mu);
	actor_free(a);
}

void af__system_add_waker(af_system *sys, af__waker *w)
{
	pthread_mutex_lock(&sys->mu);
	w->prev = NULL;
	w->next = sys->wakers;
	if (sys->wakers != NULL)
		sys->wakers->prev = w;
	sys->wakers = w;
	pthread_mutex_unlock(&sys->mu);
}

void af__system_remove_waker(af_system *sys, af__waker *w)
{
	pthread_mutex_lock(&sys->mu);
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		sys->wakers = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	pthread_mutex_unlock(&sys->mu);
}

void af__system_bump_epoch(af_system *sys)
{
	atomic_fetch_add(&sys->epoch, 1);
	for (af__waker *w = sys->wakers; w != NULL; w = w->next)
		if (atomic_load(&w->waiting))
			af__wake_fd(w->fd);
}

static bool valid_name(const char *name)
{
	return name != NULL && af__addr_is_name(name, strlen(name));
}

/* Says in opts->error why a spawn failed, when the caller gave room. */
static af_err spawn_failed(const af_spawn_opts *opts, af_err err,
			   const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static af_err spawn_failed(const af_spawn_opts *opts, af_err err,
			   const char *fmt, ...)
{
	va_list ap;

	if (opts == NULL || opts->error == NULL || opts->error_size == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(opts->error, opts->error_size, fmt, ap);
	va_end(ap);
	return err;
}

static af_err bad_name(const af_spawn_opts *opts, const char *name)
{
	if (name == NULL || *name == '\0')
		return spawn_failed(opts, AF_EINVAL, "an actor needs a name");
	if (strlen(name) > AF__NAME_MAX)
		return spawn_failed(opts, AF_EINVAL,
				    "an actor's name has at most %d bytes, "
				    "not %zu",
				    AF__NAME_MAX, strlen(name));
	return spawn_failed(opts, AF_EINVAL,
			    "\"%s\" is not an actor's name: a name holds "
			    "no '#' and no \"://\" (it would read as an "
			    "address)",
			    name);
}

static af_err spawn(af_system *sys, const char *name, const af_actor_ops *ops,
		    const void *config, const af_spawn_opts *opts,
		    bool gateway);

af_err af_spawn(af_system *sys, const char *name, const af_actor_ops *ops,
		const void *config, const af_spawn_opts *opts)
{
	if (name != NULL &&
	    strncmp(name, AF__GATEWAY_PREFIX, strlen(AF__GATEWAY_PREFIX)) == 0)
		return spawn_failed(opts, AF_EINVAL,
				    "names that start with \"%s\" are the "
				    "runtime's own",
				    AF__GATEWAY_PREFIX);
	return spawn(sys, name, ops, config, opts, false);
}

af_err af__spawn_gateway(af_system *sys, const char *name,
			 const af_actor_ops *ops)
{
	return spawn(sys, name, ops, NULL, NULL, true);
}

af_err af_init_fail(af_ctx *ctx, af_err code, const char *fmt, ...)
{
	af__actor *a = ctx != NULL ? ctx->actor : NULL;
	va_list ap;

	/* Only while init runs: not from the continuations that a failed
	 * init's teardown settles. in_init is the actor thread's own; af_spawn
	 * reads the text once that thread is joined. */
	if (a == NULL || !a->in_init || fmt == NULL || code == AF_OK)
		return code;
	if (a->init_error == NULL &&
	    (a->init_error = malloc(AF_INIT_ERROR_MAX)) == NULL)
		return code;
	va_start(ap, fmt);
	vsnprintf(a->init_error, AF_INIT_ERROR_MAX, fmt, ap);
	va_end(ap);
	return code;
}

/* Why init (or the runtime's start of the actor) failed. */
static void init_failed(const af_spawn_opts *opts, const af__actor *a,
			af_err err)
{
	if (a->init_error != NULL)
		spawn_failed(opts, err, "%s", a->init_error);
	else
		spawn_failed(opts, err, "actor \"%s\"%s%s%s did not start: %s",
			     a->name, a->ops->type_name != NULL ? " (" : "",
			     a->ops->type_name != NULL ? a->ops->type_name : "",
			     a->ops->type_name != NULL ? ")" : "",
			     af_strerror(err));
}

static af_err spawn(af_system *sys, const char *name, const af_actor_ops *ops,
		    const void *config, const af_spawn_opts *opts, bool gateway)
{
	pthread_attr_t attr;
	af__actor *a;
	af_err err;
	int rc;

	if (sys == NULL || ops == NULL)
		return spawn_failed(opts, AF_EINVAL,
				    "af_spawn needs a system and an ops table");
	if (!valid_name(name))
		return bad_name(opts, name);
	reap_exited(sys);
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return spawn_failed(opts, AF_ENOMEM, "%s",
				    af_strerror(AF_ENOMEM));
	a->sys = sys;
	strcpy(a->name, name);
	a->ops = ops;
	a->config = config;
	a->gateway = gateway;
	a->wake_fd = -1;
	a->gauge = af__gauge_new();
	if (a->gauge == NULL) {
		free(a);
		return spawn_failed(opts, AF_ENOMEM, "%s",
				    af_strerror(AF_ENOMEM));
	}
	a->opts.mailbox_capacity = opts != NULL && opts->mailbox_capacity > 0
					   ? opts->mailbox_capacity
					   : DEFAULT_MAILBOX_CAPACITY;
	a->opts.stack_size = opts != NULL && opts->stack_size > 0
				     ? opts->stack_size
				     : DEFAULT_STACK_SIZE;
	atomic_init(&a->stop_requested, false);
	pthread_mutex_lock(&sys->mu);
	if (find(sys, name, strlen(name)) != NULL) {
		pthread_mutex_unlock(&sys->mu);
		actor_free(a);
		return spawn_failed(opts, AF_EEXIST,
				    "an actor named \"%s\" already exists",
				    name);
	}
	a->phase = AF__ACTOR_STARTING;
	a->spawning = true;
	a->incarnation = ++sys->next_incarnation;
	a->next = sys->actors;
	sys->actors = a;
	pthread_mutex_unlock(&sys->mu);

	pthread_attr_init(&attr);
	if (a->opts.stack_size < (size_t)PTHREAD_STACK_MIN)
		a->opts.stack_size = PTHREAD_STACK_MIN;
	pthread_attr_setstacksize(&attr, a->opts.stack_size);
	rc = pthread_create(&a->thread, &attr, af__actor_main, a);
	pthread_attr_destroy(&attr);

	pthread_mutex_lock(&sys->mu);
	if (rc != 0) {
		unlink_actor(sys, a);
		pthread_mutex_unlock(&sys->mu);
		actor_free(a);
		return spawn_failed(
			opts, AF_ESYS,
			"cannot start a thread for actor \"%s\": %s", name,
			strerror(rc));
	}
	while (!a->init_done)
		pthread_cond_wait(&sys->cv, &sys->mu);
	err = a->init_result;
	a->spawning = false;
	if (err != AF_OK) {
		a->stop_claimed = true;
		unlink_actor(sys, a);
	}
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
	if (err != AF_OK) {
		pthread_join(a->thread, NULL);
		init_failed(opts, a, err);
		actor_free(a);
	}
	return err;
}

af_err af_stop(af_system *sys, const char *name)
{
	af__actor *a;

	if (sys == NULL || name == NULL)
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	a = find(sys, name, strlen(name));
	while (a != NULL && (a->phase == AF__ACTOR_STARTING || a->spawning)) {
		pthread_cond_wait(&sys->cv, &sys->mu);
		a = find(sys, name, strlen(name));
	}
	if (a == NULL || a->stop_claimed) {
		pthread_mutex_unlock(&sys->mu);
		reap_exited(sys);
		return AF_ENOTFOUND;
	}
	if (pthread_equal(a->thread, pthread_self())) {
		pthread_mutex_unlock(&sys->mu);
		return AF_EINVAL;
	}
	a->stop_claimed = true;
	if (a->phase == AF__ACTOR_RUNNING)
		a->phase = AF__ACTOR_STOPPING;
	atomic_store(&a->stop_requested, true);
	if (a->wake_fd >= 0)
		af__wake_fd(a->wake_fd);
	pthread_mutex_unlock(&sys->mu);

	pthread_join(a->thread, NULL);
	pthread_mutex_lock(&sys->mu);
	unlink_actor(sys, a);
	wait_for_exports(sys, a);
	pthread_mutex_unlock(&sys->mu);
	actor_free(a);
	return AF_OK;
}

af_err af_export(af_system *sys, const char *name, const char *endpoint)
{
	return af__export(sys, name, endpoint, NULL);
}

af_err af__export(af_system *sys, const char *name, const char *endpoint,
		  const struct af__curve_bind *curve)
{
	af__actor *a;
	af_err err;

	if (sys == NULL || name == NULL || endpoint == NULL)
		return AF_EINVAL;
	pthread_mutex_lock(&sys->mu);
	a = find(sys, name, strlen(name));
	if (a == NULL || a->phase != AF__ACTOR_RUNNING) {
		pthread_mutex_unlock(&sys->mu);
		return AF_ENOTFOUND;
	}
	if (pthread_equal(a->thread, pthread_self())) {
		pthread_mutex_unlock(&sys->mu);
		return af__actor_bind_with(a, endpoint, curve);
	}
	/* The mailbox socket belongs to the actor's thread: hand the bind to
	 * it, one export at a time. The actor may stop, and be joined,
	 * while this waits: counted as a waiter, its entry stays until this
	 * is done with it (wait_for_exports). */
	a->export_waiters++;
	while (a->export_endpoint != NULL && a->phase == AF__ACTOR_RUNNING)
		pthread_cond_wait(&sys->cv, &sys->mu);
	if (a->phase != AF__ACTOR_RUNNING) {
		err = AF_ENOTFOUND;
	} else {
		a->export_endpoint = endpoint;
		a->export_curve = curve;
		a->export_done = false;
		af__wake_fd(a->wake_fd);
		while (!a->export_done)
			pthread_cond_wait(&sys->cv, &sys->mu);
		err = a->export_result;
		a->export_endpoint = NULL;
		a->export_curve = NULL;
	}
	a->export_waiters--;
	pthread_cond_broadcast(&sys->cv);
	pthread_mutex_unlock(&sys->mu);
	return err;
}

bool af_exists(af_system *sys, const char *name)
{
	return sys != NULL && name != NULL &&
	       af__system_lookup(sys, name, strlen(name), false) != 0;
}

af_err af_system_get_stats(af_system *sys, af_system_stats *out)
{
	if (sys == NULL || out == NULL)
		return AF_EINVAL;
	out->dropped = atomic_load(&sys->stats[AF__STAT_DROPPED]);
	out->refused = atomic_load(&sys->stats[AF__STAT_REFUSED]);
	out->late = atomic_load(&sys->stats[AF__STAT_LATE]);
	out->unroutable = atomic_load(&sys->stats[AF__STAT_UNROUTABLE]);
	return AF_OK;
}

void af_system_destroy(af_system **sp)
{
	af_system *sys;

	if (sp == NULL || *sp == NULL)
		return;
	sys = *sp;
	*sp = NULL;
	for (;;) {
		char name[AF__NAME_MAX + 1] = "";
		af__actor *a;
		pthread_mutex_lock(&sys->mu);
		for (a = sys->actors; a != NULL; a = a->next)
			if (a->phase != AF__ACTOR_EXITED && !a->stop_claimed &&
			    !a->inbox_only)
				break;
		if (a != NULL)
			strcpy(name, a->name);
		pthread_mutex_unlock(&sys->mu);
		if (a == NULL)
			break;
		af_stop(sys, name);
	}
	reap_exited(sys);
	/* Inboxes of clients that were not destroyed first. */
	while (sys->actors != NULL) {
		af__actor *a = sys->actors;
		sys->actors = a->next;
		actor_free(a);
	}
	/* The ZAP handler's socket is the last one of the context. */
	af__zap_stop(sys);
	af__curve_routes_free(sys);
	zmq_ctx_term(sys->zctx);
	pthread_cond_destroy(&sys->cv);
	pthread_mutex_destroy(&sys->mu);
	free(sys);
}
