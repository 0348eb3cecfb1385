/*
 * JSON in and out of the actorflow command: the one place where the text a
 * user types becomes a msgpack payload and a received value becomes text.
 *
 * JSON to msgpack (cli_json_to_payload):
 *   null, true, false  nil, bool
 *   a number           an integer when written without '.', 'e' or 'E'
 *                      (exactly, over the whole int64 and uint64 ranges;
 *                      beyond them it is refused), else a float (float64)
 *   a string           a str, which must be valid UTF-8 and hold no
 *                      U+0000 ("\u0000" is refused)
 *   an array, object   an array, a map with str keys, in document order
 *                      (duplicate keys are kept, as they came)
 * Containers nest at most CLI_JSON_MAX_DEPTH levels, the most a payload
 * may nest inside a message. JSON has no binary: bin is never produced.
 *
 * msgpack to JSON (cli_value_to_json), compact, on one line:
 *   nil, bool          null, true, false
 *   an integer         its exact decimal digits
 *   a float            the shortest form that reads back as the same
 *                      double, always with a '.' or an exponent (1.0, not
 *                      1), so it reads back as a float; NaN and the
 *                      infinities, which JSON cannot write, become null
 *   a str              a JSON string; a byte that is not part of valid
 *                      UTF-8 becomes U+FFFD ("\ufffd"), control characters
 *                      and U+0000 are escaped, so the output is always
 *                      valid JSON
 *   a bin              a string holding its bytes in base64 (RFC 4648,
 *                      with padding)
 *   an ext             null
 *   a map              an object; a key that is not a str becomes the
 *                      string of its JSON text (1 -> "1", true -> "true")
 * Values nested deeper than CLI_JSON_MAX_OUT_DEPTH are refused.
 *
 * Both directions are safe on any input: hostile bytes give an error,
 * never a crash or a read out of bounds. Any thread.
 */
#ifndef AF_CLI_JSON_MSGPACK_H
#define AF_CLI_JSON_MSGPACK_H

#include <stddef.h>

#include <actorflow/payload.h>

/* Containers a JSON argument may nest (a payload in a message nests at
 * most 31 levels: the envelope is the 32nd). */
#define CLI_JSON_MAX_DEPTH 31
/* Containers a value printed as JSON may nest (more than msgpack-c
 * unpacks, so every received value prints). */
#define CLI_JSON_MAX_OUT_DEPTH 64

/* Parses text (NUL-terminated JSON, one value, whitespace around it
 * allowed) and appends it to p as one msgpack value. AF_OK; AF_EINVAL when
 * the text is not JSON or breaks a rule above, with a one-line reason in
 * err (err_cap bytes; "line 2, column 7: ..." for a syntax error); AF_ERANGE
 * for a number beyond what msgpack holds; AF_ENOMEM; p's sticky error. */
af_err cli_json_to_payload(const char *text, af_payload *p, char *err,
			   size_t err_cap);

/* Writes v as JSON into *out, a NUL-terminated malloc'ed string the caller
 * frees, its length (without the NUL) in *len (may be NULL). A NULL v (a
 * missing value) writes null. AF_OK, AF_ENOMEM, or AF_ERANGE when v nests
 * deeper than CLI_JSON_MAX_OUT_DEPTH (*out is then NULL). */
af_err cli_value_to_json(const af_value *v, char **out, size_t *len);

/* True when the len bytes at s are valid UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
int cli_utf8_valid(const char *s, size_t len);

#endif
