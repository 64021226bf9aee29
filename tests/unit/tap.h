/* xsnap: a minimal TAP producer for the C unit tests.
 *
 * Each test program includes this header once.  It defines the error sink
 * libxsnap needs (messages are kept so tests can assert on them, and echoed
 * as TAP comments), and a handful of ok/is helpers.  Output goes to stdout
 * for prove; the plan is printed at the end (done_testing).
 */
#ifndef XSNAP_TAP_H
#define XSNAP_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

static int tap_count;
static int tap_failed;
static _Thread_local char tap_last_error[2048];

void
xs_error_sink (const char *message)
{
  snprintf (tap_last_error, sizeof tap_last_error, "%s", message);
  printf ("# error: %s\n", message);
  fflush (stdout);
}

/* The last error reported on this thread, then forget it. */
static inline const char *
tap_take_error (void)
{
  static _Thread_local char copy[2048];
  memcpy (copy, tap_last_error, sizeof copy);
  tap_last_error[0] = '\0';
  return copy;
}

static inline int
ok (int condition, const char *fmt, ...)
{
  va_list args;

  tap_count++;
  if (!condition)
    tap_failed++;
  printf ("%sok %d - ", condition ? "" : "not ", tap_count);
  va_start (args, fmt);
  vprintf (fmt, args);
  va_end (args);
  printf ("\n");
  fflush (stdout);
  return condition;
}

#define is_int(got, want, ...)                                          \
  do {                                                                  \
    long long tap_got_ = (long long) (got), tap_want_ = (long long) (want); \
    if (!ok (tap_got_ == tap_want_, __VA_ARGS__))                       \
      printf ("#   got %lld, want %lld\n", tap_got_, tap_want_);        \
  } while (0)

#define is_str(got, want, ...)                                          \
  do {                                                                  \
    const char *tap_got_ = (got), *tap_want_ = (want);                  \
    if (!ok (tap_got_ && tap_want_ && strcmp (tap_got_, tap_want_) == 0, \
             __VA_ARGS__))                                              \
      printf ("#   got '%s', want '%s'\n",                              \
              tap_got_ ? tap_got_ : "(null)",                           \
              tap_want_ ? tap_want_ : "(null)");                        \
  } while (0)

/* The last error contains NEEDLE. */
#define error_contains(needle, ...)                                     \
  do {                                                                  \
    const char *tap_err_ = tap_take_error ();                           \
    if (!ok (strstr (tap_err_, (needle)) != NULL, __VA_ARGS__))         \
      printf ("#   error was '%s', want it to contain '%s'\n",          \
              tap_err_, (needle));                                      \
  } while (0)

static inline int
done_testing (void)
{
  printf ("1..%d\n", tap_count);
  return tap_failed ? 1 : 0;
}

/* A fresh temporary directory for a test; removed by the caller with
 * tap_rmtree.  Aborts on failure: a unit test cannot go on without it.
 */
static inline char *
tap_tmpdir (void)
{
  const char *base = getenv ("TMPDIR");
  char *path;

  if (asprintf (&path, "%s/xsnap-test.XXXXXX", base ? base : "/tmp") == -1
      || mkdtemp (path) == NULL) {
    perror ("mkdtemp");
    abort ();
  }
  return path;
}

static inline void
tap_rmtree (const char *path)
{
  char *command;

  if (asprintf (&command, "rm -rf '%s'", path) == -1)
    abort ();
  if (system (command) != 0)
    printf ("# could not remove %s\n", path);
  free (command);
}

#endif /* XSNAP_TAP_H */
