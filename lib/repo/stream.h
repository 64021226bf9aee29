/* xsnap: replication streams, written and parsed.
 *
 * A stream carries one snapshot from one store to another through a pipe
 * or a file (xsnap send | ssh host xsnap receive): a header describing the
 * snapshot (and, for an incremental stream, the base it applies to), one
 * record per carried block in ascending block order, and a trailer.  Every
 * frame checks itself and the trailer checks the whole stream, so a cut or
 * damaged stream is always detected.  docs/FORMAT.md, "Replication
 * stream", has the byte layout.
 *
 * This module only encodes and decodes; it does no I/O.  The writer hands
 * its bytes to a callback; the parser is fed bytes as they arrive and
 * never holds more than one frame (at most about one chunk), so it runs
 * the same over a pipe, a file or a fuzzer's buffer.
 */
#ifndef XSNAP_STREAM_H
#define XSNAP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/hash.h"

/* Versions come in pairs: plain, and with an encryption mode.  1 and 2
 * carry the roots of flat manifests (manifest.h); 3 and 4 those of tree
 * manifests; 5 and 6, what this release writes, also name in each
 * reference the block whose chunk it reuses, so that a receiver checks
 * it against one entry instead of a set of every chunk.
 */
#define XS_STREAM_VERSION_FLAT 1
#define XS_STREAM_VERSION_FLAT_ENCRYPTED 2
#define XS_STREAM_VERSION_UNSOURCED 3
#define XS_STREAM_VERSION_UNSOURCED_ENCRYPTED 4
#define XS_STREAM_VERSION 5
/* A stream of an encrypted snapshot, or one made for a receiver that
 * encrypts (see encryption below): version 5 with an "encryption" object.
 */
#define XS_STREAM_VERSION_ENCRYPTED 6
#define XS_STREAM_MAC_LEN 32
#define XS_STREAM_ID_LEN 32             /* hex digits */
#define XS_STREAM_MAX_METADATA (64 * 1024)
/* Longest resume token ("xsr1-" ...; see xs_stream_token_parse). */
#define XS_STREAM_TOKEN_MAX 96

/* What the header says (its JSON metadata). */
struct xs_stream_info {
  char stream_id[XS_STREAM_ID_LEN + 1];
  char *account;                /* where the snapshot comes from */
  char *region;
  char *volume_id;
  char *volume_name;
  char *snapshot_id;
  char *snapshot_name;
  int64_t created_ns;
  uint64_t size;
  uint32_t block_size;
  uint64_t nblocks;
  struct xs_hash128 root;       /* the snapshot's manifest root */
  /* Set by the parser for a stream of version 1 or 2: its roots are flat
   * roots (xs_manifest_flat_root), written by an older release.
   */
  bool flat_roots;
  /* Set by the parser for a stream of version 5 or 6 (and by the
   * writer, which writes no other): each reference names its source
   * block.  Older streams' references name only a chunk.
   */
  bool sourced_refs;
  char *base_snapshot_id;       /* "" for a full stream */
  struct xs_hash128 base_root;  /* zero for a full stream */
  char *resume_token;           /* "" unless the stream resumes another */
  uint64_t first_block;         /* no record before it; 0 unless resumed */
  uint64_t records;             /* records this stream carries */
  /* Encryption (a version 2 or 4 stream); NULL or "" in a version 1 or 3
   * stream.
   *   "raw"        the chunks as stored, encrypted under the data key
   *                DATA_KEY (wrapped by key KEY_ID of KEY_ACCOUNT);
   *                MANIFEST_MAC is the snapshot's manifest MAC, which the
   *                receiver keeps (it cannot compute it without the key)
   *   "reencrypt"  the chunks in plaintext form and no references, for
   *                a receiver that encrypts them under a key of its own
   * Set these before xs_stream_info_set_strings: the stream id covers the
   * mode.
   */
  char *encryption;
  char *key_id, *key_account, *data_key;
  unsigned char manifest_mac[XS_STREAM_MAC_LEN];
  /* Never in a stream: the saved state of an interrupted receive that
   * encrypts records the key it encrypts under (key RECEIVER_KEY_ID of the
   * receiving account wraps RECEIVER_DATA_KEY), so that its resumption
   * names chunks the same way.  NULL or "" otherwise.
   */
  char *receiver_key_id, *receiver_data_key;
};

/* Set the encryption fields (copies); KEY_ID, KEY_ACCOUNT, DATA_KEY and
 * MAC only for "raw" (else NULL).  0, or -1 with an error.
 */
extern int xs_stream_info_set_encryption (struct xs_stream_info *info,
                                          const char *mode,
                                          const char *key_id,
                                          const char *key_account,
                                          const char *data_key,
                                          const unsigned char *mac);

static inline const char *
xs_stream_encryption (const struct xs_stream_info *info)
{
  return info->encryption ? info->encryption : "";
}

/* Free the strings and zero INFO. */
extern void xs_stream_info_clear (struct xs_stream_info *info);

/* Set the string fields from the given values (copies) and compute the
 * stream id, which covers the root and base root: set those first.  The
 * other numbers are the caller's.  Returns 0, or -1 with an error.
 */
extern int xs_stream_info_set_strings (struct xs_stream_info *info,
                                       const char *account,
                                       const char *region,
                                       const char *volume_id,
                                       const char *volume_name,
                                       const char *snapshot_id,
                                       const char *snapshot_name,
                                       const char *base_snapshot_id,
                                       const char *resume_token);

/* The stream id of (snapshot, base, encryption mode): the same for every
 * send of that pair in that mode, so a resumed send continues the same
 * stream.  BASE_ID is "" and BASE_ROOT NULL for a full stream; MODE is
 * "" for a version 1 stream.
 */
extern void xs_stream_make_id (const char *snapshot_id,
                               const struct xs_hash128 *root,
                               const char *base_id,
                               const struct xs_hash128 *base_root,
                               const char *mode,
                               char id[XS_STREAM_ID_LEN + 1]);

/* The metadata as JSON, and back (checked as the parser checks it: all
 * fields, types, ranges, geometry and the stream id).  what names the
 * source in messages.  from_json returns 0, or -1 with an error.
 */
extern json_t *xs_stream_info_to_json (const struct xs_stream_info *info);
extern int xs_stream_info_from_json (json_t *obj, const char *what,
                                     struct xs_stream_info *info);

/* Record kinds (the first byte of each frame). */
enum xs_stream_kind {
  XS_STREAM_CHUNK = 'C',        /* the block's stored chunk follows */
  XS_STREAM_REF = 'R',          /* a chunk the receiver has already: the
                                   entry of block SOURCE */
  XS_STREAM_ZERO = 'Z',         /* the block reads as zeros */
};

struct xs_stream_record {
  enum xs_stream_kind kind;
  uint64_t block;
  struct xs_hash128 id;         /* zero for XS_STREAM_ZERO */
  const void *stored;           /* XS_STREAM_CHUNK: the chunk as stored */
  size_t stored_len;
  /* XS_STREAM_REF of a stream with sourced_refs: the block (below
   * nblocks) whose entry is ID: one before BLOCK in what the receiver
   * builds (carried by the stream, or kept from the base), or any in the
   * base.
   */
  uint64_t source;
};

/* Largest stored chunk a record may carry for BLOCK_SIZE. */
extern size_t xs_stream_max_stored (uint32_t block_size);

/* ----- Writing ----- */

/* Receives the stream's bytes in order; returns 0, or -1 with an error. */
typedef int (*xs_stream_write_fn) (const void *data, size_t len,
                                   void *opaque);

struct xs_stream_writer;

/* WRITE may be NULL to only count the bytes (a dry run). */
extern struct xs_stream_writer *xs_stream_writer_new (xs_stream_write_fn write,
                                                      void *opaque);
extern void xs_stream_writer_free (struct xs_stream_writer *w);

/* Header, then records in strictly ascending block order from
 * info->first_block, then the trailer, which checks that exactly
 * info->records records were written.  Each returns 0, or -1 with an
 * error.
 */
extern int xs_stream_write_header (struct xs_stream_writer *w,
                                   const struct xs_stream_info *info);
extern int xs_stream_write_record (struct xs_stream_writer *w,
                                   const struct xs_stream_record *rec);
extern int xs_stream_write_trailer (struct xs_stream_writer *w);

/* Bytes written so far. */
extern uint64_t xs_stream_writer_bytes (const struct xs_stream_writer *w);

/* ----- Parsing ----- */

enum xs_stream_event {
  XS_STREAM_MORE,               /* give the parser more bytes */
  XS_STREAM_HEADER,             /* the header is in: see _info */
  XS_STREAM_RECORD,             /* a record is in: see _record */
  XS_STREAM_END,                /* the trailer verified: complete */
  XS_STREAM_ERROR,              /* reported; the stream is refused */
};

struct xs_stream_parser;

extern struct xs_stream_parser *xs_stream_parser_new (void);
extern void xs_stream_parser_free (struct xs_stream_parser *p);

/* Where the next bytes of the stream go: up to *LEN bytes at the address
 * returned (*LEN is 0 once the stream has ended or failed).  Then call
 * _advance with how many were put there.  This lets a reader read
 * straight into the parser.
 */
extern void *xs_stream_parser_space (struct xs_stream_parser *p,
                                     size_t *len);
extern enum xs_stream_event
xs_stream_parser_advance (struct xs_stream_parser *p, size_t len);

/* The same from a buffer: takes bytes until an event other than MORE
 * (or until the buffer is used up) and sets *USED to how many it took.
 */
extern enum xs_stream_event
xs_stream_parser_feed (struct xs_stream_parser *p, const void *data,
                       size_t len, size_t *used);

/* The input has ended.  Returns 0 if the stream was complete; otherwise
 * reports where it was cut ("stream truncated inside record 7") and
 * returns -1.
 */
extern int xs_stream_parser_finish (struct xs_stream_parser *p);

/* Valid after XS_STREAM_HEADER (the info until the parser is freed, the
 * record until the next call that feeds the parser).
 */
extern const struct xs_stream_info *
xs_stream_parser_info (const struct xs_stream_parser *p);
extern const struct xs_stream_record *
xs_stream_parser_record (const struct xs_stream_parser *p);
/* Records parsed so far. */
extern uint64_t xs_stream_parser_records (const struct xs_stream_parser *p);

/* After an error or a failed finish: true if the stream was cut or a
 * frame was damaged in transit, so that every record before it is good
 * and the stream can be resumed; false if the stream breaks the format's
 * rules (or was never valid).
 */
extern bool xs_stream_parser_resumable (const struct xs_stream_parser *p);

/* ----- Resume tokens ----- */

/* A token is "xsr1-" STREAM-ID "-" NEXT-BLOCK (16 hex digits) "-" MAC (32
 * hex digits).  The MAC is the receiving store's business; this only
 * checks the form and extracts the fields.  Returns 0, or -1 with an
 * error.
 */
extern int xs_stream_token_parse (const char *token,
                                  char stream_id[XS_STREAM_ID_LEN + 1],
                                  uint64_t *next_block, char mac_hex[33]);

#endif /* XSNAP_STREAM_H */
