/* xsnap: libFuzzer target for the S3 answers the S3 backend reads.
 *
 * Listings and error bodies come from the network.  The extractor must
 * read nothing past the body (the input is copied into a buffer of exactly
 * its size, with no terminating NUL, so ASan sees any over-read), and what
 * it accepts must be consistent: a truncated listing has a continuation
 * token and an untruncated one none, every key handed out is a string the
 * body's length can hold, and error fields fit their buffers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"

void
xs_error_sink (const char *message)
{
  (void) message;
}

struct seen {
  size_t keys;
  size_t limit;
  size_t body_len;
};

static int
on_key (const char *key, void *opaque)
{
  struct seen *s = opaque;

  if (strlen (key) > s->body_len)
    abort ();
  s->keys++;
  return s->limit && s->keys == s->limit ? 7 : 0;
}

static void
check_listing (const char *body, size_t size, size_t limit)
{
  struct xs_s3xml_listing listing;
  struct seen s = { .limit = limit, .body_len = size };
  int r = xs_s3xml_parse_listing (body, size, on_key, &s, &listing);

  if (r == 0) {
    if (listing.keys != s.keys || (listing.truncated != (listing.next_token
                                                         != NULL)))
      abort ();
    if (listing.next_token && strlen (listing.next_token) > size)
      abort ();
    free (listing.next_token);
  }
  else if (r == 7) {
    if (limit == 0 || s.keys != limit || listing.next_token != NULL)
      abort ();
  }
  else if (r != -1)
    abort ();
}

static void
check_error (const char *body, size_t size, size_t room)
{
  char code[64], message[256];
  size_t code_size = room < sizeof code ? room : sizeof code;
  size_t message_size = room < sizeof message ? room : sizeof message;

  memset (code, 'x', sizeof code);
  memset (message, 'x', sizeof message);
  xs_s3xml_parse_error (body, size, code, code_size, message, message_size);
  if (code_size && strnlen (code, code_size) == code_size)
    abort ();
  if (message_size && strnlen (message, message_size) == message_size)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *body = malloc (size ? size : 1);

  if (body == NULL)
    return 0;
  memcpy (body, data, size);
  check_listing (body, size, 0);
  check_listing (body, size, 1);
  check_error (body, size, 1);
  check_error (body, size, 8);
  check_error (body, size, 1000);
  free (body);
  return 0;
}
