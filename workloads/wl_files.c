/*
 * wl_files.c - the real-file mode of file_pipeline and ml_checkpoint_loader.
 *
 * The files live in one directory made with mkdtemp, named f0, f1, ... and
 * removed at the end, on the failure paths (wl_die) and on SIGINT, SIGTERM
 * and SIGHUP.  Nothing is dropped from the page cache globally: each file's
 * own pages are let go after it is written (posix_fadvise DONTNEED), and the
 * page cache the reads add is measured with mincore() over an mmap of each
 * file, before and after.
 */
#include "wl_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "wl_common.h"
#ifdef WL_HAVE_URING
#include "wl_files_uring.h"
#include "wl_uring.h"
#endif

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

#define WL_FILES_WRITE_CHUNK ((size_t)1 << 20)
#define WL_FILES_MAX_ALIGN ((size_t)4096) /* pool buffers from 4 KiB are page aligned */

struct wl_files {
	char dir[PATH_MAX];
	const char *dir_source; /* "--files DIR", "$TMPDIR", "/var/tmp" */
	char fs_type[32];
	int dirfd;
	bool want_direct; /* --read direct or uring */
	bool want_uring;  /* --read uring */
	bool direct;      /* O_DIRECT in use now */
	bool uring;       /* reads through io_uring now */
	char read_mode[320];
	size_t align;
	const char *align_source;
	uint64_t *sizes;
	unsigned n, cap;
	uint64_t file_bytes, bytes_read;
	uint64_t requests;  /* wl_files_readv calls: the read requests made */
	size_t read_window; /* --read-window */
	double write_s, t0, read_s, cpu0, cpu_s;
	/* The first pass over the files (wl_files_cold_end), none cached. */
	uint64_t cold_bytes;
	double cold_s, cold_cpu_s;
	uint64_t cache_before, cache_after;
	uint64_t peak_rss;
	const char *prog;
	/* ZP_WL_REFUSE_DIRECT=open|read: act as if the file system refused
	 * O_DIRECT there (EINVAL), so that tests exercise the fallback on file
	 * systems that accept it. */
	bool refuse_open, refuse_read;
};

static wl_files g_fs = {.dirfd = -1};
static volatile sig_atomic_t g_live; /* the directory exists */

/* ---- cleanup --------------------------------------------------------------- */

/* "f<idx>" without stdio, for the signal handler. */
static void file_name(char out[16], unsigned idx)
{
	out[0] = 'f';
	out[1 + wl_put_decimal(out + 1, idx)] = '\0';
}

void wl_files_cleanup(void)
{
	char name[16];

	if (!g_live)
		return;
	g_live = 0;
	for (unsigned i = 0; i < g_fs.n; i++) {
		file_name(name, i);
		(void)unlinkat(g_fs.dirfd, name, 0);
	}
	(void)close(g_fs.dirfd);
	(void)rmdir(g_fs.dir);
}

static void on_signal(int sig)
{
	wl_files_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_exit_cleanup(void)
{
	wl_files_cleanup();
}

/* ---- setup ----------------------------------------------------------------- */

static void fs_type_name(wl_files *fs)
{
	struct statfs sf;
	static const struct {
		long magic;
		const char *name;
	} known[] = {
	    {0xEF53, "ext2/3/4"},        {0x58465342, "xfs"},       {0x9123683E, "btrfs"},
	    {0x01021994, "tmpfs"},       {0x794c7630, "overlayfs"}, {0x6969, "nfs"},
	    {0x65735546, "fuse"},        {0x2FC12FC1, "zfs"},       {0xF2F52010, "f2fs"},
	    {(long)0x858458f6, "ramfs"},
	};

	snprintf(fs->fs_type, sizeof(fs->fs_type), "unknown");
	if (fstatfs(fs->dirfd, &sf) != 0)
		return;
	snprintf(fs->fs_type, sizeof(fs->fs_type), "0x%lx", (unsigned long)sf.f_type);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if ((unsigned long)sf.f_type == (unsigned long)known[i].magic)
			snprintf(fs->fs_type, sizeof(fs->fs_type), "%s", known[i].name);
}

static void refuse_direct(wl_files *fs, const char *why)
{
	fs->direct = false;
	fs->uring = false;
	snprintf(fs->read_mode, sizeof(fs->read_mode), "buffered (O_DIRECT refused: %s)", why);
	fprintf(stderr, "%s: O_DIRECT refused on %s (%s): %s; reading buffered instead\n", fs->prog,
		fs->dir, fs->fs_type, why);
}

/* Learn the alignment with a probe file, and whether O_DIRECT opens. */
static void probe(wl_files *fs)
{
	struct statx sx;
	int fd = openat(fs->dirfd, "probe", O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		wl_die("create %s/probe: %s", fs->dir, strerror(errno));
	fs->align = 4096;
	fs->align_source = "default 4096";
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN) != 0 && sx.stx_dio_offset_align != 0) {
		fs->align = sx.stx_dio_offset_align;
		if (sx.stx_dio_mem_align > fs->align)
			fs->align = sx.stx_dio_mem_align;
		fs->align_source = "statx STATX_DIOALIGN";
	}
	close(fd);
	if (fs->want_direct) {
		int dfd = openat(fs->dirfd, "probe", O_RDONLY | O_DIRECT);

		if (dfd >= 0 && fs->refuse_open) {
			close(dfd);
			dfd = -1;
			errno = EINVAL;
		}
		if (dfd < 0) {
			char why[160];

			snprintf(why, sizeof(why), "open: %s%s", strerror(errno),
				 fs->refuse_open ? " (ZP_WL_REFUSE_DIRECT)" : "");
			refuse_direct(fs, why);
		} else {
			close(dfd);
			if (fs->align > WL_FILES_MAX_ALIGN) {
				char why[160];

				snprintf(why, sizeof(why),
					 "alignment %zu exceeds the pool's page alignment",
					 fs->align);
				refuse_direct(fs, why);
			}
		}
	}
	unlinkat(fs->dirfd, "probe", 0);
}

/* --read uring: the ring, or pread (still O_DIRECT) where the kernel
 * refuses io_uring, said on stderr and in read_mode. */
static void uring_open(wl_files *fs)
{
#ifdef WL_HAVE_URING
	int rc = wl_files_uring_init(WL_FILES_MAX_IOV);
	char why[160];

	if (rc == 0) {
		fs->uring = true;
		return;
	}
	wl_uring_refusal(why, sizeof(why), rc);
	snprintf(fs->read_mode, sizeof(fs->read_mode), "direct (%s)", why);
	fprintf(stderr, "%s: %s; reading with pread (O_DIRECT) instead\n", fs->prog, why);
#else
	(void)fs;
#endif
}

void wl_files_open(wl_ctx *ctx)
{
	wl_files *fs = &g_fs;
	const char *base = ctx->opt.files;
	const char *tmp = getenv("TMPDIR");
	struct sigaction sa;

	const char *refuse = getenv("ZP_WL_REFUSE_DIRECT");

	fs->prog = ctx->prog->name;
	fs->refuse_open = refuse != NULL && strcmp(refuse, "open") == 0;
	fs->refuse_read = refuse != NULL && strcmp(refuse, "read") == 0;
	if (strcmp(base, "auto") == 0) {
		if (tmp != NULL && tmp[0] != '\0') {
			base = tmp;
			fs->dir_source = "$TMPDIR";
		} else {
			base = "/var/tmp";
			fs->dir_source = "/var/tmp";
		}
	} else {
		fs->dir_source = "--files DIR";
	}
	if (snprintf(fs->dir, sizeof(fs->dir), "%s/zp-%s-XXXXXX", base, fs->prog) >=
	    (int)sizeof(fs->dir))
		wl_die("--files: path too long");
	if (mkdtemp(fs->dir) == NULL)
		wl_die("mkdtemp %s: %s", fs->dir, strerror(errno));
	fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY);
	if (fs->dirfd < 0) {
		int e = errno;

		rmdir(fs->dir);
		wl_die("open %s: %s", fs->dir, strerror(e));
	}
	g_live = 1;
	atexit(on_exit_cleanup);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	fs_type_name(fs);
	fs->want_uring = ctx->opt.read == WL_READ_URING;
	fs->read_window = ctx->opt.read_window;
	fs->want_direct = ctx->opt.read == WL_READ_DIRECT || fs->want_uring;
	fs->direct = fs->want_direct;
	snprintf(fs->read_mode, sizeof(fs->read_mode), "%s",
		 fs->want_uring ? "uring"
		 : fs->direct   ? "direct"
				: "buffered");
	probe(fs);
	if (fs->want_uring && fs->direct)
		uring_open(fs);
	ctx->files = fs;
	wl_log(ctx, "Real files in %s (%s, %s), reads: %s, alignment %zu (%s)\n", fs->dir,
	       fs->dir_source, fs->fs_type, fs->read_mode, fs->align, fs->align_source);
}

size_t wl_files_align(const wl_files *fs)
{
	return fs->align;
}

size_t wl_files_read_window(const wl_files *fs)
{
	return fs->read_window;
}

unsigned wl_files_add(wl_files *fs, uint64_t size)
{
	static unsigned char *chunk;
	char name[16];
	double t0 = zpp_now();
	uint64_t pos = 0;
	int fd;

	if (chunk == NULL) {
		chunk = aligned_alloc(4096, WL_FILES_WRITE_CHUNK);
		if (chunk == NULL)
			wl_die("out of memory for the write buffer");
	}
	if (fs->n == fs->cap) {
		unsigned cap = fs->cap != 0 ? 2 * fs->cap : 64;
		uint64_t *s = realloc(fs->sizes, cap * sizeof(*s));

		if (s == NULL)
			wl_die("out of memory for %u files", cap);
		fs->sizes = s;
		fs->cap = cap;
	}
	file_name(name, fs->n);
	/* Counted before the create, so that cleanup removes a partial file. */
	fs->sizes[fs->n] = size;
	fs->n++;
	fd = openat(fs->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		wl_die("create %s/%s: %s", fs->dir, name, strerror(errno));
	while (pos < size) {
		size_t n =
		    size - pos < WL_FILES_WRITE_CHUNK ? (size_t)(size - pos) : WL_FILES_WRITE_CHUNK;

		for (size_t i = 0; i < n; i++)
			chunk[i] = wl_files_pattern(pos + i);
		for (size_t done = 0; done < n;) {
			ssize_t w = write(fd, chunk + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				wl_die("write %s/%s: %s", fs->dir, name,
				       w < 0 ? strerror(errno) : "short");
			done += (size_t)w;
		}
		pos += n;
	}
	if (fsync(fd) != 0)
		wl_die("fsync %s/%s: %s", fs->dir, name, strerror(errno));
	/* This file's pages only, so that both read modes start cold. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	fs->file_bytes += size;
	fs->write_s += zpp_now() - t0;
	return fs->n - 1;
}

int wl_files_openfd(wl_files *fs, unsigned idx)
{
	char name[16];
	int fd;

	file_name(name, idx);
	fd = openat(fs->dirfd, name, O_RDONLY | (fs->direct ? O_DIRECT : 0));
	if (fd < 0 && fs->direct && errno == EINVAL) {
		char why[160];

		snprintf(why, sizeof(why), "open: %s", strerror(errno));
		refuse_direct(fs, why);
		fd = openat(fs->dirfd, name, O_RDONLY);
	}
	if (fd < 0)
		wl_die("open %s/%s: %s", fs->dir, name, strerror(errno));
	return fd;
}

void wl_files_closefd(int fd)
{
	close(fd);
}

/* The sync reads: pread (one buffer) or preadv until every buffer is full;
 * short reads go on where they stopped, EINTR retries, an O_DIRECT read the
 * file system refuses (EINVAL) switches the run to buffered reads. */
static void readv_sync(wl_files *fs, int fd, const struct iovec *in, unsigned n, uint64_t off)
{
	struct iovec iov[WL_FILES_MAX_IOV];
	unsigned first = 0;

	memcpy(iov, in, n * sizeof(*iov));
	while (first < n) {
		ssize_t r;

		if (iov[first].iov_len == 0) {
			first++;
			continue;
		}
		if (fs->refuse_read && fs->direct) {
			r = -1;
			errno = EINVAL;
		} else if (n - first == 1) {
			r = pread(fd, iov[first].iov_base, iov[first].iov_len, (off_t)off);
		} else {
			r = preadv(fd, iov + first, (int)(n - first), (off_t)off);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL && fs->direct) {
			char why[160];
			int fl = fcntl(fd, F_GETFL);

			snprintf(why, sizeof(why), "%s: %s%s", n - first == 1 ? "pread" : "preadv",
				 strerror(EINVAL), fs->refuse_read ? " (ZP_WL_REFUSE_DIRECT)" : "");
			refuse_direct(fs, why);
			if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) != 0)
				wl_die("fcntl(F_SETFL, no O_DIRECT): %s", strerror(errno));
			continue;
		}
		if (r < 0)
			wl_die("pread %zu bytes at %llu: %s", iov[first].iov_len,
			       (unsigned long long)off, strerror(errno));
		if (r == 0)
			wl_die("pread at %llu: unexpected end of file", (unsigned long long)off);
		off += (uint64_t)r;
		for (size_t left = (size_t)r; left > 0;) {
			if (left >= iov[first].iov_len) {
				left -= iov[first].iov_len;
				first++;
			} else {
				iov[first].iov_base = (unsigned char *)iov[first].iov_base + left;
				iov[first].iov_len -= left;
				left = 0;
			}
		}
	}
}

#ifdef WL_HAVE_URING
/* One io_uring_enter for the n reads; a read that comes back short or
 * interrupted is finished by readv_sync, one that the file system refuses
 * (EINVAL) goes there too, and its EINVAL there switches to buffered reads. */
static void readv_uring(wl_files *fs, int fd, const struct iovec *iov, unsigned n, uint64_t off)
{
	int res[WL_FILES_MAX_IOV];

	wl_files_uring_readv(fd, iov, n, off, res);
	for (unsigned i = 0; i < n; off += iov[i].iov_len, i++) {
		struct iovec rest;
		size_t got;

		if (res[i] >= 0 && (size_t)res[i] == iov[i].iov_len)
			continue;
		if (res[i] < 0 && res[i] != -EINTR && res[i] != -EAGAIN && res[i] != -EINVAL)
			wl_die("io_uring read of %zu bytes at %llu: %s", iov[i].iov_len,
			       (unsigned long long)off, strerror(-res[i]));
		got = res[i] > 0 ? (size_t)res[i] : 0;
		rest.iov_base = (unsigned char *)iov[i].iov_base + got;
		rest.iov_len = iov[i].iov_len - got;
		readv_sync(fs, fd, &rest, 1, off + got);
	}
}
#endif

/* The first and the last byte of each buffer against the pattern the file
 * holds there: a read at a wrong offset, into a wrong buffer or lost fails
 * the run. */
static void check_pattern(const struct iovec *iov, unsigned n, uint64_t off)
{
	for (unsigned i = 0; i < n; off += iov[i].iov_len, i++) {
		const unsigned char *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		if (len == 0)
			continue;
		if (p[0] != wl_files_pattern(off) || p[len - 1] != wl_files_pattern(off + len - 1))
			wl_die("read of %zu bytes at %llu: bytes 0x%02x .. 0x%02x, the file holds "
			       "0x%02x .. 0x%02x there",
			       len, (unsigned long long)off, p[0], p[len - 1],
			       wl_files_pattern(off), wl_files_pattern(off + len - 1));
	}
}

void wl_files_readv(wl_files *fs, int fd, const struct iovec *iov, unsigned n, uint64_t off)
{
	size_t len = 0;

	if (n == 0 || n > WL_FILES_MAX_IOV)
		wl_die("wl_files_readv: %u buffers (1..%d)", n, WL_FILES_MAX_IOV);
#ifdef WL_HAVE_URING
	if (fs->uring && !fs->refuse_read)
		readv_uring(fs, fd, iov, n, off);
	else
		readv_sync(fs, fd, iov, n, off);
#else
	readv_sync(fs, fd, iov, n, off);
#endif
	check_pattern(iov, n, off);
	for (unsigned i = 0; i < n; i++)
		len += iov[i].iov_len;
	fs->bytes_read += len;
	fs->requests++;
}

void wl_files_read(wl_files *fs, int fd, unsigned char *buf, size_t len, uint64_t off)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	wl_files_readv(fs, fd, &iov, 1, off);
}

/* ---- measurements ---------------------------------------------------------- */

/* Bytes of the files resident in the page cache (mincore over an mmap). */
static uint64_t cached_bytes(wl_files *fs)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t total = 0;
	char name[16];

	for (unsigned i = 0; i < fs->n; i++) {
		size_t len = (size_t)fs->sizes[i];
		size_t pages = (len + (size_t)page - 1) / (size_t)page;
		unsigned char *vec;
		void *map;
		int fd;

		if (len == 0)
			continue;
		file_name(name, i);
		fd = openat(fs->dirfd, name, O_RDONLY);
		if (fd < 0)
			wl_die("open %s/%s: %s", fs->dir, name, strerror(errno));
		map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (map == MAP_FAILED)
			wl_die("mmap %s/%s: %s", fs->dir, name, strerror(errno));
		vec = malloc(pages);
		if (vec == NULL || mincore(map, len, vec) != 0)
			wl_die("mincore %s/%s: %s", fs->dir, name, strerror(errno));
		for (size_t p = 0; p < pages; p++)
			total += (vec[p] & 1) != 0 ? (uint64_t)page : 0;
		free(vec);
		munmap(map, len);
	}
	return total;
}

void wl_files_begin(wl_files *fs)
{
	fs->cache_before = cached_bytes(fs);
	fs->cpu0 = (double)wl_cpu_us() * 1e-6;
	fs->t0 = zpp_now();
}

/* Peak RSS of this program: VmHWM (see wl_vm_hwm_kib), ru_maxrss only where
 * /proc/self/status has none. */
static uint64_t peak_rss(void)
{
	uint64_t kib = wl_vm_hwm_kib();
	struct rusage ru;

	if (kib != 0)
		return kib * 1024u;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_maxrss * 1024u;
}

void wl_files_cold_end(wl_files *fs)
{
	fs->cold_s = zpp_now() - fs->t0;
	fs->cold_cpu_s = (double)wl_cpu_us() * 1e-6 - fs->cpu0;
	fs->cold_bytes = fs->bytes_read;
}

void wl_files_end(wl_files *fs)
{
	fs->read_s = zpp_now() - fs->t0;
	fs->cpu_s = (double)wl_cpu_us() * 1e-6 - fs->cpu0;
	fs->peak_rss = peak_rss();
	fs->cache_after = cached_bytes(fs);
#ifdef WL_HAVE_URING
	wl_files_uring_exit();
	fs->uring = false;
#endif
}

static double per_byte_ns(const wl_files *fs)
{
	return fs->bytes_read != 0 ? fs->cpu_s * 1e9 / (double)fs->bytes_read : 0.0;
}

static double mb_per_s(const wl_files *fs)
{
	return fs->read_s > 0 ? (double)fs->bytes_read / 1e6 / fs->read_s : 0.0;
}

static void json_str(const char *key, const char *v)
{
	printf("\"%s\": ", key);
	wl_json_string(v);
	printf(", ");
}

void wl_files_json(const wl_files *fs)
{
	printf("{");
	json_str("dir", fs->dir);
	json_str("dir_source", fs->dir_source);
	json_str("fs_type", fs->fs_type);
	json_str("read_requested", fs->want_uring    ? "uring"
				   : fs->want_direct ? "direct"
						     : "buffered");
	json_str("read_mode", fs->read_mode);
	json_str("align_source", fs->align_source);
	printf("\"align\": %zu, \"count\": %u, \"file_bytes\": %llu, \"bytes_read\": %llu, ",
	       fs->align, fs->n, (unsigned long long)fs->file_bytes,
	       (unsigned long long)fs->bytes_read);
	printf("\"read_window\": %zu, \"read_requests\": %llu, ", fs->read_window,
	       (unsigned long long)fs->requests);
	printf("\"write_s\": %.9g, \"read_s\": %.9g, \"throughput_mb_s\": %.9g, ", fs->write_s,
	       fs->read_s, mb_per_s(fs));
	printf("\"cpu_s\": %.9g, \"cpu_ns_per_byte\": %.9g, \"peak_rss_bytes\": %llu, ", fs->cpu_s,
	       per_byte_ns(fs), (unsigned long long)fs->peak_rss);
	if (fs->cold_bytes != 0)
		printf("\"cold_bytes_read\": %llu, \"cold_read_s\": %.9g, "
		       "\"cold_cpu_ns_per_byte\": %.9g, ",
		       (unsigned long long)fs->cold_bytes, fs->cold_s,
		       fs->cold_cpu_s * 1e9 / (double)fs->cold_bytes);
	else
		printf("\"cold_bytes_read\": null, \"cold_read_s\": null, "
		       "\"cold_cpu_ns_per_byte\": null, ");
	printf("\"page_cache_before\": %llu, \"page_cache_after\": %llu, "
	       "\"page_cache_added\": %lld}",
	       (unsigned long long)fs->cache_before, (unsigned long long)fs->cache_after,
	       (long long)fs->cache_after - (long long)fs->cache_before);
}

void wl_files_summary(const wl_ctx *ctx, const wl_files *fs)
{
	wl_log(ctx,
	       "Files: %u (%llu bytes) in %s (%s), reads %s: %llu bytes in %.3f s, %.1f MB/s, "
	       "CPU %.3f s = %.3f ns/byte, peak RSS %llu KiB, page cache added %lld bytes\n",
	       fs->n, (unsigned long long)fs->file_bytes, fs->dir, fs->fs_type, fs->read_mode,
	       (unsigned long long)fs->bytes_read, fs->read_s, mb_per_s(fs), fs->cpu_s,
	       per_byte_ns(fs), (unsigned long long)(fs->peak_rss / 1024),
	       (long long)fs->cache_after - (long long)fs->cache_before);
}
