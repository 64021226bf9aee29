/* xsnap: receiving a replication stream (lib/repo/stream.h) into a store.
 *
 * A received snapshot keeps the sender's snapshot id (ids are unique per
 * store), so a later incremental stream finds its base by id; its parent
 * is that base and its creation method 'received'.  It is logically full
 * like every snapshot: its manifest is the base's entries with the
 * stream's records applied.
 *
 * Nothing becomes visible before the whole stream has verified: every
 * chunk is decoded and checked against its id before it is stored, and
 * the snapshot is committed (chunks durable, then the manifest, then the
 * catalog row) only after the trailer verified and the built manifest's
 * root equals the one the stream announced.  The region is locked against
 * gc (shared) for the whole receive.
 *
 * A receive that does not reach the end — the input ends early, a frame
 * is damaged in transit, the receiver is stopped, or a local error —
 * keeps what arrived (lib/ops/recvstate.h) and reports a resume token.  A
 * stream whose content is wrong (a chunk that fails verification, a
 * record that breaks the format's rules, a root that differs) is refused
 * and what it brought is discarded.
 */
#ifndef XSNAP_RECEIVE_H
#define XSNAP_RECEIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog/snapshot.h"
#include "catalog/store.h"
#include "repo/stream.h"

/* Receive the stream read from FD into SCOPE, naming the snapshot NAME
 * ("NAME" or "VOLUME@NAME"; NULL keeps the sender's names).
 *
 * Encryption: a raw stream's snapshot stays under the sender's key (and is
 * read here only by an account that holds the key, imported with `xsnap
 * key import` or granted); its chunks are verified whole if SCOPE's
 * account holds it, else by their headers (their payloads are
 * authenticated when read).  A re-encrypting stream — or any stream with
 * KEY_SPEC or ENCRYPT, or onto an encrypted base — is encrypted here:
 * under a new data key of key KEY_SPEC of the account (default: its
 * default key), or for an incremental stream under its base's.  Such a
 * stream must not refer to chunks by id (send --reencrypt never does).
 *
 * STOP, if not
 * NULL, is a flag a signal handler sets (read atomically): a read
 * interrupted while it is set ends the receive as if the input had
 * ended.  PROGRESS (may be NULL)
 * is told records done/total.  Returns 0 with *SNAP describing the new
 * snapshot, or -1 with an error (and, if the receive can be resumed, a
 * second line with the command that resumes it).
 */
extern int xs_receive (struct xs_store *store, const struct xs_scope *scope,
                       int fd, const char *name, const char *key_spec,
                       bool encrypt, const atomic_int *stop,
                       void (*progress) (uint64_t done, uint64_t total,
                                         void *opaque),
                       void *progress_opaque, struct xs_snapshot *snap);

/* An interrupted receive waiting to be resumed. */
struct xs_receive_pending {
  const struct xs_stream_info *info;
  char token[XS_STREAM_TOKEN_MAX];
  char command[512];            /* xsnap send ... --resume TOKEN */
  uint64_t next_block;
  uint64_t blocks_received;
  uint64_t stored_bytes;
  bool active;                  /* a receive is using it now */
};

/* Call FN for each interrupted receive of SCOPE. */
typedef int (*xs_receive_pending_fn) (const struct xs_receive_pending *p,
                                      void *opaque);
extern int xs_receive_list_pending (struct xs_store *store,
                                    const struct xs_scope *scope,
                                    xs_receive_pending_fn fn, void *opaque);

#endif /* XSNAP_RECEIVE_H */
