/* xsnap: libFuzzer target for key files.
 *
 * A key file arrives from another store, so xs_keyfile_parse must survive
 * any bytes (given without a terminating NUL, so ASan sees any read past
 * them).  A refusal is exactly one message; an accepted file holds a key
 * id of the right form and scrypt costs within bounds, and writing it out
 * and parsing that again gives the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/keyfile.h"

/* The fuzzer runs one input at a time on one thread. */
static int errors;

void
xs_error_sink (const char *message)
{
  (void) message;
  errors++;
}

static void
check_same (const struct xs_keyfile *a, const struct xs_keyfile *b)
{
  if (strcmp (a->key_id, b->key_id) != 0 || strcmp (a->name, b->name) != 0
      || strcmp (a->account, b->account) != 0
      || strcmp (a->wrapped, b->wrapped) != 0
      || a->scrypt_n != b->scrypt_n || a->scrypt_r != b->scrypt_r
      || a->scrypt_p != b->scrypt_p
      || memcmp (a->salt, b->salt, sizeof a->salt) != 0)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *copy = malloc (size ? size : 1), *text;
  struct xs_keyfile kf, again;

  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);
  errors = 0;
  if (xs_keyfile_parse (copy, size, &kf) == -1) {
    if (errors != 1)
      abort ();
    free (copy);
    return 0;
  }
  if (errors != 0 || strncmp (kf.key_id, "key-", 4) != 0
      || strlen (kf.key_id) != 20 || kf.scrypt_n < 2
      || (kf.scrypt_n & (kf.scrypt_n - 1)) != 0 || kf.scrypt_n > (1u << 17)
      || kf.scrypt_r < 1 || kf.scrypt_r > 8 || kf.scrypt_p < 1
      || kf.scrypt_p > 4)
    abort ();
  text = xs_keyfile_format (&kf);
  if (text == NULL || xs_keyfile_parse (text, strlen (text), &again) != 0)
    abort ();
  check_same (&kf, &again);
  xs_keyfile_clear (&again);
  xs_keyfile_clear (&kf);
  free (text);
  free (copy);
  return 0;
}
