/*
 * zp_test.h - the test suite's tiny harness: CHECK macros that report and
 * count failures, and a runner that executes every test against the backend
 * named on the command line (so one source runs against every backend).
 */
#ifndef ZP_TEST_H
#define ZP_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeropool.h"

extern int zp_test_failures;
extern const char *zp_test_backend;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__,      \
				zp_test_backend, #cond);                                           \
			zp_test_failures++;                                                        \
		}                                                                                  \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);     \
		if (a_ != b_) {                                                                    \
			fprintf(stderr, "%s:%d: [%s] CHECK_EQ failed: %s == %s (%llu vs %llu)\n",  \
				__FILE__, __LINE__, zp_test_backend, #a, #b, a_, b_);              \
			zp_test_failures++;                                                        \
		}                                                                                  \
	} while (0)

/* A call that must fail with a given errno. */
#define CHECK_ERR(expr, err)                                                                       \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(intptr_t)(expr);                                                  \
		int e_ = errno;                                                                    \
		if (!(r_ == -1 || r_ == 0) || e_ != (err)) {                                       \
			fprintf(stderr, "%s:%d: [%s] %s: want errno %d, got %d (ret %ld)\n",       \
				__FILE__, __LINE__, zp_test_backend, #expr, (err), e_, r_);        \
			zp_test_failures++;                                                        \
		}                                                                                  \
	} while (0)

/* Fatal: the test cannot go on. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: [%s] REQUIRE failed: %s (errno %d)\n", __FILE__,   \
				__LINE__, zp_test_backend, #cond, errno);                          \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

struct zp_test {
	const char *name;
	void (*fn)(void);
};

/* A config for `backend` with test-friendly defaults. */
zp_config zp_test_config(void);

/* Runs every test in tests[] (or only argv[3]) against argv[1] (a backend
 * name, or "all").  Scale: argv[2] or $ZP_TEST_SCALE (default 1) multiplies
 * iteration counts.  Returns 0 if every check passed, 1 if one failed, 2
 * (with the usage on stderr) for an unknown backend or test, a scale that
 * is not a number in (0, 1e6], or too many arguments; --help prints the
 * usage, with the backends and the tests, and returns 0. */
int zp_test_main(int argc, char **argv, const struct zp_test *tests, size_t n);
extern double zp_test_scale;

/* Whether name is a registered backend (zp_backend_at), and the registered
 * names, each preceded by a space, for usage messages.  Also for the
 * programs in tests/ that parse their own arguments. */
bool zp_test_backend_known(const char *name);
void zp_test_print_backends(FILE *to);

/* Command-line numbers, the whole text and nothing after it: a number in
 * (0, hi], and a whole number in [lo, hi].  Each stores it in *out and
 * returns true, or returns false and leaves *out alone. */
bool zp_test_parse_positive(const char *text, double hi, double *out);
bool zp_test_parse_long(const char *text, long lo, long hi, long *out);

#endif
