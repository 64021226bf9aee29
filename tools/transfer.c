/* xsnap CLI: shared by import, export, send and receive (see
 * transfer.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/size.h"
#include "transfer.h"

/* Set from a signal handler: a lock-free atomic int. */
static atomic_int interrupted;

static void
note_interrupt (int sig)
{
  atomic_store_explicit (&interrupted, 1, memory_order_relaxed);
}

const atomic_int *
transfer_catch_interrupts (void)
{
  static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
  struct sigaction sa = { .sa_handler = note_interrupt,
                          .sa_flags = SA_RESETHAND };
  size_t i;

  sigemptyset (&sa.sa_mask);
  for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
    sigaction (signals[i], &sa, NULL);
  return &interrupted;
}

void
transfer_grow_pipe (int fd)
{
  struct stat st;

  if (fstat (fd, &st) == 0 && S_ISFIFO (st.st_mode))
    fcntl (fd, F_SETPIPE_SZ, 1 << 20);
}

void
transfer_format_rate (const struct xs_transfer_report *report, char *buf,
                      size_t len)
{
  char size[32], rate[32];
  double seconds = report->seconds > 1e-6 ? report->seconds : 1e-6;

  xs_size_format (report->size, size, sizeof size);
  xs_size_format ((uint64_t) ((double) report->size / seconds), rate,
                  sizeof rate);
  snprintf (buf, len, "%s in %.2f s (%s/s)", size, report->seconds, rate);
}
