/* xsnap: a volume's bytes in a row of segment files (see segfile.h).
 *
 * The data path stays one system call per segment a request touches: a
 * descriptor per segment, opened with the head (at most 64 for the
 * largest volume), and offsets mapped by a division.  What a sync must
 * cover is a flag per segment, set after each write or fallocate and
 * cleared by the sync before its fdatasync, so that a change that lands
 * after the clear sets it again for the next sync.
 *
 * Growing and cutting change the layout only with no I/O in flight, and
 * order their steps so that a crash leaves a layout that opens: segments
 * are made in order, each only after the one before it is full, and
 * removed last first.  What a crash leaves past the size the catalog
 * records is holes, which the head gives back when it opens
 * (xs_segfile_cut).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "head/segfile.h"

struct xs_segfile {
  char *path;                   /* segment 0; NULL: unnamed segments */
  char *label;                  /* for messages */
  uint64_t segment_size;        /* every segment's but the last one's */
  uint64_t size;                /* the bytes of all segments */
  unsigned count;               /* segments, at least 1 */
  int *fd;                      /* COUNT descriptors */
  atomic_bool *written;         /* COUNT flags: changed since synced */
};

static unsigned
segments_for (uint64_t size, uint64_t segment_size)
{
  uint64_t n = size == 0 ? 1 : (size - 1) / segment_size + 1;

  return n > XS_SEGFILE_MAX_SEGMENTS ? XS_SEGFILE_MAX_SEGMENTS + 1
    : (unsigned) n;
}

/* The length of segment I of COUNT holding SIZE bytes. */
static uint64_t
segment_length (uint64_t size, uint64_t segment_size, unsigned count,
                unsigned i)
{
  return i + 1 < count ? segment_size
    : size - (uint64_t) (count - 1) * segment_size;
}

/* The name of segment I of the data at PATH. */
static char *
segment_path (const char *path, unsigned i)
{
  char *name;

  if (i == 0)
    name = strdup (path);
  else if (asprintf (&name, "%s.%u", path, i) == -1)
    name = NULL;
  if (name == NULL)
    xs_error ("cannot name segment %u of %s: %m", i, path);
  return name;
}

static int
too_many (const char *what, uint64_t size, uint64_t segment_size)
{
  xs_error ("%s: %lu bytes in segments of %lu bytes take more than %u "
            "segments", what, (unsigned long) size,
            (unsigned long) segment_size, XS_SEGFILE_MAX_SEGMENTS);
  errno = EFBIG;
  return -1;
}

/* Make segment I of PATH, LEN bytes of holes, durably.  Its descriptor,
 * or -1 (reported; nothing left behind).
 */
static int
make_segment (const char *path, unsigned i, uint64_t len)
{
  char *name = segment_path (path, i);
  int fd;

  if (name == NULL)
    return -1;
  fd = open (name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1)
    xs_error ("cannot create %s: %m", name);
  else if (ftruncate (fd, (off_t) len) == -1 || fsync (fd) == -1) {
    xs_error ("cannot make %s %lu bytes long: %m", name,
              (unsigned long) len);
    close (fd);
    unlink (name);
    fd = -1;
  }
  free (name);
  return fd;
}

/* Remove segment I of PATH (reported). */
static int
remove_segment (const char *path, unsigned i)
{
  char *name = segment_path (path, i);
  int r = 0;

  if (name == NULL)
    return -1;
  if (unlink (name) == -1) {
    xs_error ("cannot remove %s: %m", name);
    r = -1;
  }
  free (name);
  return r;
}

/* Make segments [FROM, COUNT) of PATH for SIZE bytes and close them; on a
 * failure remove those it made.
 */
static int
make_segments (const char *path, uint64_t size, uint64_t segment_size,
               unsigned from, unsigned count)
{
  unsigned i;
  int fd;

  for (i = from; i < count; i++) {
    fd = make_segment (path, i,
                       segment_length (size, segment_size, count, i));
    if (fd == -1) {
      while (i-- > from)
        remove_segment (path, i);
      return -1;
    }
    close (fd);
  }
  return 0;
}

int
xs_segfile_create (const char *path, uint64_t size, uint64_t segment_size)
{
  unsigned count = segments_for (size, segment_size);

  if (count > XS_SEGFILE_MAX_SEGMENTS)
    return too_many (path, size, segment_size);
  return make_segments (path, size, segment_size, 0, count);
}

/* How many segments of PATH exist from segment 0 on (*COUNT). */
static int
count_segments (const char *path, unsigned *count)
{
  struct stat st;
  char *name;
  unsigned i;
  int r;

  for (i = 0; i <= XS_SEGFILE_MAX_SEGMENTS; i++) {
    name = segment_path (path, i);
    if (name == NULL)
      return -1;
    r = stat (name, &st);
    if (r == -1 && (errno != ENOENT || i == 0))
      xs_error ("cannot find %s: %m", name);
    free (name);
    if (r == -1) {
      *count = i;
      return errno == ENOENT && i > 0 ? 0 : -1;
    }
  }
  xs_error ("%s has more than %u segments", path, XS_SEGFILE_MAX_SEGMENTS);
  return -1;
}

/* Cut segment 0 at PATH to nothing and then to LEN bytes: all holes. */
static int
empty_first_segment (const char *path, uint64_t len)
{
  int fd = open (path, O_RDWR | O_CLOEXEC);
  int r = -1;

  if (fd == -1)
    xs_error ("cannot open %s: %m", path);
  else if (ftruncate (fd, 0) == -1 || ftruncate (fd, (off_t) len) == -1
           || fsync (fd) == -1)
    xs_error ("cannot empty %s: %m", path);
  else
    r = 0;
  if (fd >= 0)
    close (fd);
  return r;
}

int
xs_segfile_recreate (const char *path, uint64_t size, uint64_t segment_size)
{
  unsigned old_count, count = segments_for (size, segment_size), i;

  if (count > XS_SEGFILE_MAX_SEGMENTS)
    return too_many (path, size, segment_size);
  if (count_segments (path, &old_count) == -1)
    return -1;
  for (i = old_count; i-- > 1;)
    if (remove_segment (path, i) == -1)
      return -1;
  if (empty_first_segment (path, segment_length (size, segment_size, count,
                                                 0)) == -1
      || make_segments (path, size, segment_size, 1, count) == -1)
    return -1;
  return old_count > 1 || count > 1 ? xs_fsync_parent (path) : 0;
}

static struct xs_segfile *
new_segfile (const char *path, const char *label)
{
  struct xs_segfile *sf = calloc (1, sizeof *sf);

  if (sf == NULL)
    goto fail;
  sf->label = strdup (label);
  if (sf->label == NULL || (path && (sf->path = strdup (path)) == NULL))
    goto fail;
  sf->fd = malloc ((XS_SEGFILE_MAX_SEGMENTS) * sizeof *sf->fd);
  if (sf->fd == NULL)
    goto fail;
  return sf;

 fail:
  xs_error ("%s: cannot open its data: %m", label);
  xs_segfile_close (sf);
  return NULL;
}

/* Size the arrays of SF to its COUNT segments. */
static int
fit_arrays (struct xs_segfile *sf)
{
  int *fd = realloc (sf->fd, sf->count * sizeof *fd);

  if (fd)
    sf->fd = fd;
  sf->written = calloc (sf->count, sizeof *sf->written);
  if (fd == NULL || sf->written == NULL) {
    xs_error ("%s: cannot open its data: %m", sf->label);
    return -1;
  }
  return 0;
}

/* Open the segments of SF->path into SF->fd, counting them. */
static int
open_segments (struct xs_segfile *sf)
{
  char *name;
  int fd;

  for (;;) {
    if (sf->count == XS_SEGFILE_MAX_SEGMENTS) {
      xs_error ("%s: %s has more than %u segments", sf->label, sf->path,
                XS_SEGFILE_MAX_SEGMENTS);
      return -1;
    }
    name = segment_path (sf->path, sf->count);
    if (name == NULL)
      return -1;
    fd = open (name, O_RDWR | O_CLOEXEC);
    if (fd == -1 && errno == ENOENT && sf->count > 0) {
      free (name);
      return 0;
    }
    if (fd == -1) {
      xs_error ("%s: cannot open %s: %m", sf->label, name);
      free (name);
      return -1;
    }
    free (name);
    sf->fd[sf->count++] = fd;
  }
}

/* The segment size and size of SF from its segments' lengths, checking
 * that they make a layout (segfile.h).
 */
static int
measure (struct xs_segfile *sf, uint64_t new_segment_size)
{
  struct stat st;
  uint64_t first = 0;
  unsigned i;

  for (i = 0; i < sf->count; i++) {
    if (fstat (sf->fd[i], &st) == -1) {
      xs_error ("%s: cannot look at segment %u of %s: %m", sf->label, i,
                sf->path);
      return -1;
    }
    if (i == 0) {
      first = (uint64_t) st.st_size;
      sf->segment_size = sf->count > 1 ? first
        : first > new_segment_size ? first : new_segment_size;
      if (sf->segment_size == 0)
        break;
    }
    else if ((uint64_t) st.st_size > sf->segment_size
             || (i + 1 < sf->count
                 && (uint64_t) st.st_size != sf->segment_size))
      break;
    sf->size = (uint64_t) i * sf->segment_size + (uint64_t) st.st_size;
  }
  if (i < sf->count) {
    xs_error ("%s: its data is damaged: segment %u of %s is %lu bytes, "
              "the first of %u is %lu", sf->label, i, sf->path,
              (unsigned long) st.st_size, sf->count, (unsigned long) first);
    return -1;
  }
  return 0;
}

struct xs_segfile *
xs_segfile_open (const char *path, uint64_t segment_size, const char *label)
{
  struct xs_segfile *sf = new_segfile (path, label);

  if (sf == NULL)
    return NULL;
  if (open_segments (sf) == -1 || measure (sf, segment_size) == -1
      || fit_arrays (sf) == -1) {
    xs_segfile_close (sf);
    return NULL;
  }
  return sf;
}

struct xs_segfile *
xs_segfile_open_unnamed (const char *dir, uint64_t size,
                         uint64_t segment_size, const char *label)
{
  unsigned count = segments_for (size, segment_size);
  struct xs_segfile *sf;
  int fd, err;

  if (count > XS_SEGFILE_MAX_SEGMENTS) {
    errno = EFBIG;
    return NULL;
  }
  sf = new_segfile (NULL, label);
  if (sf == NULL)
    return NULL;
  sf->segment_size = segment_size;
  sf->size = size;
  while (sf->count < count) {
    fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
      sf->fd[sf->count++] = fd;
    if (fd == -1
        || ftruncate (fd, (off_t) segment_length (size, segment_size, count,
                                                  sf->count - 1)) == -1)
      goto fail;
  }
  if (fit_arrays (sf) == -1)
    goto fail;
  return sf;

 fail:
  err = errno;
  xs_segfile_close (sf);
  errno = err;
  return NULL;
}

void
xs_segfile_close (struct xs_segfile *sf)
{
  if (sf == NULL)
    return;
  for (unsigned i = 0; i < sf->count; i++)
    close (sf->fd[i]);
  free (sf->fd);
  free (sf->written);
  free (sf->path);
  free (sf->label);
  free (sf);
}

uint64_t
xs_segfile_size (const struct xs_segfile *sf)
{
  return sf->size;
}

uint64_t
xs_segfile_segment_size (const struct xs_segfile *sf)
{
  return sf->segment_size;
}

unsigned
xs_segfile_count (const struct xs_segfile *sf)
{
  return sf->count;
}

/* ----- I/O ----- */

static int
check_range (const struct xs_segfile *sf, uint64_t offset, uint64_t len)
{
  if (offset > sf->size || len > sf->size - offset) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

/* The segment holding OFFSET; *AT is OFFSET in it and *N how much of LEN
 * bytes from OFFSET it holds.
 */
static unsigned
piece (const struct xs_segfile *sf, uint64_t offset, uint64_t len,
       uint64_t *at, uint64_t *n)
{
  unsigned i = (unsigned) (offset / sf->segment_size);

  *at = offset - (uint64_t) i * sf->segment_size;
  *n = sf->segment_size - *at < len ? sf->segment_size - *at : len;
  return i;
}

/* After a change of segment I has reached its file (see the top). */
static void
note_written (struct xs_segfile *sf, unsigned i)
{
  if (!atomic_load (&sf->written[i]))
    atomic_store (&sf->written[i], true);
}

/* Each function below goes through a request piece by piece: DONE bytes
 * of it behind, the next N in segment I from AT.
 */

int
xs_segfile_pread (struct xs_segfile *sf, void *buf, size_t count,
                  uint64_t offset)
{
  uint64_t done, at, n;
  unsigned i;

  if (check_range (sf, offset, count) == -1)
    return -1;
  for (done = 0; done < count; done += n) {
    i = piece (sf, offset + done, count - done, &at, &n);
    if (xs_full_pread (sf->fd[i], (char *) buf + done, n, at) == -1)
      return -1;
  }
  return 0;
}

int
xs_segfile_pwrite (struct xs_segfile *sf, const void *buf, size_t count,
                   uint64_t offset, int flags)
{
  uint64_t done, at, n;
  unsigned i;
  int r;

  if (check_range (sf, offset, count) == -1)
    return -1;
  for (done = 0; done < count; done += n) {
    i = piece (sf, offset + done, count - done, &at, &n);
    r = xs_full_pwritev2 (sf->fd[i], (const char *) buf + done, n, at, flags);
    note_written (sf, i);
    if (r == -1)
      return -1;
  }
  return 0;
}

int
xs_segfile_fallocate (struct xs_segfile *sf, int mode, uint64_t offset,
                      uint64_t len)
{
  uint64_t done, at, n;
  unsigned i;
  int r;

  if (check_range (sf, offset, len) == -1)
    return -1;
  for (done = 0; done < len; done += n) {
    i = piece (sf, offset + done, len - done, &at, &n);
    r = fallocate (sf->fd[i], mode, (off_t) at, (off_t) n);
    note_written (sf, i);
    if (r == -1)
      return -1;
  }
  return 0;
}

off_t
xs_segfile_seek (struct xs_segfile *sf, uint64_t offset, int whence)
{
  uint64_t at, n, base;
  unsigned i;
  off_t r;

  if (offset >= sf->size) {
    errno = ENXIO;
    return -1;
  }
  for (i = piece (sf, offset, 0, &at, &n); i < sf->count; i++, at = 0) {
    base = (uint64_t) i * sf->segment_size;
    r = lseek (sf->fd[i], (off_t) at, whence);
    if (r == -1 && errno != ENXIO)
      return -1;
    if (r == -1)
      continue;                 /* no data after AT in this segment */
    /* A hole found at a segment's end is where the next one starts. */
    if (whence == SEEK_DATA || (uint64_t) r < sf->segment_size
        || i + 1 == sf->count)
      return (off_t) (base + (uint64_t) r);
  }
  if (whence == SEEK_HOLE)
    return (off_t) sf->size;
  errno = ENXIO;
  return -1;
}

bool
xs_segfile_is_hole (struct xs_segfile *sf, uint64_t offset, uint64_t len)
{
  uint64_t done, at, n;
  unsigned i;
  off_t data;

  if (check_range (sf, offset, len) == -1)
    return false;
  /* Only the segments of the range: a search on past them would cost a
   * call for every segment up to the next data.
   */
  for (done = 0; done < len; done += n) {
    i = piece (sf, offset + done, len - done, &at, &n);
    data = lseek (sf->fd[i], (off_t) at, SEEK_DATA);
    if (data == -1 ? errno != ENXIO : (uint64_t) data < at + n)
      return false;
  }
  return true;
}

int
xs_segfile_sync (struct xs_segfile *sf)
{
  int r = 0, err = 0;

  for (unsigned i = 0; i < sf->count; i++)
    if (atomic_exchange (&sf->written[i], false)
        && fdatasync (sf->fd[i]) == -1) {
      if (r == 0)
        err = errno;
      r = -1;
      atomic_store (&sf->written[i], true);
    }
  if (r == -1)
    errno = err;
  return r;
}

int
xs_segfile_copy (struct xs_segfile *from, struct xs_segfile *to,
                 uint64_t offset, uint64_t len)
{
  uint64_t at_in, n_in, at_out, n;
  unsigned i, o;
  loff_t in, out;
  ssize_t r;

  if (check_range (from, offset, len) == -1
      || check_range (to, offset, len) == -1)
    return -1;
  while (len > 0) {
    /* The part within one segment of each. */
    i = piece (from, offset, len, &at_in, &n_in);
    o = piece (to, offset, n_in, &at_out, &n);
    in = (loff_t) at_in;
    out = (loff_t) at_out;
    offset += n;
    len -= n;
    while (n > 0) {
      r = copy_file_range (from->fd[i], &in, to->fd[o], &out, n, 0);
      if (r <= 0) {
        note_written (to, o);
        if (r == 0)
          errno = EIO;          /* the source ended early */
        return -1;
      }
      n -= (uint64_t) r;
    }
    note_written (to, o);
  }
  return 0;
}

void
xs_segfile_writeback (struct xs_segfile *sf, uint64_t offset, uint64_t count,
                      unsigned flags, bool drop)
{
  uint64_t done, at, n;
  unsigned i;

  if (offset >= sf->size)
    return;
  if (count > sf->size - offset)
    count = sf->size - offset;
  for (done = 0; done < count; done += n) {
    i = piece (sf, offset + done, count - done, &at, &n);
    (void) sync_file_range (sf->fd[i], (off_t) at, (off_t) n, flags);
    if (drop)
      (void) posix_fadvise (sf->fd[i], (off_t) at, (off_t) n,
                            POSIX_FADV_DONTNEED);
  }
}

/* ----- Growing and giving back ----- */

/* Set segment I of SF to LEN bytes, durably. */
static int
set_length (struct xs_segfile *sf, unsigned i, uint64_t len)
{
  if (ftruncate (sf->fd[i], (off_t) len) == -1 || fsync (sf->fd[i]) == -1) {
    xs_error ("%s: cannot make segment %u of %s %lu bytes long: %m",
              sf->label, i, sf->path, (unsigned long) len);
    return -1;
  }
  return 0;
}

/* Undo what a grow of SF did: segments [SF->count, MADE) in FD go, and the
 * last old one gets LAST_LEN bytes again.  Failures are reported and
 * left for the next open to give back (xs_segfile_cut).
 */
static void
undo_grow (struct xs_segfile *sf, int *fd, unsigned made, uint64_t last_len)
{
  unsigned i;

  for (i = made; i-- > sf->count;) {
    close (fd[i]);
    remove_segment (sf->path, i);
  }
  if (made > sf->count)
    (void) xs_fsync_parent (sf->path);
  (void) set_length (sf, sf->count - 1, last_len);
}

int
xs_segfile_grow (struct xs_segfile *sf, uint64_t new_size)
{
  uint64_t S = sf->segment_size;
  uint64_t last_len = segment_length (sf->size, S, sf->count, sf->count - 1);
  unsigned count = segments_for (new_size, S), made;
  atomic_bool *written;
  int *fd;

  if (new_size <= sf->size || sf->path == NULL) {
    if (new_size == sf->size)
      return 0;
    xs_error ("%s: cannot grow its data from %lu to %lu bytes", sf->label,
              (unsigned long) sf->size, (unsigned long) new_size);
    errno = EINVAL;
    return -1;
  }
  if (count > XS_SEGFILE_MAX_SEGMENTS)
    return too_many (sf->label, new_size, S);
  fd = malloc (count * sizeof *fd);
  written = calloc (count, sizeof *written);
  if (fd == NULL || written == NULL) {
    xs_error ("%s: cannot grow its data: %m", sf->label);
    goto fail;
  }
  memcpy (fd, sf->fd, sf->count * sizeof *fd);
  for (unsigned i = 0; i < sf->count; i++)
    written[i] = atomic_load (&sf->written[i]);

  /* The last segment first, up to full if others follow: a layout whose
   * segments before the last are full is what opening reads.
   */
  if (set_length (sf, sf->count - 1,
                  segment_length (new_size, S, count, sf->count - 1)) == -1) {
    (void) set_length (sf, sf->count - 1, last_len);
    goto fail;
  }
  for (made = sf->count; made < count; made++) {
    fd[made] = make_segment (sf->path, made,
                             segment_length (new_size, S, count, made));
    if (fd[made] == -1)
      break;
  }
  if (made < count || (count > sf->count
                       && xs_fsync_parent (sf->path) == -1)) {
    undo_grow (sf, fd, made, last_len);
    goto fail;
  }
  free (sf->fd);
  free (sf->written);
  sf->fd = fd;
  sf->written = written;
  sf->count = count;
  sf->size = new_size;
  return 0;

 fail:
  free (fd);
  free (written);
  return -1;
}

int
xs_segfile_cut (struct xs_segfile *sf, uint64_t size)
{
  unsigned count = segments_for (size, sf->segment_size);
  bool removed = false;
  off_t data;

  if (size >= sf->size || sf->path == NULL) {
    if (size == sf->size)
      return 0;
    xs_error ("%s: cannot cut its data from %lu back to %lu bytes",
              sf->label, (unsigned long) sf->size, (unsigned long) size);
    errno = EINVAL;
    return -1;
  }
  data = xs_segfile_seek (sf, size, SEEK_DATA);
  if (data != -1 || errno != ENXIO) {
    if (data == -1)
      xs_error ("%s: cannot look for data past %lu bytes: %m", sf->label,
                (unsigned long) size);
    else
      xs_error ("%s: its data is %lu bytes, more than its size (%lu), and "
                "holds data at %lu: it is not cut back",
                sf->label, (unsigned long) sf->size, (unsigned long) size,
                (unsigned long) data);
    errno = EEXIST;
    return -1;
  }
  /* The last segment first: a crash leaves the segments before it. */
  while (sf->count > count) {
    if (remove_segment (sf->path, sf->count - 1) == -1)
      return -1;
    close (sf->fd[--sf->count]);
    sf->size = (uint64_t) sf->count * sf->segment_size;
    removed = true;
  }
  if (removed && xs_fsync_parent (sf->path) == -1)
    return -1;
  if (set_length (sf, count - 1, segment_length (size, sf->segment_size,
                                                 count, count - 1)) == -1)
    return -1;
  sf->size = size;
  return 0;
}
