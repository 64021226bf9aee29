/* xsnap: parsing and printing sizes.
 *
 * The CLI accepts sizes with K M G T suffixes in powers of 1024, as
 * nbdkit does.  Parsing is strict: anything that is not a
 * whole number with one known suffix is refused with a message saying
 * what was wrong, and overflow is detected rather than wrapped.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/size.h"

static int
suffix_shift (const char *suffix, unsigned *shift)
{
  static const char units[] = "KMGTPE";
  const char *unit;

  if (*suffix == '\0' || strcasecmp (suffix, "B") == 0) {
    *shift = 0;
    return 0;
  }
  unit = strchr (units, toupper ((unsigned char) suffix[0]));
  if (unit == NULL)
    return -1;
  if (suffix[1] != '\0'
      && strcasecmp (suffix + 1, "B") != 0
      && strcasecmp (suffix + 1, "iB") != 0)
    return -1;
  *shift = 10 * (unsigned) (unit - units + 1);
  return 0;
}

int64_t
xs_size_parse (const char *text, const char *what)
{
  uint64_t value = 0;
  const char *p = text;
  unsigned shift;

  if (text == NULL || *text == '\0') {
    xs_error ("invalid %s '': a size is required (e.g. 10G)", what);
    return -1;
  }
  if (!isdigit ((unsigned char) *p)) {
    xs_error ("invalid %s '%s': not a number (e.g. 10G)", what, text);
    return -1;
  }
  for (; isdigit ((unsigned char) *p); p++) {
    unsigned digit = (unsigned) (*p - '0');
    if (value > (UINT64_MAX - digit) / 10)
      goto too_large;
    value = value * 10 + digit;
  }
  if (suffix_shift (p, &shift) == -1) {
    xs_error ("invalid %s '%s': unknown suffix '%s' (use K, M, G, T, P or E)",
              what, text, p);
    return -1;
  }
  if (shift > 0 && value > (UINT64_MAX >> shift))
    goto too_large;
  value <<= shift;
  if (value > INT64_MAX)
    goto too_large;
  return (int64_t) value;

 too_large:
  xs_error ("invalid %s '%s': too large", what, text);
  return -1;
}

void
xs_size_format (uint64_t bytes, char *buf, size_t buflen)
{
  static const char units[] = "KMGTPE";
  unsigned i;

  for (i = 6; i >= 1; i--) {
    uint64_t unit = UINT64_C (1) << (10 * i);
    if (bytes >= unit) {
      if (bytes % unit == 0)
        snprintf (buf, buflen, "%" PRIu64 "%c", bytes / unit, units[i - 1]);
      else
        snprintf (buf, buflen, "%.1f%c", (double) bytes / (double) unit,
                  units[i - 1]);
      return;
    }
  }
  snprintf (buf, buflen, "%" PRIu64, bytes);
}
