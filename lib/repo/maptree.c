/* xsnap: the block map of a snapshot as a tree of pages (see maptree.h).
 *
 * In memory a tree is a cache of nodes, one per page, found by their place
 * (level and index within the level): a node at level L and index i covers
 * the blocks [i << 8(L+1), (i+1) << 8(L+1)).  A node is
 *
 *   clean:   its entries are those of the stored page named by its id;
 *            it can be dropped (least recently used first) and read
 *            again;
 *   dirty:   its entries changed since; its id is unknown until a commit
 *            writes it.  The parent of a dirty node is dirty (its entry
 *            for the child is stale), so a clean node's children are
 *            clean and its entries can be trusted as their ids;
 *   unstored: clean, with a known id, but not in the repository yet (a
 *            flat map read from an old manifest).
 *
 * Dirty and unstored nodes are pinned: only a commit releases them.  A
 * zero entry of a clean node is a subtree of zeros, read from nowhere.
 *
 * Walks (for_each, walk, diff) copy a node's entries under the lock and
 * recurse on the copies, so that callbacks run unlocked and may call back
 * into the tree; a recursion holds one copy per level.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/byteorder.h"
#include "base/error.h"
#include "base/hash.h"
#include "base/lockorder.h"
#include "repo/maptree.h"
#include "repo/repo.h"

#define PAGE_MAGIC "XSNPPAGE"
#define PAGE_MAGIC_LEN 8

/* Clean pages kept in memory (4 KiB each), and changed pages that make
 * set write everything out early.
 */
#define CACHE_PAGES 4096
#define DIRTY_PAGES_MAX 4096

struct node {
  uint64_t index;
  unsigned level;
  bool dirty;
  bool stored;
  struct xs_hash128 id;         /* when !dirty */
  struct node *hash_next;
  struct node *lru_prev, *lru_next;     /* evictable nodes only */
  struct xs_hash128 entries[XS_MAPTREE_FANOUT];
};

struct xs_maptree {
  pthread_mutex_t lock;
  struct xs_repo *repo;
  struct xs_repo *source;       /* where pages missing from repo are */
  uint64_t nblocks;
  unsigned depth;
  struct xs_hash128 top;        /* the top page's id as last committed */

  struct node **buckets;
  size_t nbuckets;              /* a power of two */
  size_t nnodes;

  /* Evictable (clean and stored) nodes, most recently used first. */
  struct node *lru_head, *lru_tail;
  size_t nevictable;

  /* Pinned nodes: dirty or unstored. */
  struct node **pinned;
  size_t npinned, pinned_cap;
  size_t ndirty;

  struct xs_maptree_stats stats;
};

/* ----- Geometry ----- */

unsigned
xs_maptree_depth (uint64_t nblocks)
{
  unsigned depth = 1;

  while (depth < XS_MAPTREE_MAX_DEPTH
         && (nblocks - (nblocks > 0)) >> (XS_MAPTREE_FANOUT_SHIFT * depth)
         != 0)
    depth++;
  return depth;
}

/* The first block under node (LEVEL, INDEX), and how many blocks a node of
 * LEVEL covers, as shifts.
 */
static unsigned
span_shift (unsigned level)
{
  return XS_MAPTREE_FANOUT_SHIFT * (level + 1);
}

static uint64_t
node_first_block (unsigned level, uint64_t index)
{
  unsigned shift = span_shift (level);

  return shift >= 64 ? 0 : index << shift;
}

/* How many of the FANOUT slots of node (LEVEL, INDEX) lie inside a map of
 * NBLOCKS blocks (the rest must be zero).
 */
static unsigned
slots_in_use (unsigned level, uint64_t index, uint64_t nblocks)
{
  unsigned child_shift = XS_MAPTREE_FANOUT_SHIFT * level;
  uint64_t first = node_first_block (level, index), children;

  if (first >= nblocks)
    return 0;
  children = child_shift >= 64 ? 1
    : ((nblocks - first - 1) >> child_shift) + 1;
  return children > XS_MAPTREE_FANOUT ? XS_MAPTREE_FANOUT
    : (unsigned) children;
}

static unsigned
slot_of (uint64_t block, unsigned level)
{
  return (block >> (XS_MAPTREE_FANOUT_SHIFT * level))
    & (XS_MAPTREE_FANOUT - 1);
}

static uint64_t
index_of (uint64_t block, unsigned level)
{
  unsigned shift = span_shift (level);

  return shift >= 64 ? 0 : block >> shift;
}

/* ----- Pages ----- */

void
xs_maptree_page_id (const void *data, size_t len, struct xs_hash128 *id)
{
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;

  /* SHA-256 cannot fail on a buffer short of memory or a bad digest: if
   * it does anyway, no page can have the resulting all-ones id.
   */
  if (EVP_Digest (data, len, digest, &digest_len, EVP_sha256 (), NULL) != 1
      || digest_len < sizeof id->bytes)
    memset (digest, 0xff, sizeof id->bytes);
  memcpy (id->bytes, digest, sizeof id->bytes);
}

size_t
xs_maptree_page_encode (unsigned level,
                        const struct xs_hash128 entries[XS_MAPTREE_FANOUT],
                        uint8_t out[XS_MAPTREE_PAGE_MAX])
{
  unsigned count = XS_MAPTREE_FANOUT;

  while (count > 0 && xs_hash128_is_zero (&entries[count - 1]))
    count--;
  if (count == 0)
    return 0;
  memcpy (out, PAGE_MAGIC, PAGE_MAGIC_LEN);
  out[8] = XS_MAPTREE_PAGE_VERSION;
  out[9] = (uint8_t) level;
  xs_put_le16 (out + 10, (uint16_t) count);
  xs_put_le32 (out + 12, 0);
  memcpy (out + XS_MAPTREE_PAGE_HEADER, entries, count * sizeof *entries);
  return XS_MAPTREE_PAGE_HEADER + count * sizeof *entries;
}

int
xs_maptree_page_level (const void *data, size_t len)
{
  const uint8_t *p = data;

  if (len < XS_MAPTREE_PAGE_HEADER || memcmp (p, PAGE_MAGIC, PAGE_MAGIC_LEN))
    return -1;
  return p[9];
}

static int
page_is_bad (char reason[XS_MAPTREE_REASON_MAX], const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static int
page_is_bad (char reason[XS_MAPTREE_REASON_MAX], const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  vsnprintf (reason, XS_MAPTREE_REASON_MAX, fmt, args);
  va_end (args);
  errno = EIO;
  return -1;
}

int
xs_maptree_page_parse (const void *data, size_t len,
                       const struct xs_hash128 *id, unsigned level,
                       uint64_t index, uint64_t nblocks,
                       struct xs_hash128 entries[XS_MAPTREE_FANOUT],
                       char reason[XS_MAPTREE_REASON_MAX])
{
  const uint8_t *p = data;
  unsigned count, in_use, i;
  struct xs_hash128 actual;

  if (len < XS_MAPTREE_PAGE_HEADER || len > XS_MAPTREE_PAGE_MAX
      || (len - XS_MAPTREE_PAGE_HEADER) % sizeof *entries != 0)
    return page_is_bad (reason, "%zu bytes is not the size of a page", len);
  if (id) {
    xs_maptree_page_id (data, len, &actual);
    if (!xs_hash128_equal (&actual, id))
      return page_is_bad (reason, "content does not match its id "
                          "(damaged, or another page in its place)");
  }
  if (memcmp (p, PAGE_MAGIC, PAGE_MAGIC_LEN) != 0)
    return page_is_bad (reason, "not a map page (bad magic)");
  if (p[8] != XS_MAPTREE_PAGE_VERSION)
    return page_is_bad (reason, "unknown page version %u", p[8]);
  if (p[9] != level)
    return page_is_bad (reason, "a page of level %u where level %u belongs",
                        p[9], level);
  count = xs_get_le16 (p + 10);
  if (xs_get_le32 (p + 12) != 0)
    return page_is_bad (reason, "reserved header bytes are not zero");
  if (count == 0 || count > XS_MAPTREE_FANOUT
      || XS_MAPTREE_PAGE_HEADER + count * sizeof *entries != len)
    return page_is_bad (reason, "entry count %u does not match its %zu "
                        "bytes", count, len);
  memcpy (entries, p + XS_MAPTREE_PAGE_HEADER, count * sizeof *entries);
  memset (entries + count, 0, (XS_MAPTREE_FANOUT - count) * sizeof *entries);
  if (xs_hash128_is_zero (&entries[count - 1]))
    return page_is_bad (reason, "not canonical (trailing zero entries)");
  in_use = slots_in_use (level, index, nblocks);
  for (i = in_use; i < count; i++)
    if (!xs_hash128_is_zero (&entries[i]))
      return page_is_bad (reason, "entry %u points past the end of the "
                          "map (%" PRIu64 " blocks)", i, nblocks);
  return 0;
}

/* ----- The node cache (all under the lock) ----- */

static size_t
bucket_of (const struct xs_maptree *t, unsigned level, uint64_t index)
{
  uint64_t h = (index + ((uint64_t) level << 56)) * UINT64_C (0x9e3779b97f4a7c15);

  return (size_t) (h >> 32) & (t->nbuckets - 1);
}

static struct node *
lookup (const struct xs_maptree *t, unsigned level, uint64_t index)
{
  struct node *n;

  for (n = t->buckets[bucket_of (t, level, index)]; n; n = n->hash_next)
    if (n->level == level && n->index == index)
      return n;
  return NULL;
}

static int
grow_buckets (struct xs_maptree *t)
{
  size_t nbuckets = t->nbuckets * 2, i;
  struct node **buckets = calloc (nbuckets, sizeof *buckets);
  struct node **old = t->buckets;
  size_t old_n = t->nbuckets;

  if (buckets == NULL) {
    xs_error ("cannot grow a block map's page table: %m");
    return -1;
  }
  t->buckets = buckets;
  t->nbuckets = nbuckets;
  for (i = 0; i < old_n; i++) {
    struct node *n = old[i], *next;

    for (; n; n = next) {
      size_t b = bucket_of (t, n->level, n->index);

      next = n->hash_next;
      n->hash_next = buckets[b];
      buckets[b] = n;
    }
  }
  free (old);
  return 0;
}

static void
lru_unlink (struct xs_maptree *t, struct node *n)
{
  if (n->lru_prev)
    n->lru_prev->lru_next = n->lru_next;
  else
    t->lru_head = n->lru_next;
  if (n->lru_next)
    n->lru_next->lru_prev = n->lru_prev;
  else
    t->lru_tail = n->lru_prev;
  n->lru_prev = n->lru_next = NULL;
  t->nevictable--;
}

static void
lru_push (struct xs_maptree *t, struct node *n)
{
  n->lru_prev = NULL;
  n->lru_next = t->lru_head;
  if (t->lru_head)
    t->lru_head->lru_prev = n;
  else
    t->lru_tail = n;
  t->lru_head = n;
  t->nevictable++;
}

static bool
is_pinned (const struct node *n)
{
  return n->dirty || !n->stored;
}

/* N was used: keep it longest. */
static void
touch (struct xs_maptree *t, struct node *n)
{
  if (!is_pinned (n) && t->lru_head != n) {
    lru_unlink (t, n);
    lru_push (t, n);
  }
}

static int
pin (struct xs_maptree *t, struct node *n)
{
  if (t->npinned == t->pinned_cap) {
    size_t cap = t->pinned_cap ? 2 * t->pinned_cap : 64;
    struct node **grown = realloc (t->pinned, cap * sizeof *grown);

    if (grown == NULL) {
      xs_error ("cannot track a block map's changed pages: %m");
      return -1;
    }
    t->pinned = grown;
    t->pinned_cap = cap;
  }
  t->pinned[t->npinned++] = n;
  return 0;
}

static void
unhash (struct xs_maptree *t, struct node *n)
{
  struct node **p = &t->buckets[bucket_of (t, n->level, n->index)];

  while (*p != n)
    p = &(*p)->hash_next;
  *p = n->hash_next;
  t->nnodes--;
}

/* A new node for (LEVEL, INDEX), in the table, not in any list. */
static struct node *
insert_node (struct xs_maptree *t, unsigned level, uint64_t index)
{
  struct node *n;
  size_t b;

  if (t->nnodes >= t->nbuckets && grow_buckets (t) == -1)
    return NULL;
  n = calloc (1, sizeof *n);
  if (n == NULL) {
    xs_error ("cannot allocate a block map page: %m");
    return NULL;
  }
  n->level = level;
  n->index = index;
  b = bucket_of (t, level, index);
  n->hash_next = t->buckets[b];
  t->buckets[b] = n;
  t->nnodes++;
  return n;
}

static void
drop_node (struct xs_maptree *t, struct node *n)
{
  if (!is_pinned (n))
    lru_unlink (t, n);
  unhash (t, n);
  free (n);
}

/* Keep at most CACHE_PAGES evictable nodes.  Called only where no node
 * pointer is held.
 */
static void
trim (struct xs_maptree *t)
{
  while (t->nevictable > CACHE_PAGES)
    drop_node (t, t->lru_tail);
}

/* Read page ID as node (LEVEL, INDEX). */
static struct node *
load_node (struct xs_maptree *t, unsigned level, uint64_t index,
           const struct xs_hash128 *id)
{
  char reason[XS_MAPTREE_REASON_MAX], hex[XS_HASH128_HEX_LEN + 1];
  uint64_t first = node_first_block (level, index);
  void *data = NULL;
  size_t len;
  struct node *n;
  int r;

  xs_hash128_to_hex (id, hex);
  if (t->repo == NULL) {
    xs_error ("map page %s: no repository to read it from", hex);
    return NULL;
  }
  r = xs_repo_get_page (t->repo, id, &data, &len);
  if (r == 1 && t->source)
    r = xs_repo_get_page (t->source, id, &data, &len);
  if (r == 1)
    xs_error ("map page %s (level %u, from block %" PRIu64 ") is missing "
              "from the repository of account '%s'", hex, level, first,
              xs_repo_account (t->repo));
  if (r != 0)
    return NULL;
  n = insert_node (t, level, index);
  if (n == NULL) {
    free (data);
    return NULL;
  }
  if (xs_maptree_page_parse (data, len, id, level, index, t->nblocks,
                             n->entries, reason) == -1) {
    xs_error ("map page %s (level %u, from block %" PRIu64 ") of account "
              "'%s' is bad: %s", hex, level, first,
              xs_repo_account (t->repo), reason);
    free (data);
    unhash (t, n);
    free (n);
    return NULL;
  }
  free (data);
  n->id = *id;
  n->stored = true;
  lru_push (t, n);
  t->stats.pages_read++;
  return n;
}

/* Node (LEVEL, INDEX), whose parent's entry is ENTRY: from the cache, or
 * read.  NULL with *ZERO set for a subtree of zeros; NULL without it on
 * error.
 */
static struct node *
find_node (struct xs_maptree *t, unsigned level, uint64_t index,
           const struct xs_hash128 *entry, bool *zero)
{
  struct node *n = lookup (t, level, index);

  *zero = false;
  if (n) {
    touch (t, n);
    return n;
  }
  if (xs_hash128_is_zero (entry)) {
    *zero = true;
    return NULL;
  }
  return load_node (t, level, index, entry);
}

/* ----- Life ----- */

static struct xs_maptree *
alloc_tree (uint64_t nblocks)
{
  struct xs_maptree *t = calloc (1, sizeof *t);

  if (t == NULL || (t->buckets = calloc (64, sizeof *t->buckets)) == NULL) {
    xs_error ("cannot allocate a block map: %m");
    free (t);
    return NULL;
  }
  t->nbuckets = 64;
  t->nblocks = nblocks;
  t->depth = xs_maptree_depth (nblocks);
  pthread_mutex_init (&t->lock, NULL);
  return t;
}

struct xs_maptree *
xs_maptree_new (uint64_t nblocks, const struct xs_hash128 *top)
{
  struct xs_maptree *t = alloc_tree (nblocks);

  if (t && top)
    t->top = *top;
  return t;
}

void
xs_maptree_free (struct xs_maptree *t)
{
  size_t i;

  if (t == NULL)
    return;
  for (i = 0; i < t->nbuckets; i++) {
    struct node *n = t->buckets[i], *next;

    for (; n; n = next) {
      next = n->hash_next;
      free (n);
    }
  }
  free (t->buckets);
  free (t->pinned);
  pthread_mutex_destroy (&t->lock);
  free (t);
}

void
xs_maptree_set_repo (struct xs_maptree *t, struct xs_repo *repo)
{
  t->repo = repo;
}

void
xs_maptree_set_source (struct xs_maptree *t, struct xs_repo *source)
{
  t->source = source;
}

uint64_t
xs_maptree_nblocks (const struct xs_maptree *t)
{
  return t->nblocks;
}

void
xs_maptree_top (struct xs_maptree *t, struct xs_hash128 *top)
{
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  *top = t->top;
  xs_lock_drop (&t->lock);
}

void
xs_maptree_stats (struct xs_maptree *t, struct xs_maptree_stats *stats)
{
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  *stats = t->stats;
  stats->pages_cached = t->nnodes;
  xs_lock_drop (&t->lock);
}

/* A node of the tree being built from flat entries: clean, unstored, its
 * id computed.  An all-zero node is not kept.
 */
static int
add_built_node (struct xs_maptree *t, unsigned level, uint64_t index,
                const struct xs_hash128 entries[XS_MAPTREE_FANOUT],
                struct xs_hash128 *id)
{
  uint8_t page[XS_MAPTREE_PAGE_MAX];
  size_t len = xs_maptree_page_encode (level, entries, page);
  struct node *n;

  memset (id, 0, sizeof *id);
  if (len == 0)
    return 0;
  xs_maptree_page_id (page, len, id);
  n = insert_node (t, level, index);
  if (n == NULL || pin (t, n) == -1)
    return -1;
  memcpy (n->entries, entries, sizeof n->entries);
  n->id = *id;
  return 0;
}

/* Build level LEVEL from the ids of level LEVEL - 1 (COUNT of them). */
static int
build_level (struct xs_maptree *t, unsigned level,
             const struct xs_hash128 *below, uint64_t count,
             struct xs_hash128 *out)
{
  struct xs_hash128 entries[XS_MAPTREE_FANOUT];
  uint64_t index, i;

  for (index = 0; index * XS_MAPTREE_FANOUT < count || index == 0;
       index++) {
    uint64_t first = index * XS_MAPTREE_FANOUT;
    uint64_t n = count - first < XS_MAPTREE_FANOUT ? count - first
      : XS_MAPTREE_FANOUT;

    memset (entries, 0, sizeof entries);
    for (i = 0; i < n && first < count; i++)
      entries[i] = below[first + i];
    if (add_built_node (t, level, index, entries, &out[index]) == -1)
      return -1;
  }
  return 0;
}

struct xs_maptree *
xs_maptree_from_entries (uint64_t nblocks, const struct xs_hash128 *entries)
{
  struct xs_maptree *t = alloc_tree (nblocks);
  struct xs_hash128 *ids = NULL;
  const struct xs_hash128 *below = entries;
  uint64_t count = nblocks;
  unsigned level;

  if (t == NULL)
    return NULL;
  for (level = 0; level < t->depth; level++) {
    uint64_t pages = count / XS_MAPTREE_FANOUT
      + (count % XS_MAPTREE_FANOUT != 0) + (count == 0);
    struct xs_hash128 *next = malloc (pages * sizeof *next);

    if (next == NULL) {
      xs_error ("cannot build a block map of %" PRIu64 " blocks: %m",
                nblocks);
      goto fail;
    }
    if (build_level (t, level, below, count, next) == -1) {
      free (next);
      goto fail;
    }
    free (ids);
    ids = next;
    below = ids;
    count = pages;
  }
  t->top = ids[0];
  free (ids);
  return t;

 fail:
  free (ids);
  xs_maptree_free (t);
  return NULL;
}

struct xs_maptree *
xs_maptree_copy (struct xs_maptree *t)
{
  struct xs_maptree *copy = alloc_tree (t->nblocks);
  size_t i;

  if (copy == NULL)
    return NULL;
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  copy->repo = t->repo;
  copy->source = t->source;
  copy->top = t->top;
  for (i = 0; i < t->npinned; i++) {
    const struct node *from = t->pinned[i];
    struct node *n = insert_node (copy, from->level, from->index);

    if (n == NULL || pin (copy, n) == -1) {
      xs_lock_drop (&t->lock);
      xs_maptree_free (copy);
      return NULL;
    }
    memcpy (n->entries, from->entries, sizeof n->entries);
    n->id = from->id;
    n->dirty = from->dirty;
    n->stored = from->stored;
    copy->ndirty += n->dirty;
  }
  xs_lock_drop (&t->lock);
  return copy;
}

/* ----- Reading and changing ----- */

/* Block BLOCK's entry, under the lock.  0 or -1. */
static int
get_locked (struct xs_maptree *t, uint64_t block, struct xs_hash128 *id)
{
  struct xs_hash128 entry = t->top;
  unsigned level;

  for (level = t->depth; level-- > 0;) {
    bool zero;
    struct node *n = find_node (t, level, index_of (block, level), &entry,
                                &zero);

    if (n == NULL) {
      memset (id, 0, sizeof *id);
      return zero ? 0 : -1;
    }
    entry = n->entries[slot_of (block, level)];
  }
  *id = entry;
  return 0;
}

static int
check_block (const struct xs_maptree *t, uint64_t block)
{
  if (block < t->nblocks)
    return 0;
  xs_error ("block %" PRIu64 " is past the end of the map (%" PRIu64
            " blocks)", block, t->nblocks);
  return -1;
}

int
xs_maptree_get (struct xs_maptree *t, uint64_t block, struct xs_hash128 *id)
{
  int r;

  if (check_block (t, block) == -1)
    return -1;
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  trim (t);
  r = get_locked (t, block, id);
  xs_lock_drop (&t->lock);
  return r;
}

/* N is changing: pin it until a commit writes it.  0 or -1. */
static int
mark_dirty (struct xs_maptree *t, struct node *n)
{
  if (n->dirty)
    return 0;
  if (n->stored) {              /* evictable until now */
    if (pin (t, n) == -1)
      return -1;
    lru_unlink (t, n);
  }
  n->dirty = true;
  t->ndirty++;
  return 0;
}

static int commit_locked (struct xs_maptree *t);

/* The path to BLOCK, made: PATH[level] for every level, new zero nodes
 * where the subtree was all zero.  0 or -1.
 */
static int
make_path (struct xs_maptree *t, uint64_t block, struct node **path)
{
  struct xs_hash128 entry = t->top;
  unsigned level;

  for (level = t->depth; level-- > 0;) {
    uint64_t index = index_of (block, level);
    bool zero;
    struct node *n = find_node (t, level, index, &entry, &zero);

    if (n == NULL && zero) {
      n = insert_node (t, level, index);
      if (n == NULL)
        return -1;
      n->stored = true;         /* nothing to store yet: all zero */
      lru_push (t, n);
    }
    if (n == NULL)
      return -1;
    path[level] = n;
    entry = n->entries[slot_of (block, level)];
  }
  return 0;
}

/* Set BLOCK to ID, under the lock: 1, 0 or -1 as xs_maptree_set. */
static int
set_locked (struct xs_maptree *t, uint64_t block, const struct xs_hash128 *id)
{
  struct node *path[XS_MAPTREE_MAX_DEPTH];
  struct xs_hash128 now;
  unsigned level;

  if (get_locked (t, block, &now) == -1)
    return -1;
  if (xs_hash128_equal (&now, id))
    return 0;
  if (make_path (t, block, path) == -1)
    return -1;
  /* Top down, so that a failure leaves no dirty node under a clean one. */
  for (level = t->depth; level-- > 0;)
    if (mark_dirty (t, path[level]) == -1)
      return -1;
  path[0]->entries[slot_of (block, 0)] = *id;
  /* Written out early, pages must not name pages only the source has
   * (a page in a repository has everything under it there), so a tree
   * with a source keeps its changes until its commit adopts them.
   */
  if (t->ndirty > DIRTY_PAGES_MAX && t->source == NULL
      && commit_locked (t) == -1)
    return -1;
  return 1;
}

int
xs_maptree_set (struct xs_maptree *t, uint64_t block,
                const struct xs_hash128 *id)
{
  int r;

  if (check_block (t, block) == -1)
    return -1;
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  trim (t);
  r = set_locked (t, block, id);
  xs_lock_drop (&t->lock);
  return r;
}

/* ----- Committing ----- */

/* Write node N (pinned) and give its id to its parent.  A node of zeros is
 * dropped instead: its parent's entry becomes zero.
 */
static int
write_node (struct xs_maptree *t, struct node *n)
{
  uint8_t page[XS_MAPTREE_PAGE_MAX];
  size_t len = xs_maptree_page_encode (n->level, n->entries, page);
  struct node *parent;

  if (n->dirty) {
    memset (&n->id, 0, sizeof n->id);
    if (len > 0)
      xs_maptree_page_id (page, len, &n->id);
  }
  if (len > 0) {
    int r;

    if (t->repo == NULL) {
      xs_error ("cannot write a block map: no repository");
      return -1;
    }
    r = xs_repo_put_page (t->repo, &n->id, page, len, false);
    if (r == -1)
      return -1;
    t->stats.pages_written += r;
  }
  if (n->level + 1 == t->depth)
    t->top = n->id;
  else {
    parent = lookup (t, n->level + 1, n->index >> XS_MAPTREE_FANOUT_SHIFT);
    if (parent)                 /* pinned too, unless unstored and clean */
      parent->entries[n->index & (XS_MAPTREE_FANOUT - 1)] = n->id;
  }
  t->ndirty -= n->dirty;
  n->dirty = false;
  n->stored = true;
  return 0;
}

/* Write every pinned node, children first, then sync.  Under the lock.
 * The pinned list is rebuilt with whatever fails, so nothing is lost.
 */
static int
commit_locked (struct xs_maptree *t)
{
  unsigned level;
  size_t i;
  int r = 0;

  for (level = 0; level < t->depth && r == 0; level++)
    for (i = 0; i < t->npinned && r == 0; i++)
      if (t->pinned[i]->level == level && is_pinned (t->pinned[i]))
        r = write_node (t, t->pinned[i]);
  if (r == 0 && t->repo && xs_repo_sync (t->repo) == -1)
    r = -1;
  /* Keep the pinned ones (after a failure); release the rest. */
  {
    size_t kept = 0;

    for (i = 0; i < t->npinned; i++) {
      struct node *n = t->pinned[i];

      if (is_pinned (n))
        t->pinned[kept++] = n;
      else if (xs_hash128_is_zero (&n->id)) {
        unhash (t, n);
        free (n);
      }
      else
        lru_push (t, n);
    }
    t->npinned = kept;
  }
  trim (t);
  return r;
}

static int walk_range (struct xs_maptree *t, uint64_t first, uint64_t count,
                       xs_maptree_page_fn page_fn,
                       xs_maptree_block_fn block_fn, void *opaque);

/* The pages to adopt from the source, in the order the walk met them. */
struct adoption {
  struct xs_maptree *t;
  struct xs_hash128 *ids;
  size_t n, cap;
};

/* A page the repository has has everything under it there (pages are
 * written children first, after their chunks): skip it.
 */
static int
adopt_page (const struct xs_hash128 *id, unsigned level, void *opaque)
{
  struct adoption *a = opaque;
  int r = xs_repo_has_page (a->t->repo, id);

  if (r != 0)
    return r;
  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 64;
    struct xs_hash128 *grown = realloc (a->ids, cap * sizeof *grown);

    if (grown == NULL) {
      xs_error ("cannot list the map pages to copy: %m");
      return -1;
    }
    a->ids = grown;
    a->cap = cap;
  }
  a->ids[a->n++] = *id;
  return 0;
}

/* Copy into T's repository the pages its map uses that only the source
 * has, children before parents (the reverse of the walk's order).  The
 * walk read, and so checked, every one of them.  Not under the lock.
 */
static int
adopt_from_source (struct xs_maptree *t)
{
  struct adoption a = { .t = t };
  size_t i;
  int r = 0;

  if (t->source == NULL || t->repo == NULL)
    return 0;
  if (walk_range (t, 0, t->nblocks, adopt_page, NULL, &a) != 0)
    r = -1;
  for (i = a.n; r == 0 && i-- > 0;) {
    void *data;
    size_t len;
    int got = xs_repo_get_page (t->source, &a.ids[i], &data, &len);

    if (got == 1) {
      char hex[XS_HASH128_HEX_LEN + 1];

      xs_hash128_to_hex (&a.ids[i], hex);
      xs_error ("cannot copy map page %s: it is gone from account '%s'",
                hex, xs_repo_account (t->source));
    }
    if (got != 0)
      r = -1;
    else {
      r = xs_repo_put_page (t->repo, &a.ids[i], data, len, false);
      if (r == 1) {
        xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
        t->stats.pages_written++;
        xs_lock_drop (&t->lock);
      }
      r = r == -1 ? -1 : 0;
      free (data);
    }
  }
  free (a.ids);
  return r;
}

int
xs_maptree_commit (struct xs_maptree *t, struct xs_hash128 *top)
{
  int r;

  if (adopt_from_source (t) == -1)
    return -1;
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  r = commit_locked (t);
  if (r == 0)
    *top = t->top;
  xs_lock_drop (&t->lock);
  return r;
}

bool
xs_maptree_has_changes (struct xs_maptree *t)
{
  bool changed;

  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  changed = t->ndirty > 0;
  xs_lock_drop (&t->lock);
  return changed;
}

/* ----- Walking ----- */

/* What a walk knows of one node, copied out under the lock. */
struct view {
  bool zero;                    /* a subtree of zeros */
  bool known;                   /* id is its id (it is not dirty) */
  bool stored;
  struct xs_hash128 id;
  struct xs_hash128 entries[XS_MAPTREE_FANOUT];
  /* For a dirty inner node: which children are dirty (their entries
   * here are stale).  All false for a clean node.
   */
  bool child_dirty[XS_MAPTREE_FANOUT];
};

/* View node (LEVEL, INDEX) whose parent's entry is ENTRY.  0 or -1. */
static int
view_node (struct xs_maptree *t, unsigned level, uint64_t index,
           const struct xs_hash128 *entry, struct view *v)
{
  struct node *n;
  bool zero;
  unsigned i;
  int r = 0;

  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  trim (t);
  n = find_node (t, level, index, entry, &zero);
  memset (v->child_dirty, 0, sizeof v->child_dirty);
  v->zero = zero;
  if (n == NULL) {
    r = zero ? 0 : -1;
    v->known = true;
    v->stored = true;
    memset (&v->id, 0, sizeof v->id);
    memset (v->entries, 0, sizeof v->entries);
  }
  else {
    v->known = !n->dirty;
    v->stored = n->stored;
    v->id = n->id;
    memcpy (v->entries, n->entries, sizeof v->entries);
    if (n->dirty && level > 0)
      for (i = 0; i < XS_MAPTREE_FANOUT; i++) {
        const struct node *child = lookup (t, level - 1,
                                           (index << XS_MAPTREE_FANOUT_SHIFT)
                                           + i);

        v->child_dirty[i] = child && child->dirty;
      }
  }
  xs_lock_drop (&t->lock);
  return r;
}

/* The views of one walk, one per level (two for a diff). */
static struct view *
alloc_views (unsigned depth, unsigned per_level)
{
  struct view *views = malloc (depth * per_level * sizeof *views);

  if (views == NULL)
    xs_error ("cannot walk a block map: %m");
  return views;
}

struct walk {
  struct xs_maptree *t;
  struct view *views;           /* [level] */
  uint64_t first, end;          /* the blocks asked for */
  xs_maptree_page_fn page_fn;
  xs_maptree_block_fn block_fn;
  void *opaque;
};

static int
walk_node (struct walk *w, unsigned level, uint64_t index,
           const struct xs_hash128 *entry)
{
  struct view *v = &w->views[level];
  uint64_t base = node_first_block (level, index);
  unsigned i, child_shift = XS_MAPTREE_FANOUT_SHIFT * level;
  int r;

  if (view_node (w->t, level, index, entry, v) == -1)
    return -1;
  if (v->zero)
    return 0;
  if (w->page_fn && v->known && v->stored
      && (r = w->page_fn (&v->id, level, w->opaque)) != 0)
    return r == 1 ? 0 : r;
  for (i = 0; i < XS_MAPTREE_FANOUT; i++) {
    uint64_t child_first = base + ((uint64_t) i << child_shift);
    uint64_t child_end = child_first + ((uint64_t) 1 << child_shift);

    if (child_first >= w->end || child_first >= w->t->nblocks)
      break;
    if (child_end <= w->first)
      continue;
    if (xs_hash128_is_zero (&v->entries[i]) && !v->child_dirty[i])
      continue;
    if (level == 0)
      r = w->block_fn ? w->block_fn (child_first, &v->entries[i], w->opaque)
        : 0;
    else {
      /* The child's walk reuses the views below this one, so copy the
       * entry it needs first.
       */
      struct xs_hash128 child = v->entries[i];

      r = walk_node (w, level - 1, (index << XS_MAPTREE_FANOUT_SHIFT) + i,
                     &child);
    }
    if (r != 0)
      return r;
  }
  return 0;
}

static int
walk_range (struct xs_maptree *t, uint64_t first, uint64_t count,
            xs_maptree_page_fn page_fn, xs_maptree_block_fn block_fn,
            void *opaque)
{
  struct walk w = {
    .t = t, .first = first, .end = first + count < first ? UINT64_MAX
    : first + count, .page_fn = page_fn, .block_fn = block_fn,
    .opaque = opaque,
  };
  struct xs_hash128 top;
  int r;

  if (first >= t->nblocks || count == 0)
    return 0;
  w.views = alloc_views (t->depth, 1);
  if (w.views == NULL)
    return -1;
  xs_lock_take (&t->lock, XS_LOCK_MAPTREE, 0);
  top = t->top;
  xs_lock_drop (&t->lock);
  r = walk_node (&w, t->depth - 1, 0, &top);
  free (w.views);
  return r;
}

int
xs_maptree_for_each (struct xs_maptree *t, uint64_t first, uint64_t count,
                     xs_maptree_block_fn fn, void *opaque)
{
  return walk_range (t, first, count, NULL, fn, opaque);
}

int
xs_maptree_walk (struct xs_maptree *t, xs_maptree_page_fn page_fn,
                 xs_maptree_block_fn block_fn, void *opaque)
{
  return walk_range (t, 0, t->nblocks, page_fn, block_fn, opaque);
}

/* ----- Comparing ----- */

struct diff {
  struct xs_maptree *a, *b;
  struct view *views;           /* [2 * level], [2 * level + 1] */
  int (*fn) (uint64_t first, uint64_t count, void *opaque);
  void *opaque;
  uint64_t run_first, run_count;        /* the run being gathered */
};

/* Blocks [FIRST, FIRST + COUNT) differ: extend the run or emit it. */
static int
differ (struct diff *d, uint64_t first, uint64_t count)
{
  int r;

  if (d->run_count > 0 && d->run_first + d->run_count == first) {
    d->run_count += count;
    return 0;
  }
  if (d->run_count > 0 && (r = d->fn (d->run_first, d->run_count,
                                      d->opaque)) != 0)
    return r;
  d->run_first = first;
  d->run_count = count;
  return 0;
}

static int
diff_node (struct diff *d, unsigned level, uint64_t index,
           const struct xs_hash128 *entry_a, const struct xs_hash128 *entry_b)
{
  struct view *va = &d->views[2 * level], *vb = &d->views[2 * level + 1];
  uint64_t base = node_first_block (level, index), nblocks = d->a->nblocks;
  unsigned i, child_shift = XS_MAPTREE_FANOUT_SHIFT * level;
  int r;

  if (view_node (d->a, level, index, entry_a, va) == -1
      || view_node (d->b, level, index, entry_b, vb) == -1)
    return -1;
  if (va->known && vb->known && xs_hash128_equal (&va->id, &vb->id))
    return 0;
  for (i = 0; i < XS_MAPTREE_FANOUT; i++) {
    uint64_t child_first = base + ((uint64_t) i << child_shift);
    struct xs_hash128 ea = va->entries[i], eb = vb->entries[i];

    if (child_first >= nblocks)
      break;
    if (!va->child_dirty[i] && !vb->child_dirty[i]
        && xs_hash128_equal (&ea, &eb))
      continue;
    if (level == 0)
      r = differ (d, child_first, 1);
    else
      r = diff_node (d, level - 1, (index << XS_MAPTREE_FANOUT_SHIFT) + i,
                     &ea, &eb);
    if (r != 0)
      return r;
  }
  return 0;
}

int
xs_maptree_diff (struct xs_maptree *a, struct xs_maptree *b,
                 int (*fn) (uint64_t first, uint64_t count, void *opaque),
                 void *opaque)
{
  struct diff d = { .a = a, .b = b, .fn = fn, .opaque = opaque };
  struct xs_hash128 top_a, top_b;
  int r;

  if (a->nblocks != b->nblocks) {
    xs_error ("cannot compare block maps of %" PRIu64 " and %" PRIu64
              " blocks", a->nblocks, b->nblocks);
    return -1;
  }
  if (a->nblocks == 0)
    return 0;
  d.views = alloc_views (a->depth, 2);
  if (d.views == NULL)
    return -1;
  xs_lock_take (&a->lock, XS_LOCK_MAPTREE, 0);
  top_a = a->top;
  xs_lock_drop (&a->lock);
  xs_lock_take (&b->lock, XS_LOCK_MAPTREE, 0);
  top_b = b->top;
  xs_lock_drop (&b->lock);
  r = diff_node (&d, a->depth - 1, 0, &top_a, &top_b);
  if (r == 0 && d.run_count > 0)
    r = fn (d.run_first, d.run_count, opaque);
  free (d.views);
  return r;
}
