/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Small helpers of the guest-init binary (not of the pure, unit-tested
 * parsers): console output, files, time, child processes. Errors are
 * returned as -errno; nothing here logs except gi_message() (gi_warn(),
 * gi_note()). */

/* Writes all of @buf to @fd in as few write(2) calls as possible (one, for a
 * console line, so that kernel messages do not cut it). Errors are dropped:
 * there is nowhere else to report them. */
void gi_write_all(int fd, const char *buf, size_t len);

/* "\nguest-init: <prefix><message>\n" on stderr (the console), one write. */
void gi_message(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "\nguest-init: warning: <message>\n": something went wrong. */
#define gi_warn(...) gi_message("warning: ", __VA_ARGS__)

/* "\nguest-init: <message>\n": progress worth a line. */
#define gi_note(...) gi_message("", __VA_ARGS__)

/* CLOCK_BOOTTIME in milliseconds: time since the guest kernel started. */
uint64_t gi_now_ms(void);

/* Reads @path into @buf (NUL-terminated, at most @size - 1 bytes). Returns
 * the length, or -errno. *@truncated (may be NULL) says whether the file was
 * longer. */
ssize_t gi_read_file(const char *path, char *buf, size_t size, bool *truncated);

/* Writes @s to @path (created with @mode, truncated), in one write(2) when
 * possible, and closes it. Returns 0 or -errno. */
int gi_write_file(const char *path, const char *s, mode_t mode);

/* mkdir -p: creates @path and its missing parents with @mode. Returns 0 or
 * -errno. */
int gi_mkdir_p(const char *path, mode_t mode);

/* The environment every process guest-init starts gets: PATH, HOME=/root,
 * TERM=linux, nothing else. */
extern char *const gi_clean_env[];

/* The environment gi_spawn() gives children: gi_clean_env unless set. */
extern char *const *gi_spawn_env;

/* How gi_spawn_opts() starts a child. */
typedef struct {
  char *const *argv;     /* argv[0]: the absolute path exec'd (inside @root), unless @exec_fd >= 0 */
  char *const *envp;     /* the environment; NULL for gi_spawn_env */
  const char *root;      /* when not NULL, the child chroot()s there first */
  int stdout_fd;         /* when >= 0, the child's stdout; otherwise guest-init's (the console) */
  int exec_fd;           /* when >= 0, the program is this open file (execveat(AT_EMPTY_PATH), e.g. a
                          * memfd), run after the chroot: its ELF interpreter is the root's */
} GiSpawnOptions;

/* gi_spawn() with every option: starts @o->argv in a new session with all
 * signals unblocked, cwd "/" (of @o->root). Returns the child's pid once
 * execve() succeeded, or -errno of the failed step (the child is reaped). */
pid_t gi_spawn_opts(const GiSpawnOptions *o);

/* pipe2(@pipefd, O_CLOEXEC), then fork(): the child's pid (0 in the
 * child), or -errno with *@failed naming the call that failed ("pipe",
 * "fork") and no end of the pipe left open. */
pid_t gi_fork_with_pipe(int pipefd[2], const char **failed);

/* gi_run() with every option: runs @o (its stdout_fd is ignored: with @out
 * the output is collected, else the console) and waits at most @timeout_ms.
 * *@ret_truncated (may be NULL): the output was longer than @out_size - 1
 * bytes (the rest was read and dropped). Returns as gi_run(). */
int gi_run_opts(const GiSpawnOptions *o, int timeout_ms, char *out, size_t out_size, bool *ret_truncated,
                int *ret_status);

/* Starts @argv[0] (an absolute path) with @argv and gi_clean_env, in a new
 * session (so its process group id is its pid), with all signals unblocked.
 * @root: when not NULL, the child chroot()s there first. @stdout_fd: when
 * >= 0, becomes the child's stdout; otherwise it inherits guest-init's (the
 * console). stdin and stderr are inherited. Returns the child's pid when
 * execve() succeeded (checked through a close-on-exec pipe), or -errno of the
 * failed step (the child has been reaped then). */
pid_t gi_spawn(char *const argv[], const char *root, int stdout_fd);

/* Runs @argv like gi_spawn() and waits for it at most @timeout_ms. When @out
 * is not NULL, the child's stdout is collected there (NUL-terminated, cut at
 * @out_size - 1 bytes; the rest is read and dropped). On return 0,
 * *@ret_status is the wait status. -ETIMEDOUT: the child was killed with
 * SIGKILL after @timeout_ms (and reaped when it died within a second more).
 * Other -errno: it could not be started. */
int gi_run(char *const argv[], int timeout_ms, char *out, size_t out_size, int *ret_status);
