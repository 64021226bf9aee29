/* xsnap: what the backend implementations share (see backend-impl.h):
 * object-key rules, %XX decoding of URLs, checking a placed read.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/hash.h"
#include "repo/backend-impl.h"

static bool
key_char_is_valid (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
    || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Checks one component (between slashes) of length len. */
static const char *
key_component_problem (const char *component, size_t len)
{
  size_t i;

  if (len == 0)
    return "empty path component";
  if (component[0] == '.')
    return "path component starts with '.'";
  for (i = 0; i < len; i++)
    if (!key_char_is_valid (component[i]))
      return "character outside [A-Za-z0-9._-/]";
  return NULL;
}

const char *
xs_backend_key_problem (const char *key)
{
  const char *component = key, *slash;
  size_t len = strlen (key);

  if (len == 0)
    return "empty key";
  if (len > XS_BACKEND_KEY_MAX)
    return "key too long";
  if (key[0] == '/')
    return "absolute path";
  for (;;) {
    const char *problem;

    slash = strchr (component, '/');
    problem = key_component_problem (component,
                                     slash ? (size_t) (slash - component)
                                     : strlen (component));
    if (problem)
      return problem;
    if (slash == NULL)
      return NULL;
    component = slash + 1;
  }
}

bool
xs_backend_key_is_valid (const char *key)
{
  const char *problem = xs_backend_key_problem (key);

  if (problem) {
    xs_error ("invalid object key '%.100s': %s", key, problem);
    return false;
  }
  return true;
}

char *
xs_backend_url_decode (const char *text, size_t len)
{
  char *out = malloc (len + 1), *o = out;

  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++) {
    int high, low;

    if (text[i] != '%') {
      *o++ = text[i];
      continue;
    }
    high = i + 2 < len ? xs_hex_digit_value (text[i + 1]) : -1;
    low = high < 0 ? -1 : xs_hex_digit_value (text[i + 2]);
    if (high < 0 || low < 0 || (high | low) == 0) {
      free (out);
      errno = EINVAL;
      return NULL;
    }
    *o++ = (char) (high << 4 | low);
    i += 2;
  }
  *o = '\0';
  return out;
}

int
xs_backend_call_place (const char *key, size_t size,
                       xs_backend_place_fn place, void *opaque,
                       struct xs_backend_place *where)
{
  size_t total = 0;
  int i;

  where->count = 0;
  if (place (size, where, opaque) == -1)
    return -1;
  for (i = 0; i < where->count && i < XS_BACKEND_PLACES; i++)
    total += where->iov[i].iov_len;
  if (where->count < 0 || where->count > XS_BACKEND_PLACES
      || total != size) {
    xs_error ("cannot read %s: buffers of %zu bytes for an object of %zu",
              key, total, size);
    errno = EINVAL;
    return -1;
  }
  return 0;
}
