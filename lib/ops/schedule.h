/* xsnap: automatic snapshot policies and their copy tasks (scheduled
 * snapshots and automatic copies to other accounts and regions).
 *
 * A policy belongs to an account and a region.  It snapshots each volume
 * attached to it every N seconds or daily at HH:MM (UTC), and keeps the
 * newest RETAIN snapshots it took of each volume.  A copy task of the
 * policy copies every snapshot the policy takes to another account and/or
 * region (the first copy sends every chunk, later ones only what the
 * destination lacks, so copies are incremental in transfer and logically
 * full), and keeps the newest RETAIN copies there.  A task lives as long
 * as its policy; the destination may delete it.  Making a task to another
 * account needs xsnap:CopyAutoSnapshotPolicyCrossAccount and a
 * destination in the owner's organisation.
 *
 * Nothing runs by itself: xs_schedule_run_due does one pass over what is
 * due (for `xsnap policy run-due` from cron or a systemd timer, and for
 * `xsnap daemon`).  A volume a server owns is snapshotted by its owner.
 */
#ifndef XSNAP_SCHEDULE_H
#define XSNAP_SCHEDULE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "catalog/store.h"
#include "catalog/volume.h"

struct xs_schedule {
  char id[XS_ID_MAX];           /* "asp-…" */
  char *account, *region, *name;
  int64_t every_s;              /* > 0, or 0 for a daily policy */
  int daily_minute;             /* 0..1439, or -1 */
  int64_t retain;
  int64_t created_ns;
  int64_t volumes;              /* attached volumes */
  int64_t tasks;                /* copy tasks */
};

extern void xs_schedule_clear (struct xs_schedule *policy);
extern json_t *xs_schedule_to_json (const struct xs_schedule *policy);

/* Parse --every (30m, 6h, 1d; at least a minute) and --daily (HH:MM). */
extern int64_t xs_schedule_parse_every (const char *text);
extern int xs_schedule_parse_daily (const char *text);

/* Create policy NAME in SCOPE: EVERY_S > 0 or DAILY_MINUTE >= 0. */
extern int xs_schedule_create (struct xs_store *store,
                                 const struct xs_scope *scope,
                                 const char *name, int64_t every_s,
                                 int daily_minute, int64_t retain);
extern int xs_schedule_find (struct xs_store *store,
                               const struct xs_scope *scope, const char *name,
                               struct xs_schedule *policy);
extern int xs_schedule_list (struct xs_store *store,
                               const struct xs_scope *scope,
                               int (*fn) (const struct xs_schedule *policy,
                                          void *opaque),
                               void *opaque);
/* Delete a policy: it stops, with its attachments and copy tasks; the
 * snapshots it took stay.
 */
extern int xs_schedule_delete (struct xs_store *store,
                                 const struct xs_scope *scope,
                                 const char *name);
extern int xs_schedule_attach (struct xs_store *store,
                                 const struct xs_scope *scope,
                                 const char *name, const struct xs_volume *vol,
                                 bool detach);

/* A copy task, as its source and its destination see it. */
struct xs_copy_task {
  const char *id;
  const char *policy_id, *policy_name;
  const char *source_account, *source_region;
  const char *dest_account, *dest_region;
  int64_t retain;
  int64_t created_ns;
  const char *last_error;
  int64_t last_success_ns, last_failure_ns;     /* its last copies; 0: never */
};
extern json_t *xs_copy_task_to_json (const struct xs_copy_task *task);

/* How a copy task stands for one volume of its policy, store-wide (for
 * xsnap metrics and status).
 */
struct xs_copy_task_state {
  const char *id, *policy_name;
  const char *source_account, *source_region;
  const char *dest_account, *dest_region;
  const char *volume_id, *volume_name;  /* volume_name "" if it is gone */
  int64_t period_s;             /* the policy's period (a day if daily) */
  int64_t attached_ns;          /* the volume was attached to the policy */
  /* The point in time of the newest available copy of the volume at the
   * destination: when its source snapshot was taken (when the copy was
   * made, if the source is gone); 0 if there is none.
   */
  int64_t newest_copy_ns;
  int64_t last_success_ns, last_failure_ns;     /* 0: never */
  const char *last_error;
};

/* Call FN for each copy task and each volume attached to its policy, by
 * task and volume.  FN runs under the catalog lock (recursive).
 */
extern int xs_copy_task_states (struct xs_store *store,
                                int (*fn) (const struct xs_copy_task_state
                                           *state, void *opaque),
                                void *opaque);

/* Add a copy task to policy NAME of SCOPE (the caller). */
extern int xs_schedule_copy_to (struct xs_store *store,
                                  const struct xs_scope *scope,
                                  const char *name, const char *dest_account,
                                  const char *dest_region, int64_t retain);

/* Tasks copying from SCOPE->account (OUTGOING: "copy to other accounts")
 * or to it ("copy to my account").  FN runs under the catalog lock
 * (recursive) and should not take long.
 */
extern int xs_copy_task_list (struct xs_store *store,
                              const struct xs_scope *scope, bool outgoing,
                              int (*fn) (const struct xs_copy_task *task,
                                         void *opaque),
                              void *opaque);

/* Delete task ID: its source or its destination may. */
extern int xs_copy_task_delete (struct xs_store *store,
                                const struct xs_scope *scope, const char *id);

/* One pass: for every attached volume whose policy is due at NOW_NS,
 * snapshot it, run the policy's copy tasks, and apply retention (a
 * snapshot a copy task still needs as its incremental base, or that a
 * queued or running copy is copying, is kept).  NOTE (may be NULL) hears
 * of each thing done, as one line.
 *
 * One pass at a time per store: the pass holds an exclusive lock on the
 * store's file policy-pass.lock (which holds its pid) from start to end.
 * If another pass holds it, nothing is done and *OTHER is its pid (-1 if
 * it has not written it yet); else *OTHER is 0.
 *
 * STOP (may be NULL), set by a signal handler, ends the pass at the next
 * safe point: between volumes, and a copy between chunks (its job is
 * then failed, and `xsnap job resume` continues it).
 *
 * Returns the number of failures (each reported), or -1 if the pass
 * itself failed.
 */
extern int xs_schedule_run_due (struct xs_store *store, int64_t now_ns,
                                  const volatile sig_atomic_t *stop,
                                  pid_t *other,
                                  void (*note) (const char *line,
                                                void *opaque),
                                  void *opaque);

/* A volume attached to a policy, and how its last run went. */
struct xs_schedule_attachment {
  const char *volume_id;
  const char *volume_name;      /* "" if the volume is gone */
  int64_t attached_ns;
  int64_t last_run_ns;          /* 0: never */
  int64_t next_run_ns;
  const char *last_error;       /* "" if the last run succeeded */
};
extern json_t *xs_schedule_attachment_to_json
  (const struct xs_schedule_attachment *attachment);

/* Call FN for each volume attached to POLICY (under the catalog lock,
 * which is recursive).
 */
extern int xs_schedule_attachments
  (struct xs_store *store, const struct xs_schedule *policy,
   int (*fn) (const struct xs_schedule_attachment *attachment, void *opaque),
   void *opaque);

/* When the next policy falls due after NOW_NS (0 if none is attached). */
extern int64_t xs_schedule_next_due (struct xs_store *store,
                                       int64_t now_ns);

#endif /* XSNAP_SCHEDULE_H */
