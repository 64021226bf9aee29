/* xsnap: the registry of open exports behind the NBD server (see
 * server.h).
 *
 * Lock order: srv->lock, then the catalog's lock (taken inside store and
 * volume calls).  The registry is a short linked list: a server has as many
 * entries as volumes with open connections, which is few.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "server.h"
#include "size.h"
#include "store.h"
#include "volume.h"

struct xs_export {
  struct xs_export *next;
  char volume_id[XS_ID_MAX];
  char *description;
  unsigned refs;                /* connections using it; under srv->lock */
  struct xs_head *head;
};

struct xs_server {
  struct xs_store *store;
  struct xs_scope scope;
  pthread_mutex_t lock;         /* protects exports and refs */
  struct xs_export *exports;
};

struct xs_server *
xs_server_new (const char *store_path, const char *account,
               const char *region)
{
  struct xs_server *srv = calloc (1, sizeof *srv);

  if (srv == NULL) {
    xs_error ("cannot start the server: %m");
    return NULL;
  }
  pthread_mutex_init (&srv->lock, NULL);
  srv->store = xs_store_open (store_path);
  if (srv->store == NULL
      || xs_store_scope (srv->store, account, region, &srv->scope) == -1) {
    xs_server_free (srv);
    return NULL;
  }
  return srv;
}

void
xs_server_free (struct xs_server *srv)
{
  if (srv == NULL)
    return;
  while (srv->exports) {
    struct xs_export *exp = srv->exports;
    srv->exports = exp->next;
    xs_head_close (exp->head);
    free (exp->description);
    free (exp);
  }
  xs_scope_clear (&srv->scope);
  xs_store_close (srv->store);
  pthread_mutex_destroy (&srv->lock);
  free (srv);
}

static char *
describe_volume (const struct xs_volume *vol)
{
  char size[32], block[32], *text;

  xs_size_format (vol->size, size, sizeof size);
  xs_size_format (vol->block_size, block, sizeof block);
  if (asprintf (&text, "volume %s (%s, %s blocks, read-write)", vol->id,
                size, block) == -1)
    return NULL;
  return text;
}

struct list_context {
  int (*fn) (const char *name, const char *description, void *opaque);
  void *opaque;
};

static int
list_one_volume (const struct xs_volume *vol, void *opaque)
{
  struct list_context *ctx = opaque;
  char *description = describe_volume (vol);
  int r;

  if (description == NULL) {
    xs_error ("cannot list volume '%s': %m", vol->name);
    return -1;
  }
  r = ctx->fn (vol->name, description, ctx->opaque);
  free (description);
  return r;
}

int
xs_server_list_exports (struct xs_server *srv,
                        int (*fn) (const char *name, const char *description,
                                   void *opaque),
                        void *opaque)
{
  struct list_context ctx = { .fn = fn, .opaque = opaque };

  return xs_volume_list (srv->store, &srv->scope, list_one_volume, &ctx);
}

static struct xs_export *
find_open (struct xs_server *srv, const char *volume_id)
{
  struct xs_export *exp;

  for (exp = srv->exports; exp; exp = exp->next)
    if (strcmp (exp->volume_id, volume_id) == 0)
      return exp;
  return NULL;
}

static struct xs_export *
open_volume (struct xs_server *srv, const struct xs_volume *vol)
{
  struct xs_export *exp = calloc (1, sizeof *exp);

  if (exp == NULL || (exp->description = describe_volume (vol)) == NULL) {
    xs_error ("cannot open volume '%s': %m", vol->name);
    free (exp);
    return NULL;
  }
  snprintf (exp->volume_id, sizeof exp->volume_id, "%s", vol->id);
  exp->head = xs_volume_open_head (srv->store, vol);
  if (exp->head == NULL) {
    free (exp->description);
    free (exp);
    return NULL;
  }
  exp->next = srv->exports;
  srv->exports = exp;
  return exp;
}

struct xs_export *
xs_server_open (struct xs_server *srv, const char *name, bool readonly)
{
  struct xs_volume vol;
  struct xs_export *exp = NULL;
  int r;

  pthread_mutex_lock (&srv->lock);
  r = xs_volume_find (srv->store, &srv->scope, name, false, &vol);
  if (r == 1)
    errno = ENOENT;
  if (r != 0)
    goto out;
  exp = find_open (srv, vol.id);
  if (exp == NULL)
    exp = open_volume (srv, &vol);
  if (exp)
    exp->refs++;
  xs_volume_clear (&vol);
 out:
  pthread_mutex_unlock (&srv->lock);
  return exp;
}

void
xs_server_close (struct xs_server *srv, struct xs_export *exp)
{
  struct xs_export **link;

  pthread_mutex_lock (&srv->lock);
  if (--exp->refs == 0) {
    for (link = &srv->exports; *link != exp; link = &(*link)->next)
      ;
    *link = exp->next;
    xs_head_close (exp->head);  /* reports its own failure */
    free (exp->description);
    free (exp);
  }
  pthread_mutex_unlock (&srv->lock);
}

uint64_t
xs_export_size (const struct xs_export *exp)
{
  return xs_head_size (exp->head);
}

uint32_t
xs_export_block_size (const struct xs_export *exp)
{
  return xs_head_block_size (exp->head);
}

bool
xs_export_writable (const struct xs_export *exp)
{
  return true;
}

const char *
xs_export_description (const struct xs_export *exp)
{
  return exp->description;
}

struct xs_head *
xs_export_head (struct xs_export *exp)
{
  return exp->head;
}
