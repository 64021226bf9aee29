/* xsnap: AWS Signature Version 4 for S3 requests.
 *
 * The S3 backend talks to AWS S3, Ceph RGW and MinIO over libcurl and
 * signs every request itself: libcurl's own signer changed behaviour in
 * almost every release since the one Debian 12 ships (canonical paths and
 * queries, payload hashes of uploads), and the old libs3 only speaks
 * SigV2.  The rules are AWS's ("Authenticating Requests: AWS Signature
 * Version 4"): canonical request, string to sign, a signing key derived
 * from the secret by an HMAC chain over date, region and service, and the
 * Authorization header.  Everything here is a pure function of its
 * inputs, including the time, so the published test vector checks it.
 */
#ifndef XSNAP_SIGV4_H
#define XSNAP_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define XS_SHA256_HEX_LEN 64

/* A header to sign: NAME in lower case, VALUE as sent (trimmed). */
struct xs_sigv4_header {
  const char *name;
  const char *value;
};

/* A query parameter, not yet encoded (VALUE "" for "?uploads="). */
struct xs_sigv4_param {
  const char *name;
  const char *value;
};

struct xs_sigv4_request {
  const char *method;           /* "GET", "PUT", ... */
  const char *path;             /* absolute, not encoded: "/bucket/key" */
  const struct xs_sigv4_param *params;
  size_t nparams;
  /* Every header sent that must be signed, x-amz-date and
   * x-amz-content-sha256 and host included (any order, any case).
   */
  const struct xs_sigv4_header *headers;
  size_t nheaders;
  const char *payload_sha256;   /* hex, or "UNSIGNED-PAYLOAD" */
  const char *region;           /* "us-east-1" */
  const char *service;          /* "s3" */
  const char *access_key;
  const char *secret_key;
  time_t when;                  /* the x-amz-date, as a time */
};

/* SHA-256 of LEN bytes as 64 lower-case hex digits and a NUL. */
extern void xs_sha256_hex (const void *data, size_t len,
                           char hex[XS_SHA256_HEX_LEN + 1]);

/* "20130524T000000Z" (16 characters and a NUL) for WHEN. */
extern void xs_sigv4_amz_date (time_t when, char out[17]);

/* URI-encode TEXT the SigV4 way: everything but A-Z a-z 0-9 - _ . ~ as
 * %XX (upper-case hex); '/' kept when KEEP_SLASH (paths).  Malloc'd, or
 * NULL (reported).
 */
extern char *xs_sigv4_uri_encode (const char *text, int keep_slash);

/* The canonical request (malloc'd), or NULL (reported). */
extern char *xs_sigv4_canonical_request (const struct xs_sigv4_request *req);

/* The signing key for SECRET on DATE ("20130524"), REGION and SERVICE. */
extern void xs_sigv4_signing_key (const char *secret, const char *date,
                                  const char *region, const char *service,
                                  unsigned char key[32]);

/* The Authorization header's value (malloc'd), or NULL (reported). */
extern char *xs_sigv4_authorization (const struct xs_sigv4_request *req);

#endif /* XSNAP_SIGV4_H */
