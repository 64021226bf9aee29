/* xsnap: error reporting for libxsnap.
 *
 * Errors are reported once, where they happen, with what failed and why;
 * the function then returns -1 or NULL and its callers pass the failure up
 * without printing again.  libxsnap has no global mutable state, so it does
 * not own a log: each program linking it (the plugin, the xsnap tool, the
 * tests) defines xs_error_sink and decides where messages go.  In nbdkit
 * that is nbdkit_error; in the CLI it is stderr.
 */
#ifndef XSNAP_ERROR_H
#define XSNAP_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* Provided by every program that links libxsnap.  Called with one complete
 * line (no trailing newline).  Must be thread-safe.
 */
extern void xs_error_sink (const char *message);

/* Optional debug sink; programs may define xs_debug_sink to see debug
 * messages (a weak default discards them).
 */
extern void xs_debug_sink (const char *message);

/* Optional sink for notices: what a person waiting on a command should
 * know although nothing failed ("waiting for ...").  The CLI prints them
 * on stderr; a weak default discards them.
 */
extern void xs_notice_sink (const char *message);

/* Format a message and hand it to xs_error_sink.  "%m" expands to
 * strerror (errno) as in glibc's printf; errno is preserved across the call
 * so callers can still return it on the wire.
 */
extern void xs_error (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void xs_verror (const char *fmt, va_list args)
  __attribute__ ((format (printf, 1, 0)));
extern void xs_debug (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
extern void xs_notice (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

/* Also keep the first error reported by this thread between begin and
 * end in BUF (for a server that must send the reason to its client as
 * well as log it).  The capture is per thread, like errno.  Captures
 * nest: each one active when an error is reported keeps its own first
 * error, so an operation that captures its reason may run inside another
 * that does.  Every begin is paired with one end.
 */
extern void xs_error_capture_begin (char *buf, size_t len);
extern void xs_error_capture_end (void);

/* Like xs_error_capture_begin, but the errors of this thread between
 * begin and end are only kept in BUF: neither the sink nor the outer
 * captures see them.  For the workers of one operation, several of
 * which may fail for one cause: the operation reports the first once.
 * Ended by xs_error_capture_end.
 */
extern void xs_error_hold_begin (char *buf, size_t len);

/* Keep MESSAGE in this thread's capture as if it had been reported here
 * (it was reported on another thread: a worker's failure becomes the
 * reason of the operation that ran it).
 */
extern void xs_error_capture_note (const char *message);

#endif /* XSNAP_ERROR_H */
