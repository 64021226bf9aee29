/* xsnap CLI: progress display (see progress.h). */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/size.h"
#include "cli.h"
#include "progress.h"

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

void
progress_init (struct progress *p, const char *label, bool quiet, int fd)
{
  p->label = label;
  p->tty = !quiet && isatty (STDERR_FILENO);
  p->fd = fd;
  p->last_percent = -1;
  p->unit_bytes = 0;
  p->start = now_seconds ();
}

void
progress_set_unit (struct progress *p, uint64_t bytes)
{
  p->unit_bytes = bytes;
}

double
progress_seconds (const struct progress *p)
{
  return now_seconds () - p->start;
}

/* " 123.4 MiB/s" for a bar, or "" while unknown. */
static void
format_rate (const struct progress *p, uint64_t done, char *buf, size_t len)
{
  double seconds = progress_seconds (p);
  char size[32];

  buf[0] = '\0';
  if (p->unit_bytes == 0 || seconds < 0.1)
    return;
  xs_size_format ((uint64_t) ((double) (done * p->unit_bytes) / seconds),
                  size, sizeof size);
  snprintf (buf, len, " %s/s", size);
}

void
progress_update (uint64_t done, uint64_t total, void *opaque)
{
  struct progress *p = opaque;
  int percent = total ? (int) (done * 100 / total) : 100;
  char bar[41], rate[48];
  int i, filled;

  if (percent == p->last_percent)
    return;
  p->last_percent = percent;
  if (p->fd >= 0)
    dprintf (p->fd, "%" PRIu64 "/%" PRIu64 "\n", done, total);
  if (!p->tty)
    return;
  filled = percent * 40 / 100;
  for (i = 0; i < 40; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[40] = '\0';
  format_rate (p, done, rate, sizeof rate);
  fprintf (stderr, "\r%s [%s] %3d%% (%" PRIu64 "/%" PRIu64 ")%s", p->label,
           bar, percent, done, total, rate);
}

void
progress_end (struct progress *p)
{
  if (p->tty && p->last_percent >= 0)
    fputc ('\n', stderr);
}

int
progress_parse_option (const char *arg, struct progress_option *option)
{
  option->given = true;
  option->fd = -1;
  if (arg == NULL)
    return 0;
  option->fd = cli_parse_output_fd (arg, "--progress=FD");
  return option->fd == -1 ? -1 : 0;
}

void
progress_init_option (struct progress *p, const char *label, bool quiet,
                      const struct progress_option *option)
{
  progress_init (p, label, quiet, option->fd);
  if (option->given && option->fd < 0 && !quiet)
    p->tty = true;
}
