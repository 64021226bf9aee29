/* xsnap: the last gc and verify of each repository, and what gc counted
 * (see maintenance.h).
 */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fileio.h"
#include "catalog/catalog.h"
#include "catalog/maintenance.h"

int
xs_maintenance_record_run (struct xs_store *store, const char *kind,
                           const char *account, const char *region,
                           int64_t started_ns, const char *result,
                           const char *detail)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "record a maintenance run",
                      "INSERT OR REPLACE INTO maintenance_runs (kind,"
                      " account, region, started_ns, finished_ns, result,"
                      " detail) VALUES (?, ?, ?, ?, ?, ?, ?)", "sssiiss",
                      kind, account, region, started_ns,
                      xs_wall_clock_ns (), result, detail ? detail : "");
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

int
xs_maintenance_record_chunks (struct xs_store *store, const char *account,
                              const char *region, uint64_t chunks)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "record a repository's chunk count",
                      "INSERT OR REPLACE INTO repository_usage (account,"
                      " region, chunks, measured_ns) VALUES (?, ?, ?, ?)",
                      "ssii", account, region, (int64_t) chunks,
                      xs_wall_clock_ns ());
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

struct run_list {
  int (*fn) (const struct xs_maintenance_run *run, void *opaque);
  void *opaque;
};

static int
each_run (sqlite3_stmt *stmt, void *opaque)
{
  struct run_list *list = opaque;
  struct xs_maintenance_run run = {
    .kind = (const char *) sqlite3_column_text (stmt, 0),
    .account = (const char *) sqlite3_column_text (stmt, 1),
    .region = (const char *) sqlite3_column_text (stmt, 2),
    .started_ns = sqlite3_column_int64 (stmt, 3),
    .finished_ns = sqlite3_column_int64 (stmt, 4),
    .result = (const char *) sqlite3_column_text (stmt, 5),
    .detail = (const char *) sqlite3_column_text (stmt, 6),
  };

  return list->fn (&run, list->opaque);
}

int
xs_maintenance_runs (struct xs_store *store,
                     int (*fn) (const struct xs_maintenance_run *run,
                                void *opaque),
                     void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct run_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT m.kind, m.account, m.region,"
                             " m.started_ns, m.finished_ns, m.result,"
                             " m.detail FROM maintenance_runs AS m"
                             " JOIN regions AS g ON g.name = m.region"
                             " WHERE m.account = ''"
                             "    OR m.account IN (SELECT id FROM accounts)"
                             " ORDER BY m.kind, m.region, m.account",
                             "list maintenance runs");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list maintenance runs", each_run,
                             &list);
  xs_catalog_unlock (cat);
  return r;
}

struct chunk_list {
  int (*fn) (const struct xs_repository_chunks *counted, void *opaque);
  void *opaque;
};

static int
each_count (sqlite3_stmt *stmt, void *opaque)
{
  struct chunk_list *list = opaque;
  struct xs_repository_chunks counted = {
    .account = (const char *) sqlite3_column_text (stmt, 0),
    .region = (const char *) sqlite3_column_text (stmt, 1),
    .chunks = (uint64_t) sqlite3_column_int64 (stmt, 2),
    .measured_ns = sqlite3_column_int64 (stmt, 3),
  };

  return list->fn (&counted, list->opaque);
}

int
xs_maintenance_chunks (struct xs_store *store,
                       int (*fn) (const struct xs_repository_chunks *counted,
                                  void *opaque),
                       void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct chunk_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT u.account, u.region, u.chunks,"
                             " u.measured_ns FROM repository_usage AS u"
                             " JOIN regions AS g ON g.name = u.region"
                             " JOIN accounts AS a ON a.id = u.account"
                             " ORDER BY u.account, u.region",
                             "list repositories' chunk counts");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list repositories' chunk counts",
                             each_count, &list);
  xs_catalog_unlock (cat);
  return r;
}
