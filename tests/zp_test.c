/*
 * zp_test.c - the harness behind zp_test.h.
 */
#include "zp_test.h"

int zp_test_failures;
const char *zp_test_backend = "?";
double zp_test_scale = 1.0;

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

int zp_test_main(int argc, char **argv, const struct zp_test *tests, size_t n)
{
	const char *backend = argc > 1 ? argv[1] : "all";
	const char *env = getenv("ZP_TEST_SCALE");
	if (argc > 2)
		zp_test_scale = atof(argv[2]);
	else if (env != NULL)
		zp_test_scale = atof(env);
	if (zp_test_scale <= 0)
		zp_test_scale = 1;
	const char *only = argc > 3 ? argv[3] : NULL;
	if (strcmp(backend, "--help") == 0) {
		printf("usage: %s [BACKEND|all] [SCALE] [TEST]\n", argv[0]);
		return 0;
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
