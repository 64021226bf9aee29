/* xsnap: error reporting for libxsnap (see error.h for why it works this
 * way).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

/* The capture of the current thread, if any (see xs_error_capture_begin).
 * Thread-local, so threads never see each other's.
 */
struct capture {
  char *buf;
  size_t len;
};
static _Thread_local struct capture capture;

void
xs_error_capture_begin (char *buf, size_t len)
{
  capture.buf = buf;
  capture.len = len;
  if (len > 0)
    buf[0] = '\0';
}

void
xs_error_capture_end (void)
{
  capture.buf = NULL;
  capture.len = 0;
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
  xs_error_sink (message);
  if (capture.buf && capture.len > 0 && capture.buf[0] == '\0')
    snprintf (capture.buf, capture.len, "%s", message);
  errno = saved_errno;
}

void
xs_error_capture_note (const char *message)
{
  if (capture.buf && capture.len > 0 && capture.buf[0] == '\0')
    snprintf (capture.buf, capture.len, "%s", message);
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
