/* xsnap: the writable head of a live volume (see head.h).
 *
 * The data path is kept as close to `nbdkit file` as possible: one pread or
 * pwrite on a shared fd (on two, for a request that crosses from one
 * segment of the data to the next: segfile.h), plus setting a bit in the
 * dirty map, which is a lock-free atomic on a byte that is usually
 * already set.  FUA writes use pwritev2 (RWF_DSYNC) so that only the
 * request itself is made durable.  An encrypted head adds a cipher pass
 * over the request (headcrypt.h).
 *
 * What must happen before a change overwrites data — keeping the blocks
 * of a pending snapshot — is not done here: the module that needs it
 * registers a write guard with the head (head-internal.h), which every
 * change calls first.  With no guard installed that costs one atomic
 * load.  The head knows nothing more of it.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "crypto/headcrypt.h"
#include "head/head.h"
#include "head/head-internal.h"
#include "base/lockorder.h"
#include "head/ownerlock.h"
#include "head/presentmap.h"
#include "head/segfile.h"
#include "repo/repo.h"

#define XS_HEAD_COPYUP_STRIPES 64
#define XS_HEAD_SECTOR_STRIPES 64      /* a 64-bit mask of them */
#define XS_HEAD_BOUNCE_POOL 8

struct xs_head {
  char *dir;
  char *name;                   /* for messages */
  struct xs_segfile *data;      /* the volume's bytes at their offsets */
  int lock_fd;
  uint64_t size;
  uint32_t block_size;
  unsigned block_shift;
  struct xs_dirtymap *dirtymap;

  /* The locks below are taken in the order of lib/base/lockorder.h (gate,
   * guard_lock, copyup, sector, bounce_lock), through its helpers.
   *
   * Every change (write, zero, trim) holds the gate for reading while it
   * calls the guard, marks the dirty map and touches the data; installing
   * or removing a guard (for a snapshot: its point in time, and its end)
   * holds it for writing.  GUARD is set and cleared only under the write
   * side, so a change sees one consistent value; xs_head_close reads it
   * without the gate (acquire, under guard_lock).
   */
  pthread_rwlock_t gate;
  _Atomic (const struct xs_head_guard *) guard; /* NULL: none */
  pthread_mutex_t guard_lock;   /* with guard_gone: waiting for GUARD to go */
  pthread_cond_t guard_gone;
  uint64_t seal_buffer;         /* see xs_head_set_seal_buffer */

  /* A clone: blocks not present read through to SOURCE.  A block becomes
   * present under its copy-up stripe lock, after its data is written.
   */
  struct xs_snapreader *source; /* NULL: not a clone */
  struct xs_repo *source_repo;  /* where SOURCE reads from */
  struct xs_presentmap *present;
  pthread_mutex_t copyup[XS_HEAD_COPYUP_STRIPES];
  atomic_uint source_reads;     /* reads through to SOURCE in flight */

  /* An encrypted head (headcrypt.h): the data file holds ciphertext, in
   * whole 4 KiB sectors.  A change of part of a sector reads, changes and
   * writes back the whole sector holding its stripe for writing; reads
   * hold the stripes of the sectors they read for reading while they
   * read, so that they never see a sector half rewritten (which would
   * decrypt to garbage, bytes the write did not touch included).  Requests are
   * encrypted into bounce buffers (the client's buffer is the client's),
   * kept in a small pool so that large ones are not mapped afresh each
   * time.  NULL: a plaintext head.
   */
  struct xs_head_cipher *cipher;
  pthread_rwlock_t sector[XS_HEAD_SECTOR_STRIPES];
  pthread_mutex_t bounce_lock;
  void *bounce[XS_HEAD_BOUNCE_POOL];
  size_t bounce_cap[XS_HEAD_BOUNCE_POOL];
  unsigned nbounce;
};

bool
xs_head_block_present (const struct xs_head *h, uint64_t b)
{
  return h->source == NULL || xs_presentmap_has (h->present, b);
}

uint64_t
xs_head_nblocks (const struct xs_head *h)
{
  return (h->size + h->block_size - 1) >> h->block_shift;
}

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
create_present_map (const char *dir, uint64_t size, uint32_t block_size,
                    const char *source_id)
{
  char *path = head_path (dir, "present");
  int r = -1;

  if (path)
    r = xs_presentmap_create (path, block_size,
                              nblocks_for (size, block_size), source_id);
  free (path);
  return r;
}

int
xs_head_create (const char *dir, uint64_t size, uint32_t block_size,
                uint64_t epoch, const char *source_id)
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
      || xs_segfile_create (data, size, XS_SEGFILE_SEGMENT_SIZE) == -1
      || xs_dirtymap_create (map, block_size, nblocks_for (size, block_size),
                             epoch, 0) == -1
      || (source_id
          && create_present_map (dir, size, block_size, source_id) == -1)
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

int
xs_head_recreate_as_clone (const char *dir, uint64_t size,
                           uint32_t block_size, const char *source_id)
{
  char *data = head_path (dir, "data");
  int r = -1;

  if (data == NULL)
    return -1;
  /* The present map first: from the moment it exists with no bit set,
   * every block reads from the new source, whatever the data file holds.
   */
  if (create_present_map (dir, size, block_size, source_id) == 0
      && xs_segfile_recreate (data, size, XS_SEGFILE_SEGMENT_SIZE) == 0)
    r = xs_fsync_dir (dir);
  free (data);
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
  if (h->dirtymap)
    xs_dirtymap_abandon (h->dirtymap);
  xs_presentmap_close (h->present);
  xs_snapreader_close (h->source);
  xs_repo_close (h->source_repo);
  for (unsigned i = 0; i < XS_HEAD_COPYUP_STRIPES; i++)
    pthread_mutex_destroy (&h->copyup[i]);
  for (unsigned i = 0; i < XS_HEAD_SECTOR_STRIPES; i++)
    pthread_rwlock_destroy (&h->sector[i]);
  for (unsigned i = 0; i < h->nbounce; i++)
    free (h->bounce[i]);
  pthread_mutex_destroy (&h->bounce_lock);
  xs_head_cipher_free (h->cipher);
  xs_segfile_close (h->data);
  xs_owner_lock_release (h->lock_fd);
  pthread_rwlock_destroy (&h->gate);
  pthread_mutex_destroy (&h->guard_lock);
  pthread_cond_destroy (&h->guard_gone);
  free (h->dir);
  free (h->name);
  free (h);
}

/* Bring DATA to the SIZE the catalog records, after an interrupted
 * resize.  Shorter: a grow recorded before the head followed (as resizes
 * before segments did), completed now (the new range was never served, so
 * it is rightly zero).  Longer: a grow the catalog never recorded, whose
 * range is holes, given back (refused if anything was written there).
 */
static int
fit_data (struct xs_segfile *data, uint64_t size)
{
  if (xs_segfile_size (data) < size)
    return xs_segfile_grow (data, size);
  return xs_segfile_cut (data, size);
}

struct xs_head *
xs_head_open (const char *dir, const char *name, uint64_t size,
              uint32_t block_size, const struct xs_dirtymap_binding *binding,
              const char *source_id,
              struct xs_snapreader *source, struct xs_repo *source_repo,
              const unsigned char *key)
{
  struct xs_head *h;
  char *lock = NULL, *data = NULL, *map = NULL, *what = NULL;

  h = calloc (1, sizeof *h);
  if (h == NULL) {
    xs_error ("cannot open volume '%s': %m", name);
    xs_snapreader_close (source);
    xs_repo_close (source_repo);
    return NULL;
  }
  h->source = source;
  h->source_repo = source_repo;
  for (unsigned i = 0; i < XS_HEAD_COPYUP_STRIPES; i++)
    pthread_mutex_init (&h->copyup[i], NULL);
  for (unsigned i = 0; i < XS_HEAD_SECTOR_STRIPES; i++)
    pthread_rwlock_init (&h->sector[i], NULL);
  pthread_mutex_init (&h->bounce_lock, NULL);
  h->lock_fd = -1;
  pthread_rwlock_init (&h->gate, NULL);
  pthread_mutex_init (&h->guard_lock, NULL);
  pthread_cond_init (&h->guard_gone, NULL);
  h->seal_buffer = XS_HEAD_SEAL_BUFFER;
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

  if (key && (h->cipher = xs_head_cipher_new (key)) == NULL)
    goto fail;
  h->lock_fd = xs_owner_lock_take (lock, what);
  if (h->lock_fd == -1)
    goto fail;
  h->data = xs_segfile_open (data, XS_SEGFILE_SEGMENT_SIZE, what);
  if (h->data == NULL || fit_data (h->data, size) == -1)
    goto fail;
  h->dirtymap = xs_dirtymap_open (map, block_size,
                                  nblocks_for (size, block_size), binding);
  if (h->dirtymap == NULL)
    goto fail;
  if (source) {
    char *present = head_path (dir, "present");
    h->present = present ? xs_presentmap_open (present, block_size,
                                               nblocks_for (size,
                                                            block_size),
                                               source_id)
      : NULL;
    free (present);
    if (h->present == NULL)
      goto fail;
  }
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

/* A guard is removed by whoever installed it (a pending snapshot is
 * finished by whoever started it); the head cannot go away under it.
 */
static void
wait_for_guard (struct xs_head *h)
{
  xs_lock_take (&h->guard_lock, XS_LOCK_HEAD_GUARD, 0);
  while (atomic_load_explicit (&h->guard, memory_order_acquire) != NULL)
    pthread_cond_wait (&h->guard_gone, &h->guard_lock);
  xs_lock_drop (&h->guard_lock);
}

int
xs_head_set_owner_role (struct xs_head *h, const char *role)
{
  char what[300];

  snprintf (what, sizeof what, "volume '%s'", h->name);
  return xs_owner_lock_set_role (h->lock_fd, role, what);
}

int
xs_head_close (struct xs_head *h)
{
  int r = 0;

  wait_for_guard (h);
  if (h->present && xs_presentmap_persist_begin (h->present) == -1)
    r = -1;
  if (xs_segfile_sync (h->data) == -1) {
    xs_error ("cannot sync volume '%s': %m", h->name);
    r = -1;
  }
  if (h->present && xs_presentmap_persist_end (h->present) == -1)
    r = -1;
  /* Only a head whose data is durable may call its map clean. */
  if (r == 0) {
    r = xs_dirtymap_close (h->dirtymap);
    h->dirtymap = NULL;
  }
  free_head (h);
  return r;
}

void
xs_head_abandon (struct xs_head *h)
{
  free_head (h);                /* the dirty map stays marked open */
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

const char *
xs_head_name (const struct xs_head *h)
{
  return h->name;
}

const char *
xs_head_dir (const struct xs_head *h)
{
  return h->dir;
}

struct xs_snapreader *
xs_head_source (const struct xs_head *h)
{
  return h->source;
}

struct xs_repo *
xs_head_source_repo (const struct xs_head *h)
{
  return h->source_repo;
}

struct xs_segfile *
xs_head_data (const struct xs_head *h)
{
  return h->data;
}

int
xs_head_decrypt_raw (const struct xs_head *h, void *buf, size_t len,
                     uint64_t offset)
{
  if (h->cipher == NULL)
    return 0;
  return xs_head_decrypt (h->cipher, buf, buf, len, offset);
}

uint64_t
xs_head_seal_buffer (const struct xs_head *h)
{
  return h->seal_buffer;
}

/* ----- Write guards ----- */

enum xs_head_guard_result
xs_head_guard_install (struct xs_head *h, const struct xs_head_guard *guard)
{
  enum xs_head_guard_result r = XS_HEAD_GUARD_INSTALLED;

  xs_lock_take_write (&h->gate, XS_LOCK_HEAD_GATE, 0);
  if (atomic_load_explicit (&h->guard, memory_order_relaxed) != NULL)
    r = XS_HEAD_GUARD_BUSY;
  else if (guard->on_install && guard->on_install (guard->opaque) == -1)
    r = XS_HEAD_GUARD_FAILED;
  else
    atomic_store_explicit (&h->guard, guard, memory_order_release);
  xs_lock_drop_rw (&h->gate);
  return r;
}

int
xs_head_guard_remove (struct xs_head *h, const struct xs_head_guard *guard)
{
  int r = 0;

  xs_lock_take_write (&h->gate, XS_LOCK_HEAD_GATE, 0);
  assert (atomic_load_explicit (&h->guard, memory_order_relaxed) == guard);
  if (guard->on_remove)
    r = guard->on_remove (guard->opaque);
  xs_lock_take (&h->guard_lock, XS_LOCK_HEAD_GUARD, 0);
  atomic_store_explicit (&h->guard, NULL, memory_order_release);
  pthread_cond_broadcast (&h->guard_gone);
  xs_lock_drop (&h->guard_lock);
  xs_lock_drop_rw (&h->gate);
  return r;
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

/* Start a change of [OFFSET, OFFSET + COUNT): enter the gate, let the
 * guard (if any) act first, mark the blocks changed.  A begin_change that
 * succeeds is paired with end_change; one that fails (the guard refused,
 * and reported) has left the gate.
 */
static int
begin_change (struct xs_head *h, uint32_t count, uint64_t offset)
{
  const struct xs_head_guard *guard;
  uint64_t first, last;

  xs_lock_take_read (&h->gate, XS_LOCK_HEAD_GATE, 0);
  if (count == 0)
    return 0;
  first = offset >> h->block_shift;
  last = (offset + count - 1) >> h->block_shift;
  assert (last < xs_head_nblocks (h));
  /* Relaxed: GUARD changes only under the write side of the gate. */
  guard = atomic_load_explicit (&h->guard, memory_order_relaxed);
  if (guard && guard->before_write (guard->opaque, offset, count) == -1) {
    xs_lock_drop_rw (&h->gate);
    return -1;
  }
  xs_dirtymap_mark (h->dirtymap, first, last - first + 1);
  return 0;
}

static void
end_change (struct xs_head *h)
{
  xs_lock_drop_rw (&h->gate);
}

/* The end of the run of blocks from OFFSET with the same presence as the
 * block at OFFSET, capped at END.  For a head that is not a clone, END.
 */
static uint64_t
same_presence_end (const struct xs_head *h, uint64_t offset, uint64_t end,
                   bool *present)
{
  uint64_t block = offset >> h->block_shift;
  uint64_t run_end;

  *present = xs_head_block_present (h, block);
  if (h->source == NULL)
    return end;
  for (block++; (block << h->block_shift) < end; block++)
    if (xs_head_block_present (h, block) != *present)
      break;
  run_end = block << h->block_shift;
  return run_end < end ? run_end : end;
}

static int
read_raw (struct xs_head *h, void *buf, size_t count, uint64_t offset)
{
  if (xs_segfile_pread (h->data, buf, count, offset) == -1) {
    xs_error ("volume '%s': read of %zu bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  return 0;
}

/* ----- Encrypted heads ----- */

static uint64_t
sector_down (uint64_t offset)
{
  return offset & ~(uint64_t) (XS_HEAD_SECTOR - 1);
}

static uint64_t
sector_up (uint64_t offset)
{
  return sector_down (offset + XS_HEAD_SECTOR - 1);
}

/* A buffer of at least LEN bytes from the pool (*CAP: its size). */
static void *
bounce_get (struct xs_head *h, size_t len, size_t *cap)
{
  void *buf = NULL;
  unsigned i;

  xs_lock_take (&h->bounce_lock, XS_LOCK_HEAD_BOUNCE, 0);
  for (i = 0; i < h->nbounce; i++)
    if (h->bounce_cap[i] >= len) {
      buf = h->bounce[i];
      *cap = h->bounce_cap[i];
      h->bounce[i] = h->bounce[--h->nbounce];
      h->bounce_cap[i] = h->bounce_cap[h->nbounce];
      break;
    }
  xs_lock_drop (&h->bounce_lock);
  if (buf == NULL) {
    buf = malloc (len);
    *cap = len;
    if (buf == NULL)
      xs_error ("volume '%s': no memory for a request of %zu bytes: %m",
                h->name, len);
  }
  return buf;
}

/* Give BUF back (kept if there is room, else the smallest goes). */
static void
bounce_put (struct xs_head *h, void *buf, size_t cap)
{
  unsigned i, smallest = 0;

  xs_lock_take (&h->bounce_lock, XS_LOCK_HEAD_BOUNCE, 0);
  if (h->nbounce < XS_HEAD_BOUNCE_POOL) {
    h->bounce[h->nbounce] = buf;
    h->bounce_cap[h->nbounce++] = cap;
    buf = NULL;
  }
  else {
    for (i = 1; i < h->nbounce; i++)
      if (h->bounce_cap[i] < h->bounce_cap[smallest])
        smallest = i;
    if (h->bounce_cap[smallest] < cap) {
      void *old = h->bounce[smallest];

      h->bounce[smallest] = buf;
      h->bounce_cap[smallest] = cap;
      buf = old;
    }
  }
  xs_lock_drop (&h->bounce_lock);
  free (buf);
}

static int
cipher_failed (void)
{
  errno = EIO;
  return -1;
}

/* The stripes of the sectors of [START, END) (whole sectors), as a mask
 * (XS_HEAD_SECTOR_STRIPES is 64).
 */
static uint64_t
stripes_of (uint64_t start, uint64_t end)
{
  uint64_t first = start / XS_HEAD_SECTOR, n = (end - start) / XS_HEAD_SECTOR;
  uint64_t mask = 0;

  if (n >= XS_HEAD_SECTOR_STRIPES)
    return UINT64_MAX;
  for (uint64_t i = 0; i < n; i++)
    mask |= UINT64_C (1) << ((first + i) % XS_HEAD_SECTOR_STRIPES);
  return mask;
}

/* Read the sectors of [START, END) raw, holding their stripes for reading
 * (taken in index order, as writers take theirs).
 */
static int
read_sectors (struct xs_head *h, void *buf, uint64_t start, uint64_t end)
{
  uint64_t mask = stripes_of (start, end);
  unsigned k;
  int r;

  for (k = 0; k < XS_HEAD_SECTOR_STRIPES; k++)
    if (mask & (UINT64_C (1) << k))
      xs_lock_take_read (&h->sector[k], XS_LOCK_HEAD_SECTOR, k);
  r = read_raw (h, buf, end - start, start);
  for (k = 0; k < XS_HEAD_SECTOR_STRIPES; k++)
    if (mask & (UINT64_C (1) << k))
      xs_lock_drop_rw (&h->sector[k]);
  return r;
}

/* Read [OFFSET, OFFSET + COUNT) of an encrypted head: the sectors that
 * hold it, decrypted (in place when the request is whole sectors).
 */
static int
read_encrypted (struct xs_head *h, void *buf, size_t count, uint64_t offset)
{
  uint64_t start = sector_down (offset), end = sector_up (offset + count);
  size_t cap;
  void *bounce;
  int r;

  if (start == offset && end == offset + count) {
    if (read_sectors (h, buf, start, end) == -1)
      return -1;
    return xs_head_decrypt (h->cipher, buf, buf, count, offset) == 0
      ? 0 : cipher_failed ();
  }
  bounce = bounce_get (h, end - start, &cap);
  if (bounce == NULL)
    return -1;
  r = read_sectors (h, bounce, start, end);
  if (r == 0
      && xs_head_decrypt (h->cipher, bounce, bounce, end - start,
                          start) == -1)
    r = cipher_failed ();
  if (r == 0)
    memcpy (buf, (char *) bounce + (offset - start), count);
  bounce_put (h, bounce, cap);
  return r;
}

/* Lock the stripes of the partial sectors at the edges of [START, END)
 * (whole sectors; HEAD and TAIL say which edge is partial), in index
 * order; LOCKED[] gets their indices, -1 for none.
 */
static void
lock_edges (struct xs_head *h, uint64_t start, uint64_t end, bool head,
            bool tail, int locked[2])
{
  int a = head ? (int) ((start / XS_HEAD_SECTOR) % XS_HEAD_SECTOR_STRIPES)
    : -1;
  int b = tail ? (int) (((end - XS_HEAD_SECTOR) / XS_HEAD_SECTOR)
                        % XS_HEAD_SECTOR_STRIPES) : -1;

  if (a == b)
    b = -1;
  else if (a > b) {
    int t = a;
    a = b;
    b = t;
  }
  locked[0] = a >= 0 ? a : b;
  locked[1] = a >= 0 ? b : -1;
  assert (locked[1] == -1 || locked[0] < locked[1]);
  for (int i = 0; i < 2; i++)
    if (locked[i] >= 0)
      xs_lock_take_write (&h->sector[locked[i]], XS_LOCK_HEAD_SECTOR,
                          (unsigned) locked[i]);
}

static void
unlock_edges (struct xs_head *h, const int locked[2])
{
  for (int i = 2; i-- > 0;)
    if (locked[i] >= 0)
      xs_lock_drop_rw (&h->sector[locked[i]]);
}

/* Read and decrypt the sector at OFFSET into BUF. */
static int
read_sector (struct xs_head *h, void *buf, uint64_t offset)
{
  if (read_raw (h, buf, XS_HEAD_SECTOR, offset) == -1)
    return -1;
  return xs_head_decrypt (h->cipher, buf, buf, XS_HEAD_SECTOR, offset) == 0
    ? 0 : cipher_failed ();
}

/* Write BUF (COUNT bytes) at OFFSET of an encrypted head, with FLAGS for
 * pwritev2: encrypted into a bounce buffer; partial sectors at the edges
 * read, changed and written back whole under their stripe locks.
 */
static int
write_encrypted (struct xs_head *h, const void *buf, size_t count,
                 uint64_t offset, int flags)
{
  uint64_t start = sector_down (offset), end = sector_up (offset + count);
  bool head = start != offset, tail = end != offset + count;
  size_t len = end - start, cap;
  int locked[2];
  char *bounce = bounce_get (h, len, &cap);
  int r = 0;

  if (bounce == NULL)
    return -1;
  lock_edges (h, start, end, head, tail, locked);
  if (head)
    r = read_sector (h, bounce, start);
  if (r == 0 && tail && (end - XS_HEAD_SECTOR != start || !head))
    r = read_sector (h, bounce + len - XS_HEAD_SECTOR, end - XS_HEAD_SECTOR);
  /* Whole sectors encrypt straight from the caller's buffer. */
  if (r == 0 && !head && !tail
      && xs_head_encrypt (h->cipher, buf, bounce, len, start) == -1)
    r = cipher_failed ();
  else if (r == 0 && (head || tail)) {
    memcpy (bounce + (offset - start), buf, count);
    if (xs_head_encrypt (h->cipher, bounce, bounce, len, start) == -1)
      r = cipher_failed ();
  }
  if (r == 0 && xs_segfile_pwrite (h->data, bounce, len, start,
                                   flags) == -1) {
    xs_error ("volume '%s': write of %zu bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    r = -1;
  }
  unlock_edges (h, locked);
  bounce_put (h, bounce, cap);
  return r;
}

/* Zero what of [*OFFSET, *OFFSET + *COUNT) lies in partial sectors, by
 * writing zeros (a hole in part of a sector would not decrypt); leave the
 * whole sectors in between for the caller to punch or zero.
 */
static int
zero_partial_sectors (struct xs_head *h, uint32_t *count, uint64_t *offset)
{
  static const char zeros[XS_HEAD_SECTOR];
  uint64_t end = *offset + *count, piece;

  if (*offset % XS_HEAD_SECTOR) {
    piece = sector_up (*offset) - *offset;
    if (piece > *count)
      piece = *count;
    if (write_encrypted (h, zeros, piece, *offset, 0) == -1)
      return -1;
    *offset += piece;
    *count -= (uint32_t) piece;
  }
  if (*count > 0 && end % XS_HEAD_SECTOR) {
    piece = end - sector_down (end);
    if (write_encrypted (h, zeros, piece, end - piece, 0) == -1)
      return -1;
    *count -= (uint32_t) piece;
  }
  return 0;
}

/* ----- The data path ----- */

static int
pread_data (struct xs_head *h, void *buf, size_t count, uint64_t offset)
{
  if (h->cipher)
    return read_encrypted (h, buf, count, offset);
  return read_raw (h, buf, count, offset);
}

/* Write to the data file; reports its errors. */
static int
pwrite_data (struct xs_head *h, const void *buf, size_t count,
             uint64_t offset, int flags)
{
  if (h->cipher)
    return write_encrypted (h, buf, count, offset, flags);
  if (xs_segfile_pwrite (h->data, buf, count, offset, flags) == -1) {
    xs_error ("volume '%s': write of %zu bytes at %lu: %m", h->name, count,
              (unsigned long) offset);
    return -1;
  }
  return 0;
}

int
xs_head_pread (struct xs_head *h, void *buf, uint32_t count, uint64_t offset)
{
  uint64_t end = offset + count;
  char *p = buf;

  if (check_range (h, "read", count, offset) == -1)
    return -1;
  if (h->source == NULL)
    return pread_data (h, buf, count, offset);
  /* A clone: present runs from the head, the rest from the snapshot. */
  while (offset < end) {
    bool present;
    uint64_t run_end = same_presence_end (h, offset, end, &present);
    uint32_t len = (uint32_t) (run_end - offset);
    int r;

    if (present)
      r = pread_data (h, p, len, offset);
    else {
      atomic_fetch_add_explicit (&h->source_reads, 1, memory_order_relaxed);
      r = xs_snapreader_pread (h->source, p, len, offset);
      atomic_fetch_sub_explicit (&h->source_reads, 1, memory_order_relaxed);
    }
    if (r == -1)
      return -1;
    p += len;
    offset = run_end;
  }
  return 0;
}

/* Copy block B of a clone up from its snapshot into the data file.
 * Holding B's copy-up stripe lock; B is not present.
 */
/* The length of block B (the last one may be short). */
static size_t
block_len (const struct xs_head *h, uint64_t b)
{
  uint64_t offset = b << h->block_shift;

  return h->size - offset < h->block_size
    ? (size_t) (h->size - offset) : h->block_size;
}

static int
copy_up (struct xs_head *h, uint64_t b, void *buf)
{
  uint64_t offset = b << h->block_shift;
  size_t len = block_len (h, b);
  struct xs_hash128 entry = { { 0 } }; /* past the snapshot: zero */

  if (b < xs_snapreader_nblocks (h->source)
      && xs_snapreader_entry (h->source, b, &entry) == -1)
    return -1;
  /* A zero block is a hole; punch it in case a copy-up of it was
   * interrupted before its present bit became durable.
   */
  if (xs_hash128_is_zero (&entry)) {
    if (xs_segfile_fallocate (h->data,
                              FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              offset, len) == 0)
      return 0;
    memset (buf, 0, len);
  }
  else if (xs_snapreader_read_block (h->source, b, buf) == -1)
    return -1;
  if (h->cipher
      && xs_head_encrypt (h->cipher, buf, buf, len, offset) == -1) {
    errno = EIO;
    return -1;
  }
  if (xs_segfile_pwrite (h->data, buf, len, offset, 0) == -1) {
    xs_error ("volume '%s': cannot copy block %lu up from its snapshot: %m",
              h->name, (unsigned long) b);
    return -1;
  }
  return 0;
}

/* Make block B present (copying it up unless WHOLE: the coming change
 * replaces all of it, so only a hole is needed).
 */
static int
make_present (struct xs_head *h, uint64_t b, bool whole, void **buf)
{
  unsigned k = (unsigned) (b % XS_HEAD_COPYUP_STRIPES);
  int r = 0;

  if (xs_presentmap_has (h->present, b))
    return 0;
  if (*buf == NULL && (*buf = malloc (h->block_size)) == NULL) {
    xs_error ("volume '%s': cannot copy a block up: %m", h->name);
    return -1;
  }
  xs_lock_take (&h->copyup[k], XS_LOCK_HEAD_COPYUP, k);
  if (!xs_presentmap_has (h->present, b)) {
    if (whole)
      r = xs_segfile_fallocate (h->data,
                                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                b << h->block_shift, block_len (h, b)) == 0
        ? 0 : copy_up (h, b, *buf);
    else
      r = copy_up (h, b, *buf);
    if (r == 0)
      xs_presentmap_set (h->present, b);
  }
  xs_lock_drop (&h->copyup[k]);
  return r;
}

int
xs_head_copy_up (struct xs_head *h, uint64_t b, void **buf)
{
  return make_present (h, b, false, buf);
}

const struct xs_presentmap *
xs_head_present (const struct xs_head *h)
{
  return h->present;
}

unsigned
xs_head_source_reads (struct xs_head *h)
{
  return atomic_load_explicit (&h->source_reads, memory_order_relaxed);
}

/* Before a change of [OFFSET, OFFSET + COUNT) of a clone: every block it
 * touches becomes present.  Blocks it covers whole need no copy.
 */
static int
prepare_clone_change (struct xs_head *h, uint32_t count, uint64_t offset)
{
  uint64_t end = offset + count, b;
  void *buf = NULL;
  int r = 0;

  if (h->source == NULL || count == 0)
    return 0;
  for (b = offset >> h->block_shift;
       r == 0 && (b << h->block_shift) < end; b++) {
    uint64_t start = b << h->block_shift;
    bool whole = start >= offset && start + h->block_size <= end;
    r = make_present (h, b, whole, &buf);
  }
  free (buf);
  return r;
}

int
xs_head_pwrite (struct xs_head *h, const void *buf, uint32_t count,
                uint64_t offset, bool fua)
{
  int r;

  if (check_range (h, "write", count, offset) == -1)
    return -1;
  if (begin_change (h, count, offset) == -1)
    return -1;
  if (prepare_clone_change (h, count, offset) == -1) {
    end_change (h);
    errno = EIO;
    return -1;
  }
  r = pwrite_data (h, buf, count, offset, fua ? RWF_DSYNC : 0);
  end_change (h);
  return r;
}

static int
sync_data (struct xs_head *h)
{
  if (xs_segfile_sync (h->data) == -1) {
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
  if (begin_change (h, count, offset) == -1)
    return -1;
  if (prepare_clone_change (h, count, offset) == -1) {
    end_change (h);
    errno = EIO;
    return -1;
  }
  if (h->cipher && zero_partial_sectors (h, &count, &offset) == -1) {
    end_change (h);
    return -1;
  }
  /* Deallocating is the cheapest zero and makes the range a hole again.
   * Without MAY_TRIM the range should stay allocated: ZERO_RANGE.
   */
  if (count == 0)
    r = 0;
  else if (flags & XS_HEAD_MAY_TRIM)
    r = xs_segfile_fallocate (h->data, punch, offset, count);
  else
    r = xs_segfile_fallocate (h->data,
                              FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                              offset, count);
  if (r == -1 && unsupported (errno) && !(flags & XS_HEAD_MAY_TRIM))
    r = xs_segfile_fallocate (h->data, punch, offset, count);
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
  if (begin_change (h, count, offset) == -1)
    return -1;
  /* What is trimmed reads as zeros: partial sectors are written so. */
  if (h->cipher && zero_partial_sectors (h, &count, &offset) == -1) {
    end_change (h);
    return -1;
  }
  r = count == 0 ? 0
    : xs_segfile_fallocate (h->data,
                            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            offset, count);
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
  int r;

  /* Data first: a durable map never claims less than the durable data,
   * and a durable present bit never claims data that is not durable (the
   * present bits are copied before the data is synced).
   */
  if (h->present && xs_presentmap_persist_begin (h->present) == -1)
    return -1;
  r = sync_data (h);
  if (h->present && xs_presentmap_persist_end (h->present) == -1)
    r = -1;
  if (r == -1)
    return -1;
  return xs_dirtymap_persist (h->dirtymap);
}

/* Extents of the data file in [OFFSET, END). */
static int
data_extents (struct xs_head *h, uint64_t offset, uint64_t end,
              int (*fn) (uint64_t offset, uint64_t length, bool hole,
                         void *opaque),
              void *opaque)
{
  while (offset < end) {
    off_t data = xs_segfile_seek (h->data, offset, SEEK_DATA);
    off_t hole;
    int r;

    if (data == -1 && errno == ENXIO)
      data = (off_t) h->size;   /* only a hole remains */
    else if (data == -1)
      goto error;
    if ((uint64_t) data > offset) {
      if ((uint64_t) data > end)
        data = (off_t) end;
      r = fn (offset, (uint64_t) data - offset, true, opaque);
      if (r != 0)
        return r;
      offset = (uint64_t) data;
      continue;
    }
    hole = xs_segfile_seek (h->data, offset, SEEK_HOLE);
    if (hole == -1)
      goto error;
    if ((uint64_t) hole > end)
      hole = (off_t) end;
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

/* The snapshot's extents, clipped to [START, END). */
struct clipped {
  uint64_t end;
  int (*fn) (uint64_t offset, uint64_t length, bool hole, void *opaque);
  void *opaque;
};

static int
clip_extent (uint64_t offset, uint64_t length, bool hole, void *opaque)
{
  struct clipped *c = opaque;

  if (offset >= c->end)
    return 0;
  if (offset + length > c->end)
    length = c->end - offset;
  return c->fn (offset, length, hole, c->opaque);
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
  if (h->source == NULL)
    return data_extents (h, offset, end, fn, opaque);
  while (offset < end) {
    bool present;
    uint64_t run_end = same_presence_end (h, offset, end, &present);
    struct clipped c = { .end = run_end, .fn = fn, .opaque = opaque };
    int r = present ? data_extents (h, offset, run_end, fn, opaque)
      : xs_snapreader_extents (h->source, offset, run_end - offset,
                               clip_extent, &c);
    if (r != 0)
      return r;
    offset = run_end;
  }
  return 0;
}

void
xs_head_set_seal_buffer (struct xs_head *h, uint64_t bytes)
{
  xs_lock_take_write (&h->gate, XS_LOCK_HEAD_GATE, 0);
  h->seal_buffer = bytes;       /* guards are installed under the gate */
  xs_lock_drop_rw (&h->gate);
}

bool
xs_head_is_clone (const struct xs_head *h)
{
  return h->source != NULL;
}

void
xs_head_writeback (struct xs_head *h, uint64_t offset, uint64_t count,
                   bool wait_and_drop)
{
  unsigned flags = SYNC_FILE_RANGE_WRITE;

  if (wait_and_drop)
    flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
  xs_segfile_writeback (h->data, offset, count, flags, wait_and_drop);
}

int
xs_head_grow (struct xs_head *h, uint64_t new_size)
{
  if (h->source) {
    xs_error ("cannot grow volume '%s' while it reads through to its "
              "snapshot: hydrate it first", h->name);
    errno = EINVAL;
    return -1;
  }
  if (new_size < h->size) {
    xs_error ("cannot shrink volume '%s'", h->name);
    errno = EINVAL;
    return -1;
  }
  /* Each step is all or nothing, and a later one failing undoes the
   * earlier ones.
   */
  if (xs_segfile_grow (h->data, new_size) == -1)
    return -1;
  if (xs_dirtymap_resize (h->dirtymap,
                          nblocks_for (new_size, h->block_size)) == -1) {
    (void) xs_segfile_cut (h->data, h->size);
    return -1;
  }
  h->size = new_size;
  return 0;
}

int
xs_head_grow_undo (struct xs_head *h, uint64_t old_size)
{
  /* The data first: a dirty map left longer (its resize failing) only
   * makes the next open doubt it.
   */
  if (xs_segfile_cut (h->data, old_size) == -1)
    return -1;
  h->size = old_size;
  return xs_dirtymap_resize (h->dirtymap,
                             nblocks_for (old_size, h->block_size));
}
