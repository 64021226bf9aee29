/* xsnap: the control socket of a volume's owner.
 *
 * Operations on an attached volume (snapshot, reset) must be done by the
 * process that owns it.  The owner listens on a Unix socket in the head's
 * directory (mode 0600, like the rest of the store); a client sends one
 * request and reads one reply, each a single line of JSON (docs/FORMAT.md,
 * "Control protocol").  Requests come from outside the owner, so they are
 * parsed defensively: size-limited, version-checked, typed.
 */
#ifndef XSNAP_CONTROL_H
#define XSNAP_CONTROL_H

#include <jansson.h>

#define XS_CONTROL_VERSION 1
#define XS_CONTROL_MAX_MESSAGE 65536

/* Handle one request (already parsed and checked to be an object with a
 * supported "version" and a string "op").  Returns a new reply object:
 * {"ok": true, ...} or {"ok": false, "error": "..."}; or NULL to hang up
 * without a reply, when the owner is letting the volume go: the client
 * then sees XS_CONTROL_NO_OWNER and looks again.
 */
typedef json_t *(*xs_control_handler) (json_t *request, void *opaque);

struct xs_control_server;

/* Listen on PATH (replacing a stale socket file) in a background thread
 * that serves one client at a time.
 */
extern struct xs_control_server *xs_control_listen (const char *path,
                                                    xs_control_handler fn,
                                                    void *opaque);
/* Remove the socket's name now, so that clients no longer find this
 * owner (the next owner may take the name); the thread goes on with the
 * clients already connected.  Called from a handler too.
 */
extern void xs_control_unlink (struct xs_control_server *srv);

/* Stop listening, wait for the thread, remove the socket (unless
 * xs_control_unlink did).
 */
extern void xs_control_stop (struct xs_control_server *srv);

/* What became of a call to a volume's owner. */
enum xs_control_result {
  XS_CONTROL_ANSWERED,          /* its reply is in *REPLY */
  XS_CONTROL_FAILED,            /* refused, or a bad reply: reported */
  XS_CONTROL_NO_OWNER,          /* none listening, or it went away before
                                   replying (it may be closing the volume,
                                   so the caller may look again): not
                                   reported */
};

/* Send REQUEST (borrowed; "version" is added) to the owner at PATH. */
extern enum xs_control_result xs_control_call (const char *path,
                                               json_t *request,
                                               json_t **reply);

/* Parse and check a request line (for the server and the fuzzer).
 * Returns the object, or NULL and sets *ERROR to a static reason.
 */
extern json_t *xs_control_parse_request (const char *text, size_t len,
                                         const char **error);

/* Reply helpers for handlers. */
extern json_t *xs_control_error_reply (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

#endif /* XSNAP_CONTROL_H */
