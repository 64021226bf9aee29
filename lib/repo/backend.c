/* xsnap: object stores that hold repositories (see backend.h).
 *
 * This file is the front: it parses URLs, picks the implementation by
 * scheme, validates every key once, and dispatches.  Implementations (such
 * as backend-file.c) can then trust the keys they are given.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "repo/backend.h"
#include "repo/backend-impl.h"
#include "base/error.h"
#include "repo/s3config.h"

struct xs_backend {
  const struct xs_backend_ops *ops;
  void *impl;
  char *url;
};

static const struct xs_backend_ops *const backends[] = {
  &xs_backend_file_ops,
  &xs_backend_s3_ops,
};

static const struct xs_backend_ops *
find_backend (const char *url, size_t scheme_len)
{
  size_t i;

  for (i = 0; i < sizeof backends / sizeof backends[0]; i++)
    if (strlen (backends[i]->scheme) == scheme_len
        && strncmp (backends[i]->scheme, url, scheme_len) == 0)
      return backends[i];
  return NULL;
}

static size_t
url_scheme_length (const char *url)
{
  size_t i;

  for (i = 0; url[i] != '\0'; i++) {
    if (url[i] == ':')
      return i;
    if (!((url[i] >= 'a' && url[i] <= 'z') || (url[i] >= 'A' && url[i] <= 'Z')
          || (i > 0 && ((url[i] >= '0' && url[i] <= '9')
                        || url[i] == '+' || url[i] == '-' || url[i] == '.'))))
      return 0;
  }
  return 0;
}

/* The implementation for URL's scheme, or NULL with an error that shows
 * the URL redacted (what was typed into a refused URL may be a secret).
 */
static const struct xs_backend_ops *
ops_of_url (const char *url, size_t *scheme_len)
{
  const struct xs_backend_ops *ops = NULL;
  char *shown;

  *scheme_len = url_scheme_length (url);
  if (*scheme_len > 0 && (ops = find_backend (url, *scheme_len)) != NULL)
    return ops;
  shown = xs_s3_url_redact (url);
  if (*scheme_len == 0)
    xs_error ("unsupported backend URL '%s': not a URL "
              "(want file:///absolute/path or s3://bucket[/prefix])",
              shown ? shown : "(redacted)");
  else
    xs_error ("unsupported backend URL '%s': unknown scheme '%.*s' "
              "(supported: file:///absolute/path, s3://bucket[/prefix])",
              shown ? shown : "(redacted)", (int) *scheme_len, url);
  free (shown);
  return NULL;
}

struct xs_backend *
xs_backend_open (const char *url)
{
  size_t scheme_len;
  const struct xs_backend_ops *ops = ops_of_url (url, &scheme_len);
  struct xs_backend *backend;

  if (ops == NULL)
    return NULL;
  backend = calloc (1, sizeof *backend);
  if (backend == NULL || (backend->url = strdup (url)) == NULL) {
    xs_error ("cannot allocate backend: %m");
    free (backend);
    return NULL;
  }
  backend->ops = ops;
  if (ops->open (backend->url, backend->url + scheme_len + 1,
                 &backend->impl) == -1) {
    free (backend->url);
    free (backend);
    return NULL;
  }
  return backend;
}

struct xs_backend *
xs_backend_open_new (const char *url)
{
  size_t scheme_len;
  const struct xs_backend_ops *ops = ops_of_url (url, &scheme_len);

  if (ops == NULL
      || (ops->check_new && ops->check_new (url, url + scheme_len + 1) == -1))
    return NULL;
  return xs_backend_open (url);
}

void
xs_backend_close (struct xs_backend *backend)
{
  if (backend == NULL)
    return;
  backend->ops->close (backend->impl);
  free (backend->url);
  free (backend);
}

const char *
xs_backend_url (const struct xs_backend *backend)
{
  return backend->url;
}

int
xs_backend_put_if_absent (struct xs_backend *backend, const char *key,
                          const void *data, size_t len, bool durable)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  return backend->ops->put (backend->impl, key, data, len, durable, true);
}

int
xs_backend_put (struct xs_backend *backend, const char *key,
                const void *data, size_t len, bool durable)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  return backend->ops->put (backend->impl, key, data, len, durable, false)
    == -1 ? -1 : 0;
}

int
xs_backend_get (struct xs_backend *backend, const char *key,
                void **data, size_t *len)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  return backend->ops->get (backend->impl, key, data, len);
}

/* Copy data into the buffers of where (which hold exactly its length). */
static void
copy_to_place (const char *data, const struct xs_backend_place *where)
{
  int i;

  for (i = 0; i < where->count; i++) {
    memcpy (where->iov[i].iov_base, data, where->iov[i].iov_len);
    data += where->iov[i].iov_len;
  }
}

/* get_placed for backends that only have get. */
static int
get_then_place (struct xs_backend *backend, const char *key,
                xs_backend_place_fn place, void *opaque)
{
  struct xs_backend_place where;
  void *data;
  size_t len;
  int saved_errno, r = backend->ops->get (backend->impl, key, &data, &len);

  if (r != 0)
    return r;
  r = xs_backend_call_place (key, len, place, opaque, &where);
  saved_errno = errno;
  if (r == 0)
    copy_to_place (data, &where);
  free (data);
  errno = saved_errno;
  return r;
}

int
xs_backend_get_placed (struct xs_backend *backend, const char *key,
                       xs_backend_place_fn place, void *opaque)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  if (backend->ops->get_placed == NULL)
    return get_then_place (backend, key, place, opaque);
  return backend->ops->get_placed (backend->impl, key, place, opaque);
}

bool
xs_backend_is_remote (const struct xs_backend *backend)
{
  return backend->ops->remote;
}

int
xs_backend_exists (struct xs_backend *backend, const char *key)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  return backend->ops->exists (backend->impl, key);
}

/* What xs_backend_list passes on: only valid keys under the folder.  An
 * implementation's keys may come from a server, which may answer with
 * anything.
 */
struct list_filter {
  const char *folder;
  size_t folder_len;
  xs_backend_list_fn fn;
  void *opaque;
};

static int
list_filtered (const char *key, void *opaque)
{
  struct list_filter *filter = opaque;

  if ((filter->folder_len > 0
       && (strncmp (key, filter->folder, filter->folder_len) != 0
           || key[filter->folder_len] != '/'))
      || xs_backend_key_problem (key) != NULL) {
    xs_debug ("ignoring listed key '%.200s': not a key under '%s'", key,
              filter->folder);
    return 0;
  }
  return filter->fn (key, filter->opaque);
}

int
xs_backend_list (struct xs_backend *backend, const char *prefix,
                 xs_backend_list_fn fn, void *opaque)
{
  char folder[XS_BACKEND_KEY_MAX + 2];
  size_t len = strlen (prefix);
  struct list_filter filter = { .folder = folder, .fn = fn,
                                .opaque = opaque };

  if (len > XS_BACKEND_KEY_MAX) {
    xs_error ("invalid object prefix '%.100s': too long", prefix);
    return -1;
  }
  memcpy (folder, prefix, len + 1);
  if (len > 0 && folder[len - 1] == '/')
    folder[len - 1] = '\0';
  if (folder[0] != '\0' && !xs_backend_key_is_valid (folder))
    return -1;
  filter.folder_len = strlen (folder);
  return backend->ops->list (backend->impl, folder, list_filtered, &filter);
}

int
xs_backend_delete (struct xs_backend *backend, const char *key)
{
  if (!xs_backend_key_is_valid (key))
    return -1;
  return backend->ops->delete (backend->impl, key);
}

int
xs_backend_sync (struct xs_backend *backend)
{
  return backend->ops->sync (backend->impl);
}

long
xs_backend_remove_stale_temps (struct xs_backend *backend,
                               unsigned older_than_seconds)
{
  return backend->ops->remove_stale_temps (backend->impl,
                                           older_than_seconds);
}
