/* xsnap: what the repository unit tests share — a file repository of
 * account "alice" in a fresh temporary directory, made and removed
 * through lib calls.  Aborts on failure: a test cannot go on without it.
 */
#ifndef XSNAP_REPOFIXTURE_H
#define XSNAP_REPOFIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "repo/backend.h"
#include "repo/repo.h"
#include "tap.h"

static inline void
repo_fixture_open (char **dir, struct xs_backend **backend,
                   struct xs_repo **repo)
{
  char *url;

  *dir = tap_tmpdir ();
  if (asprintf (&url, "file://%s", *dir) == -1)
    abort ();
  *backend = xs_backend_open (url);
  *repo = *backend ? xs_repo_open (*backend, "alice") : NULL;
  if (*repo == NULL)
    abort ();
  free (url);
}

static inline void
repo_fixture_close (char *dir, struct xs_backend *backend,
                    struct xs_repo *repo)
{
  xs_repo_close (repo);
  xs_backend_close (backend);
  tap_rmtree (dir);
  free (dir);
}

#endif /* XSNAP_REPOFIXTURE_H */
