/* xsnap: small file helpers shared by the modules that do their own I/O. */
#ifndef XSNAP_FILEIO_H
#define XSNAP_FILEIO_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* pread/pwrite the whole buffer, retrying short transfers and EINTR.
 * Return 0, or -1 with errno set (not reported: callers know what failed).
 * A read past end of file fails with errno = EIO.
 */
extern int xs_full_pread (int fd, void *buf, size_t count, uint64_t offset);
extern int xs_full_pwrite (int fd, const void *buf, size_t count,
                           uint64_t offset);

/* The same with pwritev2 FLAGS (RWF_DSYNC for a FUA write). */
extern int xs_full_pwritev2 (int fd, const void *buf, size_t count,
                             uint64_t offset, int flags);

/* write the whole buffer to FD (a pipe, a socket or a file at its offset),
 * retrying short writes and EINTR.  0, or -1 with errno set (not
 * reported).
 */
extern int xs_full_write (int fd, const void *buf, size_t count);

/* fsync directory DIR, so that a create, rename or unlink in it is
 * durable.  Reports errors.
 */
extern int xs_fsync_dir (const char *dir);

/* fsync the directory that holds PATH. */
extern int xs_fsync_parent (const char *path);

/* A file the user named to receive output (send -o, key export -o).
 *
 * A path that names something other than a regular file (a device such as
 * /dev/null, a FIFO, a terminal, /dev/stdout) is written into as it is:
 * it is never replaced, so its readers get the data.  A regular file, or
 * one about to be made, is written to a temporary file next to it that
 * becomes PATH only on commit (synced, then renamed; with
 * XS_OUTPUT_NEW linked, so that it never replaces a file that is there),
 * so that an output that fails leaves no half-written file.  Symbolic
 * links are followed: the file the link names is written or replaced, the
 * link stays; a link to nothing is refused.
 */
enum xs_output_rule {
  XS_OUTPUT_REPLACE,            /* a regular file at PATH is replaced */
  XS_OUTPUT_NEW,                /* a regular file at PATH is refused */
};

struct xs_output {
  int fd;                       /* where to write */
  char *path;                   /* the file written (a link's target) */
  char *temp;                   /* the temporary file; NULL: in place */
  enum xs_output_rule rule;
};

/* Open PATH for output; MODE is a new file's permissions (a replaced
 * file keeps its own).  0, or -1 reported.
 */
extern int xs_output_open (struct xs_output *out, const char *path,
                           mode_t mode, enum xs_output_rule rule);

/* Make what was written the output, durably, and close it.  0 or -1
 * (reported; nothing is left at PATH that was not there).
 */
extern int xs_output_commit (struct xs_output *out);

/* Close an output after a failure: the temporary file is removed; data
 * written into a device or FIFO stays written.
 */
extern void xs_output_abandon (struct xs_output *out);

/* PATH as an absolute path (malloc'd): the real path of its parent
 * folder followed by its last name, so that PATH need not exist yet (a
 * store being made) and a symbolic link named last stays as named.  WHAT
 * names PATH in messages.  NULL with an error if the parent is not there.
 */
extern char *xs_absolute_path (const char *path, const char *what);

/* Remove a directory tree (like rm -rf), reporting the first failure. */
extern int xs_remove_tree (const char *path);

/* Current wall-clock time in nanoseconds since the epoch. */
extern int64_t xs_now_ns (void);

/* Whether process PID has ended: there is no such process, or it is a
 * zombie its parent has not reaped yet (some init processes reap late),
 * as /proc/PID/stat says.  A process recorded as doing something (a
 * sealer, a copy) that has ended will never finish it.
 */
extern bool xs_process_gone (pid_t pid);

/* The wall clock for rules that depend on the date (share expiry, audit
 * times): xs_now_ns, unless XSNAP_NOW gives seconds since the epoch (for
 * tests, which need to step years ahead).
 */
extern int64_t xs_wall_clock_ns (void);

/* NS (Unix nanoseconds) as "2026-11-22T05:31:12Z" in BUF (32 bytes do). */
extern void xs_format_utc (int64_t ns, char *buf, size_t len);

/* Fill BUF with LEN random bytes from the kernel.  Reports errors. */
extern int xs_random_bytes (void *buf, size_t len);

/* A fresh id: PREFIX, '-', and 16 lower-case hex digits ("vol-3f9c..."). */
extern int xs_new_id (const char *prefix, char *id, size_t idlen);

#endif /* XSNAP_FILEIO_H */
