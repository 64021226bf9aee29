/* xsnap: tests for lib/repo/s3xml.c, the reader of S3 listings and errors.
 *
 * It must take the keys, the truncation flag and the continuation token
 * from a real answer, decode entities and character references, never
 * mistake <KeyCount> for <Key> or read past the body's length, and refuse
 * what it does not understand instead of guessing.  Error bodies give
 * their code and message, truncated to the caller's buffers, or "".
 */
#include <stdlib.h>
#include <string.h>

#include "repo/s3xml.h"
#include "tap.h"

/* What the callback saw: each key as "[key]", in order. */
struct keys {
  char text[2048];
  int calls;
  int stop_at;                  /* return stop_value on this call (1-based) */
  int stop_value;
};

static int
collect (const char *key, void *opaque)
{
  struct keys *k = opaque;
  size_t used = strlen (k->text);

  snprintf (k->text + used, sizeof k->text - used, "[%s]", key);
  k->calls++;
  return k->calls == k->stop_at ? k->stop_value : 0;
}

/* Parse the first LEN bytes of BODY; keys in k->text. */
static int
parse_len (const char *body, size_t len, struct keys *k,
           struct xs_s3xml_listing *l)
{
  k->text[0] = '\0';
  k->calls = 0;
  /* Garbage in *l: the parser must set every field itself. */
  memset (l, 0x5a, sizeof *l);
  tap_take_error ();
  return xs_s3xml_parse_listing ("cannot list x/ in s3://b/p", body, len,
                                 collect, k, l);
}

static int
parse (const char *body, struct keys *k, struct xs_s3xml_listing *l)
{
  return parse_len (body, strlen (body), k, l);
}

#define LIST(inner) "<ListBucketResult>" inner "</ListBucketResult>"

/* As Ceph RGW answers ListObjectsV2 (the request's own token echoed in
 * <ContinuationToken>, owners and storage classes in each <Contents>).
 */
static const char rgw_listing[] =
  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
  "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
  "<Name>xsnap-test</Name><Prefix>r2/chunks/</Prefix>"
  "<ContinuationToken>previous-token</ContinuationToken>"
  "<MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>"
  "<Contents><Key>r2/chunks/00/00a1f3</Key>"
  "<LastModified>2026-11-22T12:26:36.427Z</LastModified>"
  "<ETag>&quot;e02da8fc9c4b1b6f0e6f2a1d7c4b9a10&quot;</ETag>"
  "<Size>65584</Size><StorageClass>STANDARD</StorageClass>"
  "<Owner><ID>xsnap</ID><DisplayName>xsnap user</DisplayName></Owner>"
  "<Type>Normal</Type></Contents>\n"
  "<Contents><Key>r2/chunks/00/00b2&amp;c</Key>"
  "<LastModified>2026-11-22T12:26:37.001Z</LastModified>"
  "<ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag>"
  "<Size>4096</Size><StorageClass>STANDARD</StorageClass></Contents>\n"
  "<Contents><Key>r2/chunks/01/0100ff</Key>"
  "<ETag>&quot;92eb5ffee6ae2fec3ad71c777531578f&quot;</ETag>"
  "<Size>1</Size></Contents>"
  "<KeyCount>3</KeyCount>"
  "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
  "</NextContinuationToken></ListBucketResult>";

static void
test_rgw_listing (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse (rgw_listing, &k, &l), 0, "an RGW ListObjectsV2 answer parses");
  is_str (k.text,
          "[r2/chunks/00/00a1f3][r2/chunks/00/00b2&c][r2/chunks/01/0100ff]",
          "its three keys, in order, &amp; decoded");
  is_int (k.calls, 3, "the callback ran once per key");
  is_int (l.keys, 3, "listing.keys counts them");
  is_int (l.truncated, 1, "<IsTruncated>true</IsTruncated>");
  is_str (l.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
          "the next continuation token (not the echoed <ContinuationToken>)");
  is_str (tap_take_error (), "", "no error reported");
  free (l.next_token);
}

static void
test_entities (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse (LIST ("<Contents><Key>a&amp;b&lt;c&gt;d&quot;e&apos;f</Key>"
                       "</Contents>"), &k, &l), 0,
          "the five predefined entities");
  is_str (k.text, "[a&b<c>d\"e'f]", "... decoded");

  is_int (parse (LIST ("<Contents><Key>&#65;&#x42;&#X43;&#x64;&#xE9;"
                       "&#x20AC;&#x1F600;&#233;</Key></Contents>"), &k, &l),
          0, "decimal and hex character references");
  is_str (k.text, "[ABCd\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9]",
          "... decoded as UTF-8 (1, 2, 3 and 4 bytes)");

  is_int (parse (LIST ("<Contents><Key>  spaced key\t</Key></Contents>"),
                 &k, &l), 0, "a key with spaces around it");
  is_str (k.text, "[  spaced key\t]", "... is not trimmed");

  is_int (parse (LIST ("<IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>a&amp;b&#x2F;c"
                       "</NextContinuationToken>"), &k, &l), 0,
          "a token with references");
  is_str (l.next_token, "a&b/c", "... decoded");
  is_int (l.keys, 0, "... and no keys");
  free (l.next_token);
}

static void
test_shapes (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse (LIST ("<IsTruncated>false</IsTruncated>"
                       "<Contents><Key>one</Key></Contents>"
                       "<KeyCount>1</KeyCount>"), &k, &l), 0,
          "an untruncated listing");
  is_int (l.truncated, 0, "... is not truncated");
  ok (l.next_token == NULL, "... and has no token");
  is_str (k.text, "[one]", "... its key");

  is_int (parse (LIST ("<IsTruncated>false</IsTruncated>"
                       "<NextContinuationToken>stale</NextContinuationToken>"
                       ), &k, &l), 0,
          "an untruncated listing that still names a token");
  ok (l.next_token == NULL, "... gives no token to follow");

  is_int (parse (LIST ("<Name>b</Name>"), &k, &l), 0,
          "no <IsTruncated> and no <Contents>");
  is_int (l.truncated, 0, "... is not truncated");
  is_int (l.keys, 0, "... and has no keys");
  is_str (k.text, "", "... the callback never ran");

  is_int (parse ("<ListBucketResult/>", &k, &l), 0, "<ListBucketResult/>");
  is_int (l.keys, 0, "... is an empty listing");

  is_int (parse (LIST ("<KeyCount>2</KeyCount>"
                       "<Contents><KeyCount>7</KeyCount><Key>real</Key>"
                       "</Contents>"), &k, &l), 0,
          "<KeyCount> before <Key>, inside and outside <Contents>");
  is_str (k.text, "[real]", "... <KeyCount> is not taken for <Key>");

  is_int (parse (LIST ("<Contents><Key/></Contents>"
                       "<Contents><Key /></Contents>"
                       "<Contents><Key></Key></Contents>"), &k, &l), 0,
          "<Key/>, <Key /> and <Key></Key>");
  is_str (k.text, "[][][]", "... are three empty keys");

  is_int (parse (LIST ("<Contents><Key xml:space=\"preserve\">k1</Key>"
                       "</Contents><Contents\n><Key>k2</Key></Contents>"),
                 &k, &l), 0, "attributes and whitespace inside tags");
  is_str (k.text, "[k1][k2]", "... are ignored");
}

static void
test_callback_stops (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 2, .stop_value = 42 };

  is_int (parse (rgw_listing, &k, &l), 42,
          "a callback's non-zero return stops the parse and is returned");
  is_int (k.calls, 2, "... no key after it is passed");
  is_str (k.text, "[r2/chunks/00/00a1f3][r2/chunks/00/00b2&c]",
          "... the keys before it were");
  is_int (l.keys, 2, "... listing.keys counts the keys passed");
  ok (l.next_token == NULL, "... the token is freed and NULL");
  is_str (tap_take_error (), "", "... and no error is reported");

  k.stop_at = 1;
  k.stop_value = -7;
  is_int (parse (rgw_listing, &k, &l), -7,
          "a negative return is passed back as it is");
  is_int (k.calls, 1, "... after the first key");
}

static void
refused_len (const char *body, size_t len, const char *why, const char *what)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse_len (body, len, &k, &l), -1, "refused: %s", what);
  error_contains (why, "... saying '%s'", why);
  ok (l.next_token == NULL, "... with no token to free");
}

static void
refused (const char *body, const char *why, const char *what)
{
  refused_len (body, strlen (body), why, what);
}

static void
test_refusals (void)
{
  refused ("<Error><Code>AccessDenied</Code></Error>",
           "no whole <ListBucketResult>", "an error, not a listing");
  refused ("", "no whole <ListBucketResult>", "an empty body");
  refused ("<ListBucketResultX></ListBucketResultX>",
           "no whole <ListBucketResult>", "a root that only starts alike");
  refused ("<ListBucketResult><Contents><Key>k</Key></Contents>",
           "no whole <ListBucketResult>", "a root never closed");
  refused ("<ListBucketResult", "no whole <ListBucketResult>",
           "a root tag cut short");

  refused (LIST ("<IsTruncated>maybe</IsTruncated>"),
           "neither true nor false", "IsTruncated maybe");
  refused (LIST ("<IsTruncated>TRUE</IsTruncated>"),
           "neither true nor false", "IsTruncated TRUE");
  refused (LIST ("<IsTruncated> true</IsTruncated>"),
           "neither true nor false", "IsTruncated with a space");
  refused (LIST ("<IsTruncated/>"), "neither true nor false",
           "an empty IsTruncated");

  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<Contents><Key>k</Key></Contents>"),
           "truncated but has no <NextContinuationToken>",
           "truncated without a token");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken></NextContinuationToken>"),
           "truncated but has no <NextContinuationToken>",
           "truncated with an empty token");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>a&bogus;</NextContinuationToken>"),
           "<NextContinuationToken> has an unknown entity",
           "a token with an unknown entity");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken/>"),
           "truncated but has no <NextContinuationToken>",
           "truncated with <NextContinuationToken/>");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>a&#27;[2J</NextContinuationToken>"),
           "<NextContinuationToken> has a control character",
           "a token with an escape sequence");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>a\x9b</NextContinuationToken>"),
           "<NextContinuationToken> has a control character or a byte "
           "that is not UTF-8", "a token with a byte that is not UTF-8");
  refused (LIST ("<IsTruncated>true</IsTruncated>"
                 "<NextContinuationToken>a&#x9b;</NextContinuationToken>"),
           "<NextContinuationToken> has a control character",
           "a token with a C1 control (CSI)");

  refused (LIST ("<Contents><Size>1</Size></Contents>"),
           "a <Contents> element without a whole <Key>",
           "<Contents> without <Key>");
  refused (LIST ("<Contents><KeyCount>1</KeyCount></Contents>"),
           "a <Contents> element without a whole <Key>",
           "<Contents> with only a <KeyCount>");
  refused (LIST ("<Contents/>"), "a <Contents> element without a whole <Key>",
           "<Contents/>");
  refused (LIST ("<Contents><Key>abc</Contents>"),
           "a <Contents> element without a whole <Key>",
           "an unterminated <Key>");
  refused (LIST ("<Contents><Key>abc</Key>"),
           "a <Contents> element without a whole <Key>",
           "an unterminated <Contents>");
  refused (LIST ("<Contents><Key"), "a <Contents> element without a whole",
           "a <Key> tag without its '>'");

  refused (LIST ("<Contents><Key>a<b>c</b></Key></Contents>"),
           "a <Key> has markup inside a text element", "markup inside <Key>");
  refused (LIST ("<Contents><Key>a<!-- x --></Key></Contents>"),
           "markup inside a text element", "a comment inside <Key>");
  refused (LIST ("<Contents><Key>a&#0;b</Key></Contents>"),
           "a bad character reference", "&#0;");
  refused (LIST ("<Contents><Key>&#x0;</Key></Contents>"),
           "a bad character reference", "&#x0;");
  refused (LIST ("<Contents><Key>&#xD800;</Key></Contents>"),
           "a bad character reference", "a surrogate");
  refused (LIST ("<Contents><Key>&#x110000;</Key></Contents>"),
           "a bad character reference", "a code point above U+10FFFF");
  refused (LIST ("<Contents><Key>&#x;</Key></Contents>"),
           "a bad character reference", "&#x; without digits");
  refused (LIST ("<Contents><Key>&#12a;</Key></Contents>"),
           "a bad character reference", "a hex digit in a decimal reference");
  refused (LIST ("<Contents><Key>&#x0000000041;</Key></Contents>"),
           "a bad character reference", "a reference of too many digits");
  refused (LIST ("<Contents><Key>a&nbsp;b</Key></Contents>"),
           "an unknown entity", "&nbsp;");
  refused (LIST ("<Contents><Key>a&AMP;b</Key></Contents>"),
           "an unknown entity", "&AMP; (entities are case-sensitive)");
  refused (LIST ("<Contents><Key>a&amp b</Key></Contents>"),
           "an unterminated '&' reference", "&amp without ';'");
  refused_len (LIST ("<Contents><Key>a\0b</Key></Contents>"),
               sizeof LIST ("<Contents><Key>a\0b</Key></Contents>") - 1,
               "a <Key> has a NUL byte", "a NUL byte inside <Key>");
}

/* A token as long as allowed is taken; one byte more is refused. */
static void
test_token_length (void)
{
  size_t n = XS_S3XML_TOKEN_MAX + 1;
  const char head[] = "<ListBucketResult><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>";
  const char tail[] = "</NextContinuationToken></ListBucketResult>";
  char *body = malloc (sizeof head + n + sizeof tail);
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  for (size_t len = n - 1; len <= n; len++) {
    memcpy (body, head, sizeof head - 1);
    memset (body + sizeof head - 1, 'T', len);
    strcpy (body + sizeof head - 1 + len, tail);
    if (len < n) {
      is_int (parse (body, &k, &l), 0, "a token of %zu bytes is taken", len);
      is_int ((int) strlen (l.next_token), (int) len, "... whole");
      free (l.next_token);
    }
    else {
      is_int (parse (body, &k, &l), -1, "a token of %zu bytes is refused",
              len);
      error_contains ("more than " XS_S3XML_STRINGIFY (XS_S3XML_TOKEN_MAX)
                      " bytes", "... saying it is too long");
    }
  }
  free (body);
}

/* What reaches a terminal from the server. */
static void
test_clean_text (void)
{
  char text[64];

  strcpy (text, "plain text, caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80");
  xs_s3xml_clean_text (text);
  is_str (text, "plain text, caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80",
          "printable UTF-8 is kept");
  strcpy (text, "\x1b[2J\x1b]0;t\x07\r\n\t\x7f|");
  xs_s3xml_clean_text (text);
  is_str (text, "?[2J?]0;t?????|", "C0 controls and DEL become '?'");
  strcpy (text, "a\xc2\x9b" "2J\xc2\x85" "b");
  xs_s3xml_clean_text (text);
  is_str (text, "a?2J?b", "a C1 control (CSI, NEL) becomes one '?'");
  strcpy (text, "\x9b\xff\xc0\xaf\xed\xa0\x80\xe2\x80");
  xs_s3xml_clean_text (text);
  is_str (text, "?????????", "bytes that are not UTF-8 (stray, overlong, "
          "surrogate, cut short) become '?' each");
}

/* Some refusals come after keys were already handed out: they still fail
 * the whole parse.
 */
static void
test_refusal_after_keys (void)
{
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };

  is_int (parse (LIST ("<Contents><Key>good</Key></Contents>"
                       "<Contents><Key>bad&x;</Key></Contents>"), &k, &l), -1,
          "a bad second key fails the listing");
  is_str (k.text, "[good]", "... the first key was passed before");
  ok (l.next_token == NULL, "... and no token is left");
  tap_take_error ();

  is_int (parse (LIST ("<IsTruncated>true</IsTruncated>"
                       "<NextContinuationToken>t</NextContinuationToken>"
                       "<Contents><Size>1</Size></Contents>"), &k, &l), -1,
          "a truncated listing with a bad <Contents>");
  ok (l.next_token == NULL, "... frees its token and leaves NULL");
  tap_take_error ();
}

/* The body ends at its length, not at a NUL. */
static void
test_length_bound (void)
{
  static const char whole[] =
    "<ListBucketResult><Contents><Key>key</Key></Contents>"
    "</ListBucketResult>";
  struct xs_s3xml_listing l;
  struct keys k = { .stop_at = 0 };
  size_t n = sizeof whole - 1;
  char *exact = malloc (n);
  const char *cut;

  /* An exact-size copy with no NUL after it (ASan sees over-reads). */
  memcpy (exact, whole, n);
  is_int (parse_len (exact, n, &k, &l), 0,
          "a body without a terminating NUL parses");
  is_str (k.text, "[key]", "... its key");
  is_int (parse_len (exact, n - 1, &k, &l), -1,
          "the same less its last '>' is refused: the byte after the "
          "length is not read");
  error_contains ("no whole <ListBucketResult>", "... no whole root");
  free (exact);

  /* The closing tags are in the buffer, but after the length. */
  cut = "<ListBucketResult><Contents><Key>key</Key></Contents>";
  is_int (parse_len (whole, strlen (cut), &k, &l), -1,
          "a length that stops before </ListBucketResult> is refused");
  is_str (k.text, "", "... and passes no key");
  tap_take_error ();

  cut = "<ListBucketResult><Contents><Key>ke";
  is_int (parse_len (whole, strlen (cut), &k, &l), -1,
          "a length that stops inside a <Key> is refused");
  tap_take_error ();

  is_int (parse_len ("<ListBucketResult></ListBucketResult><Contents>"
                     "<Key>outside</Key></Contents>", 37, &k, &l), 0,
          "a length that stops after the root");
  is_str (k.text, "", "... sees no <Contents> after it");

  is_int (parse_len ("<ListBucketResult><Contents><Key>a</Key></Contents>"
                     "</ListBucketResult>", 0, &k, &l), -1,
          "a length of 0 is an empty body");
  tap_take_error ();
}

/* Fill with non-NUL garbage so that "" can only come from the parser. */
static void
garbage (char *buf, size_t size)
{
  memset (buf, '#', size);
  buf[size - 1] = '\0';
}

static void
test_errors (void)
{
  static const char evil[] =
    "<Error><Code>Evil&#27;[2J</Code><Message>\x1b]0;x\x07 &#x9b;1m\r"
    "</Message></Error>";
  static const char body[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error><Code>SignatureDoesNotMatch</Code>"
    "<Message>The request signature we calculated does not match &quot;"
    "the signature&quot; you provided &amp; &#x2014; check &lt;key&gt;"
    "</Message><RequestId>tx00000a1b2c3d4e5f</RequestId>"
    "<HostId>4c7d-default</HostId></Error>";
  char code[64], message[256], small_code[8], small_message[12];

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error (body, strlen (body), code, sizeof code, message,
                        sizeof message);
  is_str (code, "SignatureDoesNotMatch", "an error's code");
  is_str (message, "The request signature we calculated does not match "
          "\"the signature\" you provided & \xe2\x80\x94 check <key>",
          "its message, decoded");

  xs_s3xml_parse_error (body, strlen (body), small_code, sizeof small_code,
                        small_message, sizeof small_message);
  is_str (small_code, "Signatu", "a code truncated to its buffer (8)");
  is_str (small_message, "The request", "a message truncated to its (12)");

  memset (code, '#', sizeof code);
  xs_s3xml_parse_error (body, strlen (body), code, 0, message,
                        sizeof message);
  is_int (code[0], '#', "a buffer of size 0 is not written");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<Error><Code>NoSuchKey</Code></Error>", 37, code,
                        sizeof code, message, sizeof message);
  is_str (code, "NoSuchKey", "a code without a message");
  is_str (message, "", "... and the absent message is \"\"");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<Error><Message>slow down</Message></Error>", 43,
                        code, sizeof code, message, sizeof message);
  is_str (code, "", "an absent code is \"\"");
  is_str (message, "slow down", "... the message is still read");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<Error><Code>Bad&nbsp;</Code><Message>m</Message>"
                        "</Error>", 57, code, sizeof code, message,
                        sizeof message);
  is_str (code, "", "an unreadable code is \"\"");
  is_str (message, "m", "... the message is still read");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<html><body>502 Bad Gateway</body></html>", 41,
                        code, sizeof code, message, sizeof message);
  is_str (code, "", "no <Error>: code \"\"");
  is_str (message, "", "... message \"\"");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<Code>Outside</Code><Error></Error>", 35, code,
                        sizeof code, message, sizeof message);
  is_str (code, "", "a <Code> outside <Error> is not taken");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error ("<Error><Code>NoSuchBucket</Code></Error>", 30, code,
                        sizeof code, message, sizeof message);
  is_str (code, "", "a length that stops inside </Code>: code \"\"");

  garbage (code, sizeof code);
  garbage (message, sizeof message);
  xs_s3xml_parse_error (NULL, 0, code, sizeof code, message, sizeof message);
  is_str (code, "", "a NULL body: code \"\"");
  is_str (message, "", "... message \"\"");
  is_str (tap_take_error (), "", "reading errors never reports one");

  xs_s3xml_parse_error (evil, strlen (evil), code, sizeof code, message,
                        sizeof message);
  is_str (code, "Evil?[2J", "an escape in the code is cleaned");
  is_str (message, "?]0;x? ?1m?", "... and control characters in the "
          "message");
}

int
main (void)
{
  test_rgw_listing ();
  test_entities ();
  test_shapes ();
  test_callback_stops ();
  test_refusals ();
  test_refusal_after_keys ();
  test_token_length ();
  test_clean_text ();
  test_length_bound ();
  test_errors ();
  return done_testing ();
}
