/* xsnap: changed-block maps (see changemap.h).
 *
 * Binary form, version 1 (all little-endian):
 *   0  8  magic "XSNPBMAP"
 *   8  4  version (1)
 *  12  4  flags: bit 0 trusted, bit 1 live
 *  16  4  block size
 *  20  4  reserved, zero
 *  24  8  volume size in bytes
 *  32  8  number of blocks
 *  40  n  bitmap, ceil (blocks / 8) bytes, bit i = block i, LSB first
 *  40+n 8 XXH3-64 of all preceding bytes
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/changemap.h"
#include "base/byteorder.h"
#include "access/access.h"
#include "base/error.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "repo/snapreader.h"
#include "catalog/snapshot.h"

#define FORMAT_VERSION 1
#define HEADER_LEN 40
#define FLAG_TRUSTED 1u
#define FLAG_LIVE 2u
#define MAX_BLOCKS (UINT64_C (1) << 34)

static const char magic[8] = { 'X', 'S', 'N', 'P', 'B', 'M', 'A', 'P' };

void
xs_changemap_clear (struct xs_changemap *map)
{
  xs_bitmap_free (&map->bits);
  memset (map, 0, sizeof *map);
}

static int
copy_bits (struct xs_bitmap *to, const struct xs_bitmap *from)
{
  if (xs_bitmap_init (to, from->nbits) == -1)
    return -1;
  memcpy (to->bytes, from->bytes, from->nbytes);
  return 0;
}

/* The volume is served by another process: read its file. */
static int
read_live (struct xs_store *store, const struct xs_volume *vol,
           struct xs_changemap *map)
{
  struct xs_dirtymap_view view;
  char *dir = xs_volume_dir (store, vol), *path = NULL;
  int r = -1;

  if (dir == NULL || asprintf (&path, "%s/dirtymap", dir) == -1) {
    xs_error ("cannot read the map of volume '%s': %m", vol->name);
    goto out;
  }
  if (xs_dirtymap_read (path, vol->dirtymap_session, &view) == -1)
    goto out;
  map->doubt = view.doubt;
  map->live = true;
  map->bits = view.bits;        /* take ownership */
  if (map->bits.nbits < (vol->size + vol->block_size - 1) / vol->block_size
      && xs_bitmap_resize (&map->bits, (vol->size + vol->block_size - 1)
                           / vol->block_size) == -1)
    goto out;
  r = 0;
 out:
  free (dir);
  free (path);
  return r;
}

int
xs_changemap_of_volume (struct xs_store *store, const struct xs_volume *vol,
                        struct xs_changemap *map)
{
  struct xs_head *head;
  int r;

  memset (map, 0, sizeof *map);
  map->size = vol->size;
  map->block_size = vol->block_size;
  if (xs_volume_in_use (store, vol) == 1) {
    r = read_live (store, vol, map);
    if (r == -1)
      xs_changemap_clear (map);
    return r;
  }

  head = xs_volume_open_head (store, vol);
  if (head == NULL)
    return -1;
  map->doubt = xs_dirtymap_doubt (xs_head_dirtymap (head));
  r = copy_bits (&map->bits, xs_dirtymap_bits (xs_head_dirtymap (head)));
  if (xs_head_close (head) == -1)
    r = -1;
  if (r == -1)
    xs_changemap_clear (map);
  return r;
}

/* Load the manifest of snapshot SPEC of SCOPE. */
static struct xs_manifest *
load_snapshot (struct xs_store *store, const struct xs_scope *scope,
               const char *spec)
{
  struct xs_snapshot snap;
  struct xs_manifest *m = NULL;

  if (xs_access_find_snapshot (store, scope, spec, "xsnap:ReadSnapshot",
                               false, &snap) != 0)
    return NULL;
  if (strcmp (snap.status, "available") != 0)
    xs_error ("snapshot %s is still %s", spec, snap.status);
  else
    m = xs_snapshot_load_manifest (store, snap.account, snap.region,
                                   snap.id);
  xs_snapshot_clear (&snap);
  return m;
}

static int
mark_run (uint64_t first, uint64_t count, void *opaque)
{
  xs_bitmap_set_range (opaque, first, count);
  return 0;
}

int
xs_changemap_of_snapshots (struct xs_store *store,
                           const struct xs_scope *scope,
                           const char *spec_a, const char *spec_b,
                           struct xs_changemap *map)
{
  struct xs_manifest *a, *b = NULL;
  int r = -1;

  memset (map, 0, sizeof *map);
  a = load_snapshot (store, scope, spec_a);
  if (a == NULL || (b = load_snapshot (store, scope, spec_b)) == NULL)
    goto out;
  if (a->size != b->size || a->block_size != b->block_size) {
    xs_error ("cannot compare %s and %s: they differ in size or block size",
              spec_a, spec_b);
    goto out;
  }
  map->size = a->size;
  map->block_size = a->block_size;
  map->doubt = XS_DIRTYMAP_TRUSTED;
  if (xs_bitmap_init (&map->bits, a->nblocks) == -1
      || xs_manifest_diff (a, b, mark_run, &map->bits) != 0)
    goto out;
  r = 0;
 out:
  if (r == -1)
    xs_changemap_clear (map);
  xs_manifest_free (a);
  xs_manifest_free (b);
  return r;
}

/* A reader of snapshot SPEC, and the repository it reads from. */
static struct xs_snapreader *
open_reader (struct xs_store *store, const struct xs_scope *scope,
             const char *spec, struct xs_repo **repo)
{
  struct xs_manifest *m = load_snapshot (store, scope, spec);
  struct xs_snapreader *reader = NULL;

  *repo = xs_store_repo (store, scope->account, scope->region);
  if (m && *repo)
    reader = xs_snapreader_open (*repo, m, NULL, spec); /* takes m */
  else
    xs_manifest_free (m);
  return reader;
}

int
xs_changemap_verify (struct xs_store *store, const struct xs_scope *scope,
                     const char *spec_a, const char *spec_b,
                     const struct xs_changemap *map,
                     uint64_t *missed, uint64_t *needless,
                     void (*progress) (uint64_t done, uint64_t total,
                                       void *opaque),
                     void *opaque)
{
  struct xs_repo *repo_a = NULL, *repo_b = NULL;
  struct xs_snapreader *a, *b;
  void *buf_a = malloc (map->block_size), *buf_b = malloc (map->block_size);
  uint64_t block, nblocks = map->bits.nbits;
  int r = -1;

  *missed = *needless = 0;
  a = open_reader (store, scope, spec_a, &repo_a);
  b = a ? open_reader (store, scope, spec_b, &repo_b) : NULL;
  if (buf_a == NULL || buf_b == NULL) {
    xs_error ("cannot verify the map: %m");
    goto out;
  }
  if (a == NULL || b == NULL)
    goto out;
  for (block = 0; block < nblocks; block++) {
    uint64_t offset = block * map->block_size;
    size_t len = map->size - offset < map->block_size
      ? (size_t) (map->size - offset) : map->block_size;
    bool marked = xs_bitmap_get (&map->bits, block), same;

    if (xs_snapreader_read_block (a, block, buf_a) == -1
        || xs_snapreader_read_block (b, block, buf_b) == -1)
      goto out;
    same = memcmp (buf_a, buf_b, len) == 0;
    if (!same && !marked)
      ++*missed;
    else if (same && marked)
      ++*needless;
    if (progress && block % 256 == 0)
      progress (block, nblocks, opaque);
  }
  if (progress)
    progress (nblocks, nblocks, opaque);
  r = 0;
 out:
  xs_snapreader_close (a);
  xs_snapreader_close (b);
  xs_repo_close (repo_a);
  xs_repo_close (repo_b);
  free (buf_a);
  free (buf_b);
  return r;
}

uint64_t
xs_changemap_blocks (const struct xs_changemap *map)
{
  return xs_bitmap_count (&map->bits);
}

uint64_t
xs_changemap_bytes (const struct xs_changemap *map)
{
  uint64_t bytes = xs_bitmap_count (&map->bits) * map->block_size;
  uint64_t nblocks = map->bits.nbits;

  /* A short last block counts for what it holds. */
  if (nblocks > 0 && xs_bitmap_get (&map->bits, nblocks - 1)
      && map->size % map->block_size != 0)
    bytes -= map->block_size - map->size % map->block_size;
  return bytes;
}

int
xs_changemap_encode (const struct xs_changemap *map, void **data,
                     size_t *len)
{
  size_t nbytes = map->bits.nbytes, total = HEADER_LEN + nbytes + 8;
  unsigned char *p = malloc (total);
  uint32_t flags = 0;

  if (p == NULL) {
    xs_error ("cannot encode a changed-block map: %m");
    return -1;
  }
  if (map->doubt == XS_DIRTYMAP_TRUSTED)
    flags |= FLAG_TRUSTED;
  if (map->live)
    flags |= FLAG_LIVE;
  memcpy (p, magic, 8);
  xs_put_le32 (p + 8, FORMAT_VERSION);
  xs_put_le32 (p + 12, flags);
  xs_put_le32 (p + 16, map->block_size);
  xs_put_le32 (p + 20, 0);
  xs_put_le64 (p + 24, map->size);
  xs_put_le64 (p + 32, map->bits.nbits);
  memcpy (p + HEADER_LEN, map->bits.bytes, nbytes);
  xs_put_le64 (p + HEADER_LEN + nbytes, xs_hash64 (p, HEADER_LEN + nbytes));
  *data = p;
  *len = total;
  return 0;
}

int
xs_changemap_decode (const void *data, size_t len, struct xs_changemap *map)
{
  const unsigned char *p = data;
  uint64_t nblocks;
  size_t nbytes;
  uint32_t version, flags;

  memset (map, 0, sizeof *map);
  if (len < HEADER_LEN + 8 || memcmp (p, magic, 8) != 0) {
    xs_error ("not a changed-block bitmap (bad magic or too short)");
    return -1;
  }
  version = xs_get_le32 (p + 8);
  if (version != FORMAT_VERSION) {
    xs_error ("changed-block bitmap version %u is %s this xsnap supports "
              "(%d)", version, version > FORMAT_VERSION ? "newer than"
              : "not one", FORMAT_VERSION);
    return -1;
  }
  flags = xs_get_le32 (p + 12);
  map->block_size = xs_get_le32 (p + 16);
  map->size = xs_get_le64 (p + 24);
  nblocks = xs_get_le64 (p + 32);
  if (nblocks > MAX_BLOCKS || map->block_size == 0
      || (map->size + map->block_size - 1) / map->block_size != nblocks) {
    xs_error ("changed-block bitmap: inconsistent geometry");
    return -1;
  }
  nbytes = xs_bitmap_bytes_for (nblocks);
  if (len != HEADER_LEN + nbytes + 8) {
    xs_error ("changed-block bitmap: length %zu, expected %zu", len,
              HEADER_LEN + nbytes + 8);
    return -1;
  }
  if (xs_get_le64 (p + HEADER_LEN + nbytes) != xs_hash64 (p, HEADER_LEN + nbytes)) {
    xs_error ("changed-block bitmap: checksum mismatch");
    return -1;
  }
  if (xs_bitmap_init (&map->bits, nblocks) == -1)
    return -1;
  memcpy (map->bits.bytes, p + HEADER_LEN, nbytes);
  map->doubt = (flags & FLAG_TRUSTED) ? XS_DIRTYMAP_TRUSTED
    : XS_DIRTYMAP_UNCLEAN_STOP;
  map->live = (flags & FLAG_LIVE) != 0;
  return 0;
}
