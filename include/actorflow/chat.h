/*
 * actorflow: the chat actor, achat / astream_chat / acomplete /
 * astream_complete for C.
 *
 * Spawn it with af_chat_ops and an af_chat_config:
 *
 *   af_chat_config cfg;
 *   af_chat_config_from_env(&cfg);
 *   af_spawn(sys, "chat", &af_chat_ops, &cfg, NULL);
 *
 * One chat actor keeps many requests in flight at once: its HTTP transfers
 * run on its own loop (libcurl's multi interface), with no thread per
 * request.
 *
 * Providers:
 *   "openai"      the OpenAI-compatible chat completions API (POST
 *                 {base_url}/chat/completions): OpenAI, vLLM, llama.cpp's
 *                 server, LM Studio, Ollama's /v1 endpoint. Streams are
 *                 Server-Sent Events ending with "data: [DONE]".
 *   "ollama"      Ollama's native API (POST {base_url}/api/chat),
 *                 newline-delimited JSON ending with "done": true.
 *   "extractive"  the embedded default: NOT a language model. It answers
 *                 from the context in the prompt by quoting the sentences
 *                 most relevant to the question, streamed a few words at a
 *                 time, offline and deterministic, so every example and
 *                 test runs with no network and no key.
 *
 * Requests (msgpack maps; every field but messages/prompt is optional):
 *   chat, stream_chat:         {"messages": [{"role": "system"|"user"|
 *                               "assistant", "content": str}, ...],
 *                               "model": str, "temperature": float,
 *                               "max_tokens": int}
 *   complete, stream_complete: {"prompt": str, ...the same options}
 *                               (sent as one user message)
 * Replies:
 *   chat, complete:  {"content": str, "finish_reason": str|nil,
 *                     "model": str, "usage": {"prompt_tokens": int,
 *                     "completion_tokens": int, "total_tokens": int}|nil}
 *   stream_chat, stream_complete: chunks {"delta": str}, then an end
 *                     {"finish_reason": str|nil, "model": str,
 *                      "usage": {...}|nil}. A requester that did not ask
 *                     for a stream gets the whole answer as one reply, as
 *                     for chat.
 * Errors (the text is one line and never holds the API key):
 *   AF_EHTTP      the server's final error status, text "HTTP 429: <the
 *                 server's message>" (the API key blanked if the server
 *                 quoted it), after the retries the config allows (408,
 *                 409, 429 and 5xx are retried with exponential backoff and
 *                 jitter, honouring Retry-After and retry-after-ms when
 *                 they hold a number or a date; other 4xx fail at once)
 *   AF_EPEERDOWN  no connection, or it broke (retried like a 5xx while no
 *                 chunk has been sent); an https server the CAs do not
 *                 vouch for, or an unreadable ca_file (not retried)
 *   AF_EPROTO     a stream that ends without its end marker, or malformed
 *                 JSON; never retried once a chunk was sent, so no text
 *                 arrives twice
 *   AF_EREMOTE    an error event inside the stream, with its message
 *   AF_ETIMEDOUT  the request's deadline or the configured timeout
 *   AF_EMSGSIZE   a whole answer larger than 64 MiB, or than the system's
 *                 largest message (af_system_opts.max_message_size)
 *   AF_EINVAL     a request without messages / prompt, or of bad shape
 *                 (max_tokens beyond an int, say)
 * A cancel (by the requester, or the requester going away) and a deadline
 * abort the HTTP transfer at once.
 */
#ifndef ACTORFLOW_CHAT_H
#define ACTORFLOW_CHAT_H

#include <stdint.h>

#include "actorflow/actor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The chat actor's ops; its config is an af_chat_config. */
extern const af_actor_ops af_chat_ops;

typedef struct af_chat_config {
	/* "openai", "ollama" or "extractive"; NULL: "extractive". */
	const char *provider;
	/* openai: e.g. "https://api.openai.com/v1" (no trailing
	 * "/chat/completions"); ollama: e.g. "http://127.0.0.1:11434".
	 * NULL: the provider's default. */
	const char *base_url;
	const char *model; /* NULL: the provider's default */
	/* The name of the environment variable that holds the API key
	 * (NULL: none sent). The key is read once, at spawn. */
	const char *api_key_env;
	double temperature;         /* < 0: the server's default */
	int max_tokens;             /* <= 0: the server's default */
	int64_t timeout_ms;         /* a whole request; 0: 10 minutes */
	int64_t connect_timeout_ms; /* 0: 10 s */
	int max_retries;            /* < 0: 0; default 3 */
	int max_concurrent;         /* HTTP transfers at once; 0: 1024 */
	int64_t retry_base_ms;      /* first backoff; 0: 500 ms */
	int64_t retry_max_ms;       /* longest backoff; 0: 30 s */
	/* A PEM file of the certificate authorities an https server is
	 * verified against, in place of the system's: a private CA in front
	 * of a self-hosted model, say. NULL: the system's. */
	const char *ca_file;
} af_chat_config;

/* Fills c with defaults chosen from the environment, the variables users
 * of OpenAI's and Ollama's clients already set: OPENAI_BASE_URL or
 * OPENAI_API_KEY selects "openai" (base URL from OPENAI_BASE_URL, else
 * OpenAI's; key from OPENAI_API_KEY; model from OPENAI_MODEL, else
 * "gpt-4o-mini"), else OLLAMA_HOST selects "ollama" (model from
 * OLLAMA_MODEL, else "llama3.2"), else "extractive"; for either server,
 * SSL_CERT_FILE names the CA file, as for OpenAI's and Ollama's Python
 * clients. The strings point into the environment or are constants. Any
 * thread. */
void af_chat_config_from_env(af_chat_config *c);

/* Fills c with the defaults of provider, as af_chat_config_from_env would
 * for it, without looking at the environment. */
void af_chat_config_init(af_chat_config *c, const char *provider);

#ifdef __cplusplus
}
#endif
#endif
