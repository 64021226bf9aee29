/* xsnap CLI: progress of long work — a bar on a terminal, nothing
 * otherwise (or with -q), and machine-readable lines on --progress=FD.
 */
#ifndef XSNAP_PROGRESS_H
#define XSNAP_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
  const char *label;            /* "sealing", "hydrating", ... */
  bool tty;                     /* draw a bar on stderr */
  int fd;                       /* machine-readable "done/total\\n", or -1 */
  int last_percent;
};

extern void progress_init (struct progress *p, const char *label, bool quiet,
                           int fd);

/* Suitable as a libxsnap progress callback (OPAQUE is the progress). */
extern void progress_update (uint64_t done, uint64_t total, void *opaque);

/* Finish the bar line. */
extern void progress_end (struct progress *p);

#endif /* XSNAP_PROGRESS_H */
