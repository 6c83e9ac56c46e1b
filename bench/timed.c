/*
 * timed: run one command and report its wall time and its own peak RSS.
 *
 *   timed REPORT_FILE PROGRAM [ARGS...]
 *
 * Writes "<wall_ns> <maxrss_kib> <exit_code> <major_faults>\n" to REPORT_FILE and exits
 * with the command's exit code. Major faults (its own and its reaped children's) are page
 * cache misses: a file the command maps had to be read from disk, typically because the
 * machine reclaimed it since its last run (docs/benchmarks.md, round 15).
 *
 * Why not measure from Python: a child inherits its parent's RSS high-water mark
 * through fork/vfork and keeps it across exec (the kernel folds the old
 * mm's hiwater into signal->maxrss at exec), so every child of the ~15 MiB harness would
 * report at least 15 MiB. Forked from this tiny process instead, ru_maxrss is the
 * command's own, and the wall time covers exactly fork, exec, run and exit (what a
 * service manager pays), not the harness's spawn overhead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int status, code;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: timed REPORT_FILE PROGRAM [ARGS...]\n");
		return 127;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("timed: fork");
		return 127;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "timed: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("timed: wait4");
			return 127;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	out = fopen(argv[1], "w");
	if (!out) {
		perror("timed: report file");
		return 127;
	}
	fprintf(out, "%lld %ld %d %ld\n",
		(long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec),
		ru.ru_maxrss, code, ru.ru_majflt);
	fclose(out);
	return code;
}
