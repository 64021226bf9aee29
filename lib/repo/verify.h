/* xsnap: checking chunks, quietly, and verifying whole snapshots.
 *
 * Two callers need to know why a chunk is bad as text rather than as a
 * printed error: the snapshot reader, whose one error line must also name
 * the snapshot and the block ("snapshot db1@s1 (snap-...): block 17:
 * chunk 9f...: payload checksum mismatch"), and `xsnap verify`, which lists
 * every bad block with its reason.  Both use xs_chunk_decode_quiet, which
 * returns the reason instead of reporting it.
 */
#ifndef XSNAP_VERIFY_H
#define XSNAP_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/manifest.h"
#include "repo/repo.h"


/* A decompression context.  One decoder belongs to one thread at a time. */
struct xs_chunk_decoder;

/* NULL with an error if out of memory. */
extern struct xs_chunk_decoder *xs_chunk_decoder_new (void);
extern void xs_chunk_decoder_free (struct xs_chunk_decoder *decoder);

/* Check the stored chunk (stored_len bytes) and decode it into plain,
 * which receives exactly plain_len bytes: the chunk must be chunk id and
 * its plaintext must be plain_len bytes long.  Returns 0, or 1 when the
 * chunk is bad, with reason set ("payload checksum mismatch", "truncated
 * (12 of 300 payload bytes)", ...) and errno = EIO.  Reports nothing.
 */
extern int xs_chunk_decode_checked (struct xs_chunk_decoder *decoder,
                                    const void *stored, size_t stored_len,
                                    const struct xs_hash128 *id,
                                    void *plain, size_t plain_len,
                                    char reason[XS_CHUNK_REASON_MAX]);

/* Fetch chunk id from repo and decode it as above.  Returns 0; 1 when
 * the chunk is bad or "missing" (reason set, errno = EIO, nothing
 * reported); or -1 when it could not be read at all (an I/O error of the
 * backend: reported by the backend, errno set).
 */
extern int xs_chunk_fetch_checked (struct xs_repo *repo,
                                   struct xs_chunk_decoder *decoder,
                                   const struct xs_hash128 *id,
                                   void *plain, size_t plain_len,
                                   char reason[XS_CHUNK_REASON_MAX]);

struct xs_verify_report {
  uint64_t blocks;              /* blocks in the manifest */
  uint64_t zero_blocks;         /* of which zero entries (no chunk) */
  uint64_t chunks_checked;      /* distinct chunks read and checked */
  uint64_t bad_blocks;          /* blocks whose chunk is bad */
};

/* Read and check every distinct chunk that manifest m references, once
 * each, with a few threads.  For each block whose chunk is bad, in
 * increasing block order, call bad (block, id, reason, opaque): blocks
 * sharing a bad chunk each get a call.  progress (may be NULL) is called
 * now and then with (chunks done, distinct chunks), last with done ==
 * total.  Both callbacks run on the calling thread.
 *
 * Returns 0 when every chunk is good, 1 when some are bad (the report
 * counts them; nothing was reported as an error), or -1 when the check
 * could not be completed (out of memory, or a backend failure other than
 * EIO on one chunk, which was reported).  A chunk that fails to read with
 * EIO (a bad disk sector) is a bad block, "unreadable (...)".  report is
 * filled in all cases as far as the check got.
 */
extern int xs_verify_snapshot (struct xs_repo *repo,
                               struct xs_manifest *m,
                               struct xs_verify_report *report,
                               void (*bad) (uint64_t block,
                                            const struct xs_hash128 *id,
                                            const char *reason,
                                            void *opaque),
                               void (*progress) (uint64_t done,
                                                 uint64_t total,
                                                 void *opaque),
                               void *opaque);

/* Repairing a damaged snapshot.  Chunks are named by their content, so
 * another repository holding the same chunk ids (the same account in
 * another region, under the same data key) holds the good bytes: each
 * bad chunk is read from there, verified against its id as a block of M,
 * and only then written over the damaged object (xs_repo_replace_chunk),
 * and read back and verified again.
 */
struct xs_repair_report {
  uint64_t chunks;              /* distinct bad chunks asked for */
  uint64_t repaired;            /* of those, replaced and verified */
};

/* Repair the chunks of BAD_BLOCKS (N blocks of M, as xs_verify_snapshot
 * named them; blocks sharing a chunk are repaired once) in REPO from
 * FROM.  For each chunk that could not be repaired NOT_REPAIRED (id,
 * reason) is called: "missing there too", "damaged there too: ..." —
 * its object in REPO is then left as it was.  Returns 0 when every chunk
 * was repaired, 1 when some were not, -1 on an error of a backend
 * (reported).
 */
extern int xs_verify_repair (struct xs_repo *repo, struct xs_repo *from,
                             struct xs_manifest *m,
                             const uint64_t *bad_blocks, size_t n,
                             struct xs_repair_report *report,
                             void (*not_repaired) (const struct xs_hash128 *id,
                                                   const char *reason,
                                                   void *opaque),
                             void *opaque);

#endif /* XSNAP_VERIFY_H */
