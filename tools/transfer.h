/* xsnap CLI: what import and export share — stopping cleanly on Ctrl-C
 * (libxsnap then removes what it made) and printing a transfer's rate.
 */
#ifndef XSNAP_TRANSFER_H
#define XSNAP_TRANSFER_H

#include <stddef.h>

#include "nbdxfer.h"

/* From now on SIGINT, SIGTERM and SIGHUP set the returned flag (the
 * "stop" argument of xs_import_nbd and xs_export_nbd); a second signal
 * has its usual effect.
 */
extern const int *transfer_catch_interrupts (void);

/* "256M in 0.42 s (610M/s)" */
extern void transfer_format_rate (const struct xs_transfer_report *report,
                                  char *buf, size_t len);

#endif /* XSNAP_TRANSFER_H */
