/*
 * References in a flow: how one step's result feeds the next.
 *
 * A string anywhere in a step's payload (and in its "print") may hold
 * references, ${...}:
 *
 *   ${steps.NAME}            the whole result of the earlier step NAME
 *   ${steps.NAME.key}        a map's value under key
 *   ${steps.NAME.list[2]}    an array's element (from 0)
 *   ${steps.NAME.list[*].k}  every element's k, as an array
 *   ${flow.dir}              the absolute folder of the flow file
 *
 * A path goes on with any number of .key, [N] and [*]; a key is any run of
 * characters other than '.', '[', ']' and '}'. "$${" writes a literal
 * "${".
 *
 * A string that is exactly one reference becomes the value itself, of
 * whatever type ("${steps.retrieve.nodes}" is an array). A reference inside
 * longer text becomes text: a string as it is, an array as its elements'
 * texts one per line, anything else as compact JSON.
 *
 * A reference that names no earlier step, or is malformed, is found when
 * the flow is read (cli_ref_check); a path that does not fit the result (a
 * missing key, an index out of range, .key on an array) when the step
 * runs. Both fail with a one-line message quoting the reference.
 */
#ifndef AF_CLI_REF_H
#define AF_CLI_REF_H

#include <stdbool.h>
#include <stddef.h>

#include <actorflow/payload.h>

/* What references are resolved against. */
typedef struct cli_ref_env {
	/* The result of the step called name (len bytes, not
	 * NUL-terminated), or NULL after writing why into err (err_cap
	 * bytes). */
	const af_value *(*step)(void *user, const char *name, size_t len,
				char *err, size_t err_cap);
	void *user;
	const char *flow_dir; /* NULL: ${flow.dir} is an error */
} cli_ref_env;

/* Checks every reference of the len bytes at s: its syntax, and that
 * known(user, name, name_len) holds for each step it names. AF_OK, or
 * AF_EINVAL with a message in err. */
af_err cli_ref_check(const char *s, size_t len,
		     bool (*known)(void *user, const char *name, size_t len),
		     void *user, char *err, size_t err_cap);

/* True when the len bytes at s hold a reference (or "$${"). */
bool cli_ref_any(const char *s, size_t len);

/* Packs tmpl (NULL: nil) into out as one value, every string's references
 * expanded. AF_OK; AF_EINVAL with a message in err for a reference that
 * does not resolve; AF_ENOMEM; out's sticky error. */
af_err cli_ref_expand(const cli_ref_env *env, const af_value *tmpl,
		      af_payload *out, char *err, size_t err_cap);

/* The text of the len bytes at s with their references expanded, as the
 * rules above, except that a string that is exactly one reference to a
 * value other than a string gives that value's JSON. *out is
 * NUL-terminated and malloc'ed (caller frees). Errors as cli_ref_expand. */
af_err cli_ref_text(const cli_ref_env *env, const char *s, size_t len,
		    char **out, char *err, size_t err_cap);

/* Text of a value as references write it inside text: a string as it is,
 * an array as its elements' texts one per line, others as compact JSON.
 * Appended to *buf (*len bytes so far, malloc'ed, NUL-terminated). */
af_err cli_value_text(const af_value *v, char **buf, size_t *len);

#endif
