/*
 * wl_files_uring.c - --read uring: the reads of a window as one batch of
 * io_uring reads (one SQE per buffer, one io_uring_enter to submit them and
 * wait for all), on the O_DIRECT file descriptor wl_files.c opened.
 */
#include "wl_files_uring.h"

#include <errno.h>
#include <string.h>

#include "wl_common.h"
#include "wl_uring.h"

static struct io_uring g_ring;
static unsigned g_entries;

int wl_files_uring_init(unsigned entries)
{
	int rc = wl_uring_setup(&g_ring, entries, 0);

	if (rc == 0)
		g_entries = entries;
	return rc;
}

void wl_files_uring_readv(int fd, const struct iovec *iov, unsigned n, uint64_t off, int *res)
{
	unsigned done = 0;

	if (n > g_entries)
		wl_die("io_uring: %u reads, the ring has %u entries", n, g_entries);
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&g_ring);

		if (sqe == NULL)
			wl_die("io_uring: no free submission entry");
		io_uring_prep_read(sqe, fd, iov[i].iov_base, (unsigned)iov[i].iov_len, off);
		io_uring_sqe_set_data64(sqe, i);
		off += iov[i].iov_len;
	}
	/* Interrupted before the kernel took the SQEs: submit again, so that
	 * none is left behind in the ring while the loop below waits. */
	for (;;) {
		int rc = io_uring_submit_and_wait(&g_ring, n);

		if (rc >= 0)
			break;
		if (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			wl_die("io_uring_submit_and_wait: %s", strerror(-rc));
	}
	while (done < n) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&g_ring, &cqe);

		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			wl_die("io_uring_wait_cqe: %s", strerror(-rc));
		res[io_uring_cqe_get_data64(cqe)] = cqe->res;
		io_uring_cqe_seen(&g_ring, cqe);
		done++;
	}
}

void wl_files_uring_exit(void)
{
	if (g_entries != 0)
		io_uring_queue_exit(&g_ring);
	g_entries = 0;
}
