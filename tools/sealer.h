/* xsnap CLI: detached sealers (lib/ops/server.h), as processes.
 *
 * `snapshot create` of a volume nobody owns starts one, so that it
 * returns as soon as the point in time is taken: the sealer is the same
 * program, run as the internal command `snapshot sealer`, in a session
 * of its own, with nothing of the command's standard streams (its
 * messages go to `sealer.log` in the volume's head).  It reports to the
 * command on a pipe, one JSON line once the snapshot is pending (or why
 * it is not) and one once the sealer has given the volume up (the
 * snapshot sealed, failed, or handed over to a server that attached the
 * volume); the command reads the second only with --wait.
 */
#ifndef XSNAP_SEALER_H
#define XSNAP_SEALER_H

#include "cli.h"
#include "ops/snaptake.h"

/* Start a detached sealer of VOL for the command CLI (OPAQUE): the
 * start function of an xs_sealer_starter.
 */
extern enum xs_sealer_start sealer_start (const struct xs_volume *vol,
                                          const char *name, bool wait,
                                          struct xs_snapshot *snap,
                                          void *opaque);

/* The internal command `snapshot sealer VOLUME-ID [--name NAME]
 * --report-fd FD` that sealer_start runs.
 */
extern int snapshot_sealer (struct cli *cli, int argc, char **argv);

#endif /* XSNAP_SEALER_H */
