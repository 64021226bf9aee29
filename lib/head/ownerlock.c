/* xsnap: the owner lock of a live volume (see ownerlock.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "head/ownerlock.h"

#define RECORD_MAX 64               /* "PID ROLE\n" */

/* What the current holder recorded ("PID" or "PID ROLE"), or "". */
static void
holder_record (int fd, char text[RECORD_MAX])
{
  ssize_t n = pread (fd, text, RECORD_MAX - 1, 0);

  text[n > 0 ? n : 0] = '\0';
}

/* The pid recorded by the current holder, or 0 if unreadable. */
static long
holder_pid (int fd)
{
  char text[RECORD_MAX];

  holder_record (fd, text);
  return strtol (text, NULL, 10);
}

/* Write RECORD as the holder's, replacing what was there. */
static int
write_record (int fd, const char *record)
{
  if (ftruncate (fd, 0) == -1
      || xs_full_pwrite (fd, record, strlen (record), 0) == -1)
    return -1;
  return 0;
}

enum xs_owner_lock_result
xs_owner_lock_try (const char *path, const char *what, int *fdp)
{
  char text[32];
  int fd;

  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) {
    xs_error ("cannot lock %s: %s: %m", what, path);
    return XS_OWNER_LOCK_FAILED;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    int saved_errno = errno;
    if (saved_errno == EWOULDBLOCK) {
      close (fd);
      return XS_OWNER_LOCK_BUSY;
    }
    errno = saved_errno;
    xs_error ("cannot lock %s: %s: %m", what, path);
    close (fd);
    return XS_OWNER_LOCK_FAILED;
  }
  snprintf (text, sizeof text, "%ld\n", (long) getpid ());
  if (write_record (fd, text) == -1) {
    xs_error ("cannot lock %s: %s: %m", what, path);
    close (fd);
    return XS_OWNER_LOCK_FAILED;
  }
  *fdp = fd;
  return XS_OWNER_LOCK_TAKEN;
}

int
xs_owner_lock_take (const char *path, const char *what)
{
  enum xs_owner_lock_result r;
  int fd = -1, tries;

  /* Someone may be holding the lock for an instant (xs_owner_lock_probe
   * from a listing): wait a little before calling the volume busy.
   */
  for (tries = 0;
       (r = xs_owner_lock_try (path, what, &fd)) == XS_OWNER_LOCK_BUSY
         && tries < 25;
       tries++)
    usleep (10000);

  if (r == XS_OWNER_LOCK_FAILED)
    return -1;
  if (r == XS_OWNER_LOCK_BUSY) {
    long pid = xs_owner_lock_holder (path);
    if (pid > 0 && xs_owner_lock_holder_is (path, "sealer"))
      xs_error ("%s is in use by process %ld, which is sealing a snapshot "
                "of it: retry once the snapshot is available ('snapshot "
                "create --wait' waits for it)", what, pid);
    else if (pid > 0)
      xs_error ("%s is in use by another process (pid %ld)", what, pid);
    else
      xs_error ("%s is in use by another process", what);
    errno = EBUSY;
    return -1;
  }
  return fd;
}

long
xs_owner_lock_holder (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  long pid;

  if (fd == -1)
    return 0;
  pid = holder_pid (fd);
  close (fd);
  return pid;
}

int
xs_owner_lock_set_role (int fd, const char *role, const char *what)
{
  char text[RECORD_MAX];

  /* Longer than the "PID\n" it replaces, so a reader never sees less than
   * the pid.
   */
  snprintf (text, sizeof text, "%ld %s\n", (long) getpid (), role);
  if (xs_full_pwrite (fd, text, strlen (text), 0) == -1) {
    xs_error ("cannot record the role of the owner of %s: %m", what);
    return -1;
  }
  return 0;
}

bool
xs_owner_lock_holder_is (const char *path, const char *role)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  char text[RECORD_MAX], *word;
  size_t len;

  if (fd == -1)
    return false;
  holder_record (fd, text);
  close (fd);
  word = strchr (text, ' ');
  if (word == NULL)
    return false;
  word++;
  len = strcspn (word, "\n");
  return len == strlen (role) && strncmp (word, role, len) == 0;
}

void
xs_owner_lock_release (int fd)
{
  if (fd >= 0)
    close (fd);                 /* closing the last fd drops the flock */
}

int
xs_owner_lock_probe (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  int r;

  if (fd == -1)
    return errno == ENOENT ? 0 : -1;
  if (flock (fd, LOCK_EX | LOCK_NB) == 0)
    r = 0;
  else
    r = errno == EWOULDBLOCK ? 1 : -1;
  close (fd);
  return r;
}
