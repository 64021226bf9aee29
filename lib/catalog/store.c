/* xsnap: creating and opening stores (see store.h). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "crypto/masterkey.h"
#include "base/names.h"
#include "repo/backend.h"
#include "base/hash.h"
#include "repo/repo.h"
#include "catalog/store.h"

/* Backends are opened on first use and kept for the store's lifetime. */
struct open_backend {
  struct open_backend *next;
  char *region;
  struct xs_backend *backend;
};

struct xs_store {
  char *path;
  char id[XS_STORE_ID_LEN + 1];         /* setting store_id */
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
                 const char *backend_url, const char *store_id)
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
      || xs_catalog_set_setting (cat, "default_region", region) == -1
      || xs_catalog_set_setting (cat, "store_id", store_id) == -1)
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

/* A fresh store id: 32 lower-case hex digits. */
static int
new_store_id (char id[XS_STORE_ID_LEN + 1])
{
  struct xs_hash128 bits;
  char hex[XS_HASH128_HEX_LEN + 1];

  if (xs_random_bytes (&bits, sizeof bits) == -1)
    return -1;
  xs_hash128_to_hex (&bits, hex);
  snprintf (id, XS_STORE_ID_LEN + 1, "%s", hex);
  return 0;
}

/* 1 if the tree at PATH holds a file (of any kind but a directory), 0 if
 * it holds only directories, -1 with an error.
 */
static int
tree_holds_files (const char *path)
{
  DIR *dir = opendir (path);
  struct dirent *d;
  int r = 0;

  if (dir == NULL) {
    if (errno == ENOENT)
      return 0;
    xs_error ("cannot read %s: %m", path);
    return -1;
  }
  while (r == 0 && (d = readdir (dir)) != NULL) {
    char *sub;
    struct stat st;

    if (strcmp (d->d_name, ".") == 0 || strcmp (d->d_name, "..") == 0)
      continue;
    if (asprintf (&sub, "%s/%s", path, d->d_name) == -1) {
      xs_error ("cannot read %s: %m", path);
      r = -1;
      break;
    }
    if (lstat (sub, &st) == -1) {
      xs_error ("cannot read %s: %m", sub);
      r = -1;
    }
    else
      r = S_ISDIR (st.st_mode) ? tree_holds_files (sub) : 1;
    free (sub);
  }
  closedir (dir);
  return r;
}

/* init starts a store afresh: refuse a directory that holds one's data
 * (the master key, volumes or repositories) but no catalog, which
 * is what a lost catalog leaves, so that a new catalog never sits beside
 * data it does not describe.  A failed init leaves only empty
 * directories, which do not count.
 */
static int
check_no_store_data (const char *path)
{
  static const char *const files[] = {
    "xsnap.db-wal", "master.key", "regions",
  };
  char *file;
  int r = 0;

  for (size_t i = 0; r == 0 && i < sizeof files / sizeof files[0]; i++) {
    if (asprintf (&file, "%s/%s", path, files[i]) == -1) {
      xs_error ("cannot initialise %s: %m", path);
      return -1;
    }
    if (strcmp (files[i], "regions") == 0)
      r = tree_holds_files (file);
    else
      r = access (file, F_OK) == 0;
    if (r == 1)
      xs_error ("cannot initialise %s: it holds the data of an xsnap store "
                "(%s) but no catalog: restore xsnap.db from a backup (a new "
                "catalog would know nothing of that data)", path, file);
    free (file);
  }
  return r == 0 ? 0 : -1;
}

/* The owner mark this store writes for REGION. */
static void
owner_of (const char *store_id, const char *store_path, const char *region,
          struct xs_repo_owner *owner)
{
  char *abs = realpath (store_path, NULL);

  memset (owner, 0, sizeof *owner);
  snprintf (owner->store_id, sizeof owner->store_id, "%s", store_id);
  snprintf (owner->region, sizeof owner->region, "%s", region);
  snprintf (owner->path, sizeof owner->path, "%s", abs ? abs : store_path);
  free (abs);
}

static void
report_owned_by_other (const char *region, struct xs_backend *backend,
                       const struct xs_repo_owner *owner)
{
  xs_error ("region '%s': the repository at %s is owned by another xsnap "
            "store (%s, made at %s, its region '%s'): a store never writes "
            "to or collects another store's repository",
            region, xs_backend_url (backend), owner->store_id, owner->path,
            owner->region);
}

/* Claim or check the repository at BACKEND for REGION of the store
 * STORE_ID at STORE_PATH (see xs_store_claim).  REGION_URL, if not
 * NULL, gives the backend URL of a region of this store by name (to
 * tell a stale mark of a removed region from a region in use).
 */
static int
claim_or_check (const char *store_id, const char *store_path,
                const char *region, struct xs_backend *backend,
                bool may_claim_data,
                char *(*region_url) (void *opaque, const char *name),
                void *opaque)
{
  struct xs_repo_owner owner, mine;
  int attempt, r;

  owner_of (store_id, store_path, region, &mine);
  for (attempt = 0; attempt < 2; attempt++) {
    r = xs_repo_read_owner (backend, &owner);
    if (r == -1)
      return -1;
    if (r == 0) {
      char *url;
      bool in_use;

      if (strcmp (owner.store_id, store_id) != 0) {
        report_owned_by_other (region, backend, &owner);
        return -1;
      }
      if (strcmp (owner.region, region) == 0)
        return 0;
      url = region_url ? region_url (opaque, owner.region) : NULL;
      in_use = url && strcmp (url, xs_backend_url (backend)) == 0;
      free (url);
      if (in_use) {
        xs_error ("region '%s': the repository at %s is used by region "
                  "'%s' of this store: two regions never share a "
                  "repository (gc of one would take the other's chunks)",
                  region, xs_backend_url (backend), owner.region);
        return -1;
      }
      /* The mark of a region of ours that is gone: take it over. */
      return xs_repo_write_owner (backend, &mine, true);
    }
    if (!may_claim_data) {
      r = xs_repo_holds_data (backend);
      if (r == -1)
        return -1;
      if (r == 1) {
        xs_error ("region '%s': the repository at %s holds data but no "
                  "owner mark: it is not this store's (a store made by an "
                  "earlier xsnap claims its own repositories on first "
                  "use); nothing there is written or collected",
                  region, xs_backend_url (backend));
        return -1;
      }
    }
    r = xs_repo_write_owner (backend, &mine, false);
    if (r != 0)
      return r;
    /* Another process wrote a mark meanwhile: read it. */
  }
  xs_error ("region '%s': the owner mark of %s keeps changing", region,
            xs_backend_url (backend));
  return -1;
}

/* Open the backend of a new store's first region and claim it. */
static int
claim_first_backend (const char *path, const char *store_id,
                     const char *region, const char *url, bool *claimed)
{
  struct xs_backend *backend = xs_backend_open_new (url);
  int r;

  if (backend == NULL)
    return -1;
  r = claim_or_check (store_id, path, region, backend, false, NULL, NULL);
  *claimed = r == 1;
  xs_backend_close (backend);
  return r == -1 ? -1 : 0;
}

/* Undo the claim of a store that was not made after all. */
static void
unclaim_first_backend (const char *url)
{
  struct xs_backend *backend = xs_backend_open (url);

  if (backend)
    xs_repo_remove_owner (backend);
  xs_backend_close (backend);
}

int
xs_store_init (const char *path, const char *region, const char *backend_url)
{
  char *db = NULL, *default_url = NULL, id[XS_STORE_ID_LEN + 1];
  struct xs_catalog *cat = NULL;
  bool claimed = false;
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
  if (check_no_store_data (path) == -1 || new_store_id (id) == -1)
    goto out;
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
  if (claim_first_backend (path, id, region, backend_url, &claimed) == -1)
    goto out;
  cat = xs_catalog_open (db, true);
  if (cat == NULL)
    goto out;
  xs_catalog_lock (cat);
  r = insert_defaults (cat, region, backend_url, id);
  xs_catalog_unlock (cat);
  if (r == 0)
    r = make_master_key (path);
  if (r == 0)
    r = xs_fsync_dir (path);
 out:
  xs_catalog_close (cat);
  if (r == -1 && db && cat)
    unlink (db);                /* leave no half-made store behind */
  if (r == -1 && claimed)
    unclaim_first_backend (backend_url);
  free (db);
  free (default_url);
  return r;
}

/* The names of the store's regions, separated by spaces (malloc'd), or
 * NULL.  Holding the catalog lock.  (Read here, not through region.h:
 * the region module opens regions through the store.)
 */
static char *
region_names (struct xs_catalog *cat)
{
  static const char what[] = "record the store's unmarked regions";
  sqlite3_stmt *stmt;
  char *names = NULL;
  bool failed = false;

  stmt = xs_catalog_prepare (cat, "SELECT coalesce (group_concat (name, ' '),"
                             " '') FROM regions", what);
  if (stmt == NULL)
    return NULL;
  if (sqlite3_step (stmt) == SQLITE_ROW) {
    names = xs_catalog_column_dup (stmt, 0, &failed);
    if (failed)
      xs_error ("cannot %s: %m", what);
  }
  else
    xs_catalog_report (cat, what);
  sqlite3_finalize (stmt);
  return names;
}

/* A store made before stores had ids gets one on first open, and
 * records its regions then: their repositories have no owner mark, and
 * this store, whose catalog lists them, claims them on first use.
 */
static int
ensure_store_id (struct xs_store *store)
{
  struct xs_catalog *cat = store->catalog;
  char *value = NULL, *names = NULL, id[XS_STORE_ID_LEN + 1];
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_get_setting (cat, "store_id", &value);
  if (r == 1 && new_store_id (id) == 0 && xs_catalog_begin (cat) == 0) {
    r = xs_catalog_get_setting (cat, "store_id", &value);
    if (r == 1
        && (xs_catalog_set_setting (cat, "store_id", id) == -1
            || (names = region_names (cat)) == NULL
            || xs_catalog_set_setting (cat, "unmarked_regions", names) == -1
            || (value = strdup (id)) == NULL))
      r = -1;
    free (names);
    if (r == -1)
      xs_catalog_rollback (cat);
    else if (xs_catalog_commit (cat) == -1)
      r = -1;
  }
  xs_catalog_unlock (cat);
  if (r == -1 || value == NULL) {
    if (r != -1)
      xs_error ("cannot open store %s: no store id", store->path);
    free (value);
    return -1;
  }
  if (strlen (value) != XS_STORE_ID_LEN) {
    xs_error ("cannot open store %s: its store id '%.40s' is not %d hex "
              "digits", store->path, value, XS_STORE_ID_LEN);
    free (value);
    return -1;
  }
  memcpy (store->id, value, XS_STORE_ID_LEN + 1);
  free (value);
  return 0;
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
  /* Absolute: the paths made from it (regions' backends, sockets, key
   * files) are stored and printed, and must mean the same anywhere.
   */
  store = calloc (1, sizeof *store);
  if (store == NULL)
    xs_error ("cannot open store %s: %m", path);
  else if ((store->path = xs_absolute_path (path, "store")) == NULL) {
    free (store);
    store = NULL;
  }
  if (store == NULL) {
    free (db);
    return NULL;
  }
  pthread_mutex_init (&store->backends_lock, NULL);
  store->catalog = xs_catalog_open (db, false);
  free (db);
  if (store->catalog == NULL || ensure_store_id (store) == -1) {
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
xs_store_id (const struct xs_store *store)
{
  return store->id;
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

/* The backend URL of REGION from the catalog (malloc'd); NULL, with an
 * error unless QUIET, if there is no such region.
 */
static char *
region_backend_url (struct xs_store *store, const char *region, bool quiet)
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
    else if (!quiet)
      xs_error ("no region '%s' in this store", region);
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return url;
}

static char *
other_region_url (void *opaque, const char *name)
{
  return region_backend_url (opaque, name, true);
}

/* Is NAME one of the space-separated words of LIST? */
static bool
list_holds (const char *list, const char *name)
{
  size_t len = strlen (name);
  const char *p;

  if (len == 0)
    return false;
  for (p = list; (p = strstr (p, name)) != NULL; p++)
    if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
      return true;
  return false;
}

/* Whether REGION was a region of this store when it was opened by a
 * version that marks repositories for the first time (ensure_store_id).
 */
static int
region_is_unmarked (struct xs_store *store, const char *region)
{
  char *unmarked = NULL;
  int r;

  xs_catalog_lock (store->catalog);
  r = xs_catalog_get_setting (store->catalog, "unmarked_regions", &unmarked);
  xs_catalog_unlock (store->catalog);
  if (r == -1)
    return -1;
  r = r == 0 && list_holds (unmarked, region);
  free (unmarked);
  return r;
}

int
xs_store_claim (struct xs_store *store, const char *region,
                struct xs_backend *backend, bool may_claim_data)
{
  return claim_or_check (store->id, store->path, region, backend,
                         may_claim_data, other_region_url, store);
}

int
xs_store_check_owner (struct xs_store *store, const char *region)
{
  struct xs_backend *backend = xs_store_backend (store, region);

  if (backend == NULL)
    return -1;
  return xs_store_claim (store, region, backend, false) == -1 ? -1 : 0;
}

/* Check that the backend just opened for REGION is ours, claiming it
 * when it may be.
 */
static int
check_opened_backend (struct xs_store *store, const char *region,
                      struct xs_backend *backend)
{
  int unmarked = region_is_unmarked (store, region);

  if (unmarked == -1)
    return -1;
  return xs_store_claim (store, region, backend, unmarked) == -1 ? -1 : 0;
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
  url = region_backend_url (store, region, false);
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
  if (ob->backend
      && check_opened_backend (store, region, ob->backend) == -1) {
    xs_backend_close (ob->backend);
    ob->backend = NULL;
  }
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
