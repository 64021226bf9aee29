/* xsnap: what a store running as a service is watched by.
 *
 * A store served by nbdkit and run by `xsnap daemon` must say, without
 * anyone reading its catalog by hand, whether its copies keep up (the
 * RPO lag of each copy task), which volumes are attached and whether their
 * changed-block maps are trusted, how much each repository holds, which
 * jobs run or failed, and when gc and verify last ran and how they ended.
 * This module gathers that from the catalog and from the volumes' map
 * files, read only: a scrape never opens a volume (its owner lock is
 * probed for an instant, as a listing does), never lists or reads a
 * repository, and costs one pass over the catalog's rows plus one read of
 * each volume's dirty map (docs/ARCHITECTURE.md, "Metrics and status").
 *
 * xs_metrics_text writes it in the Prometheus text exposition format
 * (version 0.0.4), for `xsnap metrics` and the daemon's /metrics;
 * xs_volume_states and the catalog's readers also serve `xsnap status`.
 */
#ifndef XSNAP_METRICS_H
#define XSNAP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog/store.h"
#include "catalog/volume.h"

/* The Content-Type of the text exposition format. */
#define XS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One volume as a service watches it. */
struct xs_volume_state {
  const struct xs_volume *vol;
  bool attached;                /* served (an owner that is not a detached
                                   sealer) */
  bool owned;                   /* any owner: a server or a sealer */
  bool cbt_trusted;             /* the next snapshot may read only the
                                   marked blocks */
  const char *cbt_doubt;        /* why not, "" if trusted */
  uint64_t changed_bytes;       /* marked in the map (an attached volume's
                                   as of its owner's last flush) */
  int64_t last_snapshot_ns;     /* its newest available snapshot, 0: none */
};

/* Call FN for every volume of the store (every account and region), by
 * account, region and name.  Reads each volume's dirty map file without
 * taking the volume: a map an owner left "open" without owning the volume
 * now is an unclean stop, untrusted.
 */
extern int xs_volume_states (struct xs_store *store,
                             int (*fn) (const struct xs_volume_state *state,
                                        void *opaque),
                             void *opaque);

/* The store's metrics at NOW_NS in the text exposition format: a
 * malloc'd, NUL-terminated text of *LEN bytes, or NULL (reported).
 */
extern char *xs_metrics_text (struct xs_store *store, int64_t now_ns,
                              size_t *len);

/* The file system that holds the store: its size and what an unprivileged
 * user may still write (statvfs f_bavail).  0 or -1 (reported).
 */
extern int xs_metrics_store_space (struct xs_store *store, uint64_t *size,
                                   uint64_t *free_bytes);

#endif /* XSNAP_METRICS_H */
