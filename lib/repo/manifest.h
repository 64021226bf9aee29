/* xsnap: snapshot manifests.
 *
 * A manifest is what makes a snapshot self-contained: it maps every block
 * of the volume to the id of the chunk holding that block's content, or to
 * the zero id (all bytes zero) for a block of zeros.  It also carries the
 * snapshot's metadata and a root hash over the volume geometry and the
 * entries, so two snapshots with the same content have the same root.
 * Manifests arrive from other accounts, regions and streams, so the parser
 * treats its input as hostile.  docs/FORMAT.md, "Manifest (version 1)",
 * has the byte layout.
 */
#ifndef XSNAP_MANIFEST_H
#define XSNAP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <stdbool.h>

#include "crypto/chunkcrypt.h"
#include "base/hash.h"

#define XS_MANIFEST_VERSION 1
/* A manifest of an encrypted snapshot: version 1's layout, metadata that
 * names the key, and at the end an HMAC-SHA256 of what the snapshot is:
 * its id, its root hash (geometry and entries) and its key fields.
 */
#define XS_MANIFEST_VERSION_ENCRYPTED 2
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

  /* nblocks entries: block i's chunk id, or all zero for a zero block. */
  struct xs_hash128 *entries;

  /* XXH3-128 over (size as le64, block_size as le32, the entries); valid
   * after xs_manifest_seal or xs_manifest_parse.
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

/* The MAC of encrypted manifest M (sealed) under DK.  0 or -1. */
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

/* Compute m->root from the geometry and entries. */
extern void xs_manifest_seal (struct xs_manifest *m);

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

/* Calls fn for each maximal run [first, first + count) of blocks whose
 * entries differ between a and b, in increasing order.  The geometries
 * (size and block size) must be the same.  A non-zero return from fn stops
 * and is returned; otherwise 0, or -1 with an error.
 */
extern int xs_manifest_diff (const struct xs_manifest *a,
                             const struct xs_manifest *b,
                             int (*fn) (uint64_t first, uint64_t count,
                                        void *opaque),
                             void *opaque);

#endif /* XSNAP_MANIFEST_H */
