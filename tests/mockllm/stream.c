/*
 * stream.c - a streamed chat answer: OpenAI's Server-Sent Events or
 * Ollama's NDJSON, paced by the pacer and broken on request by a fault.
 *
 * libmicrohttpd pulls the body through stream_read. Each call hands over
 * bytes of the event being sent; when the next event is not due yet, the
 * connection is suspended until it is and the call returns 0.
 */
#define _GNU_SOURCE

#include "mockllm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Blocks libmicrohttpd asks the reader for; events are far smaller. */
#define READ_BLOCK 4096

enum phase {
	PHASE_HEAD, /* the role chunk (OpenAI) */
	PHASE_BODY, /* content chunks, or a fault in place of one */
	PHASE_TAIL, /* finish, usage and [DONE], or Ollama's done line */
	PHASE_END
};

/* What stream_next found to do. */
enum step {
	STEP_DATA,  /* s->out holds the next event */
	STEP_WAIT,  /* the next event is due at *due */
	STEP_STALL, /* nothing more until the client closes */
	STEP_END,   /* a clean end of the body */
	STEP_DROP   /* an abrupt close */
};

struct stream {
	mockllm *m;
	conf *c;
	pacer_wait wait;
	dialect dialect;
	char *model_json;
	char id[40];
	long long created;
	char created_at[40];
	int prompt_tokens;
	char prompt_count[24]; /* as sent: a number, or 1e39 (HUGE_NUMBER) */
	bool include_usage;
	int chunks;
	uint64_t t0;
	uint64_t interval_ns;
	uint64_t tick_ns;
	int sent; /* content chunks sent */
	enum phase phase;
	bool ended_by_server;
	unsigned piece; /* split_writes: which piece size comes next */
	buf out;        /* the event being sent */
	size_t off;     /* how much of it is sent */
	buf tmp;        /* an SSE event's payload before framing */
};

void chunk_text(buf *b, const conf *c, int i, bool json)
{
	buf_puts(b, json ? c->text_json : c->o.text);
	buf_printf(b, "%d ", i);
}

static const char *eol(const stream *s)
{
	return s->c->o.crlf ? "\r\n" : "\n";
}

/* Frames s->tmp as one SSE event in s->out. With multiline_data, a chunk
 * object is cut after its first member ("id", whose value has no comma)
 * into two data: lines, which a client joins with "\n": still valid JSON. */
static void sse_event(stream *s)
{
	const char *payload = s->tmp.data;
	const char *cut = NULL;

	if (s->c->o.multiline_data && strncmp(payload, "{\"id\":", 6) == 0)
		cut = strchr(payload, ',');
	buf_puts(&s->out, "data: ");
	if (cut != NULL) {
		buf_put(&s->out, payload, (size_t)(cut + 1 - payload));
		buf_printf(&s->out, "%sdata: ", eol(s));
		payload = cut + 1;
	}
	buf_puts(&s->out, payload);
	buf_printf(&s->out, "%s%s", eol(s), eol(s));
	buf_reset(&s->tmp);
}

/* The start every OpenAI chunk object shares, up to "choices". */
static void openai_head(stream *s)
{
	buf_printf(&s->tmp,
		   "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
		   "\"created\":%lld,\"model\":\"%s\",",
		   s->id, s->created, s->model_json);
}

static void openai_content(stream *s, bool broken)
{
	if (s->c->o.comments)
		buf_printf(&s->out, ": keep-alive%s%s", eol(s), eol(s));
	openai_head(s);
	buf_puts(&s->tmp,
		 "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
	chunk_text(&s->tmp, s->c, s->sent, true);
	/* A broken chunk stops in the middle of its object. */
	if (!broken)
		buf_puts(&s->tmp, "\"},\"finish_reason\":null}]}");
	sse_event(s);
}

static void openai_tail(stream *s)
{
	openai_head(s);
	buf_puts(&s->tmp, "\"choices\":[{\"index\":0,\"delta\":{},"
			  "\"finish_reason\":\"stop\"}]}");
	sse_event(s);
	if (s->include_usage) {
		openai_head(s);
		buf_printf(&s->tmp,
			   "\"choices\":[],\"usage\":{\"prompt_tokens\":%s,"
			   "\"completion_tokens\":%d,\"total_tokens\":%d}}",
			   s->prompt_count, s->sent,
			   s->prompt_tokens + s->sent);
		sse_event(s);
	}
	if (s->c->o.fault != MOCKLLM_NO_DONE) {
		buf_puts(&s->tmp, "[DONE]");
		sse_event(s);
	}
}

static void ollama_content(stream *s, bool broken)
{
	buf_printf(&s->out,
		   "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":"
		   "{\"role\":\"assistant\",\"content\":\"",
		   s->model_json, s->created_at);
	chunk_text(&s->out, s->c, s->sent, true);
	if (!broken)
		buf_puts(&s->out, "\"},\"done\":false}");
	buf_puts(&s->out, eol(s));
}

static void ollama_tail(stream *s)
{
	uint64_t took = pacer_now() - s->t0;

	if (s->c->o.fault == MOCKLLM_NO_DONE)
		return;
	buf_printf(&s->out,
		   "{\"model\":\"%s\",\"created_at\":\"%s\",\"message\":"
		   "{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,"
		   "\"done_reason\":\"stop\",\"total_duration\":%llu,"
		   "\"load_duration\":0,\"prompt_eval_count\":%s,"
		   "\"prompt_eval_duration\":0,\"eval_count\":%d,"
		   "\"eval_duration\":%llu}%s",
		   s->model_json, s->created_at, (unsigned long long)took,
		   s->prompt_count, s->sent, (unsigned long long)took, eol(s));
}

static void error_event(stream *s)
{
	if (s->dialect == DIALECT_OPENAI) {
		buf_printf(&s->tmp,
			   "{\"error\":{\"message\":\"%s\",\"type\":"
			   "\"server_error\",\"param\":null,\"code\":null}}",
			   s->c->error_json);
		sse_event(s);
	} else {
		buf_printf(&s->out, "{\"error\":\"%s\"}%s", s->c->error_json,
			   eol(s));
	}
}

/* Decides what comes next and, for STEP_DATA, writes it to s->out. Any
 * other step leaves s as it was, so asking again gives the same answer. */
static enum step stream_next(stream *s, uint64_t *due)
{
	const mockllm_opts *o = &s->c->o;

	if (s->phase == PHASE_HEAD) {
		s->t0 = pacer_now();
		s->phase = PHASE_BODY;
		if (s->dialect == DIALECT_OPENAI) {
			openai_head(s);
			buf_puts(
				&s->tmp,
				"\"choices\":[{\"index\":0,\"delta\":{\"role\":"
				"\"assistant\",\"content\":\"\"},"
				"\"finish_reason\":null}]}");
			sse_event(s);
			return STEP_DATA;
		}
	}
	if (s->phase == PHASE_BODY) {
		bool cut = s->sent == o->fault_at &&
			   (o->fault == MOCKLLM_DROP ||
			    o->fault == MOCKLLM_STALL ||
			    o->fault == MOCKLLM_ERROR_EVENT);

		/* The pause comes before each chunk, and before a fault that
		 * takes a chunk's place. Chunk k is due k + 1 intervals after
		 * the start, not after the previous one, so that a late chunk
		 * does not delay the rest. */
		if ((s->sent < s->chunks || cut) && s->interval_ns > 0) {
			*due = s->t0 + (uint64_t)(s->sent + 1) * s->interval_ns;
			if (pacer_now() < *due)
				return STEP_WAIT;
		}
		if (cut && o->fault == MOCKLLM_DROP)
			return STEP_DROP;
		if (cut && o->fault == MOCKLLM_STALL)
			return STEP_STALL;
		if (cut) {
			error_event(s);
			s->phase = PHASE_END;
			return STEP_DATA;
		}
		if (s->sent < s->chunks) {
			bool broken = o->fault == MOCKLLM_MALFORMED &&
				      o->fault_at == s->sent;

			if (s->dialect == DIALECT_OPENAI)
				openai_content(s, broken);
			else
				ollama_content(s, broken);
			s->sent++;
			return STEP_DATA;
		}
		s->phase = PHASE_TAIL;
	}
	if (s->phase == PHASE_TAIL) {
		s->phase = PHASE_END;
		if (s->dialect == DIALECT_OPENAI)
			openai_tail(s);
		else
			ollama_tail(s);
		if (s->out.len > 0)
			return STEP_DATA;
	}
	return STEP_END;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *dst, size_t max)
{
	stream *s = cls;
	size_t n = 0;
	uint64_t due = PACER_FOREVER;

	if (s->wait.ended != PACER_DUE) {
		/* The client closed a stalled stream, or the server stops. */
		s->ended_by_server = s->wait.ended == PACER_STOPPED;
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	for (;;) {
		enum step step;

		if (s->off < s->out.len) {
			size_t len = s->out.len - s->off;

			/* Pieces of 1, 2 and 3 bytes in turn: every event is
			 * cut at many places, each piece its own HTTP chunk. */
			if (s->c->o.split_writes && len > 1 + s->piece % 3)
				len = 1 + s->piece % 3;
			if (len > max - n)
				len = max - n;
			memcpy(dst + n, s->out.data + s->off, len);
			s->off += len;
			n += len;
			s->piece++;
			if (s->c->o.split_writes || n == max)
				return (ssize_t)n;
			continue;
		}
		buf_reset(&s->out);
		s->off = 0;
		step = stream_next(s, &due);
		if (s->out.failed || s->tmp.failed) {
			s->ended_by_server = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (step == STEP_DATA)
			continue;
		/* Send what is ready first: the step is asked again. */
		if (n > 0)
			return (ssize_t)n;
		switch (step) {
		case STEP_WAIT:
		case STEP_STALL:
			if (pacer_suspend(&s->m->pacer, &s->wait,
					  step == STEP_WAIT ? due
							    : PACER_FOREVER,
					  s->tick_ns) == 0)
				return 0;
			s->ended_by_server = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		case STEP_END:
			s->ended_by_server = true;
			return MHD_CONTENT_READER_END_OF_STREAM;
		default:
			s->ended_by_server = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
}

struct MHD_Response *stream_new(stream **out, mockllm *m, conf *c,
				struct MHD_Connection *conn,
				const stream_args *args)
{
	stream *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	struct timespec now;
	struct tm tm;

	*out = NULL;
	if (s == NULL)
		return NULL;
	s->model_json = json_escape(args->model);
	if (s->model_json == NULL)
		goto free_stream;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, READ_BLOCK,
					      stream_read, s, NULL);
	if (r == NULL)
		goto free_model;
	if (args->dialect == DIALECT_OPENAI) {
		MHD_add_response_header(r, "Content-Type", "text/event-stream");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
	} else {
		MHD_add_response_header(r, "Content-Type",
					"application/x-ndjson");
	}
	s->m = m;
	s->c = conf_ref(c);
	pacer_wait_init(&s->wait, conn);
	s->dialect = args->dialect;
	snprintf(s->id, sizeof(s->id), "chatcmpl-mock-%u", args->id);
	clock_gettime(CLOCK_REALTIME, &now);
	s->created = (long long)now.tv_sec;
	gmtime_r(&now.tv_sec, &tm);
	strftime(s->created_at, sizeof(s->created_at), "%Y-%m-%dT%H:%M:%SZ",
		 &tm);
	s->prompt_tokens = args->prompt_tokens;
	if (c->o.fault == MOCKLLM_HUGE_NUMBER)
		snprintf(s->prompt_count, sizeof(s->prompt_count), "1e39");
	else
		snprintf(s->prompt_count, sizeof(s->prompt_count), "%d",
			 s->prompt_tokens);
	s->include_usage = args->include_usage;
	s->chunks = c->o.chunks;
	s->interval_ns = (uint64_t)c->o.interval_ms * 1000000u;
	/* A grid of a sixteenth of the interval, between 1 and 10 ms: a
	 * chunk is at most that late, and the connections that come due in
	 * one tick are resumed together. */
	s->tick_ns = s->interval_ns / 16;
	if (s->tick_ns < 1000000)
		s->tick_ns = 1000000;
	if (s->tick_ns > 10000000)
		s->tick_ns = 10000000;
	*out = s;
	return r;
free_model:
	free(s->model_json);
free_stream:
	free(s);
	return NULL;
}

bool stream_ended_by_server(const stream *s)
{
	return s->ended_by_server;
}

void stream_free(stream *s)
{
	if (s == NULL)
		return;
	conf_unref(s->c);
	free(s->model_json);
	buf_free(&s->out);
	buf_free(&s->tmp);
	free(s);
}
