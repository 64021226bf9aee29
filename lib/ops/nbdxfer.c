/* xsnap: import and export through NBD (see nbdxfer.h).
 *
 * Data moves over lanes: a lane is one NBD connection driven by one
 * thread, with up to a few dozen asynchronous requests in flight.  Like
 * nbdcopy, several lanes are opened only when the server advertises
 * multi-conn; otherwise a second connection might not even be accepted
 * (qemu-nbd serves one client by default), and one lane kept busy is
 * enough.  Lanes take segments of the range from a shared counter, so a
 * fast lane does more.  Completion callbacks run in their lane's own
 * thread (inside nbd_poll), so a lane's state needs no lock; only the
 * progress count is shared.  What a lane does with its segment is the
 * transfer's run_segment: import the source's map of it (or, with a
 * dirty bitmap, the runs it marks), export the snapshot's extents (or,
 * with a base, only the runs of blocks that differ from it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libnbd.h>

#include "access/access.h"
#include "base/error.h"
#include "base/fileio.h"
#include "head/head.h"
#include "ops/changemap.h"
#include "ops/nbdapi.h"
#include "ops/nbdxfer.h"
#include "repo/repo.h"
#include "base/size.h"
#include "repo/snapreader.h"
#include "catalog/snapnew.h"
#include "catalog/snapshot.h"
#include "catalog/volume.h"

#define XFER_REQUEST_SIZE (1u << 18)          /* largest read or write */
#define XFER_LANE_BUFFERS (32u << 20)         /* buffer bytes per lane */
#define XFER_MIN_SLOTS 4u
#define XFER_MAX_SLOTS 32u
#define XFER_MAX_LANES 4u
#define XFER_SEGMENT (UINT64_C (64) << 20)    /* handed to a lane at once */
/* The most of the map asked for at once when skipping zeros: what one
 * NBD request may describe (a 32-bit length), in whole segments.
 */
#define XFER_SKIP_WINDOW (UINT64_C (4096) * 1024 * 1024 - XFER_SEGMENT)
#define XFER_SPARSE 4096u                     /* unit of zero detection */
#define XFER_ZERO_MAX (UINT64_C (1) << 30)    /* longest zero request */
#define XFER_POLL_MS 500                      /* to notice *stop */
#define XFER_BEHIND 32u                       /* write-behind window */

struct lane;

/* A buffer and the requests in flight on it. */
struct slot {
  struct lane *lane;
  char *buf;
  uint64_t offset;
  uint64_t count;
  unsigned pending;             /* commands not yet completed */
};

/* A range written to the volume's data file and being written back. */
struct written {
  uint64_t offset;
  uint64_t length;
};

/* What an import does with a run of the source: read it, or (the
 * server says it reads as zeroes) not; an incremental import leaves
 * clean runs (neither dirty in the source's bitmap nor changed in the
 * volume) alone and zeroes zero runs in the volume.
 */
enum extent_kind { EXTENT_DATA, EXTENT_ZERO, EXTENT_CLEAN };

/* One run of the source's map. */
struct extent {
  uint64_t offset;
  uint64_t length;
  enum extent_kind kind;
};

/* Runs in order, each starting where the last one ended. */
struct extent_list {
  struct extent *v;
  size_t n, cap;
};

struct xfer;

struct lane {
  struct xfer *x;
  struct nbd_handle *nbd;
  pthread_t thread;
  bool started;
  struct slot *slots;
  unsigned nslots;
  unsigned in_flight;
  /* Import: the map of the range being copied (MAP), from the server's
   * base:allocation (ALLOC) and dirty bitmap (DIRTY) answers for it.
   */
  struct extent_list map, alloc, dirty;
  uint64_t map_end;
  uint64_t misaligned;          /* a dirty extent's end off 512 bytes */
  /* Import: the last ranges written, oldest first from behind_next. */
  struct written behind[XFER_BEHIND];
  unsigned nbehind, behind_next;
  /* Summed into the report at the end. */
  uint64_t bytes_read, bytes_written, bytes_zeroed;
  uint64_t holes_skipped, zeros_skipped, bytes_dirty, clean_skipped;
};

struct xfer {
  const char *what;             /* "import from", "export to" */
  const char *uri;
  const atomic_int *stop;
  struct xs_nbd_api api;        /* libnbd, loaded for this transfer */
  uint64_t length;              /* copy [0, length) */
  bool want_map;                /* import: ask for base:allocation */
  bool flush;                   /* export: flush the target at the end */
  uint32_t request_size;        /* largest read or write request */
  uint64_t slot_size;           /* bytes per slot buffer */
  int (*run_segment) (struct lane *lane, uint64_t start, uint64_t end);
  _Atomic uint64_t next_segment;
  atomic_bool failed;           /* the first failure stops every lane */
  unsigned nlanes;
  struct lane *lanes;
  pthread_mutex_t progress_lock;
  uint64_t done;
  xs_transfer_progress_fn progress;
  void *opaque;
  /* Import. */
  struct xs_head *head;
  bool use_map;                 /* the source reports base:allocation */
  const char *dirty_context;    /* incremental: "qemu:dirty-bitmap:NAME" */
  /* Incremental import: the volume's blocks changed since its last
   * snapshot; export with a base: the blocks that differ from it.
   */
  const struct xs_bitmap *changed;
  uint32_t block_size;          /* of CHANGED's blocks */
  /* Export. */
  struct xs_snapreader *reader;
  bool target_is_zero;
  bool can_zero;
  char *zeroes;                 /* request_size zero bytes, or NULL */
};

/* Failures and progress, shared by every lane. */

/* Report the first failure of a transfer; later ones are its echoes. */
static void
xfer_fail (struct xfer *x, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
xfer_fail (struct xfer *x, const char *fmt, ...)
{
  va_list args;

  if (atomic_exchange (&x->failed, true))
    return;
  va_start (args, fmt);
  xs_verror (fmt, args);
  va_end (args);
}

/* A failure already reported where it happened. */
static void
xfer_fail_reported (struct xfer *x)
{
  atomic_store (&x->failed, true);
}

static bool
xfer_should_stop (struct xfer *x)
{
  if (atomic_load (&x->failed))
    return true;
  if (x->stop && atomic_load_explicit (x->stop, memory_order_relaxed)) {
    xfer_fail (x, "cannot %s %s: interrupted", x->what, x->uri);
    return true;
  }
  return false;
}

static void
xfer_advance (struct xfer *x, uint64_t bytes)
{
  if (x->progress == NULL)
    return;
  pthread_mutex_lock (&x->progress_lock);
  x->done += bytes;
  x->progress (x->done, x->length, x->opaque);
  pthread_mutex_unlock (&x->progress_lock);
}

/* Connections. */

static struct nbd_handle *
xfer_connect (struct xfer *x)
{
  struct nbd_handle *nbd = x->api.create ();

  if (nbd == NULL) {
    xs_error ("cannot create an NBD handle: %s", x->api.get_error ());
    return NULL;
  }
  if ((x->want_map
       && x->api.add_meta_context (nbd,
                                   LIBNBD_CONTEXT_BASE_ALLOCATION) == -1)
      || (x->dirty_context
          && x->api.add_meta_context (nbd, x->dirty_context) == -1)
      || x->api.connect_uri (nbd, x->uri) == -1) {
    xs_error ("cannot connect to %s: %s", x->uri, x->api.get_error ());
    x->api.close (nbd);
    return NULL;
  }
  return nbd;
}

static void
xfer_disconnect (struct xfer *x, struct nbd_handle *nbd, bool clean)
{
  if (nbd == NULL)
    return;
  if (clean)
    x->api.shutdown (nbd, 0);
  x->api.close (nbd);
}

/* The export's size, or -1 with an error. */
static int64_t
xfer_size (struct xfer *x, struct nbd_handle *nbd)
{
  int64_t size = x->api.get_size (nbd);

  if (size == -1)
    xs_error ("cannot get the size of %s: %s", x->uri,
              x->api.get_error ());
  return size;
}

/* Requests no larger than the server's maximum block size (a power of
 * two is kept so that requests stay aligned).
 */
static void
xfer_fit_requests (struct xfer *x, struct nbd_handle *nbd)
{
  int64_t max = x->api.get_block_size (nbd, LIBNBD_SIZE_MAXIMUM);

  x->request_size = XFER_REQUEST_SIZE;
  while (max > 0 && x->request_size > XFER_SPARSE
         && x->request_size > (uint64_t) max)
    x->request_size /= 2;
  if (x->slot_size < x->request_size)
    x->slot_size = x->request_size;
}

static unsigned
xfer_lane_count (struct xfer *x, struct nbd_handle *nbd)
{
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);
  uint64_t segments = (x->length + XFER_SEGMENT - 1) / XFER_SEGMENT;
  unsigned n = 1;

  if (x->api.can_multi_conn (nbd) == 1) {
    n = cpus < 1 ? 1 : cpus > XFER_MAX_LANES ? XFER_MAX_LANES
      : (unsigned) cpus;
    if (n > segments)
      n = (unsigned) segments;
  }
  return n;
}

/* Lanes: setting up and tearing down. */

static int
lane_init (struct xfer *x, struct lane *lane, struct nbd_handle *nbd)
{
  unsigned i, n = (unsigned) (XFER_LANE_BUFFERS / x->slot_size);

  lane->x = x;
  lane->nbd = nbd ? nbd : xfer_connect (x);
  if (lane->nbd == NULL)
    return -1;
  lane->nslots = n < XFER_MIN_SLOTS ? XFER_MIN_SLOTS
    : n > XFER_MAX_SLOTS ? XFER_MAX_SLOTS : n;
  lane->slots = calloc (lane->nslots, sizeof *lane->slots);
  if (lane->slots == NULL) {
    xs_error ("cannot allocate NBD requests: %m");
    return -1;
  }
  for (i = 0; i < lane->nslots; i++) {
    lane->slots[i].lane = lane;
    lane->slots[i].buf = malloc (x->slot_size);
    if (lane->slots[i].buf == NULL) {
      xs_error ("cannot allocate NBD request buffers: %m");
      return -1;
    }
  }
  return 0;
}

/* Closing the connection first retires anything still in flight, so the
 * buffers are no longer in use when they are freed.
 */
static void
lane_free (struct lane *lane, bool clean)
{
  unsigned i;

  xfer_disconnect (lane->x, lane->nbd, clean);
  for (i = 0; lane->slots && i < lane->nslots; i++)
    free (lane->slots[i].buf);
  free (lane->slots);
  free (lane->map.v);
  free (lane->alloc.v);
  free (lane->dirty.v);
}

/* Run the connection for a while; completions happen in here. */
static int
lane_poll (struct lane *lane)
{
  struct xfer *x = lane->x;

  if (x->api.poll (lane->nbd, XFER_POLL_MS) == -1) {
    xfer_fail (x, "cannot talk to %s: %s", x->uri, x->api.get_error ());
    return -1;
  }
  return 0;
}

/* A slot with nothing in flight, waiting for one if need be; NULL when
 * the transfer stops.
 */
static struct slot *
lane_free_slot (struct lane *lane)
{
  unsigned i;

  for (;;) {
    if (xfer_should_stop (lane->x))
      return NULL;
    for (i = 0; i < lane->nslots; i++)
      if (lane->slots[i].pending == 0)
        return &lane->slots[i];
    if (lane_poll (lane) == -1)
      return NULL;
  }
}

static int
lane_drain (struct lane *lane)
{
  while (lane->in_flight > 0)
    if (xfer_should_stop (lane->x) || lane_poll (lane) == -1)
      return -1;
  return 0;
}

/* Each lane flushes its own connection once its writes are done (each
 * may have its own cache without multi-conn).
 */
static void
lane_flush (struct lane *lane)
{
  struct xfer *x = lane->x;

  if (x->api.can_flush (lane->nbd) == 1 && x->api.flush (lane->nbd, 0) == -1)
    xfer_fail (x, "cannot flush %s: %s", x->uri, x->api.get_error ());
}

static void *
lane_run (void *opaque)
{
  struct lane *lane = opaque;
  struct xfer *x = lane->x;
  uint64_t start, end;

  while (!xfer_should_stop (x)) {
    start = atomic_fetch_add (&x->next_segment, 1) * XFER_SEGMENT;
    if (start >= x->length)
      break;
    end = x->length - start < XFER_SEGMENT ? x->length
      : start + XFER_SEGMENT;
    if (x->run_segment (lane, start, end) == -1)
      break;
  }
  if (lane_drain (lane) == 0 && x->flush && !xfer_should_stop (x))
    lane_flush (lane);
  return NULL;
}

/* Start a command on SLOT: its bookkeeping comes first, because the
 * completion may run before the call returns.
 */
static void
slot_begin (struct slot *slot)
{
  slot->pending++;
  slot->lane->in_flight++;
}

/* Check the result of the call that started a command (ISSUED); undo
 * the bookkeeping if it was not started.
 */
static int
slot_issued (struct slot *slot, int64_t issued, const char *what)
{
  struct lane *lane = slot->lane;

  if (issued != -1)
    return 0;
  slot->pending--;
  lane->in_flight--;
  xfer_fail (lane->x, "cannot %s %s: %s", what, lane->x->uri,
             lane->x->api.get_error ());
  return -1;
}

/* A command of SLOT completed; true if it was the slot's last and all
 * is well.
 */
static bool
slot_end (struct slot *slot, int error, const char *what)
{
  struct lane *lane = slot->lane;

  slot->pending--;
  lane->in_flight--;
  if (error) {
    xfer_fail (lane->x, "cannot %s %" PRIu64 " bytes at offset %" PRIu64
               " of %s: %s", what, slot->count, slot->offset, lane->x->uri,
               strerror (error));
    return false;
  }
  return slot->pending == 0 && !atomic_load (&lane->x->failed);
}

/* Open the lanes: PROBE, the first connection, becomes the first
 * lane's; the others connect as many more times as the server allows.
 */
static int
xfer_lanes_init (struct xfer *x, struct nbd_handle *probe)
{
  unsigned i;

  x->nlanes = xfer_lane_count (x, probe);
  x->lanes = calloc (x->nlanes, sizeof *x->lanes);
  if (x->lanes == NULL) {
    xs_error ("cannot allocate NBD connections: %m");
    xfer_disconnect (x, probe, false);
    return -1;
  }
  for (i = 0; i < x->nlanes; i++)
    if (lane_init (x, &x->lanes[i], i == 0 ? probe : NULL) == -1)
      return -1;
  return 0;
}

/* Run every lane to the end.  Signals are left to the caller's thread:
 * the lanes block them, so that no libnbd call of theirs fails with
 * EINTR.
 */
static int
xfer_lanes_run (struct xfer *x)
{
  sigset_t blocked, saved;
  unsigned i;
  int err;

  sigemptyset (&blocked);
  sigaddset (&blocked, SIGINT);
  sigaddset (&blocked, SIGTERM);
  sigaddset (&blocked, SIGHUP);
  sigaddset (&blocked, SIGQUIT);
  sigaddset (&blocked, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &blocked, &saved);
  for (i = 0; i < x->nlanes; i++) {
    err = pthread_create (&x->lanes[i].thread, NULL, lane_run,
                          &x->lanes[i]);
    if (err != 0) {
      errno = err;
      xfer_fail (x, "cannot start a transfer thread: %m");
      break;
    }
    x->lanes[i].started = true;
  }
  pthread_sigmask (SIG_SETMASK, &saved, NULL);
  for (i = 0; i < x->nlanes; i++)
    if (x->lanes[i].started)
      pthread_join (x->lanes[i].thread, NULL);
  return atomic_load (&x->failed) ? -1 : 0;
}

static void
xfer_lanes_free (struct xfer *x, struct xs_transfer_report *report,
                 bool clean)
{
  unsigned i;

  for (i = 0; x->lanes && i < x->nlanes; i++) {
    struct lane *lane = &x->lanes[i];

    report->bytes_read += lane->bytes_read;
    report->bytes_written += lane->bytes_written;
    report->bytes_zeroed += lane->bytes_zeroed;
    report->holes_skipped += lane->holes_skipped;
    report->zeros_skipped += lane->zeros_skipped;
    report->bytes_dirty += lane->bytes_dirty;
    report->clean_skipped += lane->clean_skipped;
    lane_free (lane, clean);
  }
  report->connections = x->nlanes;
  free (x->lanes);
  x->lanes = NULL;
}

/* The whole copy over the lanes: set up, run and tear down, adding the
 * lanes' counts to REPORT.  Takes over PROBE.
 */
static int
xfer_run (struct xfer *x, struct nbd_handle *probe,
          struct xs_transfer_report *report)
{
  int r;

  atomic_init (&x->next_segment, 0);
  atomic_init (&x->failed, false);
  pthread_mutex_init (&x->progress_lock, NULL);
  r = xfer_lanes_init (x, probe);
  if (r == 0)
    r = xfer_lanes_run (x);
  if (r == 0 && x->progress)
    x->progress (x->length, x->length, x->opaque);
  xfer_lanes_free (x, report, r == 0);
  pthread_mutex_destroy (&x->progress_lock);
  return r;
}

/* Import: from an NBD export into a new volume, or (incremental) the
 * runs that the export's dirty bitmap marks into an existing one.
 */

/* Bit 0 of a qemu:dirty-bitmap context's flags: the run was written
 * since the bitmap started (libnbd 1.14 names no constant for it).
 */
#define XFER_STATE_DIRTY 1u

/* A dirty bitmap whose runs end off this alignment is finer than the
 * smallest unit qemu tracks: refused rather than guessed at.
 */
#define XFER_DIRTY_ALIGN 512u

static bool
is_zero (const char *buf, size_t len)
{
  return len == 0 || (buf[0] == 0 && memcmp (buf, buf + 1, len - 1) == 0);
}

/* Write-behind, as nbdcopy does: start writing back each range as soon
 * as it is written, and a few ranges later wait for it and drop it from
 * the page cache.  Without this a large import fills the page cache with
 * dirty pages and the kernel throttles every write (three times slower
 * on a 1 GiB copy), and it evicts what others had cached.  Only hints:
 * the final fdatasync of the head reports any write error.
 */
static void
import_write_behind (struct lane *lane, uint64_t offset, uint64_t length)
{
  struct xs_head *h = lane->x->head;
  struct written *oldest;

  xs_head_writeback (h, offset, length, false);
  if (lane->nbehind == XFER_BEHIND) {
    oldest = &lane->behind[lane->behind_next];
    xs_head_writeback (h, oldest->offset, oldest->length, true);
    lane->behind_next = (lane->behind_next + 1) % XFER_BEHIND;
    lane->nbehind--;
  }
  lane->behind[(lane->behind_next + lane->nbehind) % XFER_BEHIND]
    = (struct written) { offset, length };
  lane->nbehind++;
}

/* Write BUF[from, to) of SLOT to the head. */
static int
import_write_run (struct lane *lane, const struct slot *slot, uint64_t from,
                  uint64_t to)
{
  if (from == to)
    return 0;
  if (xs_head_pwrite (lane->x->head, slot->buf + from,
                      (uint32_t) (to - from), slot->offset + from,
                      false) == -1) {
    xfer_fail_reported (lane->x);
    return -1;
  }
  lane->bytes_written += to - from;
  import_write_behind (lane, slot->offset + from, to - from);
  return 0;
}

/* Zero [OFFSET, OFFSET + LENGTH) of the volume: an incremental import's
 * run that reads as zeroes now.  Punched, so that the volume stays
 * sparse, and marked changed like any write, so that the next snapshot
 * records it.
 */
static int
import_zero (struct lane *lane, uint64_t offset, uint64_t length)
{
  uint64_t n;

  for (; length > 0; offset += n, length -= n) {
    n = length < XFER_ZERO_MAX ? length : XFER_ZERO_MAX;
    if (xs_head_zero (lane->x->head, (uint32_t) n, offset,
                      XS_HEAD_MAY_TRIM) == -1) {
      xfer_fail_reported (lane->x);
      return -1;
    }
    lane->bytes_zeroed += n;
  }
  return 0;
}

/* Store BUF[from, to) of SLOT, which is all zeroes if ZERO: a new
 * volume leaves zeroes as holes, an existing one is zeroed there.
 */
static int
import_store_run (struct lane *lane, const struct slot *slot, uint64_t from,
                  uint64_t to, bool zero)
{
  if (from == to)
    return 0;
  if (!zero)
    return import_write_run (lane, slot, from, to);
  if (lane->x->dirty_context == NULL) {
    lane->zeros_skipped += to - from;
    return 0;
  }
  return import_zero (lane, slot->offset + from, to - from);
}

/* Store what SLOT read in runs of data and of all-zero pieces (aligned
 * on the volume, so that they stay holes).
 */
static void
import_store (struct lane *lane, const struct slot *slot)
{
  uint64_t pos = 0, run = 0, n;
  bool zero, run_zero = false;

  lane->bytes_read += slot->count;
  while (pos < slot->count) {
    n = XFER_SPARSE - (slot->offset + pos) % XFER_SPARSE;
    if (n > slot->count - pos)
      n = slot->count - pos;
    zero = is_zero (slot->buf + pos, n);
    if (zero != run_zero) {
      if (import_store_run (lane, slot, run, pos, run_zero) == -1)
        return;
      run = pos;
      run_zero = zero;
    }
    pos += n;
  }
  if (import_store_run (lane, slot, run, pos, run_zero) == 0)
    xfer_advance (lane->x, slot->count);
}

static int
import_read_done (void *opaque, int *error)
{
  struct slot *slot = opaque;

  if (slot_end (slot, *error, "read"))
    import_store (slot->lane, slot);
  return 1;
}

/* Read [OFFSET, OFFSET + LENGTH) in requests aligned on the request
 * size.
 */
static int
import_read (struct lane *lane, uint64_t offset, uint64_t length)
{
  struct xfer *x = lane->x;
  struct slot *slot;
  uint64_t n;
  int64_t issued;

  while (length > 0) {
    n = x->request_size - offset % x->request_size;
    if (n > length)
      n = length;
    slot = lane_free_slot (lane);
    if (slot == NULL)
      return -1;
    slot->offset = offset;
    slot->count = n;
    slot_begin (slot);
    issued = x->api.aio_pread (lane->nbd, slot->buf, n, offset,
                               (nbd_completion_callback) {
                                 .callback = import_read_done,
                                 .user_data = slot },
                               0);
    if (slot_issued (slot, issued, "read from") == -1)
      return -1;
    offset += n;
    length -= n;
  }
  return 0;
}

/* Maps. */

static int
list_append (struct extent_list *list, uint64_t offset, uint64_t length,
             enum extent_kind kind)
{
  struct extent *last = list->n ? &list->v[list->n - 1] : NULL;
  struct extent *bigger;
  size_t cap;

  if (length == 0)
    return 0;
  if (last && last->kind == kind && last->offset + last->length == offset) {
    last->length += length;
    return 0;
  }
  if (list->n == list->cap) {
    cap = list->cap ? list->cap * 2 : 64;
    bigger = realloc (list->v, cap * sizeof *bigger);
    if (bigger == NULL)
      return -1;
    list->v = bigger;
    list->cap = cap;
  }
  list->v[list->n++] = (struct extent) { offset, length, kind };
  return 0;
}

static uint64_t
list_end (const struct extent_list *list)
{
  return list->v[list->n - 1].offset + list->v[list->n - 1].length;
}

static bool
list_starts_at (const struct extent_list *list, uint64_t offset)
{
  return list->n > 0 && list->v[0].offset == offset;
}

/* Add an extent of context CONTEXT to its list: base:allocation gives
 * DATA or ZERO (only the ZERO bit lets a range go unread: HOLE alone
 * does not promise zeroes), the dirty bitmap DATA (dirty) or CLEAN.
 */
static int
map_add (struct lane *lane, bool dirty_context, uint64_t offset,
         uint64_t length, uint32_t flags)
{
  struct xfer *x = lane->x;
  uint64_t end = offset + length;

  if (!dirty_context)
    return list_append (&lane->alloc, offset, length,
                        flags & LIBNBD_STATE_ZERO ? EXTENT_ZERO
                        : EXTENT_DATA);
  if (end % XFER_DIRTY_ALIGN != 0 && end < x->length
      && lane->misaligned == UINT64_MAX)
    lane->misaligned = end;
  return list_append (&lane->dirty, offset, length,
                      flags & XFER_STATE_DIRTY ? EXTENT_DATA
                      : EXTENT_CLEAN);
}

/* Block status entries for the range asked, up to lane->map_end. */
static int
map_collect (void *opaque, const char *context, uint64_t offset,
             uint32_t *entries, size_t nr_entries, int *error)
{
  struct lane *lane = opaque;
  const char *dirty = lane->x->dirty_context;
  bool is_dirty;
  uint64_t length;
  size_t i;

  is_dirty = dirty && strcmp (context, dirty) == 0;
  if (!is_dirty && strcmp (context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  for (i = 0; i + 1 < nr_entries && offset < lane->map_end; i += 2) {
    length = entries[i];
    if (length == 0)
      break;
    if (length > lane->map_end - offset)
      length = lane->map_end - offset;
    if (map_add (lane, is_dirty, offset, length, entries[i + 1]) == -1) {
      *error = ENOMEM;
      return -1;
    }
    offset += length;
  }
  return 0;
}

/* Ask for the map of [OFFSET, END) (servers may answer for its
 * beginning only) into the lane's lists.
 */
static int
map_request (struct lane *lane, uint64_t offset, uint64_t end,
             uint32_t flags)
{
  struct xfer *x = lane->x;

  lane->alloc.n = lane->dirty.n = 0;
  lane->map_end = end;
  lane->misaligned = UINT64_MAX;
  if (x->api.block_status (lane->nbd, end - offset, offset,
                           (nbd_extent_callback) {
                             .callback = map_collect, .user_data = lane },
                           flags) == -1) {
    xfer_fail (x, "cannot get the map of %s at offset %" PRIu64 ": %s",
               x->uri, offset, x->api.get_error ());
    return -1;
  }
  if (lane->misaligned != UINT64_MAX) {
    xfer_fail (x, "cannot import from %s: its %s has a granularity finer "
               "than %u bytes (a run ends at offset %" PRIu64 "), which "
               "xsnap does not support", x->uri, x->dirty_context,
               XFER_DIRTY_ALIGN, lane->misaligned);
    return -1;
  }
  if ((x->use_map && !list_starts_at (&lane->alloc, offset))
      || (x->dirty_context && !list_starts_at (&lane->dirty, offset))) {
    xfer_fail (x, "cannot get the map of %s at offset %" PRIu64
               ": the server described nothing there", x->uri, offset);
    return -1;
  }
  return 0;
}

/* Incremental: add [FROM, TO), which must be copied, to the map, as
 * the allocation map describes it.  *CURSOR is where in lane->alloc to
 * look first (calls come in increasing order).
 */
static int
map_wanted (struct lane *lane, uint64_t from, uint64_t to, size_t *cursor)
{
  const struct extent *a;
  uint64_t start, end;

  lane->bytes_dirty += to - from;
  for (; *cursor < lane->alloc.n; ++*cursor) {
    a = &lane->alloc.v[*cursor];
    if (a->offset >= to)
      break;
    start = a->offset > from ? a->offset : from;
    end = a->offset + a->length < to ? a->offset + a->length : to;
    if (start < end && list_append (&lane->map, start, end - start,
                                    a->kind) == -1)
      return -1;
    if (a->offset + a->length > to)
      break;                    /* the next wanted run may start in it */
  }
  return 0;
}

/* Incremental: [FROM, TO) is clean in the source's bitmap, but the
 * blocks of the volume changed since its last snapshot are copied too,
 * so that the volume ends up equal to the source whatever it held.
 */
static int
map_clean (struct lane *lane, uint64_t from, uint64_t to, size_t *cursor)
{
  const struct xs_bitmap *changed = lane->x->changed;
  uint64_t bs = lane->x->block_size, pos = from, start, end, block;
  uint64_t last = (to + bs - 1) / bs;

  while (pos < to) {
    block = xs_bitmap_next_set_within (changed, pos / bs, last);
    start = block >= last ? to : block * bs > pos ? block * bs : pos;
    if (list_append (&lane->map, pos, start - pos, EXTENT_CLEAN) == -1)
      return -1;
    if (start >= to)
      break;
    end = xs_bitmap_next_clear (changed, block) * bs;
    if (end > to)
      end = to;
    if (map_wanted (lane, start, end, cursor) == -1)
      return -1;
    pos = end;
  }
  return 0;
}

/* Incremental: the map of what both answers cover, from the dirty runs
 * (and the volume's own changes) cut by the allocation map.
 */
static int
map_merge (struct lane *lane)
{
  uint64_t covered = list_end (&lane->dirty), start, end;
  const struct extent *d;
  size_t i, cursor = 0;

  if (list_end (&lane->alloc) < covered)
    covered = list_end (&lane->alloc);
  for (i = 0; i < lane->dirty.n && lane->dirty.v[i].offset < covered; i++) {
    d = &lane->dirty.v[i];
    start = d->offset;
    end = d->offset + d->length < covered ? d->offset + d->length : covered;
    if ((d->kind == EXTENT_DATA
         ? map_wanted (lane, start, end, &cursor)
         : map_clean (lane, start, end, &cursor)) == -1)
      return -1;
  }
  return 0;
}

/* The map of [OFFSET, END), or of its beginning, in lane->map. */
static int
import_map (struct lane *lane, uint64_t offset, uint64_t end)
{
  struct xfer *x = lane->x;
  struct extent_list swap;
  int r = 0;

  lane->map.n = 0;
  if (x->use_map || x->dirty_context)
    r = map_request (lane, offset, end, 0);
  if (r == 0 && !x->use_map)     /* no allocation map: everything is data */
    r = list_append (&lane->alloc, offset, end - offset, EXTENT_DATA);
  if (r == 0 && x->dirty_context)
    r = map_merge (lane);
  else if (r == 0) {
    swap = lane->map;
    lane->map = lane->alloc;
    lane->alloc = swap;
  }
  if (r == -1 && !atomic_load (&x->failed))
    xfer_fail (x, "cannot %s %s: out of memory", x->what, x->uri);
  return r;
}

/* Where the run at OFFSET (a segment's start) that needs no copying
 * ends, from a map request for its first extent: zeroes for a new
 * volume; for an incremental import, a clean run up to the first block
 * the volume changed itself.  OFFSET if there is none.
 */
static uint64_t
import_skippable_end (struct lane *lane, uint64_t offset)
{
  struct xfer *x = lane->x;
  const struct extent *e;
  uint64_t end, bs = x->block_size, block;

  if (x->dirty_context == NULL) {
    e = lane->alloc.v;
    return e->kind == EXTENT_ZERO ? offset + e->length : offset;
  }
  e = lane->dirty.v;
  if (e->kind != EXTENT_CLEAN)
    return offset;
  end = offset + e->length;
  block = xs_bitmap_next_set_within (x->changed, offset / bs,
                                     (end + bs - 1) / bs);
  if (block * bs < end)
    end = block * bs > offset ? block * bs : offset;
  return end;
}

/* After a segment that ended in a run that needs no copying: while the
 * next segment nobody has claimed starts with such a run too, claim
 * every segment it covers whole, without reading them, from one request
 * for the first extent of up to XFER_SKIP_WINDOW bytes.  A source of 64
 * TiB of holes (or of clean runs) is then some 16,000 requests rather
 * than a million (one per segment).
 */
static int
import_skip (struct lane *lane)
{
  struct xfer *x = lane->x;
  uint64_t next, offset, window, skip_end, segments, skipped;

  while (!xfer_should_stop (x)) {
    next = atomic_load (&x->next_segment);
    offset = next * XFER_SEGMENT;
    if (offset >= x->length)
      return 0;
    window = x->length - offset < XFER_SKIP_WINDOW ? x->length - offset
      : XFER_SKIP_WINDOW;
    if (map_request (lane, offset, offset + window,
                     LIBNBD_CMD_FLAG_REQ_ONE) == -1)
      return -1;
    skip_end = import_skippable_end (lane, offset);
    segments = skip_end == x->length
      ? (x->length - offset + XFER_SEGMENT - 1) / XFER_SEGMENT
      : (skip_end - offset) / XFER_SEGMENT;
    /* Another lane may have claimed it meanwhile: it maps it itself. */
    if (segments == 0
        || !atomic_compare_exchange_strong (&x->next_segment, &next,
                                            next + segments))
      return 0;
    skipped = skip_end == x->length ? x->length - offset
      : segments * XFER_SEGMENT;
    if (x->dirty_context)
      lane->clean_skipped += skipped;
    else
      lane->holes_skipped += skipped;
    xfer_advance (x, skipped);
  }
  return 0;
}

/* One extent of a segment's map. */
static int
import_extent (struct lane *lane, const struct extent *e)
{
  struct xfer *x = lane->x;

  switch (e->kind) {
  case EXTENT_DATA:
    return import_read (lane, e->offset, e->length);
  case EXTENT_ZERO:
    if (x->dirty_context && import_zero (lane, e->offset, e->length) == -1)
      return -1;
    if (x->dirty_context == NULL)
      lane->holes_skipped += e->length;
    break;
  case EXTENT_CLEAN:
    lane->clean_skipped += e->length;
    break;
  }
  xfer_advance (x, e->length);
  return 0;
}

static int
import_segment (struct lane *lane, uint64_t start, uint64_t end)
{
  struct xfer *x = lane->x;
  enum extent_kind last = EXTENT_DATA;
  uint64_t offset = start;
  size_t i;

  while (offset < end) {
    if (import_map (lane, offset, end) == -1)
      return -1;
    for (i = 0; i < lane->map.n; i++) {
      if (import_extent (lane, &lane->map.v[i]) == -1)
        return -1;
      offset = lane->map.v[i].offset + lane->map.v[i].length;
      last = lane->map.v[i].kind;
    }
  }
  if (x->dirty_context ? last == EXTENT_CLEAN
      : last == EXTENT_ZERO && x->use_map)
    return import_skip (lane);
  return 0;
}

/* Fill the staged head of STAGE from PROBE's export, and make it
 * durable.
 */
static int
import_fill (struct xs_volume_stage *stage, struct xfer *x,
             struct nbd_handle *probe, struct xs_transfer_report *report)
{
  int r;

  x->head = xs_volume_stage_open_head (stage);
  if (x->head == NULL) {
    xfer_disconnect (x, probe, false);
    return -1;
  }
  x->use_map = x->api.can_meta_context (probe,
                                        LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  x->run_segment = import_segment;
  r = xfer_run (x, probe, report);
  if (r == 0 && xs_head_flush (x->head) == -1)
    r = -1;
  if (r == 0)
    return xs_head_close (x->head);
  xs_head_abandon (x->head);    /* the staged head is about to go */
  return -1;
}

static void
import_report (struct xs_transfer_report *report,
               const struct xs_volume *vol, uint64_t source_size)
{
  snprintf (report->id, sizeof report->id, "%s", vol->id);
  snprintf (report->name, sizeof report->name, "%s", vol->name);
  report->size = vol->size;
  report->source_size = source_size;
  report->block_size = vol->block_size;
  report->rounded = vol->size != source_size;
}

/* The source's size, connected through PROBE: a positive number, or -1
 * (reported; PROBE is then closed).
 */
static int64_t
import_source_size (struct xfer *x, struct nbd_handle *probe)
{
  int64_t size = xfer_size (x, probe);

  if (size == 0)
    xs_error ("cannot import %s: the export is empty", x->uri);
  if (size <= 0) {
    xfer_disconnect (x, probe, false);
    return -1;
  }
  return size;
}

/* The import through X, with libnbd loaded. */
static int
import_nbd (struct xs_store *store, const struct xs_scope *scope,
            struct xfer *x, const char *name, uint32_t block_size,
            struct xs_transfer_report *report)
{
  int64_t start_ns = xs_now_ns (), source_size;
  struct nbd_handle *probe;
  struct xs_volume_stage stage;
  uint64_t size;
  int r;

  /* A name that is taken is refused before anything is read. */
  if (xs_volume_check_name_free (store, scope, name) == -1)
    return -1;
  probe = xfer_connect (x);
  if (probe == NULL || (source_size = import_source_size (x, probe)) == -1)
    return -1;
  /* The volume holds whole blocks; the tail past the export is zero.
   * It is built where no one sees it and becomes visible, complete, at
   * the commit; anything else (a failure, an interrupt, a crash) leaves
   * no volume.
   */
  size = (uint64_t) source_size + block_size - 1;
  size -= size % block_size;
  if (xs_volume_stage_begin (store, scope, name, size, block_size,
                             &stage) == -1) {
    xfer_disconnect (x, probe, false);
    return -1;
  }
  x->length = (uint64_t) source_size;
  xfer_fit_requests (x, probe);
  r = import_fill (&stage, x, probe, report);
  if (r == 0)
    r = xs_volume_stage_commit (store, &stage);
  if (r == 0) {
    import_report (report, &stage.vol, (uint64_t) source_size);
    report->seconds = (double) (xs_now_ns () - start_ns) / 1e9;
  }
  xs_volume_stage_end (&stage);
  return r;
}

int
xs_import_nbd (struct xs_store *store, const struct xs_scope *scope,
               const char *uri, const char *name, uint32_t block_size,
               const atomic_int *stop, xs_transfer_progress_fn progress,
               void *opaque, struct xs_transfer_report *report)
{
  struct xfer x = { .what = "import from", .uri = uri, .stop = stop,
                    .want_map = true, .progress = progress,
                    .opaque = opaque };
  int r;

  memset (report, 0, sizeof *report);
  if (xs_volume_check_block_size (block_size) == -1
      || xs_nbd_api_load (&x.api) == -1)
    return -1;
  r = import_nbd (store, scope, &x, name, block_size, report);
  xs_nbd_api_unload (&x.api);   /* every connection is closed by now */
  return r;
}

/* Incremental import: the changed runs of the source into an existing
 * volume.
 */

/* Check that the source PROBE serves, of SOURCE_SIZE bytes, can be
 * imported incrementally into VOL.  0, or -1 (reported).
 */
static int
dirty_check_source (struct xfer *x, struct nbd_handle *probe,
                    const struct xs_volume *vol, uint64_t source_size)
{
  char have[32], want[32];
  uint64_t rounded = source_size + vol->block_size - 1;

  if (x->api.can_meta_context (probe, x->dirty_context) != 1) {
    xs_error ("cannot import from %s: the server offers no %s (qemu-nbd "
              "serves a qcow2's persistent bitmap NAME with -B NAME)",
              x->uri, x->dirty_context);
    return -1;
  }
  rounded -= rounded % vol->block_size;
  if (rounded != vol->size) {
    xs_size_format (source_size, have, sizeof have);
    xs_size_format (vol->size, want, sizeof want);
    xs_error ("cannot import from %s into volume '%s': the export is %s "
              "(%" PRIu64 " bytes) and the volume %s (%" PRIu64 " bytes); "
              "an incremental import needs the disk the volume was "
              "imported from", x->uri, vol->name, have, source_size, want,
              vol->size);
    return -1;
  }
  return 0;
}

/* The blocks of VOL, whose head H is open, changed since its last
 * snapshot, into CHANGED.  A map that cannot be trusted is refused: the
 * volume may differ from its last snapshot where nobody knows.
 */
static int
dirty_volume_changes (struct xs_head *h, const struct xs_volume *vol,
                      struct xs_bitmap *changed)
{
  struct xs_dirtymap *dm = xs_head_dirtymap (h);
  const struct xs_bitmap *bits = xs_dirtymap_bits (dm);

  if (xs_dirtymap_doubt (dm) != XS_DIRTYMAP_TRUSTED) {
    xs_error ("cannot import into volume '%s' incrementally: its "
              "changed-block map cannot be trusted (%s), so it may differ "
              "from its last snapshot where no map says; reset it to its "
              "last snapshot, or import the disk whole into a new volume",
              vol->name, xs_dirtymap_doubt_text (xs_dirtymap_doubt (dm)));
    return -1;
  }
  if (xs_bitmap_init (changed, bits->nbits) == -1)
    return -1;
  memcpy (changed->bytes, bits->bytes, bits->nbytes);
  return 0;
}

/* The volume's bytes past the end of the source read as zeroes: make
 * them so again if the volume changed them.
 */
static int
dirty_zero_tail (struct xfer *x, const struct xs_volume *vol)
{
  uint64_t last = x->changed->nbits - 1;

  if (vol->size == x->length || !xs_bitmap_get (x->changed, last))
    return 0;
  return xs_head_zero (x->head, (uint32_t) (vol->size - x->length),
                       x->length, XS_HEAD_MAY_TRIM);
}

/* Copy what changed into VOL's open head X->head, make it durable, and
 * with SNAPSHOT take the snapshot of it.
 */
static int
dirty_fill (struct xs_store *store, struct xfer *x, struct nbd_handle *probe,
            const struct xs_volume *vol, const char *snapshot,
            struct xs_transfer_report *report, struct xs_snapshot *snap)
{
  struct xs_snapshot_op *op;
  int r;

  x->use_map = x->api.can_meta_context (probe,
                                        LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  x->run_segment = import_segment;
  r = xfer_run (x, probe, report);
  if (r == 0)
    r = dirty_zero_tail (x, vol);
  if (r == 0)
    r = xs_head_flush (x->head);
  if (r == -1 && report->bytes_written + report->bytes_zeroed > 0)
    xs_notice ("volume '%s' now holds part of the changes of %s, and its "
               "snapshots are as they were: import again to complete it",
               vol->name, x->uri);
  if (r == 0 && snapshot) {
    op = xs_snapshot_start (store, x->head, vol, snapshot, snap);
    if (op == NULL
        || xs_snapshot_finish (op, NULL, NULL, NULL, snap)
           != XS_SNAPSHOT_AVAILABLE) {
      if (op)
        xs_snapshot_clear (snap);
      r = -1;
    }
  }
  return r;
}

/* Refuse VOL while an NBD server has it attached. */
static int
dirty_check_detached (struct xs_store *store, const struct xs_volume *vol)
{
  if (xs_volume_in_use (store, vol) != 1
      || xs_volume_owned_by_sealer (store, vol))
    return 0;                   /* the open says who holds it, if anyone */
  xs_error ("cannot import into volume '%s': it is attached (an NBD "
            "server serves it); detach it first", vol->name);
  return -1;
}

/* The incremental import through X, with libnbd loaded. */
static int
dirty_import (struct xs_store *store, struct xfer *x,
              const struct xs_volume *vol, const char *snapshot,
              struct xs_transfer_report *report, struct xs_snapshot *snap)
{
  int64_t start_ns = xs_now_ns (), source_size;
  struct xs_bitmap changed = { 0 };
  struct nbd_handle *probe;
  int r = -1;

  probe = xfer_connect (x);
  if (probe == NULL || (source_size = import_source_size (x, probe)) == -1)
    return -1;
  if (dirty_check_source (x, probe, vol, (uint64_t) source_size) == -1
      || dirty_check_detached (store, vol) == -1
      || (x->head = xs_volume_open_head (store, vol)) == NULL) {
    xfer_disconnect (x, probe, false);
    return -1;
  }
  if (dirty_volume_changes (x->head, vol, &changed) == 0) {
    x->changed = &changed;
    x->block_size = vol->block_size;
    x->length = (uint64_t) source_size;
    xfer_fit_requests (x, probe);
    r = dirty_fill (store, x, probe, vol, snapshot, report, snap);
  }
  else
    xfer_disconnect (x, probe, false);
  if (xs_head_close (x->head) == -1)
    r = -1;
  xs_bitmap_free (&changed);
  if (r == 0) {
    import_report (report, vol, (uint64_t) source_size);
    report->seconds = (double) (xs_now_ns () - start_ns) / 1e9;
  }
  return r;
}

int
xs_import_nbd_dirty (struct xs_store *store, const struct xs_scope *scope,
                     const char *uri, const char *volume, const char *bitmap,
                     const char *snapshot, const atomic_int *stop,
                     xs_transfer_progress_fn progress, void *opaque,
                     struct xs_transfer_report *report,
                     struct xs_snapshot *snap)
{
  struct xfer x = { .what = "import from", .uri = uri, .stop = stop,
                    .want_map = true, .progress = progress,
                    .opaque = opaque };
  struct xs_volume vol;
  char *context = NULL;
  int r = -1;

  memset (report, 0, sizeof *report);
  if (bitmap[0] == '\0') {
    xs_error ("cannot import from %s: the dirty bitmap's name is empty",
              uri);
    return -1;
  }
  if (xs_volume_find (store, scope, volume, false, &vol) != 0)
    return -1;
  if (xs_access_volume (store, scope->account, "xsnap:ImportVolume",
                        &vol) == -1
      || (snapshot && xs_access_volume (store, scope->account,
                                        "xsnap:CreateSnapshot",
                                        &vol) == -1))
    goto out;
  if (asprintf (&context, "qemu:dirty-bitmap:%s", bitmap) == -1) {
    xs_error ("cannot import from %s: %m", uri);
    context = NULL;
    goto out;
  }
  x.dirty_context = context;
  if (xs_nbd_api_load (&x.api) == 0) {
    r = dirty_import (store, &x, &vol, snapshot, report, snap);
    xs_nbd_api_unload (&x.api); /* every connection is closed by now */
  }
 out:
  free (context);
  xs_volume_clear (&vol);
  return r;
}

/* Export: from a snapshot to a writable NBD export. */

static int
export_write_done (void *opaque, int *error)
{
  struct slot *slot = opaque;

  if (slot_end (slot, *error, "write"))
    xfer_advance (slot->lane->x, slot->count);
  return 1;
}

static nbd_completion_callback
export_completion (struct slot *slot)
{
  return (nbd_completion_callback) { .callback = export_write_done,
                                     .user_data = slot };
}

/* Write SLOT's bytes in requests the target accepts: its own buffer, or
 * with ZEROES (a request's worth of them) zeroes.
 */
static int
export_write (struct slot *slot, const char *zeroes)
{
  struct lane *lane = slot->lane;
  uint64_t pos, n;
  int64_t issued;

  for (pos = 0; pos < slot->count; pos += n) {
    n = slot->count - pos;
    if (n > lane->x->request_size)
      n = lane->x->request_size;
    slot_begin (slot);
    issued = lane->x->api.aio_pwrite (lane->nbd,
                                      zeroes ? zeroes : slot->buf + pos, n,
                                      slot->offset + pos,
                                      export_completion (slot), 0);
    if (slot_issued (slot, issued, "write to") == -1)
      return -1;
  }
  return 0;
}

static struct slot *
export_slot (struct lane *lane, uint64_t offset, uint64_t count)
{
  struct slot *slot = lane_free_slot (lane);

  if (slot) {
    slot->offset = offset;
    slot->count = count;
  }
  return slot;
}

static int
export_data (struct lane *lane, uint64_t offset, uint64_t count)
{
  struct slot *slot = export_slot (lane, offset, count);

  if (slot == NULL)
    return -1;
  if (xs_snapreader_pread (lane->x->reader, slot->buf, (uint32_t) count,
                           offset) == -1) {
    xfer_fail_reported (lane->x);
    return -1;
  }
  lane->bytes_read += count;
  lane->bytes_written += count;
  return export_write (slot, NULL);
}

/* Zero [OFFSET, OFFSET + COUNT) of the target: with zero requests (no
 * fast-zero flag: a slow zero is still better than writing), or by
 * writing zeroes where the target has no zero command.
 */
static int
export_zero (struct lane *lane, uint64_t offset, uint64_t count)
{
  struct xfer *x = lane->x;
  uint64_t piece = x->can_zero ? XFER_ZERO_MAX : x->request_size, n;
  struct slot *slot;
  int64_t issued;

  for (; count > 0; offset += n, count -= n) {
    n = count < piece ? count : piece;
    slot = export_slot (lane, offset, n);
    if (slot == NULL)
      return -1;
    lane->bytes_zeroed += n;
    if (!x->can_zero) {
      if (export_write (slot, x->zeroes) == -1)
        return -1;
      continue;
    }
    slot_begin (slot);
    issued = x->api.aio_zero (lane->nbd, n, offset, export_completion (slot),
                              0);
    if (slot_issued (slot, issued, "zero") == -1)
      return -1;
  }
  return 0;
}

/* One extent of the snapshot in a lane's segment: data read and written
 * a slot at a time, zeroes zeroed (or skipped) at most XFER_ZERO_MAX at
 * a time.
 */
static int
export_extent (uint64_t offset, uint64_t length, bool hole, void *opaque)
{
  struct lane *lane = opaque;
  struct xfer *x = lane->x;
  uint64_t max = hole ? XFER_ZERO_MAX : x->slot_size, n;
  int r;

  for (; length > 0; offset += n, length -= n) {
    n = length < max ? length : max;
    if (!hole)
      r = export_data (lane, offset, n);
    else if (x->target_is_zero) {
      lane->holes_skipped += n;
      xfer_advance (x, n);
      r = 0;
    }
    else
      r = export_zero (lane, offset, n);
    if (r == -1)
      return -1;
  }
  return 0;
}

static int
export_segment (struct lane *lane, uint64_t start, uint64_t end)
{
  if (xs_snapreader_extents (lane->x->reader, start, end - start,
                             export_extent, lane) == -1) {
    xfer_fail_reported (lane->x); /* where it failed */
    return -1;
  }
  return 0;
}

/* Export --from: only the runs of blocks that differ from the base. */
static int
export_changed_segment (struct lane *lane, uint64_t start, uint64_t end)
{
  struct xfer *x = lane->x;
  uint64_t bs = x->block_size, last = (end + bs - 1) / bs, pos = start;
  uint64_t block, run_start, run_end;

  while (pos < end) {
    block = xs_bitmap_next_set_within (x->changed, pos / bs, last);
    run_start = block >= last ? end : block * bs;
    if (run_start > pos) {
      lane->clean_skipped += run_start - pos;
      xfer_advance (x, run_start - pos);
    }
    if (run_start >= end)
      break;
    run_end = xs_bitmap_next_clear (x->changed, block) * bs;
    if (run_end > end)
      run_end = end;
    if (export_segment (lane, run_start, run_end) == -1)
      return -1;
    pos = run_end;
  }
  return 0;
}

/* Check that the target at URI can take the snapshot; NULL if not. */
static struct nbd_handle *
export_connect (struct xfer *x, const struct xs_snapshot *snap)
{
  struct nbd_handle *nbd = xfer_connect (x);
  int64_t size;
  char want[32], have[32];

  if (nbd == NULL)
    return NULL;
  size = xfer_size (x, nbd);
  if (size != -1 && x->api.is_read_only (nbd) == 1) {
    xs_error ("cannot export snapshot %s@%s to %s: the target is "
              "read-only", snap->volume_name, snap->name, x->uri);
    size = -1;
  }
  else if (size != -1 && (uint64_t) size < snap->size) {
    xs_size_format ((uint64_t) size, have, sizeof have);
    xs_size_format (snap->size, want, sizeof want);
    xs_error ("cannot export snapshot %s@%s to %s: the target is too "
              "small (%s, %" PRId64 " bytes; the snapshot is %s, %" PRIu64
              " bytes)", snap->volume_name, snap->name, x->uri, have, size,
              want, snap->size);
    size = -1;
  }
  if (size == -1) {
    xfer_disconnect (x, nbd, false);
    return NULL;
  }
  x->can_zero = x->api.can_zero (nbd) == 1;
  return nbd;
}

static struct xs_snapreader *
export_open_reader (struct xs_store *store, const struct xs_snapshot *snap,
                    struct xs_repo **repo)
{
  struct xs_manifest *m;
  struct xs_snapreader *reader = NULL;
  char *label = NULL;

  m = xs_snapshot_load_manifest (store, snap->account, snap->region,
                                 snap->id);
  *repo = xs_store_repo (store, snap->account, snap->region);
  if (m && *repo && asprintf (&label, "snapshot %s@%s (%s)",
                              snap->volume_name, snap->name, snap->id) == -1)
    xs_error ("cannot read snapshot %s@%s: %m", snap->volume_name,
              snap->name);
  else if (m && *repo) {
    reader = xs_snapreader_open (*repo, m, NULL, label);
    m = NULL;                   /* taken over by the reader */
  }
  xs_manifest_free (m);
  free (label);
  if (reader == NULL) {
    xs_repo_close (*repo);
    *repo = NULL;
  }
  return reader;
}

static bool
sample_has (const uint64_t *blocks, size_t n, uint64_t block)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (blocks[i] == block)
      return true;
  return false;
}

/* The blocks --verify-base compares, each once: the first, the last and
 * XS_EXPORT_VERIFY_SAMPLES others drawn at random (all of them when
 * there are no more).  *N receives how many (malloc'd, or NULL with an
 * error).
 */
static uint64_t *
verify_sample (uint64_t nblocks, size_t *n)
{
  size_t want = XS_EXPORT_VERIFY_SAMPLES + 2, i;
  uint64_t *blocks, draw;

  if (nblocks <= want)
    want = (size_t) nblocks;
  blocks = calloc (want, sizeof *blocks);
  if (blocks == NULL) {
    xs_error ("cannot verify the target: %m");
    return NULL;
  }
  if (want == nblocks) {
    for (i = 0; i < want; i++)
      blocks[i] = i;
  }
  else {
    blocks[0] = 0;
    blocks[1] = nblocks - 1;
    for (i = 2; i < want; ) {
      if (xs_random_bytes (&draw, sizeof draw) == -1) {
        free (blocks);
        return NULL;
      }
      if (!sample_has (blocks, i, draw % nblocks))
        blocks[i++] = draw % nblocks;
    }
  }
  *n = want;
  return blocks;
}

/* Compare block BLOCK of BASE with the target's bytes there: 0 equal,
 * 1 different, -1 (reported).  BUFS holds two blocks.
 */
static int
verify_block (struct xfer *x, struct nbd_handle *nbd,
              struct xs_snapreader *base, uint64_t block, char *bufs)
{
  uint32_t bs = xs_snapreader_block_size (base);
  uint64_t offset = block * bs, size = xs_snapreader_size (base);
  uint32_t len = size - offset < bs ? (uint32_t) (size - offset) : bs;

  if (xs_snapreader_pread (base, bufs, len, offset) == -1)
    return -1;
  if (x->api.pread (nbd, bufs + bs, len, offset, 0) == -1) {
    xs_error ("cannot read %" PRIu32 " bytes at offset %" PRIu64 " of %s: "
              "%s", len, offset, x->uri, x->api.get_error ());
    return -1;
  }
  return memcmp (bufs, bufs + bs, len) != 0;
}

/* --verify-base: refuse, before anything is written, a target that does
 * not hold BASE where sampled.
 */
static int
export_verify_base (struct xfer *x, struct nbd_handle *nbd,
                    struct xs_snapreader *base, const char *base_spec,
                    struct xs_transfer_report *report)
{
  uint32_t bs = xs_snapreader_block_size (base);
  size_t n, i;
  uint64_t *blocks = verify_sample (xs_snapreader_nblocks (base), &n);
  char *bufs = malloc (2 * (size_t) bs);
  int r = blocks && bufs ? 0 : -1;

  if (bufs == NULL && blocks)
    xs_error ("cannot verify the target: %m");
  for (i = 0; r == 0 && i < n; i++) {
    r = verify_block (x, nbd, base, blocks[i], bufs);
    if (r == 1)
      xs_error ("cannot export to %s from %s: the target does not hold %s "
                "(block %" PRIu64 ", at offset %" PRIu64 ", differs); "
                "nothing was written", x->uri, base_spec, base_spec,
                blocks[i], blocks[i] * bs);
    else if (r == 0)
      report->base_blocks_verified++;
  }
  free (blocks);
  free (bufs);
  return r == 0 ? 0 : -1;
}

/* Copy the snapshot through X, set up but for its connection; with
 * BASE (--verify-base) check the target first.
 */
static int
export_copy (struct xfer *x, const struct xs_snapshot *snap,
             struct xs_snapreader *base, const char *base_spec,
             struct xs_transfer_report *report)
{
  struct nbd_handle *probe = export_connect (x, snap);
  int r;

  if (probe == NULL)
    return -1;
  if (base && export_verify_base (x, probe, base, base_spec,
                                  report) == -1) {
    xfer_disconnect (x, probe, false);
    return -1;
  }
  x->slot_size = xs_snapreader_block_size (x->reader);
  xfer_fit_requests (x, probe);
  if (!x->target_is_zero && !x->can_zero) {
    x->zeroes = calloc (1, x->request_size);
    if (x->zeroes == NULL) {
      xs_error ("cannot allocate a buffer of zeroes: %m");
      xfer_disconnect (x, probe, false);
      return -1;
    }
  }
  x->run_segment = x->changed ? export_changed_segment : export_segment;
  r = xfer_run (x, probe, report);
  free (x->zeroes);
  return r;
}

static int
export_check (const struct xs_snapshot *snap, const char *uri)
{
  if (strcmp (snap->status, "available") == 0)
    return 0;
  xs_error ("cannot export snapshot %s@%s to %s: it is %s",
            snap->volume_name, snap->name, uri, snap->status);
  return -1;
}

/* --from BASE: what differs between BASE and SNAPSHOT_SPEC into *MAP,
 * from their manifests (as diff does), and with VERIFY a reader of BASE
 * in *BASE (and its repository in *BASE_REPO).
 */
static int
export_plan (struct xs_store *store, const struct xs_scope *scope,
             const char *snapshot_spec, const char *base_spec, bool verify,
             struct xs_changemap *map, struct xs_snapreader **base,
             struct xs_repo **base_repo)
{
  struct xs_snapshot snap;
  int r;

  if (xs_changemap_of_snapshots (store, scope, base_spec, snapshot_spec,
                                 map) == -1)
    return -1;
  if (!verify)
    return 0;
  r = xs_access_find_snapshot (store, scope, base_spec, "xsnap:ReadSnapshot",
                               false, &snap);
  if (r != 0)
    return -1;
  *base = export_open_reader (store, &snap, base_repo);
  xs_snapshot_clear (&snap);
  return *base ? 0 : -1;
}

int
xs_export_nbd (struct xs_store *store, const struct xs_scope *scope,
               const char *snapshot_spec, const char *base_spec,
               const char *uri, unsigned flags, const atomic_int *stop,
               xs_transfer_progress_fn progress, void *opaque,
               struct xs_transfer_report *report)
{
  struct xfer x = { .what = "export to", .uri = uri, .stop = stop,
                    .progress = progress, .opaque = opaque,
                    .flush = true,
                    .target_is_zero = flags & XS_EXPORT_TARGET_IS_ZERO };
  int64_t start_ns = xs_now_ns ();
  struct xs_changemap map = { 0 };
  struct xs_snapshot snap;
  struct xs_repo *repo = NULL, *base_repo = NULL;
  struct xs_snapreader *base = NULL;
  int r = -1;

  memset (report, 0, sizeof *report);
  if (xs_access_find_snapshot (store, scope, snapshot_spec,
                               "xsnap:ExportSnapshot", false, &snap) != 0)
    return -1;
  if (export_check (&snap, uri) == 0
      && (base_spec == NULL
          || export_plan (store, scope, snapshot_spec, base_spec,
                          flags & XS_EXPORT_VERIFY_BASE, &map, &base,
                          &base_repo) == 0))
    x.reader = export_open_reader (store, &snap, &repo);
  if (x.reader) {
    x.length = snap.size;
    if (base_spec) {
      x.changed = &map.bits;
      x.block_size = map.block_size;
    }
    if (xs_nbd_api_load (&x.api) == 0) {
      r = export_copy (&x, &snap, base, base_spec, report);
      xs_nbd_api_unload (&x.api); /* every connection is closed by now */
    }
    xs_snapreader_close (x.reader);
  }
  xs_snapreader_close (base);
  xs_repo_close (base_repo);
  xs_repo_close (repo);
  xs_changemap_clear (&map);
  if (r == 0) {
    snprintf (report->id, sizeof report->id, "%s", snap.id);
    snprintf (report->name, sizeof report->name, "%s@%s", snap.volume_name,
              snap.name);
    report->size = snap.size;
    report->block_size = snap.block_size;
    report->seconds = (double) (xs_now_ns () - start_ns) / 1e9;
  }
  xs_snapshot_clear (&snap);
  return r;
}
