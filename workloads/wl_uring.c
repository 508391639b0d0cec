/*
 * wl_uring.c - the workloads' io_uring setup (wl_uring.h).
 */
#include "wl_uring.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool refused_by_env(void)
{
	return getenv("ZP_WL_REFUSE_URING") != NULL;
}

int wl_uring_setup(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries)
{
	unsigned size = cq_entries != 0 ? IORING_SETUP_CQSIZE : 0;
	struct io_uring_params p = {.flags = size | IORING_SETUP_SINGLE_ISSUER |
					     IORING_SETUP_DEFER_TASKRUN,
				    .cq_entries = cq_entries};
	int rc;

	if (refused_by_env())
		return -EPERM;
	rc = io_uring_queue_init_params(sq_entries, ring, &p);
	if (rc == -EINVAL) {
		p = (struct io_uring_params){.flags = size, .cq_entries = cq_entries};
		rc = io_uring_queue_init_params(sq_entries, ring, &p);
	}
	if (rc < 0)
		return rc;
	(void)io_uring_register_ring_fd(ring); /* an optimisation: fine if refused */
	return 0;
}

char *wl_uring_refusal(char *dst, size_t n, int rc)
{
	snprintf(dst, n, "io_uring refused: io_uring_queue_init: %s%s", strerror(-rc),
		 refused_by_env() ? " (ZP_WL_REFUSE_URING)" : "");
	return dst;
}
