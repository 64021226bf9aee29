/* xsnap: libFuzzer target for the replication stream parser.
 *
 * Streams come from other machines through pipes, so the parser must
 * survive any input, fed whole or in pieces, with bounded memory.  Almost
 * every mutation fails a checksum, so each input is also parsed with all
 * its checksums recomputed (offsets from docs/FORMAT.md, "Replication
 * stream"), which lets the fuzzer reach the metadata, record
 * and trailer checks behind them.  Chunk records are decoded as the
 * receiver decodes them, and the input is also tried as a resume token.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/byteorder.h"
#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/stream.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

/* libFuzzer runs inputs one at a time on one thread. */
static struct xs_chunk_codec *codec;

static void
decode_record (const struct xs_stream_info *info,
               const struct xs_stream_record *rec)
{
  char reason[XS_CHUNK_REASON_MAX];
  void *plain;

  if (rec->kind != XS_STREAM_CHUNK)
    return;
  plain = malloc (info->block_size);
  if (plain == NULL)
    return;
  xs_chunk_decode_quiet (codec, rec->stored, rec->stored_len, &rec->id,
                         plain, info->block_size, reason);
  free (plain);
}

/* Feed DATA in pieces of STEP bytes (0: all at once), then finish. */
static void
parse_all (const uint8_t *data, size_t size, size_t step)
{
  struct xs_stream_parser *p = xs_stream_parser_new ();
  enum xs_stream_event event = XS_STREAM_MORE;
  size_t pos = 0, used, piece;

  if (p == NULL)
    return;
  while (event != XS_STREAM_ERROR && pos < size) {
    piece = step && step < size - pos ? step : size - pos;
    event = xs_stream_parser_feed (p, data + pos, piece, &used);
    pos += used;
    if (event == XS_STREAM_RECORD)
      decode_record (xs_stream_parser_info (p), xs_stream_parser_record (p));
    if (event == XS_STREAM_END && pos < size)
      event = xs_stream_parser_feed (p, data + pos, size - pos, &used);
  }
  if (event != XS_STREAM_ERROR)
    xs_stream_parser_finish (p);
  xs_stream_parser_resumable (p);
  xs_stream_parser_free (p);
}

static void
put_check (uint8_t *at, const void *from, size_t len)
{
  xs_put_le64 (at, xs_hash64 (from, len));
}

/* Recompute every checksum the layout has, as far as the input goes. */
static void
reseal (uint8_t *buf, size_t size)
{
  struct xs_hash_stream *whole;
  size_t pos, frame, len;

  if (size < 32)
    return;
  put_check (buf + 24, buf, 24);
  len = xs_get_le32 (buf + 16);
  if (len > size || 32 + len + 8 > size)
    return;
  put_check (buf + 32 + len, buf, 32 + len);
  pos = 32 + len + 8;
  whole = xs_hash_stream_new ();
  if (whole == NULL)
    return;
  xs_hash_stream_update (whole, buf, pos);
  while (pos + 40 <= size) {
    put_check (buf + pos + 32, buf + pos, 32);
    if (buf[pos] == 'T') {
      xs_hash_stream_update (whole, buf + pos, 40);
      if (pos + 48 <= size)
        xs_put_le64 (buf + pos + 40, xs_hash_stream_digest64 (whole));
      break;
    }
    /* A chunk, or a reference's source block (versions 5 and 6). */
    len = buf[pos] == XS_STREAM_CHUNK || buf[pos] == XS_STREAM_REF
      ? xs_get_le32 (buf + pos + 4) : 0;
    if (len > size || pos + 40 + len + 8 > size)
      break;
    frame = 40;
    if (len > 0) {
      put_check (buf + pos + 40 + len, buf + pos, 40 + len);
      frame += len + 8;
    }
    xs_hash_stream_update (whole, buf + pos, frame);
    pos += frame;
  }
  xs_hash_stream_free (whole);
}

static void
try_token (const uint8_t *data, size_t size)
{
  char text[XS_STREAM_TOKEN_MAX], id[XS_STREAM_ID_LEN + 1], mac[33];
  uint64_t block;

  if (size >= sizeof text)
    return;
  memcpy (text, data, size);
  text[size] = '\0';
  xs_stream_token_parse (text, id, &block, mac);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t *copy;

  if (codec == NULL && (codec = xs_chunk_codec_new (0)) == NULL)
    abort ();
  parse_all (data, size, 0);
  parse_all (data, size, 1 + size % 61);
  try_token (data, size);
  /* A fresh allocation of exactly size bytes, so overreads are caught. */
  copy = malloc (size ? size : 1);
  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);
  reseal (copy, size);
  parse_all (copy, size, 0);
  free (copy);
  return 0;
}
