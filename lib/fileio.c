/* xsnap: small file helpers (see fileio.h).
 *
 * Kept in one place so that every module retries short I/O and EINTR the
 * same way and makes directory changes durable the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"

int
xs_full_pread (int fd, void *buf, size_t count, uint64_t offset)
{
  char *p = buf;

  while (count > 0) {
    ssize_t r = pread (fd, p, count, (off_t) offset);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = EIO;              /* unexpected end of file */
      return -1;
    }
    p += r;
    count -= (size_t) r;
    offset += (uint64_t) r;
  }
  return 0;
}

int
xs_full_pwritev2 (int fd, const void *buf, size_t count, uint64_t offset,
                  int flags)
{
  const char *p = buf;

  while (count > 0) {
    struct iovec iov = { .iov_base = (void *) p, .iov_len = count };
    ssize_t r = pwritev2 (fd, &iov, 1, (off_t) offset, flags);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= (size_t) r;
    offset += (uint64_t) r;
  }
  return 0;
}

int
xs_full_pwrite (int fd, const void *buf, size_t count, uint64_t offset)
{
  return xs_full_pwritev2 (fd, buf, count, offset, 0);
}

int
xs_fsync_dir (const char *dir)
{
  int fd, r = 0;

  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || fsync (fd) == -1) {
    xs_error ("cannot sync directory %s: %m", dir);
    r = -1;
  }
  if (fd >= 0)
    close (fd);
  return r;
}

int
xs_fsync_parent (const char *path)
{
  char *copy = strdup (path);
  int r;

  if (copy == NULL) {
    xs_error ("cannot sync the directory of %s: %m", path);
    return -1;
  }
  r = xs_fsync_dir (dirname (copy));
  free (copy);
  return r;
}

static int
remove_entry (const char *path, const struct stat *st, int type,
              struct FTW *ftw)
{
  if (remove (path) == -1 && errno != ENOENT) {
    xs_error ("cannot remove %s: %m", path);
    return -1;
  }
  return 0;
}

int
xs_remove_tree (const char *path)
{
  if (access (path, F_OK) == -1 && errno == ENOENT)
    return 0;
  return nftw (path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

int64_t
xs_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
xs_format_utc (int64_t ns, char *buf, size_t len)
{
  time_t seconds = (time_t) (ns / 1000000000);
  struct tm tm;

  gmtime_r (&seconds, &tm);
  strftime (buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t
xs_wall_clock_ns (void)
{
  const char *fake = getenv ("XSNAP_NOW");
  char *end;
  long long seconds;

  if (fake && *fake) {
    errno = 0;
    seconds = strtoll (fake, &end, 10);
    if (errno == 0 && *end == '\0' && seconds >= 0
        && seconds < INT64_MAX / 1000000000)
      return (int64_t) seconds * 1000000000;
  }
  return xs_now_ns ();
}

int
xs_random_bytes (void *buf, size_t len)
{
  char *p = buf;

  while (len > 0) {
    ssize_t r = getrandom (p, len, 0);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      xs_error ("cannot get random bytes: %m");
      return -1;
    }
    p += r;
    len -= (size_t) r;
  }
  return 0;
}

int
xs_new_id (const char *prefix, char *id, size_t idlen)
{
  unsigned char raw[8];

  if (xs_random_bytes (raw, sizeof raw) == -1)
    return -1;
  snprintf (id, idlen, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", prefix,
            raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]);
  return 0;
}
