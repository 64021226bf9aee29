/* xsnap CLI: progress display (see progress.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/error.h"
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
  char *end;
  long fd;
  int flags;

  option->given = true;
  option->fd = -1;
  if (arg == NULL)
    return 0;
  errno = 0;
  fd = strtol (arg, &end, 10);
  if (errno != 0 || end == arg || *end != '\0' || fd < 0 || fd > INT_MAX) {
    xs_error ("invalid --progress=FD '%s': a file descriptor number is "
              "needed", arg);
    return -1;
  }
  flags = fcntl ((int) fd, F_GETFL);
  if (flags == -1 || (flags & O_ACCMODE) == O_RDONLY) {
    xs_error ("invalid --progress=FD '%s': %s", arg,
              flags == -1 ? "the file descriptor is not open"
              : "the file descriptor is not open for writing");
    return -1;
  }
  option->fd = (int) fd;
  return 0;
}

void
progress_init_option (struct progress *p, const char *label, bool quiet,
                      const struct progress_option *option)
{
  progress_init (p, label, quiet, option->fd);
  if (option->given && option->fd < 0 && !quiet)
    p->tty = true;
}
