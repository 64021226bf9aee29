/* xsnap CLI: progress of long work — a bar on a terminal, nothing
 * otherwise (or with -q), and machine-readable lines on --progress=FD.
 */
#ifndef XSNAP_PROGRESS_H
#define XSNAP_PROGRESS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

struct progress {
  const char *label;            /* "sealing", "hydrating", ... */
  bool tty;                     /* draw a bar on stderr */
  int fd;                       /* machine-readable "done/total\\n", or -1 */
  int last_percent;
  uint64_t unit_bytes;          /* bytes a unit of done is; 0: unknown */
  double start;                 /* when progress_init was called */
};

extern void progress_init (struct progress *p, const char *label, bool quiet,
                           int fd);

/* Suitable as a libxsnap progress callback (OPAQUE is the progress). */
extern void progress_update (uint64_t done, uint64_t total, void *opaque);

/* Each unit of done is BYTES bytes (a block): the bar shows the rate. */
extern void progress_set_unit (struct progress *p, uint64_t bytes);

/* Seconds since progress_init. */
extern double progress_seconds (const struct progress *p);

/* Finish the bar line. */
extern void progress_end (struct progress *p);

/* The --progress[=FD] option (as nbdcopy has it): with FD, progress
 * lines go to that file descriptor; without, the bar is drawn on stderr
 * even when it is not a terminal.  Commands list PROGRESS_OPTION (VAL) in
 * their options and hand its argument (NULL without =FD) to
 * progress_parse_option, which reports a bad FD and returns -1.
 */
#define PROGRESS_OPTION(val) { "progress", optional_argument, NULL, (val) }

struct progress_option {
  bool given;                   /* --progress appeared */
  int fd;                       /* its FD, or -1 */
};

#define PROGRESS_OPTION_INIT { .given = false, .fd = -1 }

extern int progress_parse_option (const char *arg,
                                  struct progress_option *option);

/* progress_init as OPTION asks (QUIET still silences the bar). */
extern void progress_init_option (struct progress *p, const char *label,
                                  bool quiet,
                                  const struct progress_option *option);

#endif /* XSNAP_PROGRESS_H */
