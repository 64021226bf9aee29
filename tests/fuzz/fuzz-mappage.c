/* xsnap: libFuzzer target for the block map's page parser.
 *
 * Map pages are read from repositories that other accounts, regions and
 * streams wrote, so xs_maptree_page_parse must survive any input.  The
 * first 9 bytes choose where the page claims to sit (level, index, the
 * map's size), the rest is the page.  Whatever parses must be canonical:
 * encoding its entries again gives the same bytes, hence the same id.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/byteorder.h"
#include "base/hash.h"
#include "repo/maptree.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct xs_hash128 entries[XS_MAPTREE_FANOUT], id, again_id;
  uint8_t again[XS_MAPTREE_PAGE_MAX];
  char reason[XS_MAPTREE_REASON_MAX];
  unsigned level;
  uint64_t index, nblocks;
  uint8_t *page;
  size_t len, again_len;

  if (size < 9)
    return 0;
  level = data[0] % 4;
  index = xs_get_le32 (data + 1) % 1024;
  nblocks = xs_get_le32 (data + 5);
  len = size - 9;
  /* A fresh allocation of exactly the page's size, so overreads show. */
  page = malloc (len > 0 ? len : 1);
  if (page == NULL)
    return 0;
  memcpy (page, data + 9, len);
  xs_maptree_page_id (page, len, &id);
  if (xs_maptree_page_parse (page, len, &id, level, index, nblocks, entries,
                             reason) == 0) {
    again_len = xs_maptree_page_encode (level, entries, again);
    xs_maptree_page_id (again, again_len, &again_id);
    if (again_len != len || memcmp (again, page, len) != 0
        || !xs_hash128_equal (&again_id, &id))
      abort ();
  }
  free (page);
  return 0;
}
