/* xsnap: tests for lib/repo/stream.c, the replication stream format.
 *
 * A stream written to a buffer parses back to the same header and records
 * whether it is fed whole or a byte at a time; every truncation and every
 * single-bit flip is refused (and the truncations after the header are
 * resumable); a newer version, records out of order, a reference's
 * source block beyond the volume or in a version that has none,
 * trailing data and mismatched metadata are refused with a clear
 * message; older versions parse; the writer
 * refuses what the parser would; resume tokens parse.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/stream.h"
#include "tap.h"

#define BLOCK 4096
#define NBLOCKS 16

/* ----- Building a stream in memory ----- */

struct buffer {
  uint8_t *data;
  size_t len;
};

static int
append (const void *data, size_t len, void *opaque)
{
  struct buffer *b = opaque;

  b->data = realloc (b->data, b->len + len);
  if (b->data == NULL)
    abort ();
  memcpy (b->data + b->len, data, len);
  b->len += len;
  return 0;
}

/* Two stored chunks and their ids: block contents 'a' and 'b'. */
struct chunks {
  void *stored[2];
  size_t len[2];
  struct xs_hash128 id[2];
};

static void
make_chunks (struct chunks *c)
{
  struct xs_chunk_codec *codec = xs_chunk_codec_new (0);
  uint8_t plain[BLOCK];

  for (int i = 0; i < 2; i++) {
    memset (plain, 'a' + i, sizeof plain);
    plain[7] = (uint8_t) i;
    if (xs_chunk_encode (codec, plain, sizeof plain, &c->id[i],
                         &c->stored[i], &c->len[i]) == -1)
      abort ();
  }
  xs_chunk_codec_free (codec);
}

static void
free_chunks (struct chunks *c)
{
  free (c->stored[0]);
  free (c->stored[1]);
}

static void
make_info (struct xs_stream_info *info, bool incremental,
           const char *token, uint64_t first_block, uint64_t records)
{
  memset (info, 0, sizeof *info);
  info->created_ns = 1700000000123456789LL;
  info->size = NBLOCKS * BLOCK;
  info->block_size = BLOCK;
  info->nblocks = NBLOCKS;
  memset (info->root.bytes, 0x42, 16);
  if (incremental)
    memset (info->base_root.bytes, 0x17, 16);
  info->first_block = first_block;
  info->records = records;
  if (xs_stream_info_set_strings (info, "alice", "mainland-1", "vol-00000000000000a1",
                                  "data", "snap-00000000000000aa", "nightly",
                                  incremental ? "snap-00000000000000bb" : "",
                                  token) == -1)
    abort ();
}

/* An incremental stream: block 1 chunk a, 2 a again (a reference to
 * block 1), 5 zero, 9 chunk b.
 */
static struct xs_stream_record records[4];

static void
make_records (const struct chunks *c)
{
  records[0] = (struct xs_stream_record) { XS_STREAM_CHUNK, 1, c->id[0],
                                           c->stored[0], c->len[0], 0 };
  records[1] = (struct xs_stream_record) { XS_STREAM_REF, 2, c->id[0],
                                           NULL, 0, 1 };
  records[2] = (struct xs_stream_record) { XS_STREAM_ZERO, 5, { { 0 } },
                                           NULL, 0, 0 };
  records[3] = (struct xs_stream_record) { XS_STREAM_CHUNK, 9, c->id[1],
                                           c->stored[1], c->len[1], 0 };
}

static void
write_stream (const struct xs_stream_info *info, size_t from, size_t n,
              struct buffer *out)
{
  struct xs_stream_writer *w = xs_stream_writer_new (append, out);

  memset (out, 0, sizeof *out);
  if (w == NULL || xs_stream_write_header (w, info) == -1)
    abort ();
  for (size_t i = from; i < from + n; i++)
    if (xs_stream_write_record (w, &records[i]) == -1)
      abort ();
  if (xs_stream_write_trailer (w) == -1)
    abort ();
  xs_stream_writer_free (w);
}

/* ----- Parsing a buffer ----- */

struct parsed {
  int headers;
  int records;
  bool end;
  bool ok;                      /* END and finish () == 0 */
  bool resumable;
  struct xs_stream_info info;   /* the numbers and the stream id */
  struct xs_stream_record rec[8];
  uint8_t stored[8][BLOCK + 128];
};

/* Feed DATA in pieces of STEP bytes (0: all at once), then finish. */
static void
parse (const uint8_t *data, size_t len, size_t step, struct parsed *p)
{
  struct xs_stream_parser *parser = xs_stream_parser_new ();
  enum xs_stream_event event = XS_STREAM_MORE;
  size_t pos = 0, used, piece;

  memset (p, 0, sizeof *p);
  while (parser && event != XS_STREAM_ERROR && pos < len) {
    piece = step && step < len - pos ? step : len - pos;
    event = xs_stream_parser_feed (parser, data + pos, piece, &used);
    pos += used;
    if (event == XS_STREAM_HEADER) {
      const struct xs_stream_info *info = xs_stream_parser_info (parser);
      p->headers++;
      memcpy (p->info.stream_id, info->stream_id, sizeof p->info.stream_id);
      p->info.nblocks = info->nblocks;
      p->info.first_block = info->first_block;
      p->info.root = info->root;
      p->info.base_root = info->base_root;
      p->info.flat_roots = info->flat_roots;
      p->info.sourced_refs = info->sourced_refs;
    }
    else if (event == XS_STREAM_RECORD && p->records < 8) {
      const struct xs_stream_record *r = xs_stream_parser_record (parser);
      p->rec[p->records] = *r;
      if (r->stored_len > 0 && r->stored_len <= sizeof p->stored[0])
        memcpy (p->stored[p->records], r->stored, r->stored_len);
      p->records++;
    }
    else if (event == XS_STREAM_END)
      p->end = true;
  }
  if (parser && event != XS_STREAM_ERROR && pos == len)
    p->ok = xs_stream_parser_finish (parser) == 0 && p->end;
  p->resumable = parser && xs_stream_parser_resumable (parser);
  xs_stream_parser_free (parser);
}

static void
check_records (const struct parsed *p, const char *how)
{
  bool same = p->records == 4;

  for (int i = 0; same && i < 4; i++)
    same = p->rec[i].kind == records[i].kind
      && p->rec[i].block == records[i].block
      && xs_hash128_equal (&p->rec[i].id, &records[i].id)
      && p->rec[i].stored_len == records[i].stored_len
      && p->rec[i].source == records[i].source
      && (records[i].stored_len == 0
          || memcmp (p->stored[i], records[i].stored,
                     records[i].stored_len) == 0);
  ok (same, "%s: the four records come back as written", how);
}

static void
test_round_trip (void)
{
  struct xs_stream_info info;
  struct xs_stream_writer *counter;
  struct parsed p;
  struct buffer b;

  make_info (&info, true, "", 0, 4);
  write_stream (&info, 0, 4, &b);
  parse (b.data, b.len, 0, &p);
  ok (p.ok, "a written stream parses to the end");
  is_int (p.headers, 1, "one header");
  ok (strcmp (p.info.stream_id, info.stream_id) == 0, "same stream id");
  is_int (p.info.nblocks, NBLOCKS, "same geometry");
  ok (xs_hash128_equal (&p.info.root, &info.root)
      && xs_hash128_equal (&p.info.base_root, &info.base_root),
      "same root and base root");
  check_records (&p, "whole");
  parse (b.data, b.len, 1, &p);
  ok (p.ok, "fed a byte at a time, it parses too");
  check_records (&p, "byte by byte");

  counter = xs_stream_writer_new (NULL, NULL);
  xs_stream_write_header (counter, &info);
  for (int i = 0; i < 4; i++)
    xs_stream_write_record (counter, &records[i]);
  xs_stream_write_trailer (counter);
  is_int (xs_stream_writer_bytes (counter), b.len,
          "a dry run counts exactly the bytes of the real stream");
  xs_stream_writer_free (counter);
  xs_stream_info_clear (&info);
  free (b.data);
}

static size_t
header_length (const uint8_t *data)
{
  uint32_t m;

  memcpy (&m, data + 16, 4);
  return 32 + le32toh (m) + 8;
}

static void
test_truncations (void)
{
  struct xs_stream_info info;
  struct parsed p;
  struct buffer b;
  size_t accepted = 0, wrong_resumable = 0, header;

  make_info (&info, true, "", 0, 4);
  write_stream (&info, 0, 4, &b);
  header = header_length (b.data);
  for (size_t len = 0; len < b.len; len++) {
    parse (b.data, len, 0, &p);
    accepted += p.ok;
    wrong_resumable += p.resumable != (len >= header);
  }
  tap_take_error ();
  is_int (accepted, 0, "all %zu truncations are refused", b.len);
  is_int (wrong_resumable, 0,
          "a cut after the header is resumable, one inside it is not");
  parse (b.data, header + 20, 0, &p);
  error_contains ("stream truncated inside record 1", "a cut inside a record");
  parse (b.data, header, 0, &p);
  error_contains ("after the header", "a cut right after the header");
  parse (b.data, b.len - 48, 0, &p);
  error_contains ("after record 4 (block 9): the trailer is missing",
                  "a cut at the trailer");
  parse (b.data, b.len - 3, 0, &p);
  error_contains ("inside the trailer", "a cut inside the trailer");
  parse (b.data, 10, 0, &p);
  error_contains ("inside the header", "a cut inside the header");
  parse (b.data, 0, 0, &p);
  error_contains ("empty", "an empty stream");
  xs_stream_info_clear (&info);
  free (b.data);
}

static void
test_bit_flips (void)
{
  struct xs_stream_info info;
  struct parsed p;
  struct buffer b;
  size_t accepted = 0;

  make_info (&info, true, "", 0, 4);
  write_stream (&info, 0, 4, &b);
  for (size_t i = 0; i < b.len; i++) {
    int bit = (int) (i % 8);
    b.data[i] ^= (uint8_t) (1 << bit);
    parse (b.data, b.len, 0, &p);
    accepted += p.ok;
    b.data[i] ^= (uint8_t) (1 << bit);
  }
  tap_take_error ();
  is_int (accepted, 0, "a flipped bit anywhere in %zu bytes is refused",
          b.len);
  b.data[header_length (b.data) + 45] ^= 1;
  parse (b.data, b.len, 0, &p);
  error_contains ("stream record 1 (block 1) is damaged",
                  "a damaged chunk record is named");
  ok (p.resumable, "  and damage in transit is resumable");
  xs_stream_info_clear (&info);
  free (b.data);
}

static void
put_check (uint8_t *at, const uint8_t *from, size_t len)
{
  uint64_t check = htole64 (xs_hash64 (from, len));

  memcpy (at, &check, 8);
}

/* Give stream B (its header HEADER bytes) format version VERSION, with
 * every checksum that covers it made right again.
 */
static void
set_version (struct buffer *b, size_t header, uint8_t version)
{
  b->data[8] = version;
  put_check (b->data + 24, b->data, 24);
  put_check (b->data + header - 8, b->data, header - 8);
  put_check (b->data + b->len - 8, b->data, b->len - 8);
}

static void
test_version_and_rules (void)
{
  struct xs_stream_info info;
  struct parsed p;
  struct buffer b;
  size_t header;
  uint8_t *swap;

  make_info (&info, true, "", 0, 4);
  write_stream (&info, 0, 4, &b);
  header = header_length (b.data);

  parse (b.data, b.len, 0, &p);
  ok (p.ok && p.info.sourced_refs && !p.info.flat_roots,
      "a stream as written (version 5) has sourced references");
  set_version (&b, header, 7);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok, "version 7 is refused");
  error_contains ("stream format version 7 is newer than this xsnap "
                  "supports (6)", "  with the version message");
  set_version (&b, header, 6);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok, "version 6 without an encryption mode is refused");
  error_contains ("a version 6 stream without an encryption mode",
                  "  with a message saying so");
  set_version (&b, header, 3);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok, "a version 3 stream whose reference gives a source is "
      "refused");
  error_contains ("stream record 2 (block 2) is invalid: a reference record "
                  "with an id and a length of 8", "  as invalid");
  set_version (&b, header, 5);

  /* Swap records 2 (a reference, 56 bytes) and 3 (zero, 40 bytes). */
  swap = malloc (b.len);
  memcpy (swap, b.data, b.len);
  {
    size_t r2 = header + 40 + records[0].stored_len + 8, r3 = r2 + 56;
    memcpy (swap + r2, b.data + r3, 40);
    memcpy (swap + r2 + 40, b.data + r2, 56);
  }
  parse (swap, b.len, 0, &p);
  ok (!p.ok, "records swapped are refused");
  error_contains ("is out of order", "  as out of order");
  ok (!p.resumable, "  and that is not resumable");
  free (swap);

  append ("x", 1, &b);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok, "data after the trailer is refused");
  error_contains ("unexpected data after the end", "  and said so");

  b.data[0] = 'Y';
  parse (b.data, b.len, 0, &p);
  error_contains ("not an xsnap stream", "bad magic");
  xs_stream_info_clear (&info);
  free (b.data);
}

/* Streams of the versions before sourced references, which carry none. */
static void
test_old_versions (void)
{
  struct xs_stream_info info;
  struct parsed p;
  struct buffer b;
  size_t header;

  make_info (&info, true, "", 0, 2);
  write_stream (&info, 2, 2, &b);
  header = header_length (b.data);
  set_version (&b, header, 1);
  parse (b.data, b.len, 0, &p);
  ok (p.ok && p.info.flat_roots && !p.info.sourced_refs,
      "version 1 (an older sender) parses, its roots flat");
  set_version (&b, header, 3);
  parse (b.data, b.len, 0, &p);
  ok (p.ok && !p.info.flat_roots && !p.info.sourced_refs,
      "version 3 parses, its roots trees, its references without source");
  xs_stream_info_clear (&info);
  free (b.data);
}

/* A reference whose source block is NBLOCKS: the parser refuses it. */
static void
test_source_beyond_end (void)
{
  struct xs_stream_info info;
  struct parsed p;
  struct buffer b;
  size_t r2;
  uint64_t source = htole64 (NBLOCKS);

  make_info (&info, true, "", 0, 4);
  write_stream (&info, 0, 4, &b);
  r2 = header_length (b.data) + 40 + records[0].stored_len + 8;
  memcpy (b.data + r2 + 40, &source, 8);
  put_check (b.data + r2 + 48, b.data + r2, 48);
  put_check (b.data + b.len - 8, b.data, b.len - 8);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok && !p.resumable,
      "a reference to a block beyond the volume is refused, not resumable");
  error_contains ("stream record 2 (block 2) refers to block 16, beyond the "
                  "volume's end", "  with a message saying so");
  xs_stream_info_clear (&info);
  free (b.data);
}

static void
test_writer_refusals (const struct chunks *c)
{
  struct xs_stream_info info;
  struct xs_stream_writer *w;
  struct xs_stream_record bad;

  make_info (&info, true, "", 0, 4);
  w = xs_stream_writer_new (NULL, NULL);
  ok (xs_stream_write_record (w, &records[0]) == -1,
      "the writer wants the header first");
  error_contains ("out of sequence", "  and says so");
  xs_stream_write_header (w, &info);
  xs_stream_write_record (w, &records[1]);
  ok (xs_stream_write_record (w, &records[0]) == -1,
      "the writer refuses a record out of order");
  error_contains ("out of order", "  and says so");
  bad = (struct xs_stream_record) { XS_STREAM_ZERO, 12, c->id[0], NULL, 0, 0 };
  ok (xs_stream_write_record (w, &bad) == -1,
      "the writer refuses a zero record with an id");
  tap_take_error ();
  bad = (struct xs_stream_record) { XS_STREAM_REF, NBLOCKS, c->id[0], NULL,
                                    0, 0 };
  ok (xs_stream_write_record (w, &bad) == -1,
      "the writer refuses a block beyond the volume");
  tap_take_error ();
  bad = (struct xs_stream_record) { XS_STREAM_REF, 12, c->id[0], NULL, 0,
                                    NBLOCKS };
  ok (xs_stream_write_record (w, &bad) == -1,
      "the writer refuses a reference to a block beyond the volume");
  error_contains ("refers to block 16, beyond", "  and says so");
  ok (xs_stream_write_trailer (w) == -1,
      "the writer refuses a trailer before the announced records");
  error_contains ("announced 4", "  and says so");
  xs_stream_writer_free (w);
  xs_stream_info_clear (&info);
}

static void
test_resumed (void)
{
  struct xs_stream_info info, probe;
  struct parsed p;
  struct buffer b;
  char token[XS_STREAM_TOKEN_MAX], id[XS_STREAM_ID_LEN + 1], mac[33];
  uint64_t next;

  make_info (&probe, true, "", 0, 4);
  snprintf (token, sizeof token, "xsr1-%s-%016x-%s", probe.stream_id, 5,
            "0123456789abcdef0123456789abcdef");
  make_info (&info, true, token, 5, 2);
  write_stream (&info, 2, 2, &b);
  parse (b.data, b.len, 0, &p);
  ok (p.ok, "a resumed stream from block 5 parses");
  is_int (p.info.first_block, 5, "  it starts at block 5");
  is_int (p.records, 2, "  with the last two records");

  ok (xs_stream_token_parse (token, id, &next, mac) == 0
      && next == 5 && strcmp (id, probe.stream_id) == 0,
      "a token gives its stream id and block");
  token[10] = 'X';
  ok (xs_stream_token_parse (token, id, &next, mac) == -1,
      "a token with a non-hex digit is refused");
  error_contains ("is not a resume token", "  as not a token");
  ok (xs_stream_token_parse ("xsr1-", id, &next, mac) == -1,
      "a short token is refused");
  tap_take_error ();
  xs_stream_info_clear (&info);
  free (b.data);

  /* A token for block 5 in a stream that says it starts at 6. */
  token[10] = probe.stream_id[5];
  make_info (&info, true, token, 6, 1);
  write_stream (&info, 3, 1, &b);
  parse (b.data, b.len, 0, &p);
  ok (!p.ok, "a header whose token and first block disagree is refused");
  error_contains ("does not match the stream", "  and said so");
  xs_stream_info_clear (&info);
  xs_stream_info_clear (&probe);
  free (b.data);
}

static void
test_stream_id (void)
{
  struct xs_stream_info a, b;

  make_info (&a, true, "", 0, 4);
  make_info (&b, true, "", 0, 4);
  is_str (a.stream_id, b.stream_id,
          "the stream id is the same for the same snapshot and base");
  xs_stream_info_clear (&b);
  make_info (&b, false, "", 0, 4);
  ok (strcmp (a.stream_id, b.stream_id) != 0,
      "  and differs for a full stream of the same snapshot");
  xs_stream_info_clear (&a);
  xs_stream_info_clear (&b);
}

int
main (void)
{
  struct chunks c;

  make_chunks (&c);
  make_records (&c);
  test_round_trip ();
  test_truncations ();
  test_bit_flips ();
  test_version_and_rules ();
  test_old_versions ();
  test_source_beyond_end ();
  test_writer_refusals (&c);
  test_resumed ();
  test_stream_id ();
  free_chunks (&c);
  return done_testing ();
}
