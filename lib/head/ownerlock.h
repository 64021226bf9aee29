/* xsnap: one owner process per live volume.
 *
 * The owner of a volume (the nbdkit plugin serving it, or an xsnap command
 * working on it in-process) holds an exclusive flock on the volume's lock
 * file for as long as it uses the head.  flock locks die with the process,
 * so a crashed owner never leaves a stale lock behind.  The holder's pid is
 * written into the file so that the refusal can say who holds it, and
 * after it the holder's role when it has one: "sealer" for a detached
 * sealer (ops/server.h), which hands the volume over to a server that
 * opens it and is otherwise gone once its snapshots are sealed.
 */
#ifndef XSNAP_OWNERLOCK_H
#define XSNAP_OWNERLOCK_H

#include <stdbool.h>

/* Take the lock at PATH without waiting.  WHAT names the resource for the
 * message ("volume 'db1'").  Returns an fd that holds the lock, or -1 after
 * reporting "WHAT is in use by another process (pid N)" or the I/O error.
 */
extern int xs_owner_lock_take (const char *path, const char *what);

/* What xs_owner_lock_try found. */
enum xs_owner_lock_result {
  XS_OWNER_LOCK_TAKEN,          /* *FD holds the lock */
  XS_OWNER_LOCK_BUSY,           /* another process holds it; not reported */
  XS_OWNER_LOCK_FAILED,         /* an I/O error, reported */
};

/* Take the lock at PATH once, without waiting or reporting "in use". */
extern enum xs_owner_lock_result xs_owner_lock_try (const char *path,
                                                    const char *what,
                                                    int *fd);

/* Whether another process holds the lock at PATH: 1 yes, 0 no, -1 if it
 * cannot tell.  Takes the lock for an instant when it is free, which
 * xs_owner_lock_take tolerates by retrying briefly.  Reports nothing.
 */
extern int xs_owner_lock_probe (const char *path);

/* The pid the holder of the lock at PATH recorded, or 0 if none can be
 * read.  Reports nothing.
 */
extern long xs_owner_lock_holder (const char *path);

/* Record ROLE (a word) after this holder's pid in the lock FD holds.
 * Returns 0 or -1 (reported).
 */
extern int xs_owner_lock_set_role (int fd, const char *role, const char *what);

/* Whether the holder of the lock at PATH recorded ROLE.  Reports
 * nothing.
 */
extern bool xs_owner_lock_holder_is (const char *path, const char *role);

/* Release a lock taken above. */
extern void xs_owner_lock_release (int fd);

#endif /* XSNAP_OWNERLOCK_H */
