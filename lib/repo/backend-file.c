/* xsnap: the local-directory backend (file:///path).
 *
 * Each object is a file under the root directory, at the path given by its
 * key.  Writes go to a temporary file in the target's directory which is
 * then linked (put-if-absent) or renamed (put) into place, so readers see
 * whole objects or nothing and concurrent writers of one key, in any
 * process, cannot tear it.  Put-if-absent (chunks, pages: most objects)
 * writes an unnamed file (O_TMPFILE) and names it with linkat, which
 * costs the directory one entry; elsewhere, and for a put that replaces,
 * the temporary file has a name (".tmp.*", never listed).  Everything is
 * relative to one directory fd, so the object is safe to use from many
 * threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "repo/backend-impl.h"
#include "base/error.h"
#include "base/fileio.h"

#define TEMP_PREFIX ".tmp."
#define TEMP_PREFIX_LEN 5

struct file_backend {
  int root_fd;
  char *root_path;              /* for messages */
};

/* ----- URL and root directory ----- */

/* Decode %XX escapes of a URL path into a malloc'd string. */
static char *
decode_url_path (const char *url, const char *path)
{
  size_t len = strcspn (path, "?#");
  char *out;

  if (path[len] != '\0') {
    xs_error ("unsupported backend URL '%s': file URLs take no query "
              "or fragment", url);
    return NULL;
  }
  out = xs_backend_url_decode (path, len);
  if (out == NULL && errno == EINVAL)
    xs_error ("unsupported backend URL '%s': bad %%-escape in the path",
              url);
  else if (out == NULL)
    xs_error ("cannot allocate path: %m");
  return out;
}

/* "//" [ "localhost" ] "/absolute/path" -> "/absolute/path". */
static char *
file_url_to_path (const char *url, const char *location)
{
  const char *host = location + 2, *path;
  size_t host_len;

  if (strncmp (location, "//", 2) != 0
      || (path = strchr (host, '/')) == NULL) {
    xs_error ("unsupported backend URL '%s': want file:///absolute/path",
              url);
    return NULL;
  }
  host_len = path - host;
  if (host_len != 0
      && !(host_len == 9 && strncmp (host, "localhost", 9) == 0)) {
    xs_error ("unsupported backend URL '%s': a file URL names a local "
              "path, not host '%.*s' (want file:///absolute/path)",
              url, (int) host_len, host);
    return NULL;
  }
  return decode_url_path (url, path);
}

/* mkdir -p, for the root directory. */
static int
make_directories (const char *path)
{
  char *copy = strdup (path), *slash;

  if (copy == NULL) {
    xs_error ("cannot allocate path: %m");
    return -1;
  }
  for (slash = strchr (copy + 1, '/'); ; slash = strchr (slash + 1, '/')) {
    if (slash)
      *slash = '\0';
    if (mkdir (copy, 0755) == -1 && errno != EEXIST) {
      xs_error ("cannot create directory %s: %m", copy);
      free (copy);
      return -1;
    }
    if (slash == NULL)
      break;
    *slash = '/';
  }
  free (copy);
  return 0;
}

static int
file_open (const char *url, const char *location, void **impl)
{
  struct file_backend *fb;
  char *path = file_url_to_path (url, location);

  if (path == NULL)
    return -1;
  if (make_directories (path) == -1) {
    free (path);
    return -1;
  }
  fb = malloc (sizeof *fb);
  if (fb == NULL) {
    xs_error ("cannot allocate backend: %m");
    free (path);
    return -1;
  }
  fb->root_path = path;
  fb->root_fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fb->root_fd == -1) {
    xs_error ("cannot open directory %s: %m", path);
    free (path);
    free (fb);
    return -1;
  }
  *impl = fb;
  return 0;
}

/* A new repository's directory may be made, but not its parents: a
 * mistyped or unmounted path must not grow a tree from the root down.
 */
static int
file_check_new (const char *url, const char *location)
{
  char *path = file_url_to_path (url, location), *slash;
  struct stat st;
  int r = 0;

  if (path == NULL)
    return -1;
  while ((slash = strrchr (path, '/')) != NULL && slash[1] == '\0'
         && slash != path)
    *slash = '\0';             /* trailing slashes */
  if (stat (path, &st) == 0 && S_ISDIR (st.st_mode))
    goto out;                   /* exists: nothing to make */
  slash = strrchr (path, '/');
  if (slash == path)
    slash++;                    /* "/dir": the parent is "/" */
  *slash = '\0';
  if (stat (path, &st) == -1 || !S_ISDIR (st.st_mode)) {
    xs_error ("cannot use %s for a new repository: its parent directory "
              "%s does not exist (create it first)", url, path);
    r = -1;
  }
 out:
  free (path);
  return r;
}

static void
file_close (void *impl)
{
  struct file_backend *fb = impl;

  close (fb->root_fd);
  free (fb->root_path);
  free (fb);
}

/* ----- Writing ----- */

/* The directory part of key (or "." for a top-level key), into dir, and
 * the file name.
 */
static const char *
split_key (const char *key, char dir[XS_BACKEND_KEY_MAX + 1])
{
  const char *slash = strrchr (key, '/');

  if (slash == NULL) {
    strcpy (dir, ".");
    return key;
  }
  memcpy (dir, key, slash - key);
  dir[slash - key] = '\0';
  return slash + 1;
}

/* Create the directories of dir (relative to the root) one by one.  When
 * durable, a directory that is new has its parent synced so its entry
 * survives a crash.
 */
static int
make_key_directories (struct file_backend *fb, char *dir, bool durable)
{
  char *slash = dir;

  for (;;) {
    slash = strchr (slash, '/');
    if (slash)
      *slash = '\0';
    if (mkdirat (fb->root_fd, dir, 0755) == 0) {
      if (durable) {
        char parent[XS_BACKEND_KEY_MAX + 1];
        int parent_fd;

        split_key (dir, parent);
        parent_fd = openat (fb->root_fd, parent,
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent_fd == -1 || fsync (parent_fd) == -1) {
          xs_error ("cannot sync directory %s/%s: %m", fb->root_path, parent);
          if (parent_fd >= 0)
            close (parent_fd);
          return -1;
        }
        close (parent_fd);
      }
    }
    else if (errno != EEXIST) {
      xs_error ("cannot create directory %s/%s: %m", fb->root_path, dir);
      return -1;
    }
    if (slash == NULL)
      return 0;
    *slash++ = '/';
  }
}

/* Open the directory that holds key, creating it if needed. */
static int
open_key_directory (struct file_backend *fb, const char *key, bool durable,
                    const char **name)
{
  char dir[XS_BACKEND_KEY_MAX + 1];
  int dir_fd;

  *name = split_key (key, dir);
  dir_fd = openat (fb->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd == -1 && errno == ENOENT) {
    if (make_key_directories (fb, dir, durable) == -1)
      return -1;
    dir_fd = openat (fb->root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (dir_fd == -1)
    xs_error ("cannot open directory %s/%s: %m", fb->root_path, dir);
  return dir_fd;
}

/* Create a new temporary file in dir_fd, named ".tmp.<random>". */
static int
create_temp (struct file_backend *fb, int dir_fd, const char *key,
             char name[TEMP_PREFIX_LEN + 17])
{
  int attempt;

  for (attempt = 0; attempt < 16; attempt++) {
    uint64_t random_bits;
    int fd;

    if (getrandom (&random_bits, sizeof random_bits, 0)
        != (ssize_t) sizeof random_bits) {
      xs_error ("cannot write %s/%s: getrandom: %m", fb->root_path, key);
      return -1;
    }
    snprintf (name, TEMP_PREFIX_LEN + 17, TEMP_PREFIX "%016llx",
              (unsigned long long) random_bits);
    fd = openat (dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 0644);
    if (fd >= 0 || errno != EEXIST) {
      if (fd == -1)
        xs_error ("cannot create a temporary file for %s/%s: %m",
                  fb->root_path, key);
      return fd;
    }
  }
  xs_error ("cannot create a temporary file for %s/%s: too many collisions",
            fb->root_path, key);
  return -1;
}

/* Write data to a new temporary file in dir_fd. */
static int
write_temp (struct file_backend *fb, int dir_fd, const char *key,
            const void *data, size_t len, bool durable,
            char temp[TEMP_PREFIX_LEN + 17])
{
  int fd = create_temp (fb, dir_fd, key, temp);

  if (fd == -1)
    return -1;
  if (xs_full_write (fd, data, len) == -1
      || (durable && fsync (fd) == -1)) {
    xs_error ("cannot write %s/%s: %m", fb->root_path, key);
    close (fd);
    unlinkat (dir_fd, temp, 0);
    return -1;
  }
  /* Unsynced: start writing it back now (without waiting), so that the
   * sync that must come before anything refers to it finds little left.
   */
  if (!durable)
    sync_file_range (fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  if (close (fd) == -1) {
    xs_error ("cannot write %s/%s: %m", fb->root_path, key);
    unlinkat (dir_fd, temp, 0);
    return -1;
  }
  return 0;
}

/* An empty file where a non-empty object is being put is what a crash
 * leaves of an object written with durable = false (the name reached the
 * disk, the data did not).  No real object is replaced by it.
 */
static bool
is_torn_object (const struct stat *st, size_t len)
{
  return S_ISREG (st->st_mode) && st->st_size == 0 && len > 0;
}

/* Move temp to name, without replacing an existing object.  Returns 1
 * stored, 0 present, -1 error.  temp is gone afterwards either way.
 */
static int
publish_if_absent (struct file_backend *fb, int dir_fd, const char *temp,
                   const char *name, const char *key, size_t len)
{
  struct stat st;
  int r;

  /* link() is atomic and refuses to replace, on every filesystem with
   * hard links; renameat2 (RENAME_NOREPLACE) covers the others.
   */
  if (linkat (dir_fd, temp, dir_fd, name, 0) == 0)
    r = 1;
  else if (errno == EEXIST)
    r = 0;
  else if (errno == EPERM || errno == EOPNOTSUPP || errno == EMLINK) {
    if (renameat2 (dir_fd, temp, dir_fd, name, RENAME_NOREPLACE) == 0)
      return 1;
    r = errno == EEXIST ? 0 : -1;
  }
  else
    r = -1;
  if (r == -1)
    xs_error ("cannot store %s/%s: %m", fb->root_path, key);
  if (r == 0 && fstatat (dir_fd, name, &st, 0) == 0
      && is_torn_object (&st, len)) {
    xs_debug ("replacing empty (torn) object %s/%s", fb->root_path, key);
    if (renameat (dir_fd, temp, dir_fd, name) == 0)
      return 1;
  }
  unlinkat (dir_fd, temp, 0);
  return r;
}

static int
publish_replace (struct file_backend *fb, int dir_fd, const char *temp,
                 const char *name, const char *key)
{
  if (renameat (dir_fd, temp, dir_fd, name) == -1) {
    xs_error ("cannot store %s/%s: %m", fb->root_path, key);
    unlinkat (dir_fd, temp, 0);
    return -1;
  }
  return 1;
}

/* Make an object that already exists durable (it may have been put with
 * durable = false by someone else who has not synced yet).
 */
static int
sync_existing (struct file_backend *fb, const char *key)
{
  int fd = openat (fb->root_fd, key, O_RDONLY | O_CLOEXEC);

  if (fd == -1 || fsync (fd) == -1) {
    xs_error ("cannot sync %s/%s: %m", fb->root_path, key);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

/* Put-if-absent through an unnamed file (O_TMPFILE) that linkat names:
 * the directory gains the object's entry and nothing else (no temporary
 * name made and removed), and a crash leaves no temporary file behind.
 * Returns 1 stored, 0 present, -1 error (reported), or 2 if this file
 * system (or a missing /proc) cannot do it: the caller goes the long way.
 */
static int
put_unnamed (struct file_backend *fb, int dir_fd, const char *name,
             const char *key, const void *data, size_t len, bool durable)
{
  char path[32];
  int fd = openat (dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  int r;

  if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR
                   || errno == EINVAL))
    return 2;
  if (fd == -1 || xs_full_write (fd, data, len) == -1
      || (durable && fsync (fd) == -1)) {
    xs_error ("cannot write %s/%s: %m", fb->root_path, key);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  /* Unsynced: start writing it back now, as write_temp does. */
  if (!durable)
    sync_file_range (fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  if (linkat (AT_FDCWD, path, dir_fd, name, AT_SYMLINK_FOLLOW) == 0)
    r = 1;
  else if (errno == EEXIST)
    r = 0;
  else if (errno == ENOENT || errno == EPERM || errno == EOPNOTSUPP)
    r = 2;
  else {
    xs_error ("cannot store %s/%s: %m", fb->root_path, key);
    r = -1;
  }
  if (close (fd) == -1 && r == 1) {
    xs_error ("cannot write %s/%s: %m", fb->root_path, key);
    r = -1;
  }
  return r;
}

static int
file_put (void *impl, const char *key, const void *data, size_t len,
          bool durable, bool if_absent)
{
  struct file_backend *fb = impl;
  char temp[TEMP_PREFIX_LEN + 17];
  const char *name;
  struct stat st;
  bool absent = true;
  int dir_fd, r;

  /* Fast path for content-addressed objects: most are already there. */
  if (if_absent && fstatat (fb->root_fd, key, &st, 0) == 0) {
    if (is_torn_object (&st, len))
      absent = false;           /* replaced the long way */
    else if (durable && sync_existing (fb, key) == -1)
      return -1;
    else
      return 0;
  }

  dir_fd = open_key_directory (fb, key, durable, &name);
  if (dir_fd == -1)
    return -1;
  r = if_absent && absent
    ? put_unnamed (fb, dir_fd, name, key, data, len, durable) : 2;
  if (r != 2)
    goto synced;
  if (write_temp (fb, dir_fd, key, data, len, durable, temp) == -1) {
    close (dir_fd);
    return -1;
  }
  if (if_absent)
    r = publish_if_absent (fb, dir_fd, temp, name, key, len);
  else
    r = publish_replace (fb, dir_fd, temp, name, key);
 synced:
  if (r == 0 && durable && sync_existing (fb, key) == -1)
    r = -1;
  if (durable && r >= 0 && fsync (dir_fd) == -1) {
    xs_error ("cannot sync the directory of %s/%s: %m", fb->root_path, key);
    r = -1;
  }
  close (dir_fd);
  return r;
}

/* ----- Reading ----- */

static int
read_all (int fd, void *data, size_t len)
{
  char *p = data;
  off_t offset = 0;

  while (len > 0) {
    ssize_t r = pread (fd, p, len, offset);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = EIO;              /* the file shrank while we read it */
      return -1;
    }
    p += r;
    offset += r;
    len -= r;
  }
  return 0;
}

/* Open key for reading and check that it is a regular file of a sane
 * size.  Returns 0 with *fd and *size set, 1 if the key does not exist
 * (no error reported), -1 with an error.
 */
static int
open_object (struct file_backend *fb, const char *key, int *fd,
             size_t *size)
{
  struct stat st;

  *fd = openat (fb->root_fd, key, O_RDONLY | O_CLOEXEC);
  if (*fd == -1) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 1;
    xs_error ("cannot read %s/%s: %m", fb->root_path, key);
    return -1;
  }
  if (fstat (*fd, &st) == -1) {
    xs_error ("cannot read %s/%s: %m", fb->root_path, key);
    close (*fd);
    return -1;
  }
  if (!S_ISREG (st.st_mode) || (uintmax_t) st.st_size > SIZE_MAX / 2) {
    xs_error ("cannot read %s/%s: not a regular file of a sane size",
              fb->root_path, key);
    close (*fd);
    errno = EIO;
    return -1;
  }
  *size = st.st_size;
  return 0;
}

static int
file_get (void *impl, const char *key, void **data, size_t *len)
{
  struct file_backend *fb = impl;
  size_t size;
  void *buf;
  int fd, r = open_object (fb, key, &fd, &size);

  if (r != 0)
    return r;
  buf = malloc (size > 0 ? size : 1);
  if (buf == NULL || read_all (fd, buf, size) == -1) {
    xs_error ("cannot read %s/%s: %m", fb->root_path, key);
    free (buf);
    close (fd);
    return -1;
  }
  close (fd);
  *data = buf;
  *len = size;
  return 0;
}

/* Fill the buffers of where from the start of fd. */
static int
read_all_placed (int fd, struct xs_backend_place *where)
{
  struct iovec *iov = where->iov;
  int count = where->count;
  off_t offset = 0;

  while (count > 0 && iov->iov_len == 0) {
    iov++;
    count--;
  }
  while (count > 0) {
    ssize_t r = preadv (fd, iov, count, offset);

    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (r == 0) {
      errno = EIO;              /* the file shrank while we read it */
      return -1;
    }
    offset += r;
    while (count > 0 && (size_t) r >= iov->iov_len) {
      r -= iov->iov_len;
      iov++;
      count--;
    }
    if (count > 0) {
      iov->iov_base = (char *) iov->iov_base + r;
      iov->iov_len -= r;
    }
  }
  return 0;
}

static int
file_get_placed (void *impl, const char *key, xs_backend_place_fn place,
                 void *opaque)
{
  struct file_backend *fb = impl;
  struct xs_backend_place where;
  size_t size;
  int fd, saved_errno, r = open_object (fb, key, &fd, &size);

  if (r != 0)
    return r;
  if (xs_backend_call_place (key, size, place, opaque, &where) == -1)
    r = -1;
  else if (read_all_placed (fd, &where) == -1) {
    xs_error ("cannot read %s/%s: %m", fb->root_path, key);
    r = -1;
  }
  saved_errno = errno;
  close (fd);
  errno = saved_errno;
  return r;
}

static int
file_exists (void *impl, const char *key)
{
  struct file_backend *fb = impl;
  struct stat st;

  if (fstatat (fb->root_fd, key, &st, 0) == 0)
    return S_ISREG (st.st_mode) ? 1 : 0;
  if (errno == ENOENT || errno == ENOTDIR)
    return 0;
  xs_error ("cannot check %s/%s: %m", fb->root_path, key);
  return -1;
}

static int
file_delete (void *impl, const char *key)
{
  struct file_backend *fb = impl;

  if (unlinkat (fb->root_fd, key, 0) == 0
      || errno == ENOENT || errno == ENOTDIR)
    return 0;
  xs_error ("cannot delete %s/%s: %m", fb->root_path, key);
  return -1;
}

static int
file_sync (void *impl)
{
  struct file_backend *fb = impl;

  if (syncfs (fb->root_fd) == -1) {
    xs_error ("cannot sync %s: %m", fb->root_path);
    return -1;
  }
  return 0;
}

/* ----- Walking the tree ----- */

/* What a walk does with each file: objects (valid keys) and temporary
 * files.  A non-zero return stops the walk.
 */
struct walker {
  struct file_backend *fb;
  int (*object) (struct walker *w, const char *key);
  int (*temp) (struct walker *w, int dir_fd, const char *name,
               const char *key);
  xs_backend_list_fn fn;
  void *opaque;
  time_t cutoff;
  long removed;
};

static int walk_directory (struct walker *w, int dir_fd, char *key,
                           size_t key_len);

/* The type of an entry, asking the filesystem when readdir does not say. */
static unsigned char
entry_type (int dir_fd, const struct dirent *d)
{
  struct stat st;

  if (d->d_type != DT_UNKNOWN)
    return d->d_type;
  if (fstatat (dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
    return DT_UNKNOWN;
  if (S_ISDIR (st.st_mode))
    return DT_DIR;
  if (S_ISREG (st.st_mode))
    return DT_REG;
  return DT_UNKNOWN;
}

static int
walk_subdirectory (struct walker *w, int dir_fd, const char *name,
                   char *key, size_t key_len)
{
  int sub_fd = openat (dir_fd, name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

  if (sub_fd == -1) {
    if (errno == ENOENT)        /* deleted while we walked */
      return 0;
    xs_error ("cannot open directory %s/%s: %m", w->fb->root_path, key);
    return -1;
  }
  return walk_directory (w, sub_fd, key, key_len);
}

static int
walk_entry (struct walker *w, int dir_fd, const struct dirent *d,
            char *key, size_t key_len)
{
  size_t name_len = strlen (d->d_name);
  size_t new_len = key_len + (key_len > 0) + name_len;
  unsigned char type;
  int r = 0;

  if (strcmp (d->d_name, ".") == 0 || strcmp (d->d_name, "..") == 0)
    return 0;
  if (new_len > XS_BACKEND_KEY_MAX)
    return 0;                   /* cannot be a key */
  if (key_len > 0)
    key[key_len] = '/';
  memcpy (key + key_len + (key_len > 0), d->d_name, name_len + 1);

  type = entry_type (dir_fd, d);
  if (strncmp (d->d_name, TEMP_PREFIX, TEMP_PREFIX_LEN) == 0) {
    if (type == DT_REG && w->temp)
      r = w->temp (w, dir_fd, d->d_name, key);
  }
  else if (xs_backend_key_problem (key) == NULL) {
    if (type == DT_DIR)
      r = walk_subdirectory (w, dir_fd, d->d_name, key, new_len);
    else if (type == DT_REG && w->object)
      r = w->object (w, key);
  }
  key[key_len] = '\0';
  return r;
}

/* Walk the directory dir_fd (which this function closes), whose key
 * prefix is key[0..key_len).
 */
static int
walk_directory (struct walker *w, int dir_fd, char *key, size_t key_len)
{
  DIR *dir = fdopendir (dir_fd);
  struct dirent *d;
  int r = 0;

  if (dir == NULL) {
    xs_error ("cannot list %s/%s: %m", w->fb->root_path, key);
    close (dir_fd);
    return -1;
  }
  for (;;) {
    errno = 0;
    d = readdir (dir);
    if (d == NULL) {
      if (errno != 0) {
        xs_error ("cannot list %s/%s: %m", w->fb->root_path, key);
        r = -1;
      }
      break;
    }
    r = walk_entry (w, dirfd (dir), d, key, key_len);
    if (r != 0)
      break;
  }
  closedir (dir);
  return r;
}

/* Walk the folder prefix ("" for everything).  A missing folder is empty. */
static int
walk_folder (struct walker *w, const char *prefix)
{
  char key[XS_BACKEND_KEY_MAX + 2];
  int dir_fd;

  snprintf (key, sizeof key, "%s", prefix);
  dir_fd = openat (w->fb->root_fd, prefix[0] ? prefix : ".",
                   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd == -1) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    xs_error ("cannot list %s/%s: %m", w->fb->root_path, prefix);
    return -1;
  }
  return walk_directory (w, dir_fd, key, strlen (key));
}

static int
list_object (struct walker *w, const char *key)
{
  return w->fn (key, w->opaque);
}

static int
file_list (void *impl, const char *prefix, xs_backend_list_fn fn,
           void *opaque)
{
  struct walker w = {
    .fb = impl, .object = list_object, .fn = fn, .opaque = opaque,
  };

  return walk_folder (&w, prefix);
}

static int
remove_if_stale (struct walker *w, int dir_fd, const char *name,
                 const char *key)
{
  struct stat st;

  if (fstatat (dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
    return 0;                   /* finished or removed meanwhile */
  if (st.st_mtime >= w->cutoff)
    return 0;
  if (unlinkat (dir_fd, name, 0) == -1) {
    if (errno == ENOENT)
      return 0;
    xs_error ("cannot remove %s/%s: %m", w->fb->root_path, key);
    return -1;
  }
  w->removed++;
  return 0;
}

static long
file_remove_stale_temps (void *impl, unsigned older_than_seconds)
{
  struct walker w = {
    .fb = impl, .temp = remove_if_stale,
    .cutoff = time (NULL) - (time_t) older_than_seconds,
  };

  if (walk_folder (&w, "") != 0)
    return -1;
  return w.removed;
}

const struct xs_backend_ops xs_backend_file_ops = {
  .scheme = "file",
  .open = file_open,
  .check_new = file_check_new,
  .close = file_close,
  .put = file_put,
  .get = file_get,
  .get_placed = file_get_placed,
  .exists = file_exists,
  .list = file_list,
  .delete = file_delete,
  .sync = file_sync,
  .remove_stale_temps = file_remove_stale_temps,
};
