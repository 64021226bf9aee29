/* xsnap: accounts, organisations and the uid map (see account.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog/account.h"
#include "catalog/audit.h"
#include "base/error.h"
#include "base/fileio.h"
#include "catalog/job.h"
#include "base/names.h"

/* Deepest collaborator_of chain followed; a longer one is a loop. */
#define MAX_ORGANISATION_DEPTH 64

void
xs_account_clear (struct xs_account *account)
{
  free (account->id);
  free (account->name);
  free (account->email);
  free (account->collaborator_of);
  memset (account, 0, sizeof *account);
}

json_t *
xs_account_to_json (const struct xs_account *account)
{
  char created[32];

  xs_format_utc (account->created_ns, created, sizeof created);
  return json_pack ("{s:s, s:s, s:s, s:s, s:b, s:s}",
                    "id", account->id, "name", account->name,
                    "email", account->email,
                    "collaborator_of", account->collaborator_of,
                    "administrator", account->is_admin,
                    "created", created);
}

#define ACCOUNT_COLUMNS \
  "id, name, email, collaborator_of, is_admin, created_ns"

static int
row_to_account (sqlite3_stmt *stmt, struct xs_account *account)
{
  bool failed = false;

  memset (account, 0, sizeof *account);
  account->id = xs_catalog_column_dup (stmt, 0, &failed);
  account->name = xs_catalog_column_dup (stmt, 1, &failed);
  account->email = xs_catalog_column_dup (stmt, 2, &failed);
  account->collaborator_of = xs_catalog_column_dup (stmt, 3, &failed);
  account->is_admin = sqlite3_column_int (stmt, 4) != 0;
  account->created_ns = sqlite3_column_int64 (stmt, 5);
  if (failed) {
    xs_error ("cannot read an account: %m");
    xs_account_clear (account);
    return -1;
  }
  return 0;
}

/* Does account ID exist?  (Holding the lock.)  1, 0 or -1. */
static int
account_exists_locked (struct xs_catalog *cat, const char *id)
{
  int64_t one;
  int r = xs_catalog_query_int (cat, "look up an account", &one,
                                "SELECT 1 FROM accounts WHERE id = ?", "s",
                                id);

  return r == -1 ? -1 : r == 0;
}

static int
check_email (const char *email)
{
  const char *at;

  if (email == NULL || *email == '\0')
    return 0;
  at = strchr (email, '@');
  if (strlen (email) > 254 || at == NULL || at == email || at[1] == '\0'
      || strpbrk (email, " \t\r\n<>,;\"") != NULL) {
    xs_error ("invalid email address '%s'", email);
    return -1;
  }
  return 0;
}

static int
check_display_name (const char *name)
{
  const unsigned char *p;

  if (name == NULL)
    return 0;
  if (strlen (name) > 128) {
    xs_error ("invalid account display name: longer than 128 bytes");
    return -1;
  }
  for (p = (const unsigned char *) name; *p; p++)
    if (*p < 0x20 || *p == 0x7f) {
      xs_error ("invalid account display name: it contains a control"
                " character");
      return -1;
    }
  return 0;
}

int
xs_account_create (struct xs_store *store, const char *actor,
                   const char *id, const char *name, const char *email,
                   const char *collaborator_of)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *arn = NULL;
  int r = -1, exists;

  if (xs_name_check ("account", id) == -1 || check_email (email) == -1
      || check_display_name (name) == -1)
    return -1;
  if (actor
      && (arn = xs_resource_name (NULL, id, "account", id)) == NULL)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  exists = account_exists_locked (cat, id);
  if (exists == -1)
    goto rollback;
  if (exists) {
    xs_error ("cannot create account '%s': it already exists", id);
    goto rollback;
  }
  if (collaborator_of && *collaborator_of) {
    exists = account_exists_locked (cat, collaborator_of);
    if (exists == -1)
      goto rollback;
    if (!exists) {
      xs_error ("cannot create account '%s': no account '%s' to be a"
                " collaborator of", id, collaborator_of);
      goto rollback;
    }
  }
  if (xs_catalog_run (cat, "create an account",
                      "INSERT INTO accounts (id, name, email,"
                      " collaborator_of, created_ns) VALUES (?, ?, ?, ?, ?)",
                      "ssssi", id, name ? name : "", email ? email : "",
                      collaborator_of ? collaborator_of : "",
                      xs_wall_clock_ns ()) == -1
      || (actor
          && xs_audit_record_locked (store, actor, "xsnap:CreateAccount",
                                     arn, id, XS_AUDIT_ALLOWED,
                                     collaborator_of ? collaborator_of
                                                     : "") == -1))
    goto rollback;
  r = xs_catalog_commit (cat);
  if (r == 0)
    goto out;
 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  free (arn);
  return r;
}

int
xs_account_find (struct xs_store *store, const char *id, bool quiet,
                 struct xs_account *account)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "look up an account",
                                  "SELECT " ACCOUNT_COLUMNS " FROM accounts"
                                  " WHERE id = ?", "s", id);
  if (stmt == NULL)
    goto out;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    r = row_to_account (stmt, account);
    break;
  case SQLITE_DONE:
    if (!quiet)
      xs_error ("no account '%s' in this store", id);
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up an account");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

struct account_list {
  int (*fn) (const struct xs_account *account, void *opaque);
  void *opaque;
};

static int
each_account (sqlite3_stmt *stmt, void *opaque)
{
  struct account_list *list = opaque;
  struct xs_account account;
  int r;

  if (row_to_account (stmt, &account) == -1)
    return -1;
  r = list->fn (&account, list->opaque);
  xs_account_clear (&account);
  return r;
}

int
xs_account_list (struct xs_store *store,
                 int (*fn) (const struct xs_account *account, void *opaque),
                 void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct account_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  /* FN may use the catalog: the lock is recursive. */
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT " ACCOUNT_COLUMNS " FROM accounts"
                             " ORDER BY id", "list accounts");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list accounts", each_account,
                             &list);
  xs_catalog_unlock (cat);
  return r;
}

/* Why account ID cannot go, reported; 0 if nothing holds it.  (Holding
 * the lock, in a transaction.)
 */
static int
check_nothing_left_locked (struct xs_catalog *cat, const char *id)
{
  char refusal[128];
  int64_t count;

  if (xs_catalog_query_int (cat, "look up an account", &count,
                            "SELECT is_admin FROM accounts WHERE id = ?",
                            "s", id) != 0)
    return -1;
  if (count) {
    xs_error ("cannot delete account '%s': it is the administrator", id);
    return -1;
  }
  /* Copies from, to or by it: named, with how to end them. */
  snprintf (refusal, sizeof refusal, "cannot delete account '%s'", id);
  if (xs_job_refuse_users_locked (cat, XS_JOB_USES_ACCOUNT, id,
                                  refusal) == -1)
    return -1;
  return xs_catalog_refuse_referenced_locked (cat, XS_CATALOG_ACCOUNT, id,
                                              refusal);
}

int
xs_account_delete_locked (struct xs_store *store, const char *actor,
                          const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *arn;
  int r = -1, exists;

  exists = account_exists_locked (cat, id);
  if (exists == 0)
    xs_error ("cannot delete account '%s': no such account", id);
  if (exists != 1 || check_nothing_left_locked (cat, id) == -1)
    return -1;
  arn = xs_resource_name (NULL, id, "account", id);
  if (arn != NULL
      && xs_catalog_run (cat, "delete an account",
                         "DELETE FROM accounts WHERE id = ?", "s", id) != -1
      && xs_audit_record_locked (store, actor, "xsnap:DeleteAccount", arn,
                                 id, XS_AUDIT_ALLOWED, "") == 0)
    r = 0;
  free (arn);
  return r;
}

bool
xs_account_is_admin (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t admin = 0;
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_query_int (cat, "look up an account", &admin,
                            "SELECT is_admin FROM accounts WHERE id = ?",
                            "s", id);
  xs_catalog_unlock (cat);
  return r == 0 && admin != 0;
}

/* The chain of ID up its collaborator_of links, ID first (CHAIN holds
 * MAX_ORGANISATION_DEPTH malloc'd ids; *N how many).  Holding the lock.
 */
static int
organisation_chain_locked (struct xs_catalog *cat, const char *id,
                           char **chain, size_t *n)
{
  sqlite3_stmt *stmt;
  const char *parent;
  char *current;

  *n = 0;
  current = strdup (id);
  while (current && *current) {
    for (size_t i = 0; i < *n; i++)
      if (strcmp (chain[i], current) == 0) {
        free (current);         /* a loop: stop where it closes */
        return 0;
      }
    if (*n == MAX_ORGANISATION_DEPTH) {
      free (current);
      return 0;
    }
    chain[(*n)++] = current;
    stmt = xs_catalog_prepare_bind (cat, "look up an organisation",
                                    "SELECT collaborator_of FROM accounts"
                                    " WHERE id = ?", "s", current);
    if (stmt == NULL)
      return -1;
    if (sqlite3_step (stmt) != SQLITE_ROW) {
      sqlite3_finalize (stmt);
      return 0;
    }
    parent = (const char *) sqlite3_column_text (stmt, 0);
    current = strdup (parent ? parent : "");
    sqlite3_finalize (stmt);
  }
  if (current == NULL) {
    xs_error ("cannot look up an organisation: %m");
    return -1;
  }
  free (current);
  return 0;
}

static void
free_chain (char **chain, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (chain[i]);
}

/* Run TEST on the chains of A and B. */
static int
compare_chains (struct xs_store *store, const char *a, const char *b,
                int (*test) (char **ca, size_t na, char **cb, size_t nb))
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *ca[MAX_ORGANISATION_DEPTH], *cb[MAX_ORGANISATION_DEPTH];
  size_t na = 0, nb = 0;
  int r = -1;

  xs_catalog_lock (cat);
  if (organisation_chain_locked (cat, a, ca, &na) == 0
      && organisation_chain_locked (cat, b, cb, &nb) == 0)
    r = test (ca, na, cb, nb);
  xs_catalog_unlock (cat);
  free_chain (ca, na);
  free_chain (cb, nb);
  return r;
}

static int
same_root (char **ca, size_t na, char **cb, size_t nb)
{
  return na > 0 && nb > 0 && strcmp (ca[na - 1], cb[nb - 1]) == 0;
}

static bool
chain_contains (char **chain, size_t n, const char *id)
{
  for (size_t i = 1; i < n; i++)
    if (strcmp (chain[i], id) == 0)
      return true;
  return false;
}

static int
first_below_second (char **ca, size_t na, char **cb, size_t nb)
{
  return na > 0 && nb > 0 && chain_contains (ca, na, cb[0]);
}

int
xs_account_same_organisation (struct xs_store *store, const char *a,
                              const char *b)
{
  return compare_chains (store, a, b, same_root);
}

int
xs_account_is_collaborator (struct xs_store *store, const char *a,
                            const char *b)
{
  return compare_chains (store, a, b, first_below_second);
}

/* Map UID to ACCOUNT, or with ACCOUNT NULL remove its mapping to
 * PREVIOUS, and audit it in one transaction.
 */
static int
change_uid_map_locked (struct xs_store *store, const char *actor, uid_t uid,
                       const char *account, const char *previous,
                       const char *arn)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char detail[64];
  int64_t changed;
  int exists;

  snprintf (detail, sizeof detail, "uid %u %s", (unsigned) uid,
            account ? "mapped" : "unmapped");
  if (account) {
    exists = account_exists_locked (cat, account);
    if (exists == 0)
      xs_error ("cannot map uid %u: no account '%s'", (unsigned) uid,
                account);
    if (exists != 1)
      return -1;
    changed = xs_catalog_run (cat, "map a uid",
                              "INSERT OR REPLACE INTO uid_map (uid, account)"
                              " VALUES (?, ?)", "is", (int64_t) uid,
                              account);
  }
  else {
    changed = xs_catalog_run (cat, "unmap a uid",
                              "DELETE FROM uid_map WHERE uid = ?"
                              " AND account = ?", "is", (int64_t) uid,
                              previous ? previous : "");
    if (changed == 0)
      xs_error ("uid %u is not mapped%s%s%s", (unsigned) uid,
                previous ? " to '" : "", previous ? previous : "",
                previous ? "'" : "");
  }
  if (changed <= 0)
    return -1;
  return xs_audit_record_locked (store, actor, "xsnap:MapUid", arn,
                                 account ? account : "",
                                 XS_AUDIT_ALLOWED, detail);
}

static int
change_uid_map (struct xs_store *store, const char *actor, uid_t uid,
                const char *account, const char *previous)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  const char *target = account ? account : previous ? previous : "*";
  char *arn;
  int r = -1;

  if (uid == 0) {
    xs_error ("cannot map uid 0: root is always the administrator");
    return -1;
  }
  arn = xs_resource_name (NULL, target, "account", target);
  if (arn == NULL)
    return -1;
  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == 0) {
    if (change_uid_map_locked (store, actor, uid, account, previous,
                               arn) == 0)
      r = xs_catalog_commit (cat);
    if (r == -1)
      xs_catalog_rollback (cat);
  }
  xs_catalog_unlock (cat);
  free (arn);
  return r;
}

int
xs_account_map_uid (struct xs_store *store, const char *actor, uid_t uid,
                    const char *account)
{
  return change_uid_map (store, actor, uid, account, NULL);
}

int
xs_account_unmap_uid (struct xs_store *store, const char *actor, uid_t uid,
                      const char *previous)
{
  return change_uid_map (store, actor, uid, NULL, previous);
}

int
xs_account_lookup_uid (struct xs_store *store, uid_t uid, char **account)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  *account = NULL;
  xs_catalog_lock (cat);
  if (uid == 0)
    stmt = xs_catalog_prepare (cat, "SELECT id FROM accounts"
                               " WHERE is_admin ORDER BY created_ns LIMIT 1",
                               "look up the administrator");
  else
    stmt = xs_catalog_prepare_bind (cat, "look up a uid",
                                    "SELECT account FROM uid_map"
                                    " WHERE uid = ?", "i", (int64_t) uid);
  if (stmt == NULL)
    goto out;
  switch (sqlite3_step (stmt)) {
  case SQLITE_ROW:
    *account = strdup ((const char *) sqlite3_column_text (stmt, 0));
    if (*account == NULL)
      xs_error ("cannot look up uid %u: %m", (unsigned) uid);
    else
      r = 0;
    break;
  case SQLITE_DONE:
    r = 1;
    break;
  default:
    xs_catalog_report (cat, "look up a uid");
  }
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

int
xs_account_list_uids (struct xs_store *store, const char *account,
                      int (*fn) (uid_t uid, const char *account,
                                 void *opaque),
                      void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list mapped uids",
                                  "SELECT uid, account FROM uid_map"
                                  " WHERE ?1 IS NULL OR account = ?1"
                                  " ORDER BY uid", "s", account);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW)
    if (fn ((uid_t) sqlite3_column_int64 (stmt, 0),
            (const char *) sqlite3_column_text (stmt, 1), opaque) == -1)
      break;
  if (step == SQLITE_DONE)
    r = 0;
  else if (step != SQLITE_ROW)
    xs_catalog_report (cat, "list mapped uids");
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

int
xs_account_resolve_actor (struct xs_store *store, uid_t uid,
                          const char *requested, char **account)
{
  char *principal;
  char detail[96];
  bool admin;
  int r;

  *account = NULL;
  r = xs_account_lookup_uid (store, uid, &principal);
  if (r == 1)
    xs_error ("uid %u is not mapped to an account of this store (see"
              " 'xsnap account map-uid')", (unsigned) uid);
  if (r != 0)
    return -1;
  admin = xs_account_is_admin (store, principal);
  if (requested == NULL) {
    if (admin)
      free (principal);         /* the store's default account */
    else
      *account = principal;
    return 0;
  }
  if (admin || strcmp (requested, principal) == 0) {
    free (principal);
    *account = strdup (requested);
    if (*account == NULL) {
      xs_error ("cannot resolve the account: %m");
      return -1;
    }
    return 0;
  }
  xs_error ("account '%s' may not act as account '%s'", principal,
            requested);
  snprintf (detail, sizeof detail, "uid %u", (unsigned) uid);
  xs_audit_record (store, principal, "xsnap:ActAs", requested, requested,
                   XS_AUDIT_DENIED, detail);
  free (principal);
  return -1;
}
