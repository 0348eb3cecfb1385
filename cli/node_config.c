#include "node_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "curve_config.h"
#include "functions.h"

#define DEFAULT_GRACE_MS 5000

/* The reader of the file, where messages about it are written. */
typedef cli_json_file parse;

/* ---- fields ------------------------------------------------------------ */

/* F_COUNT and F_MS are an int and an int64_t that may not be negative:
 * fields where 0 means the default and a negative value means nothing
 * (or is refused by the actor at spawn). */
typedef enum fkind {
	F_STR,
	F_INT,
	F_I64,
	F_U32,
	F_SIZE,
	F_DOUBLE,
	F_COUNT,
	F_MS,
	F_BOOL
} fkind;

typedef struct field {
	const char *key;
	fkind kind;
	size_t off;
	const char *const *choices; /* for a string: the values allowed */
} field;

static const char *const providers[] = {"openai", "ollama", "extractive", NULL};
static const char *const embed_providers[] = {"openai", "ollama", NULL};
static const char *const modes[] = {"bm25", "vector", "hybrid", NULL};
static const char *const response_modes[] = {"compact", "refine",
					     "tree_summarize", "no_text", NULL};

#define FIELD(T, k, kind)                                                      \
	{                                                                      \
#k, kind, offsetof(T, k), NULL                                 \
	}
#define CHOICE(T, k, list)                                                     \
	{                                                                      \
#k, F_STR, offsetof(T, k), list                                \
	}

static const field chat_fields[] = {
	CHOICE(af_chat_config, provider, providers),
	FIELD(af_chat_config, base_url, F_STR),
	FIELD(af_chat_config, model, F_STR),
	FIELD(af_chat_config, api_key_env, F_STR),
	FIELD(af_chat_config, temperature, F_DOUBLE),
	FIELD(af_chat_config, max_tokens, F_INT),
	FIELD(af_chat_config, timeout_ms, F_I64),
	FIELD(af_chat_config, connect_timeout_ms, F_I64),
	FIELD(af_chat_config, max_retries, F_INT),
	FIELD(af_chat_config, max_concurrent, F_INT),
	FIELD(af_chat_config, retry_base_ms, F_I64),
	FIELD(af_chat_config, retry_max_ms, F_I64),
	FIELD(af_chat_config, ca_file, F_STR),
	{NULL, F_STR, 0, NULL}};

static const field retrieval_fields[] = {
	FIELD(af_retrieval_config, db_path, F_STR),
	FIELD(af_retrieval_config, chunk_size, F_COUNT),
	FIELD(af_retrieval_config, chunk_overlap, F_INT),
	FIELD(af_retrieval_config, top_k, F_COUNT),
	FIELD(af_retrieval_config, max_top_k, F_COUNT),
	CHOICE(af_retrieval_config, mode, modes),
	FIELD(af_retrieval_config, max_document_bytes, F_SIZE),
	FIELD(af_retrieval_config, max_load_bytes, F_SIZE),
	CHOICE(af_retrieval_config, embed_provider, embed_providers),
	FIELD(af_retrieval_config, embed_base_url, F_STR),
	FIELD(af_retrieval_config, embed_model, F_STR),
	FIELD(af_retrieval_config, embed_api_key_env, F_STR),
	FIELD(af_retrieval_config, embed_batch_size, F_COUNT),
	FIELD(af_retrieval_config, embed_max_concurrent, F_COUNT),
	FIELD(af_retrieval_config, embed_max_retries, F_INT),
	FIELD(af_retrieval_config, embed_timeout_ms, F_MS),
	FIELD(af_retrieval_config, embed_ca_file, F_STR),
	{NULL, F_STR, 0, NULL}};

static const field query_fields[] = {
	FIELD(af_query_config, retriever, F_STR),
	FIELD(af_query_config, chat, F_STR),
	FIELD(af_query_config, gather, F_STR),
	FIELD(af_query_config, top_k, F_COUNT),
	CHOICE(af_query_config, mode, modes),
	CHOICE(af_query_config, response_mode, response_modes),
	FIELD(af_query_config, context_words, F_COUNT),
	FIELD(af_query_config, qa_template, F_STR),
	FIELD(af_query_config, refine_template, F_STR),
	FIELD(af_query_config, summary_template, F_STR),
	FIELD(af_query_config, system_prompt, F_STR),
	FIELD(af_query_config, timeout_ms, F_MS),
	FIELD(af_query_config, excerpt_bytes, F_SIZE),
	FIELD(af_query_config, empty_response, F_STR),
	{NULL, F_STR, 0, NULL}};

static const field gather_fields[] = {
	FIELD(af_gather_config, concurrency, F_U32),
	FIELD(af_gather_config, max_items, F_U32),
	FIELD(af_gather_config, max_bytes, F_SIZE),
	FIELD(af_gather_config, remote_targets, F_BOOL),
	{NULL, F_STR, 0, NULL}};

/* Functions are C pointers: a config cannot name its own, so an offload
 * actor of the command runs the built-in ones of functions.h. */
static const field offload_fields[] = {
	FIELD(af_offload_config, workers, F_COUNT),
	FIELD(af_offload_config, queue_capacity, F_COUNT),
	{NULL, F_STR, 0, NULL}};

/* ---- checks across fields ---------------------------------------------- */

/* What an actor's init would refuse with a bare AF_EINVAL is said here,
 * when the file is read, naming the file, the line and the key: nothing
 * has started yet, and `up` checks every node's config this way before it
 * starts any. Each check mirrors the init it guards (its header says what
 * the init refuses); obj is the actor's "config" object. */
typedef af_err (*config_check)(parse *p, const char *where, const cJSON *obj,
			       const void *cfg);

/* The item of key in obj, or obj itself when key is not there (a value
 * that comes from a default), for the line of a message. */
static const cJSON *item_or(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return v != NULL ? v : obj;
}

static af_err check_retrieval(parse *p, const char *where, const cJSON *obj,
			      const void *config)
{
	const af_retrieval_config *c = config;
	int size = c->chunk_size > 0 ? c->chunk_size : AF_RETRIEVAL_CHUNK_SIZE;
	int top_k = c->top_k > 0 ? c->top_k : AF_RETRIEVAL_TOP_K;
	int max_top_k =
		c->max_top_k > 0 ? c->max_top_k : AF_RETRIEVAL_MAX_TOP_K;

	/* A default overlap shrinks to fit a small chunk_size; a given one
	 * must be below it (a negative one means none). */
	if (c->chunk_overlap > 0 && c->chunk_overlap >= size)
		return cli_json_fail(
			p, item_or(obj, "chunk_overlap"),
			"%s.chunk_overlap: %d must be below chunk_size (%d%s)",
			where, c->chunk_overlap, size,
			c->chunk_size > 0 ? "" : ", the default");
	/* A hybrid retrieve ranks each list to twice top_k, in an int. */
	if (max_top_k > INT_MAX / 2)
		return cli_json_fail(p, item_or(obj, "max_top_k"),
				     "%s.max_top_k: %d is above %d", where,
				     max_top_k, INT_MAX / 2);
	if (top_k > max_top_k)
		return cli_json_fail(p, item_or(obj, "top_k"),
				     "%s.top_k: %d is above max_top_k (%d%s)",
				     where, top_k, max_top_k,
				     c->max_top_k > 0 ? "" : ", the default");
	return AF_OK;
}

static af_err check_template(parse *p, const char *where, const cJSON *obj,
			     const char *key, const char *tmpl, bool refine)
{
	/* The placeholders of query.h. */
	static const char *const needed[] = {"{query_str}", "{context_str}",
					     "{existing_answer}"};

	if (tmpl == NULL)
		return AF_OK;
	for (size_t i = 0; i < (refine ? 3u : 2u); i++)
		if (strstr(tmpl, needed[i]) == NULL)
			return cli_json_fail(p, item_or(obj, key),
					     "%s.%s: the template has no %s",
					     where, key, needed[i]);
	return AF_OK;
}

static af_err check_query(parse *p, const char *where, const cJSON *obj,
			  const void *config)
{
	const af_query_config *c = config;
	af_err err;

	/* Negative counts are refused as each field is read. */
	if ((err = check_template(p, where, obj, "qa_template", c->qa_template,
				  false)) != AF_OK ||
	    (err = check_template(p, where, obj, "refine_template",
				  c->refine_template, true)) != AF_OK)
		return err;
	return check_template(p, where, obj, "summary_template",
			      c->summary_template, false);
}

typedef struct actor_type {
	const char *name;
	const af_actor_ops *ops;
	const field *fields;
	config_check check; /* NULL: the fields alone say it all */
} actor_type;

static const actor_type actor_types[] = {
	{"chat", &af_chat_ops, chat_fields, NULL},
	{"retrieval", &af_retrieval_ops, retrieval_fields, check_retrieval},
	{"query", &af_query_ops, query_fields, check_query},
	{"gather", &af_gather_ops, gather_fields, NULL},
	{"offload", &af_offload_ops, offload_fields, NULL},
};

static const char *kind_name(fkind k)
{
	switch (k) {
	case F_STR:
		return "a string";
	case F_BOOL:
		return "true or false";
	case F_DOUBLE:
		return "a number";
	case F_INT:
	case F_I64:
		return "an integer";
	case F_COUNT:
	case F_MS:
		return "a non-negative integer (0: the default)";
	case F_U32:
	case F_SIZE:
	default:
		return "a non-negative integer";
	}
}

static af_err set_field(parse *p, const char *where, const field *f,
			const cJSON *v, void *base)
{
	char *at = (char *)base + f->off;
	double d;

	switch (f->kind) {
	case F_STR:
		if (cJSON_IsNull(v))
			return AF_OK; /* the default */
		if (!cJSON_IsString(v))
			break;
		if (f->choices != NULL) {
			size_t i;
			for (i = 0; f->choices[i] != NULL; i++)
				if (strcmp(f->choices[i], v->valuestring) == 0)
					break;
			if (f->choices[i] == NULL) {
				char list[160] = "";
				for (i = 0; f->choices[i] != NULL; i++) {
					strncat(list, i > 0 ? ", " : "",
						sizeof(list) - strlen(list) -
							1);
					strncat(list, f->choices[i],
						sizeof(list) - strlen(list) -
							1);
				}
				return cli_json_fail(
					p, v,
					"%s.%s: unknown value \"%s\" "
					"(one of %s)",
					where, f->key, v->valuestring, list);
			}
		}
		*(const char **)(void *)at = v->valuestring;
		return AF_OK;
	case F_DOUBLE:
		if (!cJSON_IsNumber(v))
			break;
		*(double *)(void *)at = v->valuedouble;
		return AF_OK;
	case F_INT:
		if (!cli_json_integral(v, INT_MIN, INT_MAX, &d))
			break;
		*(int *)(void *)at = (int)d;
		return AF_OK;
	case F_I64:
		if (!cli_json_integral(v, -9007199254740992.0,
				       9007199254740992.0, &d))
			break;
		*(int64_t *)(void *)at = (int64_t)d;
		return AF_OK;
	case F_COUNT:
		if (!cli_json_integral(v, 0, INT_MAX, &d))
			break;
		*(int *)(void *)at = (int)d;
		return AF_OK;
	case F_MS:
		if (!cli_json_integral(v, 0, 9007199254740992.0, &d))
			break;
		*(int64_t *)(void *)at = (int64_t)d;
		return AF_OK;
	case F_U32:
		if (!cli_json_integral(v, 0, UINT32_MAX, &d))
			break;
		*(uint32_t *)(void *)at = (uint32_t)d;
		return AF_OK;
	case F_SIZE:
		if (!cli_json_integral(v, 0, 9007199254740992.0, &d))
			break;
		*(size_t *)(void *)at = (size_t)d;
		return AF_OK;
	case F_BOOL:
		if (!cJSON_IsBool(v))
			break;
		*(bool *)(void *)at = cJSON_IsTrue(v);
		return AF_OK;
	}
	if (cJSON_IsNumber(v))
		return cli_json_fail(p, v, "%s.%s: expected %s, got %.15g",
				     where, f->key, kind_name(f->kind),
				     v->valuedouble);
	return cli_json_fail(p, v, "%s.%s: expected %s, got %s", where, f->key,
			     kind_name(f->kind), cli_json_type_name(v));
}

static af_err unknown_field(parse *p, const char *where, const cJSON *v,
			    const field *fields)
{
	const char *keys[48];
	size_t n = 0;

	while (fields[n].key != NULL &&
	       n + 1 < sizeof(keys) / sizeof(keys[0])) {
		keys[n] = fields[n].key;
		n++;
	}
	keys[n] = NULL;
	return cli_json_unknown_key(p, where, v, keys);
}

static af_err read_actor_config(parse *p, const char *where,
				const actor_type *t, const cJSON *obj,
				cli_actor_spec *s)
{
	void *base;
	const cJSON *provider =
		cJSON_GetObjectItemCaseSensitive(obj, "provider");

	if (strcmp(t->name, "chat") == 0) {
		af_chat_config_init(&s->cfg.chat,
				    cJSON_IsString(provider)
					    ? provider->valuestring
					    : "extractive");
		base = &s->cfg.chat;
	} else if (strcmp(t->name, "retrieval") == 0) {
		af_retrieval_config_init(&s->cfg.retrieval);
		base = &s->cfg.retrieval;
	} else if (strcmp(t->name, "query") == 0) {
		af_query_config_init(&s->cfg.query);
		base = &s->cfg.query;
	} else if (strcmp(t->name, "offload") == 0) {
		s->cfg.offload.functions = cli_functions;
		s->cfg.offload.nfunctions = cli_nfunctions;
		base = &s->cfg.offload;
	} else {
		base = &s->cfg;
	}
	s->config = base;
	if (obj == NULL)
		return AF_OK;
	if (!cJSON_IsObject(obj))
		return cli_json_fail(p, obj, "%s: expected an object, got %s",
				     where, cli_json_type_name(obj));
	for (const cJSON *v = obj->child; v != NULL; v = v->next) {
		const field *f = t->fields;
		while (f->key != NULL && strcmp(f->key, v->string) != 0)
			f++;
		if (f->key == NULL)
			return unknown_field(p, where, v, t->fields);
		if (set_field(p, where, f, v, base) != AF_OK)
			return AF_EINVAL;
	}
	return t->check != NULL ? t->check(p, where, obj, base) : AF_OK;
}

/* ---- endpoints --------------------------------------------------------- */

/* What the host of a tcp endpoint reaches. */
typedef enum host_kind {
	HOST_LOOPBACK, /* 127.0.0.0/8, ::1, localhost: this machine only */
	HOST_WILDCARD, /* every interface: *, 0.0.0.0, :: in any spelling */
	HOST_OTHER     /* an address, an interface name, anything else */
} host_kind;

long cli_tcp_port(const char *text, size_t len)
{
	long port = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		port = port * 10 + (text[i] - '0');
		if (port > 65535)
			return -1;
	}
	return port >= 1 ? port : -1;
}

/* Sorts the host text of a tcp endpoint (without its port). A numeric host
 * is read as getaddrinfo reads it, which takes every spelling inet_aton
 * does ("0", "0x0", "127.1", "2130706433"), so "0" cannot pass for
 * anything but 0.0.0.0. For a loopback host, canon gets the address
 * written plainly: that is what the node binds, so ZeroMQ cannot take the
 * text for something else (it tries interface names first). */
static host_kind classify_host(const char *host, size_t len, char *canon,
			       size_t cap)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	host_kind kind = HOST_OTHER;
	struct in_addr v4;
	char text[256];

	if (len == 1 && host[0] == '*')
		return HOST_WILDCARD;
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(text))
		return HOST_OTHER;
	memcpy(text, host, len);
	text[len] = '\0';
	if (strcasecmp(text, "localhost") == 0) {
		snprintf(canon, cap, "127.0.0.1");
		return HOST_LOOPBACK;
	}
	if (getaddrinfo(text, NULL, &hints, &ai) != 0 || ai == NULL)
		return HOST_OTHER;
	if (ai->ai_family == AF_INET) {
		v4 = ((const struct sockaddr_in *)(void *)ai->ai_addr)
			     ->sin_addr;
	} else if (ai->ai_family == AF_INET6) {
		const struct sockaddr_in6 *a6 =
			(const struct sockaddr_in6 *)(void *)ai->ai_addr;
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
			memcpy(&v4.s_addr, &a6->sin6_addr.s6_addr[12], 4);
		} else {
			if (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) &&
			    a6->sin6_scope_id == 0) {
				snprintf(canon, cap, "[::1]");
				kind = HOST_LOOPBACK;
			} else if (IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)) {
				kind = HOST_WILDCARD;
			}
			freeaddrinfo(ai);
			return kind;
		}
	} else {
		freeaddrinfo(ai);
		return HOST_OTHER;
	}
	freeaddrinfo(ai);
	if ((ntohl(v4.s_addr) >> 24) == 127 &&
	    inet_ntop(AF_INET, &v4, canon, (socklen_t)cap) != NULL)
		return HOST_LOOPBACK;
	return v4.s_addr == htonl(INADDR_ANY) ? HOST_WILDCARD : HOST_OTHER;
}

/* The endpoint the node binds for what the file says (see the header). */
static af_err normalise_endpoint(parse *p, const cJSON *v, const char *where,
				 const char *ipc_dir, cli_bind_scope scope,
				 char **out)
{
	const char *e = v->valuestring;
	size_t n;

	if (strncmp(e, "ipc://", 6) == 0) {
		const char *path = e + 6;
		struct sockaddr_un sa;
		if (path[0] == '\0')
			return cli_json_fail(p, v,
					     "%s: an ipc endpoint needs a path",
					     where);
		if (path[0] == '/') {
			*out = strdup(e);
		} else {
			if (ipc_dir == NULL)
				return cli_json_fail(
					p, v,
					"%s: \"%s\" is a relative path: "
					"give an absolute one or "
					"\"ipc_dir\"",
					where, e);
			n = strlen(ipc_dir) + strlen(path) + 8;
			*out = malloc(n);
			if (*out != NULL)
				snprintf(*out, n, "ipc://%s/%s", ipc_dir, path);
		}
		if (*out == NULL)
			return AF_ENOMEM;
		if (strlen(*out + 6) >= sizeof(sa.sun_path))
			return cli_json_fail(
				p, v,
				"%s: the socket path %s is too long (at "
				"most %zu bytes)",
				where, *out + 6, sizeof(sa.sun_path) - 1);
		return AF_OK;
	}
	if (strncmp(e, "tcp://", 6) == 0) {
		const char *hostport = e + 6;
		const char *colon = strrchr(hostport, ':');
		const char *host = hostport;
		char canon[INET6_ADDRSTRLEN + 2];
		size_t host_len;
		host_kind kind;
		long port;
		if (colon == NULL)
			return cli_json_fail(p, v, "%s: \"%s\" has no port",
					     where, e);
		host_len = (size_t)(colon - hostport);
		port = cli_tcp_port(colon + 1, strlen(colon + 1));
		if (port < 0)
			return cli_json_fail(
				p, v,
				"%s: \"%s\": the port must be a number "
				"from 1 to 65535 (clients need to know "
				"it)",
				where, e);
		kind = host_len == 0 ? HOST_LOOPBACK
				     : classify_host(host, host_len, canon,
						     sizeof(canon));
		if (host_len == 0)
			snprintf(canon, sizeof(canon), "127.0.0.1");
		if (kind == HOST_LOOPBACK) {
			host = canon;
			host_len = strlen(canon);
		} else if (kind == HOST_WILDCARD && scope != CLI_BIND_PUBLIC) {
			return cli_json_fail(
				p, v,
				"%s: \"%s\" listens on every interface; "
				"set \"allow_public\": true to mean it",
				where, e);
		} else if (kind == HOST_OTHER && scope == CLI_BIND_LOOPBACK) {
			/* An interface name or an address of the machine
			 * that is not loopback: reachable from elsewhere,
			 * by anyone, with nothing to keep them out. */
			return cli_json_fail(
				p, v,
				"%s: \"%s\" is not a loopback address "
				"(127.0.0.1, ::1, localhost): others could "
				"reach it; set \"allow_public\": true to "
				"mean it, or \"curve\" to admit only the "
				"clients whose keys you allow",
				where, e);
		}
		n = host_len + 32;
		*out = malloc(n);
		if (*out == NULL)
			return AF_ENOMEM;
		snprintf(*out, n, "tcp://%.*s:%ld", (int)host_len, host, port);
		return AF_OK;
	}
	return cli_json_fail(
		p, v, "%s: \"%s\" must start with ipc:// or tcp://", where, e);
}

/* ---- the file ---------------------------------------------------------- */

static const char *const top_keys[] = {"name",     "endpoint",
				       "ipc_dir",  "allow_public",
				       "grace_ms", "max_message_size",
				       "actors",   "curve",
				       "remotes",  NULL};
static const char *const actor_keys[] = {
	"type", "name", "config", "export", "mailbox_capacity", NULL};

static af_err read_actor(parse *p, cli_actor_spec *specs, const cJSON *item,
			 size_t i, const char *ipc_dir, cli_bind_scope scope)
{
	cli_actor_spec *s = &specs[i];
	char where[64];
	char cwhere[80];
	const cJSON *type;
	const cJSON *name;
	const cJSON *exp;
	const cJSON *cap;
	const actor_type *t = NULL;
	af_err err;

	snprintf(where, sizeof(where), "actors[%zu]", i);
	if (!cJSON_IsObject(item))
		return cli_json_fail(p, item, "%s: expected an object, got %s",
				     where, cli_json_type_name(item));
	for (const cJSON *v = item->child; v != NULL; v = v->next)
		if (!cli_json_listed(actor_keys, v->string))
			return cli_json_unknown_key(p, where, v, actor_keys);
	type = cJSON_GetObjectItemCaseSensitive(item, "type");
	name = cJSON_GetObjectItemCaseSensitive(item, "name");
	exp = cJSON_GetObjectItemCaseSensitive(item, "export");
	cap = cJSON_GetObjectItemCaseSensitive(item, "mailbox_capacity");
	if (type == NULL)
		return cli_json_fail(p, item, "%s: no \"type\"", where);
	snprintf(cwhere, sizeof(cwhere), "%s.type", where);
	if ((err = cli_json_want_string(p, type, cwhere)) != AF_OK)
		return err;
	for (size_t k = 0; k < sizeof(actor_types) / sizeof(actor_types[0]);
	     k++)
		if (strcmp(actor_types[k].name, type->valuestring) == 0)
			t = &actor_types[k];
	if (t == NULL)
		return cli_json_fail(
			p, type,
			"%s.type: unknown actor type \"%s\" (one of "
			"chat, retrieval, query, gather, offload)",
			where, type->valuestring);
	snprintf(cwhere, sizeof(cwhere), "%s.name", where);
	if ((err = cli_json_want_string(p, name, cwhere)) != AF_OK)
		return err;
	s->type = t->name;
	s->ops = t->ops;
	s->name = name != NULL ? name->valuestring : t->name;
	if (s->name[0] == '\0' || strlen(s->name) > 255 ||
	    strchr(s->name, '#') != NULL || strstr(s->name, "://") != NULL)
		return cli_json_fail(
			p, name != NULL ? name : type,
			"%s.name: \"%s\" is not an actor name (1 to 255 "
			"bytes, no '#', no \"://\")",
			where, s->name);
	for (size_t k = 0; k < i; k++)
		if (strcmp(specs[k].name, s->name) == 0)
			return cli_json_fail(
				p, name != NULL ? name : type,
				"%s.name: \"%s\" is taken by actors[%zu]",
				where, s->name, k);
	if (cap != NULL) {
		double d;
		if (!cli_json_integral(cap, 1, INT_MAX, &d))
			return cli_json_fail(
				p, cap,
				"%s.mailbox_capacity: expected a positive "
				"integer",
				where);
		s->mailbox_capacity = (int)d;
	}
	snprintf(cwhere, sizeof(cwhere), "%s.export", where);
	if ((err = cli_json_want_string(p, exp, cwhere)) != AF_OK)
		return err;
	if (exp != NULL &&
	    (err = normalise_endpoint(p, exp, cwhere, ipc_dir, scope,
				      &s->export_endpoint)) != AF_OK)
		return err;
	snprintf(cwhere, sizeof(cwhere), "%s.config", where);
	return read_actor_config(
		p, cwhere, t, cJSON_GetObjectItemCaseSensitive(item, "config"),
		s);
}

af_err cli_actor_specs_read(cli_json_file *f, const cJSON *actors,
			    const char *ipc_dir, cli_bind_scope scope,
			    cli_actor_spec **out, size_t *n)
{
	const cJSON *v;
	size_t i = 0;
	af_err err;

	*out = NULL;
	*n = 0;
	if (!cJSON_IsArray(actors) || cJSON_GetArraySize(actors) == 0)
		return cli_json_fail(
			f, actors, "actors: expected a non-empty array, got %s",
			cli_json_type_name(actors));
	*n = (size_t)cJSON_GetArraySize(actors);
	*out = calloc(*n, sizeof(**out));
	if (*out == NULL) {
		*n = 0;
		return AF_ENOMEM;
	}
	for (v = actors->child; v != NULL; v = v->next, i++)
		if ((err = read_actor(f, *out, v, i, ipc_dir, scope)) != AF_OK)
			return err;
	return AF_OK;
}

void cli_actor_specs_free(cli_actor_spec *specs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(specs[i].export_endpoint);
	free(specs);
}

static af_err read_top(parse *p, cli_node_config *c, const cJSON *root)
{
	cli_bind_scope scope;
	const cJSON *v;
	const cJSON *actors;
	double d;
	af_err err;
	size_t i;

	if (!cJSON_IsObject(root))
		return cli_json_fail(p, NULL,
				     "expected an object at the top, got %s",
				     cli_json_type_name(root));
	for (v = root->child; v != NULL; v = v->next)
		if (!cli_json_listed(top_keys, v->string))
			return cli_json_unknown_key(p, "the top level", v,
						    top_keys);
	v = cJSON_GetObjectItemCaseSensitive(root, "name");
	if ((err = cli_json_want_string(p, v, "name")) != AF_OK)
		return err;
	c->name = v != NULL ? v->valuestring : "node";
	v = cJSON_GetObjectItemCaseSensitive(root, "allow_public");
	if (v != NULL && !cJSON_IsBool(v))
		return cli_json_fail(p, v,
				     "allow_public: expected a boolean, got %s",
				     cli_json_type_name(v));
	c->allow_public = cJSON_IsTrue(v);
	v = cJSON_GetObjectItemCaseSensitive(root, "grace_ms");
	c->grace_ms = DEFAULT_GRACE_MS;
	if (v != NULL) {
		if (!cli_json_integral(v, 0, 86400000, &d))
			return cli_json_fail(
				p, v,
				"grace_ms: expected an integer from 0 to "
				"86400000");
		c->grace_ms = (int64_t)d;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "max_message_size");
	if (v != NULL) {
		if (!cli_json_integral(v, 1, 1099511627776.0, &d))
			return cli_json_fail(
				p, v,
				"max_message_size: expected a positive "
				"integer");
		c->max_message_size = (size_t)d;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "ipc_dir");
	if ((err = cli_json_want_string(p, v, "ipc_dir")) != AF_OK)
		return err;
	if (v != NULL) {
		if (v->valuestring[0] != '/')
			return cli_json_fail(
				p, v,
				"ipc_dir: \"%s\" must be an absolute path",
				v->valuestring);
		c->ipc_dir = strdup(v->valuestring);
		if (c->ipc_dir == NULL)
			return AF_ENOMEM;
		/* One trailing slash too many makes paths no one expects. */
		for (i = strlen(c->ipc_dir); i > 1 && c->ipc_dir[i - 1] == '/';
		     i--)
			c->ipc_dir[i - 1] = '\0';
	}
	/* CURVE first: with it, an endpoint may be bound beyond loopback. */
	if ((err = cli_curve_config_read(p, root, &c->curve)) != AF_OK)
		return err;
	scope = c->allow_public                           ? CLI_BIND_PUBLIC
		: cli_curve_export_opts(c->curve) != NULL ? CLI_BIND_CURVE
							  : CLI_BIND_LOOPBACK;
	v = cJSON_GetObjectItemCaseSensitive(root, "endpoint");
	if ((err = cli_json_want_string(p, v, "endpoint")) != AF_OK)
		return err;
	if (v != NULL &&
	    (err = normalise_endpoint(p, v, "endpoint", c->ipc_dir, scope,
				      &c->endpoint)) != AF_OK)
		return err;
	actors = cJSON_GetObjectItemCaseSensitive(root, "actors");
	if (actors == NULL)
		return cli_json_fail(
			p, NULL, "no \"actors\": a node hosts at least one");
	if ((err = cli_actor_specs_read(p, actors, c->ipc_dir, scope,
					&c->actors, &c->nactors)) != AF_OK)
		return err;
	if (c->endpoint == NULL) {
		for (i = 0; i < c->nactors; i++)
			if (c->actors[i].export_endpoint != NULL)
				break;
		if (i == c->nactors)
			return cli_json_fail(
				p, NULL,
				"nothing is exported: give \"endpoint\" "
				"or an actor's \"export\"");
	}
	return AF_OK;
}

af_err cli_node_config_parse(cli_node_config *c, const char *text,
			     const char *path, char *err, size_t err_cap)
{
	af_err rc;

	memset(c, 0, sizeof(*c));
	rc = cli_json_file_parse(&c->file, text, path, err, err_cap);
	if (rc == AF_OK)
		rc = read_top(&c->file, c, c->file.root);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	return rc;
}

af_err cli_node_config_load(cli_node_config *c, const char *path, char *err,
			    size_t err_cap)
{
	af_err rc;

	memset(c, 0, sizeof(*c));
	rc = cli_json_file_load(&c->file, path, 64, "a config file", err,
				err_cap);
	if (rc == AF_OK)
		rc = read_top(&c->file, c, c->file.root);
	if (rc == AF_ENOMEM)
		snprintf(err, err_cap, "%s: out of memory", path);
	return rc;
}

void cli_node_config_free(cli_node_config *c)
{
	if (c == NULL)
		return;
	cli_actor_specs_free(c->actors, c->nactors);
	cli_curve_config_free(c->curve);
	free(c->endpoint);
	free(c->ipc_dir);
	cli_json_file_free(&c->file);
	memset(c, 0, sizeof(*c));
}

af_err cli_actor_spawn(af_system *sys, const cli_actor_spec *s, char *err,
		       size_t err_cap)
{
	char why[AF_INIT_ERROR_MAX] = "";
	af_spawn_opts so = {.mailbox_capacity = s->mailbox_capacity,
			    .error = why,
			    .error_size = sizeof(why)};
	af_err rc = af_spawn(sys, s->name, s->ops, s->config, &so);

	/* The runtime's own words for an init that said nothing name the
	 * actor already ("actor \"r\" (retrieval) did not start: ..."). */
	bool said = why[0] != '\0' && strncmp(why, "actor \"", 7) != 0;

	if (rc != AF_OK)
		snprintf(err, err_cap, "actor '%s' (%s) did not start: %s: %s",
			 s->name, s->type, af_errname(rc),
			 said ? why : af_strerror(rc));
	return rc;
}
