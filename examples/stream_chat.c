/*
 * Streaming chat: the C shape of
 *
 *     llm = OpenAI(...)  # or Ollama(...)
 *     response = await llm.astream_chat([
 *         ChatMessage(role="system", content=context),
 *         ChatMessage(role="user", content=question)])
 *     async for chunk in response:
 *         print(chunk.delta, end="", flush=True)
 *
 * With no configuration it runs offline on the extractive provider, which
 * is NOT a language model: it answers by quoting the sentences of the
 * context that bear on the question. Set OPENAI_BASE_URL and/or
 * OPENAI_API_KEY (and OPENAI_MODEL), or OLLAMA_HOST (and OLLAMA_MODEL), to
 * stream from a real model instead.
 *
 *     stream_chat ["question"]
 */
#include <actorflow/actorflow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char context[] =
	"Honeybees live in colonies of up to sixty thousand workers. "
	"A worker bee lives about six weeks in summer. "
	"Bees tell each other where flowers are by dancing: the waggle dance "
	"gives the direction and the distance of the food. "
	"The queen lays up to two thousand eggs a day. "
	"Honey is nectar that bees have dried and enriched with enzymes.";

static af_payload *conversation(const char *question)
{
	af_payload *p;

	if (af_payload_new(&p) != AF_OK)
		return NULL;
	af_pack_map(p, 1);
	af_pack_str(p, "messages");
	af_pack_array(p, 2);
	af_pack_map(p, 2);
	af_pack_str(p, "role");
	af_pack_str(p, "system");
	af_pack_str(p, "content");
	af_pack_str(p, context);
	af_pack_map(p, 2);
	af_pack_str(p, "role");
	af_pack_str(p, "user");
	af_pack_str(p, "content");
	af_pack_str(p, question);
	if (af_payload_status(p) != AF_OK)
		af_payload_destroy(&p);
	return p;
}

int main(int argc, char **argv)
{
	const char *question = argc > 1 ? argv[1]
					: "How do bees tell each other where "
					  "the flowers are?";
	af_chat_config cfg;
	af_system *sys = NULL;
	af_client *client = NULL;
	af_payload *p = NULL;
	af_stream *stream = NULL;
	af_msg *m = NULL;
	af_err err;
	int status = 1;

	af_chat_config_from_env(&cfg);
	fprintf(stderr, "provider: %s%s%s\n", cfg.provider,
		cfg.model != NULL ? ", model " : "",
		cfg.model != NULL ? cfg.model : "");
	if ((err = af_system_new(&sys, NULL)) != AF_OK ||
	    (err = af_spawn(sys, "chat", &af_chat_ops, &cfg, NULL)) != AF_OK ||
	    (err = af_client_new(&client, sys)) != AF_OK) {
		fprintf(stderr, "stream_chat: %s\n", af_strerror(err));
		goto done;
	}
	p = conversation(question);
	if (p == NULL) {
		fprintf(stderr, "stream_chat: out of memory\n");
		goto done;
	}
	printf("Q: %s\nA: ", question);
	err = af_client_stream(client, "chat", "stream_chat", p, 120000,
			       &stream);
	while (err == AF_OK &&
	       (err = af_stream_next(stream, 120000, &m)) == AF_OK) {
		const char *delta;
		size_t len;

		if (af_value_str(af_value_get(af_msg_payload(m), "delta"),
				 &delta, &len) == AF_OK)
			fwrite(delta, 1, len, stdout);
		fflush(stdout);
		af_msg_destroy(&m);
	}
	printf("\n");
	if (err == AF_EOF) {
		const af_value *end = af_msg_payload(m);
		const af_value *usage = af_value_get(end, "usage");
		const char *finish = "unknown";
		size_t finish_len = strlen(finish);

		af_value_str(af_value_get(end, "finish_reason"), &finish,
			     &finish_len);
		fprintf(stderr, "finish: %.*s", (int)finish_len, finish);
		/* Servers report usage in a stream only when asked, and some
		 * never do: the end then carries nil. */
		if (af_value_type(usage) == AF_TYPE_MAP)
			fprintf(stderr, ", tokens: %lld prompt + %lld answer\n",
				(long long)af_value_get_int(usage,
							    "prompt_tokens", 0),
				(long long)af_value_get_int(
					usage, "completion_tokens", 0));
		else
			fprintf(stderr, ", tokens: not reported\n");
		status = 0;
	} else {
		const char *text = NULL;

		af_msg_error(m, &text);
		fprintf(stderr, "stream_chat: %s: %s\n", af_errname(err),
			text != NULL ? text : af_strerror(err));
	}
	af_msg_destroy(&m);
done:
	af_stream_close(&stream);
	af_payload_destroy(&p);
	af_client_destroy(&client);
	af_system_destroy(&sys);
	return status;
}
