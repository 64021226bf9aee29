/* xsnap: the saved state of an interrupted receive, and resume tokens.
 *
 * A receive that does not reach the end of its stream (the input ended,
 * the sender or the receiver was stopped, a frame was damaged in transit)
 * keeps what arrived: the stream's header, and a journal of the blocks
 * received so far whose chunks are durable.  A resume token names the
 * stream and the next block the receiver needs, authenticated by the
 * receiving store (HMAC-SHA256 with a random per-store key kept in the
 * catalog's settings), so `xsnap send --resume TOKEN` can send only the
 * rest and a forged or stale token is refused.
 *
 * Files: STORE/regions/REGION/receive/ACCOUNT/STREAM-ID, one per stream,
 * locked (flock) by the receive that uses it.  docs/FORMAT.md, "Receive
 * state (version 1)", has the layout.
 */
#ifndef XSNAP_RECVSTATE_H
#define XSNAP_RECVSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"
#include "catalog/store.h"
#include "repo/stream.h"

/* Most entries in one journal batch. */
#define XS_RECVSTATE_BATCH_MAX 65536

struct xs_recvstate_entry {
  uint64_t block;
  struct xs_hash128 id;         /* zero for a zero block */
};

struct xs_recvstate;

/* Open, creating it empty if need be, and lock the state of STREAM_ID in
 * SCOPE.  Refused (reported) while another receive of the stream runs.
 */
extern struct xs_recvstate *xs_recvstate_open (struct xs_store *store,
                                               const struct xs_scope *scope,
                                               const char *stream_id);
/* Unlock and close (the file stays unless removed). */
extern void xs_recvstate_close (struct xs_recvstate *st);

/* Read the saved state: the header into *INFO (the caller clears it),
 * FN for every journal entry in block order, the next block the receive
 * needs and the bytes of chunks it stored.  A torn last batch (a crash
 * while appending) is ignored.  Returns 0, 1 if there is no saved state
 * (an empty or unreadable file: nothing reported), or -1 with an error.
 */
extern int xs_recvstate_load (struct xs_recvstate *st,
                              struct xs_stream_info *info,
                              int (*fn) (const struct xs_recvstate_entry *e,
                                         void *opaque),
                              void *opaque, uint64_t *next_block,
                              uint64_t *stored_bytes);

/* Start afresh for the stream described by INFO (durably). */
extern int xs_recvstate_start (struct xs_recvstate *st,
                               const struct xs_stream_info *info);

/* Append N entries (the chunks they name must be durable already) and
 * the new next block and stored bytes, durably.
 */
extern int xs_recvstate_append (struct xs_recvstate *st,
                                const struct xs_recvstate_entry *entries,
                                size_t n, uint64_t next_block,
                                uint64_t stored_bytes);

/* Delete the saved state (the lock is held until close). */
extern int xs_recvstate_remove (struct xs_recvstate *st);

/* The token saying "stream STREAM_ID of SCOPE needs NEXT_BLOCK onwards". */
extern int xs_recvstate_make_token (struct xs_store *store,
                                    const struct xs_scope *scope,
                                    const char *stream_id,
                                    uint64_t next_block,
                                    char token[XS_STREAM_TOKEN_MAX]);

/* Check that TOKEN was made by this store for SCOPE.  Returns 0, or -1
 * with an error (forged, edited, or from another store or account).
 */
extern int xs_recvstate_check_token (struct xs_store *store,
                                     const struct xs_scope *scope,
                                     const char *token);

/* One saved state, as listed. */
struct xs_recvstate_summary {
  const struct xs_stream_info *info;
  uint64_t next_block;
  uint64_t blocks_received;     /* journal entries */
  uint64_t stored_bytes;
  bool active;                  /* a receive is using it now */
};

/* Call FN for each saved state of SCOPE, in stream id order.  States that
 * cannot be read are skipped.
 */
extern int xs_recvstate_list (struct xs_store *store,
                              const struct xs_scope *scope,
                              int (*fn) (const struct xs_recvstate_summary *s,
                                         void *opaque),
                              void *opaque);

/* Call FN for each chunk id the saved states of REGION name (for gc, so
 * that it keeps the chunks of interrupted receives).
 */
extern int xs_recvstate_chunks (struct xs_store *store, const char *region,
                                int (*fn) (const struct xs_hash128 *id,
                                           void *opaque),
                                void *opaque);

#endif /* XSNAP_RECVSTATE_H */
