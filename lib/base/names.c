/* xsnap: validation of names.
 *
 * Names end up in export names (VOL and VOL@SNAP), in JSON and in messages,
 * never in paths (objects on disk are named by id), so the rules are about
 * being unambiguous and readable rather than about the filesystem.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/names.h"

int
xs_name_check (const char *kind, const char *name)
{
  size_t len = strlen (name), i;

  if (len == 0) {
    xs_error ("invalid %s name: it must not be empty", kind);
    return -1;
  }
  if (len > XS_NAME_MAX) {
    xs_error ("invalid %s name '%s': longer than %d characters",
              kind, name, XS_NAME_MAX);
    return -1;
  }
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char) name[i];
    if (c == '/' || c == '@') {
      xs_error ("invalid %s name '%s': '%c' is not allowed%s", kind, name, c,
                c == '@' ? " (it separates volume and snapshot)" : "");
      return -1;
    }
    if (!isalnum (c) && c != '.' && c != '_' && c != '-') {
      xs_error ("invalid %s name '%s': only letters, digits, '.', '_' and "
                "'-' are allowed", kind, name);
      return -1;
    }
  }
  if (name[0] == '.' || name[0] == '-') {
    xs_error ("invalid %s name '%s': it must not start with '%c'",
              kind, name, name[0]);
    return -1;
  }
  return 0;
}

char *
xs_resource_name (const char *region, const char *account,
                  const char *type, const char *id)
{
  char *name;

  if (asprintf (&name, "xsnap:%s:%s:%s/%s",
                region ? region : "", account ? account : "",
                type ? type : "", id ? id : "") == -1) {
    xs_error ("resource name: %m");
    return NULL;
  }
  return name;
}
