/* xsnap: receiving a replication stream into a store (see receive.h).
 *
 * The receive reads straight into the stream parser, checks the header
 * against this store (the snapshot is new here; the base is here with
 * the same root), then applies each record to a copy of the base's
 * manifest, storing verified chunks without syncing, in a thread of their
 * own (lib/repo/putqueue.h) while the next ones are read and verified.  Every
 * few thousand records, and when the input ends early, it waits for the
 * chunks queued, makes them durable and appends the blocks received to
 * the saved state, so an interrupted receive can go on from there.
 *
 * A reference of a stream of version 5 or 6 names the block whose entry
 * it reuses, so checking it reads one entry, and what a receive holds
 * does not grow with the volume.  An older stream's references name only
 * a chunk: it is checked against sets of the chunks the base uses and
 * the stream carried (16 bytes a chunk), the cost of an old stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/chunk.h"
#include "ops/copy.h"
#include "base/error.h"
#include "base/idmap.h"
#include "catalog/keys.h"
#include "repo/manifest.h"
#include "base/names.h"
#include "repo/putqueue.h"
#include "ops/receive.h"
#include "ops/recvstate.h"
#include "repo/repo.h"

/* Chunks verified and waiting to be stored (each up to a block). */
#define PUT_QUEUE_DEPTH 8

/* Save progress after this many records or stored bytes. */
#define CHECKPOINT_RECORDS 4096
#define CHECKPOINT_BYTES (256u << 20)

/* What a failure does to the saved state. */
enum outcome {
  KEEP,                         /* resumable: save what arrived */
  DISCARD,                      /* the stream is wrong: forget it */
};

/* What became of one record. */
enum record_result {
  RECORD_APPLIED,
  RECORD_LOCAL_FAILURE,         /* could not be stored or checked here */
  RECORD_BAD,                   /* the stream's fault: a bad chunk or ref */
};

struct receive {
  struct xs_store *store;
  const struct xs_scope *scope;
  int fd;
  const atomic_int *stop;
  struct xs_stream_parser *parser;
  const struct xs_stream_info *info;
  bool input_failed;            /* ended early, unreadable or stopped */
  bool saved_chunks_gone;       /* a resumed state lost chunks to gc */
  int gc_lock_fd;
  struct xs_repo *repo;
  struct xs_putqueue *puts;     /* stores verified chunks in a thread */
  bool put_failed;              /* and the batch was cut back for it */
  struct xs_chunk_codec *codec;
  uint8_t *plain;
  struct xs_manifest *base;     /* NULL for a full stream */
  /* A base in another namespace (a snapshot shared with this account):
   * its repository, from which the chunks the new snapshot keeps are
   * copied at commit.
   */
  struct xs_repo *base_repo;
  /* A stream without sourced references (version 4 or older):
   * BASE_IDS, the base's chunks (a set), made when first needed; STORED,
   * the chunks this receive stored, as named here (a set), before a
   * resume too: the stream's own, which its references may name.
   */
  bool by_sets;
  struct xs_idmap base_ids;
  bool base_ids_ready;
  struct xs_idmap stored;
  struct xs_manifest *built;
  struct xs_recvstate *state;
  struct xs_recvstate_entry *batch;
  size_t batch_len;
  uint64_t batch_bytes;
  uint64_t next_block;          /* every record before it is applied */
  uint64_t stored_bytes;
  uint64_t done;
  char *volume_name;            /* of the snapshot made here */
  char *snapshot_name;
  void (*progress) (uint64_t done, uint64_t total, void *opaque);
  void *progress_opaque;
  /* Encryption.  RAW: a raw stream's chunks are kept as they come,
   * verified whole if this account holds their key (DK), else by their
   * headers.  ENCRYPTING: every chunk is sealed again here under DK with
   * SEAL_CODEC.  KEY_ID, KEY_ACCOUNT and DATA_KEY: the received
   * snapshot's key fields (NULL if unencrypted).
   */
  const char *key_spec;         /* asked for: --key, --encrypt */
  bool encrypt;
  bool raw, encrypting;
  struct xs_data_key *dk;
  struct xs_chunk_codec *seal_codec;
  char *key_id, *key_account, *data_key;
  char *saved_key_id, *saved_data_key;  /* a resumed receive's key */
  /* Encrypting an old stream: each chunk id of the stream -> the id it
   * was stored under here, for references to chunks carried earlier.
   */
  struct xs_idmap renamed;
};

/* ----- Reading ----- */

/* Whether a signal handler asked us to stop. */
static bool
stopped (const struct receive *rc)
{
  return rc->stop && atomic_load_explicit (rc->stop, memory_order_relaxed);
}

/* Read until the parser has something to say.  XS_STREAM_ERROR has been
 * reported; rc->input_failed says whether the input (not the stream's
 * content) is to blame.
 */
static enum xs_stream_event
next_event (struct receive *rc)
{
  enum xs_stream_event event;
  ssize_t r;
  size_t room;
  void *space;

  for (;;) {
    space = xs_stream_parser_space (rc->parser, &room);
    if (room == 0)
      return xs_stream_parser_advance (rc->parser, 0);
    if (stopped (rc))
      goto interrupted;
    r = read (rc->fd, space, room);
    if (r > 0) {
      event = xs_stream_parser_advance (rc->parser, (size_t) r);
      if (event != XS_STREAM_MORE)
        return event;
    }
    else if (r == 0) {
      xs_stream_parser_finish (rc->parser);
      rc->input_failed = true;
      return XS_STREAM_ERROR;
    }
    else if (errno != EINTR) {
      xs_error ("cannot read the stream: %m");
      rc->input_failed = true;
      return XS_STREAM_ERROR;
    }
  }

 interrupted:
  xs_error ("the receive was stopped");
  rc->input_failed = true;
  return XS_STREAM_ERROR;
}

/* After the trailer the input must end: more data means this was not
 * the stream it seemed (two streams run together?).  The stream has
 * verified, so a failing read or a stop here changes nothing.
 */
static int
expect_end_of_input (struct receive *rc)
{
  char byte;
  ssize_t r;

  do
    r = read (rc->fd, &byte, 1);
  while (r == -1 && errno == EINTR && !stopped (rc));
  if (r != 1)
    return 0;
  xs_error ("unexpected data after the end of the stream");
  return -1;
}

/* ----- Checking the header against this store ----- */

/* NAME is "NAME" or "VOLUME@NAME"; default: the sender's names. */
static int
choose_names (struct receive *rc, const char *name)
{
  const char *at = name ? strchr (name, '@') : NULL;

  if (name == NULL) {
    rc->volume_name = strdup (rc->info->volume_name);
    rc->snapshot_name = strdup (rc->info->snapshot_name);
  }
  else if (at) {
    rc->volume_name = strndup (name, (size_t) (at - name));
    rc->snapshot_name = strdup (at + 1);
  }
  else {
    rc->volume_name = strdup (rc->info->volume_name);
    rc->snapshot_name = strdup (name);
  }
  if (rc->volume_name == NULL || rc->snapshot_name == NULL) {
    xs_error ("cannot receive: %m");
    return -1;
  }
  if (xs_name_check ("volume", rc->volume_name) == -1
      || xs_name_check ("snapshot", rc->snapshot_name) == -1)
    return -1;
  return 0;
}

/* The snapshot must not exist in this store, nor its name in SCOPE. */
static int
check_new_here (struct receive *rc)
{
  const struct xs_stream_info *info = rc->info;
  struct xs_snapshot found;
  char *spec;
  int r;

  r = xs_snapshot_lookup_id (rc->store, info->snapshot_id, &found);
  if (r == 0) {
    if (info->resume_token[0])
      xs_error ("stale resume token: snapshot %s (%s@%s) has been received "
                "here already", found.id, found.volume_name, found.name);
    else
      xs_error ("snapshot %s (%s@%s) already exists in this store (account "
                "'%s', region '%s'%s)", found.id, found.volume_name,
                found.name, found.account, found.region,
                strcmp (found.status, "deleted") == 0
                ? ", deleted: run xsnap gc to purge it" : "");
    xs_snapshot_clear (&found);
    return -1;
  }
  if (r == -1)
    return -1;
  if (asprintf (&spec, "%s@%s", rc->volume_name, rc->snapshot_name) == -1) {
    xs_error ("cannot receive: %m");
    return -1;
  }
  r = xs_snapshot_find (rc->store, rc->scope, spec, true, &found);
  if (r == 0) {
    xs_error ("snapshot '%s' already exists here: choose another name with "
              "--name", spec);
    xs_snapshot_clear (&found);
  }
  free (spec);
  return r == 1 ? 0 : -1;
}

/* A base of another account, shared with this one: the new snapshot
 * must not name chunks of another namespace, so the chunks it keeps from
 * the base are copied into this one at commit (as a copy would; the gc
 * lock, held shared, keeps them in the base's namespace until then).  An
 * encrypted base is refused: a snapshot here under the owner's key is
 * what sharing never gives (a sharee's disk or copy is always under a
 * key of its own).
 */
static int
open_foreign_base (struct receive *rc, const struct xs_snapshot *base)
{
  if (base->key_id[0]) {
    xs_error ("cannot receive onto snapshot %s: it is account '%s''s, "
              "shared with this account, and encrypted under its key; "
              "receive a full stream instead", base->id, base->account);
    return -1;
  }
  rc->base_repo = xs_store_repo (rc->store, base->account, base->region);
  return rc->base_repo ? 0 : -1;
}

/* Whether the loaded base BASE has the content the stream's base has: its
 * root in the form the stream gives (a tree root, or from an older
 * sender a flat root).  0, or -1 with an error.
 */
static int
check_base_root (struct receive *rc, const struct xs_snapshot *base)
{
  char got[XS_HASH128_HEX_LEN + 1], want[XS_HASH128_HEX_LEN + 1];
  struct xs_hash128 root;

  if (rc->info->flat_roots) {
    if (xs_manifest_flat_root (rc->base, &root) == -1)
      return -1;
  }
  else
    xs_manifest_tree_root (rc->base, &root);
  if (xs_hash128_equal (&root, &rc->info->base_root))
    return 0;
  xs_hash128_to_hex (&root, got);
  xs_hash128_to_hex (&rc->info->base_root, want);
  xs_error ("snapshot %s here is not the stream's base: its content "
            "differs (root hash %s, the stream's base has %s)", base->id,
            got, want);
  return -1;
}

/* The base of an incremental stream: here, available, the same.  A full
 * stream has none.
 */
static int
load_base (struct receive *rc)
{
  const struct xs_stream_info *info = rc->info;
  char want[XS_HASH128_HEX_LEN + 1];
  struct xs_snapshot base;
  bool encrypted_here;
  int r;

  if (info->base_snapshot_id[0] == '\0')
    return 0;
  r = xs_snapshot_find (rc->store, rc->scope, info->base_snapshot_id, true,
                        &base);
  if (r == 1)
    xs_error ("the stream is incremental from snapshot %s, which is not in "
              "account '%s', region '%s': receive that snapshot first",
              info->base_snapshot_id, rc->scope->account, rc->scope->region);
  if (r != 0)
    return -1;
  xs_hash128_to_hex (&info->base_root, want);
  encrypted_here = base.source_root[0] != '\0';
  r = -1;
  if (strcmp (base.account, rc->scope->account) != 0
      && open_foreign_base (rc, &base) == -1)
    r = -1;                     /* reported */
  else if (strcmp (base.status, "available") != 0)
    xs_error ("the stream's base snapshot %s is still %s here", base.id,
              base.status);
  else if ((encrypted_here && strcmp (base.source_root, want) != 0)
           || base.size != info->size || base.block_size != info->block_size)
    xs_error ("snapshot %s here is not the stream's base: its content "
              "differs (root hash %s, the stream's base has %s)", base.id,
              encrypted_here ? base.source_root : base.root_hash, want);
  else if ((rc->base = strcmp (xs_stream_encryption (info), "raw") == 0
            ? xs_snapshot_load_manifest_unopened (rc->store, base.account,
                                                  base.region, base.id)
            : xs_snapshot_load_manifest (rc->store, base.account,
                                         base.region, base.id)) != NULL)
    r = 0;
  if (r == 0 && !encrypted_here && check_base_root (rc, &base) == -1)
    r = -1;
  xs_snapshot_clear (&base);
  return r;
}

/* ----- Saved state ----- */

/* A saved entry: apply it, and check that its chunk is still here (gc may
 * have run since the receive was interrupted).
 */
static int
apply_saved (const struct xs_recvstate_entry *e, void *opaque)
{
  struct receive *rc = opaque;
  char hex[XS_HASH128_HEX_LEN + 1];
  int r = 0;

  if (e->block >= rc->built->nblocks) {
    xs_error ("the saved receive of stream %s has another geometry",
              rc->info->stream_id);
    return -1;
  }
  if (!xs_hash128_is_zero (&e->id))
    r = xs_repo_has_chunk (rc->repo, &e->id);
  if (r == -1)
    return -1;
  if (r == 0 && !xs_hash128_is_zero (&e->id)) {
    xs_hash128_to_hex (&e->id, hex);
    xs_error ("cannot resume: chunk %s of block %" PRIu64 " is gone (gc ran "
              "since the receive was interrupted): send the whole stream "
              "again", hex, e->block);
    rc->saved_chunks_gone = true;
    return -1;
  }
  if (xs_manifest_set_block (rc->built, e->block, &e->id) == -1)
    return -1;
  if (rc->by_sets && !xs_hash128_is_zero (&e->id)
      && xs_idmap_put (&rc->stored, &e->id, NULL, NULL) == -1)
    return -1;
  return 0;
}

/* A resumed stream: the token, then the saved state it continues. */
static int
resume_state (struct receive *rc)
{
  const struct xs_stream_info *info = rc->info;
  struct xs_stream_info saved = { .stream_id = "" };
  uint64_t next_block;
  int r;

  r = xs_recvstate_load (rc->state, &saved, apply_saved, rc, &next_block,
                         &rc->stored_bytes);
  if (r == 1)
    xs_error ("stale resume token: no interrupted receive of stream %s "
              "here (it completed or never started): send the whole stream",
              info->stream_id);
  else if (r == 0 && next_block != info->first_block)
    xs_error ("stale resume token: the receive of stream %s needs block "
              "%" PRIu64 " on now, not %" PRIu64 " (see xsnap receive "
              "--token)", info->stream_id, next_block, info->first_block);
  else if (r == 0 && (saved.size != info->size
                      || saved.block_size != info->block_size))
    xs_error ("the saved receive of stream %s has another geometry",
              info->stream_id);
  else if (r == 0) {
    rc->next_block = next_block;
    if (saved.receiver_key_id && saved.receiver_key_id[0]) {
      rc->saved_key_id = saved.receiver_key_id;
      rc->saved_data_key = saved.receiver_data_key;
      saved.receiver_key_id = saved.receiver_data_key = NULL;
    }
    xs_stream_info_clear (&saved);
    return 0;
  }
  /* An empty state was made by opening it; a state whose chunks are gone
   * is of no use.  Other states stay for the right token.
   */
  if (r == 1 || rc->saved_chunks_gone)
    xs_recvstate_remove (rc->state);
  xs_stream_info_clear (&saved);
  return -1;
}

/* ----- Encryption ----- */

static int
dup_key_fields (struct receive *rc, const char *key_id,
                const char *key_account, const char *data_key)
{
  rc->key_id = strdup (key_id);
  rc->key_account = strdup (key_account);
  rc->data_key = strdup (data_key);
  if (rc->key_id == NULL || rc->key_account == NULL || rc->data_key == NULL) {
    xs_error ("cannot receive: %m");
    return -1;
  }
  return 0;
}

/* A raw stream: the snapshot stays under the sender's key.  Its chunks
 * are verified whole if this account holds the key.
 */
static int
plan_raw (struct receive *rc)
{
  const struct xs_stream_info *info = rc->info;
  int usable;

  if (rc->key_spec || rc->encrypt) {
    xs_error ("cannot receive a raw stream under a key of this account: "
              "it keeps the sender's encryption (have it sent --reencrypt)");
    return -1;
  }
  if (rc->base && strcmp (rc->base->data_key, info->data_key) != 0) {
    xs_error ("the stream's base snapshot %s here is not under the stream's "
              "data key", rc->base->snapshot_id);
    return -1;
  }
  if (info->flat_roots) {
    /* Its MAC covers a flat root, and what is built here is a tree. */
    xs_error ("cannot receive a raw stream of format version 2 (from an "
              "older xsnap): its MAC is over a manifest form this release "
              "no longer writes; send it with this release, or --reencrypt");
    return -1;
  }
  rc->raw = true;
  if (dup_key_fields (rc, info->key_id, info->key_account,
                      info->data_key) == -1)
    return -1;
  usable = xs_key_usable (rc->store, rc->scope->account, info->key_id);
  if (usable == -1)
    return -1;
  if (usable == 1) {
    rc->dk = xs_key_open_data_key (rc->store, rc->scope->account,
                                   info->key_account, info->key_id,
                                   info->data_key);
    if (rc->dk == NULL || xs_chunk_codec_set_key (rc->codec, rc->dk) == -1)
      return -1;
  }
  xs_debug ("receive: a raw stream under key %s, %s", info->key_id,
            rc->dk ? "verified with it" : "which this account does not hold");
  return 0;
}

/* Decide how what arrives is encrypted: as the stream has it (raw), under
 * a key of this account (a re-encrypting stream, --key or --encrypt, or
 * an encrypted base), or not at all.
 */
static int
plan_encryption (struct receive *rc)
{
  const char *mode = xs_stream_encryption (rc->info);
  bool encrypted_base = rc->base && xs_manifest_is_encrypted (rc->base);
  struct xs_key key;
  int r;

  if (strcmp (mode, "raw") == 0)
    return plan_raw (rc);
  rc->encrypting = strcmp (mode, "reencrypt") == 0 || rc->encrypt
    || rc->key_spec || encrypted_base;
  if (!rc->encrypting)
    return 0;
  if (rc->base && !encrypted_base) {
    xs_error ("cannot encrypt what arrives: the stream's base snapshot %s "
              "here is not encrypted (receive a full stream)",
              rc->base->snapshot_id);
    return -1;
  }
  rc->seal_codec = xs_chunk_codec_new (0);
  if (rc->seal_codec == NULL)
    return -1;
  if (!encrypted_base)
    return 0;                   /* a new data key, with the state */
  /* An incremental receive stays under its base's data key. */
  if (rc->key_spec) {
    r = xs_key_find (rc->store, rc->scope->account, rc->key_spec, false,
                     &key);
    if (r != 0)
      return -1;
    r = strcmp (key.id, rc->base->key_id) == 0 ? 0 : -1;
    if (r == -1)
      xs_error ("cannot receive under key '%s': the stream's base snapshot "
                "%s is under another key, and an incremental receive stays "
                "under its base's", key.name, rc->base->snapshot_id);
    xs_key_clear (&key);
    if (r == -1)
      return -1;
  }
  rc->dk = xs_data_key_dup (rc->base->dk);
  if (rc->dk == NULL
      || dup_key_fields (rc, rc->base->key_id, rc->base->key_account,
                         rc->base->data_key) == -1)
    return -1;
  return xs_chunk_codec_set_key (rc->seal_codec, rc->dk);
}

/* The data key of a full encrypting receive: the saved one when it
 * resumes, else a new one under the key asked for (default: the
 * account's default key).
 */
static int
choose_data_key (struct receive *rc)
{
  const char *account = rc->scope->account;
  struct xs_key key;
  char *wrapped = NULL;
  int r;

  if (!rc->encrypting || rc->dk)
    return 0;
  if (rc->info->resume_token[0]) {
    if (rc->saved_key_id == NULL) {
      xs_error ("cannot resume: the interrupted receive of stream %s did "
                "not encrypt; send the whole stream again",
                rc->info->stream_id);
      return -1;
    }
    r = dup_key_fields (rc, rc->saved_key_id, account, rc->saved_data_key);
  }
  else {
    r = rc->key_spec ? xs_key_find (rc->store, account, rc->key_spec, false,
                                    &key)
      : xs_key_default (rc->store, account, &key);
    if (r != 0)
      return -1;
    r = xs_key_new_data_key (rc->store, &key, &wrapped);
    if (r == 0)
      r = dup_key_fields (rc, key.id, account, wrapped);
    xs_key_clear (&key);
    free (wrapped);
  }
  if (r == -1)
    return -1;
  rc->dk = xs_key_open_data_key (rc->store, account, account, rc->key_id,
                                 rc->data_key);
  if (rc->dk == NULL)
    return -1;
  return xs_chunk_codec_set_key (rc->seal_codec, rc->dk);
}

/* Start the saved state; an encrypting receive records its key in it. */
static int
start_state (struct receive *rc)
{
  struct xs_stream_info copy;
  json_t *obj;
  int r = -1;

  if (!rc->encrypting)
    return xs_recvstate_start (rc->state, rc->info);
  obj = xs_stream_info_to_json (rc->info);
  if (obj == NULL
      || json_object_set_new (obj, "receiver",
                              json_pack ("{s:s, s:s}", "key_id", rc->key_id,
                                         "data_key", rc->data_key)) == -1) {
    xs_error ("cannot receive: out of memory");
    json_decref (obj);
    return -1;
  }
  if (xs_stream_info_from_json (obj, "receive state", &copy) == 0) {
    r = xs_recvstate_start (rc->state, &copy);
    xs_stream_info_clear (&copy);
  }
  json_decref (obj);
  return r;
}

static int
open_state (struct receive *rc)
{
  const struct xs_stream_info *info = rc->info;

  rc->state = xs_recvstate_open (rc->store, rc->scope, info->stream_id);
  if (rc->state == NULL)
    return -1;
  if (info->resume_token[0])
    return resume_state (rc) == 0 ? choose_data_key (rc) : -1;
  rc->next_block = 0;
  if (choose_data_key (rc) == -1)
    return -1;
  return start_state (rc);
}

/* Wait for the chunks queued so far.  After a failed store the batch is
 * cut back, once, to the records before that chunk: they are stored, and
 * the ones after it will be sent again.
 */
static int
drain_puts (struct receive *rc)
{
  uint64_t failed;

  if (xs_putqueue_drain (rc->puts, &rc->stored_bytes, &failed) == 0)
    return 0;
  if (!rc->put_failed) {
    rc->put_failed = true;
    rc->next_block = rc->batch[failed].block;
    rc->batch_len = (size_t) failed;
  }
  return -1;
}

/* Make the stored chunks of the batch durable and record them. */
static int
save_batch (struct receive *rc)
{
  if (xs_repo_sync (rc->repo) == -1
      || xs_recvstate_append (rc->state, rc->batch, rc->batch_len,
                              rc->next_block, rc->stored_bytes) == -1)
    return -1;
  rc->batch_len = 0;
  rc->batch_bytes = 0;
  return 0;
}

/* Make the chunks received so far durable and record them. */
static int
checkpoint (struct receive *rc)
{
  int r = drain_puts (rc);

  if (save_batch (rc) == -1)
    return -1;
  return r;
}

/* ----- Records ----- */

/* Check a raw stream's chunk that this account cannot decrypt: its header
 * (checksummed) must be an encrypted chunk's, of the record's id and the
 * block's length.  Its payload is authenticated when it is read with the
 * key.  0, or -1 with REASON set.
 */
static int
check_sealed_chunk (const struct xs_stream_record *rec, uint64_t want,
                    char *reason, size_t reason_len)
{
  struct xs_hash128 id;
  uint32_t plain_len;

  if (rec->stored_len < XS_CHUNK_HEADER_SIZE_ENCRYPTED
      || xs_chunk_header_version (rec->stored) != XS_CHUNK_VERSION_ENCRYPTED) {
    snprintf (reason, reason_len, "not an encrypted chunk");
    return -1;
  }
  if (xs_chunk_peek (rec->stored, rec->stored_len, &id, &plain_len) == -1) {
    snprintf (reason, reason_len, "its header is damaged");
    return -1;
  }
  if (!xs_hash128_equal (&id, &rec->id) || plain_len != want) {
    snprintf (reason, reason_len, "its header names another chunk or length");
    return -1;
  }
  return 0;
}

/* Verify and store a record's chunk, as *ID (the record's, or when
 * encrypting here the id of the chunk sealed under this receive's key).
 */
static enum record_result
store_chunk (struct receive *rc, const struct xs_stream_record *rec,
             struct xs_hash128 *id)
{
  uint64_t want = rc->info->size - rec->block * rc->info->block_size;
  char hex[XS_HASH128_HEX_LEN + 1], reason[XS_CHUNK_REASON_MAX];
  void *sealed = NULL;
  const void *stored = rec->stored;
  size_t stored_len = rec->stored_len;
  ssize_t len;
  int r;

  if (want > rc->info->block_size)
    want = rc->info->block_size;
  if (rc->raw && rc->dk == NULL)
    len = check_sealed_chunk (rec, want, reason, sizeof reason) == 0
      ? (ssize_t) want : -1;
  else
    len = xs_chunk_decode_quiet (rc->codec, rec->stored, rec->stored_len,
                                 &rec->id, rc->plain, rc->info->block_size,
                                 reason);
  if (len != (ssize_t) want) {
    xs_hash128_to_hex (&rec->id, hex);
    if (len >= 0)
      snprintf (reason, sizeof reason, "%zd bytes, the block has %" PRIu64,
                len, want);
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 "): chunk %s is "
              "bad: %s", rc->done + 1, rec->block, hex, reason);
    return RECORD_BAD;
  }
  *id = rec->id;
  if (rc->encrypting) {
    if (xs_chunk_encode (rc->seal_codec, rc->plain, (size_t) len, id,
                         &sealed, &stored_len) == -1
        || (rc->by_sets
            && xs_idmap_put (&rc->renamed, &rec->id, id, NULL) == -1)) {
      free (sealed);
      return RECORD_LOCAL_FAILURE;
    }
    stored = sealed;
  }
  /* Its entry goes into the batch at rc->batch_len, next. */
  r = xs_putqueue_add (rc->puts, id, stored, stored_len, rc->batch_len);
  free (sealed);
  if (r == -1
      || (rc->by_sets && xs_idmap_put (&rc->stored, id, NULL, NULL) == -1))
    return RECORD_LOCAL_FAILURE;
  rc->batch_bytes += stored_len;
  return RECORD_APPLIED;
}

static int
add_base_id (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct xs_idmap *base_ids = opaque;

  (void) block;
  return xs_idmap_put (base_ids, id, NULL, NULL);
}

/* Whether ID is a chunk of the base: 1, 0, or -1.  A reference may name
 * a chunk of any block of the base, so the set of the base's chunks is
 * made on first use, with a walk of its non-zero blocks.
 */
static int
base_has (struct receive *rc, const struct xs_hash128 *id)
{
  struct xs_manifest *base = rc->base;

  if (base == NULL)
    return 0;
  if (!rc->base_ids_ready) {
    if (xs_manifest_for_each_block (base, 0, base->nblocks, add_base_id,
                                    &rc->base_ids) != 0)
      return -1;
    rc->base_ids_ready = true;
  }
  return xs_idmap_has (&rc->base_ids, id);
}

/* A reference of an old stream: RECORD_BAD if it names a chunk that is
 * neither the base's nor carried earlier by this stream (before a resume
 * too).  Whatever else this account holds is not asked about, so a
 * stream cannot probe what the receiver has.
 */
static enum record_result
check_reference_by_sets (struct receive *rc,
                         const struct xs_stream_record *rec,
                         struct xs_hash128 *id)
{
  const struct xs_hash128 *local;
  char hex[XS_HASH128_HEX_LEN + 1];
  int r;

  *id = rec->id;
  if (rc->encrypting) {
    local = xs_idmap_get (&rc->renamed, &rec->id);
    if (local) {
      *id = *local;
      return RECORD_APPLIED;
    }
    xs_hash128_to_hex (&rec->id, hex);
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") refers to chunk "
              "%s of its base (or of before it was resumed), which has "
              "another name under this receive's key: an encrypting receive "
              "needs a stream sent with --reencrypt", rc->done + 1,
              rec->block, hex);
    return RECORD_BAD;
  }
  r = xs_idmap_has (&rc->stored, &rec->id) ? 1 : base_has (rc, &rec->id);
  if (r != 0)
    return r == 1 ? RECORD_APPLIED : RECORD_LOCAL_FAILURE;
  xs_hash128_to_hex (&rec->id, hex);
  xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") refers to chunk "
            "%s, which is neither the base's nor carried earlier by the "
            "stream: refused", rc->done + 1, rec->block, hex);
  return RECORD_BAD;
}

/* A reference naming its source block S: the entry there must be its
 * chunk, as named here (*ID; under this receive's key if it encrypts,
 * which names a chunk after its plaintext's id: xs_chunk_id_of_plain_id).
 * Before the record's block, the entry is the one built (carried by the
 * stream, before a resume too, or kept from the base); from it on, the
 * base's.  No other chunk is reachable, so a stream cannot probe what
 * this account holds.  RECORD_BAD if the entry is another chunk.
 */
static enum record_result
check_sourced_reference (struct receive *rc,
                         const struct xs_stream_record *rec,
                         struct xs_hash128 *id)
{
  struct xs_manifest *from = rec->source < rec->block ? rc->built : rc->base;
  char hex[XS_HASH128_HEX_LEN + 1];
  struct xs_hash128 found;

  if (from == NULL) {
    xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") refers to "
              "block %" PRIu64 ", not before it, in a stream without a "
              "base: refused", rc->done + 1, rec->block, rec->source);
    return RECORD_BAD;
  }
  *id = rec->id;
  if ((rc->encrypting
       && xs_chunk_id_of_plain_id (rc->seal_codec, &rec->id, id) == -1)
      || xs_manifest_get_block (from, rec->source, &found) == -1)
    return RECORD_LOCAL_FAILURE;
  if (xs_hash128_equal (&found, id))
    return RECORD_APPLIED;
  xs_hash128_to_hex (&rec->id, hex);
  xs_error ("stream record %" PRIu64 " (block %" PRIu64 ") refers to chunk "
            "%s at block %" PRIu64 "%s, which has another: refused",
            rc->done + 1, rec->block, hex, rec->source,
            from == rc->base ? " of the base" : "");
  return RECORD_BAD;
}

static enum record_result
check_reference (struct receive *rc, const struct xs_stream_record *rec,
                 struct xs_hash128 *id)
{
  return rc->by_sets ? check_reference_by_sets (rc, rec, id)
    : check_sourced_reference (rc, rec, id);
}

/* Apply one record; on failure *OUTCOME says what becomes of the state. */
static int
apply_record (struct receive *rc, const struct xs_stream_record *rec,
              enum outcome *outcome)
{
  struct xs_hash128 id = rec->id;
  enum record_result r = RECORD_APPLIED;

  /* A chunk that cannot be stored or checked is a local failure, worth
   * resuming; a chunk that fails verification or a reference to a chunk
   * this region lacks is the stream's.
   */
  *outcome = DISCARD;
  if (rec->kind == XS_STREAM_CHUNK)
    r = store_chunk (rc, rec, &id);
  else if (rec->kind == XS_STREAM_REF)
    r = check_reference (rc, rec, &id);
  if (r != RECORD_APPLIED) {
    *outcome = r == RECORD_LOCAL_FAILURE ? KEEP : DISCARD;
    return -1;
  }
  /* The record is in the batch before the built manifest: its chunk is
   * stored (or queued), so a failure to note it there is ours, and the
   * saved state has it for the resume.
   */
  rc->batch[rc->batch_len++] = (struct xs_recvstate_entry) { rec->block,
                                                             id };
  rc->next_block = rec->block + 1;
  rc->done++;
  if (xs_manifest_set_block (rc->built, rec->block, &id) == -1) {
    *outcome = KEEP;
    return -1;
  }
  if (rc->progress)
    rc->progress (rc->done, rc->info->records, rc->progress_opaque);
  if (rc->batch_len == CHECKPOINT_RECORDS
      || rc->batch_bytes >= CHECKPOINT_BYTES) {
    *outcome = KEEP;
    return checkpoint (rc);
  }
  return 0;
}

/* ----- Commit ----- */

static int
count_run (uint64_t first, uint64_t count, void *opaque)
{
  uint64_t *changed = opaque;

  (void) first;
  *changed += count;
  return 0;
}

static int
count_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  (void) id;
  return count_run (block, 1, opaque);
}

/* The blocks of the built manifest that differ from the base (from
 * zeros, for a full stream) into *CHANGED.  0, or -1.
 */
static int
count_changed (struct receive *rc, uint64_t *changed)
{
  *changed = 0;
  if (rc->base)
    return xs_manifest_diff (rc->base, rc->built, count_run, changed) == 0
      ? 0 : -1;
  return xs_manifest_for_each_block (rc->built, 0, rc->built->nblocks,
                                     count_block, changed) == 0 ? 0 : -1;
}

static int
describe_built (struct receive *rc)
{
  struct xs_manifest *m = rc->built;
  const struct xs_stream_info *info = rc->info;

  m->created_ns = info->created_ns;
  return xs_manifest_set (m, "snapshot_id", info->snapshot_id) == -1
    || xs_manifest_set (m, "volume_id", info->volume_id) == -1
    || xs_manifest_set (m, "volume_name", rc->volume_name) == -1
    || xs_manifest_set (m, "account", rc->scope->account) == -1
    || xs_manifest_set (m, "region", rc->scope->region) == -1
    || xs_manifest_set (m, "parent_id", info->base_snapshot_id) == -1
    || xs_manifest_set (m, "name", rc->snapshot_name) == -1
    || xs_manifest_set (m, "status", "available") == -1 ? -1 : 0;
}

/* The built manifest's encryption: a raw stream's key fields and its
 * sender's MAC (checked now if this account holds the key), or this
 * receive's key.  -1 (the stream's fault) if the MAC does not match.
 */
static int
encrypt_built (struct receive *rc)
{
  unsigned char mac[XS_MANIFEST_MAC_LEN];
  int r;

  if (rc->key_id == NULL)
    return 0;
  if (describe_built (rc) == -1
      || xs_manifest_set_encryption (rc->built, rc->key_id, rc->key_account,
                                     rc->data_key, rc->dk) == -1)
    return -1;
  if (!rc->raw)
    return 0;
  xs_manifest_set_mac (rc->built, rc->info->manifest_mac);
  if (rc->dk == NULL)
    return 0;
  if (xs_manifest_compute_mac (rc->built, rc->dk, mac) == -1)
    return -1;
  r = xs_crypt_equal (mac, rc->info->manifest_mac, sizeof mac) ? 0 : -1;
  if (r == -1)
    xs_error ("the stream's manifest MAC does not match the snapshot that "
              "arrived: refused (tampered with)");
  return r;
}

/* The chunks the commit makes sure of, a batch at a time: CHECK_BATCH
 * ids, 1 MiB.
 */
#define CHECK_BATCH 65536

struct check_pass {
  struct receive *rc;
  struct xs_hash128 *ids;
  size_t n;
  uint64_t copied;
};

/* Make the chunks of the batch present here (copied from a foreign base,
 * else only looked for), durably.  0, or -1 with an error.
 */
static int
check_batch (struct check_pass *c)
{
  struct receive *rc = c->rc;
  uint64_t copied = 0;
  int r;

  if (c->n == 0)
    return 0;
  r = xs_copy_make_present (rc->store, rc->base_repo, rc->repo, c->ids, c->n,
                            rc->info->block_size, &copied);
  c->copied += copied;
  c->n = 0;
  return r;
}

static int
check_block (uint64_t block, const struct xs_hash128 *id, void *opaque)
{
  struct check_pass *c = opaque;

  (void) block;
  c->ids[c->n++] = *id;
  return c->n == CHECK_BATCH ? check_batch (c) : 0;
}

static int
check_run (uint64_t first, uint64_t count, void *opaque)
{
  struct check_pass *c = opaque;

  return xs_manifest_for_each_block (c->rc->built, first, count,
                                     check_block, c);
}

/* Nothing is committed that readers would not find: every chunk the new
 * manifest names must be in this namespace, durable.  What the stream
 * changed is checked (the blocks that differ from the base, or every
 * block of a full stream); with a base of another namespace every block
 * is, and the chunks missing here are copied from the base's namespace,
 * verified (lib/ops/copy.c: as a copy makes its destination complete).
 * The cost follows the change, but for a shared base; what is held, a
 * batch of ids.
 */
static int
ensure_chunks (struct receive *rc)
{
  struct check_pass c = { .rc = rc };
  struct xs_manifest *built = rc->built;
  int r;

  c.ids = malloc (CHECK_BATCH * sizeof *c.ids);
  if (c.ids == NULL) {
    xs_error ("cannot commit snapshot %s: %m", rc->info->snapshot_id);
    return -1;
  }
  if (rc->base && rc->base_repo == NULL)
    r = xs_manifest_diff (rc->base, built, check_run, &c);
  else
    r = xs_manifest_for_each_block (built, 0, built->nblocks, check_block,
                                    &c);
  if (r == 0)
    r = check_batch (&c);
  free (c.ids);
  rc->stored_bytes += c.copied;
  if (r != 0)
    xs_error ("cannot commit snapshot %s: not every chunk it names is in "
              "account '%s', region '%s'", rc->info->snapshot_id,
              rc->scope->account, rc->scope->region);
  return r == 0 ? 0 : -1;
}

/* The root of what was built (sealed), in the form the stream's root
 * has.  0 or -1.
 */
static int
built_root (struct receive *rc, struct xs_hash128 *root)
{
  if (rc->info->flat_roots)
    return xs_manifest_flat_root (rc->built, root);
  *root = rc->built->root;
  return 0;
}

/* Chunks durable, manifest, catalog row; then the state goes.  A root
 * that differs is the stream's fault; any other failure here is ours,
 * and the receive can be resumed (with nothing more to send).
 */
static int
commit (struct receive *rc, struct xs_snapshot *snap, enum outcome *outcome)
{
  char got[XS_HASH128_HEX_LEN + 1], want[XS_HASH128_HEX_LEN + 1];
  struct xs_hash128 root;
  char sender_root[XS_HASH128_HEX_LEN + 1];
  uint64_t changed;
  void *data;
  size_t len;
  int r;

  xs_hash128_to_hex (&rc->info->root, sender_root);
  *outcome = KEEP;
  /* Chunks durable before the pages that name them, pages before the
   * manifest.
   */
  if (drain_puts (rc) == -1 || ensure_chunks (rc) == -1
      || xs_repo_sync (rc->repo) == -1 || xs_manifest_seal (rc->built) == -1)
    return -1;
  *outcome = DISCARD;
  /* Encrypted here, the chunks have other names than the sender's: the
   * stream's integrity (every chunk checked, the trailer over all of it)
   * and its base's identity (load_base) stand for the root.
   */
  if (!rc->encrypting && built_root (rc, &root) == -1) {
    *outcome = KEEP;
    return -1;
  }
  if (!rc->encrypting && !xs_hash128_equal (&root, &rc->info->root)) {
    xs_hash128_to_hex (&root, got);
    xs_hash128_to_hex (&rc->info->root, want);
    xs_error ("the received snapshot's root hash %s differs from the "
              "stream's %s: refused", got, want);
    return -1;
  }
  if (encrypt_built (rc) == -1)
    return -1;
  *outcome = KEEP;
  if (describe_built (rc) == -1 || count_changed (rc, &changed) == -1
      || xs_manifest_serialize (rc->built, &data, &len) == -1)
    return -1;
  r = xs_repo_put_manifest (rc->repo, rc->info->snapshot_id, data, len);
  free (data);
  if (r == -1
      || xs_snapshot_record_received (rc->store, rc->scope, rc->built,
                                      changed, rc->stored_bytes,
                                      rc->encrypting ? sender_root : NULL,
                                      snap) == -1)
    return -1;
  /* Committed.  A state left behind by a failure here is refused as
   * stale by a later resume, and not listed.
   */
  xs_recvstate_remove (rc->state);
  return 0;
}

/* ----- The receive ----- */

static void
free_receive (struct receive *rc)
{
  xs_putqueue_free (rc->puts, true);
  xs_recvstate_close (rc->state);
  xs_manifest_free (rc->built);
  xs_manifest_free (rc->base);
  xs_repo_close (rc->base_repo);
  xs_idmap_clear (&rc->base_ids);
  xs_idmap_clear (&rc->stored);
  xs_chunk_codec_free (rc->codec);
  xs_chunk_codec_free (rc->seal_codec);
  xs_data_key_free (rc->dk);
  free (rc->key_id);
  free (rc->key_account);
  free (rc->data_key);
  free (rc->saved_key_id);
  free (rc->saved_data_key);
  xs_idmap_clear (&rc->renamed);
  free (rc->plain);
  free (rc->batch);
  xs_repo_close (rc->repo);
  if (rc->gc_lock_fd >= 0)
    close (rc->gc_lock_fd);
  xs_stream_parser_free (rc->parser);
  free (rc->volume_name);
  free (rc->snapshot_name);
}

/* The manifest the records are applied to: a copy of the base, or for a
 * full stream zeros (untouched, and unallocated for a large volume, where
 * no record lands).  It is sealed into this receive's repository (not a
 * foreign base's), through a handle of its own.
 */
static int
build_from_base (struct receive *rc)
{
  struct xs_repo *repo;

  rc->built = rc->base ? xs_manifest_copy (rc->base)
    : xs_manifest_new (rc->info->size, rc->info->block_size);
  if (rc->built == NULL)
    return -1;
  repo = xs_store_repo (rc->store, rc->scope->account, rc->scope->region);
  if (repo == NULL)
    return -1;
  xs_manifest_attach (rc->built, repo);
  return 0;
}

/* Read the header and check it against this store.  Leaves no trace. */
static int
begin (struct receive *rc, const char *name)
{
  const struct xs_stream_info *info;

  rc->parser = xs_stream_parser_new ();
  if (rc->parser == NULL || next_event (rc) != XS_STREAM_HEADER)
    return -1;
  rc->info = info = xs_stream_parser_info (rc->parser);
  rc->by_sets = !info->sourced_refs;
  if (info->size > XS_VOLUME_SIZE_MAX) {
    xs_error ("the stream's volume of %" PRIu64 " bytes is larger than "
              "xsnap supports", info->size);
    return -1;
  }
  if (choose_names (rc, name) == -1
      || (info->resume_token[0]
          && xs_recvstate_check_token (rc->store, rc->scope,
                                       info->resume_token) == -1))
    return -1;
  rc->gc_lock_fd = xs_snapshot_gc_lock (rc->store, rc->scope->region, false);
  if (rc->gc_lock_fd == -1
      || (rc->repo = xs_store_repo (rc->store, rc->scope->account,
                                    rc->scope->region)) == NULL
      || check_new_here (rc) == -1 || load_base (rc) == -1
      || (rc->puts = xs_putqueue_new (rc->repo, PUT_QUEUE_DEPTH)) == NULL)
    return -1;
  if (build_from_base (rc) == -1)
    return -1;
  rc->codec = xs_chunk_codec_new (0);
  rc->plain = malloc (info->block_size);
  rc->batch = malloc (CHECKPOINT_RECORDS * sizeof *rc->batch);
  if (rc->codec == NULL || rc->plain == NULL || rc->batch == NULL) {
    xs_error ("cannot receive: out of memory");
    return -1;
  }
  return plan_encryption (rc);
}

/* Every record, then the trailer.  On failure *OUTCOME is set. */
static int
receive_records (struct receive *rc, enum outcome *outcome)
{
  enum xs_stream_event event;

  while ((event = next_event (rc)) == XS_STREAM_RECORD)
    if (apply_record (rc, xs_stream_parser_record (rc->parser),
                      outcome) == -1)
      return -1;
  if (event == XS_STREAM_END) {
    *outcome = DISCARD;
    return expect_end_of_input (rc);
  }
  *outcome = rc->input_failed || xs_stream_parser_resumable (rc->parser)
    ? KEEP : DISCARD;
  return -1;
}

static void
command_line (const struct xs_stream_info *info, const char *token,
              char *out, size_t len)
{
  const char *mode = xs_stream_encryption (info);

  snprintf (out, len, "xsnap send %s%s%s%s%s --resume %s", info->snapshot_id,
            info->base_snapshot_id[0] ? " --from " : "",
            info->base_snapshot_id, mode[0] ? " --" : "", mode, token);
}

/* The receive stopped short: save what arrived and say how to go on.
 * WHY is the first failure reported: the last line repeats it when this
 * store is to blame (no space left, ...), which the stream cannot fix.
 */
static void
keep_for_resume (struct receive *rc, const char *why)
{
  char token[XS_STREAM_TOKEN_MAX], command[512];

  if (save_batch (rc) == -1
      || xs_recvstate_make_token (rc->store, rc->scope, rc->info->stream_id,
                                  rc->next_block, token) == -1)
    return;
  command_line (rc->info, token, command, sizeof command);
  if (rc->input_failed || why[0] == '\0')
    xs_error ("receive interrupted; resume with: %s", command);
  else
    xs_error ("receive of snapshot %s stopped: %s; once that is fixed, "
              "resume with: %s", rc->info->snapshot_id, why, command);
}

int
xs_receive (struct xs_store *store, const struct xs_scope *scope, int fd,
            const char *name, const char *key_spec, bool encrypt,
            const atomic_int *stop,
            void (*progress) (uint64_t done, uint64_t total, void *opaque),
            void *progress_opaque, struct xs_snapshot *snap)
{
  struct receive rc = { .store = store, .scope = scope, .fd = fd,
                        .stop = stop, .gc_lock_fd = -1,
                        .progress = progress,
                        .progress_opaque = progress_opaque,
                        .key_spec = key_spec, .encrypt = encrypt };
  enum outcome outcome = DISCARD;
  char why[512];
  int r = -1;

  xs_error_capture_begin (why, sizeof why);
  if (begin (&rc, name) == 0 && open_state (&rc) == 0) {
    if (receive_records (&rc, &outcome) == 0
        && commit (&rc, snap, &outcome) == 0)
      r = 0;
    else if (outcome == KEEP) {
      /* What was stored before a failure is kept; a failure of the
       * queue's thread may be the first.
       */
      drain_puts (&rc);
      keep_for_resume (&rc, why);
    }
    else {
      xs_putqueue_free (rc.puts, true);   /* nothing more is stored */
      rc.puts = NULL;
      xs_recvstate_remove (rc.state);
    }
  }
  xs_error_capture_end ();
  free_receive (&rc);
  return r;
}

/* ----- Pending receives ----- */

struct pending_pass {
  struct xs_store *store;
  const struct xs_scope *scope;
  xs_receive_pending_fn fn;
  void *opaque;
};

static int
list_one (const struct xs_recvstate_summary *s, void *opaque)
{
  struct pending_pass *pass = opaque;
  struct xs_receive_pending p = { .info = s->info,
                                  .next_block = s->next_block,
                                  .blocks_received = s->blocks_received,
                                  .stored_bytes = s->stored_bytes,
                                  .active = s->active };
  struct xs_snapshot done;
  int r;

  /* A receive that committed but could not remove its state. */
  r = xs_snapshot_lookup_id (pass->store, s->info->snapshot_id, &done);
  if (r == 0)
    xs_snapshot_clear (&done);
  if (r != 1)
    return r == 0 ? 0 : -1;
  if (xs_recvstate_make_token (pass->store, pass->scope, s->info->stream_id,
                               s->next_block, p.token) == -1)
    return -1;
  command_line (s->info, p.token, p.command, sizeof p.command);
  return pass->fn (&p, pass->opaque);
}

int
xs_receive_list_pending (struct xs_store *store,
                         const struct xs_scope *scope,
                         xs_receive_pending_fn fn, void *opaque)
{
  struct pending_pass pass = { store, scope, fn, opaque };

  return xs_recvstate_list (store, scope, list_one, &pass);
}
