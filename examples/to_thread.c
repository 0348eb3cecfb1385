/*
 * Blocking work on worker threads while actors keep answering: the offload
 * actor runs a CPU-heavy function and a blocking file read, and meanwhile
 * an "app" actor keeps sending heartbeats to "echo", which keeps answering.
 * The C shape of
 *
 *     def count_primes(below): ...                 # CPU-heavy
 *     def read_file(path): return open(path).read()  # blocking I/O
 *
 *     async def main(path):
 *         beats = asyncio.create_task(heartbeat())   # await echo(), again
 *         primes = await asyncio.to_thread(count_primes, 2_000_000)
 *         text = await asyncio.to_thread(read_file, path)
 *         beats.cancel()
 *
 *     asyncio.run(main(path))
 *
 * count_primes is called by name (a "call" request, which works from any
 * process); read_file by pointer (af_offload_submit, in-process only).
 */
#include <actorflow/actorflow.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRIMES_BELOW 2000000

/* ---- the blocking functions (run on workers, never call af_ctx) -------- */

static bool is_prime(int64_t n)
{
	if (n < 2)
		return false;
	for (int64_t d = 2; d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

/* Called by name: args {"below": n}, result {"count": primes below n}. */
static int count_primes(void *user, const af_value *args, af_payload *result,
			char *msg, size_t msg_size)
{
	int64_t below = af_value_get_int(args, "below", -1);
	int64_t count = 0;

	if (below < 0) {
		snprintf(msg, msg_size, "count_primes takes {\"below\": n}");
		return AF_EINVAL;
	}
	for (int64_t n = 2; n < below; n++)
		count += is_prime(n);
	af_pack_map(result, 1);
	af_pack_str(result, "count");
	return af_pack_int(result, count);
}

/* Called by pointer: reads the whole file into the caller's struct. */
typedef struct file_read {
	const char *path;
	char text[4096];
	size_t len;
} file_read;

static int read_file(void *arg, af_payload *result, char *msg, size_t msg_size)
{
	file_read *fr = arg;
	FILE *f = fopen(fr->path, "r");

	if (f == NULL) {
		snprintf(msg, msg_size, "cannot open %s", fr->path);
		return AF_ESYS;
	}
	fr->len = fread(fr->text, 1, sizeof(fr->text) - 1, f);
	fr->text[fr->len] = '\0';
	fclose(f);
	af_pack_map(result, 1);
	af_pack_str(result, "bytes");
	return af_pack_uint(result, fr->len);
}

/* ---- echo: answers at once --------------------------------------------- */

static af_err echo_handle(af_ctx *ctx, void *state, af_msg *m)
{
	return af_reply(ctx, m, NULL);
}

static const af_actor_ops echo_ops = {
	.type_name = "echo",
	.handle = echo_handle,
};

/* ---- app: offloads both functions, one after the other, and beats ------ */

typedef struct app {
	af_pending *run;
	file_read file;
	int64_t primes;
	int64_t bytes;
	int64_t beats;
	bool jobs_done;
	af_err failed;
} app;

static void finish(af_ctx *ctx, app *a)
{
	af_payload *p = NULL;

	if (a->failed != AF_OK) {
		af_pending_error(ctx, &a->run, a->failed, NULL);
		return;
	}
	af_payload_new(&p);
	af_pack_map(p, 4);
	af_pack_str(p, "primes");
	af_pack_int(p, a->primes);
	af_pack_str(p, "bytes");
	af_pack_int(p, a->bytes);
	af_pack_str(p, "text");
	af_pack_str(p, a->file.text);
	af_pack_str(p, "beats");
	af_pack_int(p, a->beats);
	af_pending_reply(ctx, &a->run, p);
	af_payload_destroy(&p);
}

/* The heartbeat: one echo request after another until the jobs are done.
 * The last beat answers "run", so no request is left in flight. */
static void beat(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	app *a = arg;
	af_err err;

	if (status != AF_OK)
		a->failed = status;
	else if (reply != NULL)
		a->beats++;
	if (a->jobs_done) {
		finish(ctx, a);
		return;
	}
	err = af_request(ctx, "echo", "ping", NULL, 1000, beat, a, NULL);
	if (err != AF_OK) {
		a->failed = err;
		finish(ctx, a);
	}
}

static void file_read_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	app *a = arg;

	if (status == AF_OK)
		a->bytes = af_value_get_int(af_msg_payload(reply), "bytes", -1);
	else
		a->failed = status;
	a->jobs_done = true;
}

static void primes_done(af_ctx *ctx, int status, af_msg *reply, void *arg)
{
	app *a = arg;
	af_err err = status;

	if (status == AF_OK) {
		a->primes =
			af_value_get_int(af_msg_payload(reply), "count", -1);
		err = af_offload_submit(ctx, "offload", read_file, &a->file,
					5000, file_read_done, a, NULL);
	}
	if (err != AF_OK) {
		a->failed = err;
		a->jobs_done = true;
	}
}

static af_err app_handle(af_ctx *ctx, void *state, af_msg *m)
{
	app *a = state;
	af_payload *p = NULL;
	af_err err = af_defer(ctx, m, &a->run);

	if (err != AF_OK)
		return err;
	err = af_payload_new(&p);
	if (err == AF_OK) {
		af_pack_map(p, 2);
		af_pack_str(p, "fn");
		af_pack_str(p, "count_primes");
		af_pack_str(p, "args");
		af_pack_map(p, 1);
		af_pack_str(p, "below");
		af_pack_int(p, PRIMES_BELOW);
		err = af_request(ctx, "offload", "call", p, 10000, primes_done,
				 a, NULL);
		af_payload_destroy(&p);
	}
	if (err != AF_OK) {
		af_pending_error(ctx, &a->run, err, "cannot offload: %s",
				 af_strerror(err));
		return AF_OK;
	}
	/* The first beat goes out now; each answer sends the next. */
	beat(ctx, AF_OK, NULL, a);
	return AF_OK;
}

static af_err app_init(af_ctx *ctx, const void *config, void **state)
{
	app *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return AF_ENOMEM;
	a->file.path = config;
	*state = a;
	return AF_OK;
}

static void app_stop(af_ctx *ctx, void *state)
{
	free(state);
}

static const af_actor_ops app_ops = {
	.type_name = "app",
	.init = app_init,
	.handle = app_handle,
	.stop = app_stop,
};

/* ---- main ---------------------------------------------------------------- */

static const char poem[] = "Nothing blocks the loop:\n"
			   "the workers read and count,\n"
			   "the actors answer.\n";

static bool write_file(const char *path)
{
	FILE *f = fopen(path, "w");
	bool ok = f != NULL && fputs(poem, f) >= 0;

	if (f != NULL && fclose(f) != 0)
		ok = false;
	return ok;
}

int main(void)
{
	static const af_offload_function functions[] = {
		{.name = "count_primes", .fn = count_primes},
	};
	af_offload_config cfg = {.functions = functions, .nfunctions = 1};
	char dir[] = "/tmp/af-to-thread-XXXXXX";
	char path[64];
	af_system *sys = NULL;
	af_client *client = NULL;
	af_msg *reply = NULL;
	af_err err = AF_ESYS;

	if (mkdtemp(dir) == NULL)
		goto out;
	snprintf(path, sizeof(path), "%s/poem.txt", dir);
	if (!write_file(path))
		goto remove_dir;
	if ((err = af_system_new(&sys, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "offload", &af_offload_ops, &cfg, NULL)) !=
		    AF_OK ||
	    (err = af_spawn(sys, "echo", &echo_ops, NULL, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "app", &app_ops, path, NULL)) != AF_OK ||
	    (err = af_client_new(&client, sys)) != AF_OK)
		goto stop;
	err = af_client_request(client, "app", "run", NULL, 20000, &reply);
	if (err == AF_OK) {
		const af_value *v = af_msg_payload(reply);
		const char *text = "";
		size_t len = 0;
		af_value_str(af_value_get(v, "text"), &text, &len);
		printf("count_primes(below=%d) on a worker: %lld primes\n",
		       PRIMES_BELOW,
		       (long long)af_value_get_int(v, "primes", -1));
		printf("read_file(poem.txt) on a worker: %lld bytes\n%.*s",
		       (long long)af_value_get_int(v, "bytes", -1), (int)len,
		       text);
		/* How many beats depends on the machine; that there were
		 * some while the workers were busy does not. */
		if (af_value_get_int(v, "beats", 0) > 0)
			printf("meanwhile echo answered every heartbeat\n");
		else
			err = AF_ETIMEDOUT;
	}
	af_msg_destroy(&reply);
stop:
	af_client_destroy(&client);
	af_system_destroy(&sys);
	unlink(path);
remove_dir:
	rmdir(dir);
out:
	if (err != AF_OK)
		fprintf(stderr, "to_thread: %s\n", af_strerror(err));
	return err == AF_OK ? 0 : 1;
}
