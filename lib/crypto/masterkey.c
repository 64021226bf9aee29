/* xsnap: the master key file (see masterkey.h).
 *
 * Key bytes are wiped (OPENSSL_cleanse) before every return, and no
 * message includes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/error.h"
#include "base/fileio.h"
#include "base/hash.h"
#include "crypto/masterkey.h"

#define MASTER_KEY_FILE "master.key"

char *
xs_master_key_path (const char *store_path)
{
  const char *env = getenv (XS_MASTER_KEY_ENV);
  char *path;

  if (env && env[0] != '\0')
    path = strdup (env);
  else if (asprintf (&path, "%s/" MASTER_KEY_FILE, store_path) == -1)
    path = NULL;
  if (path == NULL)
    xs_error ("cannot locate the master key: %m");
  return path;
}

int
xs_master_key_create (const char *path)
{
  unsigned char key[XS_DATA_KEY_LEN];
  char hex[2 * XS_DATA_KEY_LEN + 2], *tmp = NULL;
  int fd = -1, r = -1;

  if (asprintf (&tmp, "%s.tmp.%d", path, (int) getpid ()) == -1) {
    xs_error ("cannot create the master key %s: %m", path);
    return -1;
  }
  if (xs_crypt_random (key, sizeof key) == -1)
    goto out;
  xs_hex_encode (key, sizeof key, hex);
  strcat (hex, "\n");
  fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1 || xs_full_pwrite (fd, hex, strlen (hex), 0) == -1
      || fsync (fd) == -1) {
    xs_error ("cannot create the master key %s: %m", path);
    goto out;
  }
  /* link: never replace a master key that is there already. */
  if (link (tmp, path) == -1 && errno != EEXIST) {
    xs_error ("cannot create the master key %s: %m", path);
    goto out;
  }
  r = 0;
 out:
  if (fd >= 0) {
    close (fd);
    unlink (tmp);
  }
  OPENSSL_cleanse (key, sizeof key);
  OPENSSL_cleanse (hex, sizeof hex);
  free (tmp);
  return r;
}


enum xs_master_key_read_result
xs_master_key_read_file (const char *path, unsigned char *key)
{
  enum xs_master_key_read_result r = XS_MASTER_KEY_UNUSABLE;
  char text[2 * XS_DATA_KEY_LEN + 2];
  struct stat st;
  ssize_t n;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1 && errno == ENOENT)
    return XS_MASTER_KEY_MISSING;
  if (fd == -1 || fstat (fd, &st) == -1) {
    xs_error ("cannot read the master key %s: %m (" XS_MASTER_KEY_HINT ")",
              path);
    if (fd >= 0)
      close (fd);
    return XS_MASTER_KEY_UNUSABLE;
  }
  if ((st.st_mode & 077) != 0) {
    xs_error ("cannot use the master key %s: it is readable or writable by "
              "others (chmod 600 it)", path);
    errno = EPERM;
    goto out;
  }
  n = read (fd, text, sizeof text);
  if (n >= 2 * XS_DATA_KEY_LEN && (n == 2 * XS_DATA_KEY_LEN
                                    || text[2 * XS_DATA_KEY_LEN] == '\n')) {
    text[2 * XS_DATA_KEY_LEN] = '\0';
    if (xs_hex_decode (text, key, XS_DATA_KEY_LEN) == 0)
      r = XS_MASTER_KEY_READ;
  }
  if (r != XS_MASTER_KEY_READ) {
    xs_error ("cannot use the master key %s: it is not 64 hex digits", path);
    errno = EINVAL;
  }
 out:
  OPENSSL_cleanse (text, sizeof text);
  close (fd);
  return r;
}
