/* xsnap: chunks, one block's content as stored in a repository.
 *
 * A chunk is a 48-byte header followed by the payload: the block's
 * plaintext compressed with zstd, or stored raw when compression does not
 * help.  Its id is the XXH3-128 of the plaintext, so identical blocks are
 * stored once; decoding always rehashes and compares, so a corrupt chunk is
 * never returned as data.  docs/FORMAT.md, "Chunk (version 1)", has the
 * byte layout.
 *
 * A codec given a data key (xs_chunk_codec_set_key) writes and reads
 * encrypted chunks instead (version 2, "Encrypted chunk (version 2)"):
 * the id is a keyed MAC of the plaintext, the payload is sealed with
 * AES-256-GCM, and decoding refuses anything that is not authentic under
 * that key, an unencrypted chunk included.
 */
#ifndef XSNAP_CHUNK_H
#define XSNAP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/hash.h"

#define XS_CHUNK_VERSION 1
#define XS_CHUNK_HEADER_SIZE 48
#define XS_CHUNK_VERSION_ENCRYPTED 2
#define XS_CHUNK_HEADER_SIZE_ENCRYPTED 64
/* The largest header of any version. */
#define XS_CHUNK_HEADER_MAX XS_CHUNK_HEADER_SIZE_ENCRYPTED
/* Largest plaintext: the largest block size. */
#define XS_CHUNK_MAX_PLAIN (4u * 1024 * 1024)

/* Compression and decompression contexts, reused across calls.  One codec
 * belongs to one thread at a time.
 */
struct xs_chunk_codec;

/* zstd_level 0 means the default (1). */
extern struct xs_chunk_codec *xs_chunk_codec_new (int zstd_level);
extern void xs_chunk_codec_free (struct xs_chunk_codec *codec);

/* Make the codec encrypt and decrypt under data key KEY (NULL: back to
 * unencrypted chunks).  KEY is not copied and must outlive its use.
 * Returns 0, or -1 with an error.
 */
struct xs_data_key;
extern int xs_chunk_codec_set_key (struct xs_chunk_codec *codec,
                                   const struct xs_data_key *key);

/* The id plain_len bytes of plain have as a chunk of this codec: the
 * XXH3-128, or under a key the truncated HMAC-SHA256.  0, or -1 with an
 * error.
 */
extern int xs_chunk_id (struct xs_chunk_codec *codec, const void *plain,
                        size_t plain_len, struct xs_hash128 *id);

/* The id, as a chunk of this codec, of the plaintext whose unencrypted
 * chunk is PLAIN_ID (its XXH3-128): PLAIN_ID itself, or under a key the
 * name xs_chunk_id gives it, computed from PLAIN_ID alone.  0, or -1 with
 * an error.
 */
extern int xs_chunk_id_of_plain_id (struct xs_chunk_codec *codec,
                                    const struct xs_hash128 *plain_id,
                                    struct xs_hash128 *id);

/* Encode plain_len (at most XS_CHUNK_MAX_PLAIN) bytes: sets *id to the
 * content id and *stored to a malloc'd buffer of *stored_len bytes (header
 * and payload).  Returns 0, or -1 with an error.
 */
extern int xs_chunk_encode (struct xs_chunk_codec *codec,
                            const void *plain, size_t plain_len,
                            struct xs_hash128 *id,
                            void **stored, size_t *stored_len);

/* xs_chunk_encode for a caller that has just computed the id with
 * xs_chunk_id (it is not computed again).
 */
extern int xs_chunk_encode_as (struct xs_chunk_codec *codec,
                               const void *plain, size_t plain_len,
                               const struct xs_hash128 *id,
                               void **stored, size_t *stored_len);

/* Decode and verify a stored chunk into plain (plain_cap bytes available):
 * checks the header, decompresses, rehashes the plaintext and compares it
 * with the header's id and, if expected_id is not NULL, with expected_id.
 * Returns the plaintext length, or -1 with an error naming the chunk.
 */
extern ssize_t xs_chunk_decode (struct xs_chunk_codec *codec,
                                const void *stored, size_t stored_len,
                                const struct xs_hash128 *expected_id,
                                void *plain, size_t plain_cap);

/* Decode and verify an encrypted chunk as xs_chunk_decode does (the
 * codec has its key), then give it back unencrypted: *OUT (malloc'd,
 * *OUT_LEN bytes) is the version 1 chunk of the same plaintext, its
 * compressed payload reused as it is, and *ID its id.  PLAIN receives the
 * plaintext.  For a re-encrypting stream.  0, or -1 with an error.
 */
extern int xs_chunk_unseal (struct xs_chunk_codec *codec, const void *stored,
                            size_t stored_len,
                            const struct xs_hash128 *expected_id, void *plain,
                            size_t plain_cap, struct xs_hash128 *id,
                            void **out, size_t *out_len);

/* Room for the reason a chunk is bad, NUL included. */
#define XS_CHUNK_REASON_MAX 160

/* xs_chunk_decode without reporting: on failure returns -1 with errno =
 * EIO and REASON saying what is wrong ("payload checksum mismatch",
 * "truncated (12 of 300 payload bytes)", ...), for callers that put it in
 * a message of their own.
 */
extern ssize_t xs_chunk_decode_quiet (struct xs_chunk_codec *codec,
                                      const void *stored, size_t stored_len,
                                      const struct xs_hash128 *expected_id,
                                      void *plain, size_t plain_cap,
                                      char reason[XS_CHUNK_REASON_MAX]);

/* The same with the header (XS_CHUNK_HEADER_SIZE bytes) and the payload
 * (payload_len bytes) apart, for readers that read a raw chunk's payload
 * straight into its place: payload may be plain itself.
 */
extern ssize_t xs_chunk_decode_parts_quiet (struct xs_chunk_codec *codec,
                                            const void *header,
                                            const void *payload,
                                            size_t payload_len,
                                            const struct xs_hash128 *expected_id,
                                            void *plain, size_t plain_cap,
                                            char reason[XS_CHUNK_REASON_MAX]);

/* Check an unencrypted stored chunk as it is, without decoding it: the
 * header (magic, version, checksum, fields), that it is EXPECTED_ID, that
 * it is exactly header and payload long, and the payload's checksum.
 * That catches every change to the stored bytes (a flipped bit, a cut or
 * extended file, another chunk's file in its place) at the speed of one
 * XXH3-64 pass; what it leaves to a full decode is a payload that matches
 * its checksum but not its id, which only the writer could have made.
 * Returns the plaintext length, or -1 with errno unchanged and REASON
 * saying what is wrong.
 */
extern ssize_t xs_chunk_check_stored (const void *stored, size_t stored_len,
                                      const struct xs_hash128 *expected_id,
                                      char reason[XS_CHUNK_REASON_MAX]);

/* Whether the header at header (XS_CHUNK_HEADER_SIZE bytes, not checked)
 * says that the payload is the plaintext itself.  For readers that place a
 * payload before decoding it; decoding checks everything.
 */
extern bool xs_chunk_header_says_raw (const void *header);

/* The version byte of a header of at least 5 bytes (not checked). */
extern unsigned xs_chunk_header_version (const void *header);

/* Check and parse only the header (magic, version, its own checksum,
 * fields), for listing and size accounting: stored may be just the first
 * XS_CHUNK_HEADER_SIZE bytes of a chunk, and the payload is not checked.
 * id and plain_len may be NULL.  Returns 0, or -1 with an error.
 */
extern int xs_chunk_peek (const void *stored, size_t stored_len,
                          struct xs_hash128 *id, uint32_t *plain_len);

#endif /* XSNAP_CHUNK_H */
