/* xsnap: the last gc and verify of each repository, and what gc counted.
 *
 * A service is watched by when its maintenance last ran and how it
 * ended, and by how much its repositories hold.  gc and verify record
 * their runs here (one row per kind and repository, replaced by the next
 * run); gc, which lists every chunk of a repository anyway, records how
 * many it kept, so that a scrape of the metrics never lists a repository
 * (docs/ARCHITECTURE.md, "Metrics and status").
 *
 * The tables (maintenance_runs, repository_usage) are this module's.
 */
#ifndef XSNAP_MAINTENANCE_H
#define XSNAP_MAINTENANCE_H

#include <stdint.h>

#include "catalog/store.h"

/* How a run ended. */
#define XS_RUN_OK "ok"
#define XS_RUN_DAMAGED "damaged"        /* verify found bad blocks */
#define XS_RUN_FAILED "failed"          /* it could not finish */

/* Record a run of KIND ("gc": ACCOUNT "", "verify") of ACCOUNT's
 * repository in REGION, from STARTED_NS to now, ending with RESULT
 * (XS_RUN_*) and DETAIL (one line, may be "").  0 or -1 (reported).
 */
extern int xs_maintenance_record_run (struct xs_store *store,
                                      const char *kind, const char *account,
                                      const char *region, int64_t started_ns,
                                      const char *result,
                                      const char *detail);

/* Record that gc kept CHUNKS chunks in ACCOUNT's repository in REGION,
 * now.  0 or -1 (reported).
 */
extern int xs_maintenance_record_chunks (struct xs_store *store,
                                         const char *account,
                                         const char *region,
                                         uint64_t chunks);

struct xs_maintenance_run {
  const char *kind, *account, *region;
  int64_t started_ns, finished_ns;
  const char *result, *detail;
};

/* Call FN for the last run of each kind and repository of a region and
 * account that exist, by kind, region and account.  FN runs under the
 * catalog lock (recursive).
 */
extern int xs_maintenance_runs (struct xs_store *store,
                                int (*fn) (const struct xs_maintenance_run
                                           *run, void *opaque),
                                void *opaque);

/* The chunks gc counted in a repository when it last swept it. */
struct xs_repository_chunks {
  const char *account, *region;
  uint64_t chunks;
  int64_t measured_ns;
};

/* Call FN for each repository (of an account and a region that exist)
 * gc has counted, by account and region.  One query: no repository is
 * read.
 */
extern int xs_maintenance_chunks (struct xs_store *store,
                                  int (*fn) (const struct xs_repository_chunks
                                             *counted, void *opaque),
                                  void *opaque);

#endif /* XSNAP_MAINTENANCE_H */
