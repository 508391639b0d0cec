/*
 * zp_test.c - the harness behind zp_test.h.
 */
#include "zp_test.h"

int zp_test_failures;
const char *zp_test_backend = "?";
double zp_test_scale = 1.0;

#define MAX_SCALE 1e6

zp_config zp_test_config(void)
{
	zp_config c;
	zp_config_init(&c);
	c.backend = zp_test_backend;
	return c;
}

static void run_all(const struct zp_test *tests, size_t n, const char *only)
{
	for (size_t i = 0; i < n; i++) {
		if (only != NULL && strcmp(only, tests[i].name) != 0)
			continue;
		int before = zp_test_failures;
		tests[i].fn();
		fprintf(stderr, "%-4s %s/%s\n", zp_test_failures == before ? "ok" : "FAIL",
			zp_test_backend, tests[i].name);
	}
}

bool zp_test_backend_known(const char *name)
{
	for (size_t i = 0; i < zp_backend_count(); i++)
		if (strcmp(name, zp_backend_at(i)) == 0)
			return true;
	return false;
}

void zp_test_print_backends(FILE *to)
{
	for (size_t i = 0; i < zp_backend_count(); i++)
		fprintf(to, " %s", zp_backend_at(i));
}

static void usage(FILE *to, const char *prog, const struct zp_test *tests, size_t n)
{
	fprintf(to, "usage: %s [BACKEND|all] [SCALE] [TEST]\n", prog);
	fprintf(to, "  BACKEND  all (the default) or one of:");
	zp_test_print_backends(to);
	fprintf(to, "\n  SCALE    a number in (0, 1e6] multiplying iteration counts (default:"
		    " $ZP_TEST_SCALE, else 1)\n  TEST     run only this test, one of:");
	for (size_t i = 0; i < n; i++)
		fprintf(to, " %s", tests[i].name);
	fprintf(to, "\n");
}

bool zp_test_parse_positive(const char *text, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v > 0) || v > hi)
		return false;
	*out = v;
	return true;
}

bool zp_test_parse_long(const char *text, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Bad arguments exit 2 with the usage: a misspelt backend or test name must
 * not pass by running nothing. */
int zp_test_main(int argc, char **argv, const struct zp_test *tests, size_t n)
{
	const char *backend = argc > 1 ? argv[1] : "all";
	if (strcmp(backend, "--help") == 0 || strcmp(backend, "-h") == 0) {
		usage(stdout, argv[0], tests, n);
		return 0;
	}
	const char *env = getenv("ZP_TEST_SCALE");
	const char *why = NULL, *what = NULL;
	if (argc > 4) {
		why = "too many arguments";
	} else if (strcmp(backend, "all") != 0 && !zp_test_backend_known(backend)) {
		why = "unknown backend";
		what = backend;
	} else if (argc > 2 && !zp_test_parse_positive(argv[2], MAX_SCALE, &zp_test_scale)) {
		why = "bad scale";
		what = argv[2];
	} else if (argc <= 2 && env != NULL &&
		   !zp_test_parse_positive(env, MAX_SCALE, &zp_test_scale)) {
		why = "bad ZP_TEST_SCALE";
		what = env;
	}
	const char *only = argc > 3 ? argv[3] : NULL;
	if (why == NULL && only != NULL) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(only, tests[i].name) == 0;
		if (!found) {
			why = "unknown test";
			what = only;
		}
	}
	if (why != NULL) {
		fprintf(stderr, "%s: %s%s%s\n", argv[0], why, what ? ": " : "", what ? what : "");
		usage(stderr, argv[0], tests, n);
		return 2;
	}
	if (strcmp(backend, "all") == 0) {
		for (size_t i = 0; i < zp_backend_count(); i++) {
			zp_test_backend = zp_backend_at(i);
			run_all(tests, n, only);
		}
	} else {
		zp_test_backend = backend;
		run_all(tests, n, only);
	}
	if (zp_test_failures) {
		fprintf(stderr, "%d check(s) failed\n", zp_test_failures);
		return 1;
	}
	return 0;
}
