/*
 * What every fuzz target checks its invariants with: a broken one aborts,
 * which libFuzzer reports as a crash and keeps the input that caused it.
 */
#ifndef AF_FUZZ_REQUIRE_H
#define AF_FUZZ_REQUIRE_H

#include <stdlib.h>

#define require(cond)                                                          \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

#endif
