/* xsnap: copying snapshots between namespaces (see copy.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/access.h"
#include "catalog/account.h"
#include "catalog/audit.h"
#include "repo/chunk.h"
#include "ops/copy.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/job.h"
#include "catalog/keys.h"
#include "catalog/region.h"
#include "base/names.h"
#include "repo/repo.h"
#include "base/size.h"

#define DEFAULT_THREADS 4
#define MAX_THREADS 32

/* Everything decided before any byte moves. */
struct copy_plan {
  struct xs_snapshot source;
  struct xs_scope dest;         /* account and region of the copy */
  bool cross_account, cross_region;
  const char *action;
  char *name;
  char *origin;
  char *arn;                    /* the source, for the audit log */
  /* Encryption at the destination. */
  bool encrypted;               /* the copy is encrypted under DEST_KEY */
  bool transcode;               /* ... under a data key of its own */
  struct xs_key dest_key;
  /* The destination region as the copy found it: its commit checks that
   * the region is still this one.
   */
  int64_t dest_region_created_ns;
  char *dest_backend;
};

static void
plan_clear (struct copy_plan *plan)
{
  xs_snapshot_clear (&plan->source);
  xs_key_clear (&plan->dest_key);
  free (plan->name);
  free (plan->origin);
  free (plan->arn);
  free (plan->dest_backend);
}

static int
setting_int (struct xs_store *store, const char *key, int64_t fallback,
             int64_t *value)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *text = NULL, *end;
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_get_setting (cat, key, &text);
  xs_catalog_unlock (cat);
  *value = fallback;
  if (r != 0)
    return r == 1 ? 0 : -1;
  errno = 0;
  *value = strtoll (text, &end, 10);
  if (errno || *end || end == text || *value < 0) {
    xs_error ("setting %s is '%s': expected a number", key, text);
    free (text);
    return -1;
  }
  free (text);
  return 0;
}

/* The group of REGION (malloc'd), or NULL if there is no such region. */
static char *
region_group (struct xs_store *store, const char *region)
{
  char *group = NULL;

  if (xs_region_lookup (store, region, &group, NULL, NULL) == 1)
    xs_error ("cannot copy to region '%s': no such region", region);
  return group;
}

/* Is GROUP one of the comma-separated ISOLATED? */
static bool
group_is_isolated (const char *group, const char *isolated)
{
  size_t len = strlen (group);
  const char *p = isolated;

  while (p && *p) {
    if (strncmp (p, group, len) == 0 && (p[len] == ',' || p[len] == '\0'))
      return true;
    p = strchr (p, ',');
    if (p)
      p++;
  }
  return false;
}

/* The region rules: no copies between groups, nor inside an
 * isolated group.
 */
static int
check_regions (struct xs_store *store, struct copy_plan *plan)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *from = region_group (store, plan->source.region);
  char *to = region_group (store, plan->dest.region);
  char *isolated = NULL;
  int r = -1, found;

  if (from == NULL || to == NULL)
    goto out;
  found = xs_region_lookup (store, plan->dest.region, NULL,
                            &plan->dest_region_created_ns,
                            &plan->dest_backend);
  if (found != 0) {
    if (found == 1)
      xs_error ("cannot copy to region '%s': no such region",
                plan->dest.region);
    goto out;
  }
  if (!plan->cross_region) {
    r = 0;
    goto out;
  }
  if (strcmp (from, to) != 0) {
    xs_error ("cannot copy from region '%s' (group '%s') to region '%s' "
              "(group '%s'): copies between region groups are not allowed",
              plan->source.region, from, plan->dest.region, to);
    goto out;
  }
  xs_catalog_lock (cat);
  found = xs_catalog_get_setting (cat, "copy.isolated_groups", &isolated);
  xs_catalog_unlock (cat);
  if (found == -1)
    goto out;
  if (group_is_isolated (from, found == 1 ? "intl" : isolated)) {
    xs_error ("cannot copy from region '%s' to region '%s': regions of "
              "group '%s' do not copy to each other",
              plan->source.region, plan->dest.region, from);
    goto out;
  }
  r = 0;
 out:
  free (from);
  free (to);
  free (isolated);
  return r;
}

static int
check_size (struct xs_store *store, const struct copy_plan *plan)
{
  int64_t limit;
  char size[32], most[32];

  if (!plan->cross_region)
    return 0;
  if (setting_int (store, "copy.max_cross_region_bytes",
                   (int64_t) XS_COPY_MAX_CROSS_REGION_BYTES, &limit) == -1)
    return -1;
  if (plan->source.size > (uint64_t) limit) {
    xs_size_format (plan->source.size, size, sizeof size);
    xs_size_format ((uint64_t) limit, most, sizeof most);
    xs_error ("cannot copy snapshot %s@%s to region '%s': it is %s, and "
              "a cross-region copy is at most %s",
              plan->source.volume_name, plan->source.name,
              plan->dest.region, size, most);
    return -1;
  }
  return 0;
}

/* Another account receives only from its organisation (unless it is the
 * caller itself, copying what is shared with it).
 */
static int
check_destination_account (struct xs_store *store,
                           const struct xs_scope *scope,
                           const struct copy_plan *plan)
{
  struct xs_account account;
  int r;

  r = xs_account_find (store, plan->dest.account, true, &account);
  if (r == 1)
    xs_error ("cannot copy to account '%s': no such account",
              plan->dest.account);
  if (r != 0)
    return -1;
  xs_account_clear (&account);
  if (!plan->cross_account)
    return 0;
  r = xs_account_same_organisation (store, plan->source.account,
                                    plan->dest.account);
  if (r == 0) {
    xs_error ("cannot copy snapshot %s@%s to account '%s': it is not a "
              "collaborator of account '%s' (create it with "
              "--collaborator-of, or share the snapshot with it)",
              plan->source.volume_name, plan->source.name,
              plan->dest.account, plan->source.account);
    xs_audit_record (store, scope->account, plan->action, plan->arn,
                     plan->source.account, XS_AUDIT_DENIED,
                     "destination is not a collaborator");
  }
  return r == 1 ? 0 : -1;
}

static int
choose_name (const struct xs_copy_options *o, struct copy_plan *plan)
{
  struct xs_snapshot *src = &plan->source;

  if (o->name)
    plan->name = strdup (o->name);
  else if (plan->cross_region) {
    if (asprintf (&plan->name, "copy_%s_%s", src->region, src->name) == -1)
      plan->name = NULL;
  }
  else
    plan->name = strdup (src->name);
  if (plan->name == NULL) {
    xs_error ("cannot copy snapshot %s: %m", src->id);
    return -1;
  }
  if (xs_name_check ("snapshot", plan->name) == -1) {
    if (o->name == NULL)
      xs_error ("the default name of the copy, '%s', is not a valid "
                "snapshot name: give one with --name", plan->name);
    return -1;
  }
  return 0;
}

static int
check_name_free (struct xs_store *store, const struct copy_plan *plan)
{
  struct xs_snapshot existing;
  char *spec = NULL;
  int r;

  if (asprintf (&spec, "%s@%s", plan->source.volume_name, plan->name) == -1) {
    xs_error ("cannot copy snapshot %s: %m", plan->source.id);
    return -1;
  }
  r = xs_snapshot_find (store, &plan->dest, spec, true, &existing);
  if (r == 0) {
    xs_error ("cannot copy snapshot %s to account '%s', region '%s': "
              "snapshot %s exists there (choose another --name)",
              plan->source.id, plan->dest.account, plan->dest.region, spec);
    xs_snapshot_clear (&existing);
  }
  free (spec);
  return r == 1 ? 0 : -1;
}

/* The key of the copy (see copy.h): sets PLAN->encrypted, ->transcode
 * and ->dest_key.
 */
static int
choose_key (struct xs_store *store, const struct xs_scope *scope,
            const struct xs_copy_options *o, struct copy_plan *plan)
{
  const struct xs_snapshot *src = &plan->source;
  bool encrypted_source = src->key_id[0] != '\0';
  const char *dest = plan->dest.account;
  char what[256];
  int r;

  if (!encrypted_source && o->key == NULL && !o->encrypt)
    return 0;
  if (o->key)
    r = xs_key_find (store, dest, o->key, false, &plan->dest_key);
  else {
    r = encrypted_source
      ? xs_key_lookup_id (store, src->key_id, &plan->dest_key) : 1;
    if (r == 0 && strcmp (plan->dest_key.account, dest) != 0) {
      xs_key_clear (&plan->dest_key);
      r = 1;
    }
    if (r == 1)
      r = xs_key_default (store, dest, &plan->dest_key);
  }
  if (r != 0)
    return -1;
  /* Encrypting under a custom key of an account is using that key. */
  snprintf (what, sizeof what, "snapshot %s@%s", src->volume_name,
            src->name);
  if (!plan->dest_key.is_default && strcmp (dest, scope->account) != 0
      && xs_key_check_use (store, scope->account, plan->dest_key.id, what,
                           NULL) == -1)
    return -1;
  if (xs_key_check_enabled (&plan->dest_key) == -1)
    return -1;
  plan->encrypted = true;
  plan->transcode = !encrypted_source || plan->cross_account
    || plan->cross_region || strcmp (plan->dest_key.id, src->key_id) != 0;
  return 0;
}

static int
make_plan (struct xs_store *store, const struct xs_scope *scope,
           const char *spec, const struct xs_copy_options *o,
           struct copy_plan *plan)
{
  int r;

  memset (plan, 0, sizeof *plan);
  plan->dest.account = (char *) (o->to_account ? o->to_account
                                               : scope->account);
  plan->cross_account = strcmp (plan->dest.account, scope->account) != 0;
  plan->action = plan->cross_account ? "xsnap:CopySnapshotCrossAccount"
    : "xsnap:CopySnapshot";
  r = xs_access_find_snapshot (store, scope, spec, plan->action, false,
                               &plan->source);
  if (r != 0)
    return -1;
  plan->dest.region = (char *) (o->to_region ? o->to_region
                                             : plan->source.region);
  plan->cross_region = strcmp (plan->dest.region, plan->source.region) != 0;
  plan->arn = xs_resource_name (plan->source.region,
                                       plan->source.account, "snapshot",
                                       plan->source.id);
  if (plan->arn == NULL
      || asprintf (&plan->origin, "copiedFrom:%s:%s:%s", plan->source.account,
                   plan->source.region, plan->source.id) == -1) {
    plan->origin = NULL;
    xs_error ("cannot copy snapshot %s: %m", spec);
    return -1;
  }
  if (plan->cross_region
      && xs_access_snapshot (store, scope->account,
                             "xsnap:CopySnapshotCrossRegion",
                             &plan->source) == -1)
    return -1;
  if (strcmp (plan->source.status, "available") != 0) {
    xs_error ("cannot copy snapshot %s@%s: it is %s",
              plan->source.volume_name, plan->source.name,
              plan->source.status);
    return -1;
  }
  if (check_destination_account (store, scope, plan) == -1
      || check_regions (store, plan) == -1 || check_size (store, plan) == -1
      || choose_name (o, plan) == -1 || check_name_free (store, plan) == -1
      || choose_key (store, scope, o, plan) == -1)
    return -1;
  return 0;
}

/* Chunk ids in order of their bytes. */
static int
compare_ids (const void *a, const void *b)
{
  return memcmp (a, b, sizeof (struct xs_hash128));
}

/* Sort N items of SIZE bytes by the chunk id each starts with and keep
 * one item per id.  Returns how many remain.
 */
static size_t
sort_unique (void *items, size_t n, size_t size)
{
  char *base = items;
  size_t i, out;

  if (n == 0)
    return 0;
  qsort (base, n, size, compare_ids);
  for (i = out = 1; i < n; i++)
    if (compare_ids (base + i * size, base + (out - 1) * size) != 0) {
      if (out != i)
        memcpy (base + out * size, base + i * size, size);
      out++;
    }
  return out;
}

/* What an earlier copy tells about chunk names: the source chunk SOURCE
 * is chunk DEST at the destination (under the same data keys).  SOURCE
 * comes first: pairs sort and are searched by it (compare_ids).
 */
struct id_pair {
  struct xs_hash128 source, dest;
};

/* The transfer: workers take chunks by index. */
struct transfer {
  struct xs_repo *from, *to;
  const struct xs_hash128 *ids;
  size_t n;
  /* The chunks whose presence at the destination matters, sorted: IDS
   * themselves, or for a transcoding copy the destination names KNOWN
   * gives.
   */
  const struct xs_hash128 *wanted;
  size_t nwanted;
  uint8_t *present;             /* per wanted: seen in the listing */
  bool listed;                  /* the listing was whole: unseen is absent */
  /* Transcoding: decode under SOURCE_KEY (NULL: unencrypted), encode
   * under DEST_KEY; DEST_IDS[i] receives the name of IDS[i] there.
   */
  bool transcode;
  const struct xs_data_key *source_key, *dest_key;
  struct xs_hash128 *dest_ids;
  const struct id_pair *known;  /* sorted by source */
  size_t nknown;
  uint32_t block_size;
  /* Read back what the destination has, and replace what is damaged,
   * rather than count on it unseen.
   */
  bool verify_dest;
  /* Per chunk of IDS, set when this copy stored it at the destination
   * (NULL: not counted): the blocks that name such a chunk are what the
   * copy lists as changed.
   */
  uint8_t *sent;
  /* Progress, in chunks of the block size: a copy's transfers, one a
   * batch, report DONE_BEFORE more than their own, of TOTAL (0: N).
   */
  uint64_t done_before, total;
  atomic_size_t next;           /* the next chunk a worker takes */
  atomic_uint_least64_t done, sent_chunks, sent_bytes, replaced;
  uint64_t bandwidth;           /* bytes per second, 0: unlimited */
  const volatile sig_atomic_t *stop;    /* set: stop between chunks */
  pthread_mutex_t rate_lock;    /* protects next_send_ns */
  int64_t next_send_ns;         /* when the rate allows the next send */
  atomic_bool failed;           /* stop: a chunk failed, or cancelled */
  atomic_bool error_taken;      /* ERROR is being (or was) written */
  char error[512];              /* the first worker's error */
};

/* Stop the transfer, keeping the first failure's message for the job. */
static void
transfer_fail (struct transfer *t, const char *why)
{
  if (!atomic_exchange_explicit (&t->error_taken, true,
                                 memory_order_acq_rel))
    snprintf (t->error, sizeof t->error, "%s", why);
  atomic_store_explicit (&t->failed, true, memory_order_release);
}

/* Wait until the bandwidth limit allows LEN more bytes: each send books
 * its share of time, one after the other, across all workers.
 */
static void
throttle (struct transfer *t, size_t len)
{
  int64_t now, start;

  if (t->bandwidth == 0)
    return;
  pthread_mutex_lock (&t->rate_lock);
  now = xs_now_ns ();
  start = t->next_send_ns > now ? t->next_send_ns : now;
  t->next_send_ns = start + (int64_t) (len * UINT64_C (1000000000)
                                       / t->bandwidth);
  pthread_mutex_unlock (&t->rate_lock);
  while ((now = xs_now_ns ()) < start)
    usleep ((useconds_t) ((start - now) / 1000 + 1));
}

/* Which chunks the destination has, from one listing of its chunk folder,
 * where asking for each chunk would cost a round trip (S3: a thousand
 * keys a request instead of one).  The listing stops when it has seen
 * many more chunks than the copy needs; the chunks it did not see are
 * then asked for one by one, as on a local backend.
 */
struct presence {
  struct transfer *t;
  size_t seen, limit;
};

static int
mark_present (const struct xs_hash128 *id, void *opaque)
{
  struct presence *p = opaque;
  const struct xs_hash128 *found = bsearch (id, p->t->wanted, p->t->nwanted,
                                            sizeof *id, compare_ids);

  if (found)
    p->t->present[found - p->t->wanted] = 1;
  return ++p->seen > p->limit ? 1 : 0;
}

static int
list_destination (struct transfer *t)
{
  struct presence p = { .t = t, .limit = 16 * t->n + 100000 };
  int r;

  if (!xs_repo_is_remote (t->to) || t->nwanted == 0)
    return 0;
  t->present = calloc (t->nwanted, 1);
  if (t->present == NULL) {
    xs_error ("cannot copy: %m");
    return -1;
  }
  r = xs_repo_list_chunks (t->to, mark_present, &p);
  if (r == -1)
    return -1;
  t->listed = r == 0;
  xs_debug ("copy: the destination listing saw %zu chunks%s", p.seen,
            t->listed ? "" : " and stopped");
  return 0;
}

/* Whether the destination has chunk ID, one of the wanted: 1, 0, -1. */
static int
destination_has (struct transfer *t, const struct xs_hash128 *id)
{
  const struct xs_hash128 *found;

  if (t->present) {
    found = bsearch (id, t->wanted, t->nwanted, sizeof *id, compare_ids);
    if (found && t->present[found - t->wanted])
      return 1;
  }
  return t->listed ? 0 : xs_repo_has_chunk (t->to, id);
}

/* With T->verify_dest, whether the destination's object of chunk ID,
 * which it has, decodes as chunk ID under CODEC: 1 intact (or not
 * asked to look), 0 damaged or gone (said as a notice: it is sent again),
 * -1 error.
 */
static int
destination_intact (struct transfer *t, struct xs_chunk_codec *codec,
                    void *plain, const struct xs_hash128 *id)
{
  char hex[XS_HASH128_HEX_LEN + 1], reason[XS_CHUNK_REASON_MAX];
  void *stored;
  size_t len;
  int r;

  if (!t->verify_dest)
    return 1;
  r = xs_repo_get_chunk_raw (t->to, id, &stored, &len);
  if (r == -1)
    return -1;
  if (r == 1)
    snprintf (reason, sizeof reason, "missing");
  else {
    r = xs_chunk_decode_quiet (codec, stored, len, id, plain, t->block_size,
                               reason) < 0;
    free (stored);
  }
  if (r == 0)
    return 1;
  xs_hash128_to_hex (id, hex);
  xs_notice ("chunk %s in account '%s' at the destination is damaged (%s): "
             "sending it again", hex, xs_repo_account (t->to), reason);
  return 0;
}

/* Store chunk ID at the destination: a new object, or over a damaged
 * one (REPLACE) once STORED has been verified as chunk ID.
 */
static int
store_chunk (struct transfer *t, const struct xs_hash128 *id,
             const void *stored, size_t len, bool replace)
{
  if (!replace)
    return xs_repo_put_chunk (t->to, id, stored, len, false);
  if (xs_repo_replace_chunk (t->to, id, stored, len) == -1)
    return -1;
  atomic_fetch_add_explicit (&t->replaced, 1, memory_order_relaxed);
  return 1;
}

static void
count_sent (struct transfer *t, size_t i, size_t len)
{
  /* Each worker writes only the flags of the chunks it took. */
  if (t->sent)
    t->sent[i] = 1;
  atomic_fetch_add_explicit (&t->sent_chunks, 1, memory_order_relaxed);
  atomic_fetch_add_explicit (&t->sent_bytes, len, memory_order_relaxed);
}

/* Re-encrypt chunk I for the destination, unless an earlier copy names
 * it there and it is there.  SOURCE and DEST are codecs under the two
 * keys.
 */
static int
transcode_chunk (struct transfer *t, struct xs_chunk_codec *source,
                 struct xs_chunk_codec *dest, void *plain, size_t i)
{
  const struct id_pair *known = t->nknown == 0 ? NULL
    : bsearch (&t->ids[i], t->known, t->nknown, sizeof *known, compare_ids);
  void *stored = NULL, *sealed = NULL;
  size_t len, sealed_len;
  ssize_t plain_len;
  bool replace = false;
  int r;

  if (known) {
    r = destination_has (t, &known->dest);
    if (r == 1)
      r = destination_intact (t, dest, plain, &known->dest);
    if (r == -1)
      return -1;
    t->dest_ids[i] = known->dest;
    if (r == 1)
      return 0;
    replace = t->verify_dest;
  }
  r = xs_repo_get_chunk_raw (t->from, &t->ids[i], &stored, &len);
  if (r == 1)
    xs_error ("cannot copy a chunk: it is missing from the source");
  if (r != 0)
    return -1;
  plain_len = xs_chunk_decode (source, stored, len, &t->ids[i], plain,
                               t->block_size);
  free (stored);
  if (plain_len < 0
      || xs_chunk_encode (dest, plain, (size_t) plain_len, &t->dest_ids[i],
                          &sealed, &sealed_len) == -1)
    return -1;
  /* The new name is the old one only under the same data key. */
  if (replace && !xs_hash128_equal (&t->dest_ids[i], &known->dest))
    replace = false;
  throttle (t, sealed_len);
  r = store_chunk (t, &t->dest_ids[i], sealed, sealed_len, replace);
  free (sealed);
  if (r == -1)
    return -1;
  if (r == 1)
    count_sent (t, i, sealed_len);
  return 0;
}

/* Copy chunk I if the destination lacks it, verified on the way. */
static int
copy_chunk (struct transfer *t, struct xs_chunk_codec *codec, void *plain,
            size_t i)
{
  const struct xs_hash128 *id = &t->ids[i];
  char hex[XS_HASH128_HEX_LEN + 1];
  void *stored = NULL;
  size_t len;
  bool replace = false;
  int r;

  r = destination_has (t, id);
  if (r == 1) {
    r = destination_intact (t, codec, plain, id);
    replace = r == 0;
  }
  if (r != 0)
    return r == 1 ? 0 : -1;
  if (t->from == NULL) {
    xs_hash128_to_hex (id, hex);
    xs_error ("chunk %s is missing from account '%s'", hex,
              xs_repo_account (t->to));
    return -1;
  }
  r = xs_repo_get_chunk_raw (t->from, id, &stored, &len);
  if (r == 1) {
    xs_hash128_to_hex (id, hex);
    xs_error ("cannot copy chunk %s: it is missing from account '%s'", hex,
              xs_repo_account (t->from));
  }
  if (r != 0)
    return -1;
  throttle (t, len);
  if (xs_chunk_decode (codec, stored, len, id, plain, t->block_size) < 0
      || store_chunk (t, id, stored, len, replace) == -1) {
    free (stored);
    return -1;
  }
  count_sent (t, i, len);
  free (stored);
  return 0;
}

static void *
transfer_worker (void *opaque)
{
  struct transfer *t = opaque;
  struct xs_chunk_codec *codec = xs_chunk_codec_new (1);
  struct xs_chunk_codec *dest = xs_chunk_codec_new (1);
  void *plain = malloc (t->block_size);
  char why[512] = "";
  size_t i;
  int r;

  /* Several workers may fail for one cause: the transfer reports the
   * first failure once (run_transfer).
   */
  xs_error_hold_begin (why, sizeof why);
  if (codec == NULL || dest == NULL || plain == NULL
      || xs_chunk_codec_set_key (codec, t->source_key) == -1
      || xs_chunk_codec_set_key (dest, t->dest_key) == -1) {
    if (plain == NULL)
      xs_error ("cannot copy chunks: %m");
    transfer_fail (t, why);
  }
  while (!atomic_load_explicit (&t->failed, memory_order_relaxed)) {
    if (t->stop && *t->stop) {
      transfer_fail (t, "the copy was stopped before it finished (its "
                     "process was asked to stop): `xsnap job resume` "
                     "continues it");
      break;
    }
    i = atomic_fetch_add_explicit (&t->next, 1, memory_order_relaxed);
    if (i >= t->n)
      break;
    r = t->transcode ? transcode_chunk (t, codec, dest, plain, i)
      : copy_chunk (t, codec, plain, i);
    if (r == -1)
      transfer_fail (t, why);
    atomic_fetch_add_explicit (&t->done, 1, memory_order_relaxed);
  }
  xs_error_capture_end ();
  free (plain);
  xs_chunk_codec_free (codec);
  xs_chunk_codec_free (dest);
  return NULL;
}

/* Run the workers, reporting progress (and the job's) as they go. */
static int
run_transfer (struct xs_store *store, struct transfer *t, unsigned threads,
              const char *job_id, const struct xs_copy_options *o)
{
  pthread_t workers[MAX_THREADS];
  unsigned started = 0, i;
  uint64_t done, bytes = t->block_size, total = t->total ? t->total : t->n;
  int64_t last_update = 0, now;
  bool cancelled = false;

  for (i = 0; i < threads; i++) {
    if (pthread_create (&workers[i], NULL, transfer_worker, t) != 0)
      break;
    started++;
  }
  if (started == 0) {
    xs_error ("cannot start copying: no thread");
    return -1;
  }
  for (;;) {
    done = atomic_load_explicit (&t->done, memory_order_relaxed);
    if (o->progress)
      o->progress ((t->done_before + done) * bytes, total * bytes,
                   o->opaque);
    now = xs_now_ns ();
    if (job_id && now - last_update > 500000000) {
      /* A cancelled job stops the copy: nothing is recorded. */
      if (xs_job_progress (store, job_id, (t->done_before + done) * bytes,
                           atomic_load_explicit (&t->sent_bytes,
                                                 memory_order_relaxed))
          == -1)
        cancelled = true;
      last_update = now;
    }
    if (cancelled)
      atomic_store_explicit (&t->failed, true, memory_order_release);
    if (done >= t->n
        || atomic_load_explicit (&t->failed, memory_order_relaxed))
      break;
    usleep (20000);
  }
  for (i = 0; i < started; i++)
    pthread_join (workers[i], NULL);
  if (!t->failed)
    return 0;
  /* Reported here, once, whichever worker failed first (the workers
   * held their errors); a cancel was reported by xs_job_progress.
   */
  if (!cancelled)
    xs_error ("%s", t->error[0] ? t->error
              : "cannot copy chunks: a transfer thread failed");
  return -1;
}

int
xs_copy_make_present (struct xs_store *store, struct xs_repo *from,
                      struct xs_repo *to, struct xs_hash128 *ids, size_t n,
                      uint32_t block_size, uint64_t *copied_bytes)
{
  struct xs_copy_options o = { .threads = DEFAULT_THREADS };
  struct transfer t = { .from = from, .to = to, .ids = ids,
                        .n = sort_unique (ids, n, sizeof *ids),
                        .wanted = ids, .block_size = block_size,
                        .rate_lock = PTHREAD_MUTEX_INITIALIZER };
  int r;

  t.nwanted = t.n;
  r = list_destination (&t) == 0
    && run_transfer (store, &t, DEFAULT_THREADS, NULL, &o) == 0
    && xs_repo_sync (to) == 0 ? 0 : -1;
  if (copied_bytes)
    *copied_bytes = t.sent_bytes;
  free (t.present);
  return r;
}

/* The destination's manifest: the source's entries, its own identity.
 * Seal it with seal_in_destination once its entries are final.
 */
static struct xs_manifest *
destination_manifest (const struct xs_manifest *source,
                      const struct copy_plan *plan, char *id, size_t idlen)
{
  struct xs_manifest *m = xs_manifest_copy (source);

  if (m == NULL || xs_new_id ("snap", id, idlen) == -1)
    goto fail;
  m->created_ns = xs_now_ns ();
  if (xs_manifest_set (m, "snapshot_id", id) == -1
      || xs_manifest_set (m, "account", plan->dest.account) == -1
      || xs_manifest_set (m, "region", plan->dest.region) == -1
      || xs_manifest_set (m, "name", plan->name) == -1
      || xs_manifest_set (m, "parent_id", "") == -1
      || xs_manifest_set (m, "status", "available") == -1)
    goto fail;
  return m;
 fail:
  xs_manifest_free (m);
  return NULL;
}

/* Seal COPY, whose map is stored in the destination's repository: it
 * gets a handle of its own there, and the pages it shares with the
 * source are copied there first (xs_manifest_attach).  0 or -1.
 */
static int
seal_in_destination (struct xs_store *store, const struct copy_plan *plan,
                     struct xs_manifest *copy)
{
  struct xs_repo *repo = xs_store_repo (store, plan->dest.account,
                                        plan->dest.region);

  if (repo == NULL)
    return -1;
  xs_manifest_attach (copy, repo);
  return xs_manifest_seal (copy);
}

static int
write_manifest (struct xs_repo *repo, const struct xs_manifest *m)
{
  void *data;
  size_t len;
  int r;

  if (xs_manifest_serialize (m, &data, &len) == -1)
    return -1;
  r = xs_repo_put_manifest (repo, m->snapshot_id, data, len);
  free (data);
  return r == -1 ? -1 : 0;
}

/* How a transcoding copy names and seals chunks at the destination. */
struct dest_crypt {
  char *wrapped;                /* its data key, wrapped by the plan's key */
  struct xs_data_key *dk;
  /* The last copy of the same lineage, if any: BEFORE, its source, and
   * AFTER, the copy.  Names carry over block by block.
   */
  struct xs_manifest *before, *after;
  /* What they say of the blocks of one batch (COPY_BATCH at most). */
  struct id_pair *known;        /* sorted by source */
  size_t nknown;
  struct xs_hash128 *known_dests;   /* their destination names, sorted */
  size_t ndests;
};

static void
dest_crypt_clear (struct dest_crypt *dc)
{
  free (dc->wrapped);
  xs_data_key_free (dc->dk);
  xs_manifest_free (dc->before);
  xs_manifest_free (dc->after);
  free (dc->known);
  free (dc->known_dests);
}

/* The data key of a transcoding copy of SOURCE: the last copy's, if
 * there is one of the same source lineage (its chunks are then named as
 * this copy's will be), else a new one.
 */
static int
prepare_transcode (struct xs_store *store, const struct copy_plan *plan,
                   const struct xs_manifest *source, struct dest_crypt *dc)
{
  char source_id[XS_ID_MAX], dest_id[XS_ID_MAX];
  struct xs_manifest *before = NULL, *after = NULL;
  int r;

  r = xs_snapshot_find_previous_copy (store, &plan->dest, plan->dest_key.id,
                                      plan->source.volume_id,
                                      plan->source.block_size, source_id,
                                      dest_id);
  if (r == 0) {
    before = xs_snapshot_load_manifest (store, plan->source.account,
                                        plan->source.region, source_id);
    after = before ? xs_snapshot_load_manifest (store, plan->dest.account,
                                                plan->dest.region, dest_id)
      : NULL;
    if (after == NULL)
      r = -1;
    /* Names carry over only between chunks under the same keys. */
    else if (strcmp (before->data_key, source->data_key) != 0
             || !xs_manifest_is_encrypted (after))
      r = 1;
  }
  if (r == 0) {
    xs_debug ("copy: %s was copied to %s before: reusing its data key",
              source_id, dest_id);
    dc->wrapped = strdup (after->data_key);
    dc->dk = dc->wrapped ? xs_data_key_dup (after->dk) : NULL;
    if (dc->wrapped == NULL)
      xs_error ("cannot copy: %m");
    r = dc->dk ? 0 : -1;
    if (r == 0) {
      dc->before = before;
      dc->after = after;
      before = after = NULL;
    }
  }
  else if (r == 1) {
    r = xs_key_new_data_key (store, &plan->dest_key, &dc->wrapped);
    if (r == 0) {
      dc->dk = xs_key_open_data_key (store, plan->dest_key.account,
                                     plan->dest_key.account,
                                     plan->dest_key.id, dc->wrapped);
      r = dc->dk ? 0 : -1;
    }
  }
  xs_manifest_free (before);
  xs_manifest_free (after);
  return r;
}

/* A copy takes the source's blocks a batch at a time (their chunks are
 * made present at the destination, then the copy's entries named), so
 * that what it holds does not grow with the volume: for each block of a
 * batch its index and chunk, and per distinct chunk its flag, name at
 * the destination and what the last copy says: about 6 MiB.  A chunk
 * used in two batches is looked at twice (and counted twice in the
 * report); a name the last copy gave a chunk is found at the same block
 * only (a chunk moved since is sealed again, to the same name).
 */
#define COPY_BATCH 65536

struct block_batch {
  uint64_t blocks[COPY_BATCH];
  struct xs_hash128 ids[COPY_BATCH];
  size_t n;
};

/* Returns 1, which stops the walk, when the batch is full. */
static int
take_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct block_batch *batch = opaque;

  batch->blocks[batch->n] = block;
  batch->ids[batch->n] = *id;
  return ++batch->n == COPY_BATCH ? 1 : 0;
}

/* The next batch of M's non-zero blocks, from *NEXT on, which moves past
 * them.  1 if there may be more, 0 if this was the last, -1 on error.
 */
static int
next_batch (struct xs_manifest *m, uint64_t *next, struct block_batch *batch)
{
  int r;

  batch->n = 0;
  r = xs_manifest_for_each_block (m, *next, m->nblocks - *next, take_block,
                                  batch);
  if (batch->n > 0)
    *next = batch->blocks[batch->n - 1] + 1;
  return r;
}

/* What the last copy says of the blocks of BATCH: at each, the chunk its
 * source had is, at the destination, the chunk the copy has.  0 or -1.
 */
static int
learn_names (struct dest_crypt *dc, const struct block_batch *batch)
{
  struct id_pair pair;
  size_t i;

  dc->nknown = dc->ndests = 0;
  if (dc->before == NULL)
    return 0;
  for (i = 0; i < batch->n; i++) {
    if (batch->blocks[i] >= dc->before->nblocks
        || batch->blocks[i] >= dc->after->nblocks)
      continue;
    if (xs_manifest_get_block (dc->before, batch->blocks[i],
                               &pair.source) == -1
        || xs_manifest_get_block (dc->after, batch->blocks[i],
                                  &pair.dest) == -1)
      return -1;
    if (!xs_hash128_is_zero (&pair.source))
      dc->known[dc->nknown++] = pair;
  }
  dc->nknown = sort_unique (dc->known, dc->nknown, sizeof *dc->known);
  for (i = 0; i < dc->nknown; i++)
    dc->known_dests[i] = dc->known[i].dest;
  dc->ndests = sort_unique (dc->known_dests, dc->nknown,
                            sizeof *dc->known_dests);
  return 0;
}

/* The index in T->ids of the chunk of block BLOCK of COPY, ID at the
 * source; -1 with an error if the transfer did not take it.
 */
static ssize_t
chunk_index (const struct xs_manifest *copy, const struct transfer *t,
             uint64_t block, const struct xs_hash128 *id)
{
  const struct xs_hash128 *found = bsearch (id, t->ids, t->n, sizeof *found,
                                            compare_ids);

  if (found == NULL) {
    xs_error ("cannot copy snapshot %s: block %" PRIu64 " lost its chunk",
              copy->snapshot_id, block);
    return -1;
  }
  return found - t->ids;
}

/* After the transfer of BATCH: count in *CHANGED its blocks whose chunk
 * the transfer stored at the destination (what the copy changed there,
 * recorded as its changed_blocks: blocks whose content the destination
 * held already count nothing), and for a transcoding copy name them in
 * COPY as it stored their chunks.  0 or -1.
 */
static int
finish_batch (struct xs_manifest *copy, const struct transfer *t,
              const struct block_batch *batch, uint64_t *changed)
{
  ssize_t k;
  size_t i;

  for (i = 0; i < batch->n; i++) {
    k = chunk_index (copy, t, batch->blocks[i], &batch->ids[i]);
    if (k == -1)
      return -1;
    *changed += t->sent[k];
    if (t->transcode
        && xs_manifest_set_block (copy, batch->blocks[i],
                                  &t->dest_ids[k]) == -1)
      return -1;
  }
  return 0;
}

/* The setting that marks ACCOUNT's repository in REGION as found
 * damaged by a verify (malloc'd), or NULL.
 */
static char *
damage_key (const char *account, const char *region)
{
  char *key;

  if (asprintf (&key, "damaged:%s:%s", account, region) == -1) {
    xs_error ("cannot record damage: %m");
    return NULL;
  }
  return key;
}

int
xs_copy_mark_damaged (struct xs_store *store, const char *account,
                      const char *region, const char *snapshot_id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *key = damage_key (account, region);
  int64_t r = -1;

  if (key == NULL)
    return -1;
  xs_catalog_lock (cat);
  if (snapshot_id)
    r = xs_catalog_set_setting (cat, key, snapshot_id);
  else
    r = xs_catalog_reset_setting (cat, key, "forget damage");
  xs_catalog_unlock (cat);
  free (key);
  return r == -1 ? -1 : 0;
}

/* Whether a verify found damage in the destination's repository since
 * the last repair: 1, 0, -1.
 */
static int
destination_doubted (struct xs_store *store, const struct copy_plan *plan)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *key = damage_key (plan->dest.account, plan->dest.region);
  char *value = NULL;
  int r;

  if (key == NULL)
    return -1;
  xs_catalog_lock (cat);
  r = xs_catalog_get_setting (cat, key, &value);
  xs_catalog_unlock (cat);
  free (key);
  if (r == 0)
    xs_debug ("copy: a verify found snapshot %s damaged in %s/%s: reading "
              "back every chunk the copy counts on", value,
              plan->dest.account, plan->dest.region);
  free (value);
  return r == -1 ? -1 : r == 0;
}

/* Before the row: the destination region is still the one the copy
 * wrote to (not removed, nor removed and added again, perhaps on
 * another backend, while it ran), and the manifest is there.
 */
static int
check_before_recording (struct xs_store *store, const struct copy_plan *plan,
                        struct xs_repo *to, const char *id)
{
  int64_t created_ns = 0;
  char *backend = NULL;
  void *data = NULL;
  size_t len;
  int r;

  r = xs_region_lookup (store, plan->dest.region, NULL, &created_ns,
                        &backend);
  if (r == -1)
    return -1;
  if (r == 1 || created_ns != plan->dest_region_created_ns
      || strcmp (backend, plan->dest_backend) != 0) {
    xs_error ("cannot record the copy in region '%s': the region was %s "
              "while the copy ran; nothing was recorded", plan->dest.region,
              r == 1 ? "removed" : "removed and added again (changed)");
    free (backend);
    return -1;
  }
  free (backend);
  r = xs_repo_get_manifest (to, id, &data, &len);
  free (data);
  if (r == 1)
    xs_error ("cannot record the copy in region '%s': its manifest %s is "
              "not there", plan->dest.region, id);
  return r == 0 ? 0 : -1;
}

static int
count_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  (void) block;
  (void) id;
  ++*(uint64_t *) opaque;
  return 0;
}

/* The buffers of a batched copy, a batch's worth each.  0 or -1. */
static int
allocate_batch (const struct copy_plan *plan, struct transfer *t,
                struct xs_hash128 **ids, struct dest_crypt *dc,
                struct block_batch **batch)
{
  *batch = malloc (sizeof **batch);
  *ids = malloc (COPY_BATCH * sizeof **ids);
  t->sent = malloc (COPY_BATCH);
  if (plan->transcode) {
    t->dest_ids = malloc (COPY_BATCH * sizeof *t->dest_ids);
    dc->known = malloc (COPY_BATCH * sizeof *dc->known);
    dc->known_dests = malloc (COPY_BATCH * sizeof *dc->known_dests);
  }
  if (*batch && *ids && t->sent
      && (!plan->transcode || (t->dest_ids && dc->known && dc->known_dests)))
    return 0;
  xs_error ("cannot copy snapshot %s: %m", plan->source.id);
  return -1;
}

/* Make the chunks of BATCH present at the destination: its distinct
 * chunks into IDS (sorted), those the destination lacks copied (or,
 * transcoding, sealed under its key), as the last copy named them where
 * it did.  0 or -1.
 */
static int
transfer_batch (struct xs_store *store, struct transfer *t,
                struct xs_hash128 *ids, struct dest_crypt *dc,
                const struct block_batch *batch, unsigned threads,
                const char *job_id, const struct xs_copy_options *o)
{
  int r;

  memcpy (ids, batch->ids, batch->n * sizeof *ids);
  t->ids = t->wanted = ids;
  t->n = t->nwanted = sort_unique (ids, batch->n, sizeof *ids);
  memset (t->sent, 0, t->n);
  if (t->transcode) {
    if (learn_names (dc, batch) == -1)
      return -1;
    t->known = dc->known;
    t->nknown = dc->nknown;
    t->wanted = dc->known_dests;
    t->nwanted = dc->ndests;
  }
  free (t->present);
  t->present = NULL;
  t->listed = false;
  atomic_store (&t->next, 0);
  atomic_store (&t->done, 0);
  r = list_destination (t) == 0 && run_transfer (store, t, threads, job_id,
                                                 o) == 0 ? 0 : -1;
  t->done_before += batch->n;
  return r;
}

/* The chunks of M, batch after batch, made present at the destination,
 * and COPY's entries named as they are there.  *CHANGED: the blocks
 * whose chunks the copy stored.  0 or -1.
 */
static int
copy_batches (struct xs_store *store, const struct copy_plan *plan,
              struct xs_manifest *m, struct xs_manifest *copy,
              struct transfer *t, struct dest_crypt *dc, unsigned threads,
              const char *job_id, const struct xs_copy_options *o,
              struct xs_copy_report *report, uint64_t *changed)
{
  struct block_batch *batch = NULL;
  struct xs_hash128 *ids = NULL;
  uint64_t next = 0;
  int more = -1;

  if (allocate_batch (plan, t, &ids, dc, &batch) == 0
      && xs_manifest_for_each_block (m, 0, m->nblocks, count_block,
                                     &t->total) == 0)
    do {
      more = next_batch (m, &next, batch);
      if (more != -1 && batch->n > 0
          && (transfer_batch (store, t, ids, dc, batch, threads, job_id,
                              o) == -1
              || finish_batch (copy, t, batch, changed) == -1))
        more = -1;
      report->chunks += batch->n > 0 ? t->n : 0;
    } while (more == 1);
  free (batch);
  free (ids);
  t->ids = NULL;
  return more == 0 ? 0 : -1;
}

/* Chunks, then the manifest, then the row: the commit order, so that a
 * crash leaves either no snapshot or a complete one. */
static int
copy_data (struct xs_store *store, struct copy_plan *plan,
           const struct xs_copy_options *o, const char *job_id,
           struct xs_snapshot *out, struct xs_copy_report *report)
{
  struct transfer t = { .bandwidth = o->bandwidth, .stop = o->stop,
                        .rate_lock = PTHREAD_MUTEX_INITIALIZER };
  struct dest_crypt dc = { .wrapped = NULL };
  struct xs_manifest *m, *copy = NULL;
  char id[XS_ID_MAX];
  uint64_t changed = 0;
  unsigned threads = o->threads ? o->threads : DEFAULT_THREADS;
  int r = -1;

  if (threads > MAX_THREADS)
    threads = MAX_THREADS;
  m = xs_snapshot_load_manifest (store, plan->source.account,
                                 plan->source.region, plan->source.id);
  t.from = xs_store_repo (store, plan->source.account, plan->source.region);
  t.to = xs_store_repo (store, plan->dest.account, plan->dest.region);
  if (m == NULL || t.from == NULL || t.to == NULL)
    goto out;
  t.block_size = m->block_size;
  t.source_key = m->dk;
  t.dest_key = m->dk;
  if (plan->transcode) {
    if (prepare_transcode (store, plan, m, &dc) == -1)
      goto out;
    t.transcode = true;
    t.dest_key = dc.dk;
  }
  t.verify_dest = o->verify_destination;
  if (!t.verify_dest) {
    r = destination_doubted (store, plan);
    if (r == -1)
      goto out;
    t.verify_dest = r == 1;
    r = -1;
  }
  copy = destination_manifest (m, plan, id, sizeof id);
  if (copy == NULL
      || copy_batches (store, plan, m, copy, &t, &dc, threads, job_id, o,
                       report, &changed) == -1
      || xs_repo_sync (t.to) == -1)
    goto out;
  report->chunks_sent = t.sent_chunks;
  report->bytes_sent = t.sent_bytes;
  report->chunks_replaced = t.replaced;
  if ((plan->transcode
       && xs_manifest_set_encryption (copy, plan->dest_key.id,
                                      plan->dest_key.account, dc.wrapped,
                                      dc.dk) == -1)
      || seal_in_destination (store, plan, copy) == -1
      || write_manifest (t.to, copy) == -1
      || check_before_recording (store, plan, t.to, id) == -1
      || (job_id && xs_job_progress (store, job_id, plan->source.size,
                                     t.sent_bytes) == -1))
    goto out;
  r = xs_snapshot_record_arrived (store, &plan->dest, copy, "copy",
                                  plan->origin,
                                  o->description ? o->description : "",
                                  changed, t.sent_bytes, out);
 out:
  free (t.present);
  free (t.sent);
  free (t.dest_ids);
  dest_crypt_clear (&dc);
  xs_manifest_free (m);
  xs_manifest_free (copy);
  xs_repo_close (t.from);
  xs_repo_close (t.to);
  return r;
}

static int
start_job (struct xs_store *store, const struct xs_scope *scope,
           const struct copy_plan *plan, const struct xs_copy_options *o,
           struct xs_copy_report *report)
{
  struct xs_job job = {
    .kind = (char *) "copy", .actor = scope->account,
    .source_account = plan->source.account,
    .source_region = plan->source.region,
    .source_snapshot = (char *) plan->source.id,
    .dest_account = plan->dest.account, .dest_region = plan->dest.region,
    .dest_snapshot = (char *) "", .total_bytes = plan->source.size,
    .name = plan->name, .description = (char *) o->description,
    .bandwidth = o->bandwidth, .dest_key = (char *) o->key,
    .encrypt = o->encrypt,
  };
  int64_t limit;
  int r;

  if (setting_int (store, "copy.max_cross_region_jobs",
                   XS_COPY_MAX_CROSS_REGION_JOBS, &limit) == -1)
    return -1;
  r = xs_job_start (store, &job, plan->cross_region, limit, o->queue);
  if (r == -1)
    return -1;
  snprintf (report->job_id, sizeof report->job_id, "%s", job.id);
  report->queued = r == 1;
  return 0;
}

/* Copy the data of PLAN under job REPORT->job_id, end the job, audit. */
static int
execute (struct xs_store *store, const struct xs_scope *scope,
         struct copy_plan *plan, const struct xs_copy_options *options,
         struct xs_snapshot *out, struct xs_copy_report *report)
{
  char detail[256], why[512] = "";
  int gc_from, gc_to, r = -1;

  /* Neither region's gc may take chunks while they are being copied. */
  gc_from = xs_snapshot_gc_lock (store, plan->source.region, false);
  gc_to = xs_snapshot_gc_lock (store, plan->dest.region, false);
  xs_error_capture_begin (why, sizeof why);
  if (gc_from >= 0 && gc_to >= 0)
    r = copy_data (store, plan, options, report->job_id, out, report);
  xs_error_capture_end ();
  if (gc_from >= 0)
    close (gc_from);
  if (gc_to >= 0)
    close (gc_to);
  xs_job_finish (store, report->job_id, r == 0 ? out->id : NULL,
                 r == 0 ? NULL : why[0] ? why : "failed");
  snprintf (detail, sizeof detail, "to %s/%s as %s (%s)", plan->dest.account,
            plan->dest.region, r == 0 ? out->id : "-", report->job_id);
  xs_audit_record (store, scope->account, plan->action, plan->arn,
                   plan->source.account,
                   r == 0 ? XS_AUDIT_ALLOWED : XS_AUDIT_FAILED, detail);
  return r;
}

int
xs_copy_snapshot (struct xs_store *store, const struct xs_scope *scope,
                  const char *spec, const struct xs_copy_options *options,
                  struct xs_snapshot *out, struct xs_copy_report *report)
{
  struct copy_plan plan;
  int r = -1;

  memset (report, 0, sizeof *report);
  memset (out, 0, sizeof *out);
  if (make_plan (store, scope, spec, options, &plan) == 0
      && start_job (store, scope, &plan, options, report) == 0)
    r = report->queued ? 0 : execute (store, scope, &plan, options, out,
                                      report);
  plan_clear (&plan);
  return r;
}

int
xs_copy_resume (struct xs_store *store, const struct xs_scope *scope,
                const char *job_id, const struct xs_copy_options *options,
                struct xs_snapshot *out, struct xs_copy_report *report)
{
  struct xs_copy_options o = *options;
  struct xs_scope actor;
  struct copy_plan plan;
  struct xs_job job;
  int64_t limit;
  int r = -1, restarted;

  memset (report, 0, sizeof *report);
  memset (out, 0, sizeof *out);
  memset (&plan, 0, sizeof plan);
  if (xs_job_find (store, job_id, &job) == -1)
    return -1;
  if (strcmp (job.actor, scope->account) != 0
      && !xs_account_is_admin (store, scope->account)) {
    xs_error ("cannot resume job %s: it belongs to account '%s'", job_id,
              job.actor);
    goto out;
  }
  if (xs_job_check_resumable (store, job_id) == -1)
    goto out;
  /* The checks again, as the job's actor, with the job's parameters. */
  actor.account = job.actor;
  actor.region = job.source_region;
  o.to_account = job.dest_account;
  o.to_region = job.dest_region;
  o.name = job.name[0] ? job.name : NULL;
  o.description = job.description;
  o.bandwidth = job.bandwidth;
  o.key = job.dest_key[0] ? job.dest_key : NULL;
  o.encrypt = job.encrypt;
  snprintf (report->job_id, sizeof report->job_id, "%s", job.id);
  if (make_plan (store, &actor, job.source_snapshot, &o, &plan) == -1
      || setting_int (store, "copy.max_cross_region_jobs",
                      XS_COPY_MAX_CROSS_REGION_JOBS, &limit) == -1)
    goto out;
  restarted = xs_job_restart (store, job_id, plan.cross_region, limit);
  if (restarted == 1) {
    report->queued = true;
    r = 0;
  }
  else if (restarted == 0)
    r = execute (store, &actor, &plan, &o, out, report);
 out:
  plan_clear (&plan);
  xs_job_clear (&job);
  return r;
}

struct queued_list {
  char (*ids)[XS_ID_MAX];
  char (*actors)[XS_NAME_MAX + 1];
  size_t n;
};

static int
collect_queued (const struct xs_job *job, void *opaque)
{
  struct queued_list *q = opaque;
  void *more_ids, *more_actors;

  more_ids = realloc (q->ids, (q->n + 1) * sizeof *q->ids);
  if (more_ids)
    q->ids = more_ids;
  more_actors = realloc (q->actors, (q->n + 1) * sizeof *q->actors);
  if (more_actors)
    q->actors = more_actors;
  if (more_ids == NULL || more_actors == NULL) {
    xs_error ("cannot list queued copies: %m");
    return -1;
  }
  snprintf (q->ids[q->n], sizeof q->ids[q->n], "%s", job->id);
  snprintf (q->actors[q->n], sizeof q->actors[q->n], "%s", job->actor);
  q->n++;
  return 0;
}

int
xs_copy_run_queued (struct xs_store *store,
                    const volatile sig_atomic_t *stop,
                    void (*note) (const char *line, void *opaque),
                    void *opaque)
{
  struct queued_list q = { NULL, NULL, 0 };
  struct xs_copy_options o = { .threads = 0, .stop = stop };
  struct xs_copy_report report;
  struct xs_snapshot copy;
  char line[256];
  int failures = 0;

  if (xs_job_list (store, NULL, XS_JOB_ALL, NULL, "queued", collect_queued,
                   &q) == -1) {
    free (q.ids);
    free (q.actors);
    return 1;
  }
  /* Oldest first: the list is newest first. */
  for (size_t i = q.n; i-- > 0 && !(stop && *stop); ) {
    struct xs_scope actor = { .account = q.actors[i], .region = NULL };

    if (xs_copy_resume (store, &actor, q.ids[i], &o, &copy, &report) == -1)
      failures++;
    else if (!report.queued && note) {
      snprintf (line, sizeof line, "queued copy %s done: %s/%s as %s",
                q.ids[i], copy.account, copy.region, copy.id);
      note (line, opaque);
    }
    xs_snapshot_clear (&copy);
  }
  free (q.ids);
  free (q.actors);
  return failures;
}
