/*
 * SQLite storage for the retrieval actor. Every statement is prepared
 * once, at open, and reset after use; user text only ever reaches SQLite
 * as a bound parameter.
 */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "AFrt": the application_id that marks a database as this actor's. */
#define APP_ID 0x41467274
#define SCHEMA_VERSION 2

static const char schema[] =
	"CREATE TABLE documents("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  metadata BLOB NOT NULL);"
	"CREATE TABLE chunks("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  doc INTEGER NOT NULL,"
	"  position INTEGER NOT NULL,"
	"  text TEXT NOT NULL,"
	"  vector BLOB);"
	"CREATE INDEX chunks_by_doc ON chunks(doc);"
	"CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks',"
	"  content_rowid='id', tokenize='porter unicode61');";

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_DOC_BY_NAME,
	ST_CHUNKS_OF_DOC,
	ST_FTS_DELETE_DOC,
	ST_DELETE_CHUNKS,
	ST_DELETE_DOC,
	ST_ADD_DOC,
	ST_ADD_CHUNK,
	ST_FTS_ADD,
	ST_BM25,
	ST_CHUNK,
	ST_VECTORS,
	ST_COUNTS,
	ST_WRITTEN_LATER,
	ST_NOTE_WRITE,
	ST_FORGET_WRITES,
	ST_COUNT
};

static const char *const sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_DOC_BY_NAME] = "SELECT id FROM documents WHERE name = ?1",
	[ST_CHUNKS_OF_DOC] = "SELECT id FROM chunks WHERE doc = ?1",
	/* The index is kept in step by these statements rather than by
	 * triggers: a trigger made ingest twice as slow (a trigger program
	 * runs per row). An external-content FTS5 table forgets a row only
	 * when given the text it indexed. */
	[ST_FTS_DELETE_DOC] = "INSERT INTO chunks_fts(chunks_fts, rowid, text)"
			      " SELECT 'delete', id, text FROM chunks"
			      " WHERE doc = ?1",
	[ST_DELETE_CHUNKS] = "DELETE FROM chunks WHERE doc = ?1",
	[ST_DELETE_DOC] = "DELETE FROM documents WHERE id = ?1",
	[ST_ADD_DOC] = "INSERT INTO documents(name, metadata) VALUES (?1, ?2)",
	[ST_ADD_CHUNK] = "INSERT INTO chunks(doc, position, text, vector)"
			 " VALUES (?1, ?2, ?3, ?4)",
	[ST_FTS_ADD] = "INSERT INTO chunks_fts(rowid, text) VALUES (?1, ?2)",
	/* rank is bm25() here, and ORDER BY rank lets FTS5 stop early. */
	[ST_BM25] = "SELECT rowid, -rank FROM chunks_fts WHERE chunks_fts"
		    " MATCH ?1 ORDER BY rank LIMIT ?2",
	[ST_CHUNK] = "SELECT d.name, c.position, c.text, d.metadata"
		     " FROM chunks c JOIN documents d ON d.id = c.doc"
		     " WHERE c.id = ?1",
	[ST_VECTORS] = "SELECT id, vector FROM chunks"
		       " WHERE vector IS NOT NULL ORDER BY id",
	[ST_COUNTS] = "SELECT (SELECT count(*) FROM documents),"
		      " (SELECT count(*) FROM chunks),"
		      " (SELECT count(*) FROM chunks WHERE vector IS NOT NULL)",
	/* The documents written while other writes were still waiting,
	 * with the latest write's number: temp.written, made at open. */
	[ST_WRITTEN_LATER] =
		"SELECT seq > ?2 FROM temp.written WHERE name = ?1",
	[ST_NOTE_WRITE] = "INSERT INTO temp.written(name, seq) VALUES (?1, ?2)"
			  " ON CONFLICT(name) DO UPDATE"
			  " SET seq = max(seq, excluded.seq)",
	[ST_FORGET_WRITES] = "DELETE FROM temp.written",
};

struct af_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	bool in_txn;
	float *vec; /* an aligned copy of a vector blob */
	size_t vec_cap;
};

/* The one place SQLite codes become af_err. */
static af_err fail(int rc)
{
	return rc == SQLITE_NOMEM ? AF_ENOMEM : AF_EIO;
}

const char *af__store_errmsg(af_store *s)
{
	return s != NULL && s->db != NULL ? sqlite3_errmsg(s->db)
					  : "out of memory";
}

static af_err exec(af_store *s, const char *text)
{
	int rc = sqlite3_exec(s->db, text, NULL, NULL, NULL);

	return rc == SQLITE_OK ? AF_OK : fail(rc);
}

/* Runs a statement that returns one integer (a PRAGMA). */
static af_err query_int(af_store *s, const char *text, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, text, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return fail(rc);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? AF_OK : fail(rc);
}

/* Creates the schema in a new database, or checks that an existing one
 * is ours and of this version. */
static af_err check_schema(af_store *s, char *err, size_t errsize)
{
	int64_t app_id, version, objects;
	af_err e;

	/* The first read of a file that is not a database fails here. */
	if ((e = query_int(s, "PRAGMA application_id", &app_id)) != AF_OK ||
	    (e = query_int(s, "PRAGMA user_version", &version)) != AF_OK ||
	    (e = query_int(s, "SELECT count(*) FROM sqlite_master",
			   &objects)) != AF_OK) {
		snprintf(err, errsize, "not a readable database: %s",
			 sqlite3_errmsg(s->db));
		return e;
	}
	if (app_id == APP_ID) {
		if (version == SCHEMA_VERSION)
			return AF_OK;
		snprintf(err, errsize,
			 "a retrieval database of schema version %lld; this "
			 "build reads version %d",
			 (long long)version, SCHEMA_VERSION);
		return AF_EIO;
	}
	if (app_id != 0 || objects != 0) {
		snprintf(err, errsize,
			 "a database of another program (application_id %lld, "
			 "%lld objects)",
			 (long long)app_id, (long long)objects);
		return AF_EIO;
	}
	e = exec(s, "BEGIN");
	if (e == AF_OK)
		e = exec(s, schema);
	if (e == AF_OK) {
		char pragmas[96];

		snprintf(pragmas, sizeof(pragmas),
			 "PRAGMA application_id = %d; PRAGMA user_version = "
			 "%d",
			 APP_ID, SCHEMA_VERSION);
		e = exec(s, pragmas);
	}
	if (e == AF_OK)
		e = exec(s, "COMMIT");
	if (e != AF_OK) {
		snprintf(err, errsize, "creating the schema: %s",
			 sqlite3_errmsg(s->db));
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return e;
}

af_err af__store_open(af_store **out, const char *path, char *err,
		      size_t errsize)
{
	bool memory = path == NULL || strcmp(path, ":memory:") == 0;
	af_store *s = calloc(1, sizeof(*s));
	int rc;
	af_err e;

	if (s == NULL)
		return AF_ENOMEM;
	/* The actor's thread is the only one to use the connection. */
	rc = sqlite3_open_v2(memory ? ":memory:" : path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errsize, "cannot open it: %s",
			 s->db != NULL ? sqlite3_errmsg(s->db)
				       : "out of memory");
		e = fail(rc);
		goto close_db;
	}
	sqlite3_extended_result_codes(s->db, 0);
	e = check_schema(s, err, errsize);
	if (e != AF_OK)
		goto close_db;
	/* WAL: readers of the file from other processes do not block the
	 * actor's writes; NORMAL sync is safe with WAL (a crash may lose
	 * the last commits, never corrupt the file). */
	if (!memory)
		e = exec(s, "PRAGMA journal_mode = WAL; "
			    "PRAGMA synchronous = NORMAL");
	if (e == AF_OK)
		e = exec(s, "PRAGMA temp_store = MEMORY");
	if (e == AF_OK)
		e = exec(s, "CREATE TEMP TABLE written(name TEXT PRIMARY KEY,"
			    " seq INTEGER NOT NULL) WITHOUT ROWID");
	if (e != AF_OK) {
		snprintf(err, errsize, "setting up: %s", sqlite3_errmsg(s->db));
		goto close_db;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &s->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errsize, "preparing statements: %s",
				 sqlite3_errmsg(s->db));
			e = fail(rc);
			goto close_db;
		}
	}
	*out = s;
	return AF_OK;
close_db:
	af__store_close(&s);
	return e;
}

void af__store_close(af_store **sp)
{
	af_store *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	*sp = NULL;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s->vec);
	free(s);
}

/* Runs a statement that returns no rows, and resets it. */
static af_err step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? AF_OK : fail(rc);
}

af_err af__store_begin(af_store *s)
{
	af_err e = step_done(s->st[ST_BEGIN]);

	s->in_txn = e == AF_OK;
	return e;
}

af_err af__store_commit(af_store *s)
{
	af_err e = step_done(s->st[ST_COMMIT]);

	if (e == AF_OK)
		s->in_txn = false;
	return e;
}

void af__store_rollback(af_store *s)
{
	if (!s->in_txn)
		return;
	/* SQLite may have rolled back already (after a full disk or out of
	 * memory), in which case this fails harmlessly. */
	if (sqlite3_get_autocommit(s->db) == 0)
		step_done(s->st[ST_ROLLBACK]);
	s->in_txn = false;
}

af_err af__store_delete(af_store *s, const char *id, size_t len,
			af_store_removed_fn removed, void *arg, bool *found,
			int64_t *chunks)
{
	sqlite3_stmt *by_name = s->st[ST_DOC_BY_NAME];
	sqlite3_stmt *of_doc = s->st[ST_CHUNKS_OF_DOC];
	int64_t doc, n = 0;
	af_err e = AF_OK;
	int rc;

	*found = false;
	if (chunks != NULL)
		*chunks = 0;
	sqlite3_bind_text(by_name, 1, id, (int)len, SQLITE_STATIC);
	rc = sqlite3_step(by_name);
	doc = rc == SQLITE_ROW ? sqlite3_column_int64(by_name, 0) : 0;
	sqlite3_reset(by_name);
	sqlite3_clear_bindings(by_name);
	if (rc == SQLITE_DONE)
		return AF_OK;
	if (rc != SQLITE_ROW)
		return fail(rc);
	sqlite3_bind_int64(of_doc, 1, doc);
	while ((rc = sqlite3_step(of_doc)) == SQLITE_ROW) {
		n++;
		if (removed != NULL &&
		    (e = removed(arg, sqlite3_column_int64(of_doc, 0))) !=
			    AF_OK)
			break;
	}
	sqlite3_reset(of_doc);
	if (e != AF_OK)
		return e;
	if (rc != SQLITE_DONE)
		return fail(rc);
	sqlite3_bind_int64(s->st[ST_FTS_DELETE_DOC], 1, doc);
	if ((e = step_done(s->st[ST_FTS_DELETE_DOC])) != AF_OK)
		return e;
	sqlite3_bind_int64(s->st[ST_DELETE_CHUNKS], 1, doc);
	if ((e = step_done(s->st[ST_DELETE_CHUNKS])) != AF_OK)
		return e;
	sqlite3_bind_int64(s->st[ST_DELETE_DOC], 1, doc);
	if ((e = step_done(s->st[ST_DELETE_DOC])) != AF_OK)
		return e;
	*found = true;
	if (chunks != NULL)
		*chunks = n;
	return AF_OK;
}

af_err af__store_add_doc(af_store *s, const char *id, size_t len,
			 const void *metadata, size_t metadata_len,
			 int64_t *doc)
{
	sqlite3_stmt *st = s->st[ST_ADD_DOC];
	af_err e;

	sqlite3_bind_text(st, 1, id, (int)len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, metadata, (int)metadata_len, SQLITE_STATIC);
	e = step_done(st);
	if (e == AF_OK)
		*doc = sqlite3_last_insert_rowid(s->db);
	return e;
}

af_err af__store_add_chunk(af_store *s, int64_t doc, int64_t position,
			   const char *text, size_t len, const float *vector,
			   int dim, int64_t *chunk)
{
	sqlite3_stmt *st = s->st[ST_ADD_CHUNK];
	af_err e;

	sqlite3_bind_int64(st, 1, doc);
	sqlite3_bind_int64(st, 2, position);
	sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
	if (vector != NULL && dim > 0)
		sqlite3_bind_blob(st, 4, vector, dim * (int)sizeof(float),
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	if ((e = step_done(st)) != AF_OK)
		return e;
	*chunk = sqlite3_last_insert_rowid(s->db);
	st = s->st[ST_FTS_ADD];
	sqlite3_bind_int64(st, 1, *chunk);
	sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
	return step_done(st);
}

static bool word_byte(unsigned char c)
{
	return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

size_t af__store_words(const char *query, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (word_byte((unsigned char)query[i]) &&
		    (i == 0 || !word_byte((unsigned char)query[i - 1])))
			n++;
	return n;
}

char *af__store_match(const char *query, size_t len)
{
	/* At worst every other byte starts a word: "\"w\" OR " is 7 bytes
	 * for each 2 of the query. */
	char *out = malloc(len * 4 + 1);
	size_t n = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len;) {
		if (!word_byte((unsigned char)query[i])) {
			i++;
			continue;
		}
		if (n > 0) {
			memcpy(out + n, " OR ", 4);
			n += 4;
		}
		/* A word holds no '"', so quoting needs no escapes. */
		out[n++] = '"';
		while (i < len && word_byte((unsigned char)query[i]))
			out[n++] = query[i++];
		out[n++] = '"';
	}
	out[n] = '\0';
	return out;
}

af_err af__store_bm25(af_store *s, const char *match, int limit, int64_t *ids,
		      double *scores, size_t *n)
{
	sqlite3_stmt *st = s->st[ST_BM25];
	int rc;

	*n = 0;
	if (*match == '\0')
		return AF_OK;
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < (size_t)limit) {
		ids[*n] = sqlite3_column_int64(st, 0);
		scores[*n] = sqlite3_column_double(st, 1);
		(*n)++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? AF_OK : fail(rc);
}

af_err af__store_chunk(af_store *s, int64_t chunk, af_store_chunk *out,
		       bool *found)
{
	sqlite3_stmt *st = s->st[ST_CHUNK];
	int rc;

	/* The previous call's row stays readable until this reset. */
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, chunk);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_DONE)
		return AF_OK;
	if (rc != SQLITE_ROW)
		return fail(rc);
	out->doc = (const char *)sqlite3_column_text(st, 0);
	out->doc_len = (size_t)sqlite3_column_bytes(st, 0);
	out->position = sqlite3_column_int64(st, 1);
	out->text = (const char *)sqlite3_column_text(st, 2);
	out->text_len = (size_t)sqlite3_column_bytes(st, 2);
	out->metadata = sqlite3_column_blob(st, 3);
	out->metadata_len = (size_t)sqlite3_column_bytes(st, 3);
	if (out->doc == NULL || out->text == NULL)
		return AF_ENOMEM;
	return AF_OK;
}

void af__store_chunk_done(af_store *s)
{
	sqlite3_reset(s->st[ST_CHUNK]);
	sqlite3_clear_bindings(s->st[ST_CHUNK]);
}

af_err af__store_vectors(af_store *s, af_store_vector_fn fn, void *arg)
{
	sqlite3_stmt *st = s->st[ST_VECTORS];
	af_err e = AF_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 1);
		size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
		int dim = (int)(bytes / sizeof(float));

		if (bytes % sizeof(float) != 0 || dim == 0) {
			e = AF_EIO;
			break;
		}
		/* A blob need not be aligned for floats: copy it. */
		if ((size_t)dim > s->vec_cap) {
			float *v = realloc(s->vec, bytes);

			if (v == NULL) {
				e = AF_ENOMEM;
				break;
			}
			s->vec = v;
			s->vec_cap = (size_t)dim;
		}
		memcpy(s->vec, blob, bytes);
		e = fn(arg, sqlite3_column_int64(st, 0), s->vec, dim);
		if (e != AF_OK)
			break;
	}
	sqlite3_reset(st);
	if (e != AF_OK)
		return e;
	return rc == SQLITE_DONE ? AF_OK : fail(rc);
}

af_err af__store_counts(af_store *s, int64_t *documents, int64_t *chunks,
			int64_t *embedded)
{
	sqlite3_stmt *st = s->st[ST_COUNTS];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*documents = sqlite3_column_int64(st, 0);
		*chunks = sqlite3_column_int64(st, 1);
		*embedded = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? AF_OK : fail(rc);
}

af_err af__store_note_write(af_store *s, const char *id, size_t len,
			    uint64_t seq)
{
	sqlite3_stmt *st = s->st[ST_NOTE_WRITE];

	sqlite3_bind_text(st, 1, id, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	return step_done(st);
}

af_err af__store_written_later(af_store *s, const char *id, size_t len,
			       uint64_t seq, bool *later)
{
	sqlite3_stmt *st = s->st[ST_WRITTEN_LATER];
	int rc;

	sqlite3_bind_text(st, 1, id, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	rc = sqlite3_step(st);
	*later = rc == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? AF_OK : fail(rc);
}

void af__store_forget_writes(af_store *s)
{
	/* Failing leaves rows that no later write can be older than:
	 * harmless. */
	step_done(s->st[ST_FORGET_WRITES]);
}
