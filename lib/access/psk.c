/* xsnap: per-account TLS pre-shared keys for remote NBD clients.
 *
 * nbdkit 1.32 cannot tell a plugin which PSK identity a client used, so
 * remote access is one nbdkit per account (`xsnap serve --account ID
 * --listen ADDR`), TLS required, with a key file that holds that account's
 * key only: whoever completes the handshake is that account.  The key file
 * is STORE/tls/ACCOUNT.psk, in the "username:hexkey" form of nbdkit's
 * --tls-psk and libnbd's tls-psk-file, mode 0600, written atomically.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "base/names.h"
#include "access/psk.h"

#define PSK_BYTES 32

static int
write_key_file (const char *path, const char *account)
{
  unsigned char key[PSK_BYTES];
  char line[XS_NAME_MAX + 2 + 2 * PSK_BYTES + 2], *tmp = NULL;
  size_t len;
  int fd = -1, r = -1;

  if (xs_random_bytes (key, sizeof key) == -1)
    return -1;
  len = (size_t) snprintf (line, sizeof line, "%s:", account);
  for (size_t i = 0; i < sizeof key; i++)
    len += (size_t) snprintf (line + len, sizeof line - len, "%02x", key[i]);
  line[len++] = '\n';
  if (asprintf (&tmp, "%s.tmp", path) == -1) {
    tmp = NULL;
    xs_error ("cannot write key file %s: %m", path);
    goto out;
  }
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd == -1 || xs_full_pwrite (fd, line, len, 0) == -1
      || fsync (fd) == -1) {
    xs_error ("cannot write key file %s: %m", tmp);
    goto out;
  }
  if (rename (tmp, path) == -1) {
    xs_error ("cannot write key file %s: %m", path);
    goto out;
  }
  r = xs_fsync_parent (path);
 out:
  if (fd >= 0)
    close (fd);
  if (r == -1 && tmp)
    unlink (tmp);
  free (tmp);
  memset (key, 0, sizeof key);
  memset (line, 0, sizeof line);
  return r;
}

char *
xs_psk_file (struct xs_store *store, const char *account, bool rotate)
{
  char *dir = NULL, *path = NULL;

  if (xs_name_check ("account", account) == -1)
    return NULL;
  if (asprintf (&dir, "%s/tls", xs_store_path (store)) == -1
      || asprintf (&path, "%s/%s.psk", dir, account) == -1) {
    xs_error ("cannot find the key of account '%s': %m", account);
    free (dir);
    return NULL;
  }
  if (mkdir (dir, 0700) == -1 && errno != EEXIST) {
    xs_error ("cannot create %s: %m", dir);
    goto fail;
  }
  if (!rotate && access (path, R_OK) == 0) {
    free (dir);
    return path;
  }
  if (write_key_file (path, account) == 0) {
    free (dir);
    return path;
  }
 fail:
  free (dir);
  free (path);
  return NULL;
}
