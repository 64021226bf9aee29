/* xsnap: the registry of open exports behind the NBD server (see
 * server.h).
 *
 * Lock order: srv->lock, then the catalog's lock (taken inside store and
 * volume calls).  The registry is a short linked list: a server has as many
 * entries as volumes with open connections, which is few.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "access/access.h"
#include "catalog/account.h"
#include "ops/server.h"
#include "base/size.h"
#include "catalog/store.h"
#include "catalog/volume.h"
#include "head/control.h"
#include "head/ownerlock.h"
#include "base/fileio.h"
#include "catalog/snapnew.h"
#include "catalog/snapshot.h"
#include "repo/chunkcache.h"
#include "base/lockorder.h"
#include "repo/snapreader.h"
#include "repo/repo.h"

struct xs_export {
  struct xs_export *next;
  struct xs_server *srv;
  char volume_id[XS_ID_MAX];    /* a volume export: its id */
  char *account;                /* a volume export: its owner */
  char snapshot_id[XS_ID_MAX];  /* a snapshot export: its id */
  char *description;
  unsigned refs;                /* connections using it; under srv->lock */
  struct xs_head *head;         /* a volume export */
  struct xs_snapreader *reader; /* a snapshot export, reading from REPO */
  struct xs_repo *repo;
  struct xs_control_server *control;    /* this owner's control socket */

  /* A snapshot sealing in the background (one at a time per volume). */
  pthread_mutex_t sealer_lock;  /* protects the fields below */
  pthread_cond_t sealer_idle;   /* a seal or a control request ended */
  bool sealer_started;          /* SEALER must be joined */
  bool sealer_done;             /* no sealer is at work */
  bool taking;                  /* a control request takes a snapshot */
  unsigned waiting;             /* requests waiting to take one */
  pthread_t sealer;
  struct xs_snapshot_op *op;
  struct xs_snapshot pending;
  atomic_int stop_sealing;      /* set: the sealer stops (a handover) */
  char stopped_id[XS_ID_MAX];   /* the snapshot it stopped, if any */

  /* A detached sealer's export (xs_server_seal_detached). */
  bool detached;
  bool closing;                 /* giving the volume up: no more snapshots */
  bool released;                /* the head is closed (given up or over) */
  char watched_id[XS_ID_MAX];   /* the snapshot it was started for */
  bool watched_ended;
  enum xs_snapshot_outcome watched_outcome;
  char watched_why[512];        /* the first error of its seal */
  long handed_to;               /* the server it was handed over to */

  /* A clone being hydrated in the background. */
  bool hydrator_started;
  atomic_int stop_hydrating;    /* set to stop the hydrator */
  pthread_t hydrator;
  char *source_snapshot_id;
};

struct xs_server {
  struct xs_store *store;
  struct xs_scope scope;
  struct xs_chunk_cache *cache; /* decompressed chunks, shared by exports */
  bool hydrate;                 /* hydrate clones in the background */
  uint64_t hydrate_rate;        /* bytes a second for each; 0: no limit */
  uint64_t seal_buffer;         /* for every head (head.h) */
  pthread_mutex_t lock;         /* protects exports and refs */
  struct xs_export *exports;
};

struct xs_server *
xs_server_new (const char *store_path, const char *account,
               const char *region, size_t cache_bytes)
{
  struct xs_server *srv = calloc (1, sizeof *srv);

  if (srv == NULL) {
    xs_error ("cannot start the server: %m");
    return NULL;
  }
  pthread_mutex_init (&srv->lock, NULL);
  srv->seal_buffer = XS_HEAD_SEAL_BUFFER;
  srv->cache = xs_chunk_cache_new (cache_bytes);
  srv->store = xs_store_open (store_path);
  if (srv->cache == NULL || srv->store == NULL
      || xs_store_scope (srv->store, account, region, &srv->scope) == -1) {
    xs_server_free (srv);
    return NULL;
  }
  return srv;
}

/* Wait for a background sealer to end.  Holding nothing. */
static void
join_sealer (struct xs_export *exp)
{
  bool started;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  started = exp->sealer_started;
  exp->sealer_started = false;
  xs_lock_drop (&exp->sealer_lock);
  if (started)
    pthread_join (exp->sealer, NULL);
}

static void
stop_hydrator (struct xs_export *exp)
{
  if (!exp->hydrator_started)
    return;
  atomic_store_explicit (&exp->stop_hydrating, 1, memory_order_relaxed);
  pthread_join (exp->hydrator, NULL);
  exp->hydrator_started = false;
}

/* Free EXP and what it holds, once no other thread uses it: the head
 * last but one (which drops ownership).
 */
static void
free_export (struct xs_export *exp)
{
  if (exp == NULL)
    return;
  xs_control_stop (exp->control);
  free (exp->source_snapshot_id);
  free (exp->account);
  if (exp->head)
    xs_head_close (exp->head);  /* reports its own failure */
  xs_snapreader_close (exp->reader);
  xs_repo_close (exp->repo);
  pthread_mutex_destroy (&exp->sealer_lock);
  pthread_cond_destroy (&exp->sealer_idle);
  free (exp->description);
  free (exp);
}

/* Close an export nobody uses any more: no new control requests, no
 * pending snapshot, then the head (which drops ownership).
 */
static void
close_export (struct xs_export *exp)
{
  xs_control_stop (exp->control);
  exp->control = NULL;
  stop_hydrator (exp);
  join_sealer (exp);
  free_export (exp);
}

void
xs_server_log_line (const char *text, char *buf, size_t len)
{
  size_t n = 0;

  for (const unsigned char *p = (const unsigned char *) text;
       *p && n + 5 <= len; p++) {
    if (*p == '\n')
      n += (size_t) snprintf (buf + n, len - n, "\\n");
    else if (*p == '\r')
      n += (size_t) snprintf (buf + n, len - n, "\\r");
    else if (*p == '\t')
      n += (size_t) snprintf (buf + n, len - n, "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      n += (size_t) snprintf (buf + n, len - n, "\\x%02x", *p);
    else
      buf[n++] = (char) *p;
  }
  if (len > 0)
    buf[n < len ? n : len - 1] = '\0';
}

void
xs_server_free (struct xs_server *srv)
{
  if (srv == NULL)
    return;
  while (srv->exports) {
    struct xs_export *exp = srv->exports;
    srv->exports = exp->next;
    close_export (exp);
  }
  xs_scope_clear (&srv->scope);
  xs_store_close (srv->store);
  xs_chunk_cache_free (srv->cache);
  pthread_mutex_destroy (&srv->lock);
  free (srv);
}

static char *
describe_volume (const struct xs_volume *vol)
{
  char size[32], block[32], *text;

  xs_size_format (vol->size, size, sizeof size);
  xs_size_format (vol->block_size, block, sizeof block);
  if (asprintf (&text, "volume %s (%s, %s blocks, read-write)", vol->id,
                size, block) == -1)
    return NULL;
  return text;
}

struct list_context {
  struct xs_server *srv;
  const char *account;          /* who is asking */
  int (*fn) (const char *name, const char *description, void *opaque);
  void *opaque;
};

static int
list_one_volume (const struct xs_volume *vol, void *opaque)
{
  struct list_context *ctx = opaque;
  char *description;
  int r;

  if (xs_access_check (ctx->srv->store, ctx->account,
                       "xsnap:DescribeVolumes",
                       &(struct xs_access_target) {
                         .owner = vol->account, .region = vol->region,
                         .type = "volume", .id = vol->id, .label = vol->name,
                       }, true) == -1)
    return 0;                   /* denied: looks missing */
  description = describe_volume (vol);
  if (description == NULL) {
    xs_error ("cannot list volume '%s': %m", vol->name);
    return -1;
  }
  r = ctx->fn (vol->name, description, ctx->opaque);
  free (description);
  return r;
}

static char *
describe_snapshot (const struct xs_snapshot *snap)
{
  char size[32], *text;

  xs_size_format (snap->size, size, sizeof size);
  if (asprintf (&text, "snapshot %s of volume %s (%s, read-only)%s%s",
                snap->id, snap->volume_name, size,
                snap->shared_from ? ", " : "",
                snap->shared_from ? snap->shared_from : "") == -1)
    return NULL;
  return text;
}

static int
list_one_snapshot (const struct xs_snapshot *snap, void *opaque)
{
  struct list_context *ctx = opaque;
  char *name = NULL, *description = describe_snapshot (snap);
  int r;

  if (strcmp (snap->status, "available") != 0
      || xs_access_check (ctx->srv->store, ctx->account, "xsnap:ReadSnapshot",
                          &(struct xs_access_target) {
                            .owner = snap->account, .region = snap->region,
                            .type = "snapshot", .id = snap->id,
                            .label = snap->id,
                            .shared_with_caller = snap->shared_from != NULL,
                          }, true) == -1) {
    free (description);
    return 0;                   /* not readable until sealed, or denied */
  }
  /* A shared snapshot's name belongs to its owner: it goes by its id. */
  if (description == NULL
      || (snap->shared_from ? (name = strdup (snap->id)) == NULL
          : asprintf (&name, "%s@%s", snap->volume_name, snap->name) == -1)) {
    xs_error ("cannot list snapshot %s: %m", snap->id);
    free (description);
    return -1;
  }
  r = ctx->fn (name, description, ctx->opaque);
  free (name);
  free (description);
  return r;
}

int
xs_server_list_exports (struct xs_server *srv, const char *account,
                        int (*fn) (const char *name, const char *description,
                                   void *opaque),
                        void *opaque)
{
  struct list_context ctx = { .srv = srv, .account = account, .fn = fn,
                              .opaque = opaque };
  struct xs_scope scope = { .account = (char *) account,
                            .region = srv->scope.region };

  if (xs_volume_list (srv->store, &scope, list_one_volume, &ctx) != 0)
    return -1;
  return xs_snapshot_list (srv->store, &scope, NULL, list_one_snapshot,
                           &ctx);
}

char *
xs_server_account_for_uid (struct xs_server *srv, int64_t uid)
{
  char *account;
  int r;

  r = xs_account_lookup_uid (srv->store, (uid_t) uid, &account);
  if (r == 1)
    xs_error ("uid %" PRId64 " is not mapped to an account of this store:"
              " it sees no exports (see 'xsnap account map-uid')", uid);
  if (r != 0)
    return NULL;
  if (xs_account_is_admin (srv->store, account)) {
    free (account);             /* the administrator acts as the default */
    account = strdup (srv->scope.account);
    if (account == NULL)
      xs_error ("cannot resolve uid %" PRId64 ": %m", uid);
  }
  return account;
}

const char *
xs_server_default_account (const struct xs_server *srv)
{
  return srv->scope.account;
}

static struct xs_export *
find_open (struct xs_server *srv, const char *volume_id,
           const char *snapshot_id)
{
  struct xs_export *exp;

  for (exp = srv->exports; exp; exp = exp->next)
    if (volume_id ? strcmp (exp->volume_id, volume_id) == 0
        : strcmp (exp->snapshot_id, snapshot_id) == 0)
      return exp;
  return NULL;
}

/* A new export of SRV described by DESCRIPTION (taken over), not listed
 * yet.  NULL (not reported) if memory is short.
 */
static struct xs_export *
new_export (struct xs_server *srv, char *description)
{
  struct xs_export *exp = description ? calloc (1, sizeof *exp) : NULL;

  if (exp == NULL) {
    free (description);
    return NULL;
  }
  exp->srv = srv;
  exp->description = description;
  pthread_mutex_init (&exp->sealer_lock, NULL);
  pthread_cond_init (&exp->sealer_idle, NULL);
  exp->sealer_done = true;
  return exp;
}

static struct xs_export *
open_snapshot (struct xs_server *srv, const struct xs_snapshot *snap)
{
  struct xs_export *exp = new_export (srv, describe_snapshot (snap));
  struct xs_manifest *m = NULL;
  char *label = NULL;

  if (exp == NULL
      || asprintf (&label, "snapshot %s@%s (%s)", snap->volume_name,
                   snap->name, snap->id) == -1) {
    xs_error ("cannot open snapshot %s: %m", snap->id);
    goto fail;
  }
  snprintf (exp->snapshot_id, sizeof exp->snapshot_id, "%s", snap->id);
  m = xs_snapshot_load_manifest (srv->store, snap->account, snap->region,
                                 snap->id);
  exp->repo = xs_store_repo (srv->store, snap->account, snap->region);
  if (m == NULL || exp->repo == NULL)
    goto fail;
  exp->reader = xs_snapreader_open (exp->repo, m, srv->cache, label);
  m = NULL;                     /* taken over by the reader */
  if (exp->reader == NULL)
    goto fail;
  free (label);
  exp->next = srv->exports;
  srv->exports = exp;
  return exp;

 fail:
  xs_manifest_free (m);
  free (label);
  free_export (exp);
  return NULL;
}

/* A snapshot export: NAME is "VOL@SNAP" or a snapshot id. */
static struct xs_export *
open_snapshot_export (struct xs_server *srv, const struct xs_scope *scope,
                      const char *name, bool readonly)
{
  struct xs_snapshot snap;
  struct xs_export *exp = NULL;
  int r;

  r = xs_access_find_snapshot (srv->store, scope, name, "xsnap:ReadSnapshot",
                               false, &snap);
  if (r == -1)
    r = 1;                      /* denied: looks missing */
  if (r != 0) {
    errno = r == 1 ? ENOENT : EIO;
    return NULL;
  }
  if (strcmp (snap.status, "available") != 0) {
    xs_error ("snapshot %s is still pending", name);
    errno = ENOENT;
  }
  else {
    exp = find_open (srv, NULL, snap.id);
    if (exp == NULL)
      exp = open_snapshot (srv, &snap);
  }
  xs_snapshot_clear (&snap);
  return exp;
}

/* Note how the seal of SNAPSHOT_ID ended, for whoever waits for it.
 * Holding the sealer lock.
 */
static void
note_sealed (struct xs_export *exp, const char *snapshot_id,
             enum xs_snapshot_outcome outcome, const char *why)
{
  if (outcome == XS_SNAPSHOT_STOPPED)
    snprintf (exp->stopped_id, sizeof exp->stopped_id, "%s", snapshot_id);
  if (strcmp (snapshot_id, exp->watched_id) == 0) {
    exp->watched_ended = true;
    exp->watched_outcome = outcome;
    snprintf (exp->watched_why, sizeof exp->watched_why, "%s", why);
  }
}

static void *
sealer_main (void *opaque)
{
  struct xs_export *exp = opaque;
  enum xs_snapshot_outcome outcome;
  struct xs_snapshot_op *op;
  struct xs_snapshot snap;
  char why[512] = "";

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  op = exp->op;
  snap = exp->pending;
  exp->op = NULL;
  memset (&exp->pending, 0, sizeof exp->pending);
  xs_lock_drop (&exp->sealer_lock);

  /* Failures are reported (to the server log) and leave no snapshot. */
  xs_error_capture_begin (why, sizeof why);
  outcome = xs_snapshot_finish (op, &exp->stop_sealing, NULL, NULL, &snap);
  xs_error_capture_end ();
  if (outcome == XS_SNAPSHOT_AVAILABLE)
    xs_debug ("snapshot %s@%s (%s) is available", snap.volume_name,
              snap.name, snap.id);

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  note_sealed (exp, snap.id, outcome, why);
  exp->sealer_done = true;
  pthread_cond_broadcast (&exp->sealer_idle);
  xs_lock_drop (&exp->sealer_lock);
  xs_snapshot_clear (&snap);
  return NULL;
}

/* Seal OP, whose pending snapshot *SNAP (taken over) is, on a thread of
 * its own.  Holding nothing; no sealer runs.
 */
static void
seal_in_background (struct xs_export *exp, struct xs_snapshot_op *op,
                    struct xs_snapshot *snap)
{
  bool started;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->op = op;
  exp->pending = *snap;
  exp->sealer_done = false;
  started = exp->sealer_started
    = pthread_create (&exp->sealer, NULL, sealer_main, exp) == 0;
  if (!started) {
    exp->op = NULL;
    memset (&exp->pending, 0, sizeof exp->pending);
  }
  xs_lock_drop (&exp->sealer_lock);
  if (!started) {
    /* Seal here rather than leave the snapshot pending forever. */
    enum xs_snapshot_outcome outcome
      = xs_snapshot_finish (op, &exp->stop_sealing, NULL, NULL, snap);

    xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
    note_sealed (exp, snap->id, outcome, "");
    exp->sealer_done = true;
    pthread_cond_broadcast (&exp->sealer_idle);
    xs_lock_drop (&exp->sealer_lock);
    xs_snapshot_clear (snap);
  }
}

static json_t *
snapshot_reply (const struct xs_snapshot *snap)
{
  return json_pack ("{s:b, s:o}", "ok", 1, "snapshot",
                    xs_snapshot_to_json (snap));
}

/* Wait until no snapshot of the volume seals and none is being taken,
 * and then take one (false: the volume is being given up, take none);
 * TAKING_END says it is taken.  One snapshot of a volume seals at a time:
 * a new one waits for the previous to be sealed, then takes its point in
 * time.  Holding nothing.
 */
static bool
taking_begin (struct xs_export *exp)
{
  bool may;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->waiting++;
  while (!exp->closing && !exp->released
         && (exp->taking || !exp->sealer_done))
    pthread_cond_wait (&exp->sealer_idle, &exp->sealer_lock);
  exp->waiting--;
  may = !exp->closing && !exp->released;
  exp->taking = may;
  xs_lock_drop (&exp->sealer_lock);
  return may;
}

static void
taking_end (struct xs_export *exp)
{
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->taking = false;
  pthread_cond_broadcast (&exp->sealer_idle);
  xs_lock_drop (&exp->sealer_lock);
}

/* Take a snapshot of the volume, and seal it (with WAIT) or start its
 * sealer.  Holding nothing, with the request's capture of errors.
 */
static json_t *
take_snapshot (struct xs_export *exp, const char *name, bool wait)
{
  struct xs_server *srv = exp->srv;
  enum xs_snapshot_outcome outcome;
  struct xs_snapshot_op *op;
  struct xs_snapshot snap;
  struct xs_volume vol;
  struct xs_scope scope;
  json_t *reply;
  int r;

  scope.account = exp->account;
  scope.region = srv->scope.region;
  r = xs_volume_find (srv->store, &scope, exp->volume_id, true, &vol);
  if (r != 0)
    return xs_control_error_reply ("volume %s is gone", exp->volume_id);
  op = xs_snapshot_start (srv->store, exp->head, &vol, name, &snap);
  xs_volume_clear (&vol);
  if (op == NULL)
    return xs_control_error_reply ("snapshot failed (see the server log)");

  if (wait) {
    outcome = xs_snapshot_finish (op, &exp->stop_sealing, NULL, NULL, &snap);
    reply = outcome == XS_SNAPSHOT_AVAILABLE ? snapshot_reply (&snap)
      : xs_control_error_reply ("snapshot failed (see the server log)");
    xs_snapshot_clear (&snap);
    return reply;
  }
  reply = snapshot_reply (&snap);
  seal_in_background (exp, op, &snap);
  return reply;
}

/* The "snapshot" request: {"op": "snapshot", "name": NAME or null,
 * "wait": bool}.  Replies once the snapshot is pending (or, with wait,
 * available).  *HANG_UP: no reply, the volume is being given up.
 */
static json_t *
control_snapshot (struct xs_export *exp, json_t *request, bool *hang_up)
{
  json_t *name_value = json_object_get (request, "name");
  bool wait = json_is_true (json_object_get (request, "wait"));
  const char *name = json_string_value (name_value);
  json_t *reply;

  if (name_value && !json_is_null (name_value) && name == NULL)
    return xs_control_error_reply ("\"name\" must be a string");
  if (!taking_begin (exp)) {
    *hang_up = true;            /* the client asks the next owner */
    return NULL;
  }
  join_sealer (exp);            /* it has ended */
  reply = take_snapshot (exp, name, wait);
  taking_end (exp);
  return reply;
}

/* Close the head, once (a handover and giving up may race): the owner
 * lock goes with it.  Holding nothing.
 */
static void
release_head (struct xs_export *exp)
{
  struct xs_head *h;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  h = exp->released ? NULL : exp->head;
  exp->released = true;
  xs_lock_drop (&exp->sealer_lock);
  if (h) {
    exp->head = NULL;
    xs_head_close (h);          /* reports its own failure */
  }
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  pthread_cond_broadcast (&exp->sealer_idle);
  xs_lock_drop (&exp->sealer_lock);
}

/* The "handover" request: {"op": "handover", "pid": N}, from a server
 * (process N) that opens the volume.  A detached sealer stops sealing,
 * keeps the pending snapshot's record, gives the volume up and replies
 * {"ok": true, "pending": ID or null}: the server, which becomes the
 * owner, takes the point in time again for that record before anything
 * writes.  A server's own export is not handed over.
 */
static json_t *
control_handover (struct xs_export *exp, json_t *request)
{
  json_int_t pid = json_integer_value (json_object_get (request, "pid"));
  char stopped[XS_ID_MAX];

  if (!exp->detached)
    return xs_control_error_reply ("volume %s is attached to process %ld, "
                                   "which does not hand it over",
                                   exp->volume_id, (long) getpid ());
  /* No new client finds this owner; the next one takes the name. */
  xs_control_unlink (exp->control);
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->handed_to = (long) pid;  /* before the seal it stops ends */
  exp->closing = true;
  atomic_store_explicit (&exp->stop_sealing, 1, memory_order_release);
  while (exp->taking)           /* the sealer's own first snapshot */
    pthread_cond_wait (&exp->sealer_idle, &exp->sealer_lock);
  xs_lock_drop (&exp->sealer_lock);
  join_sealer (exp);
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  snprintf (stopped, sizeof stopped, "%s", exp->stopped_id);
  xs_lock_drop (&exp->sealer_lock);
  release_head (exp);
  if (stopped[0])
    xs_notice ("volume %s: snapshot %s handed over, pending, to process %ld,"
               " which opens the volume", exp->volume_id, stopped,
               (long) pid);
  return json_pack ("{s:b, s:s?}", "ok", 1, "pending",
                    stopped[0] ? stopped : NULL);
}

static json_t *
control_handler (json_t *request, void *opaque)
{
  struct xs_export *exp = opaque;
  const char *op = json_string_value (json_object_get (request, "op"));
  char error[1024];
  bool hang_up = false;
  json_t *reply;

  /* Errors go to the server log as always, and the first one back to the
   * client, in place of a generic reply.
   */
  xs_error_capture_begin (error, sizeof error);
  if (strcmp (op, "snapshot") == 0)
    reply = control_snapshot (exp, request, &hang_up);
  else if (strcmp (op, "handover") == 0)
    reply = control_handover (exp, request);
  else if (strcmp (op, "ping") == 0)
    reply = json_pack ("{s:b, s:s}", "ok", 1, "volume_id", exp->volume_id);
  else
    reply = xs_control_error_reply ("unknown operation '%s'", op);
  xs_error_capture_end ();
  if (hang_up)
    return NULL;
  if (reply == NULL)
    reply = xs_control_error_reply ("out of memory");
  if (error[0] && !json_is_true (json_object_get (reply, "ok"))) {
    json_decref (reply);
    reply = xs_control_error_reply ("%s", error);
  }
  return reply;
}

/* Hydrate a clone while it is served, giving way to clients' reads of
 * what it lacks; when done, record that it no longer needs its source.
 */
static void *
hydrator_main (void *opaque)
{
  struct xs_export *exp = opaque;
  struct xs_volume vol = {
    .name = exp->description, .source_snapshot_id = exp->source_snapshot_id,
  };
  struct xs_hydrate_options options = {
    .stop = &exp->stop_hydrating,
    .rate = exp->srv->hydrate_rate,
    .give_way_to_reads = true,
  };
  struct xs_hydrate_stats stats;
  enum xs_hydrate_result result;
  const char *what = NULL;

  snprintf (vol.id, sizeof vol.id, "%s", exp->volume_id);
  result = xs_head_hydrate (exp->head, &options, &stats);
  if (result == XS_HYDRATE_DONE
      && xs_volume_mark_hydrated (exp->srv->store, &vol) == 0)
    what = "hydrated in the background";
  else if (result == XS_HYDRATE_STOPPED)
    what = "background hydration stopped (the export closed)";
  if (what)
    xs_notice ("%s: %s: %" PRIu64 " blocks in %.2f s, %.2f s of it giving "
               "way to clients' reads", exp->description, what,
               stats.copied, stats.seconds, stats.gave_way_seconds);
  return NULL;
}

static void
start_hydrator (struct xs_server *srv, struct xs_export *exp,
                const struct xs_volume *vol)
{
  if (!srv->hydrate || !xs_head_is_clone (exp->head))
    return;
  exp->source_snapshot_id = strdup (vol->source_snapshot_id);
  if (exp->source_snapshot_id == NULL)
    return;
  exp->hydrator_started = pthread_create (&exp->hydrator, NULL,
                                          hydrator_main, exp) == 0;
}

/* How long a server opening a volume waits for a detached sealer that
 * holds it without answering (starting, or giving the volume up), and
 * how often it looks.
 */
#define HANDOVER_WAIT_NS (10 * INT64_C (1000000000))
#define HANDOVER_POLL_US 10000

/* If a detached sealer owns VOL, have it hand the volume over; the id of
 * the pending snapshot it handed over goes to HANDED_OVER ("" if none).
 * Returns the region's gc lock, held shared from before the request (gc
 * must not remove the pending record before this owner takes it over),
 * or -1 if none was taken.  A volume held by anything else is left as
 * it is (opening it then fails as usual).
 */
static int
take_over_from_sealer (struct xs_server *srv, const struct xs_volume *vol,
                       char handed_over[XS_ID_MAX])
{
  char *dir = xs_volume_dir (srv->store, vol), *lock = NULL, *control = NULL;
  int64_t deadline = xs_now_ns () + HANDOVER_WAIT_NS;
  json_t *request = NULL, *reply;
  const char *id;
  int gc_fd = -1;

  handed_over[0] = '\0';
  if (dir == NULL || asprintf (&lock, "%s/lock", dir) == -1
      || asprintf (&control, "%s/control.sock", dir) == -1
      || (request = json_pack ("{s:s, s:I}", "op", "handover", "pid",
                               (json_int_t) getpid ())) == NULL) {
    xs_error ("cannot take volume '%s' over: %m", vol->name);
    goto out;
  }
  while (xs_owner_lock_probe (lock) == 1
         && xs_owner_lock_holder_is (lock, "sealer")) {
    if (gc_fd == -1
        && (gc_fd = xs_snapshot_gc_lock (srv->store, vol->region,
                                         false)) == -1)
      break;
    switch (xs_control_call (control, request, &reply)) {
    case XS_CONTROL_ANSWERED:
      id = json_string_value (json_object_get (reply, "pending"));
      if (id && handed_over[0] == '\0' && strlen (id) < XS_ID_MAX)
        strcpy (handed_over, id);
      json_decref (reply);
      continue;                 /* it has let go: look again */
    case XS_CONTROL_FAILED:
      goto out;                 /* reported */
    case XS_CONTROL_NO_OWNER:
      break;                    /* starting, or letting go: wait */
    }
    if (xs_now_ns () > deadline)
      break;
    usleep (HANDOVER_POLL_US);
  }
 out:
  json_decref (request);
  free (dir);
  free (lock);
  free (control);
  return gc_fd;
}

/* Take over the pending snapshot ID that VOL's detached sealer handed
 * over: its point in time again (nothing has written since the sealer's),
 * sealed in the background as if it had been taken here.  A failure
 * fails the snapshot (reported), not the open.
 */
static void
resume_handed_over (struct xs_export *exp, const struct xs_volume *vol,
                    const char *id)
{
  struct xs_snapshot_op *op;
  struct xs_snapshot snap;

  op = xs_snapshot_resume (exp->srv->store, exp->head, vol, id, &snap);
  if (op == NULL)
    return;
  xs_debug ("snapshot %s@%s (%s): taken over from the volume's detached "
            "sealer", snap.volume_name, snap.name, snap.id);
  seal_in_background (exp, op, &snap);
}

#define TAKE_OVER_TRIES 3

/* Open VOL's head as a server does, taking it over from a detached
 * sealer that owns it (HANDED_OVER, *GC_FD: take_over_from_sealer).  A
 * new sealer may take the volume between the last one letting it go and
 * this open (a snapshot command that found it free): it is asked in
 * turn, a few times.  NULL (reported) if the head cannot be opened.
 */
static struct xs_head *
take_head_over (struct xs_server *srv, const struct xs_volume *vol,
                char handed_over[XS_ID_MAX], int *gc_fd)
{
  struct xs_head *h = NULL;
  char why[1024];

  for (int tries = 1; h == NULL; tries++) {
    *gc_fd = take_over_from_sealer (srv, vol, handed_over);
    xs_error_hold_begin (why, sizeof why);
    h = xs_volume_open_head_cached (srv->store, vol, srv->cache,
                                    handed_over[0] ? handed_over : NULL);
    xs_error_capture_end ();
    if (h == NULL && (tries == TAKE_OVER_TRIES
                      || !xs_volume_owned_by_sealer (srv->store, vol))) {
      xs_error ("%s", why);
      break;
    }
    if (h == NULL && *gc_fd >= 0) {
      close (*gc_fd);
      *gc_fd = -1;
    }
  }
  return h;
}

/* An export of VOL with its head open (as a detached sealer's, marked in
 * the owner lock, if DETACHED), not listening nor listed yet.  A server
 * first has a detached sealer that owns the volume hand it over.
 */
static struct xs_export *
open_volume_head (struct xs_server *srv, const struct xs_volume *vol,
                  bool detached)
{
  struct xs_export *exp = new_export (srv, describe_volume (vol));
  char handed_over[XS_ID_MAX] = "";
  int gc_fd = -1;

  if (exp == NULL || (exp->account = strdup (vol->account)) == NULL) {
    xs_error ("cannot open volume '%s': %m", vol->name);
    free_export (exp);
    return NULL;
  }
  snprintf (exp->volume_id, sizeof exp->volume_id, "%s", vol->id);
  exp->detached = detached;
  if (detached)
    exp->head = xs_volume_open_head_cached (srv->store, vol, srv->cache,
                                            NULL);
  else
    exp->head = take_head_over (srv, vol, handed_over, &gc_fd);
  if (exp->head == NULL
      || (detached && xs_head_set_owner_role (exp->head, "sealer") == -1)) {
    free_export (exp);
    exp = NULL;
  }
  else {
    xs_head_set_seal_buffer (exp->head, srv->seal_buffer);
    if (handed_over[0])
      resume_handed_over (exp, vol, handed_over);
  }
  if (gc_fd >= 0)
    close (gc_fd);
  return exp;
}

static int
listen_control (struct xs_export *exp, const struct xs_volume *vol)
{
  char *dir = xs_volume_dir (exp->srv->store, vol), *socket_path = NULL;

  if (dir && asprintf (&socket_path, "%s/control.sock", dir) != -1)
    exp->control = xs_control_listen (socket_path, control_handler, exp);
  else
    xs_error ("cannot open volume '%s': %m", vol->name);
  free (dir);
  free (socket_path);
  return exp->control ? 0 : -1;
}

static struct xs_export *
open_volume (struct xs_server *srv, const struct xs_volume *vol)
{
  struct xs_export *exp = open_volume_head (srv, vol, false);

  if (exp == NULL)
    return NULL;
  if (listen_control (exp, vol) == -1) {
    /* A snapshot taken over seals on: wait for it. */
    join_sealer (exp);
    free_export (exp);
    return NULL;
  }
  start_hydrator (srv, exp, vol);
  exp->next = srv->exports;
  srv->exports = exp;
  return exp;
}

struct xs_export *
xs_server_seal_detached (struct xs_server *srv, const char *volume_id,
                         const char *name, struct xs_snapshot *snap,
                         bool *busy)
{
  struct xs_export *exp = NULL;
  struct xs_snapshot_op *op;
  struct xs_snapshot copy;
  struct xs_volume vol;

  *busy = false;
  xs_lock_take (&srv->lock, XS_LOCK_SERVER, 0);
  if (xs_volume_find (srv->store, &srv->scope, volume_id, false, &vol) != 0)
    goto out;
  /* Someone took the volume since the caller saw it free: ask them. */
  *busy = xs_volume_in_use (srv->store, &vol) == 1;
  if (!*busy)
    exp = open_volume_head (srv, &vol, true);
  if (exp == NULL) {
    *busy = *busy || xs_volume_in_use (srv->store, &vol) == 1;
    goto out_volume;
  }
  /* Requests may come as soon as it listens: they wait for this one. */
  exp->taking = true;
  if (listen_control (exp, &vol) == -1
      || (op = xs_snapshot_start (srv->store, exp->head, &vol, name,
                                  snap)) == NULL) {
    /* Requests that came meanwhile hang up: their clients look again. */
    xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
    exp->closing = true;
    pthread_cond_broadcast (&exp->sealer_idle);
    xs_lock_drop (&exp->sealer_lock);
    free_export (exp);
    exp = NULL;
    goto out_volume;
  }
  snprintf (exp->watched_id, sizeof exp->watched_id, "%s", snap->id);
  if (xs_snapshot_lookup_id (srv->store, snap->id, &copy) == 0)
    seal_in_background (exp, op, &copy);
  else {
    /* Its record cannot be read back (reported): seal it here. */
    enum xs_snapshot_outcome outcome
      = xs_snapshot_finish (op, &exp->stop_sealing, NULL, NULL, snap);
    xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
    note_sealed (exp, snap->id, outcome, "");
    xs_lock_drop (&exp->sealer_lock);
  }
  taking_end (exp);
  exp->refs = 1;
  exp->next = srv->exports;
  srv->exports = exp;
 out_volume:
  xs_volume_clear (&vol);
 out:
  xs_lock_drop (&srv->lock);
  return exp;
}

enum xs_sealer_end
xs_export_wait_sealed (struct xs_export *exp, char *why, size_t len,
                       long *handed_to)
{
  enum xs_snapshot_outcome outcome;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  while (!exp->watched_ended)
    pthread_cond_wait (&exp->sealer_idle, &exp->sealer_lock);
  outcome = exp->watched_outcome;
  snprintf (why, len, "%s", exp->watched_why);
  *handed_to = exp->handed_to;
  xs_lock_drop (&exp->sealer_lock);
  switch (outcome) {
  case XS_SNAPSHOT_AVAILABLE:
    return XS_SEALER_AVAILABLE;
  case XS_SNAPSHOT_STOPPED:
    return XS_SEALER_HANDED_OVER;
  case XS_SNAPSHOT_FAILED:
    break;
  }
  return XS_SEALER_FAILED;
}

void
xs_server_give_up (struct xs_server *srv, struct xs_export *exp)
{
  /* A request waiting for the last seal takes its snapshot first. */
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  while (!exp->released
         && (exp->waiting > 0 || exp->taking || !exp->sealer_done))
    pthread_cond_wait (&exp->sealer_idle, &exp->sealer_lock);
  exp->closing = true;
  xs_lock_drop (&exp->sealer_lock);
  /* The name first: a client that finds the volume free must not find
   * this owner's socket, nor the next owner lose its own to this one.
   */
  xs_control_unlink (exp->control);
  release_head (exp);
  xs_server_close (srv, exp);
}

void
xs_server_set_hydration (struct xs_server *srv, bool on, uint64_t rate)
{
  srv->hydrate = on;
  srv->hydrate_rate = rate;
}

void
xs_server_set_seal_buffer (struct xs_server *srv, uint64_t bytes)
{
  srv->seal_buffer = bytes;
}

struct xs_export *
xs_server_open (struct xs_server *srv, const char *account, const char *name,
                bool readonly)
{
  struct xs_scope scope = { .account = (char *) account,
                            .region = srv->scope.region };
  struct xs_volume vol;
  struct xs_export *exp = NULL;
  int r;

  xs_lock_take (&srv->lock, XS_LOCK_SERVER, 0);
  if (strchr (name, '@') || strncmp (name, "snap-", 5) == 0) {
    exp = open_snapshot_export (srv, &scope, name, readonly);
    if (exp)
      exp->refs++;
    goto out;
  }
  r = xs_volume_find (srv->store, &scope, name, false, &vol);
  if (r == 0
      && xs_access_volume (srv->store, account,
                           readonly ? "xsnap:ReadVolume"
                                    : "xsnap:AttachVolume", &vol) == -1) {
    xs_volume_clear (&vol);
    r = 1;                      /* denied: looks missing */
  }
  if (r == 1)
    errno = ENOENT;
  if (r != 0)
    goto out;
  exp = find_open (srv, vol.id, NULL);
  if (exp == NULL)
    exp = open_volume (srv, &vol);
  if (exp)
    exp->refs++;
  xs_volume_clear (&vol);
 out:
  xs_lock_drop (&srv->lock);
  return exp;
}

void
xs_server_close (struct xs_server *srv, struct xs_export *exp)
{
  struct xs_export **link;

  xs_lock_take (&srv->lock, XS_LOCK_SERVER, 0);
  if (--exp->refs == 0) {
    for (link = &srv->exports; *link != exp; link = &(*link)->next)
      ;
    *link = exp->next;
    close_export (exp);
  }
  xs_lock_drop (&srv->lock);
}

uint64_t
xs_export_size (const struct xs_export *exp)
{
  return exp->head ? xs_head_size (exp->head)
    : xs_snapreader_size (exp->reader);
}

uint32_t
xs_export_block_size (const struct xs_export *exp)
{
  return exp->head ? xs_head_block_size (exp->head)
    : xs_snapreader_block_size (exp->reader);
}

uint32_t
xs_export_preferred_size (const struct xs_export *exp)
{
  /* A plain head is a file: any size is as good as another, and clients
   * that honour a large preferred size (nbdcopy writes whole preferred
   * blocks) make the page cache hold large folios that slow later small
   * writes.  Clones copy a block up on a partial write and snapshots
   * decode whole blocks: for them the block size is the efficient unit.
   */
  if (exp->head && !xs_head_is_clone (exp->head))
    return 4096;
  return xs_export_block_size (exp);
}

bool
xs_export_writable (const struct xs_export *exp)
{
  return exp->head != NULL;
}

const char *
xs_export_description (const struct xs_export *exp)
{
  return exp->description;
}

struct xs_head *
xs_export_head (struct xs_export *exp)
{
  return exp->head;
}

int
xs_export_pread (struct xs_export *exp, void *buf, uint32_t count,
                 uint64_t offset)
{
  return exp->head ? xs_head_pread (exp->head, buf, count, offset)
    : xs_snapreader_pread (exp->reader, buf, count, offset);
}

int
xs_export_flush (struct xs_export *exp)
{
  return exp->head ? xs_head_flush (exp->head) : 0;
}

int
xs_export_extents (struct xs_export *exp, uint64_t offset, uint64_t count,
                   int (*fn) (uint64_t offset, uint64_t length, bool hole,
                              void *opaque),
                   void *opaque)
{
  return exp->head ? xs_head_extents (exp->head, offset, count, fn, opaque)
    : xs_snapreader_extents (exp->reader, offset, count, fn, opaque);
}
