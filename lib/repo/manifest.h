/* xsnap: snapshot manifests.
 *
 * A manifest is what makes a snapshot self-contained: its metadata, its
 * geometry and its block map, which gives every block of the volume the
 * id of the chunk holding its content, or the zero id (all bytes zero).
 * The map is a tree of pages in the repository (maptree.h), so the
 * manifest itself is small and names only the top page; its root hash
 * covers the geometry and that page, so two snapshots with the same
 * content have the same root.  Manifests written before the tree (flat
 * entries, versions 1 and 2) are still read, their map held in memory.
 * Manifests arrive from other accounts, regions and streams, so the
 * parser treats its input as hostile.  docs/FORMAT.md, "Manifest
 * (versions 3 and 4)", has the byte layout.
 */
#ifndef XSNAP_MANIFEST_H
#define XSNAP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "crypto/chunkcrypt.h"
#include "base/hash.h"

/* Versions 1 (plain) and 2 (encrypted) hold the block map flat and are
 * read only; versions 3 and 4 name the top page of a tree (maptree.h).
 */
#define XS_MANIFEST_VERSION_FLAT 1
#define XS_MANIFEST_VERSION_FLAT_ENCRYPTED 2
#define XS_MANIFEST_VERSION 3
/* A manifest of an encrypted snapshot: version 1's layout, metadata that
 * names the key, and at the end an HMAC-SHA256 of what the snapshot is:
 * its id, its root hash (geometry and entries) and its key fields.
 */
#define XS_MANIFEST_VERSION_ENCRYPTED 4
#define XS_MANIFEST_MIN_BLOCK_SIZE 4096u
#define XS_MANIFEST_MAX_BLOCK_SIZE (4u * 1024 * 1024)
#define XS_MANIFEST_MAX_BLOCKS (UINT64_C (1) << 32)

struct xs_manifest {
  /* Metadata.  Strings are never NULL; "" when unset (parent_id "" means
   * no parent).  Set them with xs_manifest_set.
   */
  char *snapshot_id;
  char *volume_id;
  char *volume_name;
  char *account;
  char *region;
  char *parent_id;
  char *name;
  char *status;
  int64_t created_ns;           /* Unix time in nanoseconds */

  /* Geometry: nblocks = ceil (size / block_size).  Do not change these
   * after xs_manifest_new; make a new manifest instead.
   */
  uint64_t size;
  uint32_t block_size;
  uint64_t nblocks;

  /* The block map (private: use the block map functions below), its
   * repository (owned) and the top page's id as last sealed or read.
   * flat: read from a version 1 or 2 manifest and not sealed since, so
   * root is the flat root those versions have.
   */
  struct xs_maptree *map;
  struct xs_repo *repo;
  struct xs_repo *source_repo;  /* where its pages were before attach */
  struct xs_hash128 top;
  bool flat;

  /* What the snapshot's content is, geometry included: the SHA-256 name
   * of (geometry, top page id); for a flat manifest the XXH3-128 of
   * (geometry, every entry).  Valid after xs_manifest_seal or
   * xs_manifest_parse.
   */
  struct xs_hash128 root;

  /* Encryption: all "" for an unencrypted snapshot.  key_id of
   * key_account wraps data_key (hex), the snapshot's data key.
   */
  char *key_id;
  char *key_account;
  char *data_key;
  /* The unwrapped data key, owned: set by xs_manifest_set_encryption or
   * by xs_manifest_authenticate (the parser leaves it NULL, so nothing
   * can read an encrypted manifest's chunks before its MAC is checked).
   */
  struct xs_data_key *dk;
  /* The MAC an encrypted manifest carries, when known without its key:
   * read by the parser, or given with xs_manifest_set_mac.
   */
  unsigned char mac[XS_MANIFEST_MAC_LEN];
  bool has_mac;
};

/* Checks a geometry (block_size a power of two from 4 KiB to 4 MiB, at
 * most XS_MANIFEST_MAX_BLOCKS blocks) and gives its number of blocks.
 * Returns 0, or -1 with an error.
 */
extern int xs_manifest_geometry (uint64_t size, uint32_t block_size,
                                 uint64_t *nblocks);

/* A manifest of all-zero blocks, strings "" except status "available",
 * created_ns 0.  NULL with an error for a bad geometry.
 */
extern struct xs_manifest *xs_manifest_new (uint64_t size,
                                            uint32_t block_size);

/* Set a string field by its name ("snapshot_id", "volume_id",
 * "volume_name", "account", "region", "parent_id", "name", "status").
 * value must be valid UTF-8.  Returns 0, or -1 with an error.
 */
extern int xs_manifest_set (struct xs_manifest *m, const char *field,
                            const char *value);

/* Make M encrypted under data key DK (copied), wrapped as WRAPPED by key
 * KEY_ID of KEY_ACCOUNT.  Returns 0, or -1 with an error.
 */
struct xs_data_key;
extern int xs_manifest_set_encryption (struct xs_manifest *m,
                                       const char *key_id,
                                       const char *key_account,
                                       const char *wrapped,
                                       const struct xs_data_key *dk);

static inline int
xs_manifest_is_encrypted (const struct xs_manifest *m)
{
  return m->key_id != NULL && m->key_id[0] != '\0';
}

/* Check the MAC of an encrypted manifest M (parsed, so its root is
 * verified) under DK; on success M takes DK over.  -1 with an error (DK
 * freed) if the MAC does not match: the manifest was tampered with.
 */
extern int xs_manifest_authenticate (struct xs_manifest *m,
                                     struct xs_data_key *dk);

/* The MAC under DK of encrypted manifest M as a tree manifest (what M is
 * once sealed, and what a copy or receive of its content writes, even
 * when M is a flat manifest read as it is).  0 or -1.
 */
extern int xs_manifest_compute_mac (const struct xs_manifest *m,
                                    const struct xs_data_key *dk,
                                    unsigned char mac[XS_MANIFEST_MAC_LEN]);

/* Give encrypted manifest M, whose data key is not open, the MAC MAC that
 * its sender computed (a raw stream): it is written as it is, and checked
 * when the manifest is loaded with its key.  The MAC covers the id, the
 * root and the key fields, so it stays valid as long as those do.
 */
extern void xs_manifest_set_mac (struct xs_manifest *m,
                                 const unsigned char mac[XS_MANIFEST_MAC_LEN]);

/* A deep copy (for a child snapshot: copy the parent, change some
 * entries and metadata, seal).  NULL with an error.
 */
extern struct xs_manifest *xs_manifest_copy (const struct xs_manifest *m);

/* Compute m->root from the geometry and the block map, first writing
 * whatever part of the map is not stored yet to the manifest's repository
 * (xs_manifest_attach).  Returns 0, or -1 with an error.
 */
extern int xs_manifest_seal (struct xs_manifest *m);

/* Serialize to a malloc'd buffer.  The root written is computed afresh
 * (m->root is not trusted).  An encrypted manifest is written as version
 * 2 and needs its data key (m->dk) for the MAC, or a MAC given with
 * xs_manifest_set_mac.  Returns 0, or -1 with an
 * error.
 */
extern int xs_manifest_serialize (const struct xs_manifest *m,
                                  void **data, size_t *len);

/* Parse and verify a serialized manifest: checksum, version, metadata,
 * geometry, entries and root hash.  An encrypted manifest's MAC is not
 * checked here (see xs_manifest_authenticate).  what names the manifest in messages
 * (e.g. its key); may be NULL.  NULL with an error on any problem.
 */
extern struct xs_manifest *xs_manifest_parse (const void *data, size_t len,
                                              const char *what);

extern void xs_manifest_free (struct xs_manifest *m);

/* ----- The block map -----
 *
 * Callers read and change a manifest's entries only through these (never
 * m->entries, which is the map's private representation): a map may live
 * in its repository and be read on demand, so every call can fail, and
 * all are safe to call from many threads at once on one manifest.
 */

/* The root M has as a tree manifest: m->root, except for a flat manifest
 * not sealed since it was read, whose m->root is its flat root.  What a
 * copy or a receive of M's content (a tree) must arrive at.
 */
extern void xs_manifest_tree_root (const struct xs_manifest *m,
                                   struct xs_hash128 *root);

/* The root M would have as a flat (version 1 or 2) manifest, for
 * comparing with what older releases recorded or sent: computed by
 * hashing every entry, so it costs time in the size of the volume (not
 * memory).  0, or -1 with an error.
 */
extern int xs_manifest_flat_root (struct xs_manifest *m,
                                  struct xs_hash128 *root);

/* Give M its repository, where its map is read from and written to; M
 * takes REPO over and closes it when freed.  A copy opens its own.  If M
 * had a repository of another namespace (a copy of a manifest of another
 * account or region), pages are still read from there, and sealing first
 * copies into REPO every page the map uses that only the old one has.
 */
struct xs_repo;
extern void xs_manifest_attach (struct xs_manifest *m, struct xs_repo *repo);

/* Block BLOCK's entry (< m->nblocks): 0, or -1 with an error. */
extern int xs_manifest_get_block (struct xs_manifest *m, uint64_t block,
                                  struct xs_hash128 *id);

/* Set block BLOCK's entry to ID: 1 if that changed it, 0 if it was ID
 * already, -1 with an error.  Call xs_manifest_seal before using the
 * manifest's root.
 */
extern int xs_manifest_set_block (struct xs_manifest *m, uint64_t block,
                                  const struct xs_hash128 *id);

/* Calls fn for each block of [first, first + count) whose entry is not
 * zero, in increasing order, at a cost that follows those blocks and not
 * the range.  A non-zero return from fn stops and is returned; otherwise
 * 0, or -1 with an error.
 */
extern int xs_manifest_for_each_block (struct xs_manifest *m, uint64_t first,
                                       uint64_t count,
                                       int (*fn) (uint64_t block,
                                                  const struct xs_hash128 *id,
                                                  void *opaque),
                                       void *opaque);

/* A walk over everything a manifest refers to: the pages its map is
 * stored in and the chunks of its blocks.
 */
struct xs_manifest_visitor {
  /* Called for each page of the map before what is under it; return 0
   * to go into it, 1 to skip it and everything under it (it was seen
   * before), anything else to stop.  NULL: go into every page.
   */
  int (*page) (const struct xs_hash128 *id, unsigned level, void *opaque);
  /* Called for each block with a non-zero entry that is not under a
   * skipped page, in increasing order.  Non-zero stops.  May be NULL.
   */
  int (*block) (uint64_t block, const struct xs_hash128 *id, void *opaque);
  void *opaque;
};

/* Walk M with V.  Returns what stopped it, or 0, or -1 with an error. */
extern int xs_manifest_walk (struct xs_manifest *m,
                             const struct xs_manifest_visitor *v);

/* Calls fn for each maximal run [first, first + count) of blocks whose
 * entries differ between a and b, in increasing order.  The geometries
 * (size and block size) must be the same.  A non-zero return from fn stops
 * and is returned; otherwise 0, or -1 with an error.
 */
extern int xs_manifest_diff (struct xs_manifest *a,
                             struct xs_manifest *b,
                             int (*fn) (uint64_t first, uint64_t count,
                                        void *opaque),
                             void *opaque);

#endif /* XSNAP_MANIFEST_H */
