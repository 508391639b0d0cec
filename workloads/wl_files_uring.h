/*
 * wl_files_uring.h - the io_uring reads of the real-file mode (--read
 * uring), built only where liburing is found (WL_HAVE_URING).  wl_files.c
 * is the only caller; see docs/workloads.md, "Real files".
 */
#ifndef WL_FILES_URING_H
#define WL_FILES_URING_H

#include <stdint.h>
#include <sys/uio.h>

/* Set up the ring for up to `entries` reads in flight.  0, or -errno when
 * the kernel refuses io_uring (wl_uring_setup()). */
int wl_files_uring_init(unsigned entries);

/* Read iov[0..n) from fd at off, off + iov[0].iov_len, ...: n reads
 * submitted with one io_uring_enter, then all n waited for.  res[i] is
 * read i's result (bytes read, or -errno). */
void wl_files_uring_readv(int fd, const struct iovec *iov, unsigned n, uint64_t off, int *res);

void wl_files_uring_exit(void);

#endif /* WL_FILES_URING_H */
