/* xsnap: tests for lib/crypto/sigv4.c against AWS's published example.
 *
 * "Signature Calculations for the Authorization Header: Transferring
 * Payload in a Single Chunk", example GET Object: every intermediate
 * value (canonical request and its hash, signing key, signature) is
 * checked, then the encoding rules and the sorting of queries and headers.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/sigv4.h"
#include "tap.h"

#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void
test_aws_get_object (void)
{
  static const struct xs_sigv4_header headers[] = {
    { "x-amz-date", "20130524T000000Z" },
    { "Range", "bytes=0-9" },
    { "x-amz-content-sha256", EMPTY_SHA256 },
    { "host", "examplebucket.s3.amazonaws.com" },
  };
  struct xs_sigv4_request req = {
    .method = "GET", .path = "/test.txt",
    .headers = headers, .nheaders = 4,
    .payload_sha256 = EMPTY_SHA256,
    .region = "us-east-1", .service = "s3",
    .access_key = "AKIAIOSFODNN7EXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    .when = 1369353600,         /* 2013-05-24T00:00:00Z */
  };
  char hash[XS_SHA256_HEX_LEN + 1], date[17], key_hex[65];
  unsigned char key[32];
  char *canonical, *auth;

  xs_sigv4_amz_date (req.when, date);
  is_str (date, "20130524T000000Z", "x-amz-date of the example's time");
  canonical = xs_sigv4_canonical_request (&req);
  is_str (canonical,
          "GET\n/test.txt\n\n"
          "host:examplebucket.s3.amazonaws.com\n"
          "range:bytes=0-9\n"
          "x-amz-content-sha256:" EMPTY_SHA256 "\n"
          "x-amz-date:20130524T000000Z\n\n"
          "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
          "the canonical request (headers lower-cased and sorted)");
  xs_sha256_hex (canonical, strlen (canonical), hash);
  is_str (hash,
          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
          "its SHA-256");
  xs_sigv4_signing_key (req.secret_key, "20130524", "us-east-1", "s3", key);
  for (int i = 0; i < 32; i++)
    snprintf (key_hex + 2 * i, 3, "%02x", key[i]);
  is_str (key_hex,
          "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378",
          "the signing key");
  auth = xs_sigv4_authorization (&req);
  is_str (auth,
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
          "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
          "x-amz-content-sha256;x-amz-date, Signature="
          "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
          "the Authorization header");
  free (canonical);
  free (auth);
}

static void
test_encoding (void)
{
  char *s;

  s = xs_sigv4_uri_encode ("a b/c=d~e_f-g.h+i%", 1);
  is_str (s, "a%20b/c%3Dd~e_f-g.h%2Bi%25", "paths keep '/', encode the rest");
  free (s);
  s = xs_sigv4_uri_encode ("a/b", 0);
  is_str (s, "a%2Fb", "query values encode '/'");
  free (s);
  s = xs_sigv4_uri_encode ("\xc3\xa9", 1);
  is_str (s, "%C3%A9", "bytes above 127 as upper-case hex escapes");
  free (s);
}

static void
test_query_order (void)
{
  static const struct xs_sigv4_param params[] = {
    { "prefix", "repo/chunks/" },
    { "list-type", "2" },
    { "continuation-token", "a+b=" },
    { "uploads", "" },
  };
  static const struct xs_sigv4_header headers[] = {
    { "host", "127.0.0.1:7480" },
  };
  struct xs_sigv4_request req = {
    .method = "GET", .path = "/bucket", .params = params, .nparams = 4,
    .headers = headers, .nheaders = 1, .payload_sha256 = EMPTY_SHA256,
    .region = "us-east-1", .service = "s3", .access_key = "AK",
    .secret_key = "SK", .when = 0,
  };
  char *canonical = xs_sigv4_canonical_request (&req);

  ok (canonical && strstr (canonical,
                           "\ncontinuation-token=a%2Bb%3D&list-type=2"
                           "&prefix=repo%2Fchunks%2F&uploads=\n") != NULL,
      "query parameters encoded and sorted, valueless ones as name=");
  free (canonical);
}

int
main (void)
{
  test_aws_get_object ();
  test_encoding ();
  test_query_order ();
  return done_testing ();
}
