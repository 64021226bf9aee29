/* xsnap: creating and opening stores (see store.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "keys.h"
#include "names.h"
#include "backend.h"
#include "repo.h"
#include "store.h"

/* Backends are opened on first use and kept for the store's lifetime. */
struct open_backend {
  struct open_backend *next;
  char *region;
  struct xs_backend *backend;
};

struct xs_store {
  char *path;
  struct xs_catalog *catalog;
  pthread_mutex_t backends_lock;        /* protects backends */
  struct open_backend *backends;
};

static char *
catalog_path (const char *path)
{
  char *file;

  if (asprintf (&file, "%s/xsnap.db", path) == -1) {
    xs_error ("cannot open store %s: %m", path);
    return NULL;
  }
  return file;
}

static int
make_dir (const char *path)
{
  if (mkdir (path, 0700) == -1 && errno != EEXIST) {
    xs_error ("cannot create directory %s: %m", path);
    return -1;
  }
  return 0;
}

/* Create STORE/regions/REGION/{volumes,repo}. */
int
xs_store_make_region_dirs (const char *path, const char *region)
{
  char *regions = NULL, *dir = NULL, *volumes = NULL, *repo = NULL;
  int r = -1;

  if (asprintf (&regions, "%s/regions", path) == -1
      || asprintf (&dir, "%s/%s", regions, region) == -1
      || asprintf (&volumes, "%s/volumes", dir) == -1
      || asprintf (&repo, "%s/repo", dir) == -1) {
    xs_error ("cannot create region %s: %m", region);
    goto out;
  }
  if (make_dir (regions) == 0 && make_dir (dir) == 0
      && make_dir (volumes) == 0 && make_dir (repo) == 0)
    r = 0;
 out:
  free (regions);
  free (dir);
  free (volumes);
  free (repo);
  return r;
}

static int
insert_defaults (struct xs_catalog *cat, const char *region,
                 const char *backend_url)
{
  sqlite3_stmt *stmt;
  int64_t now = xs_now_ns ();
  int r = -1;

  if (xs_catalog_begin (cat) == -1)
    return -1;
  stmt = xs_catalog_prepare (cat,
                             "INSERT INTO accounts (id, name, is_admin, created_ns)"
                             " VALUES (?, 'Administrator', 1, ?)",
                             "create the administrator account");
  if (stmt == NULL)
    goto out;
  sqlite3_bind_text (stmt, 1, XS_DEFAULT_ACCOUNT, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 2, now);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    xs_catalog_report (cat, "create the administrator account");
    sqlite3_finalize (stmt);
    goto out;
  }
  sqlite3_finalize (stmt);

  stmt = xs_catalog_prepare (cat,
                             "INSERT INTO regions (name, backend, created_ns)"
                             " VALUES (?, ?, ?)", "create the first region");
  if (stmt == NULL)
    goto out;
  sqlite3_bind_text (stmt, 1, region, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, backend_url, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 3, now);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    xs_catalog_report (cat, "create the first region");
    sqlite3_finalize (stmt);
    goto out;
  }
  sqlite3_finalize (stmt);

  if (xs_catalog_set_setting (cat, "store_format", XS_STORE_FORMAT) == -1
      || xs_catalog_set_setting (cat, "default_account",
                                 XS_DEFAULT_ACCOUNT) == -1
      || xs_catalog_set_setting (cat, "default_region", region) == -1)
    goto out;
  r = xs_catalog_commit (cat);
 out:
  if (r == -1)
    xs_catalog_rollback (cat);
  return r;
}

/* The master key that wraps the store's keys (keys.h): made now, so that
 * it exists before anything is encrypted and can be backed up with the
 * store's secrets.  An existing file (XSNAP_MASTER_KEY_FILE shared by
 * stores) is kept.
 */
static int
make_master_key (const char *path)
{
  char *file = xs_master_key_path (path);
  int r;

  if (file == NULL)
    return -1;
  r = xs_master_key_create (file);
  free (file);
  return r;
}

int
xs_store_init (const char *path, const char *region, const char *backend_url)
{
  char *db = NULL, *default_url = NULL;
  struct xs_catalog *cat = NULL;
  int r = -1;

  if (region == NULL)
    region = XS_DEFAULT_REGION;
  if (xs_name_check ("region", region) == -1)
    return -1;
  db = catalog_path (path);
  if (db == NULL)
    return -1;
  if (access (db, F_OK) == 0) {
    xs_error ("cannot initialise %s: it already holds an xsnap store", path);
    goto out;
  }
  if (make_dir (path) == -1 || xs_store_make_region_dirs (path, region) == -1)
    goto out;
  if (backend_url == NULL) {
    char *abs = realpath (path, NULL);
    if (abs == NULL
        || asprintf (&default_url, "file://%s/regions/%s/repo",
                     abs, region) == -1) {
      xs_error ("cannot initialise %s: %m", path);
      free (abs);
      goto out;
    }
    free (abs);
    backend_url = default_url;
  }
  cat = xs_catalog_open (db, true);
  if (cat == NULL)
    goto out;
  xs_catalog_lock (cat);
  r = insert_defaults (cat, region, backend_url);
  xs_catalog_unlock (cat);
  if (r == 0)
    r = make_master_key (path);
  if (r == 0)
    r = xs_fsync_dir (path);
 out:
  xs_catalog_close (cat);
  if (r == -1 && db && cat)
    unlink (db);                /* leave no half-made store behind */
  free (db);
  free (default_url);
  return r;
}

/* PATH is not an openable store: missing, or not ours to read. */
static void
report_no_store (const char *path)
{
  if (errno == ENOENT || errno == ENOTDIR)
    xs_error ("no xsnap store at %s (create one with 'xsnap init')", path);
  else
    xs_error ("cannot open the xsnap store at %s: %m", path);
}

struct xs_store *
xs_store_open (const char *path)
{
  struct xs_store *store;
  char *db;
  struct stat st;
  int found = stat (path, &st);

  if (found == 0 && !S_ISDIR (st.st_mode)) {
    errno = ENOTDIR;
    found = -1;
  }
  if (found == -1) {
    report_no_store (path);
    return NULL;
  }
  db = catalog_path (path);
  if (db == NULL)
    return NULL;
  if (access (db, F_OK) == -1) {
    report_no_store (path);
    free (db);
    return NULL;
  }
  store = calloc (1, sizeof *store);
  if (store == NULL || (store->path = strdup (path)) == NULL) {
    xs_error ("cannot open store %s: %m", path);
    free (store);
    free (db);
    return NULL;
  }
  pthread_mutex_init (&store->backends_lock, NULL);
  store->catalog = xs_catalog_open (db, false);
  free (db);
  if (store->catalog == NULL) {
    xs_store_close (store);
    return NULL;
  }
  return store;
}

void
xs_store_close (struct xs_store *store)
{
  if (store == NULL)
    return;
  while (store->backends) {
    struct open_backend *ob = store->backends;
    store->backends = ob->next;
    xs_backend_close (ob->backend);
    free (ob->region);
    free (ob);
  }
  pthread_mutex_destroy (&store->backends_lock);
  xs_catalog_close (store->catalog);
  free (store->path);
  free (store);
}

const char *
xs_store_path (const struct xs_store *store)
{
  return store->path;
}

struct xs_catalog *
xs_store_catalog (struct xs_store *store)
{
  return store->catalog;
}

/* 1 if a row with KEY exists in TABLE (column COLUMN), 0 if not, -1. */
static int
row_exists (struct xs_catalog *cat, const char *sql, const char *key,
            const char *what)
{
  sqlite3_stmt *stmt = xs_catalog_prepare (cat, sql, what);
  int r;

  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  r = sqlite3_step (stmt);
  if (r == SQLITE_ROW)
    r = 1;
  else if (r == SQLITE_DONE)
    r = 0;
  else {
    xs_catalog_report (cat, what);
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

static int
resolve (struct xs_catalog *cat, const char *given, const char *setting,
         const char *check_sql, const char *kind, char **out)
{
  char *value = NULL;
  int r;

  if (given)
    value = strdup (given);
  else if (xs_catalog_get_setting (cat, setting, &value) != 0) {
    xs_error ("the store has no %s (setting %s)", kind, setting);
    return -1;
  }
  if (value == NULL) {
    xs_error ("cannot resolve the %s: %m", kind);
    return -1;
  }
  r = row_exists (cat, check_sql, value, "look up an account or region");
  if (r == 0)
    xs_error ("no %s '%s' in this store", kind, value);
  if (r != 1) {
    free (value);
    return -1;
  }
  *out = value;
  return 0;
}

int
xs_store_scope (struct xs_store *store, const char *account,
                const char *region, struct xs_scope *scope)
{
  struct xs_catalog *cat = store->catalog;
  int r = -1;

  memset (scope, 0, sizeof *scope);
  xs_catalog_lock (cat);
  if (resolve (cat, account, "default_account",
               "SELECT 1 FROM accounts WHERE id = ?", "account",
               &scope->account) == 0
      && resolve (cat, region, "default_region",
                  "SELECT 1 FROM regions WHERE name = ?", "region",
                  &scope->region) == 0)
    r = 0;
  xs_catalog_unlock (cat);
  if (r == -1)
    xs_scope_clear (scope);
  return r;
}

void
xs_scope_clear (struct xs_scope *scope)
{
  free (scope->account);
  free (scope->region);
  scope->account = scope->region = NULL;
}

char *
xs_store_head_dir (const struct xs_store *store, const char *region,
                   const char *volume_id)
{
  char *dir;

  if (asprintf (&dir, "%s/regions/%s/volumes/%s", store->path, region,
                volume_id) == -1) {
    xs_error ("cannot build the path of volume %s: %m", volume_id);
    return NULL;
  }
  return dir;
}

/* The backend URL of REGION from the catalog (malloc'd). */
static char *
region_backend_url (struct xs_store *store, const char *region)
{
  struct xs_catalog *cat = store->catalog;
  sqlite3_stmt *stmt;
  char *url = NULL;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT backend FROM regions WHERE name = ?",
                             "look up a region");
  if (stmt) {
    sqlite3_bind_text (stmt, 1, region, -1, SQLITE_STATIC);
    if (sqlite3_step (stmt) == SQLITE_ROW) {
      url = strdup ((const char *) sqlite3_column_text (stmt, 0));
      if (url == NULL)
        xs_error ("cannot look up region '%s': %m", region);
    }
    else
      xs_error ("no region '%s' in this store", region);
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return url;
}

struct xs_backend *
xs_store_backend (struct xs_store *store, const char *region)
{
  struct open_backend *ob;
  struct xs_backend *backend = NULL;
  char *url;

  pthread_mutex_lock (&store->backends_lock);
  for (ob = store->backends; ob; ob = ob->next)
    if (strcmp (ob->region, region) == 0) {
      backend = ob->backend;
      goto out;
    }
  url = region_backend_url (store, region);
  if (url == NULL)
    goto out;
  ob = calloc (1, sizeof *ob);
  if (ob == NULL || (ob->region = strdup (region)) == NULL) {
    xs_error ("cannot open region '%s': %m", region);
    free (ob);
    free (url);
    goto out;
  }
  ob->backend = xs_backend_open (url);
  free (url);
  if (ob->backend == NULL) {
    free (ob->region);
    free (ob);
    goto out;
  }
  ob->next = store->backends;
  store->backends = ob;
  backend = ob->backend;
 out:
  pthread_mutex_unlock (&store->backends_lock);
  return backend;
}

struct xs_repo *
xs_store_repo (struct xs_store *store, const char *account,
               const char *region)
{
  struct xs_backend *backend = xs_store_backend (store, region);

  return backend ? xs_repo_open (backend, account) : NULL;
}
