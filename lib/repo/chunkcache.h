/* xsnap: a shared cache of decoded chunks.
 *
 * Reading a snapshot in small pieces (a file system mounted from it, a VM
 * booting from a clone) would otherwise decompress and rehash a whole
 * block for every 4 KiB read.  One cache serves every reader of a server:
 * many snapshots share chunks, so the key is the chunk id (with the
 * plaintext length), never the snapshot.
 *
 * The cache is bounded in bytes of plaintext and evicts the least
 * recently used entry.  Entries are pinned while a reader copies out of
 * them, so an entry in use is never freed; the bound can be exceeded only
 * by entries in use or being loaded.  Concurrent misses on the same chunk
 * load it once: the first reader loads (outside the cache's lock), the
 * others wait for it.  A failed load leaves nothing behind: the waiters and
 * the next reader try again, and each failing reader gets its own error.
 *
 * All functions may be called from many threads at once.
 */
#ifndef XSNAP_CHUNKCACHE_H
#define XSNAP_CHUNKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"

struct xs_chunk_cache;

/* capacity_bytes bounds the plaintext bytes kept.  0 keeps nothing but
 * still makes concurrent loads of one chunk happen once.  NULL with an
 * error if out of memory.
 */
extern struct xs_chunk_cache *xs_chunk_cache_new (size_t capacity_bytes);

/* The capacity a server uses unless told otherwise: a quarter of the
 * machine's memory, at least 256 MiB.  It plays the page cache's part for
 * snapshot reads (a raw image file would be cached by the kernel), and
 * it holds only what has been read.
 */
#define XS_CHUNK_CACHE_MIN_DEFAULT ((size_t) 256 << 20)
extern size_t xs_chunk_cache_default_capacity (void);

/* No read may be in progress. */
extern void xs_chunk_cache_free (struct xs_chunk_cache *cache);

extern size_t xs_chunk_cache_capacity (const struct xs_chunk_cache *cache);

/* Fill buf with the len bytes of plaintext of chunk id, verified.  Called
 * without any lock held; reports its own errors and returns 0, or -1 with
 * errno set.
 */
typedef int (*xs_chunk_cache_load_fn) (void *opaque,
                                       const struct xs_hash128 *id,
                                       void *buf, size_t len);

/* Copy count bytes at offset within the plaintext of chunk id (len bytes
 * long; offset + count <= len) to dst.  On a miss, load (opaque, id, buf,
 * len) fills a new entry.  Returns 0, or -1 with errno set when load
 * failed (load reported why) or with an error when out of memory.
 */
extern int xs_chunk_cache_read (struct xs_chunk_cache *cache,
                                const struct xs_hash128 *id, size_t len,
                                void *dst, size_t offset, size_t count,
                                xs_chunk_cache_load_fn load, void *opaque);

/* Copy the whole of chunk id (len bytes) to dst and drop it from the
 * cache, waiting if it is being loaded: for a cache that stages chunks
 * for one reader each (a read-ahead), so that what was read is not kept.
 * Returns 1 if the chunk was there, 0 if not (or if its load failed).
 * Never fails.
 */
extern int xs_chunk_cache_take (struct xs_chunk_cache *cache,
                                const struct xs_hash128 *id, size_t len,
                                void *dst);

/* Whether the cache has chunk id (len bytes), or is loading it. */
extern bool xs_chunk_cache_has (struct xs_chunk_cache *cache,
                                const struct xs_hash128 *id, size_t len);

/* Load chunk id (len bytes) into the cache unless it is there or being
 * loaded, copying nothing out: for a read-ahead, so that the reader that
 * comes for it finds it (xs_chunk_cache_read waits for a load under
 * way).  Returns 0, or -1 with errno set when load failed (the entry is
 * dropped; a reader will load it again).
 */
extern int xs_chunk_cache_prefetch (struct xs_chunk_cache *cache,
                                    const struct xs_hash128 *id, size_t len,
                                    xs_chunk_cache_load_fn load,
                                    void *opaque);

/* Like xs_chunk_cache_read, without loading: returns 1 if the chunk was
 * cached (the bytes are copied), 0 if not (a miss; nothing changes).
 * Never fails.  For readers that would rather decode a whole block
 * straight into their own buffer than fill the cache.
 */
extern int xs_chunk_cache_lookup (struct xs_chunk_cache *cache,
                                  const struct xs_hash128 *id, size_t len,
                                  void *dst, size_t offset, size_t count);

/* Offer the verified plaintext of chunk id (len bytes) that a reader
 * decoded into its own buffer: the cache keeps a copy only if the chunk
 * was offered before (a doorkeeper remembers which were, approximately),
 * it has room for it without evicting anything, and does not have it
 * already.  So a scan that reads a snapshot once (a restore) costs no
 * memory, a second one fills a cache that has room (a third is served
 * without decoding), and no scan flushes it.  Never fails: out of memory
 * just keeps nothing.
 */
extern void xs_chunk_cache_offer (struct xs_chunk_cache *cache,
                                  const struct xs_hash128 *id, size_t len,
                                  const void *plain);

struct xs_chunk_cache_stats {
  uint64_t hits;                /* reads served from an entry */
  uint64_t misses;              /* reads that found no entry */
  uint64_t loads;               /* calls to a load function */
  uint64_t evictions;           /* entries dropped to make room */
  uint64_t offers_kept;         /* offered chunks that were kept */
  size_t bytes;                 /* plaintext bytes held now */
  size_t entries;               /* entries held now */
};

extern void xs_chunk_cache_stats (struct xs_chunk_cache *cache,
                                  struct xs_chunk_cache_stats *stats);

#endif /* XSNAP_CHUNKCACHE_H */
