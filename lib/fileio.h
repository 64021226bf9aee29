/* xsnap: small file helpers shared by the modules that do their own I/O. */
#ifndef XSNAP_FILEIO_H
#define XSNAP_FILEIO_H

#include <stddef.h>
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

/* fsync directory DIR, so that a create, rename or unlink in it is
 * durable.  Reports errors.
 */
extern int xs_fsync_dir (const char *dir);

/* fsync the directory that holds PATH. */
extern int xs_fsync_parent (const char *path);

/* Remove a directory tree (like rm -rf), reporting the first failure. */
extern int xs_remove_tree (const char *path);

/* Current wall-clock time in nanoseconds since the epoch. */
extern int64_t xs_now_ns (void);

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
