/* xsnap: the present map of a clone (see presentmap.h).
 *
 * Layout: a 4096-byte header (magic "XSNPPRES", version, block size,
 * number of blocks, source snapshot id, checksum), then the bitmap.  Only
 * pages of the bitmap that gained bits since the last persist are written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/byteorder.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "base/lockorder.h"
#include "head/presentmap.h"

#define HEADER_SIZE 4096
#define PAGE_SIZE 4096
#define BITS_PER_PAGE ((uint64_t) PAGE_SIZE * 8)
#define FORMAT_VERSION 1
#define SOURCE_ID_LEN 32

static const char magic[8] = { 'X', 'S', 'N', 'P', 'P', 'R', 'E', 'S' };

struct xs_presentmap {
  struct xs_bitmap bits;        /* set: the block is in the head */
  struct xs_bitmap unsaved;     /* pages with bits not yet written */
  struct xs_bitmap copy;        /* taken by persist_begin */
  struct xs_bitmap copy_pages;  /* the pages the copy must write */
  pthread_mutex_t persist_lock; /* held from persist_begin to _end */
  int fd;
  char *path;
};

static void
encode_header (unsigned char *page, uint32_t block_size, uint64_t nblocks,
               const char *source_id)
{
  memset (page, 0, HEADER_SIZE);
  memcpy (page, magic, 8);
  xs_put_le32 (page + 8, FORMAT_VERSION);
  xs_put_le32 (page + 12, block_size);
  xs_put_le64 (page + 16, nblocks);
  snprintf ((char *) page + 24, SOURCE_ID_LEN, "%s", source_id);
  xs_put_le64 (page + 56, xs_hash64 (page, 56));
}

int
xs_presentmap_create (const char *path, uint32_t block_size,
                      uint64_t nblocks, const char *source_id)
{
  unsigned char page[HEADER_SIZE];
  int fd = open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  if (fd == -1) {
    xs_error ("cannot create present map %s: %m", path);
    return -1;
  }
  encode_header (page, block_size, nblocks, source_id);
  if (xs_full_pwrite (fd, page, HEADER_SIZE, 0) == -1
      || ftruncate (fd, (off_t) (HEADER_SIZE
                                 + xs_bitmap_bytes_for (nblocks))) == -1
      || fdatasync (fd) == -1) {
    xs_error ("cannot create present map %s: %m", path);
    close (fd);
    return -1;
  }
  close (fd);
  return 0;
}

static int
check_header (const unsigned char *page, const char *path,
              uint32_t block_size, uint64_t nblocks, const char *source_id)
{
  uint32_t version = xs_get_le32 (page + 8);

  if (memcmp (page, magic, 8) != 0
      || xs_get_le64 (page + 56) != xs_hash64 (page, 56)) {
    xs_error ("present map %s is damaged", path);
    return -1;
  }
  if (version != FORMAT_VERSION) {
    xs_error ("present map %s has version %u; this xsnap supports %d", path,
              version, FORMAT_VERSION);
    return -1;
  }
  if (xs_get_le32 (page + 12) != block_size
      || xs_get_le64 (page + 16) != nblocks) {
    xs_error ("present map %s does not match the volume's geometry", path);
    return -1;
  }
  if (strncmp ((const char *) page + 24, source_id, SOURCE_ID_LEN) != 0) {
    xs_error ("present map %s belongs to another source snapshot (an "
              "interrupted reset?): reset the volume again", path);
    return -1;
  }
  return 0;
}

void
xs_presentmap_close (struct xs_presentmap *pm)
{
  if (pm == NULL)
    return;
  if (pm->fd >= 0)
    close (pm->fd);
  xs_bitmap_free (&pm->bits);
  xs_bitmap_free (&pm->unsaved);
  xs_bitmap_free (&pm->copy);
  xs_bitmap_free (&pm->copy_pages);
  pthread_mutex_destroy (&pm->persist_lock);
  free (pm->path);
  free (pm);
}

struct xs_presentmap *
xs_presentmap_open (const char *path, uint32_t block_size, uint64_t nblocks,
                    const char *source_id)
{
  struct xs_presentmap *pm = calloc (1, sizeof *pm);
  unsigned char page[HEADER_SIZE];
  uint64_t pages = (nblocks + BITS_PER_PAGE - 1) / BITS_PER_PAGE;

  if (pm == NULL) {
    xs_error ("cannot open present map %s: %m", path);
    return NULL;
  }
  pthread_mutex_init (&pm->persist_lock, NULL);
  pm->fd = open (path, O_RDWR | O_CLOEXEC);
  pm->path = strdup (path);
  if (pm->fd == -1 || pm->path == NULL
      || xs_full_pread (pm->fd, page, HEADER_SIZE, 0) == -1) {
    xs_error ("cannot open present map %s: %m", path);
    goto fail;
  }
  if (check_header (page, path, block_size, nblocks, source_id) == -1
      || xs_bitmap_init (&pm->bits, nblocks) == -1
      || xs_bitmap_init (&pm->unsaved, pages) == -1
      || xs_bitmap_init (&pm->copy, nblocks) == -1
      || xs_bitmap_init (&pm->copy_pages, pages) == -1)
    goto fail;
  if (xs_full_pread (pm->fd, pm->bits.bytes, pm->bits.nbytes,
                     HEADER_SIZE) == -1) {
    xs_error ("cannot read present map %s: %m", path);
    goto fail;
  }
  return pm;

 fail:
  xs_presentmap_close (pm);
  return NULL;
}

bool
xs_presentmap_has (const struct xs_presentmap *pm, uint64_t block)
{
  return xs_bitmap_get (&pm->bits, block);
}

void
xs_presentmap_set (struct xs_presentmap *pm, uint64_t block)
{
  if (xs_bitmap_set_atomic (&pm->bits, block))
    xs_bitmap_mark_atomic (&pm->unsaved, block / BITS_PER_PAGE);
}

uint64_t
xs_presentmap_count (const struct xs_presentmap *pm)
{
  return xs_bitmap_count (&pm->bits);
}

const struct xs_bitmap *
xs_presentmap_bits (const struct xs_presentmap *pm)
{
  return &pm->bits;
}

int
xs_presentmap_persist_begin (struct xs_presentmap *pm)
{
  uint64_t page;

  xs_lock_take (&pm->persist_lock, XS_LOCK_PRESENTMAP, 0);
  /* Claim the unsaved pages, then copy the bits: a bit set after its
   * page was claimed marks the page again for the next persist.  Both
   * sides are sequentially consistent (see xs_bitmap_set_atomic): a
   * setter that marked a page before it was claimed has its bit seen.
   */
  xs_bitmap_clear_all (&pm->copy_pages);
  for (page = xs_bitmap_next_set (&pm->unsaved, 0); page < pm->unsaved.nbits;
       page = xs_bitmap_next_set (&pm->unsaved, page + 1)) {
    xs_bitmap_clear_atomic (&pm->unsaved, page, memory_order_seq_cst);
    xs_bitmap_set (&pm->copy_pages, page);
  }
  for (size_t i = 0; i < pm->bits.nbytes; i++)
    pm->copy.bytes[i] = atomic_load (xs_bitmap_atomic_byte (&pm->bits,
                                                            (uint64_t) i * 8));
  return 0;
}

int
xs_presentmap_persist_end (struct xs_presentmap *pm)
{
  uint64_t page;
  int r = 0;

  for (page = xs_bitmap_next_set (&pm->copy_pages, 0);
       page < pm->copy_pages.nbits && r == 0;
       page = xs_bitmap_next_set (&pm->copy_pages, page + 1)) {
    size_t offset = (size_t) (page * PAGE_SIZE);
    size_t len = pm->copy.nbytes - offset < PAGE_SIZE
      ? pm->copy.nbytes - offset : PAGE_SIZE;
    if (xs_full_pwrite (pm->fd, pm->copy.bytes + offset, len,
                        HEADER_SIZE + offset) == -1)
      r = -1;
  }
  if (r == 0 && xs_bitmap_count (&pm->copy_pages) > 0
      && fdatasync (pm->fd) == -1)
    r = -1;
  if (r == -1) {
    /* Write these pages again next time. */
    for (page = xs_bitmap_next_set (&pm->copy_pages, 0);
         page < pm->copy_pages.nbits;
         page = xs_bitmap_next_set (&pm->copy_pages, page + 1))
      xs_bitmap_mark_atomic (&pm->unsaved, page);
    xs_error ("cannot write present map %s: %m", pm->path);
  }
  xs_lock_drop (&pm->persist_lock);
  return r;
}
