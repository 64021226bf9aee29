/* xsnap: sending a snapshot as a replication stream (see send.h).
 *
 * The plan is the list of blocks whose entries differ between the base
 * (an all-zero manifest for a full stream) and the snapshot, walked with
 * xs_manifest_diff; it is walked twice, once to count the records for
 * the header and once to send them, a batch of records at a time, by
 * threads that read and verify their chunks.  What a send holds does not
 * grow with the volume: one batch, and a table of fixed size that finds
 * a chunk an earlier block of the stream carries (base/reftable.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "repo/chunk.h"
#include "access/access.h"
#include "base/error.h"
#include "base/reftable.h"
#include "repo/manifest.h"
#include "repo/repo.h"
#include "ops/send.h"
#include "catalog/snapshot.h"

#define OUTPUT_BUFFER (1024 * 1024)

/* ----- Planning ----- */

struct xs_send {
  struct xs_store *store;
  struct xs_repo *repo;
  int gc_lock_fd;
  struct xs_manifest *target;
  struct xs_manifest *base;     /* all zero for a full stream */
  char base_id[XS_ID_MAX];       /* "" for a full stream */
  const char *mode;             /* "", "raw" or "reencrypt" */
  bool reencrypt;
  struct xs_stream_info info;
};

void
xs_send_free (struct xs_send *s)
{
  if (s == NULL)
    return;
  xs_manifest_free (s->target);
  xs_manifest_free (s->base);
  xs_repo_close (s->repo);
  if (s->gc_lock_fd >= 0)
    close (s->gc_lock_fd);
  xs_stream_info_clear (&s->info);
  free (s);
}

const struct xs_stream_info *
xs_send_info (const struct xs_send *s)
{
  return &s->info;
}

/* Find an available snapshot by SPEC, that MODE can send. */
static int
find_available (struct xs_store *store, const struct xs_scope *scope,
                const char *spec, const char *mode, struct xs_snapshot *snap)
{
  if (xs_access_find_snapshot (store, scope, spec, "xsnap:ReadSnapshot",
                               false, snap) != 0)
    return -1;
  if (strcmp (snap->status, "available") != 0) {
    xs_error ("cannot send snapshot %s@%s: it is still %s",
              snap->volume_name, snap->name, snap->status);
    xs_snapshot_clear (snap);
    return -1;
  }
  /* An encrypted snapshot leaves only as ciphertext, or decrypted for a
   * receiver that encrypts it again: never silently as plaintext.
   */
  if (snap->key_id[0] != '\0' && mode[0] == '\0') {
    xs_error ("cannot send snapshot %s@%s: it is encrypted; send it --raw "
              "(its ciphertext: the receiver needs its key to read it) or "
              "--reencrypt (the receiver encrypts it under a key of its "
              "own)", snap->volume_name, snap->name);
    xs_snapshot_clear (snap);
    return -1;
  }
  if (snap->key_id[0] == '\0' && strcmp (mode, "raw") == 0) {
    xs_error ("cannot send snapshot %s@%s --raw: it is not encrypted",
              snap->volume_name, snap->name);
    xs_snapshot_clear (snap);
    return -1;
  }
  return 0;
}

static int
load_base (struct xs_send *s, const struct xs_scope *scope,
           const struct xs_snapshot *snap, const char *spec)
{
  struct xs_snapshot base;
  int r = -1;

  if (find_available (s->store, scope, spec, s->mode, &base) == -1)
    return -1;
  if (strcmp (base.id, snap->id) == 0)
    xs_error ("cannot send %s@%s incrementally from itself",
              snap->volume_name, snap->name);
  else if (base.size != snap->size || base.block_size != snap->block_size)
    xs_error ("cannot send %s@%s from %s@%s: different geometry (%" PRIu64
              " bytes in %" PRIu32 "-byte blocks, %" PRIu64 " in %" PRIu32
              ")", snap->volume_name, snap->name, base.volume_name,
              base.name, snap->size, snap->block_size, base.size,
              base.block_size);
  else {
    s->base = xs_snapshot_load_manifest (s->store, base.account, base.region,
                                         base.id);
    snprintf (s->base_id, sizeof s->base_id, "%s", base.id);
    if (s->base && strcmp (s->mode, "raw") == 0
        && strcmp (s->base->data_key, s->target->data_key) != 0)
      xs_error ("cannot send %s@%s --raw from %s@%s: they are under "
                "different data keys", snap->volume_name, snap->name,
                base.volume_name, base.name);
    else if (s->base)
      r = 0;
  }
  xs_snapshot_clear (&base);
  return r;
}

struct count_pass {
  uint64_t first_block;
  uint64_t from_first;          /* records from first_block */
};

static int
count_run (uint64_t first, uint64_t count, void *opaque)
{
  struct count_pass *c = opaque;
  uint64_t end = first + count;

  if (end > c->first_block)
    c->from_first += end - (first > c->first_block ? first : c->first_block);
  return 0;
}

/* Count the records; fill the numbers of info. */
static int
count_plan (struct xs_send *s, uint64_t first_block)
{
  struct count_pass c = { .first_block = first_block };

  if (xs_manifest_diff (s->base, s->target, count_run, &c) != 0)
    return -1;
  s->info.records = c.from_first;
  s->info.first_block = first_block;
  return 0;
}

/* The first block to send: 0, or the one a resume token names. */
static int
resume_point (const struct xs_send *s, const char *token,
              uint64_t *first_block)
{
  char stream_id[XS_STREAM_ID_LEN + 1], mac[33];

  *first_block = 0;
  if (token == NULL)
    return 0;
  if (xs_stream_token_parse (token, stream_id, first_block, mac) == -1)
    return -1;
  if (strcmp (stream_id, s->info.stream_id) != 0) {
    xs_error ("the resume token is for another stream (%s; this one is %s): "
              "check the snapshot and --from", stream_id, s->info.stream_id);
    return -1;
  }
  if (*first_block > s->target->nblocks) {
    xs_error ("the resume token names block %" PRIu64 ", beyond the "
              "snapshot's %" PRIu64 " blocks", *first_block,
              s->target->nblocks);
    return -1;
  }
  return 0;
}

/* The encryption of the stream (before its id is made). */
static int
describe_encryption (struct xs_send *s)
{
  unsigned char mac[XS_MANIFEST_MAC_LEN];
  const struct xs_manifest *m = s->target;
  int r;

  if (s->mode[0] == '\0')
    return 0;
  if (strcmp (s->mode, "reencrypt") == 0) {
    s->reencrypt = true;
    return xs_stream_info_set_encryption (&s->info, "reencrypt", NULL, NULL,
                                          NULL, NULL);
  }
  if (xs_manifest_compute_mac (m, m->dk, mac) == -1)
    return -1;
  r = xs_stream_info_set_encryption (&s->info, "raw", m->key_id,
                                     m->key_account, m->data_key, mac);
  OPENSSL_cleanse (mac, sizeof mac);
  return r;
}

static int
describe (struct xs_send *s, const struct xs_scope *scope,
          const struct xs_snapshot *snap, const char *base_id,
          const char *token)
{
  uint64_t first_block;

  s->info.created_ns = snap->created_ns;
  s->info.size = s->target->size;
  s->info.block_size = s->target->block_size;
  s->info.nblocks = s->target->nblocks;
  /* Tree roots, whatever form the manifests have here: what the
   * receiver builds is a tree.
   */
  xs_manifest_tree_root (s->target, &s->info.root);
  if (base_id[0])
    xs_manifest_tree_root (s->base, &s->info.base_root);
  if (describe_encryption (s) == -1)
    return -1;
  if (xs_stream_info_set_strings (&s->info, scope->account, scope->region,
                                  snap->volume_id, snap->volume_name,
                                  snap->id, snap->name, base_id,
                                  token ? token : "") == -1
      || resume_point (s, token, &first_block) == -1)
    return -1;
  return count_plan (s, first_block);
}

/* Manifests and the description of the stream. */
static int
plan (struct xs_send *s, const struct xs_scope *scope,
      const struct xs_snapshot *snap, const char *base_spec,
      const char *token)
{
  s->target = xs_snapshot_load_manifest (s->store, snap->account,
                                         snap->region, snap->id);
  if (s->target == NULL)
    return -1;
  if (base_spec) {
    if (load_base (s, scope, snap, base_spec) == -1)
      return -1;
  }
  else if ((s->base = xs_manifest_new (s->target->size,
                                       s->target->block_size)) == NULL)
    return -1;
  return describe (s, scope, snap, s->base_id, token);
}

struct xs_send *
xs_send_prepare (struct xs_store *store, const struct xs_scope *scope,
                 const char *snapshot, const char *base,
                 const char *resume_token, const char *mode)
{
  struct xs_send *s = calloc (1, sizeof *s);
  struct xs_snapshot snap;

  if (s == NULL) {
    xs_error ("cannot plan the stream: %m");
    return NULL;
  }
  s->store = store;
  s->mode = mode ? mode : "";
  if (s->mode[0] && strcmp (s->mode, "raw") != 0
      && strcmp (s->mode, "reencrypt") != 0) {
    xs_error ("cannot send: unknown encryption mode '%s'", s->mode);
    free (s);
    return NULL;
  }
  s->gc_lock_fd = xs_snapshot_gc_lock (store, scope->region, false);
  if (s->gc_lock_fd == -1
      || (s->repo = xs_store_repo (store, scope->account,
                                   scope->region)) == NULL
      || find_available (store, scope, snapshot, s->mode, &snap) == -1) {
    xs_send_free (s);
    return NULL;
  }
  if (plan (s, scope, &snap, base, resume_token) == -1) {
    xs_snapshot_clear (&snap);
    xs_send_free (s);
    return NULL;
  }
  xs_snapshot_clear (&snap);
  return s;
}

/* ----- Sending ----- */

/* Every chunk a stream carries is verified as it is read, as `xsnap
 * verify` does (decoded against its id, and under the snapshot's key
 * authenticated), so that a damaged chunk fails the send, naming it,
 * instead of making a stream every receiver refuses (a backup file that
 * is silently useless).  Decoding costs more than reading, so decoders
 * on threads of their own prepare the records up to AHEAD ahead of the
 * writer, which writes them in order.  What each record is (a chunk, a
 * reference to an earlier block of the stream with the same chunk, zero)
 * is decided first, in order, while the plan is walked, for a batch of
 * PLAN_BATCH records at most (40 bytes each), which the threads then
 * send before the walk goes on.  A re-encrypting stream's records are
 * its chunks decrypted, and no references.
 *
 * References are found in a table of fixed size: a chunk it forgot, or
 * one the base has elsewhere (data moved within the volume), is sent
 * again, which the receiver takes as it takes any chunk (it stores what
 * it lacks).  Finding every such chunk would need a set of every chunk
 * of the base and the stream, which grows with the volume.
 */
#define AHEAD 16
#define DECODERS 2
#define PLAN_BATCH 32768

struct send_pass {
  struct xs_send *s;
  struct xs_stream_writer *w;
  /* Chunk id -> the first block of the stream that uses it (before a
   * resume point too: the receiver has those blocks); NULL when the
   * stream has no references.
   */
  struct xs_reftable *sources;
  struct xs_send_stats stats;
  void (*progress) (uint64_t done, uint64_t total, void *opaque);
  void *progress_opaque;
};

/* A record to send: its block, kind, chunk (zero for a zero block) and
 * a reference's source block.
 */
struct planned {
  uint64_t block;
  uint64_t source;
  struct xs_hash128 id;
  enum xs_stream_kind kind;
};

/* A record ready to be written; STORED is its chunk, if any: in the
 * scratch of its slot, or malloc'd if OWNED.
 */
struct prepared {
  struct xs_stream_record rec;
  void *stored;
  bool owned;
};

struct pipeline {
  struct send_pass *pass;
  struct planned records[PLAN_BATCH];     /* the batch */
  size_t n;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  size_t next;                  /* the next record a decoder takes */
  size_t written;               /* records the writer has written */
  struct prepared slot[AHEAD];
  /* Record i's stored chunk is read into scratch[i % AHEAD], which the
   * record written AHEAD before it no longer uses: a send allocates its
   * buffers once, not a block-sized buffer per chunk.
   */
  struct xs_repo_scratch scratch[AHEAD];
  bool ready[AHEAD];
  bool failed;
};

static int run_batch (struct pipeline *pl);

/* Plan the record of BLOCK, whose entry in the snapshot is ID: whether
 * an earlier block of the stream carries its chunk (blocks before a
 * resume point count, though they are not sent again) decides between a
 * chunk and a reference.  A full batch is sent.
 */
static int
plan_block (struct pipeline *pl, uint64_t block, const struct xs_hash128 *id)
{
  struct xs_reftable *sources = pl->pass->sources;
  struct planned r = { .block = block, .id = *id, .kind = XS_STREAM_CHUNK };

  if (xs_hash128_is_zero (id))
    r.kind = XS_STREAM_ZERO;
  else if (sources && xs_reftable_find (sources, id, &r.source))
    r.kind = XS_STREAM_REF;
  else if (sources)
    xs_reftable_add (sources, id, block);
  if (block < pl->pass->s->info.first_block)
    return 0;
  pl->records[pl->n++] = r;
  return pl->n == PLAN_BATCH ? run_batch (pl) : 0;
}

/* Walking a run of the plan: the blocks before NEXT are planned. */
struct run_pass {
  struct pipeline *pl;
  uint64_t next;
};

/* Plan the zero blocks of the run up to END. */
static int
plan_zeros (struct run_pass *run, uint64_t end)
{
  static const struct xs_hash128 zero;

  for (; run->next < end; run->next++)
    if (plan_block (run->pl, run->next, &zero) == -1)
      return -1;
  return 0;
}

static int
plan_nonzero (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct run_pass *run = opaque;

  if (plan_zeros (run, block) == -1
      || plan_block (run->pl, block, id) == -1)
    return -1;
  run->next = block + 1;
  return 0;
}

/* Plan a run of blocks that differ from the base: the snapshot's
 * non-zero entries in it as they come, the blocks between them zero.
 */
static int
plan_run (uint64_t first, uint64_t count, void *opaque)
{
  struct run_pass run = { .pl = opaque, .next = first };

  if (xs_manifest_for_each_block (run.pl->pass->s->target, first, count,
                                  plan_nonzero, &run) != 0)
    return -1;
  return plan_zeros (&run, first + count);
}

/* The stored chunk of BLOCK, unverified, into SCRATCH. */
static int
read_chunk (struct xs_send *s, uint64_t block, const struct xs_hash128 *id,
            struct xs_repo_scratch *scratch, size_t *len)
{
  char hex[XS_HASH128_HEX_LEN + 1];
  int r = xs_repo_get_chunk_into (s->repo, id, scratch, len);

  if (r == 1) {
    xs_hash128_to_hex (id, hex);
    xs_error ("cannot send block %" PRIu64 " of snapshot %s: chunk %s is "
              "missing", block, s->info.snapshot_id, hex);
  }
  return r == 0 ? 0 : -1;
}

/* Check a stored chunk: an unencrypted one as it is stored (header, id,
 * length, payload checksum: xs_chunk_check_stored), an encrypted one
 * authenticated and decoded under the snapshot's key.
 */
static ssize_t
check_chunk (struct xs_chunk_codec *codec, void *stored, size_t len,
             const struct xs_hash128 *id, void *plain, size_t plain_cap,
             char reason[XS_CHUNK_REASON_MAX])
{
  if (len > XS_CHUNK_HEADER_SIZE
      && xs_chunk_header_version (stored) == XS_CHUNK_VERSION)
    return xs_chunk_check_stored (stored, len, id, reason);
  return xs_chunk_decode_quiet (codec, stored, len, id, plain, plain_cap,
                                reason);
}

/* Verify REC's stored chunk (*STORED, in a decoder's scratch) with CODEC
 * (under the snapshot's key, if any) and PLAIN (a block): checked against
 * its id, of the block's length.  A re-encrypting stream's chunk of an
 * encrypted snapshot is replaced by its plaintext form, an unencrypted
 * chunk (malloc'd: *OWNED), and its id by that chunk's (the unsealing
 * verifies it).
 */
static int
verify_chunk (struct xs_send *s, struct xs_chunk_codec *codec, void *plain,
              struct xs_stream_record *rec, void **stored, bool *owned)
{
  uint64_t want = s->target->size - rec->block * s->target->block_size;
  char hex[XS_HASH128_HEX_LEN + 1], reason[XS_CHUNK_REASON_MAX];
  void *plain_chunk = NULL;
  size_t plain_chunk_len;
  ssize_t len;

  if (want > s->target->block_size)
    want = s->target->block_size;
  xs_hash128_to_hex (&rec->id, hex);
  if (s->reencrypt && s->target->dk) {
    if (xs_chunk_unseal (codec, *stored, rec->stored_len, &rec->id, plain,
                         s->target->block_size, &rec->id, &plain_chunk,
                         &plain_chunk_len) == -1)
      return -1;
    *stored = plain_chunk;
    *owned = true;
    rec->stored_len = plain_chunk_len;
    return 0;
  }
  len = check_chunk (codec, *stored, rec->stored_len, &rec->id, plain,
                     s->target->block_size, reason);
  if (len >= 0 && (uint64_t) len != want)
    snprintf (reason, sizeof reason, "%zd bytes, the block has %" PRIu64,
              len, want);
  if (len >= 0 && (uint64_t) len == want)
    return 0;
  xs_error ("cannot send block %" PRIu64 " of snapshot %s: chunk %s is "
            "bad: %s", rec->block, s->info.snapshot_id, hex, reason);
  return -1;
}

/* Prepare the record of R: a chunk read into SCRATCH and verified. */
static int
prepare (struct xs_send *s, struct xs_chunk_codec *codec, void *plain,
         const struct planned *r, struct xs_repo_scratch *scratch,
         struct prepared *p)
{
  memset (p, 0, sizeof *p);
  p->rec.block = r->block;
  p->rec.kind = r->kind;
  p->rec.id = r->id;
  p->rec.source = r->source;
  if (r->kind != XS_STREAM_CHUNK)
    return 0;
  if (read_chunk (s, r->block, &p->rec.id, scratch,
                  &p->rec.stored_len) == -1)
    return -1;
  p->stored = scratch->data;
  if (verify_chunk (s, codec, plain, &p->rec, &p->stored,
                    &p->owned) == -1) {
    if (p->owned)
      free (p->stored);
    p->stored = NULL;
    return -1;
  }
  p->rec.stored = p->stored;
  return 0;
}

/* Write P's record (and free its chunk), counting it. */
static int
emit_record (struct send_pass *pass, struct prepared *p)
{
  int r;

  switch (p->rec.kind) {
  case XS_STREAM_ZERO: pass->stats.zeros++; break;
  case XS_STREAM_REF: pass->stats.refs++; break;
  case XS_STREAM_CHUNK:
    pass->stats.chunks++;
    pass->stats.chunk_bytes += p->rec.stored_len;
    break;
  }
  r = xs_stream_write_record (pass->w, &p->rec);
  if (p->owned)
    free (p->stored);
  p->stored = NULL;
  if (r == -1)
    return -1;
  pass->stats.records++;
  if (pass->progress)
    pass->progress (pass->stats.records, pass->s->info.records,
                    pass->progress_opaque);
  return 0;
}

static void
pipeline_fail (struct pipeline *pl)
{
  pthread_mutex_lock (&pl->lock);
  pl->failed = true;
  pthread_cond_broadcast (&pl->changed);
  pthread_mutex_unlock (&pl->lock);
}

static void *
decoder (void *opaque)
{
  struct pipeline *pl = opaque;
  struct xs_send *s = pl->pass->s;
  struct xs_chunk_codec *codec = xs_chunk_codec_new (0);
  void *plain = malloc (s->target->block_size);
  struct prepared p;
  size_t i;

  if (codec == NULL || plain == NULL
      || xs_chunk_codec_set_key (codec, s->target->dk) == -1) {
    if (plain == NULL)
      xs_error ("cannot send: %m");
    pipeline_fail (pl);
  }
  for (;;) {
    pthread_mutex_lock (&pl->lock);
    while (!pl->failed && pl->next < pl->n
           && pl->next >= pl->written + AHEAD)
      pthread_cond_wait (&pl->changed, &pl->lock);
    if (pl->failed || pl->next >= pl->n) {
      pthread_mutex_unlock (&pl->lock);
      break;
    }
    i = pl->next++;
    pthread_mutex_unlock (&pl->lock);
    if (prepare (s, codec, plain, &pl->records[i], &pl->scratch[i % AHEAD],
                 &p) == -1) {
      pipeline_fail (pl);
      break;
    }
    pthread_mutex_lock (&pl->lock);
    pl->slot[i % AHEAD] = p;
    pl->ready[i % AHEAD] = true;
    pthread_cond_broadcast (&pl->changed);
    pthread_mutex_unlock (&pl->lock);
  }
  xs_chunk_codec_free (codec);
  free (plain);
  return NULL;
}

/* Write the records in order as the decoders prepare them. */
static int
write_in_order (struct pipeline *pl)
{
  struct prepared p;
  size_t i;

  for (i = 0; i < pl->n; i++) {
    pthread_mutex_lock (&pl->lock);
    while (!pl->ready[i % AHEAD] && !pl->failed)
      pthread_cond_wait (&pl->changed, &pl->lock);
    if (!pl->ready[i % AHEAD]) {
      pthread_mutex_unlock (&pl->lock);
      return -1;
    }
    p = pl->slot[i % AHEAD];
    pl->ready[i % AHEAD] = false;
    pthread_mutex_unlock (&pl->lock);
    if (emit_record (pl->pass, &p) == -1) {
      pipeline_fail (pl);
      return -1;
    }
    /* Only now may a decoder reuse this record's scratch. */
    pthread_mutex_lock (&pl->lock);
    pl->written++;
    pthread_cond_broadcast (&pl->changed);
    pthread_mutex_unlock (&pl->lock);
  }
  return 0;
}

/* Send the records of the batch: decoders read and verify their chunks
 * while the records are written in order.  The batch is then empty.
 */
static int
run_batch (struct pipeline *pl)
{
  pthread_t threads[DECODERS];
  unsigned started = 0, i;
  int r = -1;

  pl->next = pl->written = 0;
  for (i = 0; i < DECODERS; i++)
    if (pthread_create (&threads[i], NULL, decoder, pl) == 0)
      started++;
  if (started == 0)
    xs_error ("cannot send: no thread to verify chunks");
  else
    r = write_in_order (pl);
  if (r == -1)
    pipeline_fail (pl);
  for (i = 0; i < started; i++)
    pthread_join (threads[i], NULL);
  for (i = 0; i < AHEAD; i++) {
    if (pl->ready[i] && pl->slot[i].owned)
      free (pl->slot[i].stored);
    pl->ready[i] = false;
  }
  pl->n = 0;
  return r;
}

static int
send_records (struct send_pass *pass)
{
  struct pipeline *pl = calloc (1, sizeof *pl);
  unsigned i;
  int r;

  if (pl == NULL) {
    xs_error ("cannot send: %m");
    return -1;
  }
  pl->pass = pass;
  pthread_mutex_init (&pl->lock, NULL);
  pthread_cond_init (&pl->changed, NULL);
  r = xs_manifest_diff (pass->s->base, pass->s->target, plan_run, pl) == 0
    ? 0 : -1;
  if (r == 0 && pl->n > 0)
    r = run_batch (pl);
  for (i = 0; i < AHEAD; i++)
    xs_repo_scratch_release (&pl->scratch[i]);
  pthread_cond_destroy (&pl->changed);
  pthread_mutex_destroy (&pl->lock);
  free (pl);
  return r;
}

int
xs_send_run (struct xs_send *s, xs_stream_write_fn write, void *opaque,
             void (*progress) (uint64_t done, uint64_t total, void *opaque),
             void *progress_opaque, struct xs_send_stats *stats)
{
  struct send_pass pass = { .s = s, .progress = progress,
                            .progress_opaque = progress_opaque };
  int r = -1;

  pass.w = xs_stream_writer_new (write, opaque);
  if (pass.w == NULL)
    return -1;
  if (!s->reencrypt
      && (pass.sources = xs_reftable_new (XS_REFTABLE_SENDER_SLOTS)) == NULL) {
    xs_stream_writer_free (pass.w);
    return -1;
  }
  if (xs_stream_write_header (pass.w, &s->info) == 0
      && send_records (&pass) == 0
      && xs_stream_write_trailer (pass.w) == 0)
    r = 0;
  pass.stats.bytes = xs_stream_writer_bytes (pass.w);
  if (progress && s->info.records == 0 && r == 0)
    progress (0, 0, progress_opaque);
  if (stats)
    *stats = pass.stats;
  xs_reftable_free (pass.sources);
  xs_stream_writer_free (pass.w);
  return r;
}

/* ----- Output to a file descriptor ----- */

struct fd_output {
  int fd;
  uint8_t *buf;
  size_t len;
};

static int
write_all (int fd, const void *data, size_t len)
{
  const uint8_t *p = data;
  ssize_t r;

  while (len > 0) {
    r = write (fd, p, len);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      xs_error ("cannot write the stream: %m");
      return -1;
    }
    p += r;
    len -= (size_t) r;
  }
  return 0;
}

static int
flush_output (struct fd_output *out)
{
  int r = write_all (out->fd, out->buf, out->len);

  out->len = 0;
  return r;
}

static int
buffered_write (const void *data, size_t len, void *opaque)
{
  struct fd_output *out = opaque;

  if (out->len + len > OUTPUT_BUFFER && flush_output (out) == -1)
    return -1;
  if (len >= OUTPUT_BUFFER)
    return write_all (out->fd, data, len);
  memcpy (out->buf + out->len, data, len);
  out->len += len;
  return 0;
}

int
xs_send_to_fd (struct xs_send *s, int fd,
               void (*progress) (uint64_t done, uint64_t total,
                                 void *opaque),
               void *progress_opaque, struct xs_send_stats *stats)
{
  struct fd_output out = { .fd = fd, .buf = malloc (OUTPUT_BUFFER) };
  int r;

  if (out.buf == NULL) {
    xs_error ("cannot send the stream: %m");
    return -1;
  }
  r = xs_send_run (s, buffered_write, &out, progress, progress_opaque,
                   stats);
  if (r == 0)
    r = flush_output (&out);
  free (out.buf);
  return r;
}
