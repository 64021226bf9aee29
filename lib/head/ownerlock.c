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

/* The pid recorded by the current holder, or 0 if unreadable. */
static long
holder_pid (int fd)
{
  char text[32] = "";

  if (pread (fd, text, sizeof text - 1, 0) <= 0)
    return 0;
  return strtol (text, NULL, 10);
}

enum xs_owner_lock_result
xs_owner_lock_try (const char *path, const char *what, int *fdp)
{
  char text[32];
  int fd, len;

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
  len = snprintf (text, sizeof text, "%ld\n", (long) getpid ());
  if (ftruncate (fd, 0) == -1 || xs_full_pwrite (fd, text, (size_t) len, 0) == -1) {
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
    if (pid > 0)
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
