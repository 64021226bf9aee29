/* xsnap CLI: progress display (see progress.h). */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"

void
progress_init (struct progress *p, const char *label, bool quiet, int fd)
{
  p->label = label;
  p->tty = !quiet && isatty (STDERR_FILENO);
  p->fd = fd;
  p->last_percent = -1;
}

void
progress_update (uint64_t done, uint64_t total, void *opaque)
{
  struct progress *p = opaque;
  int percent = total ? (int) (done * 100 / total) : 100;
  char bar[41];
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
  fprintf (stderr, "\r%s [%s] %3d%% (%" PRIu64 "/%" PRIu64 ")", p->label,
           bar, percent, done, total);
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
