/* xsnap: tests for lib/s3xml.c, the reader of S3 listings and errors.
 *
 * It must take the keys, the truncation flag and the continuation token
 * from a real answer, decode entities and character references, never
 * mistake <KeyCount> for <Key> or read past the body's length, and refuse
 * what it does not understand instead of guessing.
 */
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"
#include "tap.h"

struct keys {
  char text[1024];
  int stop_at;
  int seen;
};

static int
collect (const char *key, void *opaque)
{
  struct keys *k = opaque;

  strcat (k->text, "[");
  strcat (k->text, key);
  strcat (k->text, "]");
  return ++k->seen == k->stop_at ? 9 : 0;
}

/* Parse BODY (its strlen); returns the result, keys in k->text. */
static int
parse (const char *body, struct keys *k, struct xs_s3xml_listing *l)
{
  memset (k->text, 0, sizeof k->text);
  k->seen = 0;
  return xs_s3xml_parse_listing (body, strlen (body), collect, k, l);
}

static const char rgw_listing[] =
  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
  "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
  "<Name>bkt</Name><Prefix>r2/</Prefix><MaxKeys>2</MaxKeys>"
  "<IsTruncated>true</IsTruncated>"
  "<Contents><Key>r2/a/chunks/00/0001</Key>"
  "<LastModified>2026-11-22T12:26:36.427Z</LastModified>"
  "<ETag>&quot;e02da8fc&quot;</ETag><Size>65584</Size>"
  "<StorageClass>STANDARD</StorageClass></Contents>"
  "<Contents><Key>r2/a&amp;b/&lt;&#65;&#x42;&#xE9;&gt;</Key></Contents>"
  "<NextContinuationToken>r2/a+b=&amp;</NextContinuationToken>"
  "<KeyCount>2</KeyCount></ListBucketResult>";

static void
test_listing (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse (rgw_listing, &k, &l), 0, "an RGW listing parses");
  is_str (k.text, "[r2/a/chunks/00/0001][r2/a&b/<AB\xc3\xa9>]",
          "keys in order, entities and references decoded (UTF-8)");
  is_int (l.keys, 2, "two keys counted");
  ok (l.truncated, "IsTruncated true");
  is_str (l.next_token, "r2/a+b=&", "the continuation token, decoded");
  free (l.next_token);

  is_int (parse ("<ListBucketResult><IsTruncated>false</IsTruncated>"
                 "<KeyCount>1</KeyCount><Contents><Key/></Contents>"
                 "</ListBucketResult>", &k, &l), 0,
          "an untruncated listing with <Key/>");
  is_str (k.text, "[]", "<Key/> is the empty key; <KeyCount> is no <Key>");
  ok (!l.truncated && l.next_token == NULL, "not truncated, no token");

  is_int (parse ("<ListBucketResult></ListBucketResult>", &k, &l), 0,
          "an empty listing");
  is_int (l.keys, 0, "... has no keys");

  k.stop_at = 1;
  is_int (parse (rgw_listing, &k, &l), 9,
          "a callback's non-zero stops the parse and is returned");
  is_str (k.text, "[r2/a/chunks/00/0001]", "... after the first key");
  ok (l.next_token == NULL, "... and leaves no token to free");
  k.stop_at = 0;
}

static void
refused (const char *body, const char *why, const char *what)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  tap_take_error ();
  is_int (parse (body, &k, &l), -1, "refused: %s", what);
  error_contains (why, "... saying '%s'", why);
}

static void
test_refusals (void)
{
  refused ("<Error><Code>x</Code></Error>", "no whole <ListBucketResult>",
           "an answer that is not a listing");
  refused ("<ListBucketResult><IsTruncated>maybe</IsTruncated>"
           "</ListBucketResult>", "neither true nor false",
           "IsTruncated that is neither");
  refused ("<ListBucketResult><IsTruncated>true</IsTruncated>"
           "</ListBucketResult>", "no <NextContinuationToken>",
           "truncated without a token");
  refused ("<ListBucketResult><Contents><Size>1</Size></Contents>"
           "</ListBucketResult>", "without a whole <Key>",
           "Contents without a Key");
  refused ("<ListBucketResult><Contents><Key>a<b>c</b></Key></Contents>"
           "</ListBucketResult>", "markup inside",
           "markup inside a Key");
  refused ("<ListBucketResult><Contents><Key>a&#0;b</Key></Contents>"
           "</ListBucketResult>", "bad character reference", "&#0;");
  refused ("<ListBucketResult><Contents><Key>a&#xD800;</Key></Contents>"
           "</ListBucketResult>", "bad character reference", "a surrogate");
  refused ("<ListBucketResult><Contents><Key>a&nbsp;b</Key></Contents>"
           "</ListBucketResult>", "unknown entity", "an unknown entity");
  refused ("<ListBucketResult><Contents><Key>a&amp b</Key></Contents>"
           "</ListBucketResult>", "unterminated", "an unterminated &");
  refused ("<ListBucketResult><Contents><Key>abc</Contents>"
           "</ListBucketResult>", "without a whole <Key>",
           "an unterminated Key");
  refused ("<ListBucketResult><Contents", "no whole <ListBucketResult>",
           "a body cut short");
}

/* The end of the body is its length, not a NUL. */
static void
test_length_bound (void)
{
  static const char body[] =
    "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>";
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };
  char *copy = malloc (sizeof body - 1);

  memcpy (copy, body, sizeof body - 1);
  is_int (xs_s3xml_parse_listing (copy, sizeof body - 1, collect, &k, &l), 0,
          "a body without a terminating NUL parses");
  is_int (xs_s3xml_parse_listing (copy, sizeof body - 3, collect, &k, &l), -1,
          "the same cut two bytes short is refused: nothing past the length "
          "is read");
  free (copy);
}

static void
test_errors (void)
{
  static const char body[] =
    "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
    "<Message>The request &lt;signature&gt; we calculated</Message>"
    "<RequestId>tx1</RequestId></Error>";
  char code[64], message[256], small[8];

  xs_s3xml_parse_error (body, strlen (body), code, sizeof code, message,
                        sizeof message);
  is_str (code, "SignatureDoesNotMatch", "the error code");
  is_str (message, "The request <signature> we calculated",
          "the message, decoded");
  xs_s3xml_parse_error (body, strlen (body), small, sizeof small, message,
                        sizeof message);
  is_str (small, "Signatu", "a code truncated to its buffer");
  xs_s3xml_parse_error ("<Error><Code>NoSuchKey</Code></Error>", 37, code,
                        sizeof code, message, sizeof message);
  is_str (code, "NoSuchKey", "a code without a message");
  is_str (message, "", "... and an empty message");
  xs_s3xml_parse_error ("not xml", 7, code, sizeof code, message,
                        sizeof message);
  is_str (code, "", "no <Error>: empty code");
  xs_s3xml_parse_error (NULL, 0, code, sizeof code, message, sizeof message);
  is_str (code, "", "no body at all: empty code");
}

int
main (void)
{
  test_listing ();
  test_refusals ();
  test_length_bound ();
  test_errors ();
  return done_testing ();
}
