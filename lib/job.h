/* xsnap: jobs — long operations (copies) recorded in the catalog so that
 * both sides can see them, with their progress, while they run and after.
 *
 * A job is 'running' from its start to its end, then 'done' or 'failed'
 * (with the error).  The process running it records its pid; a running
 * job whose process is gone is failed by the next look at the jobs (it
 * can then be started again: copies transfer only what is missing).
 */
#ifndef XSNAP_JOB_H
#define XSNAP_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"
#include "volume.h"

struct xs_job {
  char id[XS_ID_MAX];           /* "job-…" */
  char *kind;                   /* copy */
  char *actor;                  /* who started it */
  char *source_account, *source_region, *source_snapshot;
  char *dest_account, *dest_region, *dest_snapshot;
  char *status;                 /* running, done, failed */
  char *error;                  /* why it failed, or "" */
  uint64_t total_bytes;         /* stored bytes the source references */
  uint64_t done_bytes;          /* of those, present at the destination */
  uint64_t sent_bytes;          /* of those, transferred by this job */
  int64_t created_ns, updated_ns;
};

extern void xs_job_clear (struct xs_job *job);
extern json_t *xs_job_to_json (const struct xs_job *job);

/* Record JOB as running (its id is made here).  When CROSS_REGION, at
 * most MAX_CROSS_REGION cross-region jobs of JOB->actor may run at once:
 * one more is refused, naming the running ones.  Atomic with the check.
 */
extern int xs_job_start (struct xs_store *store, struct xs_job *job,
                         bool cross_region, int64_t max_cross_region);

extern int xs_job_progress (struct xs_store *store, const char *id,
                            uint64_t done_bytes, uint64_t sent_bytes);

/* End job ID: done (ERROR NULL) or failed with ERROR. */
extern int xs_job_finish (struct xs_store *store, const char *id,
                          const char *dest_snapshot, const char *error);

/* Call FN for each job ACCOUNT started, copies from it and copies to it
 * (NULL: all), newest first.  SOURCE_SNAPSHOT, if not NULL, keeps only
 * the jobs copying that snapshot.
 */
extern int xs_job_list (struct xs_store *store, const char *account,
                        const char *source_snapshot,
                        int (*fn) (const struct xs_job *job, void *opaque),
                        void *opaque);

#endif /* XSNAP_JOB_H */
