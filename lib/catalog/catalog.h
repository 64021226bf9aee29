/* xsnap: the catalog, the store's control plane in SQLite.
 *
 * One SQLite database per store (WAL mode, so readers never block the
 * writer) holds accounts, regions, volumes and, as later modules arrive,
 * snapshots, shares, policies, jobs and the audit log.  The schema is
 * versioned with PRAGMA user_version and brought up to date by an ordered
 * list of migrations when a store is opened.
 *
 * A catalog handle may be shared by threads: every statement runs under the
 * handle's mutex (xs_catalog_lock), and SQLite itself is in serialized mode.
 */
#ifndef XSNAP_CATALOG_H
#define XSNAP_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

struct xs_catalog;

/* Open the catalog at PATH.  With CREATE the file is made if missing;
 * without it a missing file is an error.  The schema is migrated to the
 * newest version this build knows (or refused if the file is newer).
 */
extern struct xs_catalog *xs_catalog_open (const char *path, bool create);

/* For tests: open and migrate only up to VERSION. */
extern struct xs_catalog *xs_catalog_open_at_version (const char *path,
                                                      int version);
extern void xs_catalog_close (struct xs_catalog *cat);

/* The newest schema version this build knows, and the file's version. */
extern int xs_catalog_latest_version (void);
extern int xs_catalog_version (struct xs_catalog *cat);

/* Serialize use of the connection across threads.  The lock is
 * recursive: code holding it may call functions that take it again.
 */
extern void xs_catalog_lock (struct xs_catalog *cat);
extern void xs_catalog_unlock (struct xs_catalog *cat);

/* The raw connection, for modules that run their own statements (holding
 * the lock).
 */
extern sqlite3 *xs_catalog_db (struct xs_catalog *cat);

/* Run SQL with no result rows (holding the lock).  WHAT names the action
 * for the error message ("cannot WHAT: reason").
 */
extern int xs_catalog_exec (struct xs_catalog *cat, const char *sql,
                            const char *what);

/* Prepare a statement; on failure reports "cannot WHAT: reason". */
extern sqlite3_stmt *xs_catalog_prepare (struct xs_catalog *cat,
                                         const char *sql, const char *what);

/* Prepare SQL and bind its parameters in order from the variadic list,
 * one per character of TYPES: 's' text (const char *, NULL binds NULL),
 * 'i' integer (int64_t).  Reports "cannot WHAT: reason" on failure.
 */
extern sqlite3_stmt *xs_catalog_prepare_bind (struct xs_catalog *cat,
                                              const char *what,
                                              const char *sql,
                                              const char *types, ...);

/* Prepare, bind (as above), run to completion a statement that returns no
 * rows, and finalize it.  Returns the number of rows changed, or -1.
 */
extern int64_t xs_catalog_run (struct xs_catalog *cat, const char *what,
                               const char *sql, const char *types, ...);

/* Run a query whose first row's first column is an integer: 0 and *VALUE,
 * 1 if there is no row, or -1.
 */
extern int xs_catalog_query_int (struct xs_catalog *cat, const char *what,
                                 int64_t *value, const char *sql,
                                 const char *types, ...);

/* Step STMT (holding the lock) calling FN for each row until the end or
 * until FN returns -1, then finalize it.  Returns 0, or -1 (a failed step
 * reported as "cannot WHAT: reason"; FN reports its own).
 */
extern int xs_catalog_each_row (struct xs_catalog *cat, sqlite3_stmt *stmt,
                                const char *what,
                                int (*fn) (sqlite3_stmt *stmt, void *opaque),
                                void *opaque);

/* A copy of text column COLUMN of the current row ("" for NULL); on
 * failure sets *FAILED (the caller reports once for the row).
 */
extern char *xs_catalog_column_dup (sqlite3_stmt *stmt, int column,
                                    bool *failed);

/* Report a failed step of STMT as "cannot WHAT: reason". */
extern void xs_catalog_report (struct xs_catalog *cat, const char *what);

/* Transactions (holding the lock).  BEGIN IMMEDIATE, so that two writers
 * never deadlock on an upgrade from read to write.
 */
extern int xs_catalog_begin (struct xs_catalog *cat);
extern int xs_catalog_commit (struct xs_catalog *cat);
extern void xs_catalog_rollback (struct xs_catalog *cat);

/* Refuse to remove an account or a region ID that the schema's other
 * tables still name (volumes, snapshots, shares, policies, keys, ...):
 * holding the lock, in the transaction that removes it.  0 when nothing
 * names it; else -1, reported as "REFUSAL: it still has N WHAT".
 */
enum xs_catalog_referent {
  XS_CATALOG_ACCOUNT,
  XS_CATALOG_REGION,
};
extern int xs_catalog_refuse_referenced_locked
  (struct xs_catalog *cat, enum xs_catalog_referent referent,
   const char *id, const char *refusal);

/* Small key/value settings kept in the catalog (table "settings"). */
extern int xs_catalog_get_setting (struct xs_catalog *cat, const char *key,
                                   char **value);
extern int xs_catalog_set_setting (struct xs_catalog *cat, const char *key,
                                   const char *value);

/* Settings: taking one away. */

/* Remove setting KEY (holding the lock), so that readers fall back to
 * its default.  Returns the rows removed (0 if it was not set), or -1
 * reported as "cannot WHAT: reason".
 */
extern int64_t xs_catalog_reset_setting (struct xs_catalog *cat,
                                         const char *key, const char *what);

#endif /* XSNAP_CATALOG_H */
