/* xsnap: sending a snapshot as a replication stream (lib/repo/stream.h).
 *
 * A full stream carries every non-zero block of the snapshot; an
 * incremental one (from a base snapshot of the same geometry) only the
 * blocks whose manifest entries differ, found by comparing the two
 * manifests without reading any data.  Chunks travel exactly as they are
 * stored (already compressed and self-checking; encrypted ones in a raw
 * stream).  A chunk that the receiver already has — one the base uses, or
 * one carried earlier in the same stream — is sent as a reference instead
 * of again.  A re-encrypting stream carries every chunk decrypted and in
 * full, without references: its receiver names chunks under its own key.
 *
 * The snapshot's region stays locked against gc (shared) from prepare to
 * free, so nothing the stream needs disappears while it is sent.
 */
#ifndef XSNAP_SEND_H
#define XSNAP_SEND_H

#include <stdint.h>

#include "catalog/store.h"
#include "repo/stream.h"

struct xs_send;

struct xs_send_stats {
  uint64_t records;             /* blocks the stream carries */
  uint64_t chunks;              /* ... with their chunk */
  uint64_t refs;                /* ... as a reference to a chunk */
  uint64_t zeros;               /* ... as zero */
  uint64_t chunk_bytes;         /* stored chunk bytes carried */
  uint64_t bytes;               /* the stream's length */
};

/* Plan the stream of SNAPSHOT (VOLUME@NAME or id) of SCOPE, incremental
 * from BASE unless NULL, resuming an interrupted receive from
 * RESUME_TOKEN unless NULL (only the blocks from the token's on are
 * sent).  MODE (NULL: "") is the stream's encryption (stream.h): an
 * encrypted snapshot is sent "raw" (its ciphertext; the base, if any,
 * under the same data key) or "reencrypt" (decrypted here, for a
 * receiver that encrypts under its own key); "" is refused for it.  NULL
 * with an error.
 */
extern struct xs_send *xs_send_prepare (struct xs_store *store,
                                        const struct xs_scope *scope,
                                        const char *snapshot,
                                        const char *base,
                                        const char *resume_token,
                                        const char *mode);
extern void xs_send_free (struct xs_send *s);

/* The stream's header, as it will be sent. */
extern const struct xs_stream_info *xs_send_info (const struct xs_send *s);

/* Produce the stream through WRITE (NULL: only count, reading the chunks
 * for their sizes).  PROGRESS (may be NULL) is told records done/total.
 * STATS may be NULL.  Returns 0, or -1 with an error.
 */
extern int xs_send_run (struct xs_send *s, xs_stream_write_fn write,
                        void *opaque,
                        void (*progress) (uint64_t done, uint64_t total,
                                          void *opaque),
                        void *progress_opaque, struct xs_send_stats *stats);

/* xs_send_run writing to FD (buffered). */
extern int xs_send_to_fd (struct xs_send *s, int fd,
                          void (*progress) (uint64_t done, uint64_t total,
                                            void *opaque),
                          void *progress_opaque,
                          struct xs_send_stats *stats);

#endif /* XSNAP_SEND_H */
