/*
 * zp_rusage.c - run a command and report its resource usage.
 *
 *     zp_rusage OUTFILE COMMAND [ARGS...]
 *
 * Forks, execs COMMAND (stdin/stdout/stderr inherited), waits for it with
 * wait4() and writes one JSON object to OUTFILE:
 *   {"status": exit status or 128+signal, "maxrss_kib": ru_maxrss,
 *    "utime_s": ..., "stime_s": ..., "minflt": ..., "majflt": ...,
 *    "nvcsw": ..., "nivcsw": ...}
 * and exits with the command's status.
 *
 * Why not getrusage from the benchmark runner itself: Linux carries the
 * high-water RSS of the address space a process had before execve() into
 * its ru_maxrss, so a child forked from a 16 MB Python reports at least
 * 16 MB.  Forked from this program, the floor is this program's own RSS
 * (about 1 MB, below any driver's), as with /usr/bin/time -f %M.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static double secs(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: zp_rusage OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("zp_rusage: fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "zp_rusage: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int status = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("zp_rusage: wait4");
			return 2;
		}
	}
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *f = fopen(argv[1], "w");
	if (f == NULL) {
		perror("zp_rusage: output file");
		return rc ? rc : 2;
	}
	fprintf(f,
		"{\"status\": %d, \"maxrss_kib\": %ld, \"utime_s\": %.6f, \"stime_s\": %.6f, "
		"\"minflt\": %ld, \"majflt\": %ld, \"nvcsw\": %ld, \"nivcsw\": %ld}\n",
		rc, ru.ru_maxrss, secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_minflt, ru.ru_majflt,
		ru.ru_nvcsw, ru.ru_nivcsw);
	fclose(f);
	return rc;
}
