/* xsnap: saved states of interrupted receives, and resume tokens (see
 * recvstate.h and docs/FORMAT.md, "Receive state (version 1)").
 *
 * The state is a journal so that saving progress costs an append and one
 * fdatasync, whatever the volume's size: a header (the stream's
 * metadata), then batches of (block, chunk id) entries, each with its own
 * checksum.  A crash while appending leaves a torn last batch, which
 * readers ignore: the state then says a little less than it could, never
 * more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/byteorder.h"
#include "base/error.h"
#include "base/fileio.h"
#include "ops/recvstate.h"
#include "repo/repo.h"

#define STATE_MAGIC "XSNPRCVS"
#define STATE_VERSION 1
#define STATE_PREFIX 16             /* magic, version, metadata length */
#define BATCH_MAGIC "XSRB"
#define BATCH_HEAD 24               /* magic, count, next block, bytes */
#define ENTRY_SIZE 24               /* block, chunk id */
#define CHECK_SIZE 8

#define TOKEN_KEY_SETTING "receive_token_key"
#define TOKEN_KEY_LEN 32
#define TOKEN_MAC_LEN 16            /* HMAC-SHA256, truncated */

struct xs_recvstate {
  int fd;
  char *path;
  char *dir;
  uint64_t end;                     /* where the next batch goes */
  bool trimmed;                     /* the file ends at end */
};

/* ----- Paths ----- */

/* STORE/regions/REGION/receive[/ACCOUNT] (malloc'd). */
static char *
receive_dir (struct xs_store *store, const char *region, const char *account)
{
  char *dir;

  if (asprintf (&dir, "%s/regions/%s/receive%s%s", xs_store_path (store),
                region, account ? "/" : "", account ? account : "") == -1) {
    xs_error ("cannot locate the receive states: %m");
    return NULL;
  }
  return dir;
}

static int
make_dir (const char *dir)
{
  if (mkdir (dir, 0700) == -1 && errno != EEXIST) {
    xs_error ("cannot create %s: %m", dir);
    return -1;
  }
  return 0;
}

static bool
is_stream_id (const char *name)
{
  size_t i;

  for (i = 0; name[i]; i++)
    if (!((name[i] >= '0' && name[i] <= '9')
          || (name[i] >= 'a' && name[i] <= 'f')))
      return false;
  return i == XS_STREAM_ID_LEN;
}

/* ----- Opening and locking ----- */

/* Lock FD, then make sure it is still the file at PATH (a receive that
 * finished may have removed it between our open and our lock).  Returns
 * 0 locked, 1 to open again, -1 with an error.
 */
static int
lock_current (int fd, const char *path, const char *stream_id)
{
  struct stat by_fd, by_path;

  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      xs_error ("a receive of stream %s is already running here", stream_id);
    else
      xs_error ("cannot lock %s: %m", path);
    return -1;
  }
  if (fstat (fd, &by_fd) == -1) {
    xs_error ("cannot stat %s: %m", path);
    return -1;
  }
  if (stat (path, &by_path) == -1)
    return errno == ENOENT ? 1 : -1;
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino
    ? 0 : 1;
}

static int
open_locked (const char *path, const char *stream_id)
{
  int fd, r, tries;

  for (tries = 0; tries < 100; tries++) {
    fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
      xs_error ("cannot open %s: %m", path);
      return -1;
    }
    r = lock_current (fd, path, stream_id);
    if (r == 0)
      return fd;
    close (fd);
    if (r == -1)
      return -1;
  }
  xs_error ("cannot open %s: it keeps being replaced", path);
  return -1;
}

struct xs_recvstate *
xs_recvstate_open (struct xs_store *store, const struct xs_scope *scope,
                   const char *stream_id)
{
  struct xs_recvstate *st = calloc (1, sizeof *st);
  char *top = NULL;

  if (st == NULL) {
    xs_error ("cannot open the receive state: %m");
    return NULL;
  }
  st->fd = -1;
  if (!is_stream_id (stream_id)) {
    xs_error ("'%s' is not a stream id", stream_id);
    goto fail;
  }
  if (!xs_repo_name_is_valid ("account", scope->account))
    goto fail;
  top = receive_dir (store, scope->region, NULL);
  st->dir = receive_dir (store, scope->region, scope->account);
  if (top == NULL || st->dir == NULL
      || make_dir (top) == -1 || make_dir (st->dir) == -1)
    goto fail;
  if (asprintf (&st->path, "%s/%s", st->dir, stream_id) == -1) {
    st->path = NULL;
    xs_error ("cannot open the receive state: %m");
    goto fail;
  }
  st->fd = open_locked (st->path, stream_id);
  if (st->fd == -1)
    goto fail;
  free (top);
  return st;

 fail:
  free (top);
  xs_recvstate_close (st);
  return NULL;
}

void
xs_recvstate_close (struct xs_recvstate *st)
{
  if (st == NULL)
    return;
  if (st->fd >= 0)
    close (st->fd);
  free (st->path);
  free (st->dir);
  free (st);
}

/* ----- Reading ----- */

/* What reading a state file found. */
struct loaded {
  uint64_t next_block;
  uint64_t stored_bytes;
  uint64_t entries;
  uint64_t end;                 /* the end of the last good batch */
};

/* Read exactly LEN bytes at OFFSET: 0, 1 if the file is shorter, -1. */
static int
read_at (int fd, void *buf, size_t len, uint64_t offset, const char *path)
{
  if (xs_full_pread (fd, buf, len, offset) == 0)
    return 0;
  if (errno == EIO)
    return 1;                   /* end of file (or a real EIO: unusable) */
  xs_error ("cannot read %s: %m", path);
  return -1;
}

/* The header: 0 with *INFO and *END, 1 if unusable, -1 on error. */
static int
load_header (int fd, const char *path, const char *stream_id,
             struct xs_stream_info *info, uint64_t *end)
{
  uint8_t prefix[STATE_PREFIX], *buf;
  json_t *obj;
  uint32_t len;
  int r;

  r = read_at (fd, prefix, sizeof prefix, 0, path);
  if (r != 0)
    return r;
  if (memcmp (prefix, STATE_MAGIC, 8) != 0)
    return 1;
  if (xs_get_le32 (prefix + 8) != STATE_VERSION) {
    xs_error ("%s: receive state version %" PRIu32 " is not supported "
              "(this xsnap writes %d)", path, xs_get_le32 (prefix + 8),
              STATE_VERSION);
    return -1;
  }
  len = xs_get_le32 (prefix + 12);
  if (len > XS_STREAM_MAX_METADATA)
    return 1;
  buf = malloc (STATE_PREFIX + len + CHECK_SIZE);
  if (buf == NULL) {
    xs_error ("cannot read %s: %m", path);
    return -1;
  }
  memcpy (buf, prefix, sizeof prefix);
  r = read_at (fd, buf + STATE_PREFIX, len + CHECK_SIZE, STATE_PREFIX, path);
  if (r == 0 && xs_get_le64 (buf + STATE_PREFIX + len)
      != xs_hash64 (buf, STATE_PREFIX + len))
    r = 1;
  if (r == 0) {
    obj = json_loadb ((const char *) buf + STATE_PREFIX, len,
                      JSON_REJECT_DUPLICATES, NULL);
    r = obj && xs_stream_info_from_json (obj, path, info) == 0 ? 0 : -1;
    json_decref (obj);
    if (r == 0 && strcmp (info->stream_id, stream_id) != 0) {
      xs_error ("%s: the state of another stream (%s)", path,
                info->stream_id);
      xs_stream_info_clear (info);
      r = -1;
    }
    else if (r == -1 && obj == NULL)
      xs_error ("%s: bad JSON in the receive state", path);
  }
  free (buf);
  *end = STATE_PREFIX + len + CHECK_SIZE;
  return r;
}

/* Check one batch's entries against each other and the stream. */
static bool
batch_is_sane (const uint8_t *b, uint32_t n, uint64_t next_block,
               const struct xs_stream_info *info, const struct loaded *l)
{
  uint64_t previous = l->next_block, block;

  if (next_block < l->next_block || next_block > info->nblocks)
    return false;
  for (uint32_t i = 0; i < n; i++) {
    block = xs_get_le64 (b + BATCH_HEAD + (size_t) i * ENTRY_SIZE);
    if (block < previous || block >= next_block)
      return false;
    previous = block + 1;
  }
  return true;
}

/* One batch at L->end: 0 read (FN called), 1 no more, -1 error. */
static int
load_batch (int fd, const char *path, const struct xs_stream_info *info,
            struct loaded *l,
            int (*fn) (const struct xs_recvstate_entry *e, void *opaque),
            void *opaque)
{
  uint8_t head[BATCH_HEAD], *b;
  struct xs_recvstate_entry e;
  size_t len;
  uint32_t n;
  int r;

  r = read_at (fd, head, sizeof head, l->end, path);
  if (r != 0)
    return r;
  n = xs_get_le32 (head + 4);
  if (memcmp (head, BATCH_MAGIC, 4) != 0 || n > XS_RECVSTATE_BATCH_MAX)
    return 1;
  len = BATCH_HEAD + (size_t) n * ENTRY_SIZE;
  b = malloc (len + CHECK_SIZE);
  if (b == NULL) {
    xs_error ("cannot read %s: %m", path);
    return -1;
  }
  memcpy (b, head, sizeof head);
  r = read_at (fd, b + BATCH_HEAD, len - BATCH_HEAD + CHECK_SIZE,
               l->end + BATCH_HEAD, path);
  if (r == 0 && (xs_get_le64 (b + len) != xs_hash64 (b, len)
                 || !batch_is_sane (b, n, xs_get_le64 (head + 8), info, l)))
    r = 1;
  for (uint32_t i = 0; r == 0 && i < n; i++) {
    e.block = xs_get_le64 (b + BATCH_HEAD + (size_t) i * ENTRY_SIZE);
    memcpy (e.id.bytes, b + BATCH_HEAD + (size_t) i * ENTRY_SIZE + 8, 16);
    if (fn && fn (&e, opaque) != 0)
      r = -1;
  }
  if (r == 0) {
    l->next_block = xs_get_le64 (head + 8);
    l->stored_bytes = xs_get_le64 (head + 16);
    l->entries += n;
    l->end += len + CHECK_SIZE;
  }
  free (b);
  return r;
}

static int
load_fd (int fd, const char *path, const char *stream_id,
         struct xs_stream_info *info,
         int (*fn) (const struct xs_recvstate_entry *e, void *opaque),
         void *opaque, struct loaded *l)
{
  int r;

  memset (l, 0, sizeof *l);
  r = load_header (fd, path, stream_id, info, &l->end);
  if (r != 0)
    return r;
  l->next_block = info->first_block;
  while ((r = load_batch (fd, path, info, l, fn, opaque)) == 0)
    ;
  if (r == -1) {
    xs_stream_info_clear (info);
    return -1;
  }
  return 0;
}

int
xs_recvstate_load (struct xs_recvstate *st, struct xs_stream_info *info,
                   int (*fn) (const struct xs_recvstate_entry *e,
                              void *opaque),
                   void *opaque, uint64_t *next_block,
                   uint64_t *stored_bytes)
{
  const char *stream_id = strrchr (st->path, '/') + 1;
  struct loaded l;
  int r;

  r = load_fd (st->fd, st->path, stream_id, info, fn, opaque, &l);
  if (r != 0)
    return r;
  st->end = l.end;
  st->trimmed = false;
  *next_block = l.next_block;
  *stored_bytes = l.stored_bytes;
  return 0;
}

/* ----- Writing ----- */

int
xs_recvstate_start (struct xs_recvstate *st,
                    const struct xs_stream_info *info)
{
  json_t *obj = xs_stream_info_to_json (info);
  char *text = obj ? json_dumps (obj, JSON_COMPACT) : NULL;
  uint8_t *buf = NULL;
  size_t len;
  int r = -1;

  json_decref (obj);
  if (text == NULL || strlen (text) > XS_STREAM_MAX_METADATA
      || (buf = malloc (STATE_PREFIX + strlen (text) + CHECK_SIZE)) == NULL) {
    xs_error ("cannot save the receive state: out of memory");
    goto out;
  }
  len = strlen (text);
  memcpy (buf, STATE_MAGIC, 8);
  xs_put_le32 (buf + 8, STATE_VERSION);
  xs_put_le32 (buf + 12, (uint32_t) len);
  memcpy (buf + STATE_PREFIX, text, len);
  xs_put_le64 (buf + STATE_PREFIX + len, xs_hash64 (buf, STATE_PREFIX + len));
  len += STATE_PREFIX + CHECK_SIZE;
  if (ftruncate (st->fd, 0) == -1
      || xs_full_pwrite (st->fd, buf, len, 0) == -1
      || fdatasync (st->fd) == -1) {
    xs_error ("cannot save the receive state %s: %m", st->path);
    goto out;
  }
  if (xs_fsync_dir (st->dir) == -1)
    goto out;
  st->end = len;
  st->trimmed = true;
  r = 0;
 out:
  free (text);
  free (buf);
  return r;
}

int
xs_recvstate_append (struct xs_recvstate *st,
                     const struct xs_recvstate_entry *entries, size_t n,
                     uint64_t next_block, uint64_t stored_bytes)
{
  size_t len = BATCH_HEAD + n * ENTRY_SIZE;
  uint8_t *b;
  int r = -1;

  if (n > XS_RECVSTATE_BATCH_MAX) {
    xs_error ("cannot save the receive state: a batch of %zu entries", n);
    return -1;
  }
  b = malloc (len + CHECK_SIZE);
  if (b == NULL) {
    xs_error ("cannot save the receive state: %m");
    return -1;
  }
  memcpy (b, BATCH_MAGIC, 4);
  xs_put_le32 (b + 4, (uint32_t) n);
  xs_put_le64 (b + 8, next_block);
  xs_put_le64 (b + 16, stored_bytes);
  for (size_t i = 0; i < n; i++) {
    xs_put_le64 (b + BATCH_HEAD + i * ENTRY_SIZE, entries[i].block);
    memcpy (b + BATCH_HEAD + i * ENTRY_SIZE + 8, entries[i].id.bytes, 16);
  }
  xs_put_le64 (b + len, xs_hash64 (b, len));
  /* A torn batch a crash left after the good ones goes first. */
  if ((!st->trimmed && ftruncate (st->fd, (off_t) st->end) == -1)
      || xs_full_pwrite (st->fd, b, len + CHECK_SIZE, st->end) == -1
      || fdatasync (st->fd) == -1)
    xs_error ("cannot save the receive state %s: %m", st->path);
  else {
    st->end += len + CHECK_SIZE;
    st->trimmed = true;
    r = 0;
  }
  free (b);
  return r;
}

int
xs_recvstate_remove (struct xs_recvstate *st)
{
  /* Emptied first, so that a receive that opened the file before the
   * unlink finds no state in it.
   */
  if (ftruncate (st->fd, 0) == -1
      || (unlink (st->path) == -1 && errno != ENOENT)) {
    xs_error ("cannot remove the receive state %s: %m", st->path);
    return -1;
  }
  return xs_fsync_dir (st->dir);
}

/* ----- Tokens ----- */

/* The store's token key, made on first use (in a transaction, so that two
 * receives starting at once agree on it).
 */
static int
token_key (struct xs_store *store, uint8_t key[TOKEN_KEY_LEN])
{
  struct xs_catalog *cat = xs_store_catalog (store);
  char *hex = NULL, fresh[2 * TOKEN_KEY_LEN + 1];
  uint8_t raw[TOKEN_KEY_LEN];
  int r = -1, found;

  xs_catalog_lock (cat);
  if (xs_catalog_begin (cat) == -1)
    goto out;
  found = xs_catalog_get_setting (cat, TOKEN_KEY_SETTING, &hex);
  if (found == 1) {
    if (xs_random_bytes (raw, sizeof raw) == -1)
      goto rollback;
    for (size_t i = 0; i < sizeof raw; i++)
      snprintf (fresh + 2 * i, 3, "%02x", raw[i]);
    if (xs_catalog_set_setting (cat, TOKEN_KEY_SETTING, fresh) == -1
        || (hex = strdup (fresh)) == NULL)
      goto rollback;
  }
  else if (found == -1)
    goto rollback;
  if (xs_catalog_commit (cat) == -1)
    goto rollback;
  r = 0;
  for (size_t i = 0; i < TOKEN_KEY_LEN; i++) {
    int high = xs_hex_digit_value (hex[2 * i]);
    int low = high < 0 ? -1 : xs_hex_digit_value (hex[2 * i + 1]);
    if (low < 0) {
      xs_error ("the store's resume token key is damaged (setting %s)",
                TOKEN_KEY_SETTING);
      r = -1;
      break;
    }
    key[i] = (uint8_t) (high << 4 | low);
  }
  goto out;

 rollback:
  xs_catalog_rollback (cat);
 out:
  xs_catalog_unlock (cat);
  free (hex);
  return r;
}

/* The hex MAC of (SCOPE, STREAM_ID, NEXT_BLOCK). */
static int
token_mac (struct xs_store *store, const struct xs_scope *scope,
           const char *stream_id, uint64_t next_block,
           char mac_hex[2 * TOKEN_MAC_LEN + 1])
{
  static const char domain[] = "xsnap-resume-1";
  uint8_t key[TOKEN_KEY_LEN], mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  char *message;
  int len;

  if (token_key (store, key) == -1)
    return -1;
  len = asprintf (&message, "%s%c%s%c%s%c%s%c%016" PRIx64, domain, 0,
                  scope->account, 0, scope->region, 0, stream_id, 0,
                  next_block);
  if (len == -1
      || HMAC (EVP_sha256 (), key, sizeof key, (const uint8_t *) message,
               (size_t) len, mac, &mac_len) == NULL) {
    xs_error ("cannot compute a resume token");
    OPENSSL_cleanse (key, sizeof key);
    if (len != -1)
      free (message);
    return -1;
  }
  OPENSSL_cleanse (key, sizeof key);
  free (message);
  for (size_t i = 0; i < TOKEN_MAC_LEN; i++)
    snprintf (mac_hex + 2 * i, 3, "%02x", mac[i]);
  return 0;
}

int
xs_recvstate_make_token (struct xs_store *store,
                         const struct xs_scope *scope,
                         const char *stream_id, uint64_t next_block,
                         char token[XS_STREAM_TOKEN_MAX])
{
  char mac[2 * TOKEN_MAC_LEN + 1];

  if (token_mac (store, scope, stream_id, next_block, mac) == -1)
    return -1;
  snprintf (token, XS_STREAM_TOKEN_MAX, "xsr1-%s-%016" PRIx64 "-%s",
            stream_id, next_block, mac);
  return 0;
}

int
xs_recvstate_check_token (struct xs_store *store,
                          const struct xs_scope *scope, const char *token)
{
  char stream_id[XS_STREAM_ID_LEN + 1], given[33], want[33];
  uint64_t next_block;

  if (xs_stream_token_parse (token, stream_id, &next_block, given) == -1
      || token_mac (store, scope, stream_id, next_block, want) == -1)
    return -1;
  if (CRYPTO_memcmp (given, want, 2 * TOKEN_MAC_LEN) != 0) {
    xs_error ("the resume token does not verify: it was not issued by this "
              "store for account '%s', region '%s' (forged or edited?)",
              scope->account, scope->region);
    return -1;
  }
  return 0;
}

/* ----- Listing ----- */

struct name_list {
  char **names;
  size_t len;
};

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
name_list_free (struct name_list *l)
{
  for (size_t i = 0; i < l->len; i++)
    free (l->names[i]);
  free (l->names);
}

/* The entries of DIR accepted by KEEP, sorted; a missing DIR is empty. */
static int
list_dir (const char *dir, bool (*keep) (const char *name),
          struct name_list *out)
{
  DIR *d = opendir (dir);
  struct dirent *de;
  char **grown;

  memset (out, 0, sizeof *out);
  if (d == NULL && errno == ENOENT)
    return 0;
  if (d == NULL) {
    xs_error ("cannot list %s: %m", dir);
    return -1;
  }
  while ((de = readdir (d)) != NULL) {
    if (!keep (de->d_name))
      continue;
    grown = realloc (out->names, (out->len + 1) * sizeof *grown);
    if (grown == NULL || (grown[out->len] = strdup (de->d_name)) == NULL) {
      xs_error ("cannot list %s: %m", dir);
      if (grown)
        out->names = grown;
      name_list_free (out);
      closedir (d);
      return -1;
    }
    out->names = grown;
    out->len++;
  }
  closedir (d);
  if (out->len > 1)
    qsort (out->names, out->len, sizeof *out->names, compare_names);
  return 0;
}

/* Read the state in DIR/NAME: 0 (ENTRY called for each entry), 1 if
 * there is none, -1 on error.
 */
static int
read_one (const char *dir, const char *name,
          int (*entry) (const struct xs_recvstate_entry *e, void *opaque),
          void *entry_opaque, struct xs_recvstate_summary *s,
          struct xs_stream_info *info)
{
  char *path;
  struct loaded l;
  int fd, r;

  if (asprintf (&path, "%s/%s", dir, name) == -1) {
    xs_error ("cannot list the receive states: %m");
    return -1;
  }
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    free (path);
    return 1;                   /* removed meanwhile */
  }
  /* A receive holding the lock is using the state.  Ours is dropped at
   * once, so that a receive starting now is not refused.
   */
  s->active = flock (fd, LOCK_SH | LOCK_NB) == -1;
  if (!s->active)
    flock (fd, LOCK_UN);
  r = load_fd (fd, path, name, info, entry, entry_opaque, &l);
  close (fd);
  free (path);
  if (r != 0)
    return r;                   /* 1: empty or torn, not listed */
  s->info = info;
  s->next_block = l.next_block;
  s->blocks_received = l.entries;
  s->stored_bytes = l.stored_bytes;
  return 0;
}

static bool
keep_stream_id (const char *name)
{
  return is_stream_id (name);
}

static bool
keep_account (const char *name)
{
  return name[0] != '.';
}

int
xs_recvstate_list (struct xs_store *store, const struct xs_scope *scope,
                   int (*fn) (const struct xs_recvstate_summary *s,
                              void *opaque),
                   void *opaque)
{
  char *dir = receive_dir (store, scope->region, scope->account);
  struct name_list names;
  struct xs_recvstate_summary s;
  struct xs_stream_info info;
  int r = 0;

  if (dir == NULL || list_dir (dir, keep_stream_id, &names) == -1) {
    free (dir);
    return -1;
  }
  for (size_t i = 0; r == 0 && i < names.len; i++) {
    memset (&s, 0, sizeof s);
    memset (&info, 0, sizeof info);
    r = read_one (dir, names.names[i], NULL, NULL, &s, &info);
    if (r == 0)
      r = fn (&s, opaque);
    else if (r == 1)
      r = 0;
    xs_stream_info_clear (&info);
  }
  name_list_free (&names);
  free (dir);
  return r;
}

struct chunk_pass {
  int (*fn) (const struct xs_hash128 *id, void *opaque);
  void *opaque;
};

static int
pass_chunk (const struct xs_recvstate_entry *e, void *opaque)
{
  struct chunk_pass *pass = opaque;

  return xs_hash128_is_zero (&e->id) ? 0 : pass->fn (&e->id, pass->opaque);
}

/* The chunks named by every state of one account's directory. */
static int
account_chunks (const char *dir, struct chunk_pass *pass)
{
  struct name_list names;
  struct xs_recvstate_summary s;
  struct xs_stream_info info;
  int r = 0;

  if (list_dir (dir, keep_stream_id, &names) == -1)
    return -1;
  for (size_t i = 0; r == 0 && i < names.len; i++) {
    memset (&info, 0, sizeof info);
    r = read_one (dir, names.names[i], pass_chunk, pass, &s, &info);
    r = r == 1 ? 0 : r;
    xs_stream_info_clear (&info);
  }
  name_list_free (&names);
  return r;
}

int
xs_recvstate_chunks (struct xs_store *store, const char *region,
                     int (*fn) (const struct xs_hash128 *id, void *opaque),
                     void *opaque)
{
  char *top = receive_dir (store, region, NULL), *dir;
  struct chunk_pass pass = { fn, opaque };
  struct name_list accounts;
  int r = 0;

  if (top == NULL || list_dir (top, keep_account, &accounts) == -1) {
    free (top);
    return -1;
  }
  for (size_t i = 0; r == 0 && i < accounts.len; i++) {
    if (asprintf (&dir, "%s/%s", top, accounts.names[i]) == -1) {
      xs_error ("cannot list the receive states: %m");
      r = -1;
      break;
    }
    r = account_chunks (dir, &pass);
    free (dir);
  }
  name_list_free (&accounts);
  free (top);
  return r;
}
