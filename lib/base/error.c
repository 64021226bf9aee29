/* xsnap: error reporting for libxsnap (see error.h for why it works this
 * way).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/error.h"

/* The captures of the current thread, innermost last (see
 * xs_error_capture_begin).  Thread-local, so threads never see each
 * other's.  Captures nest: an operation that captures its own reason may
 * run inside another that does (a copy inside a policy's copy task), and
 * both must receive the message.  Deeper nesting than this is a bug.
 */
#define MAX_CAPTURES 8

struct capture {
  char *buf;
  size_t len;
  bool hold;                    /* keep the message from outer captures */
};
static _Thread_local struct capture captures[MAX_CAPTURES];
static _Thread_local unsigned ncaptures, lost_captures;

static void
push_capture (char *buf, size_t len, bool hold)
{
  if (len > 0)
    buf[0] = '\0';
  if (ncaptures == MAX_CAPTURES) {
    lost_captures++;
    return;
  }
  captures[ncaptures++] = (struct capture) { buf, len, hold };
}

void
xs_error_capture_begin (char *buf, size_t len)
{
  push_capture (buf, len, false);
}

void
xs_error_hold_begin (char *buf, size_t len)
{
  push_capture (buf, len, true);
}

void
xs_error_capture_end (void)
{
  if (lost_captures > 0)
    lost_captures--;
  else if (ncaptures > 0)
    ncaptures--;
}

/* Keep MESSAGE in every capture of this thread, innermost first, that
 * has none yet, up to the first that holds it.  Returns whether it was
 * held (then it goes no further).
 */
static bool
capture_message (const char *message)
{
  unsigned i = ncaptures;

  while (i-- > 0) {
    struct capture *c = &captures[i];

    if (c->len > 0 && c->buf[0] == '\0')
      snprintf (c->buf, c->len, "%s", message);
    if (c->hold)
      return true;
  }
  return false;
}

/* Programs that do not care about debug output need not define a sink. */
__attribute__ ((weak)) void
xs_debug_sink (const char *message)
{
  (void) message;
}

__attribute__ ((weak)) void
xs_notice_sink (const char *message)
{
  (void) message;
}

void
xs_verror (const char *fmt, va_list args)
{
  int saved_errno = errno;
  char message[2048];

  vsnprintf (message, sizeof message, fmt, args);
  if (!capture_message (message))
    xs_error_sink (message);
  errno = saved_errno;
}

void
xs_error_capture_note (const char *message)
{
  capture_message (message);
}

void
xs_error (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  xs_verror (fmt, args);
  va_end (args);
}

/* Format a message for SINK, leaving errno as it was. */
static void
to_sink (void (*sink) (const char *message), const char *fmt, va_list args)
{
  int saved_errno = errno;
  char message[2048];

  vsnprintf (message, sizeof message, fmt, args);
  sink (message);
  errno = saved_errno;
}

void
xs_debug (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  to_sink (xs_debug_sink, fmt, args);
  va_end (args);
}

void
xs_notice (const char *fmt, ...)
{
  va_list args;

  va_start (args, fmt);
  to_sink (xs_notice_sink, fmt, args);
  va_end (args);
}
