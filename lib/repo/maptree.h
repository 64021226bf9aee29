/* xsnap: the block map of a snapshot as a tree of pages.
 *
 * A snapshot maps every block of its volume to the id of the chunk that
 * holds it.  At 64 TiB in 512 KiB blocks that map has 2^27 entries (2 GiB),
 * while an hourly snapshot changes a few of them, so the map is kept as a
 * tree of content-addressed pages, as ZFS keeps block pointers and git
 * keeps trees: a leaf page holds the ids of 256 consecutive blocks, an
 * inner page the ids of 256 pages of the level below, and the top page's
 * id names the whole map.  A subtree of zero blocks has the zero id and is
 * not stored.  Changing a block rewrites the pages on its path only;
 * everything else is shared, by reference, with the snapshots that have
 * it.  docs/FORMAT.md, "Map page (version 1)", has the byte layout.
 *
 * A page's id is the first 16 bytes of the SHA-256 of its bytes, checked
 * on every read, so the top id pins every page under it: a damaged, stale,
 * swapped or foreign page is an error, never a wrong block.  Pages live in
 * the repository (xs_repo_put_page); a tree reads them on demand and keeps
 * recently used ones, so what it costs follows the blocks it is asked
 * about, not the volume.
 *
 * One tree may be used by many threads at once: each call takes the
 * tree's lock (XS_LOCK_MAPTREE), across the reading and writing of pages.
 * Callbacks are called without it.
 */
#ifndef XSNAP_MAPTREE_H
#define XSNAP_MAPTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

#define XS_MAPTREE_FANOUT 256u
#define XS_MAPTREE_FANOUT_SHIFT 8
#define XS_MAPTREE_PAGE_VERSION 1
#define XS_MAPTREE_PAGE_HEADER 16
#define XS_MAPTREE_PAGE_MAX \
  (XS_MAPTREE_PAGE_HEADER + XS_MAPTREE_FANOUT * sizeof (struct xs_hash128))
/* Enough for 2^64 blocks; a manifest allows 2^32 (four levels). */
#define XS_MAPTREE_MAX_DEPTH 8

struct xs_repo;
struct xs_maptree;

/* The number of levels of the tree of a map of NBLOCKS blocks: at least
 * one, and enough that FANOUT^depth >= NBLOCKS.
 */
extern unsigned xs_maptree_depth (uint64_t nblocks);

/* A tree of NBLOCKS blocks whose top page is TOP (NULL or zero: every
 * block zero).  Its pages are read from the repository given with
 * xs_maptree_set_repo.  NULL with an error.
 */
extern struct xs_maptree *xs_maptree_new (uint64_t nblocks,
                                          const struct xs_hash128 *top);

/* A tree holding ENTRIES (NBLOCKS of them) in memory, none of it stored
 * yet: a flat map read from an old manifest.  Its pages are written by
 * the first commit that keeps them.  NULL with an error.
 */
extern struct xs_maptree *xs_maptree_from_entries (
  uint64_t nblocks, const struct xs_hash128 *entries);

/* A tree with the same content as T, sharing its repository, for a child
 * map to change.  Pages T has not stored yet are copied.  NULL with an
 * error.
 */
extern struct xs_maptree *xs_maptree_copy (struct xs_maptree *t);

extern void xs_maptree_free (struct xs_maptree *t);

/* Where T reads and writes pages; REPO is not owned and must outlive its
 * use.  A tree without one can hold only what is in memory.
 */
extern void xs_maptree_set_repo (struct xs_maptree *t, struct xs_repo *repo);

/* Where T's pages were until now, if not in its repository (a copy into
 * another region or account, a receive onto a base shared from another
 * account): pages missing from the repository are read from SOURCE, and
 * a commit first copies into the repository every page it will refer to
 * that is only there (children first), so that the committed map stands
 * on its own.  SOURCE is not owned; NULL: none.
 */
extern void xs_maptree_set_source (struct xs_maptree *t,
                                   struct xs_repo *source);

extern uint64_t xs_maptree_nblocks (const struct xs_maptree *t);

/* The top page's id as of the last commit (or as given, or as computed
 * by xs_maptree_from_entries).
 */
extern void xs_maptree_top (struct xs_maptree *t, struct xs_hash128 *top);

/* Block BLOCK's entry: 0, or -1 with an error. */
extern int xs_maptree_get (struct xs_maptree *t, uint64_t block,
                           struct xs_hash128 *id);

/* Set block BLOCK's entry: 1 if it changed, 0 if it was ID already, or
 * -1 with an error.  Changed pages stay in memory until a commit; when
 * many have piled up they are written out early (so a map of any size is
 * built in bounded memory), and a later commit writes the pages above;
 * not in a tree with a source, whose pages wait for the commit that
 * adopts what they name.
 */
extern int xs_maptree_set (struct xs_maptree *t, uint64_t block,
                           const struct xs_hash128 *id);

/* Copy in the pages only the source has (see xs_maptree_set_source), then
 * write every page changed or not stored yet, children before parents,
 * then make them durable; *TOP receives the top page's id (zero for a
 * map of zeros).  0, or -1 with an error.
 */
extern int xs_maptree_commit (struct xs_maptree *t, struct xs_hash128 *top);

/* Whether T has changes no commit has written yet. */
extern bool xs_maptree_has_changes (struct xs_maptree *t);

/* Calls FN for each block in [FIRST, FIRST + COUNT) with a non-zero
 * entry, in increasing order; zero subtrees are skipped unread.  A
 * non-zero return from FN stops and is returned; otherwise 0, or -1.
 */
typedef int (*xs_maptree_block_fn) (uint64_t block,
                                    const struct xs_hash128 *id,
                                    void *opaque);
extern int xs_maptree_for_each (struct xs_maptree *t, uint64_t first,
                                uint64_t count, xs_maptree_block_fn fn,
                                void *opaque);

/* Walk the whole tree: PAGE_FN (may be NULL) is called for each stored
 * page before what is under it, and returns 0 to go into it, 1 to skip
 * it, anything else to stop; BLOCK_FN (may be NULL) for each non-zero
 * block not under a skipped page.  Returns what stopped it, 0, or -1.
 */
typedef int (*xs_maptree_page_fn) (const struct xs_hash128 *id,
                                   unsigned level, void *opaque);
extern int xs_maptree_walk (struct xs_maptree *t, xs_maptree_page_fn page_fn,
                            xs_maptree_block_fn block_fn, void *opaque);

/* Calls FN for each maximal run [first, first + count) of blocks whose
 * entries differ between A and B (of the same number of blocks), in
 * increasing order, skipping subtrees whose ids are equal unread.  A
 * non-zero return from FN stops and is returned; otherwise 0, or -1.
 */
extern int xs_maptree_diff (struct xs_maptree *a, struct xs_maptree *b,
                            int (*fn) (uint64_t first, uint64_t count,
                                       void *opaque),
                            void *opaque);

/* ----- Pages, for readers of stored pages (verify, copy, fuzzing) ----- */

/* The id of the page of LEN bytes at DATA. */
extern void xs_maptree_page_id (const void *data, size_t len,
                                struct xs_hash128 *id);

/* Parse and check page bytes (outside input) as the page at INDEX of
 * LEVEL of a tree of NBLOCKS blocks: its layout, that it is ID (when not
 * NULL), that it is canonical and that nothing points past the map's end.
 * ENTRIES receives all FANOUT entries (zero past the stored ones).  0, or
 * -1 with errno = EIO and REASON saying why (nothing reported).
 */
#define XS_MAPTREE_REASON_MAX 160
extern int xs_maptree_page_parse (const void *data, size_t len,
                                  const struct xs_hash128 *id, unsigned level,
                                  uint64_t index, uint64_t nblocks,
                                  struct xs_hash128 entries[XS_MAPTREE_FANOUT],
                                  char reason[XS_MAPTREE_REASON_MAX]);

/* The level a stored page's header claims, unchecked (for gc, which
 * deletes pages parents first), or -1 if it is not a page's header.
 */
extern int xs_maptree_page_level (const void *data, size_t len);

/* The canonical bytes of a page of LEVEL holding ENTRIES into OUT; the
 * length, or 0 when every entry is zero (such a page is never stored).
 */
extern size_t xs_maptree_page_encode (
  unsigned level, const struct xs_hash128 entries[XS_MAPTREE_FANOUT],
  uint8_t out[XS_MAPTREE_PAGE_MAX]);

/* Statistics, for tests and benchmarks. */
struct xs_maptree_stats {
  uint64_t pages_read;
  uint64_t pages_written;       /* new to the repository */
  uint64_t pages_cached;        /* now in memory */
};
extern void xs_maptree_stats (struct xs_maptree *t,
                              struct xs_maptree_stats *stats);

#endif /* XSNAP_MAPTREE_H */
