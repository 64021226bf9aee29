/* xsnap: hydrating a clone, copying every block it still reads through
 * to its snapshot into its own data (see xs_head_hydrate in head.h).
 *
 * A hydration is a restore: what it costs is what the disk made from a
 * snapshot costs until it stands alone.  It keeps both the CPU and the
 * disk busy: the blocks it lacks are queued on the source reader's
 * read-ahead a window ahead of the copy, so that they are fetched and
 * decoded on its workers while this thread writes (a block the copy
 * reaches first it loads itself, and the workers skip it); what has been
 * written is handed to write-back at once and dropped from the page
 * cache a little later, as a copy of a large file should be, so that the
 * kernel never throttles it for dirty pages and the final flush finds
 * little left.
 *
 * Each block is copied up as a client's write would copy it (under its
 * copy-up stripe lock, skipped if it became present meanwhile), so a
 * hydration may run while the clone is served: with give_way_to_reads,
 * it waits while clients read through to the snapshot (up to
 * GIVE_WAY_MAX_US at a time, so that it never starves), and with a rate
 * it sleeps to stay under it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/bitmap.h"
#include "head/head.h"
#include "head/head-internal.h"
#include "head/presentmap.h"
#include "repo/snapreader.h"

/* Written data is handed to write-back in runs of this much, and each
 * run is waited for and dropped WRITE_BEHIND_RUNS runs later.
 */
#define WRITE_BEHIND_BYTES ((uint64_t) 16 << 20)
#define WRITE_BEHIND_RUNS 4

#define GIVE_WAY_MAX_US 20000
#define GIVE_WAY_STEP_US 200

/* Progress is reported every this many blocks. */
#define PROGRESS_EVERY 64

struct hydration {
  struct xs_head *h;
  const struct xs_hydrate_options *o;
  struct xs_snapreader *source;
  const struct xs_bitmap *present;
  uint64_t size;                /* the head's */
  uint64_t nblocks;
  uint64_t source_blocks;       /* the source's (a grown clone has more) */
  uint32_t block_size;
  uint64_t window;              /* blocks queued ahead of the copy */
  uint64_t queued_to;           /* blocks before it have been looked at */
  double start;
  uint64_t bytes;               /* copied so far */
  double gave_way;              /* seconds spent giving way to reads */
  /* Write-behind: the runs handed to write-back, oldest first. */
  uint64_t run_start, run_end;  /* the run being written */
  uint64_t behind[WRITE_BEHIND_RUNS][2];
  unsigned nbehind;
};

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Queue the missing blocks of the source up to a window ahead of b. */
static void
queue_ahead (struct hydration *y, uint64_t b)
{
  uint64_t limit = b + y->window, from;

  if (limit > y->source_blocks)
    limit = y->source_blocks;
  if (y->queued_to < b + 1)
    y->queued_to = b + 1;
  /* Refill by halves: the queue is touched once per half window. */
  if (y->queued_to >= limit || y->queued_to - b > y->window / 2)
    return;
  from = y->queued_to;
  while (from < limit) {
    uint64_t start = xs_bitmap_next_clear (y->present, from), end;

    if (start >= limit)
      break;
    end = xs_bitmap_next_set_within (y->present, start, limit);
    xs_snapreader_prefetch (y->source, start, end - start);
    from = end;
  }
  y->queued_to = limit;
}

/* Hand [offset, offset + length) of the head to write-back; wait for and
 * drop the run WRITE_BEHIND_RUNS runs before it.
 */
static void
write_behind (struct hydration *y, uint64_t offset, uint64_t length)
{
  if (length == 0)
    return;
  xs_head_writeback (y->h, offset, length, false);
  if (y->nbehind == WRITE_BEHIND_RUNS) {
    xs_head_writeback (y->h, y->behind[0][0], y->behind[0][1], true);
    memmove (&y->behind[0], &y->behind[1],
             sizeof y->behind[0] * (WRITE_BEHIND_RUNS - 1));
    y->nbehind--;
  }
  y->behind[y->nbehind][0] = offset;
  y->behind[y->nbehind][1] = length;
  y->nbehind++;
}

/* Block b was written: extend the run, or hand the run over and start
 * another.
 */
static void
note_written (struct hydration *y, uint64_t b)
{
  uint64_t offset = b * y->block_size;
  uint64_t end = offset + y->block_size;

  if (end > y->size)
    end = y->size;
  if (offset != y->run_end
      || y->run_end - y->run_start >= WRITE_BEHIND_BYTES) {
    write_behind (y, y->run_start, y->run_end - y->run_start);
    y->run_start = offset;
  }
  y->run_end = end;
}

/* Clients reading through to the snapshot come first. */
static void
give_way (struct hydration *y)
{
  unsigned waited = 0;
  double start;

  if (xs_head_source_reads (y->h) == 0)
    return;
  start = now_seconds ();
  while (waited < GIVE_WAY_MAX_US && xs_head_source_reads (y->h) > 0) {
    usleep (GIVE_WAY_STEP_US);
    waited += GIVE_WAY_STEP_US;
  }
  y->gave_way += now_seconds () - start;
}

/* Sleep until the bytes copied so far are within the rate. */
static void
hold_rate (struct hydration *y)
{
  double due = y->start + (double) y->bytes / (double) y->o->rate;
  double wait = due - now_seconds ();

  if (wait > 0) {
    struct timespec ts = {
      .tv_sec = (time_t) wait,
      .tv_nsec = (long) ((wait - (double) (time_t) wait) * 1e9),
    };
    nanosleep (&ts, NULL);
  }
}

static bool
stopped (const struct hydration *y)
{
  return y->o->stop != NULL
    && atomic_load_explicit (y->o->stop, memory_order_relaxed);
}

static void
report (const struct hydration *y, uint64_t done, uint64_t total)
{
  if (y->o->progress != NULL)
    y->o->progress (done, total, y->o->opaque);
}

enum xs_hydrate_result
xs_head_hydrate (struct xs_head *h, const struct xs_hydrate_options *options,
                 struct xs_hydrate_stats *stats)
{
  static const struct xs_hydrate_options defaults;
  const struct xs_presentmap *pm = xs_head_present (h);
  struct hydration y = {
    .h = h, .o = options != NULL ? options : &defaults,
    .source = xs_head_source (h),
    .size = xs_head_size (h),
    .nblocks = xs_head_nblocks (h),
    .block_size = xs_head_block_size (h),
    .start = now_seconds (),
  };
  enum xs_hydrate_result result = XS_HYDRATE_DONE;
  uint64_t b, missing, done = 0;
  void *buf = NULL;

  *stats = (struct xs_hydrate_stats) { 0 };
  if (y.source == NULL)
    return XS_HYDRATE_DONE;
  y.present = xs_presentmap_bits (pm);
  y.source_blocks = xs_snapreader_nblocks (y.source);
  y.window = xs_snapreader_readahead_window (y.source);
  missing = y.nblocks - xs_presentmap_count (pm);
  for (b = xs_bitmap_next_clear (y.present, 0); b < y.nblocks;
       b = xs_bitmap_next_clear (y.present, b + 1)) {
    if (stopped (&y)) {
      result = XS_HYDRATE_STOPPED;
      break;
    }
    queue_ahead (&y, b);
    if (y.o->give_way_to_reads)
      give_way (&y);
    if (xs_head_copy_up (h, b, &buf) == -1) {
      result = XS_HYDRATE_FAILED;
      break;
    }
    note_written (&y, b);
    done++;
    y.bytes += y.block_size;
    if (y.o->rate > 0)
      hold_rate (&y);
    if (done % PROGRESS_EVERY == 0)
      report (&y, done, missing);
  }
  free (buf);
  write_behind (&y, y.run_start, y.run_end - y.run_start);
  if (result == XS_HYDRATE_DONE) {
    report (&y, done, missing);
    if (xs_head_flush (h) == -1)
      result = XS_HYDRATE_FAILED;
  }
  stats->copied = done;
  stats->seconds = now_seconds () - y.start;
  stats->gave_way_seconds = y.gave_way;
  return result;
}
