/* xsnap CLI: what import, export, send and receive share — stopping
 * cleanly on Ctrl-C (libxsnap then removes what it made), printing a
 * transfer's rate, and large pipes.
 */
#ifndef XSNAP_TRANSFER_H
#define XSNAP_TRANSFER_H

#include <stddef.h>

#include "ops/nbdxfer.h"

/* From now on SIGINT, SIGTERM and SIGHUP set the returned flag (the
 * "stop" argument of xs_import_nbd and xs_export_nbd); a second signal
 * has its usual effect.
 */
extern const atomic_int *transfer_catch_interrupts (void);

/* If FD is a pipe, make its buffer 1 MiB (the default 64 KiB makes a
 * stream of 512 KiB chunks cross in many small steps, each a wake-up of
 * the other side).  Best effort: a pipe that cannot grow still works.
 */
extern void transfer_grow_pipe (int fd);

/* "256M in 0.42 s (610M/s)" */
extern void transfer_format_rate (const struct xs_transfer_report *report,
                                  char *buf, size_t len);

#endif /* XSNAP_TRANSFER_H */
