/* libFuzzer target: the changed-block bitmap decoder (xsnap diff
 * --format=bitmap output, read back by tools that consume maps).
 */
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>

#include "ops/changemap.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct xs_changemap map;
  void *again;
  size_t len;

  if (xs_changemap_decode (data, size, &map) == 0) {
    /* What decodes must encode to the same bytes. */
    if (xs_changemap_encode (&map, &again, &len) == 0) {
      if (len != size)
        __builtin_trap ();
      free (again);
    }
    xs_changemap_clear (&map);
  }
  return 0;
}
