/* xsnap: the writable head of a live volume (see head.h).
 *
 * The data path is kept as close to `nbdkit file` as possible: one pread or
 * pwrite on a shared fd, plus setting a bit in the dirty map, which is a
 * lock-free atomic on a byte that is usually already set.  FUA writes use
 * pwritev2 (RWF_DSYNC) so that only the request itself is made durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "head.h"
#include "head-internal.h"
#include "ownerlock.h"

static char *
head_path (const char *dir, const char *file)
{
  char *path;

  if (asprintf (&path, "%s/%s", dir, file) == -1) {
    xs_error ("cannot build a path in %s: %m", dir);
    return NULL;
  }
  return path;
}

static uint64_t
nblocks_for (uint64_t size, uint32_t block_size)
{
  return (size + block_size - 1) / block_size;
}

static int
create_data_file (const char *path, uint64_t size)
{
  int fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

  if (fd == -1) {
    xs_error ("cannot create %s: %m", path);
    return -1;
  }
  if (ftruncate (fd, (off_t) size) == -1 || fsync (fd) == -1) {
    xs_error ("cannot create a volume of %lu bytes at %s: %m",
              (unsigned long) size, path);
    close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

int
xs_head_create (const char *dir, uint64_t size, uint32_t block_size,
                uint64_t epoch)
{
  char *data = NULL, *map = NULL;
  int r = -1;

  if (mkdir (dir, 0700) == -1) {
    xs_error ("cannot create volume directory %s: %m", dir);
    return -1;
  }
  data = head_path (dir, "data");
  map = head_path (dir, "dirtymap");
  if (data == NULL || map == NULL
      || create_data_file (data, size) == -1
      || xs_dirtymap_create (map, block_size, nblocks_for (size, block_size),
                             epoch) == -1
      || xs_fsync_dir (dir) == -1
      || xs_fsync_parent (dir) == -1)
    goto out;
  r = 0;
 out:
  if (r == -1)
    xs_remove_tree (dir);
  free (data);
  free (map);
  return r;
}

static unsigned
log2_of (uint32_t n)
{
  return (unsigned) __builtin_ctz (n);
}

static void
free_head (struct xs_head *h)
{
  if (h->data_fd >= 0)
    close (h->data_fd);
  xs_owner_lock_release (h->lock_fd);
  pthread_rwlock_destroy (&h->gate);
  pthread_mutex_destroy (&h->seal_lock);
  pthread_cond_destroy (&h->seal_done);
  free (h->dir);
  free (h->name);
  free (h);
}

struct xs_head *
xs_head_open (const char *dir, const char *name, uint64_t size,
              uint32_t block_size, uint64_t epoch)
{
  struct xs_head *h;
  char *lock = NULL, *data = NULL, *map = NULL, *what = NULL;
  struct stat st;

  h = calloc (1, sizeof *h);
  if (h == NULL) {
    xs_error ("cannot open volume '%s': %m", name);
    return NULL;
  }
  h->data_fd = h->lock_fd = -1;
  pthread_rwlock_init (&h->gate, NULL);
  pthread_mutex_init (&h->seal_lock, NULL);
  pthread_cond_init (&h->seal_done, NULL);
  h->size = size;
  h->block_size = block_size;
  h->block_shift = log2_of (block_size);
  h->dir = strdup (dir);
  h->name = strdup (name);
  lock = head_path (dir, "lock");
  data = head_path (dir, "data");
  map = head_path (dir, "dirtymap");
  if (h->dir == NULL || h->name == NULL || lock == NULL || data == NULL
      || map == NULL || asprintf (&what, "volume '%s'", name) == -1) {
    xs_error ("cannot open volume '%s': %m", name);
    goto fail;
  }

  h->lock_fd = xs_owner_lock_take (lock, what);
  if (h->lock_fd == -1)
    goto fail;
  h->data_fd = open (data, O_RDWR | O_CLOEXEC);
  if (h->data_fd == -1 || fstat (h->data_fd, &st) == -1) {
    xs_error ("cannot open volume '%s': %s: %m", name, data);
    goto fail;
  }
  if ((uint64_t) st.st_size > size) {
    xs_error ("cannot open volume '%s': %s is %ld bytes, the catalog says "
              "%lu", name, data, (long) st.st_size, (unsigned long) size);
    goto fail;
  }
  if ((uint64_t) st.st_size < size
      && ftruncate (h->data_fd, (off_t) size) == -1) {
    /* An interrupted resize: the catalog already has the new size. */
    xs_error ("cannot open volume '%s': cannot complete its resize: %m",
              name);
    goto fail;
  }
  h->dirtymap = xs_dirtymap_open (map, block_size,
                                  nblocks_for (size, block_size), epoch);
  if (h->dirtymap == NULL)
    goto fail;
  free (lock);
  free (data);
  free (map);
  free (what);
  return h;

 fail:
  free (lock);
  free (data);
  free (map);
  free (what);
  free_head (h);
  return NULL;
}

/* A pending snapshot is finished by whoever started it; the head cannot
 * go away under it.
 */
static void
wait_for_seal (struct xs_head *h)
{
  pthread_mutex_lock (&h->seal_lock);
  while (__atomic_load_n (&h->seal, __ATOMIC_ACQUIRE) != NULL)
    pthread_cond_wait (&h->seal_done, &h->seal_lock);
  pthread_mutex_unlock (&h->seal_lock);
}

int
xs_head_close (struct xs_head *h)
{
  int r = 0;

  wait_for_seal (h);
  if (fdatasync (h->data_fd) == -1) {
    xs_error ("cannot sync volume '%s': %m", h->name);
    xs_dirtymap_abandon (h->dirtymap);
    r = -1;
  }
  else if (xs_dirtymap_close (h->dirtymap) == -1)
    r = -1;
  free_head (h);
  return r;
}

void
xs_head_abandon (struct xs_head *h)
{
  xs_dirtymap_abandon (h->dirtymap);
  free_head (h);
}

uint64_t
xs_head_size (const struct xs_head *h)
{
  return h->size;
}

uint32_t
xs_head_block_size (const struct xs_head *h)
{
  return h->block_size;
}

struct xs_dirtymap *
xs_head_dirtymap (struct xs_head *h)
{
  return h->dirtymap;
}

static int
check_range (struct xs_head *h, const char *op, uint32_t count,
             uint64_t offset)
{
  if (offset > h->size || count > h->size - offset) {
    xs_error ("volume '%s': %s of %u bytes at %lu is beyond the end (%lu)",
              h->name, op, count, (unsigned long) offset,
              (unsigned long) h->size);
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* Start a change of [OFFSET, OFFSET + COUNT): enter the gate, let a
 * pending snapshot seal the blocks first, mark them changed.  Every
 * begin_change is paired with end_change.
 */
static void
begin_change (struct xs_head *h, uint32_t count, uint64_t offset)
{
  uint64_t first, last;

  pthread_rwlock_rdlock (&h->gate);
  if (count == 0)
    return;
  first = offset >> h->block_shift;
  last = (offset + count - 1) >> h->block_shift;
  if (h->seal)
    xs_seal_protect (h->seal, first, last);
  xs_dirtymap_mark (h->dirtymap, first, last - first + 1);
}

static void
end_change (struct xs_head *h)
{
  pthread_rwlock_unlock (&h->gate);
}

int
xs_head_pread (struct xs_head *h, void *buf, uint32_t count, uint64_t offset)
{
  if (check_range (h, "read", count, offset) == -1)
    return -1;
  if (xs_full_pread (h->data_fd, buf, count, offset) == -1) {
    xs_error ("volume '%s': read of %u bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  return 0;
}

/* A FUA write: pwritev2 with RWF_DSYNC, retrying short writes. */
static int
pwrite_dsync (int fd, const void *buf, size_t count, uint64_t offset)
{
  const char *p = buf;

  while (count > 0) {
    struct iovec iov = { .iov_base = (void *) p, .iov_len = count };
    ssize_t r = pwritev2 (fd, &iov, 1, (off_t) offset, RWF_DSYNC);
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
xs_head_pwrite (struct xs_head *h, const void *buf, uint32_t count,
                uint64_t offset, bool fua)
{
  int r;

  if (check_range (h, "write", count, offset) == -1)
    return -1;
  begin_change (h, count, offset);
  if (fua)
    r = pwrite_dsync (h->data_fd, buf, count, offset);
  else
    r = xs_full_pwrite (h->data_fd, buf, count, offset);
  end_change (h);
  if (r == -1) {
    xs_error ("volume '%s': write of %u bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  return 0;
}

static int
sync_data (struct xs_head *h)
{
  if (fdatasync (h->data_fd) == -1) {
    xs_error ("volume '%s': sync: %m", h->name);
    return -1;
  }
  return 0;
}

static bool
unsupported (int err)
{
  return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL;
}

int
xs_head_zero (struct xs_head *h, uint32_t count, uint64_t offset,
              unsigned flags)
{
  const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  int r;

  if (check_range (h, "zero", count, offset) == -1)
    return -1;
  begin_change (h, count, offset);
  /* Deallocating is the cheapest zero and makes the range a hole again.
   * Without MAY_TRIM the range should stay allocated: ZERO_RANGE.
   */
  if (flags & XS_HEAD_MAY_TRIM)
    r = fallocate (h->data_fd, punch, (off_t) offset, count);
  else
    r = fallocate (h->data_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                   (off_t) offset, count);
  if (r == -1 && unsupported (errno) && !(flags & XS_HEAD_MAY_TRIM))
    r = fallocate (h->data_fd, punch, (off_t) offset, count);
  end_change (h);
  if (r == -1) {
    if (unsupported (errno)) {
      /* Not cheap here: the caller falls back to writing zeroes. */
      errno = ENOTSUP;
      return -1;
    }
    xs_error ("volume '%s': zero of %u bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  if ((flags & XS_HEAD_FUA) && sync_data (h) == -1)
    return -1;
  return 0;
}

int
xs_head_trim (struct xs_head *h, uint32_t count, uint64_t offset, bool fua)
{
  int r;

  if (check_range (h, "trim", count, offset) == -1)
    return -1;
  begin_change (h, count, offset);
  r = fallocate (h->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 (off_t) offset, count);
  end_change (h);
  /* Trim is advisory: where holes cannot be punched the data stays. */
  if (r == -1 && !unsupported (errno)) {
    xs_error ("volume '%s': trim of %u bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  if (fua && sync_data (h) == -1)
    return -1;
  return 0;
}

int
xs_head_flush (struct xs_head *h)
{
  /* Data first: a durable map never claims less than the durable data. */
  if (sync_data (h) == -1)
    return -1;
  return xs_dirtymap_persist (h->dirtymap);
}

int
xs_head_extents (struct xs_head *h, uint64_t offset, uint64_t count,
                 int (*fn) (uint64_t offset, uint64_t length, bool hole,
                            void *opaque),
                 void *opaque)
{
  uint64_t end = offset + count;

  if (end > h->size)
    end = h->size;
  while (offset < end) {
    off_t data = lseek (h->data_fd, (off_t) offset, SEEK_DATA);
    off_t hole;
    int r;

    if (data == -1 && errno == ENXIO)
      data = (off_t) h->size;   /* only a hole remains */
    else if (data == -1)
      goto error;
    if ((uint64_t) data > offset) {
      r = fn (offset, (uint64_t) data - offset, true, opaque);
      if (r != 0)
        return r;
      offset = (uint64_t) data;
      continue;
    }
    hole = lseek (h->data_fd, (off_t) offset, SEEK_HOLE);
    if (hole == -1)
      goto error;
    if ((uint64_t) hole > h->size)
      hole = (off_t) h->size;
    r = fn (offset, (uint64_t) hole - offset, false, opaque);
    if (r != 0)
      return r;
    offset = (uint64_t) hole;
  }
  return 0;

 error:
  xs_error ("volume '%s': cannot map extents at %lu: %m", h->name,
            (unsigned long) offset);
  return -1;
}

int
xs_head_grow (struct xs_head *h, uint64_t new_size)
{
  if (new_size < h->size) {
    xs_error ("cannot shrink volume '%s'", h->name);
    errno = EINVAL;
    return -1;
  }
  if (ftruncate (h->data_fd, (off_t) new_size) == -1 || fsync (h->data_fd) == -1) {
    xs_error ("cannot grow volume '%s' to %lu bytes: %m", h->name,
              (unsigned long) new_size);
    return -1;
  }
  if (xs_dirtymap_grow (h->dirtymap,
                        nblocks_for (new_size, h->block_size)) == -1)
    return -1;
  h->size = new_size;
  return 0;
}
