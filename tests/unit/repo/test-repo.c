/* xsnap: tests for lib/repo/repo.c.
 *
 * Chunks and manifests round trip, accounts are separate namespaces, a
 * chunk corrupted on disk is refused with a message naming it, and
 * fetching into a reused buffer (raw chunks straight into place) gives
 * the same data and the same reasons.  Listed keys, which a server may
 * make up, are parsed without trusting their prefix or length, and the
 * owner mark round trips and refuses what is not one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/backend.h"
#include "repo/chunk.h"
#include "base/hash.h"
#include "repo/repo.h"
#include "tap.h"

#define BLOCK 65536

struct id_set {
  struct xs_hash128 ids[16];
  int count;
};

static int
collect_id (const struct xs_hash128 *id, void *opaque)
{
  struct id_set *set = opaque;

  if (set->count < 16)
    set->ids[set->count] = *id;
  set->count++;
  return 0;
}

static bool
id_in_set (const struct id_set *set, const struct xs_hash128 *id)
{
  int i;

  for (i = 0; i < set->count && i < 16; i++)
    if (xs_hash128_equal (&set->ids[i], id))
      return true;
  return false;
}

struct name_set {
  char names[16][64];
  int count;
};

static int
collect_name (const char *name, void *opaque)
{
  struct name_set *set = opaque;

  if (set->count < 16)
    snprintf (set->names[set->count], sizeof set->names[0], "%s", name);
  set->count++;
  return 0;
}

static bool
name_in_set (const struct name_set *set, const char *name)
{
  int i;

  for (i = 0; i < set->count && i < 16; i++)
    if (strcmp (set->names[i], name) == 0)
      return true;
  return false;
}

static void
encode_block (struct xs_chunk_codec *codec, char fill, struct xs_hash128 *id,
              void **stored, size_t *len)
{
  char plain[BLOCK];
  size_t i;

  for (i = 0; i < BLOCK; i++)
    plain[i] = (char) (fill + (i % 13));
  if (xs_chunk_encode (codec, plain, BLOCK, id, stored, len) == -1)
    abort ();
}

static void
test_chunks (struct xs_repo *a, struct xs_repo *b,
             struct xs_chunk_codec *codec)
{
  struct xs_hash128 id1, id2, missing;
  void *stored1, *stored2, *raw;
  size_t len1, len2, raw_len;
  char plain[BLOCK], want[BLOCK], hex[XS_HASH128_HEX_LEN + 1];
  struct id_set set = { .count = 0 };
  size_t i;

  encode_block (codec, 'a', &id1, &stored1, &len1);
  encode_block (codec, 'b', &id2, &stored2, &len2);
  for (i = 0; i < BLOCK; i++)
    want[i] = (char) ('a' + (i % 13));

  is_int (xs_repo_put_chunk (a, &id1, stored1, len1, false), 1,
          "put a new chunk");
  is_int (xs_repo_put_chunk (a, &id1, stored1, len1, true), 0,
          "put it again: present");
  is_int (xs_repo_put_chunk (a, &id2, stored2, len2, true), 1,
          "put a second chunk");
  is_int (xs_repo_sync (a), 0, "sync");
  is_int (xs_repo_has_chunk (a, &id1), 1, "account a has the chunk");
  is_int (xs_repo_has_chunk (b, &id1), 0, "account b does not see a's chunk");
  is_int (xs_repo_read_chunk (a, codec, &id1, plain, sizeof plain), BLOCK,
          "read the chunk back");
  ok (memcmp (plain, want, BLOCK) == 0, "with the right content");

  is_int (xs_repo_read_chunk (b, codec, &id1, plain, sizeof plain), -1,
          "reading a's chunk through b fails");
  xs_hash128_to_hex (&id1, hex);
  error_contains (hex, "message names the chunk id");

  is_int (xs_repo_get_chunk_raw (a, &id1, &raw, &raw_len), 0, "get raw");
  ok (raw_len == len1 && memcmp (raw, stored1, len1) == 0,
      "raw is the stored form");
  is_int (xs_repo_put_chunk (b, &id1, raw, raw_len, true), 1,
          "copy the raw chunk to b");
  free (raw);
  is_int (xs_repo_read_chunk (b, codec, &id1, plain, sizeof plain), BLOCK,
          "b reads its copy");
  xs_hash128 ("nothing", 7, &missing);
  is_int (xs_repo_get_chunk_raw (a, &missing, &raw, &raw_len), 1,
          "get raw of a missing chunk returns 1");
  is_int (xs_repo_read_chunk (a, codec, &missing, plain, sizeof plain), -1,
          "read of a missing chunk fails");
  error_contains ("missing from the repository of account 'alice'",
                  "message says missing and names the account");

  is_int (xs_repo_list_chunks (a, collect_id, &set), 0, "list a's chunks");
  is_int (set.count, 2, "a has 2 chunks");
  ok (id_in_set (&set, &id1) && id_in_set (&set, &id2),
      "the listing has both ids");
  set.count = 0;
  xs_repo_list_chunks (b, collect_id, &set);
  is_int (set.count, 1, "b has 1 chunk");

  is_int (xs_repo_delete_chunk (a, &id2), 0, "delete a chunk");
  is_int (xs_repo_has_chunk (a, &id2), 0, "it is gone");
  set.count = 0;
  xs_repo_list_chunks (a, collect_id, &set);
  is_int (set.count, 1, "a lists 1 chunk now");
  free (stored1);
  free (stored2);
}

/* Flip one bit of a stored chunk file, as a failing disk would. */
static void
test_corruption (struct xs_repo *a, struct xs_chunk_codec *codec,
                 const char *root)
{
  struct xs_hash128 id;
  void *stored;
  size_t len;
  char hex[XS_HASH128_HEX_LEN + 1], *path, plain[BLOCK], want[128];
  unsigned char byte;
  int fd;

  encode_block (codec, 'z', &id, &stored, &len);
  xs_repo_put_chunk (a, &id, stored, len, true);
  xs_hash128_to_hex (&id, hex);
  if (asprintf (&path, "%s/alice/chunks/%.2s/%s", root, hex, hex) == -1)
    abort ();
  fd = open (path, O_RDWR | O_CLOEXEC);
  ok (fd >= 0, "the chunk file is at <account>/chunks/xx/<hex>");
  if (fd >= 0) {
    off_t where = (off_t) len - 3;

    if (pread (fd, &byte, 1, where) != 1)
      abort ();
    byte ^= 0x10;
    if (pwrite (fd, &byte, 1, where) != 1)
      abort ();
    close (fd);
  }
  is_int (xs_repo_read_chunk (a, codec, &id, plain, sizeof plain), -1,
          "a chunk with a flipped bit is refused");
  snprintf (want, sizeof want, "chunk %s", hex);
  error_contains (want, "the message names the chunk id");
  is_int (xs_repo_read_chunk (a, codec, &id, plain, sizeof plain), -1,
          "... every time");
  error_contains ("checksum mismatch", "the message says what is wrong");
  xs_repo_delete_chunk (a, &id);
  free (path);
  free (stored);
}

/* Flip one bit at offset of chunk id's file. */
static void
flip_chunk_bit (const char *root, const struct xs_hash128 *id, off_t offset)
{
  char hex[XS_HASH128_HEX_LEN + 1], *path;
  unsigned char byte;
  int fd;

  xs_hash128_to_hex (id, hex);
  if (asprintf (&path, "%s/alice/chunks/%.2s/%s", root, hex, hex) == -1)
    abort ();
  fd = open (path, O_RDWR | O_CLOEXEC);
  if (fd == -1 || pread (fd, &byte, 1, offset) != 1)
    abort ();
  byte ^= 0x01;
  if (pwrite (fd, &byte, 1, offset) != 1)
    abort ();
  close (fd);
  free (path);
}

/* xs_repo_fetch_chunk: compressed chunks through the scratch buffer, raw
 * ones straight into place, and the reasons for bad ones.
 */
static void
test_fetch (struct xs_repo *a, struct xs_chunk_codec *codec,
            const char *root)
{
  struct xs_repo_scratch scratch = { .data = NULL };
  struct xs_hash128 zid, rid, missing;
  char reason[XS_CHUNK_REASON_MAX];
  uint8_t *noise = malloc (BLOCK), *plain = malloc (BLOCK);
  void *zstored, *rstored;
  size_t zlen, rlen, i;
  uint64_t x = 0x9e3779b97f4a7c15u;

  if (noise == NULL || plain == NULL)
    abort ();
  for (i = 0; i < BLOCK; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    noise[i] = (uint8_t) x;
  }
  encode_block (codec, 'f', &zid, &zstored, &zlen);
  if (xs_chunk_encode (codec, noise, BLOCK, &rid, &rstored, &rlen) == -1)
    abort ();
  is_int (rlen, XS_CHUNK_HEADER_SIZE + BLOCK, "noise is stored raw");
  xs_repo_put_chunk (a, &zid, zstored, zlen, false);
  xs_repo_put_chunk (a, &rid, rstored, rlen, false);

  is_int (xs_repo_fetch_chunk (a, codec, &rid, plain, BLOCK, &scratch,
                               reason), 0, "fetch a raw chunk");
  ok (memcmp (plain, noise, BLOCK) == 0, "... right");
  is_int (scratch.cap, 0, "... read straight into place");
  is_int (xs_repo_fetch_chunk (a, codec, &zid, plain, BLOCK, &scratch,
                               reason), 0, "fetch a compressed chunk");
  ok (plain[0] == 'f' && plain[13] == 'f' && plain[14] == 'f' + 1,
      "... right");
  ok (scratch.cap >= zlen, "... through the scratch buffer");

  missing = zid;
  missing.bytes[0] ^= 1;
  errno = 0;
  is_int (xs_repo_fetch_chunk (a, codec, &missing, plain, BLOCK, &scratch,
                               reason), 1, "a missing chunk is bad");
  is_int (errno, EIO, "... with EIO");
  is_str (reason, "missing", "... saying so");
  is_int (xs_repo_fetch_chunk (a, codec, &zid, plain, BLOCK / 2, &scratch,
                               reason), 1, "a block of another length is bad");
  flip_chunk_bit (root, &rid, XS_CHUNK_HEADER_SIZE + 1000);
  errno = 0;
  is_int (xs_repo_fetch_chunk (a, codec, &rid, plain, BLOCK, &scratch,
                               reason), 1, "a raw chunk with a flipped bit "
          "is bad");
  is_int (errno, EIO, "... with EIO");
  is_str (reason, "payload checksum mismatch", "... saying why");
  flip_chunk_bit (root, &zid, (off_t) zlen - 3);
  is_int (xs_repo_fetch_chunk (a, codec, &zid, plain, BLOCK, &scratch,
                               reason), 1, "so is a compressed one");
  is_str (reason, "payload checksum mismatch", "... saying why");

  xs_repo_delete_chunk (a, &zid);
  xs_repo_delete_chunk (a, &rid);
  xs_repo_scratch_release (&scratch);
  free (zstored);
  free (rstored);
  free (noise);
  free (plain);
}

static void
test_manifests (struct xs_repo *a, struct xs_repo *b)
{
  void *data;
  size_t len;
  struct name_set names = { .count = 0 };

  is_int (xs_repo_put_manifest (a, "snap-1", "manifest one", 12), 1,
          "put a manifest");
  is_int (xs_repo_put_manifest (a, "snap-1", "manifest one", 12), 0,
          "putting the same bytes again is fine");
  is_int (xs_repo_put_manifest (a, "snap-1", "manifest two", 12), -1,
          "a different manifest with the same id is refused");
  error_contains ("already exists with different content",
                  "message says why");
  is_int (xs_repo_put_manifest (a, "snap-2", "manifest 2", 10), 1,
          "put a second manifest");
  is_int (xs_repo_put_manifest (b, "snap-b", "manifest b", 10), 1,
          "put a manifest in account b");

  is_int (xs_repo_get_manifest (a, "snap-1", &data, &len), 0,
          "get a manifest");
  ok (len == 12 && memcmp (data, "manifest one", 12) == 0,
      "the first content was kept");
  free (data);
  is_int (xs_repo_get_manifest (b, "snap-1", &data, &len), 1,
          "account b does not see a's manifest");
  is_int (xs_repo_get_manifest (a, "../b/manifests/snap-b", &data, &len), -1,
          "a snapshot id cannot escape the namespace");
  error_contains ("invalid snapshot id", "message says invalid id");

  is_int (xs_repo_list_manifests (a, collect_name, &names), 0,
          "list a's manifests");
  is_int (names.count, 2, "a has 2 manifests");
  ok (name_in_set (&names, "snap-1") && name_in_set (&names, "snap-2"),
      "both are listed");
  names.count = 0;
  xs_repo_list_manifests (b, collect_name, &names);
  ok (names.count == 1 && name_in_set (&names, "snap-b"),
      "b lists only its own");

  is_int (xs_repo_delete_manifest (a, "snap-1"), 0, "delete a manifest");
  is_int (xs_repo_get_manifest (a, "snap-1", &data, &len), 1, "it is gone");
  names.count = 0;
  xs_repo_list_manifests (a, collect_name, &names);
  is_int (names.count, 1, "a lists 1 manifest now");
}

static void
test_names (struct xs_backend *backend)
{
  ok (xs_repo_open (backend, "") == NULL, "empty account refused");
  error_contains ("invalid account", "message says invalid account");
  ok (xs_repo_open (backend, "a/b") == NULL, "account with '/' refused");
  error_contains ("only letters", "message says what is allowed");
  ok (xs_repo_open (backend, "..") == NULL, "account '..' refused");
  error_contains ("must not start with '.'", "message says why");
}

/* Keys as a hostile or broken server might list them. */
static void
test_listed_keys (void)
{
  static const char *const not_ours[] = {
    "", "x", "pfx/x", "alice", "alice/", "alice/chunks", "alice/chunks/",
    "alicex/chunks/00/00000000000000000000000000000000",
    "alice/chunksx/00/00000000000000000000000000000000",
    "bob/chunks/00/00000000000000000000000000000000",
    "alice/chunks/01/00000000000000000000000000000000",
    "alice/chunks/00/0000000000000000000000000000000",
    "alice/chunks/00/000000000000000000000000000000000",
    "alice/chunks/00/0000000000000000000000000000000A",
    "alice/chunks/00x00000000000000000000000000000000",
    "alice/manifests", "alice/manifests/", "alice/manifests/a/b",
    "alice/manifests/.hidden", "alice/manifests/a b",
  };
  struct xs_hash128 id;
  const char *snapshot_id = NULL;
  char long_key[400];
  size_t i;

  for (i = 0; i < sizeof not_ours / sizeof not_ours[0]; i++)
    ok (xs_repo_parse_key ("alice", not_ours[i], &id, &snapshot_id)
        == XS_REPO_KEY_OTHER, "listed key '%s' is not a chunk or manifest",
        not_ours[i]);
  ok (xs_repo_parse_key ("alice",
                         "alice/chunks/ab/ab0000000000000000000000000000ff",
                         &id, &snapshot_id) == XS_REPO_KEY_CHUNK,
      "a chunk key is a chunk");
  ok (id.bytes[0] == 0xab && id.bytes[15] == 0xff, "  with its id");
  ok (xs_repo_parse_key ("alice", "alice/manifests/snap-0123", &id,
                         &snapshot_id) == XS_REPO_KEY_MANIFEST
      && strcmp (snapshot_id, "snap-0123") == 0,
      "a manifest key is a manifest, with its snapshot id");
  snprintf (long_key, sizeof long_key, "alice/manifests/%0*d", 129, 0);
  ok (xs_repo_parse_key ("alice", long_key, &id, &snapshot_id)
      == XS_REPO_KEY_OTHER, "a snapshot id of 129 characters is not one");
}

static void
test_owner_mark (struct xs_backend *backend)
{
  struct xs_repo_owner mine = {
    .store_id = "0123456789abcdef0123456789abcdef", .region = "local",
    .path = "/srv/store \"quoted\"",
  }, got;
  static const char *const bad[] = {
    "", "{", "[]", "{}", "{\"xsnap-repository-owner\": 2, \"store\": "
    "\"0123456789abcdef0123456789abcdef\", \"region\": \"r\", \"path\": \"/\"}",
    "{\"xsnap-repository-owner\": 1, \"store\": \"0123\", \"region\": "
    "\"r\", \"path\": \"/\"}",
    "{\"xsnap-repository-owner\": 1, \"store\": "
    "\"0123456789abcdef0123456789abcdef\", \"region\": \"a/b\", "
    "\"path\": \"/\"}",
    "{\"xsnap-repository-owner\": 1, \"store\": "
    "\"0123456789abcdef0123456789abcdef\", \"region\": \"r\", "
    "\"path\": 7}",
  };
  size_t i;

  is_int (xs_repo_read_owner (backend, &got), 1, "no owner mark at first");
  is_int (xs_repo_holds_data (backend), 1, "the backend holds data");
  is_int (xs_repo_write_owner (backend, &mine, false), 1, "mark written");
  is_int (xs_repo_write_owner (backend, &mine, false), 0,
          "a second claim finds the mark");
  is_int (xs_repo_read_owner (backend, &got), 0, "mark read back");
  is_str (got.store_id, mine.store_id, "  store id");
  is_str (got.region, mine.region, "  region");
  is_str (got.path, mine.path, "  path");
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ok (xs_repo_owner_parse (bad[i], strlen (bad[i]), &got) == -1,
        "not an owner mark: %s", bad[i]);
    error_contains ("repository owner mark", "  refused with a reason");
  }
  is_int (xs_repo_remove_owner (backend), 0, "mark removed");
  is_int (xs_repo_read_owner (backend, &got), 1, "  and gone");
}

int
main (void)
{
  char *dir = tap_tmpdir (), *url;
  struct xs_backend *backend;
  struct xs_repo *a, *b;
  struct xs_chunk_codec *codec = xs_chunk_codec_new (1);

  if (asprintf (&url, "file://%s", dir) == -1)
    abort ();
  backend = xs_backend_open (url);
  ok (backend != NULL && codec != NULL, "backend and codec");
  if (backend == NULL || codec == NULL)
    return done_testing ();
  a = xs_repo_open (backend, "alice");
  b = xs_repo_open (backend, "bob");
  ok (a != NULL && b != NULL, "open two accounts' repositories");
  is_str (xs_repo_account (a), "alice", "account name");
  test_chunks (a, b, codec);
  test_corruption (a, codec, dir);
  test_fetch (a, codec, dir);
  test_manifests (a, b);
  test_names (backend);
  test_listed_keys ();
  test_owner_mark (backend);
  xs_repo_close (a);
  xs_repo_close (b);
  xs_backend_close (backend);
  xs_chunk_codec_free (codec);
  free (url);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
