/*
 * wl_files.h - the drivers' real-file mode (--files, --read): input files
 * written first into a temporary directory, then read with O_DIRECT into
 * page-aligned pooled buffers or with plain buffered reads; throughput, CPU
 * per byte, peak RSS and the page cache the files added are reported.
 * See docs/workloads.md, "Real files".
 */
#ifndef WL_FILES_H
#define WL_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct wl_ctx;
typedef struct wl_files wl_files;

/* Create the temporary directory (under --files DIR, or $TMPDIR / /var/tmp
 * for "auto"), learn the direct-I/O alignment there and whether O_DIRECT is
 * accepted.  Sets ctx->files; exits 1 with a message on failure. */
void wl_files_open(struct wl_ctx *ctx);

/* The direct-I/O alignment of the directory's file system (statx
 * STATX_DIOALIGN, else 4096); read lengths are multiples of it. */
size_t wl_files_align(const wl_files *fs);

/* The read-ahead window (--read-window): the bytes a program asks for in
 * one wl_files_readv, in at most WL_FILES_MAX_IOV buffers. */
size_t wl_files_read_window(const wl_files *fs);

/* Write a file of `size` bytes, fsync it and let its pages go from the page
 * cache (posix_fadvise DONTNEED on this file only).  Returns its index. */
unsigned wl_files_add(wl_files *fs, uint64_t size);

/* Open file `idx` for reading (O_DIRECT in direct mode). */
int wl_files_openfd(wl_files *fs, unsigned idx);
void wl_files_closefd(int fd);

/* The byte every file holds at offset off (what wl_files_add writes; the
 * reads check the first and the last byte of each buffer against it).  It
 * depends on every byte of the offset, so that a read from another page,
 * MiB or GiB of the file (O_DIRECT offsets are all page aligned) differs. */
static inline unsigned char wl_files_pattern(uint64_t off)
{
	return (unsigned char)((off * 131u + 7u) ^ (off >> 8) ^ (off >> 16) ^ (off >> 24) ^
			       (off >> 32));
}

/* The most buffers one wl_files_readv fills (the read-ahead window's). */
#define WL_FILES_MAX_IOV 16

/* Fill iov[0..n) (1 <= n <= WL_FILES_MAX_IOV) with the file's bytes from
 * off on, consecutively: one pread (n == 1) or preadv, looped until
 * complete; with --read uring, n reads submitted together through io_uring.
 * An O_DIRECT read the file system refuses (EINVAL) switches the run to
 * buffered reads, with a message on stderr and in the JSON's read_mode. */
void wl_files_readv(wl_files *fs, int fd, const struct iovec *iov, unsigned n, uint64_t off);

/* Read exactly len bytes at off into buf: wl_files_readv of one buffer. */
void wl_files_read(wl_files *fs, int fd, unsigned char *buf, size_t len, uint64_t off);

/* Around the timed reads: wall and CPU time, page cache of the files. */
void wl_files_begin(wl_files *fs);
void wl_files_end(wl_files *fs);
/* Optional, between the two: the first pass over the files ends here (every
 * file read once, none of it cached before: the cold reads). */
void wl_files_cold_end(wl_files *fs);

/* The "files" object of the JSON report, and the human summary line. */
void wl_files_json(const wl_files *fs);
void wl_files_summary(const struct wl_ctx *ctx, const wl_files *fs);

/* Remove the files and the directory (idempotent; async-signal-safe, so
 * the failure paths and the signal handler call it too). */
void wl_files_cleanup(void);

#endif /* WL_FILES_H */
