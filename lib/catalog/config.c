/* xsnap: tunable rules of a store (see config.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/audit.h"
#include "catalog/config.h"
#include "base/error.h"
#include "base/names.h"

enum kind { NUMBER, GROUP_LIST };

static const struct {
  const char *key;
  enum kind kind;
  int64_t min, max;
  const char *fallback;
  const char *description;
} known[] = {
  { "copy.isolated_groups", GROUP_LIST, 0, 0, "intl",
    "region groups whose regions do not copy to each other" },
  { "copy.max_cross_region_bytes", NUMBER, 1, INT64_MAX, "137438953472",
    "largest snapshot copied to another region (bytes)" },
  { "copy.max_cross_region_jobs", NUMBER, 1, 1000, "5",
    "cross-region copies one account may run at once" },
  { "share.max_days", NUMBER, 1, 36600, "1096",
    "longest life of a share (days)" },
  { "share.max_shared", NUMBER, 1, 10000000, "1024",
    "snapshots and chains one account may share" },
  { "share.max_sharees", NUMBER, 1, 100000, "64",
    "accounts one snapshot or chain may be shared with" },
};

#define NKNOWN (sizeof known / sizeof known[0])

static int
find_key (const char *key)
{
  for (size_t i = 0; i < NKNOWN; i++)
    if (strcmp (known[i].key, key) == 0)
      return (int) i;
  xs_error ("unknown setting '%s' (see 'xsnap config list')", key);
  return -1;
}

static int
check_value (int i, const char *value)
{
  char *end;
  long long n;

  if (known[i].kind == GROUP_LIST) {
    for (const char *p = value; *p; p++)
      if (!(*p == ',' || *p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z')
            || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
        xs_error ("invalid value '%s' for %s: expected group names "
                  "separated by commas", value, known[i].key);
        return -1;
      }
    return 0;
  }
  errno = 0;
  n = strtoll (value, &end, 10);
  if (errno || end == value || *end || n < known[i].min
      || n > known[i].max) {
    xs_error ("invalid value '%s' for %s: expected a number from %" PRId64
              " to %" PRId64, value, known[i].key, known[i].min,
              known[i].max);
    return -1;
  }
  return 0;
}

int
xs_config_check (const char *key, const char *value)
{
  int i = find_key (key);

  return i == -1 || (value && check_value (i, value) == -1) ? -1 : 0;
}

int
xs_config_set (struct xs_store *store, const char *actor, const char *key,
               const char *value)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char detail[256], *arn = NULL;
  int i = find_key (key);
  int64_t r;

  if (i == -1 || (value && check_value (i, value) == -1)
      || (arn = xs_resource_name (NULL, NULL, "setting",
                                         key)) == NULL)
    return -1;
  snprintf (detail, sizeof detail, "%s", value ? value : "(default)");
  xs_catalog_lock (cat);
  r = xs_catalog_begin (cat);
  if (r == 0 && value)
    r = xs_catalog_set_setting (cat, key, value);
  else if (r == 0)
    r = xs_catalog_reset_setting (cat, key, "reset a setting");
  if (r == -1
      || xs_audit_record_locked (store, actor, "xsnap:SetConfig", arn, "",
                                 XS_AUDIT_ALLOWED, detail) == -1
      || xs_catalog_commit (cat) == -1) {
    xs_catalog_rollback (cat);
    r = -1;
  }
  xs_catalog_unlock (cat);
  free (arn);
  return r == -1 ? -1 : 0;
}

int
xs_config_list (struct xs_store *store,
                int (*fn) (const struct xs_config_item *item, void *opaque),
                void *opaque)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_config_item item;
  char *value;
  int r;

  for (size_t i = 0; i < NKNOWN; i++) {
    xs_catalog_lock (cat);
    r = xs_catalog_get_setting (cat, known[i].key, &value);
    xs_catalog_unlock (cat);
    if (r == -1)
      return -1;
    item = (struct xs_config_item) {
      .key = known[i].key, .value = r == 0 ? value : known[i].fallback,
      .fallback = known[i].fallback, .description = known[i].description,
      .is_set = r == 0,
    };
    r = fn (&item, opaque);
    if (item.is_set)
      free (value);
    if (r == -1)
      return -1;
  }
  return 0;
}
