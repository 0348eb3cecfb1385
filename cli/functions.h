/*
 * The functions an offload actor hosted by the actorflow command runs by
 * name (a "call" request: {"fn": NAME, "args": ARGS}), so that to_thread
 * can be tried from a node config or a flow, where no C function can be
 * named:
 *
 *   sleep_ms    ARGS an integer n (0 to 600000) or {"ms": n}: sleeps n ms
 *               on the worker (a blocking call, as time.sleep), returns n.
 *   word_count  ARGS a string or {"text": s}: the number of words of s
 *               (runs of characters other than ASCII white space).
 *   echo        returns ARGS as they came.
 *   fail        ARGS {"code": int, "message": str} (both optional): fails
 *               with that code (default AF_EUSER, 1000) and message, for
 *               trying out error handling.
 * Bad ARGS fail with AF_EINVAL and a message that says what is expected.
 */
#ifndef AF_CLI_FUNCTIONS_H
#define AF_CLI_FUNCTIONS_H

#include <stddef.h>

#include <actorflow/offload.h>

extern const af_offload_function cli_functions[];
extern const size_t cli_nfunctions;

#endif
