/* xsnap: the control socket of a volume's owner (see control.h).
 *
 * The listener thread polls its socket and a wake-up pipe so that stop can
 * end it at once.  Each connection gets a receive timeout, so a client
 * that connects and says nothing cannot hold the owner's control channel.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "head/control.h"
#include "base/error.h"
#include "base/fileio.h"

struct xs_control_server {
  char *path;
  atomic_bool unlinked;         /* the name is gone: not ours to remove */
  int listen_fd;
  int wake[2];                  /* write a byte to wake[1] to stop */
  pthread_t thread;
  xs_control_handler fn;
  void *opaque;
};

static int
socket_address (const char *path, struct sockaddr_un *addr)
{
  memset (addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof addr->sun_path) {
    xs_error ("control socket path too long: %s", path);
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy (addr->sun_path, path);
  return 0;
}

json_t *
xs_control_parse_request (const char *text, size_t len, const char **error)
{
  json_t *request, *version, *op;

  request = json_loadb (text, len, JSON_REJECT_DUPLICATES, NULL);
  if (request == NULL) {
    *error = "the request is not valid JSON";
    return NULL;
  }
  version = json_object_get (request, "version");
  op = json_object_get (request, "op");
  if (!json_is_object (request))
    *error = "the request is not a JSON object";
  else if (!json_is_integer (version))
    *error = "the request has no integer \"version\"";
  else if (json_integer_value (version) != XS_CONTROL_VERSION)
    *error = "unsupported control protocol version";
  else if (!json_is_string (op))
    *error = "the request has no string \"op\"";
  else
    return request;
  json_decref (request);
  return NULL;
}

json_t *
xs_control_error_reply (const char *fmt, ...)
{
  char message[1024];
  va_list args;

  va_start (args, fmt);
  vsnprintf (message, sizeof message, fmt, args);
  va_end (args);
  return json_pack ("{s:b, s:s}", "ok", 0, "error", message);
}

/* Read one line (without the newline) of at most MAX bytes. */
static char *
read_line (int fd, size_t max, size_t *len)
{
  char *buf = malloc (max + 1);
  size_t have = 0;

  if (buf == NULL)
    return NULL;
  while (have < max) {
    ssize_t r = read (fd, buf + have, max - have);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    have += (size_t) r;
    if (memchr (buf + have - (size_t) r, '\n', (size_t) r))
      break;
  }
  {
    char *newline = memchr (buf, '\n', have);
    if (newline == NULL) {
      free (buf);
      return NULL;
    }
    *len = (size_t) (newline - buf);
    buf[*len] = '\0';
  }
  return buf;
}

/* Send all of BUF; MSG_NOSIGNAL: a peer that went away is an error, not
 * a SIGPIPE.
 */
static int
send_all (int fd, const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = send (fd, buf, len, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    buf += r;
    len -= (size_t) r;
  }
  return 0;
}

static int
write_json_line (int fd, json_t *value)
{
  char *text = json_dumps (value, JSON_COMPACT);
  int r = -1;

  if (text) {
    size_t len = strlen (text);
    text[len] = '\n';           /* json_dumps leaves room for the NUL */
    r = send_all (fd, text, len + 1);
    free (text);
  }
  return r;
}

static void
serve_client (struct xs_control_server *srv, int fd)
{
  struct timeval timeout = { .tv_sec = 10 };
  const char *problem = NULL;
  json_t *request = NULL, *reply;
  size_t len;
  char *line;

  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  line = read_line (fd, XS_CONTROL_MAX_MESSAGE, &len);
  if (line == NULL)
    reply = xs_control_error_reply ("no request line (or longer than %d "
                                    "bytes)", XS_CONTROL_MAX_MESSAGE);
  else if ((request = xs_control_parse_request (line, len, &problem)) == NULL)
    reply = xs_control_error_reply ("bad request: %s", problem);
  else
    reply = srv->fn (request, srv->opaque);
  if (reply)
    write_json_line (fd, reply);
  json_decref (reply);
  json_decref (request);
  free (line);
}

static void *
listener_main (void *opaque)
{
  struct xs_control_server *srv = opaque;
  struct pollfd fds[2] = {
    { .fd = srv->listen_fd, .events = POLLIN },
    { .fd = srv->wake[0], .events = POLLIN },
  };

  for (;;) {
    if (poll (fds, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (fds[1].revents)
      break;
    if (fds[0].revents & POLLIN) {
      int fd = accept4 (srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0) {
        serve_client (srv, fd);
        close (fd);
      }
    }
  }
  return NULL;
}

static void
free_server (struct xs_control_server *srv)
{
  if (srv->listen_fd >= 0)
    close (srv->listen_fd);
  if (srv->wake[0] >= 0)
    close (srv->wake[0]);
  if (srv->wake[1] >= 0)
    close (srv->wake[1]);
  free (srv->path);
  free (srv);
}

struct xs_control_server *
xs_control_listen (const char *path, xs_control_handler fn, void *opaque)
{
  struct xs_control_server *srv = calloc (1, sizeof *srv);
  struct sockaddr_un addr;
  mode_t old_mask;
  int r;

  if (srv == NULL) {
    xs_error ("cannot listen on %s: %m", path);
    return NULL;
  }
  srv->listen_fd = srv->wake[0] = srv->wake[1] = -1;
  srv->fn = fn;
  srv->opaque = opaque;
  srv->path = strdup (path);
  if (srv->path == NULL || socket_address (path, &addr) == -1
      || pipe2 (srv->wake, O_CLOEXEC) == -1)
    goto fail;
  srv->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv->listen_fd == -1)
    goto fail;
  unlink (path);                /* a stale socket of a dead owner */
  old_mask = umask (077);
  r = bind (srv->listen_fd, (struct sockaddr *) &addr, sizeof addr);
  umask (old_mask);
  if (r == -1 || listen (srv->listen_fd, 8) == -1)
    goto fail;
  if (pthread_create (&srv->thread, NULL, listener_main, srv) != 0)
    goto fail;
  return srv;

 fail:
  xs_error ("cannot listen on control socket %s: %m", path);
  free_server (srv);
  return NULL;
}

void
xs_control_unlink (struct xs_control_server *srv)
{
  if (srv && !atomic_exchange (&srv->unlinked, true))
    unlink (srv->path);
}

void
xs_control_stop (struct xs_control_server *srv)
{
  if (srv == NULL)
    return;
  if (write (srv->wake[1], "", 1) == 1)
    pthread_join (srv->thread, NULL);
  xs_control_unlink (srv);
  free_server (srv);
}

enum xs_control_result
xs_control_call (const char *path, json_t *request, json_t **reply_out)
{
  struct sockaddr_un addr;
  json_t *message = NULL, *reply = NULL;
  char *line = NULL;
  size_t len;
  enum xs_control_result r = XS_CONTROL_NO_OWNER;
  int fd;

  *reply_out = NULL;
  if (socket_address (path, &addr) == -1)
    return XS_CONTROL_FAILED;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1 || connect (fd, (struct sockaddr *) &addr, sizeof addr) == -1)
    goto out;                   /* nobody listening */
  message = json_deep_copy (request);
  if (message == NULL
      || json_object_set_new (message, "version",
                              json_integer (XS_CONTROL_VERSION)) == -1) {
    xs_error ("cannot build a request to the volume's owner: out of memory");
    r = XS_CONTROL_FAILED;
    goto out;
  }
  if (write_json_line (fd, message) == -1)
    goto out;                   /* the owner went away */
  line = read_line (fd, 16 * XS_CONTROL_MAX_MESSAGE, &len);
  if (line == NULL)
    goto out;                   /* ... before replying */
  reply = json_loadb (line, len, 0, NULL);
  if (reply == NULL || !json_is_object (reply)) {
    xs_error ("the volume's owner at %s sent a reply that is not a JSON "
              "object", path);
    r = XS_CONTROL_FAILED;
  }
  else if (!json_is_true (json_object_get (reply, "ok"))) {
    const char *error = json_string_value (json_object_get (reply, "error"));
    xs_error ("%s", error ? error : "the volume's owner refused");
    r = XS_CONTROL_FAILED;
  }
  else {
    *reply_out = reply;
    reply = NULL;
    r = XS_CONTROL_ANSWERED;
  }
 out:
  if (fd >= 0)
    close (fd);
  json_decref (message);
  json_decref (reply);
  free (line);
  return r;
}
