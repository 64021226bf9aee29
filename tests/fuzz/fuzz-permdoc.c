/* xsnap: libFuzzer target for permission policy documents.
 *
 * Policy documents are written by people and stored by the catalog, so
 * xs_permdoc_parse must survive any text, and what it accepts must mean the
 * same after the round trip through the canonical form the catalog keeps:
 * the canonical text must parse, be its own canonical form, and give the
 * same verdict as the original on every known action against a few
 * resources (plus the document's own patterns used as subjects, which
 * exercises the wildcard matcher on odd strings).  A refusal must be one
 * message whose line lies inside the text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/permdoc.h"

/* The fuzzer runs one input at a time on one thread. */
static char last_error[2048];
static int errors;

void
xs_error_sink (const char *message)
{
  snprintf (last_error, sizeof last_error, "%s", message);
  errors++;
}

/* "fuzz.json:LINE[:COL]: ..." with LINE within the text, or
 * "fuzz.json: ..." for refusals of the whole document.
 */
static void
check_refusal (const uint8_t *data, size_t size)
{
  const char *prefix = "fuzz.json:";
  size_t lines = 1, i;
  long line;
  char *end;

  if (errors != 1 || strncmp (last_error, prefix, strlen (prefix)) != 0)
    abort ();
  if (last_error[strlen (prefix)] == ' ')
    return;
  for (i = 0; i < size; i++)
    lines += data[i] == '\n';
  line = strtol (last_error + strlen (prefix), &end, 10);
  if (line < 1 || (size_t) line > lines || *end != ':')
    abort ();
}

static const char *const resources[] = {
  "*",
  "",
  "xsnap:r1:acct-1:snapshot/snap-1",
  "xsnap:r2:acct-2:volume/db-main",
  "xsnap::acct-1:account/acct-1",
  "xsnap:cn-hangzhou:1234:policy/asp-1",
  "xsnap:r1:acct-1:snapshot/keep-*",
  NULL
};

static void
check_same_verdicts (const struct xs_permdoc *a, const struct xs_permdoc *b)
{
  const char *const *action;
  size_t i;

  for (action = xs_permdoc_actions (); *action; action++)
    for (i = 0; resources[i]; i++)
      if (xs_permdoc_evaluate (a, *action, resources[i])
          != xs_permdoc_evaluate (b, *action, resources[i]))
        abort ();
  /* Unknown and odd actions too. */
  for (i = 0; resources[i]; i++)
    if (xs_permdoc_evaluate (a, resources[i], resources[i])
        != xs_permdoc_evaluate (b, resources[i], resources[i])
        || xs_permdoc_evaluate (a, "xsnap:", resources[i])
        != xs_permdoc_evaluate (b, "xsnap:", resources[i]))
      abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct xs_permdoc *policy, *again;
  char *canonical, *canonical_again;

  errors = 0;
  policy = xs_permdoc_parse ((const char *) data, size, "fuzz.json");
  if (policy == NULL) {
    check_refusal (data, size);
    return 0;
  }
  if (xs_permdoc_statement_count (policy) == 0)
    abort ();
  canonical = xs_permdoc_canonical (policy);
  if (canonical == NULL)
    abort ();
  again = xs_permdoc_parse (canonical, strlen (canonical), "canonical");
  if (again == NULL)
    abort ();
  canonical_again = xs_permdoc_canonical (again);
  if (canonical_again == NULL || strcmp (canonical, canonical_again) != 0)
    abort ();
  check_same_verdicts (policy, again);
  free (canonical_again);
  free (canonical);
  xs_permdoc_free (again);
  xs_permdoc_free (policy);
  return 0;
}
