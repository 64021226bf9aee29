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
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"

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
xs_full_write (int fd, const void *buf, size_t count)
{
  const char *p = buf;

  while (count > 0) {
    ssize_t r = write (fd, p, count);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    count -= (size_t) r;
  }
  return 0;
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

/* PATH exists and is not a regular file: write into it. */
static int
open_in_place (struct xs_output *out, const char *path, const struct stat *st)
{
  if (S_ISDIR (st->st_mode)) {
    errno = EISDIR;
    xs_error ("cannot write %s: %m", path);
    return -1;
  }
  out->fd = open (path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (out->fd == -1) {
    xs_error ("cannot write %s: %m", path);
    return -1;
  }
  return 0;
}

/* The regular file to write for PATH (following links), and the mode it
 * gets: its own if it exists, else MODE.  NULL, reported.
 */
static char *
regular_target (const char *path, const struct stat *st, bool exists,
                enum xs_output_rule rule, mode_t *mode)
{
  struct stat link;
  char *target;

  if (exists) {
    if (rule == XS_OUTPUT_NEW) {
      errno = EEXIST;
      xs_error ("cannot write %s: it exists already (%m)", path);
      return NULL;
    }
    *mode = st->st_mode & 07777;
    target = realpath (path, NULL);
  }
  else if (lstat (path, &link) == 0) {
    xs_error ("cannot write %s: it is a symbolic link to a missing file",
              path);
    return NULL;
  }
  else
    target = strdup (path);
  if (target == NULL)
    xs_error ("cannot write %s: %m", path);
  return target;
}

int
xs_output_open (struct xs_output *out, const char *path, mode_t mode,
                enum xs_output_rule rule)
{
  struct stat st;
  bool exists = stat (path, &st) == 0;

  *out = (struct xs_output) { .fd = -1, .rule = rule };
  if (!exists && errno != ENOENT) {
    xs_error ("cannot write %s: %m", path);
    return -1;
  }
  if (exists && !S_ISREG (st.st_mode)) {
    if ((out->path = strdup (path)) == NULL) {
      xs_error ("cannot write %s: %m", path);
      return -1;
    }
    if (open_in_place (out, path, &st) == -1) {
      xs_output_abandon (out);
      return -1;
    }
    return 0;
  }
  out->path = regular_target (path, &st, exists, rule, &mode);
  if (out->path == NULL)
    return -1;
  if (asprintf (&out->temp, "%s.XXXXXX", out->path) == -1) {
    out->temp = NULL;
    xs_error ("cannot write %s: %m", path);
    xs_output_abandon (out);
    return -1;
  }
  out->fd = mkostemp (out->temp, O_CLOEXEC);
  if (out->fd == -1 || fchmod (out->fd, mode) == -1) {
    xs_error ("cannot create %s: %m", out->temp);
    if (out->fd == -1) {
      free (out->temp);
      out->temp = NULL;
    }
    xs_output_abandon (out);
    return -1;
  }
  /* A replaced file keeps its owner where we may give it (as root). */
  if (exists && fchown (out->fd, st.st_uid, st.st_gid) == -1)
    xs_debug ("%s: not ours to give away, it becomes ours: %m", path);
  return 0;
}

/* The temporary file becomes the output. */
static int
publish_output (struct xs_output *out)
{
  if (out->rule == XS_OUTPUT_REPLACE)
    return rename (out->temp, out->path);
  /* link: never replace a file that appeared meanwhile. */
  if (link (out->temp, out->path) == -1)
    return -1;
  unlink (out->temp);
  return 0;
}

int
xs_output_commit (struct xs_output *out)
{
  int fd = out->fd, r = 0;

  out->fd = -1;
  if (out->temp == NULL) {
    /* A device is synced; a FIFO or terminal cannot be (EINVAL). */
    if ((fsync (fd) == -1 && errno != EINVAL && errno != EROFS)
        || close (fd) == -1) {
      xs_error ("cannot write %s: %m", out->path);
      r = -1;
    }
  }
  else if (fsync (fd) == -1 || close (fd) == -1 || publish_output (out) == -1) {
    xs_error ("cannot write %s: %m", out->path);
    r = -1;
  }
  else {
    free (out->temp);
    out->temp = NULL;
    r = xs_fsync_parent (out->path);
  }
  xs_output_abandon (out);
  return r;
}

void
xs_output_abandon (struct xs_output *out)
{
  if (out->fd >= 0)
    close (out->fd);
  if (out->temp)
    unlink (out->temp);
  free (out->temp);
  free (out->path);
  *out = (struct xs_output) { .fd = -1 };
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

char *
xs_absolute_path (const char *path, const char *what)
{
  char *copy = strdup (path), *name, *parent = NULL, *abs = NULL;
  size_t len;

  if (copy == NULL)
    goto fail;
  /* "s/", "s//": the folder s. */
  len = strlen (copy);
  while (len > 1 && copy[len - 1] == '/')
    copy[--len] = '\0';
  name = strrchr (copy, '/');
  if (name)
    *name++ = '\0';
  else
    name = copy;
  /* ".", "..", "/": the whole path is resolved instead. */
  if (*name == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0) {
    abs = realpath (path, NULL);
    if (abs == NULL)
      goto fail;
    free (copy);
    return abs;
  }
  parent = realpath (name == copy ? "." : copy[0] ? copy : "/", NULL);
  if (parent == NULL
      || asprintf (&abs, "%s/%s", strcmp (parent, "/") ? parent : "",
                   name) == -1) {
    abs = NULL;
    goto fail;
  }
  free (parent);
  free (copy);
  return abs;
 fail:
  xs_error ("cannot find %s '%s': %m", what, path);
  free (parent);
  free (copy);
  return NULL;
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

bool
xs_process_gone (pid_t pid)
{
  char path[64], stat[512], *state;
  ssize_t n;
  int fd;

  if (pid <= 0 || (kill (pid, 0) == -1 && errno == ESRCH))
    return true;
  snprintf (path, sizeof path, "/proc/%ld/stat", (long) pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return errno == ENOENT;
  n = read (fd, stat, sizeof stat - 1);
  close (fd);
  if (n <= 0)
    return false;
  stat[n] = '\0';
  /* "PID (COMM) STATE ...": COMM may hold anything, the last ')' ends it. */
  state = strrchr (stat, ')');
  return state && state[1] == ' ' && state[2] == 'Z';
}
