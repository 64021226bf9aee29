/* xsnap: the two S3 response bodies the S3 backend reads (see s3xml.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/hash.h"
#include "repo/s3xml.h"

/* A piece of the body: [start, end). */
struct span {
  const char *start;
  const char *end;
};

static const char *
find_bytes (const char *from, const char *end, const char *needle)
{
  size_t n = strlen (needle);

  if (from >= end || (size_t) (end - from) < n)
    return NULL;
  return memmem (from, end - from, needle, n);
}

/* Find the first element NAME in [from, end) and set *content to what is
 * between its tags.  Attributes are allowed and ignored; <NAME/> is
 * empty.  Returns 1 if found, 0 if not, -1 if an opening tag has no end.
 */
static int
find_element (const char *from, const char *end, const char *name,
              struct span *content)
{
  size_t n = strlen (name);
  char closing[64];
  const char *p = from, *gt, *close;

  if (n + 4 > sizeof closing)
    return -1;
  snprintf (closing, sizeof closing, "</%s>", name);
  while ((p = find_bytes (p, end, "<")) != NULL) {
    p++;
    if ((size_t) (end - p) < n + 1 || memcmp (p, name, n) != 0
        || !(p[n] == '>' || p[n] == '/' || p[n] == ' ' || p[n] == '\t'
             || p[n] == '\r' || p[n] == '\n'))
      continue;
    gt = memchr (p, '>', end - p);
    if (gt == NULL)
      return -1;
    if (gt[-1] == '/') {        /* <Name/> */
      content->start = content->end = gt + 1;
      return 1;
    }
    close = find_bytes (gt + 1, end, closing);
    if (close == NULL)
      return -1;
    content->start = gt + 1;
    content->end = close;
    return 1;
  }
  return 0;
}

/* Append code point CP as UTF-8 to out; returns bytes written, 0 if CP is
 * not a character XML allows.
 */
static size_t
put_utf8 (uint32_t cp, char *out)
{
  if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 0x3f);
    out[2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 0x3f);
  out[2] = 0x80 | ((cp >> 6) & 0x3f);
  out[3] = 0x80 | (cp & 0x3f);
  return 4;
}

/* Decode "&#NNN;" or "&#xHH;" at [p, semi); 0 when malformed. */
static size_t
decode_reference (const char *p, const char *semi, char *out)
{
  uint32_t cp = 0;
  int base = 10, d;

  p += 2;                       /* "&#" */
  if (p < semi && (*p == 'x' || *p == 'X')) {
    base = 16;
    p++;
  }
  if (p == semi || semi - p > 8)
    return 0;
  for (; p < semi; p++) {
    d = xs_hex_digit_value (*p);
    if (d < 0 || d >= base)
      return 0;
    cp = cp * base + d;
  }
  return put_utf8 (cp, out);
}

/* The length of the UTF-8 sequence at p (at most n bytes), its code
 * point in *cp; 0 when the bytes are not UTF-8.
 */
static size_t
utf8_sequence (const unsigned char *p, size_t n, uint32_t *cp)
{
  size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
    : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
    : 0;
  static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };

  if (len == 0 || len > n)
    return 0;
  *cp = len == 1 ? p[0] : p[0] & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    *cp = *cp << 6 | (p[i] & 0x3f);
  }
  if (*cp < least[len] || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
    return 0;
  return len;
}

/* A character a terminal would act on: C0, DEL, C1. */
static bool
is_control (uint32_t cp)
{
  return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

static bool
is_clean (const char *text)
{
  const unsigned char *p = (const unsigned char *) text;
  size_t n = strlen (text), len;
  uint32_t cp;

  for (size_t i = 0; i < n; i += len)
    if ((len = utf8_sequence (p + i, n - i, &cp)) == 0 || is_control (cp))
      return false;
  return true;
}

void
xs_s3xml_clean_text (char *text)
{
  unsigned char *p = (unsigned char *) text, *o = p;
  size_t n = strlen (text), len;
  uint32_t cp;

  for (size_t i = 0; i < n; i += len) {
    len = utf8_sequence (p + i, n - i, &cp);
    if (len == 0 || is_control (cp)) {
      *o++ = '?';
      len = len ? len : 1;
      continue;
    }
    memmove (o, p + i, len);
    o += len;
  }
  *o = '\0';
}

static const struct {
  const char *name;
  char c;
} entities[] = {
  { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
  { "&quot;", '"' }, { "&apos;", '\'' },
};

/* Decode the text of SPAN into a malloc'd string, or NULL with *why set
 * (markup inside, a bad reference, a NUL) or out of memory (*why NULL).
 */
static char *
decode_text (struct span text, const char **why)
{
  char *out = malloc (text.end - text.start + 1), *o = out;
  const char *p = text.start, *semi;
  size_t i, n;

  *why = NULL;
  if (out == NULL)
    return NULL;
  while (p < text.end) {
    if (*p == '<' || *p == '\0') {
      *why = *p ? "markup inside a text element" : "a NUL byte";
      goto bad;
    }
    if (*p != '&') {
      *o++ = *p++;
      continue;
    }
    semi = memchr (p, ';', text.end - p);
    if (semi == NULL) {
      *why = "an unterminated '&' reference";
      goto bad;
    }
    if (semi - p >= 3 && p[1] == '#') {
      /* A reference is at least as long as its UTF-8 bytes. */
      n = decode_reference (p, semi, o);
      if (n == 0) {
        *why = "a bad character reference";
        goto bad;
      }
      o += n;
      p = semi + 1;
      continue;
    }
    for (i = 0; i < sizeof entities / sizeof entities[0]; i++)
      if ((size_t) (semi + 1 - p) == strlen (entities[i].name)
          && memcmp (p, entities[i].name, semi + 1 - p) == 0)
        break;
    if (i == sizeof entities / sizeof entities[0]) {
      *why = "an unknown entity";
      goto bad;
    }
    *o++ = entities[i].c;
    p = semi + 1;
  }
  *o = '\0';
  return out;
 bad:
  free (out);
  return NULL;
}

static void
report_bad_body (const char *what, const char *element, const char *why)
{
  if (why)
    xs_error ("%s: the answer is not a listing: %s has %s", what, element,
              why);
  else
    xs_error ("%s: out of memory", what);
}

/* Call fn for the Key of each Contents element in [p, end). */
static int
each_listed_key (const char *what, const char *p, const char *end,
                 xs_s3xml_key_fn fn, void *opaque,
                 struct xs_s3xml_listing *listing)
{
  struct span contents, key;
  const char *why;
  char *text;
  int r;

  for (;;) {
    r = find_element (p, end, "Contents", &contents);
    if (r == 0)
      return 0;
    if (r == -1 || find_element (contents.start, contents.end, "Key",
                                 &key) != 1) {
      xs_error ("%s: the answer is not a listing: a <Contents> element "
                "without a whole <Key>", what);
      return -1;
    }
    text = decode_text (key, &why);
    if (text == NULL) {
      report_bad_body (what, "a <Key>", why);
      return -1;
    }
    r = fn (text, opaque);
    free (text);
    listing->keys++;
    if (r != 0)
      return r;
    p = contents.end;
  }
}

/* The continuation token of a truncated listing: there, not empty, not
 * longer than XS_S3XML_TOKEN_MAX, without a control character (it goes
 * back to the server and, when it repeats, into a message).
 */
static int
read_token (const char *what, struct span root,
            struct xs_s3xml_listing *listing)
{
  struct span token;
  const char *why;
  char *text;

  if (find_element (root.start, root.end, "NextContinuationToken",
                    &token) != 1
      || token.start == token.end) {
    xs_error ("%s: the answer is not a listing: it is truncated but has no "
              "<NextContinuationToken> (or an empty one)", what);
    return -1;
  }
  text = decode_text (token, &why);
  if (text == NULL) {
    report_bad_body (what, "<NextContinuationToken>", why);
    return -1;
  }
  why = strlen (text) > XS_S3XML_TOKEN_MAX ? "more than "
    XS_S3XML_STRINGIFY (XS_S3XML_TOKEN_MAX) " bytes"
    : !is_clean (text) ? "a control character or a byte that is not UTF-8"
    : NULL;
  if (why) {
    report_bad_body (what, "<NextContinuationToken>", why);
    free (text);
    return -1;
  }
  listing->next_token = text;
  return 0;
}

int
xs_s3xml_parse_listing (const char *what, const char *body, size_t len,
                        xs_s3xml_key_fn fn, void *opaque,
                        struct xs_s3xml_listing *listing)
{
  const char *end = body + len;
  struct span root, flag;
  int r;

  listing->truncated = false;
  listing->next_token = NULL;
  listing->keys = 0;
  if (find_element (body, end, "ListBucketResult", &root) != 1) {
    xs_error ("%s: the answer is not a listing: no whole "
              "<ListBucketResult>", what);
    return -1;
  }
  r = find_element (root.start, root.end, "IsTruncated", &flag);
  if (r == 1) {
    if (flag.end - flag.start == 4 && memcmp (flag.start, "true", 4) == 0)
      listing->truncated = true;
    else if (!(flag.end - flag.start == 5
               && memcmp (flag.start, "false", 5) == 0)) {
      xs_error ("%s: the answer is not a listing: <IsTruncated> is neither "
                "true nor false", what);
      return -1;
    }
  }
  if (listing->truncated && read_token (what, root, listing) == -1)
    return -1;
  r = each_listed_key (what, root.start, root.end, fn, opaque, listing);
  if (r != 0) {
    free (listing->next_token);
    listing->next_token = NULL;
  }
  return r;
}

/* Copy the decoded and cleaned text of element NAME into out ("" if
 * absent or bad), cut at a character's start to fit.
 */
static void
copy_element (const char *body, const char *end, const char *name,
              char *out, size_t size)
{
  struct span text;
  const char *why;
  char *decoded;
  size_t n;

  if (size == 0)
    return;
  out[0] = '\0';
  if (find_element (body, end, name, &text) != 1)
    return;
  decoded = decode_text (text, &why);
  if (decoded == NULL)
    return;
  xs_s3xml_clean_text (decoded);
  n = strlen (decoded);
  if (n > size - 1)
    for (n = size - 1; n > 0 && (decoded[n] & 0xc0) == 0x80; n--)
      ;
  memcpy (out, decoded, n);
  out[n] = '\0';
  free (decoded);
}

void
xs_s3xml_parse_error (const char *body, size_t len, char *code,
                      size_t code_size, char *message, size_t message_size)
{
  struct span error;

  if (code_size)
    code[0] = '\0';
  if (message_size)
    message[0] = '\0';
  if (body == NULL || find_element (body, body + len, "Error", &error) != 1)
    return;
  copy_element (error.start, error.end, "Code", code, code_size);
  copy_element (error.start, error.end, "Message", message, message_size);
}
