/* xsnap: automatic snapshot policies and copy tasks (see schedule.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "access/access.h"
#include "access/share.h"
#include "catalog/account.h"
#include "catalog/audit.h"
#include "catalog/region.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"
#include "ops/schedule.h"
#include "ops/copy.h"
#include "base/error.h"
#include "base/fileio.h"
#include "base/names.h"
#include "ops/snaptake.h"

#define NS_PER_S INT64_C (1000000000)
#define NS_PER_DAY (86400 * NS_PER_S)

void
xs_schedule_clear (struct xs_schedule *policy)
{
  free (policy->account);
  free (policy->region);
  free (policy->name);
  memset (policy, 0, sizeof *policy);
}

json_t *
xs_schedule_to_json (const struct xs_schedule *policy)
{
  char created[32], daily[16] = "";

  xs_format_utc (policy->created_ns, created, sizeof created);
  if (policy->daily_minute >= 0)
    snprintf (daily, sizeof daily, "%02d:%02d", policy->daily_minute / 60,
              policy->daily_minute % 60);
  return json_pack ("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:s}",
                    "id", policy->id, "name", policy->name,
                    "account", policy->account, "region", policy->region,
                    "every_seconds", (json_int_t) policy->every_s,
                    "daily", daily, "retain", (json_int_t) policy->retain,
                    "volumes", (json_int_t) policy->volumes,
                    "copy_tasks", (json_int_t) policy->tasks,
                    "created", created);
}

int64_t
xs_schedule_parse_every (const char *text)
{
  char *end;
  long long count;
  int64_t unit = 0;

  errno = 0;
  count = strtoll (text, &end, 10);
  if (errno == 0 && end != text && count > 0 && end[0] && end[1] == '\0') {
    switch (tolower ((unsigned char) end[0])) {
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    }
  }
  if (unit == 0 || count > 366 * 86400 / unit) {
    xs_error ("invalid interval '%s': expected minutes, hours or days "
              "(30m, 6h, 1d), at most a year", text);
    return -1;
  }
  return count * unit;
}

int
xs_schedule_parse_daily (const char *text)
{
  unsigned hours, minutes;
  char extra;

  if (sscanf (text, "%2u:%2u%c", &hours, &minutes, &extra) != 2
      || hours > 23 || minutes > 59 || strlen (text) != 5) {
    xs_error ("invalid time of day '%s': expected HH:MM (UTC)", text);
    return -1;
  }
  return (int) (hours * 60 + minutes);
}

int
xs_schedule_create (struct xs_store *store, const struct xs_scope *scope,
                      const char *name, int64_t every_s, int daily_minute,
                      int64_t retain)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char id[XS_ID_MAX];
  int64_t r;

  if (xs_name_check ("policy", name) == -1)
    return -1;
  if (retain < 1 || retain > 10000) {
    xs_error ("cannot create policy '%s': --retain must be 1 to 10000",
              name);
    return -1;
  }
  if ((every_s > 0) == (daily_minute >= 0)) {
    xs_error ("cannot create policy '%s': give either an interval or a "
              "time of day", name);
    return -1;
  }
  if (xs_new_id ("asp", id, sizeof id) == -1)
    return -1;
  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "create a policy",
                      "INSERT OR IGNORE INTO auto_policies (id, account,"
                      " region, name, every_s, daily_minute, retain,"
                      " created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      "ssssiiii", id, scope->account, scope->region, name,
                      every_s, (int64_t) daily_minute, retain,
                      xs_wall_clock_ns ());
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("cannot create policy '%s': it exists already", name);
  return r == 1 ? 0 : -1;
}

#define POLICY_SELECT                                                   \
  "SELECT p.id, p.account, p.region, p.name, p.every_s,"               \
  " p.daily_minute, p.retain, p.created_ns,"                            \
  " (SELECT count(*) FROM auto_policy_volumes AS v"                     \
  "  WHERE v.policy_id = p.id),"                                        \
  " (SELECT count(*) FROM copy_tasks AS t WHERE t.policy_id = p.id)"    \
  " FROM auto_policies AS p"

static int
row_to_policy (sqlite3_stmt *stmt, struct xs_schedule *policy)
{
  memset (policy, 0, sizeof *policy);
  snprintf (policy->id, sizeof policy->id, "%s",
            (const char *) sqlite3_column_text (stmt, 0));
  policy->account = strdup ((const char *) sqlite3_column_text (stmt, 1));
  policy->region = strdup ((const char *) sqlite3_column_text (stmt, 2));
  policy->name = strdup ((const char *) sqlite3_column_text (stmt, 3));
  policy->every_s = sqlite3_column_int64 (stmt, 4);
  policy->daily_minute = sqlite3_column_int (stmt, 5);
  policy->retain = sqlite3_column_int64 (stmt, 6);
  policy->created_ns = sqlite3_column_int64 (stmt, 7);
  policy->volumes = sqlite3_column_int64 (stmt, 8);
  policy->tasks = sqlite3_column_int64 (stmt, 9);
  if (!policy->account || !policy->region || !policy->name) {
    xs_error ("cannot read policy %s: %m", policy->id);
    xs_schedule_clear (policy);
    return -1;
  }
  return 0;
}

int
xs_schedule_find (struct xs_store *store, const struct xs_scope *scope,
                    const char *name, struct xs_schedule *policy)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "look up a policy",
                                  POLICY_SELECT " WHERE p.account = ?"
                                  " AND p.region = ? AND (p.name = ?3"
                                  " OR p.id = ?3)", "sss", scope->account,
                                  scope->region, name);
  if (stmt) {
    switch (sqlite3_step (stmt)) {
    case SQLITE_ROW: r = row_to_policy (stmt, policy); break;
    case SQLITE_DONE:
      xs_error ("no policy '%s' in account '%s', region '%s'", name,
                scope->account, scope->region);
      break;
    default: xs_catalog_report (cat, "look up a policy");
    }
    sqlite3_finalize (stmt);
  }
  xs_catalog_unlock (cat);
  return r;
}

struct policy_list {
  int (*fn) (const struct xs_schedule *policy, void *opaque);
  void *opaque;
};

static int
each_policy (sqlite3_stmt *stmt, void *opaque)
{
  struct policy_list *list = opaque;
  struct xs_schedule policy;
  int r;

  if (row_to_policy (stmt, &policy) == -1)
    return -1;
  r = list->fn (&policy, list->opaque);
  xs_schedule_clear (&policy);
  return r;
}

int
xs_schedule_list (struct xs_store *store, const struct xs_scope *scope,
                    int (*fn) (const struct xs_schedule *policy,
                               void *opaque),
                    void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct policy_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list policies",
                                  POLICY_SELECT " WHERE p.account = ?"
                                  " AND p.region = ? ORDER BY p.name", "ss",
                                  scope->account, scope->region);
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "list policies", each_policy, &list);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_schedule_delete (struct xs_store *store, const struct xs_scope *scope,
                      const char *name)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "delete a policy",
                      "DELETE FROM auto_policies WHERE account = ?"
                      " AND region = ? AND (name = ?3 OR id = ?3)", "sss",
                      scope->account, scope->region, name);
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("cannot delete policy '%s': no such policy", name);
  return r == 1 ? 0 : -1;
}

int
xs_schedule_attach (struct xs_store *store, const struct xs_scope *scope,
                      const char *name, const struct xs_volume *vol,
                      bool detach)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_schedule policy;
  int64_t r;

  if (xs_schedule_find (store, scope, name, &policy) == -1)
    return -1;
  xs_catalog_lock (cat);
  if (detach)
    r = xs_catalog_run (cat, "detach a volume from a policy",
                        "DELETE FROM auto_policy_volumes WHERE policy_id = ?"
                        " AND volume_id = ?", "ss", policy.id, vol->id);
  else
    r = xs_catalog_run (cat, "attach a volume to a policy",
                        "INSERT OR IGNORE INTO auto_policy_volumes"
                        " (policy_id, volume_id, attached_ns)"
                        " VALUES (?, ?, ?)", "ssi", policy.id, vol->id,
                        xs_wall_clock_ns ());
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error (detach ? "volume '%s' is not attached to policy '%s'"
                     : "volume '%s' is attached to policy '%s' already",
              vol->name, name);
  xs_schedule_clear (&policy);
  return r == 1 ? 0 : -1;
}

json_t *
xs_copy_task_to_json (const struct xs_copy_task *task)
{
  char created[32], success[32] = "", failure[32] = "";

  xs_format_utc (task->created_ns, created, sizeof created);
  if (task->last_success_ns)
    xs_format_utc (task->last_success_ns, success, sizeof success);
  if (task->last_failure_ns)
    xs_format_utc (task->last_failure_ns, failure, sizeof failure);
  return json_pack ("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:I,"
                    " s:s, s:s, s:s, s:s}", "id", task->id,
                    "policy_id", task->policy_id,
                    "policy", task->policy_name,
                    "source", "account", task->source_account,
                    "region", task->source_region,
                    "destination", "account", task->dest_account,
                    "region", task->dest_region,
                    "retain", (json_int_t) task->retain,
                    "created", created, "last_error", task->last_error,
                    "last_success", success, "last_failure", failure);
}

/* Another account receives only within the owner's organisation. */
static int
check_task_destination (struct xs_store *store, const struct xs_scope *scope,
                        const struct xs_schedule *policy,
                        const char *dest_account, const char *dest_region)
{
  struct xs_access_target target = {
    .owner = policy->account, .region = policy->region, .type = "policy",
    .id = policy->id, .label = policy->name,
  };
  int same;

  if (strcmp (dest_account, policy->account) == 0) {
    if (strcmp (dest_region, policy->region) == 0) {
      xs_error ("cannot copy policy '%s' to its own account and region",
                policy->name);
      return -1;
    }
    return 0;
  }
  if (xs_access_check (store, scope->account,
                       "xsnap:CopyAutoSnapshotPolicyCrossAccount", &target,
                       false) == -1)
    return -1;
  same = xs_account_same_organisation (store, policy->account, dest_account);
  if (same == 0)
    xs_error ("cannot copy policy '%s' to account '%s': it is not a "
              "collaborator of account '%s'", policy->name, dest_account,
              policy->account);
  return same == 1 ? 0 : -1;
}

/* Add copy task ID of POLICY to DEST_ACCOUNT in DEST_REGION, the region
 * looked up in the same transaction: 1 added, 0 if there is no such
 * region or a task of the policy copies there already, or -1.
 */
static int64_t
add_task (struct xs_store *store, const char *id,
          const struct xs_schedule *policy, const char *dest_account,
          const char *dest_region, int64_t retain)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r = -1;
  int exists;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  exists = xs_region_exists (store, dest_region);
  if (exists == 0)
    r = 0;
  else if (exists == 1)
    r = xs_catalog_run (cat, "add a copy task",
                        "INSERT OR IGNORE INTO copy_tasks (id, policy_id,"
                        " dest_account, dest_region, retain, created_ns)"
                        " VALUES (?, ?, ?, ?, ?, ?)", "ssssii", id,
                        policy->id, dest_account, dest_region, retain,
                        xs_wall_clock_ns ());
  if (r != -1 && xs_catalog_commit (cat) == 0)
    goto out;
  xs_catalog_rollback (cat);
  r = -1;
 out:
  xs_catalog_unlock (cat);
  return r;
}

int
xs_schedule_copy_to (struct xs_store *store, const struct xs_scope *scope,
                       const char *name, const char *dest_account,
                       const char *dest_region, int64_t retain)
{
  struct xs_schedule policy;
  struct xs_account account;
  char id[XS_ID_MAX], detail[160];
  int64_t r = -1;

  if (xs_schedule_find (store, scope, name, &policy) == -1)
    return -1;
  if (dest_region == NULL)
    dest_region = policy.region;
  if (retain <= 0)
    retain = policy.retain;
  if (xs_account_find (store, dest_account, false, &account) != 0)
    goto out;
  xs_account_clear (&account);
  if (check_task_destination (store, scope, &policy, dest_account,
                              dest_region) == -1
      || xs_new_id ("task", id, sizeof id) == -1)
    goto out;
  r = add_task (store, id, &policy, dest_account, dest_region, retain);
  if (r == 0)
    xs_error ("cannot copy policy '%s' to account '%s', region '%s': no "
              "such region, or a task copies there already", name,
              dest_account, dest_region);
  if (r == 1) {
    snprintf (detail, sizeof detail, "task %s to %s/%s", id, dest_account,
              dest_region);
    xs_audit_record (store, scope->account,
                     "xsnap:CopyAutoSnapshotPolicyCrossAccount", policy.name,
                     policy.account, XS_AUDIT_ALLOWED, detail);
  }
 out:
  xs_schedule_clear (&policy);
  return r == 1 ? 0 : -1;
}

#define TASK_SELECT                                                     \
  "SELECT t.id, t.policy_id, p.name, p.account, p.region,"              \
  " t.dest_account, t.dest_region, t.retain, t.created_ns,"             \
  " t.last_error, t.last_success_ns, t.last_failure_ns"                \
  " FROM copy_tasks AS t"                                               \
  " JOIN auto_policies AS p ON p.id = t.policy_id"

static void
row_to_task (sqlite3_stmt *stmt, struct xs_copy_task *task)
{
  task->id = (const char *) sqlite3_column_text (stmt, 0);
  task->policy_id = (const char *) sqlite3_column_text (stmt, 1);
  task->policy_name = (const char *) sqlite3_column_text (stmt, 2);
  task->source_account = (const char *) sqlite3_column_text (stmt, 3);
  task->source_region = (const char *) sqlite3_column_text (stmt, 4);
  task->dest_account = (const char *) sqlite3_column_text (stmt, 5);
  task->dest_region = (const char *) sqlite3_column_text (stmt, 6);
  task->retain = sqlite3_column_int64 (stmt, 7);
  task->created_ns = sqlite3_column_int64 (stmt, 8);
  task->last_error = (const char *) sqlite3_column_text (stmt, 9);
  task->last_success_ns = sqlite3_column_int64 (stmt, 10);
  task->last_failure_ns = sqlite3_column_int64 (stmt, 11);
}

int
xs_copy_task_list (struct xs_store *store, const struct xs_scope *scope,
                   bool outgoing,
                   int (*fn) (const struct xs_copy_task *task, void *opaque),
                   void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_copy_task task;
  sqlite3_stmt *stmt;
  int r = -1, step;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list copy tasks",
                                  TASK_SELECT " WHERE CASE WHEN ?2"
                                  " THEN p.account = ?1"
                                  " ELSE t.dest_account = ?1 END"
                                  " ORDER BY t.created_ns, t.id", "si",
                                  scope->account, (int64_t) outgoing);
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    row_to_task (stmt, &task);
    if (fn (&task, opaque) == -1)
      break;
  }
  if (step == SQLITE_DONE)
    r = 0;
  else if (step != SQLITE_ROW)
    xs_catalog_report (cat, "list copy tasks");
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

/* The id of the snapshot a copy's origin names: what follows the last
 * ':' of "copiedFrom:ACCOUNT:REGION:ID" (names hold no ':').
 */
#define ORIGIN_ID(origin)                                               \
  "replace (" origin ", rtrim (" origin ", replace (" origin ", ':', '')),"  \
  " '')"

#define TASK_STATE_SELECT                                               \
  "SELECT t.id, p.name, p.account, p.region, t.dest_account,"           \
  " t.dest_region, v.volume_id, coalesce (vol.name, ''),"               \
  " CASE WHEN p.every_s > 0 THEN p.every_s ELSE 86400 END,"             \
  " v.attached_ns,"                                                     \
  " coalesce ((SELECT max (coalesce (s.created_ns, d.created_ns))"      \
  "   FROM snapshots AS d"                                              \
  "   LEFT JOIN snapshots AS s ON s.id = " ORIGIN_ID ("d.origin")       \
  "    AND d.origin = 'copiedFrom:' || s.account || ':' || s.region"    \
  "                   || ':' || s.id"                                   \
  "  WHERE d.task_id = t.id AND d.volume_id = v.volume_id"              \
  "    AND d.status = 'available'), 0),"                                \
  " t.last_success_ns, t.last_failure_ns, t.last_error"                 \
  " FROM copy_tasks AS t"                                               \
  " JOIN auto_policies AS p ON p.id = t.policy_id"                      \
  " JOIN auto_policy_volumes AS v ON v.policy_id = p.id"                \
  " LEFT JOIN volumes AS vol ON vol.id = v.volume_id"                   \
  " ORDER BY t.id, v.volume_id"

struct task_state_list {
  int (*fn) (const struct xs_copy_task_state *state, void *opaque);
  void *opaque;
};

static int
each_task_state (sqlite3_stmt *stmt, void *opaque)
{
  struct task_state_list *list = opaque;
  struct xs_copy_task_state state = {
    .id = (const char *) sqlite3_column_text (stmt, 0),
    .policy_name = (const char *) sqlite3_column_text (stmt, 1),
    .source_account = (const char *) sqlite3_column_text (stmt, 2),
    .source_region = (const char *) sqlite3_column_text (stmt, 3),
    .dest_account = (const char *) sqlite3_column_text (stmt, 4),
    .dest_region = (const char *) sqlite3_column_text (stmt, 5),
    .volume_id = (const char *) sqlite3_column_text (stmt, 6),
    .volume_name = (const char *) sqlite3_column_text (stmt, 7),
    .period_s = sqlite3_column_int64 (stmt, 8),
    .attached_ns = sqlite3_column_int64 (stmt, 9),
    .newest_copy_ns = sqlite3_column_int64 (stmt, 10),
    .last_success_ns = sqlite3_column_int64 (stmt, 11),
    .last_failure_ns = sqlite3_column_int64 (stmt, 12),
    .last_error = (const char *) sqlite3_column_text (stmt, 13),
  };

  return list->fn (&state, list->opaque);
}

int
xs_copy_task_states (struct xs_store *store,
                     int (*fn) (const struct xs_copy_task_state *state,
                                void *opaque),
                     void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct task_state_list list = { fn, opaque };
  sqlite3_stmt *stmt;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, TASK_STATE_SELECT,
                             "read the state of copy tasks");
  if (stmt)
    r = xs_catalog_each_row (cat, stmt, "read the state of copy tasks",
                             each_task_state, &list);
  xs_catalog_unlock (cat);
  return r;
}

int
xs_copy_task_delete (struct xs_store *store, const struct xs_scope *scope,
                     const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "delete a copy task",
                      "DELETE FROM copy_tasks WHERE id = ?1"
                      " AND (dest_account = ?2 OR policy_id IN"
                      " (SELECT id FROM auto_policies WHERE account = ?2))",
                      "ss", id, scope->account);
  xs_catalog_unlock (cat);
  if (r == 0)
    xs_error ("cannot delete copy task '%s': no such task from or to "
              "account '%s'", id, scope->account);
  if (r == 1)
    xs_audit_record (store, scope->account, "xsnap:DeleteCopyTask", id, "",
                     XS_AUDIT_ALLOWED, "");
  return r == 1 ? 0 : -1;
}

/* When a policy runs next for a volume attached at ATTACHED_NS and last
 * run at LAST_RUN_NS (0: never).  Interval policies run at once the first
 * time; daily ones at the first HH:MM after they were attached.
 */
static int64_t
next_run_ns (int64_t every_s, int daily_minute, int64_t attached_ns,
             int64_t last_run_ns)
{
  int64_t base, t;

  if (every_s > 0)
    return last_run_ns == 0 ? attached_ns : last_run_ns + every_s * NS_PER_S;
  base = last_run_ns > attached_ns ? last_run_ns : attached_ns;
  t = base - base % NS_PER_DAY + daily_minute * 60 * NS_PER_S;
  return t > base ? t : t + NS_PER_DAY;
}

/* One attached volume whose policy is due. */
struct due {
  char policy_id[XS_ID_MAX];
  char *policy_name, *account, *region, *volume_id;
  int64_t retain;
};

static void
due_clear (struct due *d)
{
  free (d->policy_name);
  free (d->account);
  free (d->region);
  free (d->volume_id);
}

struct due_list {
  struct due *items;
  size_t n;
};

static int
collect_due (struct xs_store *store, int64_t now_ns, struct due_list *list,
             int64_t *next)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct due *more, *d;
  sqlite3_stmt *stmt;
  int64_t when;
  int r = -1, step;

  *next = 0;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare (cat, "SELECT p.id, p.name, p.account,"
                             " p.region, v.volume_id, p.retain, p.every_s,"
                             " p.daily_minute, v.attached_ns, v.last_run_ns"
                             " FROM auto_policy_volumes AS v"
                             " JOIN auto_policies AS p ON p.id = v.policy_id"
                             " ORDER BY p.id, v.volume_id",
                             "look for due policies");
  if (stmt == NULL)
    goto out;
  while ((step = sqlite3_step (stmt)) == SQLITE_ROW) {
    when = next_run_ns (sqlite3_column_int64 (stmt, 6),
                        sqlite3_column_int (stmt, 7),
                        sqlite3_column_int64 (stmt, 8),
                        sqlite3_column_int64 (stmt, 9));
    if (when > now_ns) {
      if (*next == 0 || when < *next)
        *next = when;
      continue;
    }
    if (list == NULL)
      continue;
    more = realloc (list->items, (list->n + 1) * sizeof *more);
    if (more == NULL) {
      xs_error ("cannot run policies: %m");
      break;
    }
    list->items = more;
    d = &list->items[list->n++];
    memset (d, 0, sizeof *d);
    snprintf (d->policy_id, sizeof d->policy_id, "%s",
              (const char *) sqlite3_column_text (stmt, 0));
    d->policy_name = strdup ((const char *) sqlite3_column_text (stmt, 1));
    d->account = strdup ((const char *) sqlite3_column_text (stmt, 2));
    d->region = strdup ((const char *) sqlite3_column_text (stmt, 3));
    d->volume_id = strdup ((const char *) sqlite3_column_text (stmt, 4));
    d->retain = sqlite3_column_int64 (stmt, 5);
    if (!d->policy_name || !d->account || !d->region || !d->volume_id) {
      xs_error ("cannot run policies: %m");
      break;
    }
  }
  if (step == SQLITE_DONE)
    r = 0;
  else if (step != SQLITE_ROW)
    xs_catalog_report (cat, "look for due policies");
  sqlite3_finalize (stmt);
 out:
  xs_catalog_unlock (cat);
  return r;
}

static void
say (void (*note) (const char *, void *), void *opaque, const char *fmt,
     ...) __attribute__ ((format (printf, 3, 4)));

static void
say (void (*note) (const char *, void *), void *opaque, const char *fmt, ...)
{
  char line[512];
  va_list args;

  if (note == NULL)
    return;
  va_start (args, fmt);
  vsnprintf (line, sizeof line, fmt, args);
  va_end (args);
  note (line, opaque);
}

/* Whether ID is still a copy task: 1, 0, -1. */
static int
task_exists (struct xs_store *store, const char *id)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t n = 0;
  int r;

  xs_catalog_lock (cat);
  r = xs_catalog_query_int (cat, "look up a copy task", &n,
                            "SELECT count(*) FROM copy_tasks WHERE id = ?",
                            "s", id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : n > 0;
}

/* Delete the expired snapshots of VOLUME_ID that ID (a policy, or with
 * BY_TASK a copy task) made in ACCOUNT.
 */
static int
apply_retention (struct xs_store *store, bool by_task, const char *id,
                 const char *account, const char *volume_id, int64_t retain,
                 void (*note) (const char *, void *), void *opaque)
{
  struct xs_snapshot snap;
  char **old, why[160];
  size_t n, i;
  int r = 0;

  if ((by_task ? xs_snapshot_task_expired : xs_snapshot_policy_expired)
      (store, id, account, volume_id, retain, &old, &n) == -1)
    return -1;
  snprintf (why, sizeof why, "retention of %s %s (keeps %" PRId64 ")",
            by_task ? "copy task" : "policy", id, retain);
  for (i = 0; i < n; i++) {
    /* The destination may delete its task at any time: asked again
     * before each deletion.
     */
    if ((!by_task || task_exists (store, id) == 1)
        && xs_snapshot_lookup_id (store, old[i], &snap) == 0) {
      /* Retention deletes for ACCOUNT: its documents' denies hold. */
      if (xs_access_snapshot (store, account, "xsnap:DeleteSnapshot",
                              &snap) == 0
          && xs_share_delete_snapshot (store, account, why, &snap) == 0)
        say (note, opaque, "retention: deleted %s@%s (%s) of account %s",
             snap.volume_name, snap.name, snap.id, account);
      else
        r = -1;
      xs_snapshot_clear (&snap);
    }
  }
  xs_snapshot_free_ids (old, n);
  return r;
}

/* Record the last error (or "") of a policy run or a task: SQL takes
 * the error and one or two keys.
 */
static void
record_error (struct xs_store *store, const char *sql, const char *error,
              const char *key1, const char *key2)
{
  struct xs_catalog *cat = xs_store_catalog (store);

  xs_catalog_lock (cat);
  xs_catalog_run (cat, "record a policy's error", sql, key2 ? "sss" : "ss",
                  error, key1, key2);
  xs_catalog_unlock (cat);
}

/* Record how a task's copy ended, and when: WHY is NULL on success. */
static void
record_task_result (struct xs_store *store, const char *id, const char *why)
{
  struct xs_catalog *cat = xs_store_catalog (store);

  xs_catalog_lock (cat);
  xs_catalog_run (cat, "record a copy task's result",
                  why ? "UPDATE copy_tasks SET last_error = ?1,"
                  " last_failure_ns = ?2 WHERE id = ?3"
                  : "UPDATE copy_tasks SET last_error = ?1,"
                  " last_success_ns = ?2 WHERE id = ?3", "sis",
                  why ? why : "", xs_wall_clock_ns (), id);
  xs_catalog_unlock (cat);
}

/* The copy tasks of a policy (ids, destination accounts and regions,
 * retain), collected so that copies run without the catalog lock.
 */
struct task_row {
  char id[XS_ID_MAX];
  char *dest_account, *dest_region;
  int64_t retain;
};

static int
collect_tasks (struct xs_store *store, const char *policy_id,
               struct task_row **rows, size_t *n)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  sqlite3_stmt *stmt;
  struct task_row *more;
  int r = -1, step;

  *rows = NULL;
  *n = 0;
  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list a policy's copy tasks",
                                  "SELECT id, dest_account, dest_region,"
                                  " retain FROM copy_tasks WHERE"
                                  " policy_id = ? ORDER BY id", "s",
                                  policy_id);
  while (stmt && (step = sqlite3_step (stmt)) == SQLITE_ROW) {
    more = realloc (*rows, (*n + 1) * sizeof *more);
    if (more == NULL)
      break;
    *rows = more;
    snprintf (more[*n].id, sizeof more[*n].id, "%s",
              (const char *) sqlite3_column_text (stmt, 0));
    more[*n].dest_account = strdup ((const char *)
                                    sqlite3_column_text (stmt, 1));
    more[*n].dest_region = strdup ((const char *)
                                   sqlite3_column_text (stmt, 2));
    more[*n].retain = sqlite3_column_int64 (stmt, 3);
    (*n)++;
  }
  if (stmt && step == SQLITE_DONE)
    r = 0;
  sqlite3_finalize (stmt);
  xs_catalog_unlock (cat);
  return r;
}

static void
free_tasks (struct task_row *rows, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free (rows[i].dest_account);
    free (rows[i].dest_region);
  }
  free (rows);
}

/* Run one copy task on SNAP.  0 or -1 (reported and recorded). */
static int
run_task (struct xs_store *store, const struct due *d,
          const struct task_row *task, const struct xs_snapshot *snap,
          const volatile sig_atomic_t *stop,
          void (*note) (const char *, void *), void *opaque)
{
  struct xs_scope owner = { .account = d->account, .region = d->region };
  struct xs_copy_options o = { .to_account = task->dest_account,
                               .to_region = task->dest_region,
                               .name = snap->name, .stop = stop };
  struct xs_copy_report report;
  struct xs_snapshot copy;
  char why[512] = "";
  int r;

  /* The copies of the task that a pass did not see finish (resumed with
   * `xsnap job resume` after its pass died, or queued) become the task's,
   * so that its retention counts them: they are recognised as named as
   * their source, without a description, as asked below.
   */
  if (xs_snapshot_adopt_task_copies (store, task->id) == -1)
    return -1;
  xs_error_capture_begin (why, sizeof why);
  r = xs_copy_snapshot (store, &owner, snap->id, &o, &copy, &report);
  xs_error_capture_end ();
  record_task_result (store, task->id, r == 0 ? NULL : why);
  if (r == -1) {
    if (stop && *stop)
      say (note, opaque, "copy of %s@%s to %s/%s stopped (job %s): %s",
           snap->volume_name, snap->name, task->dest_account,
           task->dest_region, report.job_id, why);
    return -1;
  }
  say (note, opaque, "copied %s@%s to %s/%s as %s: %" PRIu64 " of %" PRIu64
       " chunks sent (task %s)", snap->volume_name, snap->name,
       task->dest_account, task->dest_region, copy.id, report.chunks_sent,
       report.chunks, task->id);
  /* Counted by its task only while the task exists. */
  r = xs_snapshot_mark_task_copy (store, copy.id, task->id);
  if (r == 0)
    r = apply_retention (store, true, task->id, task->dest_account,
                         snap->volume_id, task->retain, note, opaque);
  xs_snapshot_clear (&copy);
  return r;
}

/* A deleted volume leaves its policies. */
static int
forget_volume (struct xs_store *store, const struct due *d)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "detach a deleted volume",
                      "DELETE FROM auto_policy_volumes WHERE policy_id = ?"
                      " AND volume_id = ?", "ss", d->policy_id,
                      d->volume_id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

/* Snapshot one volume for its due policy, keep RETAIN, run the tasks.
 * Returns the number of failures.
 */
static int
run_one (struct xs_store *store, const struct due *d, int64_t now_ns,
         const volatile sig_atomic_t *stop,
         void (*note) (const char *, void *), void *opaque)
{
  struct xs_scope owner = { .account = d->account, .region = d->region };
  struct xs_volume vol;
  struct xs_snapshot snap;
  struct task_row *tasks;
  char name[80], stamp[20], why[512] = "";
  time_t seconds = (time_t) (now_ns / NS_PER_S);
  struct tm tm;
  size_t ntasks, i;
  int failures = 0, r;

  if (xs_volume_find (store, &owner, d->volume_id, true, &vol) != 0) {
    say (note, opaque, "policy %s: volume %s is gone; detached",
         d->policy_name, d->volume_id);
    return forget_volume (store, d) == 0 ? 0 : 1;
  }
  gmtime_r (&seconds, &tm);
  strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  snprintf (name, sizeof name, "%.43s-%s", d->policy_name, stamp);
  xs_error_capture_begin (why, sizeof why);
  r = xs_snapshot_take (store, &vol, name, true, NULL, NULL, NULL, &snap);
  xs_error_capture_end ();
  record_error (store, "UPDATE auto_policy_volumes SET last_error = ?"
                " WHERE policy_id = ? AND volume_id = ?", r == 0 ? "" : why,
                d->policy_id, d->volume_id);
  if (r == -1) {
    xs_volume_clear (&vol);
    return 1;
  }
  say (note, opaque, "policy %s: snapshot %s@%s (%s)", d->policy_name,
       vol.name, snap.name, snap.id);
  if (xs_snapshot_mark_auto (store, snap.id, d->policy_id) == -1)
    failures++;
  /* The copies first: retention then knows which base each needs. */
  if (collect_tasks (store, d->policy_id, &tasks, &ntasks) == -1)
    failures++;
  else {
    for (i = 0; i < ntasks && !(stop && *stop); i++)
      failures += run_task (store, d, &tasks[i], &snap, stop, note,
                            opaque) != 0;
    free_tasks (tasks, ntasks);
  }
  if (apply_retention (store, false, d->policy_id, d->account, vol.id,
                       d->retain, note, opaque) == -1)
    failures++;
  xs_snapshot_clear (&snap);
  xs_volume_clear (&vol);
  return failures;
}

static int
record_run (struct xs_store *store, const struct due *d, int64_t now_ns)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  int64_t r;

  xs_catalog_lock (cat);
  r = xs_catalog_run (cat, "record a policy run",
                      "UPDATE auto_policy_volumes SET last_run_ns = ?"
                      " WHERE policy_id = ? AND volume_id = ?", "iss",
                      now_ns, d->policy_id, d->volume_id);
  xs_catalog_unlock (cat);
  return r == -1 ? -1 : 0;
}

/* The store's pass lock (see schedule.h): 0 held (*FD), 1 another
 * pass holds it (*OTHER its pid, or -1 before it wrote it), -1.
 */
static int
pass_lock (struct xs_store *store, int *fd, pid_t *other)
{
  char *path = NULL, text[32];
  ssize_t len;
  long pid;
  int r = -1;

  *fd = -1;
  if (asprintf (&path, "%s/policy-pass.lock", xs_store_path (store)) == -1) {
    xs_error ("cannot run policies: %m");
    return -1;
  }
  *fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (*fd == -1)
    xs_error ("cannot open %s: %m", path);
  else if (flock (*fd, LOCK_EX | LOCK_NB) == 0) {
    /* Its pid, for the pass that finds it taken. */
    snprintf (text, sizeof text, "%ld\n", (long) getpid ());
    if (ftruncate (*fd, 0) == -1
        || pwrite (*fd, text, strlen (text), 0) != (ssize_t) strlen (text))
      xs_debug ("cannot write the pid into %s: %m", path);
    r = 0;
  }
  else if (errno == EWOULDBLOCK) {
    len = pread (*fd, text, sizeof text - 1, 0);
    text[len > 0 ? len : 0] = '\0';
    pid = strtol (text, NULL, 10);
    *other = pid > 0 ? (pid_t) pid : -1;
    r = 1;
  }
  else
    xs_error ("cannot lock %s: %m", path);
  if (r != 0 && *fd >= 0) {
    close (*fd);
    *fd = -1;
  }
  free (path);
  return r;
}

int
xs_schedule_run_due (struct xs_store *store, int64_t now_ns,
                       const volatile sig_atomic_t *stop, pid_t *other,
                       void (*note) (const char *line, void *opaque),
                       void *opaque)
{
  struct due_list list = { NULL, 0 };
  int64_t next;
  int failures = 0, lock_fd, locked;
  size_t i;

  *other = 0;
  locked = pass_lock (store, &lock_fd, other);
  if (locked != 0)
    return locked == 1 ? 0 : -1;
  if (collect_due (store, now_ns, &list, &next) == -1) {
    failures = -1;
    goto out;
  }
  for (i = 0; i < list.n && !(stop && *stop); i++) {
    /* Recorded first: a failing volume is tried again next period, not
     * in a tight loop.
     */
    if (record_run (store, &list.items[i], now_ns) == -1)
      failures++;
    else
      failures += run_one (store, &list.items[i], now_ns, stop, note,
                           opaque);
  }
  /* Then the copies waiting for a cross-region slot. */
  if (!(stop && *stop))
    failures += xs_copy_run_queued (store, stop, note, opaque);
 out:
  for (i = 0; i < list.n; i++)
    due_clear (&list.items[i]);
  free (list.items);
  close (lock_fd);
  return failures;
}

json_t *
xs_schedule_attachment_to_json (const struct xs_schedule_attachment *a)
{
  char attached[32], last_run[32] = "", next_run[32];

  xs_format_utc (a->attached_ns, attached, sizeof attached);
  if (a->last_run_ns)
    xs_format_utc (a->last_run_ns, last_run, sizeof last_run);
  xs_format_utc (a->next_run_ns, next_run, sizeof next_run);
  return json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}",
                    "volume_id", a->volume_id, "volume", a->volume_name,
                    "attached", attached, "last_run", last_run,
                    "next_run", next_run, "last_error", a->last_error);
}

/* A policy's attachment as read, with its volume's name ("" once the
 * volume is gone) looked up after.
 */
struct attachment_row {
  char *volume_id, *volume_name, *last_error;
  int64_t attached_ns, last_run_ns;
};

struct attachment_rows {
  struct attachment_row *items;
  size_t n;
};

static void
attachment_rows_clear (struct attachment_rows *rows)
{
  for (size_t i = 0; i < rows->n; i++) {
    free (rows->items[i].volume_id);
    free (rows->items[i].volume_name);
    free (rows->items[i].last_error);
  }
  free (rows->items);
}

static int
collect_attachment (sqlite3_stmt *stmt, void *opaque)
{
  struct attachment_rows *rows = opaque;
  struct attachment_row *more, *a;
  bool failed = false;

  more = realloc (rows->items, (rows->n + 1) * sizeof *more);
  if (more == NULL) {
    xs_error ("cannot list a policy's volumes: %m");
    return -1;
  }
  rows->items = more;
  a = &more[rows->n++];
  memset (a, 0, sizeof *a);
  a->volume_id = xs_catalog_column_dup (stmt, 0, &failed);
  a->attached_ns = sqlite3_column_int64 (stmt, 1);
  a->last_run_ns = sqlite3_column_int64 (stmt, 2);
  a->last_error = xs_catalog_column_dup (stmt, 3, &failed);
  if (failed) {
    xs_error ("cannot list a policy's volumes: %m");
    return -1;
  }
  return 0;
}

static int
name_attached_volume (struct xs_store *store, struct attachment_row *a)
{
  int r = xs_volume_name_by_id (store, a->volume_id, &a->volume_name);

  if (r == 1) {
    a->volume_name = strdup ("");
    if (a->volume_name == NULL) {
      xs_error ("cannot list a policy's volumes: %m");
      return -1;
    }
  }
  return r == -1 ? -1 : 0;
}

/* By volume name, then volume id. */
static int
compare_attachments (const void *pa, const void *pb)
{
  const struct attachment_row *a = pa, *b = pb;
  int c = strcmp (a->volume_name, b->volume_name);

  return c ? c : strcmp (a->volume_id, b->volume_id);
}

int
xs_schedule_attachments
  (struct xs_store *store, const struct xs_schedule *policy,
   int (*fn) (const struct xs_schedule_attachment *attachment, void *opaque),
   void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct attachment_rows rows = { NULL, 0 };
  struct xs_schedule_attachment a;
  sqlite3_stmt *stmt;
  size_t i;
  int r = -1;

  xs_catalog_lock (cat);
  stmt = xs_catalog_prepare_bind (cat, "list a policy's volumes",
                                  "SELECT volume_id, attached_ns,"
                                  " last_run_ns, last_error"
                                  " FROM auto_policy_volumes"
                                  " WHERE policy_id = ?", "s", policy->id);
  if (stmt == NULL
      || xs_catalog_each_row (cat, stmt, "list a policy's volumes",
                              collect_attachment, &rows) == -1)
    goto out;
  for (i = 0; i < rows.n; i++)
    if (name_attached_volume (store, &rows.items[i]) == -1)
      goto out;
  if (rows.n > 1)
    qsort (rows.items, rows.n, sizeof *rows.items, compare_attachments);
  r = 0;
  for (i = 0; i < rows.n; i++) {
    a.volume_id = rows.items[i].volume_id;
    a.volume_name = rows.items[i].volume_name;
    a.attached_ns = rows.items[i].attached_ns;
    a.last_run_ns = rows.items[i].last_run_ns;
    a.last_error = rows.items[i].last_error;
    a.next_run_ns = next_run_ns (policy->every_s, policy->daily_minute,
                                 a.attached_ns, a.last_run_ns);
    if (fn (&a, opaque) == -1) {
      r = -1;
      break;
    }
  }
 out:
  xs_catalog_unlock (cat);
  attachment_rows_clear (&rows);
  return r;
}

int64_t
xs_schedule_next_due (struct xs_store *store, int64_t now_ns)
{
  int64_t next;

  if (collect_due (store, now_ns, NULL, &next) == -1)
    return -1;
  return next;
}
