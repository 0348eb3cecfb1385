/*
 * load_dir: the folder is walked when the request comes (sorted, so ids
 * and their order do not depend on the disk), then its files are read,
 * checked and split in slices, one slice per turn of the actor's loop, so
 * the requests that arrive meanwhile (retrieves, stats) are answered
 * between slices instead of waiting for the whole folder.
 *
 * Nothing is written until every file has been read: the documents are
 * collected, then stored in one transaction as an insert's are. A folder
 * with a bad file anywhere, or a request given up half-way, stores
 * nothing, and no other request ever sees a folder half stored.
 *
 * A requester that asked for a stream gets a progress chunk after each
 * slice and the counts as the stream's end.
 */
#define _GNU_SOURCE /* asprintf */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../chat/utf8.h"
#include "retrieval_internal.h"

/* One slice reads at most this many files, or files of this many bytes
 * (at least one file, however large): small enough that a request
 * arriving meanwhile waits a few milliseconds, large enough that the
 * turns of the loop cost nothing next to the reading. */
#define SLICE_FILES 64
#define SLICE_BYTES ((uint64_t)8 << 20)

/* A file the walk found. */
typedef struct rfile {
	char *id;   /* its path under the folder: the document's id */
	char *path; /* the folder's path, '/', id */
	uint64_t size;
} rfile;

/* A load_dir request reading its files. */
typedef struct rload {
	retrieval *r;
	af_pending *p;
	rfile *files;
	size_t n;
	size_t cap;
	size_t done;
	uint64_t bytes;
	uint64_t bytes_total;
	ringest in;
	uint64_t timer;
	bool timer_on;
	struct rload *prev;
	struct rload *next;
} rload;

/* ---- the walk ---------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool wanted(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot != NULL && dot != name &&
	       (strcasecmp(dot, ".txt") == 0 || strcasecmp(dot, ".md") == 0);
}

/* Adds the file (taking id and path whatever happens). */
static af_err add_file(rload *l, char *id, char *path)
{
	struct stat st;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		rfile *v = realloc(l->files, cap * sizeof(*v));

		if (v == NULL) {
			free(id);
			free(path);
			return AF_ENOMEM;
		}
		l->files = v;
		l->cap = cap;
	}
	/* Only for the progress: a file that cannot be read fails the
	 * folder when its turn comes, naming it. */
	l->files[l->n].size = stat(path, &st) == 0 && S_ISREG(st.st_mode)
				      ? (uint64_t)st.st_size
				      : 0;
	l->files[l->n].id = id;
	l->files[l->n].path = path;
	l->bytes_total += l->files[l->n].size;
	l->n++;
	return AF_OK;
}

/* Walks root/rel (rel "" for root itself), adding its files to l. */
static af_err walk(rload *l, const char *root, const char *rel, bool recursive,
		   char *why)
{
	char *dir_path = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *ent;
	DIR *dir;
	af_err err = AF_OK;

	if (asprintf(&dir_path, "%s%s%s", root, *rel ? "/" : "", rel) < 0)
		return AF_ENOMEM;
	dir = opendir(dir_path);
	if (dir == NULL) {
		err = af__ingest_why(why, AF_ESYS,
				     "cannot read the folder %s: %s",
				     *rel ? rel : root, strerror(errno));
		goto free_path;
	}
	/* Names starting with '.' (.git, editors' files) are not
	 * documents. */
	while ((ent = readdir(dir)) != NULL) {
		if (ent->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t c = cap ? cap * 2 : 32;
			char **v = realloc(names, c * sizeof(*v));

			if (v == NULL) {
				err = AF_ENOMEM;
				goto free_names;
			}
			names = v;
			cap = c;
		}
		if ((names[n] = strdup(ent->d_name)) == NULL) {
			err = AF_ENOMEM;
			goto free_names;
		}
		n++;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n && err == AF_OK; i++) {
		char *id = NULL, *path = NULL;
		struct stat st;

		if (asprintf(&id, "%s%s%s", rel, *rel ? "/" : "", names[i]) <
			    0 ||
		    asprintf(&path, "%s/%s", root, id) < 0) {
			free(id);
			err = AF_ENOMEM;
			break;
		}
		if (lstat(path, &st) != 0) {
			err = af__ingest_why(why, AF_ESYS, "cannot read %s: %s",
					     id, strerror(errno));
		} else if ((S_ISDIR(st.st_mode) ? recursive
						: wanted(names[i])) &&
			   !af__utf8_text_ok(names[i], strlen(names[i]))) {
			/* The name would become an id and metadata, strings
			 * that are UTF-8 on the wire; the error names the
			 * folder, as the name itself is not text. */
			err = af__ingest_why(
				why, AF_EINVAL,
				"a name in the folder %s is not UTF-8",
				*rel ? rel : "given");
		} else if (S_ISDIR(st.st_mode)) {
			if (recursive)
				err = walk(l, root, id, true, why);
		} else if (wanted(names[i])) {
			/* Symbolic links to files are followed when read (a
			 * dangling one cannot be); links to folders are not,
			 * so a loop cannot trap the walk. */
			err = add_file(l, id, path);
			id = path = NULL;
		}
		free(path);
		free(id);
	}
free_names:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
free_path:
	free(dir_path);
	return err;
}

/* ---- the request ------------------------------------------------------- */

/* Frees l; its request, if still open, is the caller's to answer first.
 * cancel_timer: the slice to come is cancelled (not when the actor
 * stops: the runtime settled its timers). */
static void load_free(rload *l, bool cancel_timer)
{
	retrieval *r = l->r;

	if (cancel_timer && l->timer_on)
		af_timer_cancel(r->ctx, l->timer);
	/* A request no answer could be sent to stays with the runtime,
	 * which answers it when the actor stops: it must then call nothing
	 * of l's. */
	if (l->p != NULL)
		af_pending_on_cancel(l->p, NULL, NULL);
	if (l->prev != NULL)
		l->prev->next = l->next;
	else if (r->loads == l)
		r->loads = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	for (size_t i = 0; i < l->n; i++) {
		free(l->files[i].id);
		free(l->files[i].path);
	}
	free(l->files);
	af__ingest_free(r, &l->in);
	free(l);
}

void af__load_dir_free_all(retrieval *r)
{
	while (r->loads != NULL) {
		r->loads->p = NULL;
		load_free(r->loads, false);
	}
}

static void on_cancel(af_ctx *ctx, void *arg)
{
	rload *l = arg;

	/* The requester gave up: stop reading, store nothing. The runtime
	 * frees the pending request after this returns. */
	(void)ctx;
	l->p = NULL;
	load_free(l, true);
}

/* Answers l's request with err and frees l. */
static void load_fail(rload *l, af_err err, const char *why)
{
	af_pending_error(l->r->ctx, &l->p, err, "%s",
			 why[0] ? why : af_strerror(err));
	load_free(l, true);
}

/* {"files", "files_total", "bytes", "bytes_total"} as the stream's next
 * chunk. Progress only informs: a consumer whose credit window is full
 * misses this one rather than holding up the work. */
static af_err send_progress(rload *l)
{
	retrieval *r = l->r;
	af_err err;

	af_payload_reset(r->out);
	af_pack_map(r->out, 4);
	af_pack_str(r->out, "files");
	af_pack_uint(r->out, l->done);
	af_pack_str(r->out, "files_total");
	af_pack_uint(r->out, l->n);
	af_pack_str(r->out, "bytes");
	af_pack_uint(r->out, l->bytes);
	af_pack_str(r->out, "bytes_total");
	af_pack_uint(r->out, l->bytes_total);
	if ((err = af_payload_status(r->out)) != AF_OK)
		return err;
	err = af_pending_chunk(r->ctx, l->p, r->out);
	return err == AF_EAGAIN ? AF_OK : err;
}

static void slice(af_ctx *ctx, void *arg)
{
	rload *l = arg;
	retrieval *r = l->r;
	char why[RETRIEVAL_WHY] = "";
	uint64_t bytes = 0;
	size_t files = 0;
	af_err err = AF_OK;

	l->timer_on = false;
	while (l->done < l->n && files < SLICE_FILES && bytes < SLICE_BYTES) {
		const rfile *f = &l->files[l->done];

		err = af__ingest_file(r, &l->in, f->path, f->id, why);
		if (err != AF_OK) {
			load_fail(l, err, why);
			return;
		}
		files++;
		bytes += f->size;
		l->done++;
		l->bytes += f->size;
	}
	if (af_pending_is_stream(l->p) && (err = send_progress(l)) != AF_OK) {
		/* AF_ECANCELED: the consumer is gone, and the error goes
		 * nowhere. */
		load_fail(l, err, "");
		return;
	}
	if (l->done < l->n) {
		err = af_timer_start(ctx, 0, 0, slice, l, &l->timer);
		if (err != AF_OK) {
			load_fail(l, err, "");
			return;
		}
		l->timer_on = true;
		return;
	}
	/* Every file is read: store them all at once. */
	af_pending_on_cancel(l->p, NULL, NULL);
	af__retrieval_store(r, &l->p, &l->in);
	load_free(l, false);
}

af_err af__load_dir_start(retrieval *r, af_msg *m, const char *path,
			  bool recursive)
{
	char why[RETRIEVAL_WHY] = "";
	struct stat st;
	rload *l;
	af_err err;

	if (stat(path, &st) != 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return af_reply_error(r->ctx, m, AF_ENOTFOUND,
					      "no folder %s", path);
		return af_reply_error(r->ctx, m, AF_ESYS,
				      "cannot read the folder %s: %s", path,
				      strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return af_reply_error(r->ctx, m, AF_EINVAL,
				      "%s is not a folder", path);
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return AF_ENOMEM;
	l->r = r;
	l->in.from_dir = true;
	af__ingest_open(r, &l->in);
	l->next = r->loads;
	if (r->loads != NULL)
		r->loads->prev = l;
	r->loads = l;
	err = walk(l, path, "", recursive, why);
	if (err == AF_OK && l->bytes_total > r->max_load_bytes)
		err = af__ingest_why(why, AF_EMSGSIZE,
				     "%s holds %llu bytes of text files; a "
				     "load_dir reads at most %llu "
				     "(max_load_bytes)",
				     path, (unsigned long long)l->bytes_total,
				     (unsigned long long)r->max_load_bytes);
	if (err != AF_OK) {
		load_free(l, false);
		return af_reply_error(r->ctx, m, err, "%s",
				      why[0] ? why : af_strerror(err));
	}
	if (l->n == 0) {
		/* Nothing to read: the counts at once, all zero. */
		load_free(l, false);
		af_payload_reset(r->out);
		af_pack_map(r->out, 3);
		af_pack_str(r->out, "documents");
		af_pack_uint(r->out, 0);
		af_pack_str(r->out, "chunks");
		af_pack_uint(r->out, 0);
		af_pack_str(r->out, "bytes");
		af_pack_uint(r->out, 0);
		err = af_payload_status(r->out);
		return err != AF_OK ? err : af_reply(r->ctx, m, r->out);
	}
	err = af_defer(r->ctx, m, &l->p);
	if (err != AF_OK) {
		load_free(l, false);
		return err;
	}
	/* The first slice runs on the next turn too: the walk may have
	 * taken a while, and requests waiting since go first. */
	err = af_timer_start(r->ctx, 0, 0, slice, l, &l->timer);
	if (err != AF_OK) {
		load_fail(l, err, "");
		return AF_OK;
	}
	l->timer_on = true;
	af_pending_on_cancel(l->p, on_cancel, l);
	return AF_OK;
}
