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

#include "catalog/store.h"
#include "catalog/volume.h"

struct xs_job {
  char id[XS_ID_MAX];           /* "job-…" */
  char *kind;                   /* copy */
  char *actor;                  /* who started it */
  char *source_account, *source_region, *source_snapshot;
  char *dest_account, *dest_region, *dest_snapshot;
  char *name, *description;     /* of the copy */
  uint64_t bandwidth;           /* bytes per second, 0: no limit */
  char *dest_key;               /* the copy's key at the destination, or "" */
  bool encrypt;                 /* encrypt an unencrypted source */
  char *status;                 /* queued, running, done, failed */
  char *error;                  /* why it failed, or "" */
  uint64_t total_bytes;         /* stored bytes the source references */
  uint64_t done_bytes;          /* of those, present at the destination */
  uint64_t sent_bytes;          /* of those, transferred by this job */
  int64_t created_ns, updated_ns;
  int64_t owner_pid;            /* the process running it, 0 if none */
};

extern void xs_job_clear (struct xs_job *job);
extern json_t *xs_job_to_json (const struct xs_job *job);

/* Record JOB as running (its id is made here).  When CROSS_REGION, at
 * most MAX_CROSS_REGION cross-region jobs of JOB->actor may run at once:
 * one more is refused, or with QUEUE recorded as queued (returns 1).
 * Atomic with the check.  Returns 0 running, 1 queued, -1.
 */
extern int xs_job_start (struct xs_store *store, struct xs_job *job,
                         bool cross_region, int64_t max_cross_region,
                         bool queue);

/* Run queued or failed job ID again (as its actor or the administrator):
 * 0 running now, 1 still waiting for a cross-region slot, -1.
 */
extern int xs_job_restart (struct xs_store *store, const char *id,
                           bool cross_region, int64_t max_cross_region);

/* 0 if job ID may be resumed now (queued or failed), else -1 with why:
 * "it is running (pid N)", "it is done", no such job.
 */
extern int xs_job_check_resumable (struct xs_store *store, const char *id);

/* Cancel job ID for ACTOR (who may: access/admin.h): a queued job
 * never runs; a running copy stops at its next progress update and
 * records nothing.  The job is then failed ("cancelled by ...") and may
 * be resumed.  0 or -1.
 */
extern int xs_job_cancel (struct xs_store *store, const char *actor,
                          const char *id);

/* What a refusal of the jobs that use something is about. */
enum xs_job_use {
  XS_JOB_USES_REGION,           /* copy from or to the region */
  XS_JOB_USES_ACCOUNT,          /* copy from or to the account, or by it */
};

/* Holding the lock, in the caller's transaction: -1 with an error
 * "REFUSAL: N copy job(s) use it: job-... (running, pid P), ...; wait
 * ... or cancel ..." when queued or running jobs use NAME as USE says
 * (jobs whose process is gone are failed first), else 0.
 */
struct xs_catalog;
extern int xs_job_refuse_users_locked (struct xs_catalog *cat,
                                       enum xs_job_use use, const char *name,
                                       const char *refusal);

/* 0 and *JOB, or -1 (reported: no such job). */
extern int xs_job_find (struct xs_store *store, const char *id,
                        struct xs_job *job);

/* Record job ID's progress: 0, or -1 with an error (the job was
 * cancelled: it is no longer running, and its copy must stop).
 */
extern int xs_job_progress (struct xs_store *store, const char *id,
                            uint64_t done_bytes, uint64_t sent_bytes);

/* End job ID: done (ERROR NULL) or failed with ERROR. */
extern int xs_job_finish (struct xs_store *store, const char *id,
                          const char *dest_snapshot, const char *error);

enum xs_job_direction {
  XS_JOB_ALL,                   /* started by, from or to the account */
  XS_JOB_OUTGOING,              /* started by it or copying from it */
  XS_JOB_INCOMING,              /* copying to it from another account */
};

/* Call FN for each job of ACCOUNT (NULL: all) in DIRECTION, newest first.
 * SOURCE_SNAPSHOT, if not NULL, keeps only the jobs copying that
 * snapshot; STATUS, if not NULL, only those in that status.
 */
extern int xs_job_list (struct xs_store *store, const char *account,
                        enum xs_job_direction direction,
                        const char *source_snapshot, const char *status,
                        int (*fn) (const struct xs_job *job, void *opaque),
                        void *opaque);

/* Call FN with each status that jobs have (running jobs whose process
 * died are failed first) and how many are in it: one query.
 */
extern int xs_job_count_by_status (struct xs_store *store,
                                   int (*fn) (const char *status,
                                              uint64_t count, void *opaque),
                                   void *opaque);

#endif /* XSNAP_JOB_H */
