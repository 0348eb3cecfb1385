/*
 * The retrieval actor's chunker: LlamaIndex's SentenceSplitter in C.
 *
 * Text is cut into paragraphs (at blank lines), paragraphs into sentences
 * (after '.', '!' or '?', closing quotes and brackets included, followed
 * by white space), and a sentence longer than a chunk into pieces of
 * chunk_size words. Those units are packed in order into chunks of at
 * most chunk_size words; each chunk after the first starts with the whole
 * units that ended the chunk before it, as many as fit in chunk_overlap
 * words (fewer when the next unit would not fit beside them), and always
 * at least one unit further on than that chunk began, so splitting ends.
 *
 * A word is a run of bytes that are not ASCII white space, which is how
 * the sizes approximate tokens. Cuts fall only on white space, so a chunk
 * never splits a UTF-8 sequence; a chunk is a span of the text, with no
 * white space at either end.
 *
 * Pure functions of their arguments; any thread.
 */
#ifndef AF_RETRIEVAL_SPLITTER_H
#define AF_RETRIEVAL_SPLITTER_H

#include <actorflow/err.h>
#include <stddef.h>

/* A chunk: text[off, off + len). */
typedef struct af_span {
	size_t off;
	size_t len;
} af_span;

/* Splits text[0, len) into chunks of at most chunk_size (>= 1) words,
 * overlapping by at most chunk_overlap (0 <= chunk_overlap < chunk_size)
 * words. On AF_OK, *out is a malloc'ed array of *n spans in order (NULL
 * and 0 for text with no words), owned by the caller (free()). AF_EINVAL
 * for sizes out of range, AF_ENOMEM. */
af_err af__split(const char *text, size_t len, int chunk_size,
		 int chunk_overlap, af_span **out, size_t *n);

#endif
