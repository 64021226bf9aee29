/* xsnap: tests for lib/crypto/masterkey.c — the master key file.
 *
 * Made whole with mode 0600, never replaced once there, read back as
 * made; a file open to others, a malformed one and a missing one are
 * told apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/masterkey.h"
#include "tap.h"

static void
write_text (const char *path, const char *text, mode_t mode)
{
  FILE *f = fopen (path, "w");

  if (f == NULL || fputs (text, f) == EOF || fclose (f) != 0
      || chmod (path, mode) == -1) {
    perror (path);
    abort ();
  }
}

int
main (void)
{
  char *dir = tap_tmpdir (), *path, *env_path;
  unsigned char key[XS_DATA_KEY_LEN], again[XS_DATA_KEY_LEN];
  char bad[256];
  struct stat st;

  unsetenv (XS_MASTER_KEY_ENV);
  path = xs_master_key_path (dir);
  ok (path && strcmp (path + strlen (dir), "/master.key") == 0,
      "the master key lives in the store by default");
  setenv (XS_MASTER_KEY_ENV, "/elsewhere/shared.key", 1);
  env_path = xs_master_key_path (dir);
  is_str (env_path, "/elsewhere/shared.key",
          XS_MASTER_KEY_ENV " names another file");
  free (env_path);
  unsetenv (XS_MASTER_KEY_ENV);

  is_int (xs_master_key_read_file (path, key), XS_MASTER_KEY_MISSING,
          "no file yet: missing, not an error");
  is_int (xs_master_key_create (path), 0, "made");
  ok (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600
      && st.st_size == 2 * XS_DATA_KEY_LEN + 1,
      "64 hex digits and a newline, mode 0600");
  is_int (xs_master_key_read_file (path, key), XS_MASTER_KEY_READ, "read");
  is_int (xs_master_key_create (path), 0, "made again: no error");
  is_int (xs_master_key_read_file (path, again), XS_MASTER_KEY_READ,
          "read again");
  ok (memcmp (key, again, sizeof key) == 0, "an existing key is not replaced");

  chmod (path, 0640);
  is_int (xs_master_key_read_file (path, key), XS_MASTER_KEY_UNUSABLE,
          "readable by its group: refused");
  error_contains ("chmod 600", "the message says how to fix it");

  snprintf (bad, sizeof bad, "%s/short.key", dir);
  write_text (bad, "0123abcd\n", 0600);
  is_int (xs_master_key_read_file (bad, key), XS_MASTER_KEY_UNUSABLE,
          "too short: refused");
  error_contains ("not 64 hex digits", "the message says why");
  write_text (bad, "zz23456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef\n", 0600);
  is_int (xs_master_key_read_file (bad, key), XS_MASTER_KEY_UNUSABLE,
          "not hex: refused");

  snprintf (bad, sizeof bad, "%s/no-such-dir/master.key", dir);
  ok (xs_master_key_create (bad) == -1, "cannot make it where no directory is");
  error_contains ("cannot create the master key", "and says so");

  free (path);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
