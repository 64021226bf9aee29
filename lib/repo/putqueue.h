/* xsnap: storing chunks in a repository from a thread of its own.
 *
 * A receive does two kinds of work per chunk: verifying it (user time:
 * decompress, hash) and storing it (kernel time: a new file, its inode,
 * a copy into the page cache).  Done one after the other they add up;
 * with the storing in a background thread they overlap.  Jobs are done
 * in the order given, so after a failure the jobs before it are stored
 * and none after it is tried.
 */
#ifndef XSNAP_PUTQUEUE_H
#define XSNAP_PUTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"
#include "repo/repo.h"

struct xs_putqueue;

/* Start a queue of at most DEPTH jobs storing into REPO (not taken
 * over: it must outlive the queue).
 */
extern struct xs_putqueue *xs_putqueue_new (struct xs_repo *repo,
                                            unsigned depth);

/* Queue a copy of STORED (LEN bytes, chunk ID), unsynced, as
 * xs_repo_put_chunk does; TAG names the job if it fails.  Waits while the
 * queue is full.  Returns -1 if an earlier job failed (reported then).
 */
extern int xs_putqueue_add (struct xs_putqueue *q,
                            const struct xs_hash128 *id, const void *stored,
                            size_t len, uint64_t tag);

/* Whether no job is queued or running. */
extern bool xs_putqueue_idle (struct xs_putqueue *q);

/* Wait until every queued job is done.  Adds the bytes of chunks that
 * were new to the repository to *STORED_BYTES.  Returns 0, or -1 if a job
 * failed, with *FAILED_TAG its tag (the jobs before it are stored); what
 * it reported on the queue's thread goes into the caller's error capture
 * (xs_error_capture_begin), as if reported there.
 */
extern int xs_putqueue_drain (struct xs_putqueue *q, uint64_t *stored_bytes,
                              uint64_t *failed_tag);

/* Stop the thread and free Q.  Queued jobs are done first unless
 * ABANDON.
 */
extern void xs_putqueue_free (struct xs_putqueue *q, bool abandon);

#endif /* XSNAP_PUTQUEUE_H */
