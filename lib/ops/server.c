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

#include "base/error.h"
#include "access/access.h"
#include "catalog/account.h"
#include "ops/server.h"
#include "base/size.h"
#include "catalog/store.h"
#include "catalog/volume.h"
#include "head/control.h"
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
  bool sealer_started;          /* SEALER must be joined */
  bool sealer_done;             /* SEALER has finished its work */
  pthread_t sealer;
  struct xs_snapshot_op *op;
  struct xs_snapshot pending;

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

/* Close an export nobody uses any more: no new control requests, no
 * pending snapshot, then the head (which drops ownership).
 */
static void
stop_hydrator (struct xs_export *exp)
{
  if (!exp->hydrator_started)
    return;
  atomic_store_explicit (&exp->stop_hydrating, 1, memory_order_relaxed);
  pthread_join (exp->hydrator, NULL);
  exp->hydrator_started = false;
}

static void
close_export (struct xs_export *exp)
{
  xs_control_stop (exp->control);
  stop_hydrator (exp);
  join_sealer (exp);
  free (exp->source_snapshot_id);
  free (exp->account);
  if (exp->head)
    xs_head_close (exp->head);  /* reports its own failure */
  xs_snapreader_close (exp->reader);
  xs_repo_close (exp->repo);
  pthread_mutex_destroy (&exp->sealer_lock);
  free (exp->description);
  free (exp);
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

static struct xs_export *
open_snapshot (struct xs_server *srv, const struct xs_snapshot *snap)
{
  struct xs_export *exp = calloc (1, sizeof *exp);
  struct xs_manifest *m = NULL;
  char *label = NULL;

  if (exp == NULL || (exp->description = describe_snapshot (snap)) == NULL
      || asprintf (&label, "snapshot %s@%s (%s)", snap->volume_name,
                   snap->name, snap->id) == -1) {
    xs_error ("cannot open snapshot %s: %m", snap->id);
    goto fail;
  }
  exp->srv = srv;
  pthread_mutex_init (&exp->sealer_lock, NULL);
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
  if (exp) {
    xs_repo_close (exp->repo);
    if (exp->description)
      pthread_mutex_destroy (&exp->sealer_lock);
    free (exp->description);
    free (exp);
  }
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

static void *
sealer_main (void *opaque)
{
  struct xs_export *exp = opaque;
  struct xs_snapshot_op *op;
  struct xs_snapshot snap;

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  op = exp->op;
  snap = exp->pending;
  exp->op = NULL;
  memset (&exp->pending, 0, sizeof exp->pending);
  xs_lock_drop (&exp->sealer_lock);

  /* Failures are reported (to the server log) and leave no snapshot. */
  if (xs_snapshot_finish (op, NULL, NULL, &snap) == 0)
    xs_debug ("snapshot %s@%s (%s) is available", snap.volume_name,
              snap.name, snap.id);
  xs_snapshot_clear (&snap);

  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->sealer_done = true;
  xs_lock_drop (&exp->sealer_lock);
  return NULL;
}

static json_t *
snapshot_reply (const struct xs_snapshot *snap)
{
  return json_pack ("{s:b, s:o}", "ok", 1, "snapshot",
                    xs_snapshot_to_json (snap));
}

/* The "snapshot" request: {"op": "snapshot", "name": NAME or null,
 * "wait": bool}.  Replies once the snapshot is pending (or, with wait,
 * available).
 */
static json_t *
control_snapshot (struct xs_export *exp, json_t *request)
{
  struct xs_server *srv = exp->srv;
  json_t *name_value = json_object_get (request, "name");
  bool wait = json_is_true (json_object_get (request, "wait"));
  const char *name = json_string_value (name_value);
  struct xs_snapshot_op *op;
  struct xs_snapshot snap;
  struct xs_volume vol;
  struct xs_scope scope;
  json_t *reply;
  int r;

  if (name_value && !json_is_null (name_value) && name == NULL)
    return xs_control_error_reply ("\"name\" must be a string");
  /* One snapshot of a volume seals at a time: a new one waits for the
   * previous to be sealed, then takes its point in time.
   */
  join_sealer (exp);
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
    r = xs_snapshot_finish (op, NULL, NULL, &snap);
    reply = r == 0 ? snapshot_reply (&snap)
      : xs_control_error_reply ("snapshot failed (see the server log)");
    xs_snapshot_clear (&snap);
    return reply;
  }
  reply = snapshot_reply (&snap);
  xs_lock_take (&exp->sealer_lock, XS_LOCK_EXPORT_SEALER, 0);
  exp->op = op;
  exp->pending = snap;
  exp->sealer_done = false;
  exp->sealer_started = pthread_create (&exp->sealer, NULL, sealer_main,
                                        exp) == 0;
  xs_lock_drop (&exp->sealer_lock);
  if (!exp->sealer_started) {
    /* Seal here rather than leave the snapshot pending forever. */
    xs_snapshot_finish (op, NULL, NULL, &snap);
    xs_snapshot_clear (&snap);
  }
  return reply;
}

static json_t *
control_handler (json_t *request, void *opaque)
{
  struct xs_export *exp = opaque;
  const char *op = json_string_value (json_object_get (request, "op"));
  char error[1024];
  json_t *reply;

  /* Errors go to the server log as always, and the first one back to the
   * client, in place of a generic reply.
   */
  xs_error_capture_begin (error, sizeof error);
  if (strcmp (op, "snapshot") == 0)
    reply = control_snapshot (exp, request);
  else if (strcmp (op, "ping") == 0)
    reply = json_pack ("{s:b, s:s}", "ok", 1, "volume_id", exp->volume_id);
  else
    reply = xs_control_error_reply ("unknown operation '%s'", op);
  xs_error_capture_end ();
  if (error[0] && !json_is_true (json_object_get (reply, "ok"))) {
    json_decref (reply);
    reply = xs_control_error_reply ("%s", error);
  }
  return reply;
}

/* Hydrate a clone while it is served, yielding to clients (a pause every
 * 64 blocks); when done, record that it no longer needs its source.
 */
static void *
hydrator_main (void *opaque)
{
  struct xs_export *exp = opaque;
  struct xs_volume vol = {
    .name = exp->description, .source_snapshot_id = exp->source_snapshot_id,
  };
  uint64_t copied;

  snprintf (vol.id, sizeof vol.id, "%s", exp->volume_id);
  if (xs_head_hydrate (exp->head, NULL, NULL, &exp->stop_hydrating, 2000,
                       &copied) == XS_HYDRATE_DONE
      && xs_volume_mark_hydrated (exp->srv->store, &vol) == 0)
    xs_debug ("volume %s: hydrated in the background (%" PRIu64 " blocks)",
              exp->volume_id, copied);
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

static struct xs_export *
open_volume (struct xs_server *srv, const struct xs_volume *vol)
{
  struct xs_export *exp = calloc (1, sizeof *exp);
  char *dir = NULL, *socket_path = NULL;

  if (exp == NULL || (exp->description = describe_volume (vol)) == NULL) {
    xs_error ("cannot open volume '%s': %m", vol->name);
    free (exp);
    return NULL;
  }
  exp->srv = srv;
  pthread_mutex_init (&exp->sealer_lock, NULL);
  snprintf (exp->volume_id, sizeof exp->volume_id, "%s", vol->id);
  exp->account = strdup (vol->account);
  if (exp->account)
    exp->head = xs_volume_open_head_cached (srv->store, vol, srv->cache);
  if (exp->head)
    xs_head_set_seal_buffer (exp->head, srv->seal_buffer);
  dir = xs_volume_dir (srv->store, vol);
  if (exp->head && dir && asprintf (&socket_path, "%s/control.sock", dir) != -1)
    exp->control = xs_control_listen (socket_path, control_handler, exp);
  free (dir);
  free (socket_path);
  if (exp->head == NULL || exp->control == NULL) {
    if (exp->head)
      xs_head_close (exp->head);
    pthread_mutex_destroy (&exp->sealer_lock);
    free (exp->account);
    free (exp->description);
    free (exp);
    return NULL;
  }
  start_hydrator (srv, exp, vol);
  exp->next = srv->exports;
  srv->exports = exp;
  return exp;
}

void
xs_server_set_hydration (struct xs_server *srv, bool on)
{
  srv->hydrate = on;
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
