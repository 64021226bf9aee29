/* xsnap: tests for lib/ops/recvstate.c, the saved state of interrupted
 * receives and resume tokens.
 *
 * A state saves the stream's header and batches of entries and reads
 * them back; a torn last batch is ignored and then overwritten; a second
 * receive of the same stream is locked out; tokens verify only unchanged
 * and only in the scope that made them; listing and gc's view of the
 * chunks see what was saved; removing forgets it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/recvstate.h"
#include "catalog/store.h"
#include "tap.h"

static void
make_info (struct xs_stream_info *info)
{
  memset (info, 0, sizeof *info);
  info->size = 64 * 4096;
  info->block_size = 4096;
  info->nblocks = 64;
  info->records = 10;
  info->created_ns = 1700000000123456789LL;
  memset (info->root.bytes, 0x42, 16);
  if (xs_stream_info_set_strings (info, "alice", "east",
                                  "vol-00000000000000a1", "data",
                                  "snap-00000000000000aa", "nightly", "",
                                  "") == -1)
    abort ();
}

struct collected {
  uint64_t blocks[16];
  int n;
};

static int
collect (const struct xs_recvstate_entry *e, void *opaque)
{
  struct collected *c = opaque;

  if (c->n < 16)
    c->blocks[c->n] = e->block;
  c->n++;
  return 0;
}

static int
count_summary (const struct xs_recvstate_summary *s, void *opaque)
{
  struct xs_recvstate_summary *last = opaque;

  *last = *s;
  last->info = NULL;
  last->stored_bytes++;         /* doubles as a call count */
  return 0;
}

static int
count_chunk (const struct xs_hash128 *id, void *opaque)
{
  (*(int *) opaque)++;
  return 0;
}

static struct xs_recvstate_entry
entry (uint64_t block, uint8_t fill)
{
  struct xs_recvstate_entry e = { .block = block };

  memset (e.id.bytes, fill, sizeof e.id.bytes);
  return e;
}

static void
test_state (struct xs_store *store, const struct xs_scope *scope)
{
  struct xs_stream_info info, back;
  struct xs_recvstate *st, *second;
  struct xs_recvstate_entry batch1[] = { entry (1, 1), entry (3, 0),
                                         entry (4, 2) };
  struct xs_recvstate_entry batch2[] = { entry (10, 3) };
  struct xs_recvstate_summary summary = { 0 };
  struct collected c = { { 0 }, 0 };
  uint64_t next = 0, stored = 0;
  char *path;
  int fd, chunks = 0;

  make_info (&info);
  st = xs_recvstate_open (store, scope, info.stream_id);
  ok (st != NULL, "open a new state");
  is_int (xs_recvstate_load (st, &back, collect, &c, &next, &stored), 1,
          "a new state is empty");
  second = xs_recvstate_open (store, scope, info.stream_id);
  ok (second == NULL, "a second receive of the same stream is locked out");
  error_contains ("already running", "  and told why");

  ok (xs_recvstate_start (st, &info) == 0
      && xs_recvstate_append (st, batch1, 3, 5, 1000) == 0
      && xs_recvstate_append (st, batch2, 1, 11, 3000) == 0,
      "start and append two batches");
  ok (xs_recvstate_load (st, &back, collect, &c, &next, &stored) == 0,
      "load them");
  ok (c.n == 4 && c.blocks[0] == 1 && c.blocks[2] == 4 && c.blocks[3] == 10,
      "  the four entries come back in order");
  is_int (next, 11, "  next block 11");
  is_int (stored, 3000, "  3000 bytes stored");
  is_str (back.stream_id, info.stream_id, "  the header's stream id");
  xs_stream_info_clear (&back);

  /* A crash in the middle of a batch: garbage after the good ones. */
  if (asprintf (&path, "%s/regions/%s/receive/%s/%s", xs_store_path (store),
                scope->region, scope->account, info.stream_id) == -1)
    abort ();
  fd = open (path, O_WRONLY | O_APPEND);
  ok (fd >= 0 && write (fd, "XSRB\1\0\0\0torn", 12) == 12,
      "append a torn batch");
  close (fd);
  c.n = 0;
  ok (xs_recvstate_load (st, &back, collect, &c, &next, &stored) == 0
      && c.n == 4 && next == 11, "a torn batch is ignored");
  xs_stream_info_clear (&back);
  ok (xs_recvstate_append (st, batch2, 0, 12, 3000) == 0,
      "append after the torn batch");
  c.n = 0;
  ok (xs_recvstate_load (st, &back, collect, &c, &next, &stored) == 0
      && c.n == 4 && next == 12, "  it replaced the torn one");
  xs_stream_info_clear (&back);

  ok (xs_recvstate_list (store, scope, count_summary, &summary) == 0
      && summary.stored_bytes == 3001 && summary.next_block == 12
      && summary.blocks_received == 4, "the state is listed once");
  ok (xs_recvstate_chunks (store, scope->region, count_chunk, &chunks) == 0
      && chunks == 3, "gc's view: the three chunks of the state");

  ok (xs_recvstate_remove (st) == 0, "remove the state");
  xs_recvstate_close (st);
  ok (access (path, F_OK) == -1, "  its file is gone");
  summary.stored_bytes = 0;
  ok (xs_recvstate_list (store, scope, count_summary, &summary) == 0
      && summary.stored_bytes == 0, "  and no longer listed");
  free (path);
  xs_stream_info_clear (&info);
}

static void
test_tokens (struct xs_store *store, const struct xs_scope *scope)
{
  struct xs_scope other = { scope->account, "elsewhere" };
  char token[XS_STREAM_TOKEN_MAX], again[XS_STREAM_TOKEN_MAX];
  const char *id = "0123456789abcdef0123456789abcdef";

  ok (xs_recvstate_make_token (store, scope, id, 77, token) == 0,
      "make a token");
  ok (strncmp (token, "xsr1-0123456789abcdef0123456789abcdef-000000000000004d-",
               55) == 0 && strlen (token) == 87,
      "it names the stream and block 77");
  ok (xs_recvstate_make_token (store, scope, id, 77, again) == 0
      && strcmp (token, again) == 0, "the same token again (one store key)");
  ok (xs_recvstate_check_token (store, scope, token) == 0, "it verifies");
  token[60] = token[60] == '0' ? '1' : '0';
  ok (xs_recvstate_check_token (store, scope, token) == -1,
      "one digit of its MAC changed: refused");
  error_contains ("does not verify", "  as not verifying");
  token[60] = again[60];
  token[53] = '8';              /* block 0x48 instead of 0x4d */
  ok (xs_recvstate_check_token (store, scope, token) == -1,
      "its block changed: refused");
  tap_take_error ();
  ok (xs_recvstate_check_token (store, &other, again) == -1,
      "a token of another region is refused");
  tap_take_error ();
}

int
main (void)
{
  char *dir = tap_tmpdir (), *path;
  struct xs_store *store;
  struct xs_scope scope;

  if (asprintf (&path, "%s/store", dir) == -1
      || xs_store_init (path, NULL, NULL) == -1
      || (store = xs_store_open (path)) == NULL
      || xs_store_scope (store, NULL, NULL, &scope) == -1)
    abort ();
  test_state (store, &scope);
  test_tokens (store, &scope);
  xs_scope_clear (&scope);
  xs_store_close (store);
  tap_rmtree (dir);
  free (path);
  free (dir);
  return done_testing ();
}
