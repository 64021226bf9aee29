/* xsnap: the SQLite catalog and its schema migrations (see catalog.h).
 *
 * Migrations are append-only: a released migration is never edited, a
 * change to the schema is a new entry at the end.  Each one runs in its own
 * transaction together with the bump of user_version, so a crash during an
 * upgrade leaves the file at the previous version, never in between.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "base/error.h"

struct xs_catalog {
  sqlite3 *db;
  char *path;
  pthread_mutex_t lock;         /* serializes every use of db */
};

/* Version N of the schema is reached by running migrations[N - 1]. */
static const char *const migrations[] = {
  /* 1: the store itself: settings, accounts, regions. */
  "CREATE TABLE settings ("
  "  key   TEXT PRIMARY KEY,"
  "  value TEXT NOT NULL);"
  "CREATE TABLE accounts ("
  "  id         TEXT PRIMARY KEY,"
  "  name       TEXT NOT NULL DEFAULT '',"
  "  email      TEXT NOT NULL DEFAULT '',"
  "  is_admin   INTEGER NOT NULL DEFAULT 0,"
  "  created_ns INTEGER NOT NULL);"
  "CREATE TABLE regions ("
  "  name       TEXT PRIMARY KEY,"
  "  backend    TEXT NOT NULL,"
  "  grp        TEXT NOT NULL DEFAULT 'default',"
  "  created_ns INTEGER NOT NULL);",

  /* 2: volumes.  cbt_epoch counts the resets of the changed-block map (one
   * per snapshot); the map file carries the epoch it belongs to, so a map
   * left over from an earlier epoch is never taken for the current one.
   */
  "CREATE TABLE volumes ("
  "  id         TEXT PRIMARY KEY,"
  "  account    TEXT NOT NULL REFERENCES accounts (id),"
  "  region     TEXT NOT NULL REFERENCES regions (name),"
  "  name       TEXT NOT NULL,"
  "  size       INTEGER NOT NULL CHECK (size > 0),"
  "  block_size INTEGER NOT NULL CHECK (block_size > 0),"
  "  created_ns INTEGER NOT NULL,"
  "  cbt_epoch  INTEGER NOT NULL DEFAULT 0,"
  "  UNIQUE (account, region, name));",

  /* 3: snapshots.  A snapshot row is 'pending' from the moment its point in
   * time is taken until its manifest is durable, then 'available'.
   * Deleting hides it ('deleted'); gc removes the row and its manifest once
   * no volume needs it any more (as the base of its changed-block map, or
   * as the source of a clone that is not fully hydrated).  Names are
   * unique per volume name among snapshots that are not deleted.
   */
  "CREATE TABLE snapshots ("
  "  id              TEXT PRIMARY KEY,"
  "  account         TEXT NOT NULL REFERENCES accounts (id),"
  "  region          TEXT NOT NULL REFERENCES regions (name),"
  "  volume_id       TEXT NOT NULL,"
  "  volume_name     TEXT NOT NULL,"
  "  name            TEXT NOT NULL,"
  "  parent_id       TEXT NOT NULL DEFAULT '',"
  "  status          TEXT NOT NULL"
  "                  CHECK (status IN ('pending', 'available', 'deleted')),"
  "  size            INTEGER NOT NULL,"
  "  block_size      INTEGER NOT NULL,"
  "  created_ns      INTEGER NOT NULL,"
  "  root_hash       TEXT NOT NULL DEFAULT '',"
  "  changed_blocks  INTEGER NOT NULL DEFAULT 0,"
  "  stored_bytes    INTEGER NOT NULL DEFAULT 0,"
  "  creation_method TEXT NOT NULL DEFAULT 'manual',"
  "  owner_pid       INTEGER NOT NULL DEFAULT 0);"
  "CREATE UNIQUE INDEX snapshots_by_name"
  "  ON snapshots (account, region, volume_name, name)"
  "  WHERE status != 'deleted';"
  "CREATE INDEX snapshots_by_volume ON snapshots (volume_id);"
  "ALTER TABLE volumes ADD COLUMN base_snapshot_id TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE volumes ADD COLUMN source_snapshot_id TEXT NOT NULL"
  "  DEFAULT '';",

  /* 4: accounts and what they may do.  collaborator_of makes an account a
   * member of another's organisation (the root of the chain).  Policy
   * documents are stored canonical; attached_by is who attached them (an
   * allow only reaches resources its attacher owns, see access.c).
   * A share lets SHAREE see one snapshot (kind 'snapshot') or every
   * snapshot of one volume (kind 'chain', resource_id = volume id) until
   * expires_ns; it is 'pending' until the sharee accepts it, and a chain
   * the sharee removed from its view is 'hidden'.  Unsharing deletes the
   * row.  uid_map maps local users (NBD over a Unix socket, the CLI) to
   * accounts.  The audit log is append-only.
   */
  "ALTER TABLE accounts ADD COLUMN collaborator_of TEXT NOT NULL"
  "  DEFAULT '';"
  "CREATE TABLE policy_docs ("
  "  id          TEXT PRIMARY KEY,"
  "  account     TEXT NOT NULL REFERENCES accounts (id),"
  "  name        TEXT NOT NULL,"
  "  attached_by TEXT NOT NULL,"
  "  document    TEXT NOT NULL,"
  "  created_ns  INTEGER NOT NULL,"
  "  UNIQUE (account, name));"
  "CREATE TABLE shares ("
  "  id          TEXT PRIMARY KEY,"
  "  owner       TEXT NOT NULL REFERENCES accounts (id),"
  "  region      TEXT NOT NULL REFERENCES regions (name),"
  "  kind        TEXT NOT NULL CHECK (kind IN ('snapshot', 'chain')),"
  "  resource_id TEXT NOT NULL,"
  "  sharee      TEXT NOT NULL REFERENCES accounts (id),"
  "  status      TEXT NOT NULL"
  "              CHECK (status IN ('pending', 'accepted', 'hidden')),"
  "  created_ns  INTEGER NOT NULL,"
  "  expires_ns  INTEGER NOT NULL,"
  "  UNIQUE (kind, resource_id, sharee));"
  "CREATE INDEX shares_by_sharee ON shares (sharee, status);"
  "CREATE INDEX shares_by_owner ON shares (owner, kind);"
  "CREATE TABLE uid_map ("
  "  uid         INTEGER PRIMARY KEY,"
  "  account     TEXT NOT NULL REFERENCES accounts (id));"
  "CREATE TABLE audit ("
  "  seq         INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  at_ns       INTEGER NOT NULL,"
  "  actor       TEXT NOT NULL,"
  "  action      TEXT NOT NULL,"
  "  resource    TEXT NOT NULL,"
  "  owner       TEXT NOT NULL DEFAULT '',"
  "  outcome     TEXT NOT NULL"
  "              CHECK (outcome IN ('allowed', 'denied', 'failed')),"
  "  detail      TEXT NOT NULL DEFAULT '');",

  /* 5: copies.  A copied snapshot records where it came from (origin:
   * "copiedFrom:ACCOUNT:REGION:SNAPSHOT") and a description.  A job is a
   * copy waiting ('queued'), in progress or done, visible to both sides,
   * with what it needs to run again (name, description, bandwidth): its
   * progress is updated as chunks arrive, and a job left 'running' by a
   * process that died is failed by the next look at it (owner_pid).
   */
  "ALTER TABLE snapshots ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE snapshots ADD COLUMN description TEXT NOT NULL DEFAULT '';"
  "CREATE TABLE jobs ("
  "  id              TEXT PRIMARY KEY,"
  "  kind            TEXT NOT NULL CHECK (kind IN ('copy')),"
  "  actor           TEXT NOT NULL,"
  "  source_account  TEXT NOT NULL,"
  "  source_region   TEXT NOT NULL,"
  "  source_snapshot TEXT NOT NULL,"
  "  dest_account    TEXT NOT NULL,"
  "  dest_region     TEXT NOT NULL,"
  "  dest_snapshot   TEXT NOT NULL,"
  "  name            TEXT NOT NULL DEFAULT '',"
  "  description     TEXT NOT NULL DEFAULT '',"
  "  bandwidth       INTEGER NOT NULL DEFAULT 0,"
  "  status          TEXT NOT NULL"
  "                  CHECK (status IN ('queued', 'running', 'done',"
  "                                    'failed')),"
  "  total_bytes     INTEGER NOT NULL DEFAULT 0,"
  "  done_bytes      INTEGER NOT NULL DEFAULT 0,"
  "  sent_bytes      INTEGER NOT NULL DEFAULT 0,"
  "  created_ns      INTEGER NOT NULL,"
  "  updated_ns      INTEGER NOT NULL,"
  "  owner_pid       INTEGER NOT NULL DEFAULT 0,"
  "  error           TEXT NOT NULL DEFAULT '');"
  "CREATE INDEX jobs_by_source ON jobs (source_snapshot);"
  "CREATE INDEX jobs_by_status ON jobs (status, actor);",

  /* 6: automatic snapshot policies.  A policy snapshots the volumes
   * attached to it every every_s seconds, or daily at daily_minute (UTC
   * minute of the day), and keeps the newest RETAIN of its snapshots of
   * each volume (snapshots.policy_id).  A copy task copies every snapshot
   * the policy takes to another account and/or region and keeps the
   * newest RETAIN copies there (snapshots.task_id).  Deleting a policy
   * deletes its attachments and tasks.
   */
  "CREATE TABLE auto_policies ("
  "  id           TEXT PRIMARY KEY,"
  "  account      TEXT NOT NULL REFERENCES accounts (id),"
  "  region       TEXT NOT NULL REFERENCES regions (name),"
  "  name         TEXT NOT NULL,"
  "  every_s      INTEGER NOT NULL DEFAULT 0,"
  "  daily_minute INTEGER NOT NULL DEFAULT -1,"
  "  retain       INTEGER NOT NULL CHECK (retain > 0),"
  "  created_ns   INTEGER NOT NULL,"
  "  CHECK ((every_s > 0) != (daily_minute >= 0)),"
  "  UNIQUE (account, region, name));"
  "CREATE TABLE auto_policy_volumes ("
  "  policy_id    TEXT NOT NULL"
  "               REFERENCES auto_policies (id) ON DELETE CASCADE,"
  "  volume_id    TEXT NOT NULL,"
  "  attached_ns  INTEGER NOT NULL,"
  "  last_run_ns  INTEGER NOT NULL DEFAULT 0,"
  "  last_error   TEXT NOT NULL DEFAULT '',"
  "  PRIMARY KEY (policy_id, volume_id));"
  "CREATE TABLE copy_tasks ("
  "  id           TEXT PRIMARY KEY,"
  "  policy_id    TEXT NOT NULL"
  "               REFERENCES auto_policies (id) ON DELETE CASCADE,"
  "  dest_account TEXT NOT NULL REFERENCES accounts (id),"
  "  dest_region  TEXT NOT NULL REFERENCES regions (name),"
  "  retain       INTEGER NOT NULL CHECK (retain > 0),"
  "  created_ns   INTEGER NOT NULL,"
  "  last_error   TEXT NOT NULL DEFAULT '',"
  "  UNIQUE (policy_id, dest_account, dest_region));"
  "ALTER TABLE snapshots ADD COLUMN policy_id TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE snapshots ADD COLUMN task_id TEXT NOT NULL DEFAULT '';",

  /* 7: keys.  An account's keys, their material only wrapped by the
   * store's master key (a file outside the catalog); at most one default
   * key per account.  A grant lets another account use a key.  An
   * encrypted volume records its key and its data key wrapped by that
   * key (data_key); its snapshots record the key too.  '' is unencrypted.
   */
  "CREATE TABLE keys ("
  "  id         TEXT PRIMARY KEY,"
  "  account    TEXT NOT NULL REFERENCES accounts (id),"
  "  name       TEXT NOT NULL,"
  "  wrapped    TEXT NOT NULL,"
  "  is_default INTEGER NOT NULL DEFAULT 0,"
  "  status     TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),"
  "  created_ns INTEGER NOT NULL,"
  "  UNIQUE (account, name));"
  "CREATE UNIQUE INDEX keys_default ON keys (account) WHERE is_default = 1;"
  "CREATE TABLE key_grants ("
  "  key_id     TEXT NOT NULL REFERENCES keys (id),"
  "  grantee    TEXT NOT NULL REFERENCES accounts (id),"
  "  granted_by TEXT NOT NULL,"
  "  created_ns INTEGER NOT NULL,"
  "  PRIMARY KEY (key_id, grantee));"
  "ALTER TABLE volumes ADD COLUMN key_id TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE volumes ADD COLUMN data_key TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE snapshots ADD COLUMN key_id TEXT NOT NULL DEFAULT '';",

  /* 8: the key a copy encrypts under at its destination (a name or id
   * of the destination account's key, as asked; '' for the default), so
   * that a queued or resumed copy uses the key it was asked for.
   */
  "ALTER TABLE jobs ADD COLUMN dest_key TEXT NOT NULL DEFAULT '';"
  "ALTER TABLE jobs ADD COLUMN encrypt INTEGER NOT NULL DEFAULT 0;",

  /* 9: a snapshot received encrypted under the receiver's own key has
   * chunks named under that key, so its root differs from its sender's:
   * the sender's is kept, for the next incremental stream to find its
   * base by.  '' otherwise.
   */
  "ALTER TABLE snapshots ADD COLUMN source_root TEXT NOT NULL DEFAULT '';",

  /* 10: how a volume's head (its live data file) is kept at rest:
   * 'aes128-xts-4k' encrypted per 4 KiB sector under a key derived from the
   * volume's data key, '' in plaintext (every volume before, and every
   * unencrypted one).
   */
  "ALTER TABLE volumes ADD COLUMN head_cipher TEXT NOT NULL DEFAULT '';",

  /* 11: the session of a volume's dirty map: each owner's open counts one,
   * recorded here before the map file says "open", so a clean map put back
   * from an earlier session is never trusted.  0: none yet (a map of
   * before this version is accepted once).
   */
  "ALTER TABLE volumes ADD COLUMN dirtymap_session INTEGER NOT NULL"
  " DEFAULT 0;",

  /* 12: no table changes.  A head may keep its data in several segment
   * files from here on (data, data.1, ...: lib/head/segfile.h); a
   * release before segments would read `data` alone, take it for a head
   * shorter than its volume and grow it, serving zeros where the other
   * segments hold data.  The version keeps such a release out.
   */
  "",

  /* 13: what a service is watched by (xsnap metrics, xsnap status).  A
   * copy task records when its last copy succeeded and when its last
   * copy failed (0: never).  maintenance_runs keeps the last run of gc
   * (account '', one per region) and of verify (one per account and
   * region) with how it ended ('ok', 'damaged': verify found bad blocks,
   * 'failed': it could not finish) and a one-line detail.
   * repository_usage is what gc counted of each repository as it swept
   * it: the chunks it kept, and when.  Rows of a removed account or
   * region are ignored by readers, which join the live ones.
   */
  "ALTER TABLE copy_tasks ADD COLUMN last_success_ns INTEGER NOT NULL"
  " DEFAULT 0;"
  "ALTER TABLE copy_tasks ADD COLUMN last_failure_ns INTEGER NOT NULL"
  " DEFAULT 0;"
  "CREATE TABLE maintenance_runs ("
  "  kind        TEXT NOT NULL CHECK (kind IN ('gc', 'verify')),"
  "  account     TEXT NOT NULL,"
  "  region      TEXT NOT NULL,"
  "  started_ns  INTEGER NOT NULL,"
  "  finished_ns INTEGER NOT NULL,"
  "  result      TEXT NOT NULL"
  "              CHECK (result IN ('ok', 'damaged', 'failed')),"
  "  detail      TEXT NOT NULL DEFAULT '',"
  "  PRIMARY KEY (kind, account, region));"
  "CREATE TABLE repository_usage ("
  "  account     TEXT NOT NULL,"
  "  region      TEXT NOT NULL,"
  "  chunks      INTEGER NOT NULL,"
  "  measured_ns INTEGER NOT NULL,"
  "  PRIMARY KEY (account, region));",
};

#define LATEST_VERSION ((int) (sizeof migrations / sizeof migrations[0]))

int
xs_catalog_latest_version (void)
{
  return LATEST_VERSION;
}

void
xs_catalog_lock (struct xs_catalog *cat)
{
  pthread_mutex_lock (&cat->lock);
}

void
xs_catalog_unlock (struct xs_catalog *cat)
{
  pthread_mutex_unlock (&cat->lock);
}

sqlite3 *
xs_catalog_db (struct xs_catalog *cat)
{
  return cat->db;
}

void
xs_catalog_report (struct xs_catalog *cat, const char *what)
{
  xs_error ("cannot %s: %s (catalog %s)", what, sqlite3_errmsg (cat->db),
            cat->path);
}

int
xs_catalog_exec (struct xs_catalog *cat, const char *sql, const char *what)
{
  char *message = NULL;

  if (sqlite3_exec (cat->db, sql, NULL, NULL, &message) != SQLITE_OK) {
    xs_error ("cannot %s: %s (catalog %s)", what,
              message ? message : sqlite3_errmsg (cat->db), cat->path);
    sqlite3_free (message);
    return -1;
  }
  return 0;
}

sqlite3_stmt *
xs_catalog_prepare (struct xs_catalog *cat, const char *sql, const char *what)
{
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (cat->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
    xs_catalog_report (cat, what);
    return NULL;
  }
  return stmt;
}

int
xs_catalog_begin (struct xs_catalog *cat)
{
  return xs_catalog_exec (cat, "BEGIN IMMEDIATE", "begin a transaction");
}

int
xs_catalog_commit (struct xs_catalog *cat)
{
  return xs_catalog_exec (cat, "COMMIT", "commit a transaction");
}

void
xs_catalog_rollback (struct xs_catalog *cat)
{
  /* Nothing useful to report if this fails: the transaction is abandoned
   * either way when the connection closes.
   */
  sqlite3_exec (cat->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
read_user_version (struct xs_catalog *cat, int *version)
{
  sqlite3_stmt *stmt;
  int r = -1;

  stmt = xs_catalog_prepare (cat, "PRAGMA user_version",
                             "read the catalog schema version");
  if (stmt == NULL)
    return -1;
  if (sqlite3_step (stmt) == SQLITE_ROW) {
    *version = sqlite3_column_int (stmt, 0);
    r = 0;
  }
  else
    xs_catalog_report (cat, "read the catalog schema version");
  sqlite3_finalize (stmt);
  return r;
}

int
xs_catalog_version (struct xs_catalog *cat)
{
  int version = -1;

  xs_catalog_lock (cat);
  read_user_version (cat, &version);
  xs_catalog_unlock (cat);
  return version;
}

static int
run_migration (struct xs_catalog *cat, int to_version)
{
  char bump[64];

  snprintf (bump, sizeof bump, "PRAGMA user_version = %d", to_version);
  if (xs_catalog_begin (cat) == -1)
    return -1;
  if (xs_catalog_exec (cat, migrations[to_version - 1],
                       "upgrade the catalog schema") == -1
      || xs_catalog_exec (cat, bump, "upgrade the catalog schema") == -1) {
    xs_catalog_rollback (cat);
    return -1;
  }
  return xs_catalog_commit (cat);
}

static int
migrate (struct xs_catalog *cat, int target)
{
  int version;

  if (read_user_version (cat, &version) == -1)
    return -1;
  if (version > LATEST_VERSION) {
    xs_error ("catalog %s has schema version %d, newer than this xsnap "
              "supports (%d): upgrade xsnap", cat->path, version,
              LATEST_VERSION);
    return -1;
  }
  while (version < target) {
    if (run_migration (cat, version + 1) == -1)
      return -1;
    version++;
  }
  return 0;
}

static int
configure (struct xs_catalog *cat)
{
  /* WAL: readers (the plugin listing exports) never wait for a writer.
   * synchronous=FULL: a committed row survives power loss, which the
   * commit order (chunks, manifest, then row) relies on.
   */
  sqlite3_busy_timeout (cat->db, 10000);
  return xs_catalog_exec (cat,
                          "PRAGMA journal_mode = WAL;"
                          "PRAGMA synchronous = FULL;"
                          "PRAGMA foreign_keys = ON;",
                          "configure the catalog");
}

/* Whether this process may write the catalog at PATH and create files
 * next to it (SQLite's WAL and shared-memory files): xsnap writes to its
 * catalog even to list it, and SQLite alone would say only "unable to
 * open database file" or "attempt to write a readonly database".
 */
static int
check_writable (const char *path)
{
  const char *slash = strrchr (path, '/');
  char *dir = slash ? strndup (path, (size_t) (slash - path)) : strdup (".");
  int r = 0;

  if (dir == NULL) {
    xs_error ("cannot open catalog %s: %m", path);
    return -1;
  }
  if ((faccessat (AT_FDCWD, path, W_OK, AT_EACCESS) == -1 && errno != ENOENT)
      || faccessat (AT_FDCWD, *dir ? dir : "/", W_OK, AT_EACCESS) == -1) {
    xs_error ("cannot open catalog %s: the store is not writable (%m): "
              "xsnap writes to its catalog even to read it", path);
    r = -1;
  }
  free (dir);
  return r;
}

static struct xs_catalog *
open_catalog (const char *path, bool create, int target)
{
  struct xs_catalog *cat;
  pthread_mutexattr_t attr;
  struct stat st;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;

  if (stat (path, &st) == 0 && S_ISREG (st.st_mode) && st.st_size == 0) {
    /* SQLite would take it for a new database and give it a fresh,
     * empty schema: a truncated or lost catalog would silently become a
     * store that knows nothing of its data.
     */
    xs_error ("cannot open catalog %s: the file is empty (0 bytes), so it "
              "is not a catalog (truncated or lost?): restore it from a "
              "backup", path);
    return NULL;
  }
  if (!create && access (path, F_OK) == -1) {
    xs_error ("cannot open catalog %s: %m", path);
    return NULL;
  }
  if (create)
    flags |= SQLITE_OPEN_CREATE;
  if (check_writable (path) == -1)
    return NULL;

  cat = calloc (1, sizeof *cat);
  if (cat == NULL || (cat->path = strdup (path)) == NULL) {
    xs_error ("cannot open catalog %s: %m", path);
    free (cat);
    return NULL;
  }
  /* Recursive: a caller iterating over rows under the lock may run
   * another query (SQLite allows several statements in flight on one
   * connection), as the server does to check access to each export it
   * lists.
   */
  pthread_mutexattr_init (&attr);
  pthread_mutexattr_settype (&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init (&cat->lock, &attr);
  pthread_mutexattr_destroy (&attr);
  if (sqlite3_open_v2 (path, &cat->db, flags, NULL) != SQLITE_OK) {
    xs_error ("cannot open catalog %s: %s", path,
              cat->db ? sqlite3_errmsg (cat->db) : "out of memory");
    xs_catalog_close (cat);
    return NULL;
  }
  if (configure (cat) == -1 || migrate (cat, target) == -1) {
    xs_catalog_close (cat);
    return NULL;
  }
  return cat;
}

struct xs_catalog *
xs_catalog_open (const char *path, bool create)
{
  return open_catalog (path, create, LATEST_VERSION);
}

struct xs_catalog *
xs_catalog_open_at_version (const char *path, int version)
{
  if (version < 0 || version > LATEST_VERSION) {
    xs_error ("no catalog schema version %d", version);
    return NULL;
  }
  return open_catalog (path, true, version);
}

void
xs_catalog_close (struct xs_catalog *cat)
{
  if (cat == NULL)
    return;
  sqlite3_close (cat->db);
  pthread_mutex_destroy (&cat->lock);
  free (cat->path);
  free (cat);
}

static sqlite3_stmt *
prepare_bind_va (struct xs_catalog *cat, const char *what, const char *sql,
                 const char *types, va_list args)
{
  sqlite3_stmt *stmt = xs_catalog_prepare (cat, sql, what);
  const char *text;
  int i, r = SQLITE_OK;

  if (stmt == NULL)
    return NULL;
  for (i = 0; r == SQLITE_OK && types[i]; i++) {
    switch (types[i]) {
    case 's':
      text = va_arg (args, const char *);
      r = text ? sqlite3_bind_text (stmt, i + 1, text, -1, SQLITE_TRANSIENT)
               : sqlite3_bind_null (stmt, i + 1);
      break;
    case 'i':
      r = sqlite3_bind_int64 (stmt, i + 1, va_arg (args, int64_t));
      break;
    default:
      abort ();
    }
  }
  if (r != SQLITE_OK) {
    xs_catalog_report (cat, what);
    sqlite3_finalize (stmt);
    return NULL;
  }
  return stmt;
}

sqlite3_stmt *
xs_catalog_prepare_bind (struct xs_catalog *cat, const char *what,
                         const char *sql, const char *types, ...)
{
  sqlite3_stmt *stmt;
  va_list args;

  va_start (args, types);
  stmt = prepare_bind_va (cat, what, sql, types, args);
  va_end (args);
  return stmt;
}

int64_t
xs_catalog_run (struct xs_catalog *cat, const char *what, const char *sql,
                const char *types, ...)
{
  sqlite3_stmt *stmt;
  va_list args;
  int64_t changes = -1;

  va_start (args, types);
  stmt = prepare_bind_va (cat, what, sql, types, args);
  va_end (args);
  if (stmt == NULL)
    return -1;
  if (sqlite3_step (stmt) == SQLITE_DONE)
    changes = sqlite3_changes (cat->db);
  else
    xs_catalog_report (cat, what);
  sqlite3_finalize (stmt);
  return changes;
}

int
xs_catalog_query_int (struct xs_catalog *cat, const char *what,
                      int64_t *value, const char *sql, const char *types, ...)
{
  sqlite3_stmt *stmt;
  va_list args;
  int r = -1;

  va_start (args, types);
  stmt = prepare_bind_va (cat, what, sql, types, args);
  va_end (args);
  if (stmt == NULL)
    return -1;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    *value = sqlite3_column_int64 (stmt, 0);
    r = 0;
    break;
  case SQLITE_DONE:
    r = 1;
    break;
  default:
    xs_catalog_report (cat, what);
  }
  sqlite3_finalize (stmt);
  return r;
}

int
xs_catalog_each_row (struct xs_catalog *cat, sqlite3_stmt *stmt,
                     const char *what,
                     int (*fn) (sqlite3_stmt *stmt, void *opaque),
                     void *opaque)
{
  int step, r = -1;

  while ((step = sqlite3_step (stmt)) == SQLITE_ROW)
    if (fn (stmt, opaque) == -1)
      break;
  if (step == SQLITE_DONE)
    r = 0;
  else if (step != SQLITE_ROW)
    xs_catalog_report (cat, what);
  sqlite3_finalize (stmt);
  return r;
}

char *
xs_catalog_column_dup (sqlite3_stmt *stmt, int column, bool *failed)
{
  const char *text = (const char *) sqlite3_column_text (stmt, column);
  char *copy = strdup (text ? text : "");

  if (copy == NULL)
    *failed = true;
  return copy;
}

/* What names an account or a region in the schema: each column that
 * refers to one, and how to say what remains.  Removing either is refused
 * while any of these counts is not zero, as a foreign key would.
 */
struct reference {
  const char *sql;
  const char *what;
};

static const struct reference account_references[] = {
  { "SELECT count(*) FROM volumes WHERE account = ?", "volume(s)" },
  { "SELECT count(*) FROM snapshots WHERE account = ?"
    " AND status != 'deleted'", "snapshot(s)" },
  { "SELECT count(*) FROM snapshots WHERE account = ?"
    " AND status = 'deleted'",
    "deleted snapshot(s) whose data gc has not reclaimed yet (run"
    " 'xsnap gc' in their region)" },
  { "SELECT count(*) FROM shares WHERE owner = ?", "share(s)" },
  { "SELECT count(*) FROM auto_policies WHERE account = ?",
    "automatic snapshot policy(ies)" },
  { "SELECT count(*) FROM copy_tasks WHERE dest_account = ?",
    "incoming policy copy task(s)" },
  { "SELECT count(*) FROM keys WHERE account = ?", "key(s)" },
  { "SELECT count(*) FROM key_grants WHERE grantee = ?",
    "key(s) granted to it" },
  { "SELECT count(*) FROM policy_docs WHERE account = ?",
    "attached policy document(s)" },
  { "SELECT count(*) FROM accounts WHERE collaborator_of = ?",
    "collaborator account(s)" },
  { "SELECT count(*) FROM uid_map WHERE account = ?", "mapped uid(s)" },
  { NULL, NULL },
};

static const struct reference region_references[] = {
  { "SELECT count(*) FROM volumes WHERE region = ?", "volume(s)" },
  { "SELECT count(*) FROM snapshots WHERE region = ?", "snapshot(s)" },
  { "SELECT count(*) FROM auto_policies WHERE region = ?", "policy(ies)" },
  { "SELECT count(*) FROM copy_tasks WHERE dest_region = ?",
    "copy task(s)" },
  { "SELECT count(*) FROM settings WHERE key = 'default_region'"
    " AND value = ?", "default region setting" },
  { NULL, NULL },
};

int
xs_catalog_refuse_referenced_locked (struct xs_catalog *cat,
                                     enum xs_catalog_referent referent,
                                     const char *id, const char *refusal)
{
  const struct reference *ref = referent == XS_CATALOG_ACCOUNT
    ? account_references : region_references;
  int64_t count;

  for (; ref->sql; ref++) {
    if (xs_catalog_query_int (cat, refusal, &count, ref->sql, "s", id) != 0)
      return -1;
    if (count > 0) {
      xs_error ("%s: it still has %" PRId64 " %s", refusal, count,
                ref->what);
      return -1;
    }
  }
  return 0;
}

int
xs_catalog_get_setting (struct xs_catalog *cat, const char *key,
                        char **value)
{
  sqlite3_stmt *stmt;
  int r;

  stmt = xs_catalog_prepare (cat, "SELECT value FROM settings WHERE key = ?",
                             "read a setting");
  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  r = sqlite3_step (stmt);
  if (r == SQLITE_ROW) {
    *value = strdup ((const char *) sqlite3_column_text (stmt, 0));
    r = *value ? 0 : -1;
    if (r == -1)
      xs_error ("cannot read setting %s: %m", key);
  }
  else if (r == SQLITE_DONE) {
    *value = NULL;
    r = 1;
  }
  else {
    xs_catalog_report (cat, "read a setting");
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

int
xs_catalog_set_setting (struct xs_catalog *cat, const char *key,
                        const char *value)
{
  sqlite3_stmt *stmt;
  int r = 0;

  stmt = xs_catalog_prepare (cat,
                             "INSERT INTO settings (key, value) VALUES (?, ?)"
                             " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             "write a setting");
  if (stmt == NULL)
    return -1;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
  if (sqlite3_step (stmt) != SQLITE_DONE) {
    xs_catalog_report (cat, "write a setting");
    r = -1;
  }
  sqlite3_finalize (stmt);
  return r;
}

/* Settings: taking one away. */

int64_t
xs_catalog_reset_setting (struct xs_catalog *cat, const char *key,
                          const char *what)
{
  return xs_catalog_run (cat, what, "DELETE FROM settings WHERE key = ?",
                         "s", key);
}
