/* nbdkit-xsnap-plugin: serve the volumes of an xsnap store over NBD.
 *
 * A thin adapter: every callback turns into one call of libxsnap's server
 * (lib/ops/server.h), which owns all storage logic.  The only state here is
 * the configuration and the one server object, created after nbdkit has
 * forked (SQLite connections must not cross a fork).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "repo/chunkcache.h"
#include "base/error.h"
#include "head/head.h"
#include "ops/server.h"

/* The most the plugin allows; xsnap_thread_model may lower it (below). */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Configuration, set before the server starts and read-only after. */
static char *store_path;
static char *account;
static char *region;
static int64_t cache_bytes = -1;       /* -1: the library's default */
static int hydrate = 1;
static int64_t hydrate_rate;           /* bytes a second; 0: no limit */
static int64_t seal_buffer = XS_HEAD_SEAL_BUFFER;
static enum { PARALLEL_AUTO, PARALLEL_ON, PARALLEL_OFF } parallel;

/* The server, created in after_fork; read-only pointer afterwards. */
static struct xs_server *server;

/* Messages may quote what clients sent (export names): one line each,
 * whatever they hold.
 */
void
xs_error_sink (const char *message)
{
  char line[4 * 2048 + 1];

  xs_server_log_line (message, line, sizeof line);
  nbdkit_error ("%s", line);
}

void
xs_debug_sink (const char *message)
{
  char line[4 * 2048 + 1];

  xs_server_log_line (message, line, sizeof line);
  nbdkit_debug ("%s", line);
}

/* nbdkit has no level between debug and error: notices (what the
 * server did on its own, such as finishing a clone's hydration) are
 * logged with -v, as debug messages are.
 */
void
xs_notice_sink (const char *message)
{
  xs_debug_sink (message);
}

static void
xsnap_unload (void)
{
  xs_server_free (server);
  free (store_path);
  free (account);
  free (region);
}

static int
xsnap_config (const char *key, const char *value)
{
  if (strcmp (key, "store") == 0) {
    free (store_path);
    store_path = nbdkit_realpath (value);
    return store_path ? 0 : -1;
  }
  if (strcmp (key, "account") == 0) {
    free (account);
    account = strdup (value);
    return account ? 0 : -1;
  }
  if (strcmp (key, "cache") == 0) {
    cache_bytes = nbdkit_parse_size (value);
    return cache_bytes == -1 ? -1 : 0;
  }
  if (strcmp (key, "parallel") == 0) {
    if (strcmp (value, "auto") == 0)
      parallel = PARALLEL_AUTO;
    else {
      int r = nbdkit_parse_bool (value);
      if (r == -1)
        return -1;
      parallel = r ? PARALLEL_ON : PARALLEL_OFF;
    }
    return 0;
  }
  if (strcmp (key, "hydrate") == 0) {
    hydrate = nbdkit_parse_bool (value);
    return hydrate == -1 ? -1 : 0;
  }
  if (strcmp (key, "hydrate-rate") == 0) {
    hydrate_rate = nbdkit_parse_size (value);
    return hydrate_rate == -1 ? -1 : 0;
  }
  if (strcmp (key, "seal-buffer") == 0) {
    seal_buffer = nbdkit_parse_size (value);
    return seal_buffer == -1 ? -1 : 0;
  }
  if (strcmp (key, "region") == 0) {
    free (region);
    region = strdup (value);
    return region ? 0 : -1;
  }
  nbdkit_error ("unknown parameter '%s' (see nbdkit xsnap --help)", key);
  return -1;
}

static int
xsnap_config_complete (void)
{
  if (store_path == NULL) {
    nbdkit_error ("the store parameter is required: store=DIR");
    return -1;
  }
  return 0;
}

#define xsnap_config_help \
  "store=DIR       (required) The xsnap store to serve.\n" \
  "account=ID      Every client acts as this account (for TLS servers,\n" \
  "                one per account).  Without it, a client on a Unix\n" \
  "                socket acts as the account its uid is mapped to\n" \
  "                (root: the administrator); others see nothing.\n" \
  "region=NAME     Serve this region's volumes (default: the store's\n" \
  "                default region).\n" \
  "cache=SIZE      Cache of decompressed chunks for snapshot exports\n" \
  "                and clones (default: a quarter of the RAM, at least\n" \
  "                256M; 0 disables it).\n" \
  "hydrate=BOOL    Hydrate disks made from snapshots in the background\n" \
  "                while they are served (default true), giving way\n" \
  "                to clients' reads of what they lack.\n" \
  "hydrate-rate=SIZE  At most SIZE bytes a second for each disk\n" \
  "                hydrated (default: no limit).\n" \
  "seal-buffer=SIZE  Room for what writes overwrite while a snapshot\n" \
  "                is pending (default 256M; 0: writes seal first).\n" \
  "parallel=auto|BOOL  Several requests of one connection at once\n" \
  "                (default auto: only on nbdkit servers that survive\n" \
  "                clients which hang up with replies in flight)."

static size_t
cache_capacity (void)
{
  return cache_bytes == -1 ? xs_chunk_cache_default_capacity ()
    : (size_t) cache_bytes;
}

/* Check the store while errors still reach the terminal. */
static int
xsnap_get_ready (void)
{
  struct xs_server *probe = xs_server_new (store_path, account, region,
                                           cache_capacity ());

  if (probe == NULL)
    return -1;
  xs_server_free (probe);
  return 0;
}

static int
xsnap_after_fork (void)
{
  server = xs_server_new (store_path, account, region, cache_capacity ());
  if (server == NULL)
    return -1;
  xs_server_set_hydration (server, hydrate, (uint64_t) hydrate_rate);
  xs_server_set_seal_buffer (server, (uint64_t) seal_buffer);
  return 0;
}

static int
add_export (const char *name, const char *description, void *opaque)
{
  return nbdkit_add_export (opaque, name, description);
}

/* Who the client is: the configured account (xsnap serve runs one
 * server per account, TLS required), else the account its uid maps to on
 * a Unix socket.  NULL (reported) for a client that is neither.
 */
static char *
client_account (void)
{
  int64_t uid;

  if (account)
    return strdup (account);
  uid = nbdkit_peer_uid ();
  if (uid == -1) {
    nbdkit_error ("cannot tell which account the client is: serve it over"
                  " a Unix socket, or with account=ID");
    return NULL;
  }
  return xs_server_account_for_uid (server, uid);
}

static int
xsnap_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  char *caller = client_account ();
  int r;

  if (caller == NULL)
    return 0;                   /* sees nothing */
  r = xs_server_list_exports (server, caller, add_export, exports);
  free (caller);
  return r;
}

static void *
xsnap_open (int readonly)
{
  struct xs_export *exp = NULL;
  char *caller = client_account ();

  errno = ENOENT;
  if (caller)
    exp = xs_server_open (server, caller, nbdkit_export_name (), readonly);
  if (exp == NULL)
    nbdkit_set_error (errno ? errno : EIO);
  free (caller);
  return exp;
}

static void
xsnap_close (void *handle)
{
  xs_server_close (server, handle);
}

static const char *
xsnap_export_description (void *handle)
{
  return xs_export_description (handle);
}

static int64_t
xsnap_get_size (void *handle)
{
  return (int64_t) xs_export_size (handle);
}

static int
xsnap_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                  uint32_t *maximum)
{
  *minimum = 1;
  *preferred = xs_export_preferred_size (handle);
  *maximum = 0xffffffff;
  return 0;
}

static int
xsnap_can_write (void *handle)
{
  return xs_export_writable (handle);
}

static int
xsnap_can_yes (void *handle)
{
  return 1;
}

static int
xsnap_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
xsnap_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  return xs_export_pread (handle, buf, count, offset);
}

static int
xsnap_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  return xs_head_pwrite (xs_export_head (handle), buf, count, offset,
                         flags & NBDKIT_FLAG_FUA);
}

static int
xsnap_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  unsigned zero_flags = 0;

  if (flags & NBDKIT_FLAG_MAY_TRIM)
    zero_flags |= XS_HEAD_MAY_TRIM;
  if (flags & NBDKIT_FLAG_FUA)
    zero_flags |= XS_HEAD_FUA;
  if (flags & NBDKIT_FLAG_FAST_ZERO)
    zero_flags |= XS_HEAD_FAST_ZERO;
  return xs_head_zero (xs_export_head (handle), count, offset, zero_flags);
}

static int
xsnap_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  return xs_head_trim (xs_export_head (handle), count, offset,
                       flags & NBDKIT_FLAG_FUA);
}

static int
xsnap_flush (void *handle, uint32_t flags)
{
  return xs_export_flush (handle);
}

/* Where the extents of one request go: nbdkit's list, up to END. */
struct extents_to {
  struct nbdkit_extents *extents;
  uint64_t end;
};

static int
add_extent (uint64_t offset, uint64_t length, bool hole, void *opaque)
{
  const struct extents_to *to = opaque;
  uint32_t type = hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0;

  if (offset >= to->end)
    return 0;
  if (length > to->end - offset)
    length = to->end - offset;
  return nbdkit_add_extent (to->extents, offset, length, type);
}

static int
xsnap_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents)
{
  /* Extents may run past the request, and nbdkit would trim them, but
   * the nbdkit of Debian 12 (1.32) aborts the whole server (an assertion
   * in its reply path) on an extent of 4 GiB or more that ends at or
   * past the end of a request of nearly 4 GiB, which `nbdinfo --map`
   * sends: a hole in any volume larger than that.  Ending them at the
   * request's end keeps every extent below 4 GiB.
   */
  struct extents_to to = { .extents = extents, .end = offset + count };

  return xs_export_extents (handle, offset, count, add_extent, &to);
}

/* nbdkit before 1.33.10 aborts the whole server (an assertion in its
 * reply path) when a connection with several worker threads fails while
 * more than one reply is queued: a client that hangs up with reads in
 * flight, or sends a malformed request behind them, kills every other
 * client's connection and leaves every attached volume with an unclean
 * stop.  A connection gets several worker threads only under the
 * PARALLEL model, so on those servers the plugin asks for
 * SERIALIZE_REQUESTS: each connection handles one request at a time, on
 * one thread, while connections still run in parallel (multi-conn
 * clients such as nbdcopy and nbd-client -C keep their parallelism).
 * nbdkit_disconnect arrived in the same release as the fix, so its
 * presence in the server is what "fixed" means here.
 */
static bool
server_survives_hangups (void)
{
  return dlsym (RTLD_DEFAULT, "nbdkit_disconnect") != NULL;
}

static int
xsnap_thread_model (void)
{
  switch (parallel) {
  case PARALLEL_ON:
    return NBDKIT_THREAD_MODEL_PARALLEL;
  case PARALLEL_OFF:
    return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
  case PARALLEL_AUTO:
  default:
    break;
  }
  if (server_survives_hangups ())
    return NBDKIT_THREAD_MODEL_PARALLEL;
  nbdkit_debug ("this nbdkit aborts when a client hangs up with replies in "
                "flight: one request at a time per connection");
  return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
}

static struct nbdkit_plugin plugin = {
  .name               = "xsnap",
  .longname           = "xsnap volumes and snapshots",
  .version            = XSNAP_VERSION,   /* the Makefile's VERSION */
  .description        = "Serve cloud-style volumes with changed-block "
                        "tracking from an xsnap store",
  .magic_config_key   = "store",
  .unload             = xsnap_unload,
  .config             = xsnap_config,
  .config_complete    = xsnap_config_complete,
  .config_help        = xsnap_config_help,
  .thread_model       = xsnap_thread_model,
  .get_ready          = xsnap_get_ready,
  .after_fork         = xsnap_after_fork,
  .list_exports       = xsnap_list_exports,
  .open               = xsnap_open,
  .close              = xsnap_close,
  .export_description = xsnap_export_description,
  .get_size           = xsnap_get_size,
  .block_size         = xsnap_block_size,
  .can_write          = xsnap_can_write,
  .can_flush          = xsnap_can_yes,
  .can_trim           = xsnap_can_yes,
  .can_zero           = xsnap_can_yes,
  .can_fast_zero      = xsnap_can_yes,
  .can_extents        = xsnap_can_yes,
  .can_multi_conn     = xsnap_can_yes,
  .can_fua            = xsnap_can_fua,
  .pread              = xsnap_pread,
  .pwrite             = xsnap_pwrite,
  .zero               = xsnap_zero,
  .trim               = xsnap_trim,
  .flush              = xsnap_flush,
  .extents            = xsnap_extents,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
