/* xsnap: libFuzzer target for the S3 answers the S3 backend reads.
 *
 * Listings and error bodies come from the network.  The input is copied
 * into a buffer of exactly its size, with no terminating NUL, so ASan sees
 * any read past the body.  Beyond surviving, what the extractor says must
 * hold together:
 *   - a listing parse returns 0 with no error reported, or -1 with exactly
 *     one; a truncated listing has a non-empty, clean token of at most
 *     XS_S3XML_TOKEN_MAX bytes, an untruncated one none; listing.keys is the number of keys the callback saw; a key is
 *     never longer than the body;
 *   - a callback that stops gets its value back, the token is NULL, and
 *     the keys it saw are the first keys of a full parse;
 *   - an error body never reports an error, leaves NUL-terminated strings
 *     in buffers of any size, the short one a prefix of the long one, and
 *     never writes a buffer of size 0.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/s3xml.h"

/* The fuzzer runs one input at a time on one thread; refusals are
 * expected, so they are counted rather than printed.
 */
static int errors;

void
xs_error_sink (const char *message)
{
  (void) message;
  errors++;
}

#define STOP 7
#define WHAT "cannot list x/ in s3://b"

/* No C0 control or DEL (C1 and invalid UTF-8 are checked by the unit
 * tests; a byte test here keeps the fuzzer's oracle simple).
 */
static int
has_control (const char *text)
{
  for (const unsigned char *p = (const unsigned char *) text; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      return 1;
  return 0;
}

struct seen {
  size_t body_len;
  size_t keys;
  size_t stop_after;            /* 0: never stop */
  char *first;                  /* the first key, malloc'd */
};

static int
on_key (const char *key, void *opaque)
{
  struct seen *s = opaque;
  size_t len = strlen (key);

  if (len > s->body_len)
    abort ();
  if (s->keys == 0 && (s->first = strdup (key)) == NULL)
    abort ();
  s->keys++;
  return s->stop_after && s->keys == s->stop_after ? STOP : 0;
}

static void
check_listing (const char *body, size_t size)
{
  struct xs_s3xml_listing full, part;
  struct seen all = { .body_len = size };
  struct seen one = { .body_len = size, .stop_after = 1 };
  int r, r1;

  errors = 0;
  r = xs_s3xml_parse_listing (WHAT, body, size, on_key, &all, &full);
  if (r == 0) {
    if (errors != 0 || full.keys != all.keys
        || full.truncated != (full.next_token != NULL)
        || (full.next_token && (full.next_token[0] == '\0'
                                || strlen (full.next_token) > size
                                || strlen (full.next_token)
                                   > XS_S3XML_TOKEN_MAX
                                || has_control (full.next_token))))
      abort ();
  }
  else if (r != -1 || errors != 1 || full.next_token != NULL)
    abort ();

  /* Stopping at the first key. */
  errors = 0;
  r1 = xs_s3xml_parse_listing (WHAT, body, size, on_key, &one, &part);
  if (r1 == STOP) {
    if (errors != 0 || one.keys != 1 || part.keys != 1
        || part.next_token != NULL || all.keys == 0
        || strcmp (one.first, all.first) != 0)
      abort ();
  }
  else if (r1 == 0) {
    /* Only a listing without keys can finish without stopping. */
    if (r != 0 || all.keys != 0 || one.keys != 0 || errors != 0
        || part.truncated != full.truncated
        || (part.next_token == NULL) != (full.next_token == NULL)
        || (part.next_token && strcmp (part.next_token, full.next_token)))
      abort ();
    free (part.next_token);
  }
  else if (r1 != -1 || r == 0 || errors != 1 || part.next_token != NULL)
    abort ();
  if (r == 0)
    free (full.next_token);
  free (all.first);
  free (one.first);
}

/* Every field is NUL-terminated within its buffer, and the text in a
 * shorter buffer is the start of the text in a longer one.
 */
static void
check_error (const char *body, size_t size)
{
  static const size_t sizes[] = { 1, 2, 8, 64, 4096 };
  char code[2][4096 + 1], message[2][4096 + 1];
  size_t i, n;

  errors = 0;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    n = sizes[i];
    memset (code[i & 1], 'x', sizeof code[0]);
    memset (message[i & 1], 'x', sizeof message[0]);
    xs_s3xml_parse_error (body, size, code[i & 1], n, message[i & 1], n);
    if (code[i & 1][n] != 'x' || message[i & 1][n] != 'x'
        || strnlen (code[i & 1], n) == n
        || strnlen (message[i & 1], n) == n
        || strlen (code[i & 1]) > size || strlen (message[i & 1]) > size
        || has_control (code[i & 1]) || has_control (message[i & 1]))
      abort ();
    if (i > 0
        && (strncmp (code[i & 1], code[!(i & 1)],
                     strlen (code[!(i & 1)])) != 0
            || strncmp (message[i & 1], message[!(i & 1)],
                        strlen (message[!(i & 1)])) != 0))
      abort ();
  }
  /* Size 0: nothing written. */
  memset (code[0], 'x', 2);
  memset (message[0], 'x', 2);
  xs_s3xml_parse_error (body, size, code[0], 0, message[0], 0);
  if (code[0][0] != 'x' || message[0][0] != 'x' || errors != 0)
    abort ();
}

static void
check_clean (const char *body, size_t size)
{
  char *text = strndup (body, size);
  size_t before;

  if (text == NULL)
    return;
  before = strlen (text);
  xs_s3xml_clean_text (text);
  if (strlen (text) > before || has_control (text))
    abort ();
  free (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *body = malloc (size ? size : 1);

  if (body == NULL)
    return 0;
  memcpy (body, data, size);
  check_listing (body, size);
  check_error (body, size);
  check_clean (body, size);
  free (body);
  return 0;
}
