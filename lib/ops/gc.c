/* xsnap: garbage collection (see gc.h).
 *
 * The set of referenced chunk ids is built as one sorted array of every
 * non-zero block of the kept manifests (duplicates removed), searched
 * with bsearch for each listed chunk: 16 bytes per distinct block, no
 * hash table to tune.  The pages the manifests' maps are stored in are
 * marked in a second set, which the walks also consult: a page seen
 * before was marked with everything under it, so a subtree that many
 * snapshots share is marked once.  Unreferenced pages go before any
 * chunk, parents before children, so that whatever gc leaves behind when
 * it stops half way, a page that is there has everything under it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "base/idmap.h"
#include "ops/gc.h"
#include "repo/backend.h"
#include "repo/manifest.h"
#include "repo/maptree.h"
#include "ops/recvstate.h"
#include "repo/repo.h"
#include "catalog/account.h"
#include "catalog/maintenance.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"

struct id_set {
  struct xs_hash128 *ids;
  size_t len, cap;
};

static int
id_set_add (struct id_set *set, const struct xs_hash128 *id)
{
  if (set->len == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 4096;
    struct xs_hash128 *ids = realloc (set->ids, cap * sizeof *ids);
    if (ids == NULL) {
      xs_error ("gc: cannot hold the set of referenced chunks: %m");
      return -1;
    }
    set->ids = ids;
    set->cap = cap;
  }
  set->ids[set->len++] = *id;
  return 0;
}

/* For xs_recvstate_chunks: keep what an interrupted receive holds. */
static int
keep_received_chunk (const struct xs_hash128 *id, void *opaque)
{
  return id_set_add (opaque, id);
}

static int
compare_ids (const void *a, const void *b)
{
  return xs_hash128_compare (a, b);
}

static void
id_set_finish (struct id_set *set)
{
  size_t i, out = 0;

  if (set->len == 0)
    return;                     /* ids may be NULL: qsort must not see it */
  qsort (set->ids, set->len, sizeof *set->ids, compare_ids);
  for (i = 0; i < set->len; i++)
    if (out == 0 || !xs_hash128_equal (&set->ids[out - 1], &set->ids[i]))
      set->ids[out++] = set->ids[i];
  set->len = out;
}

static bool
id_set_has (const struct id_set *set, const struct xs_hash128 *id)
{
  return set->len > 0
    && bsearch (id, set->ids, set->len, sizeof *id, compare_ids) != NULL;
}

struct string_list {
  char **items;
  size_t len;
};

static void
string_list_free (struct string_list *list)
{
  for (size_t i = 0; i < list->len; i++)
    free (list->items[i]);
  free (list->items);
  list->items = NULL;
  list->len = 0;
}

static int
string_list_add (struct string_list *list, const char *text)
{
  char **items = realloc (list->items, (list->len + 1) * sizeof *items);

  if (items == NULL || (items[list->len] = strdup (text)) == NULL) {
    xs_error ("gc: out of memory");
    if (items)
      list->items = items;
    return -1;
  }
  list->items = items;
  list->len++;
  return 0;
}

/* For the catalog's listings of ids: collect them, to act on once the
 * catalog is no longer being read.
 */
static int
collect_id (const char *id, void *opaque)
{
  return string_list_add (opaque, id);
}

/* An unreferenced page and its level (as its header says). */
struct garbage_page {
  struct xs_hash128 id;
  unsigned level;
};

struct account_pass {
  struct xs_store *store;
  struct xs_repo *repo;
  const char *account;
  const char *region;
  struct id_set referenced;           /* chunks */
  /* The pages of the kept manifests' maps, and those found unreferenced
   * (deleted before any chunk, highest level first).
   */
  struct xs_idmap referenced_pages;
  struct garbage_page *garbage;
  size_t ngarbage, garbage_cap;
  struct string_list purgeable;         /* deleted snapshots to purge */
  struct string_list orphans;           /* manifests without a row */
  struct xs_gc_report *report;
};

/* Is there a catalog row for manifest ID (any status)? */
static int
has_row (struct xs_store *store, const char *id)
{
  struct xs_snapshot snap;
  int r = xs_snapshot_lookup_id (store, id, &snap);

  if (r == 0)
    xs_snapshot_clear (&snap);
  return r == -1 ? -1 : r == 0;
}

/* For the walk of a kept manifest: skip a page marked before (with all
 * that is under it).
 */
static int
mark_page (const struct xs_hash128 *id, unsigned level, void *opaque)
{
  struct account_pass *pass = opaque;
  bool seen;

  if (xs_idmap_put (&pass->referenced_pages, id, NULL, &seen) == -1)
    return -1;
  return seen ? 1 : 0;
}

static int
mark_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct account_pass *pass = opaque;

  return id_set_add (&pass->referenced, id);
}

/* Mark the pages and chunks M refers to. */
static int
mark_manifest (struct account_pass *pass, struct xs_manifest *m)
{
  const struct xs_manifest_visitor visitor = {
    .page = mark_page, .block = mark_block, .opaque = pass,
  };

  return xs_manifest_walk (m, &visitor) == 0 ? 0 : -1;
}

/* Mark what every snapshot the catalog keeps in the account and region
 * references, from its manifest, whether or not a listing shows it: a
 * manifest that cannot be read protects chunks we cannot name, so it
 * stops gc before anything is deleted.
 */
static int
mark_kept_snapshots (struct account_pass *pass)
{
  struct string_list kept = { 0 };
  int r = -1;

  if (xs_snapshot_list_retained (pass->store, pass->account, pass->region,
                                 collect_id, &kept) == -1)
    goto out;
  for (size_t i = 0; i < kept.len; i++) {
    struct xs_manifest *m;

    m = xs_snapshot_load_manifest_unopened (pass->store, pass->account,
                                            pass->region, kept.items[i]);
    if (m == NULL) {
      xs_error ("gc of region '%s': snapshot %s of account '%s' is in the "
                "catalog but its manifest cannot be read; nothing deleted",
                pass->region, kept.items[i], pass->account);
      goto out;
    }
    if (mark_manifest (pass, m) == -1) {
      xs_manifest_free (m);
      goto out;
    }
    xs_manifest_free (m);
    pass->report->manifests++;
  }
  r = 0;
 out:
  string_list_free (&kept);
  return r;
}

/* For the listing of manifests: those without a row are orphans. */
static int
find_orphan (const char *id, void *opaque)
{
  struct account_pass *pass = opaque;
  int r = has_row (pass->store, id);

  if (r == 0)
    return string_list_add (&pass->orphans, id);
  return r == 1 ? 0 : -1;
}

static int
purge_snapshots (struct account_pass *pass)
{
  for (size_t i = 0; i < pass->purgeable.len; i++) {
    if (xs_repo_delete_manifest (pass->repo, pass->purgeable.items[i]) == -1
        || xs_snapshot_forget_reclaimed (pass->store,
                                         pass->purgeable.items[i]) == -1)
      return -1;
    pass->report->purged_snapshots++;
  }
  return 0;
}

static int
remove_orphans (struct account_pass *pass)
{
  for (size_t i = 0; i < pass->orphans.len; i++) {
    if (xs_repo_delete_manifest (pass->repo, pass->orphans.items[i]) == -1)
      return -1;
    pass->report->orphan_manifests++;
  }
  return 0;
}

static int
sweep_chunk (const struct xs_hash128 *id, void *opaque)
{
  struct account_pass *pass = opaque;

  if (id_set_has (&pass->referenced, id)) {
    pass->report->chunks_kept++;
    return 0;
  }
  pass->report->chunks_deleted++;
  return xs_repo_delete_chunk (pass->repo, id) == -1 ? -1 : 0;
}

/* For the listing of pages: note each one no kept map refers to, with
 * its level, read from its header (a page too damaged to say is taken as
 * the highest, so it goes first).
 */
static int
find_garbage_page (const struct xs_hash128 *id, void *opaque)
{
  struct account_pass *pass = opaque;
  struct garbage_page *page;
  void *data;
  size_t len;
  int r;

  if (xs_idmap_has (&pass->referenced_pages, id)) {
    pass->report->pages_kept++;
    return 0;
  }
  if (pass->ngarbage == pass->garbage_cap) {
    size_t cap = pass->garbage_cap ? 2 * pass->garbage_cap : 256;
    struct garbage_page *grown = realloc (pass->garbage,
                                          cap * sizeof *grown);

    if (grown == NULL) {
      xs_error ("gc: cannot hold the list of unreferenced pages: %m");
      return -1;
    }
    pass->garbage = grown;
    pass->garbage_cap = cap;
  }
  page = &pass->garbage[pass->ngarbage++];
  page->id = *id;
  page->level = UINT8_MAX;
  r = xs_repo_get_page (pass->repo, id, &data, &len);
  if (r == -1)
    return -1;
  if (r == 0) {
    int level = xs_maptree_page_level (data, len);

    if (level >= 0)
      page->level = (unsigned) level;
    free (data);
  }
  return 0;
}

static int
higher_level_first (const void *a, const void *b)
{
  const struct garbage_page *x = a, *y = b;

  return (x->level < y->level) - (x->level > y->level);
}

/* Delete the unreferenced pages, parents before children, so that a page
 * present always has everything under it (what a copy that finds it
 * relies on), even if gc stops half way.
 */
static int
sweep_pages (struct account_pass *pass)
{
  if (pass->ngarbage > 1)
    qsort (pass->garbage, pass->ngarbage, sizeof *pass->garbage,
           higher_level_first);
  for (size_t i = 0; i < pass->ngarbage; i++) {
    if (xs_repo_delete_page (pass->repo, &pass->garbage[i].id) == -1)
      return -1;
    pass->report->pages_deleted++;
  }
  return 0;
}

/* One account's repository in the region: everything is decided (what is
 * live, what to purge, which manifests are orphans) before anything is
 * deleted.
 */
static int
collect_account (struct xs_store *store, const char *account,
                 const char *region, struct xs_gc_report *report)
{
  struct account_pass pass = {
    .store = store, .account = account, .region = region, .report = report,
  };
  int r = -1;

  pass.repo = xs_store_repo (store, account, region);
  if (pass.repo == NULL)
    return -1;
  if (xs_snapshot_list_reclaimable (store, account, region, collect_id,
                                    &pass.purgeable) == -1
      || mark_kept_snapshots (&pass) == -1
      || xs_recvstate_chunks (store, region, keep_received_chunk,
                              &pass.referenced) != 0
      || xs_repo_list_manifests (pass.repo, find_orphan, &pass) != 0)
    goto out;
  id_set_finish (&pass.referenced);
  if (purge_snapshots (&pass) == -1 || remove_orphans (&pass) == -1
      || xs_repo_list_pages (pass.repo, find_garbage_page, &pass) != 0
      || sweep_pages (&pass) == -1
      || xs_repo_list_chunks (pass.repo, sweep_chunk, &pass) != 0)
    goto out;
  r = 0;
 out:
  free (pass.referenced.ids);
  xs_idmap_clear (&pass.referenced_pages);
  free (pass.garbage);
  string_list_free (&pass.purgeable);
  string_list_free (&pass.orphans);
  xs_repo_close (pass.repo);
  return r;
}

/* For the listing of accounts: gc visits each one's repository in the
 * region.
 */
static int
collect_account_id (const struct xs_account *account, void *opaque)
{
  return string_list_add (opaque, account->id);
}

/* One account: swept, and the chunks it kept recorded (what the
 * metrics report as the repository's chunk count).
 */
static int
collect_and_count (struct xs_store *store, const char *account,
                   const char *region, struct xs_gc_report *report)
{
  uint64_t before = report->chunks_kept;

  if (collect_account (store, account, region, report) == -1)
    return -1;
  return xs_maintenance_record_chunks (store, account, region,
                                       report->chunks_kept - before);
}

static int gc_region_locked (struct xs_store *store, const char *region,
                             struct xs_gc_report *report);

int
xs_gc_region (struct xs_store *store, const char *region,
              struct xs_gc_report *report)
{
  int64_t started = xs_wall_clock_ns ();
  char why[512] = "", detail[600];
  int r;

  xs_error_capture_begin (why, sizeof why);
  r = gc_region_locked (store, region, report);
  xs_error_capture_end ();
  if (r == 0)
    snprintf (detail, sizeof detail, "%" PRIu64 " chunks deleted, %" PRIu64
              " kept", report->chunks_deleted, report->chunks_kept);
  else
    snprintf (detail, sizeof detail, "%s", why);
  /* The run is recorded however it ended: gc that keeps failing shows. */
  if (xs_maintenance_record_run (store, "gc", "", region, started,
                                 r == 0 ? XS_RUN_OK : XS_RUN_FAILED,
                                 detail) == -1)
    r = -1;
  return r;
}

static int
gc_region_locked (struct xs_store *store, const char *region,
                  struct xs_gc_report *report)
{
  struct string_list accounts = { 0 };
  struct xs_backend *backend;
  long temps;
  int64_t stale;
  int lock_fd, r = -1;

  memset (report, 0, sizeof *report);
  lock_fd = xs_snapshot_gc_lock (store, region, true);
  if (lock_fd == -1)
    return -1;
  /* Only what this store owns is collected: the owner mark is read again
   * from the backend, under the lock, before anything changes.
   */
  if (xs_store_check_owner (store, region) == -1)
    goto out;
  stale = xs_snapshot_forget_pending_in_region (store, region);
  if (stale == -1)
    goto out;
  report->stale_pending = (uint64_t) stale;
  if (xs_account_list (store, collect_account_id, &accounts) == -1)
    goto out;
  for (size_t i = 0; i < accounts.len; i++)
    if (collect_and_count (store, accounts.items[i], region, report) == -1)
      goto out;
  /* Writers that died left temporary files; a minute is far longer than
   * any writer keeps one.
   */
  backend = xs_store_backend (store, region);
  if (backend == NULL)
    goto out;
  temps = xs_backend_remove_stale_temps (backend, 60);
  if (temps == -1)
    goto out;
  report->temps_removed = (uint64_t) temps;
  if (xs_volume_clean_staging (store, region, &report->staged_removed) == -1)
    goto out;
  r = 0;
 out:
  string_list_free (&accounts);
  close (lock_fd);
  return r;
}
