/* xsnap: the persistent changed-block map (see dirtymap.h for the why).
 *
 * File layout (docs/FORMAT.md, "Dirty map"): a 4 KiB header page, then the
 * bitmap, one bit per block, LSB first.  Only the header decides whether
 * the map can be trusted:
 *
 *   open by owner:  flags = 0 (not clean), written and synced before the
 *                   first write is accepted;
 *   persist:        changed bitmap pages, then the header (generation + 1),
 *                   then fdatasync;
 *   clean close:    all pages, the bitmap checksum, flags = CLEAN, fdatasync.
 *
 * A process killed at any point leaves flags without CLEAN, so the next
 * owner knows.  A torn header fails its checksum and counts as damaged.
 *
 * A clean map says nothing about when it was written: one put back from
 * an earlier moment looks as clean as the latest.  So each owner's open
 * is a new *session*, numbered by the catalog: the owner counts it up in
 * the catalog (binding->start_session) before the file says "open" and
 * before the first write is accepted, and the file carries it from then
 * on.  A map is trusted only if it carries the session the
 * catalog last recorded; one from an earlier session (rolled back, or the
 * clean map of before a crash) does not.  A missing file is recreated,
 * untrusted.
 *
 * To keep flushes cheap on large volumes, a second bitmap records which
 * 4 KiB pages of the map changed since they were last written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "head/dirtymap.h"
#include "base/byteorder.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/lockorder.h"

#define HEADER_SIZE 4096
#define PAGE_SIZE 4096
#define BITS_PER_PAGE ((uint64_t) PAGE_SIZE * 8)
#define FORMAT_VERSION 2
/* Version 1 had no session; its header checksum is at 56, not 64. */
#define FORMAT_VERSION_NO_SESSION 1
#define FLAG_CLEAN 1u
#define FLAG_UNTRUSTED 2u
#define KNOWN_FLAGS (FLAG_CLEAN | FLAG_UNTRUSTED)

static const char magic[8] = { 'X', 'S', 'N', 'P', 'D', 'M', 'A', 'P' };

struct header {
  uint32_t version;
  uint32_t flags;
  uint32_t block_size;
  uint32_t doubt;
  uint64_t nblocks;
  uint64_t epoch;
  uint64_t generation;
  uint64_t bitmap_checksum;
  uint64_t session;             /* the catalog's number of the open */
  bool has_session;             /* false for a version 1 header */
};

struct xs_dirtymap {
  int fd;
  char *path;
  struct header header;         /* as last written; under persist_lock */
  struct xs_bitmap bits;        /* the map itself */
  struct xs_bitmap unsaved;     /* one bit per PAGE_SIZE page of bits */
  pthread_mutex_t persist_lock; /* serializes writers of the file */
};

const char *
xs_dirtymap_doubt_text (enum xs_dirtymap_doubt doubt)
{
  switch (doubt) {
  case XS_DIRTYMAP_TRUSTED:
    return "trusted";
  case XS_DIRTYMAP_UNCLEAN_STOP:
    return "the volume was not closed cleanly (unclean stop): changes after "
      "its last flush may be missing from the map";
  case XS_DIRTYMAP_DAMAGED:
    return "the map file is damaged";
  case XS_DIRTYMAP_WRONG_EPOCH:
    return "the map belongs to another snapshot epoch";
  case XS_DIRTYMAP_WRONG_GEOMETRY:
    return "the map does not match the volume's size or block size";
  case XS_DIRTYMAP_MISSING:
    return "the map file was missing (recreated)";
  case XS_DIRTYMAP_ROLLED_BACK:
    return "the map is not the one the catalog last recorded (put back "
      "from an earlier moment)";
  }
  return "unknown";
}

static void
encode_header (const struct header *h, unsigned char page[HEADER_SIZE])
{
  memset (page, 0, HEADER_SIZE);
  memcpy (page, magic, 8);
  xs_put_le32 (page + 8, h->version);
  xs_put_le32 (page + 12, h->flags);
  xs_put_le32 (page + 16, h->block_size);
  xs_put_le32 (page + 20, h->doubt);
  xs_put_le64 (page + 24, h->nblocks);
  xs_put_le64 (page + 32, h->epoch);
  xs_put_le64 (page + 40, h->generation);
  xs_put_le64 (page + 48, h->bitmap_checksum);
  xs_put_le64 (page + 56, h->session);
  xs_put_le64 (page + 64, xs_hash64 (page, 64));
}

/* Returns 0, 1 if the header is damaged (not reported: a damaged map is a
 * state, not an error), or -1 for a newer version (reported).
 */
static int
decode_header (const unsigned char page[HEADER_SIZE], const char *path,
               struct header *h)
{
  /* From version 2 on the checksum covers bytes 0-63 and is at 64. */
  size_t covered = xs_get_le32 (page + 8) == FORMAT_VERSION_NO_SESSION
    ? 56 : 64;

  if (memcmp (page, magic, 8) != 0
      || xs_get_le64 (page + covered) != xs_hash64 (page, covered))
    return 1;
  h->version = xs_get_le32 (page + 8);
  h->has_session = h->version != FORMAT_VERSION_NO_SESSION;
  h->session = h->has_session ? xs_get_le64 (page + 56) : 0;
  h->flags = xs_get_le32 (page + 12);
  h->block_size = xs_get_le32 (page + 16);
  h->doubt = xs_get_le32 (page + 20);
  h->nblocks = xs_get_le64 (page + 24);
  h->epoch = xs_get_le64 (page + 32);
  h->generation = xs_get_le64 (page + 40);
  h->bitmap_checksum = xs_get_le64 (page + 48);
  if (h->version > FORMAT_VERSION) {
    xs_error ("dirty map %s has format version %u, newer than this xsnap "
              "supports (%d)", path, h->version, FORMAT_VERSION);
    return -1;
  }
  if (h->version == 0 || (h->flags & ~KNOWN_FLAGS) != 0
      || h->doubt > XS_DIRTYMAP_ROLLED_BACK)
    return 1;
  return 0;
}

static int
write_header (int fd, const char *path, const struct header *h)
{
  unsigned char page[HEADER_SIZE];

  encode_header (h, page);
  if (xs_full_pwrite (fd, page, HEADER_SIZE, 0) == -1) {
    xs_error ("cannot write dirty map %s: %m", path);
    return -1;
  }
  return 0;
}

static int
sync_file (int fd, const char *path)
{
  if (fdatasync (fd) == -1) {
    xs_error ("cannot sync dirty map %s: %m", path);
    return -1;
  }
  return 0;
}

int
xs_dirtymap_create (const char *path, uint32_t block_size, uint64_t nblocks,
                    uint64_t epoch, uint64_t session)
{
  struct header h = {
    .version = FORMAT_VERSION, .flags = FLAG_CLEAN, .block_size = block_size,
    .doubt = XS_DIRTYMAP_TRUSTED, .nblocks = nblocks, .epoch = epoch,
    .session = session, .has_session = true,
  };
  size_t nbytes = xs_bitmap_bytes_for (nblocks);
  int fd;

  fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1) {
    xs_error ("cannot create dirty map %s: %m", path);
    return -1;
  }
  /* The bitmap of an empty map is all zero: a sparse file says so. */
  h.bitmap_checksum = 0;
  {
    void *zeros = calloc (1, nbytes ? nbytes : 1);
    if (zeros == NULL) {
      xs_error ("cannot create dirty map %s: %m", path);
      goto fail;
    }
    h.bitmap_checksum = xs_hash64 (zeros, nbytes);
    free (zeros);
  }
  if (ftruncate (fd, (off_t) (HEADER_SIZE + nbytes)) == -1) {
    xs_error ("cannot create dirty map %s: %m", path);
    goto fail;
  }
  if (write_header (fd, path, &h) == -1 || sync_file (fd, path) == -1)
    goto fail;
  close (fd);
  return 0;

 fail:
  close (fd);
  unlink (path);
  return -1;
}

/* Load the bitmap part of an open file into BITS (new, so all zero).  A
 * short file reads as zeroes past its end; the caller decides whether to
 * trust.  Only the file's data is read (SEEK_DATA): the map of a large
 * volume is mostly holes (16 MiB at 64 TiB, a few pages written), and
 * what is not read is never faulted in.
 */
static int
load_bits (int fd, const char *path, struct xs_bitmap *bits)
{
  struct stat st;
  off_t end, from, data, hole;

  if (fstat (fd, &st) == -1)
    goto failed;
  end = st.st_size < HEADER_SIZE ? HEADER_SIZE : st.st_size;
  if (end > HEADER_SIZE + (off_t) bits->nbytes)
    end = HEADER_SIZE + (off_t) bits->nbytes;
  for (from = HEADER_SIZE; from < end; from = hole) {
    data = lseek (fd, from, SEEK_DATA);
    if (data == -1 && errno == ENXIO)
      break;                    /* nothing but holes from here */
    if (data == -1) {           /* no SEEK_DATA here: read the rest */
      data = from;
      hole = end;
    }
    else if (data >= end)
      break;
    else {
      hole = lseek (fd, data, SEEK_HOLE);
      if (hole == -1 || hole > end)
        hole = end;
    }
    if (xs_full_pread (fd, bits->bytes + (data - HEADER_SIZE),
                       (size_t) (hole - data), (uint64_t) data) == -1)
      goto failed;
  }
  return 0;

failed:
  xs_error ("cannot read dirty map %s: %m", path);
  return -1;
}

/* Is H of the session the catalog last recorded?  A version 1 map has no
 * session: it is accepted while the catalog has recorded none (the first
 * open after the upgrade, which then binds it), so that upgrading does
 * not make every volume's next snapshot read every block.
 */
static bool
same_session (const struct header *h, uint64_t session)
{
  return h->has_session ? h->session == session : session == 0;
}

/* Decide how far an opened map can be trusted. */
static enum xs_dirtymap_doubt
judge (const struct header *h, int damaged, const struct xs_bitmap *bits,
       uint32_t block_size, uint64_t nblocks, uint64_t epoch,
       uint64_t session)
{
  if (damaged)
    return XS_DIRTYMAP_DAMAGED;
  if (h->flags & FLAG_UNTRUSTED)
    return h->doubt != XS_DIRTYMAP_TRUSTED ? h->doubt : XS_DIRTYMAP_DAMAGED;
  if (!(h->flags & FLAG_CLEAN))
    return XS_DIRTYMAP_UNCLEAN_STOP;
  /* A map with fewer blocks is one of a volume that has since grown (or
   * whose grow was interrupted): the new blocks are unchanged.
   */
  if (h->block_size != block_size || h->nblocks > nblocks)
    return XS_DIRTYMAP_WRONG_GEOMETRY;
  if (h->epoch != epoch)
    return XS_DIRTYMAP_WRONG_EPOCH;
  if (!same_session (h, session))
    return XS_DIRTYMAP_ROLLED_BACK;
  if (xs_hash64 (bits->bytes, xs_bitmap_bytes_for (h->nblocks))
      != h->bitmap_checksum)
    return XS_DIRTYMAP_DAMAGED;
  return XS_DIRTYMAP_TRUSTED;
}

static void
free_map (struct xs_dirtymap *dm)
{
  if (dm->fd >= 0)
    close (dm->fd);
  xs_bitmap_free (&dm->bits);
  xs_bitmap_free (&dm->unsaved);
  pthread_mutex_destroy (&dm->persist_lock);
  free (dm->path);
  free (dm);
}

static uint64_t
pages_for (uint64_t nblocks)
{
  return (nblocks + BITS_PER_PAGE - 1) / BITS_PER_PAGE;
}

/* Open PATH for reading and writing; a missing file is created empty
 * (*MISSING set), which reads as no header at all.
 */
static int
open_map_file (const char *path, bool *missing)
{
  int fd = open (path, O_RDWR | O_CLOEXEC);

  *missing = false;
  if (fd == -1 && errno == ENOENT) {
    *missing = true;
    fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 && xs_fsync_parent (path) == -1) {
      close (fd);
      return -1;
    }
  }
  if (fd == -1)
    xs_error ("cannot open dirty map %s: %m", path);
  return fd;
}

/* The catalog's session (*PREVIOUS) and the one this open starts,
 * recorded in the catalog before the file or anything else says so (see
 * the top of this file).  Without a catalog row (a staged head) the
 * session stays.
 */
static int
start_session (const struct xs_dirtymap_binding *binding, uint64_t *previous,
               uint64_t *session)
{
  *previous = *session = binding->session;
  if (binding->start_session == NULL)
    return 0;
  if (binding->start_session (previous, binding->opaque) == -1)
    return -1;
  *session = *previous + 1;
  return 0;
}

struct xs_dirtymap *
xs_dirtymap_open (const char *path, uint32_t block_size, uint64_t nblocks,
                  const struct xs_dirtymap_binding *binding)
{
  struct xs_dirtymap *dm;
  unsigned char page[HEADER_SIZE];
  struct header old = { 0 };
  enum xs_dirtymap_doubt doubt;
  uint64_t previous, session;
  bool missing;
  int damaged;

  dm = calloc (1, sizeof *dm);
  if (dm == NULL) {
    xs_error ("cannot open dirty map %s: %m", path);
    return NULL;
  }
  dm->fd = -1;
  pthread_mutex_init (&dm->persist_lock, NULL);
  dm->path = strdup (path);
  if (dm->path == NULL) {
    xs_error ("cannot open dirty map %s: %m", path);
    goto fail;
  }
  dm->fd = open_map_file (path, &missing);
  if (dm->fd == -1)
    goto fail;
  if (xs_bitmap_init (&dm->bits, nblocks) == -1
      || xs_bitmap_init (&dm->unsaved, pages_for (nblocks)) == -1)
    goto fail;

  if (xs_full_pread (dm->fd, page, HEADER_SIZE, 0) == -1)
    damaged = 1;                /* too short to hold a header */
  else
    damaged = decode_header (page, path, &old);
  if (damaged == -1 || load_bits (dm->fd, path, &dm->bits) == -1)
    goto fail;
  if (start_session (binding, &previous, &session) == -1)
    goto fail;
  doubt = missing ? XS_DIRTYMAP_MISSING
    : judge (&old, damaged, &dm->bits, block_size, nblocks, binding->epoch,
             previous);

  /* From here on the file says "open": only a clean close undoes that. */
  dm->header = (struct header) {
    .version = FORMAT_VERSION,
    .flags = doubt != XS_DIRTYMAP_TRUSTED ? FLAG_UNTRUSTED : 0,
    .block_size = block_size, .doubt = doubt, .nblocks = nblocks,
    .epoch = binding->epoch, .generation = damaged ? 0 : old.generation + 1,
    .session = session, .has_session = true,
  };
  if (ftruncate (dm->fd, (off_t) (HEADER_SIZE + dm->bits.nbytes)) == -1) {
    xs_error ("cannot size dirty map %s: %m", path);
    goto fail;
  }
  if (write_header (dm->fd, path, &dm->header) == -1
      || sync_file (dm->fd, path) == -1)
    goto fail;
  if (doubt != XS_DIRTYMAP_TRUSTED)
    xs_debug ("dirty map %s is not trusted: %s", path,
              xs_dirtymap_doubt_text (doubt));
  return dm;

 fail:
  free_map (dm);
  return NULL;
}

void
xs_dirtymap_mark (struct xs_dirtymap *dm, uint64_t first, uint64_t count)
{
  uint64_t block, end = first + count;

  if (end > dm->bits.nbits)
    end = dm->bits.nbits;
  for (block = first; block < end; block++)
    if (xs_bitmap_set_atomic (&dm->bits, block))
      xs_bitmap_mark_atomic (&dm->unsaved, block / BITS_PER_PAGE);
}

/* Write every page whose unsaved bit is set.  A page's bit is cleared
 * before the page is copied out, so a bit set concurrently is either in
 * this write or marks the page for the next one.  Holding persist_lock.
 */
static int
write_unsaved_pages (struct xs_dirtymap *dm)
{
  uint64_t page = xs_bitmap_next_set (&dm->unsaved, 0);

  while (page < dm->unsaved.nbits) {
    size_t offset = (size_t) (page * PAGE_SIZE);
    size_t len = dm->bits.nbytes - offset < PAGE_SIZE
      ? dm->bits.nbytes - offset : PAGE_SIZE;

    xs_bitmap_clear_atomic (&dm->unsaved, page, memory_order_seq_cst);
    if (xs_full_pwrite (dm->fd, dm->bits.bytes + offset, len,
                        HEADER_SIZE + offset) == -1) {
      xs_bitmap_mark_atomic (&dm->unsaved, page);
      xs_error ("cannot write dirty map %s: %m", dm->path);
      return -1;
    }
    page = xs_bitmap_next_set (&dm->unsaved, page + 1);
  }
  return 0;
}

int
xs_dirtymap_persist (struct xs_dirtymap *dm)
{
  int r = -1;

  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  if (xs_bitmap_next_set (&dm->unsaved, 0) == dm->unsaved.nbits) {
    r = 0;                      /* nothing new since the last persist */
    goto out;
  }
  dm->header.generation++;
  if (write_unsaved_pages (dm) == 0
      && write_header (dm->fd, dm->path, &dm->header) == 0
      && sync_file (dm->fd, dm->path) == 0)
    r = 0;
 out:
  xs_lock_drop (&dm->persist_lock);
  return r;
}

/* Both bitmaps of DM to NBLOCKS (shrinking never fails). */
static int
resize_bits (struct xs_dirtymap *dm, uint64_t nblocks)
{
  uint64_t old = dm->bits.nbits;

  if (xs_bitmap_resize (&dm->bits, nblocks) == -1)
    return -1;
  if (xs_bitmap_resize (&dm->unsaved, pages_for (nblocks)) == -1) {
    (void) xs_bitmap_resize (&dm->bits, old);
    return -1;
  }
  return 0;
}

/* The file of DM to NBLOCKS, durably; on a failure (reported) as it was,
 * as far as it will still go.
 */
static int
resize_file (struct xs_dirtymap *dm, uint64_t nblocks)
{
  struct header old = dm->header;

  if (ftruncate (dm->fd, (off_t) (HEADER_SIZE
                                  + xs_bitmap_bytes_for (nblocks))) == -1) {
    xs_error ("cannot resize dirty map %s: %m", dm->path);
    return -1;
  }
  dm->header.nblocks = nblocks;
  dm->header.generation++;
  if (write_header (dm->fd, dm->path, &dm->header) == 0
      && sync_file (dm->fd, dm->path) == 0)
    return 0;
  dm->header = old;
  if (ftruncate (dm->fd, (off_t) (HEADER_SIZE
                                  + xs_bitmap_bytes_for (old.nblocks))) == 0)
    (void) write_header (dm->fd, dm->path, &dm->header);
  return -1;
}

int
xs_dirtymap_resize (struct xs_dirtymap *dm, uint64_t nblocks)
{
  uint64_t old = dm->bits.nbits;
  bool grow = nblocks > old;
  int r = -1;

  /* What may fail in memory before the file, what cannot after it. */
  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  if (grow && resize_bits (dm, nblocks) == -1)
    goto out;
  r = resize_file (dm, nblocks);
  (void) resize_bits (dm, r == 0 ? nblocks : old);
 out:
  xs_lock_drop (&dm->persist_lock);
  return r;
}

int
xs_dirtymap_reset (struct xs_dirtymap *dm, uint64_t epoch)
{
  int r = -1;

  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  xs_bitmap_clear_all (&dm->bits);
  xs_bitmap_clear_all (&dm->unsaved);
  dm->header.epoch = epoch;
  dm->header.doubt = XS_DIRTYMAP_TRUSTED;
  dm->header.flags = 0;
  dm->header.generation++;
  /* Punching the bitmap out is both the fastest way to zero it and makes
   * an empty map cost no disk.
   */
  if (fallocate (dm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                 HEADER_SIZE, (off_t) dm->bits.nbytes) == -1
      && xs_full_pwrite (dm->fd, dm->bits.bytes, dm->bits.nbytes,
                         HEADER_SIZE) == -1) {
    xs_error ("cannot reset dirty map %s: %m", dm->path);
    goto out;
  }
  if (write_header (dm->fd, dm->path, &dm->header) == 0
      && sync_file (dm->fd, dm->path) == 0)
    r = 0;
 out:
  xs_lock_drop (&dm->persist_lock);
  return r;
}

/* Mark unsaved every page of the map that has a bit set in BITS. */
static void
mark_pages_with_bits (struct xs_dirtymap *dm, const struct xs_bitmap *bits)
{
  uint64_t block = xs_bitmap_next_set (bits, 0);

  while (block < bits->nbits) {
    uint64_t page = block / BITS_PER_PAGE;

    xs_bitmap_mark_atomic (&dm->unsaved, page);
    block = xs_bitmap_next_set (bits, (page + 1) * BITS_PER_PAGE);
  }
}

int
xs_dirtymap_take (struct xs_dirtymap *dm, struct xs_bitmap *taken)
{
  struct xs_bitmap fresh;

  if (xs_bitmap_init (&fresh, dm->bits.nbits) == -1)
    return -1;
  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  *taken = dm->bits;
  dm->bits = fresh;
  /* The file still has the old bits where they were set: those pages,
   * and only those, must be rewritten (the others are zero in both).
   */
  mark_pages_with_bits (dm, taken);
  xs_lock_drop (&dm->persist_lock);
  return 0;
}

void
xs_dirtymap_merge (struct xs_dirtymap *dm, const struct xs_bitmap *bits)
{
  uint64_t first = xs_bitmap_next_set (bits, 0);

  while (first < bits->nbits) {
    uint64_t end = xs_bitmap_next_clear (bits, first);
    xs_dirtymap_mark (dm, first, end - first);
    first = end < bits->nbits ? xs_bitmap_next_set (bits, end) : end;
  }
}

/* The file's pages equal the bits except where a page is marked unsaved
 * (opening loads them, reset punches both to zero, take marks the pages
 * it changed), so a new epoch writes those pages and the header.
 */
int
xs_dirtymap_commit_epoch (struct xs_dirtymap *dm, uint64_t epoch)
{
  int r = -1;

  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  dm->header.epoch = epoch;
  dm->header.doubt = XS_DIRTYMAP_TRUSTED;
  dm->header.flags &= ~FLAG_UNTRUSTED;
  dm->header.generation++;
  if (write_unsaved_pages (dm) == 0
      && write_header (dm->fd, dm->path, &dm->header) == 0
      && sync_file (dm->fd, dm->path) == 0)
    r = 0;
  xs_lock_drop (&dm->persist_lock);
  return r;
}

enum xs_dirtymap_doubt
xs_dirtymap_doubt (const struct xs_dirtymap *dm)
{
  return (enum xs_dirtymap_doubt) dm->header.doubt;
}

const struct xs_bitmap *
xs_dirtymap_bits (const struct xs_dirtymap *dm)
{
  return &dm->bits;
}

int
xs_dirtymap_close (struct xs_dirtymap *dm)
{
  int r = -1;

  xs_lock_take (&dm->persist_lock, XS_LOCK_DIRTYMAP, 0);
  /* The pages not marked unsaved are in the file as they are in memory
   * (see xs_dirtymap_commit_epoch), so the checksum below covers the file.
   */
  if (write_unsaved_pages (dm) == -1 || sync_file (dm->fd, dm->path) == -1)
    goto out;
  dm->header.flags |= FLAG_CLEAN;
  dm->header.generation++;
  dm->header.bitmap_checksum = xs_hash64 (dm->bits.bytes, dm->bits.nbytes);
  if (write_header (dm->fd, dm->path, &dm->header) == 0
      && sync_file (dm->fd, dm->path) == 0)
    r = 0;
 out:
  xs_lock_drop (&dm->persist_lock);
  free_map (dm);
  return r;
}

void
xs_dirtymap_abandon (struct xs_dirtymap *dm)
{
  free_map (dm);
}

int
xs_dirtymap_read (const char *path, uint64_t session,
                  struct xs_dirtymap_view *view)
{
  unsigned char page[HEADER_SIZE];
  struct header h = { 0 };
  int fd, damaged, r = -1;

  memset (view, 0, sizeof *view);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1 && errno == ENOENT) {
    view->doubt = XS_DIRTYMAP_MISSING;
    return xs_bitmap_init (&view->bits, 0);
  }
  if (fd == -1) {
    xs_error ("cannot open dirty map %s: %m", path);
    return -1;
  }
  if (xs_full_pread (fd, page, HEADER_SIZE, 0) == -1)
    damaged = 1;
  else
    damaged = decode_header (page, path, &h);
  if (damaged == -1)
    goto out;
  if (damaged) {
    view->doubt = XS_DIRTYMAP_DAMAGED;
    r = xs_bitmap_init (&view->bits, 0);
    goto out;
  }
  view->version = h.version;
  view->block_size = h.block_size;
  view->nblocks = h.nblocks;
  view->epoch = h.epoch;
  view->generation = h.generation;
  view->session = h.session;
  view->has_session = h.has_session;
  view->clean = (h.flags & FLAG_CLEAN) != 0;
  view->doubt = (h.flags & FLAG_UNTRUSTED)
    ? (h.doubt ? (enum xs_dirtymap_doubt) h.doubt : XS_DIRTYMAP_DAMAGED)
    : XS_DIRTYMAP_TRUSTED;
  if (xs_bitmap_init (&view->bits, h.nblocks) == -1
      || load_bits (fd, path, &view->bits) == -1)
    goto out;
  if (view->clean && view->doubt == XS_DIRTYMAP_TRUSTED
      && xs_hash64 (view->bits.bytes, view->bits.nbytes) != h.bitmap_checksum)
    view->doubt = XS_DIRTYMAP_DAMAGED;
  if (view->doubt == XS_DIRTYMAP_TRUSTED && !same_session (&h, session))
    view->doubt = XS_DIRTYMAP_ROLLED_BACK;
  r = 0;
 out:
  close (fd);
  if (r == -1)
    xs_bitmap_free (&view->bits);
  return r;
}

void
xs_dirtymap_view_free (struct xs_dirtymap_view *view)
{
  xs_bitmap_free (&view->bits);
}
