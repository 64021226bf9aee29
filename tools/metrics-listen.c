/* xsnap daemon's metrics over HTTP (see metrics-listen.h).
 *
 * A scrape is one small request every few seconds from one client, so a
 * loop that answers one connection at a time, closing each, is all the
 * server needs: a few functions over the socket calls rather than a
 * library (libmicrohttpd) that the package and CI would carry for one
 * endpoint.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fileio.h"
#include "catalog/store.h"
#include "metrics-listen.h"
#include "ops/metrics.h"

#define REQUEST_MAX 8192
#define CLIENT_TIMEOUT_S 5

struct metrics_listener {
  struct xs_store *store;
  int fd;                       /* listening */
  int stop_pipe[2];             /* written to stop the thread */
  pthread_t thread;
};

/* "ADDR:PORT" or "[ADDR]:PORT" into *HOST and *PORT (malloc'd). */
static int
split_address (const char *address, char **host, char **port)
{
  const char *colon = strrchr (address, ':');
  const char *start = address, *end = colon;

  *host = *port = NULL;
  if (colon == NULL || colon[1] == '\0')
    goto bad;
  if (address[0] == '[') {
    start = address + 1;
    if (colon == address || colon[-1] != ']')
      goto bad;
    end = colon - 1;
  }
  if (end <= start)
    goto bad;
  *host = strndup (start, (size_t) (end - start));
  *port = strdup (colon + 1);
  if (*host == NULL || *port == NULL) {
    xs_error ("cannot listen on %s: %m", address);
    free (*host);
    free (*port);
    return -1;
  }
  return 0;
 bad:
  xs_error ("invalid --metrics-listen '%s': expected ADDR:PORT "
            "(127.0.0.1:9310, [::1]:9310)", address);
  return -1;
}

/* A listening socket on ADDRESS, or -1 (reported). */
static int
open_listening (const char *address)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                            .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
  struct addrinfo *found = NULL, *ai;
  char *host, *port;
  int fd = -1, one = 1, e;

  if (split_address (address, &host, &port) == -1)
    return -1;
  e = getaddrinfo (host, port, &hints, &found);
  if (e != 0) {
    xs_error ("cannot listen on %s: %s", address, gai_strerror (e));
    goto out;
  }
  for (ai = found; ai; ai = ai->ai_next) {
    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd == -1)
      continue;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 16) == 0)
      break;
    e = errno;
    close (fd);
    fd = -1;
    errno = e;
  }
  if (fd == -1)
    xs_error ("cannot listen on %s: %m", address);
 out:
  if (found)
    freeaddrinfo (found);
  free (host);
  free (port);
  return fd;
}

/* The address FD listens on, as ADDR:PORT (malloc'd), or NULL. */
static char *
bound_address (int fd)
{
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  char host[NI_MAXHOST], port[NI_MAXSERV], *text = NULL;

  if (getsockname (fd, (struct sockaddr *) &sa, &len) == -1
      || getnameinfo ((struct sockaddr *) &sa, len, host, sizeof host, port,
                      sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0
      || asprintf (&text, sa.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
                   host, port) == -1)
    return NULL;
  return text;
}

/* Read the request head (up to the empty line) into BUF: its length, or
 * -1 if the client sent too much, too slowly (each read waits at most
 * the socket's timeout, and the whole head may take no longer), or hung
 * up.
 */
static ssize_t
read_request (int fd, char *buf, size_t size)
{
  int64_t deadline = xs_now_ns () + CLIENT_TIMEOUT_S * INT64_C (1000000000);
  size_t len = 0;
  ssize_t n;

  while (len < size - 1 && xs_now_ns () < deadline) {
    n = read (fd, buf + len, size - 1 - len);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    len += (size_t) n;
    buf[len] = '\0';
    if (strstr (buf, "\r\n\r\n") || strstr (buf, "\n\n"))
      return (ssize_t) len;
  }
  return -1;
}

static void
respond (int fd, const char *status, const char *type, const char *extra,
         const char *body, size_t len, bool head_only)
{
  char *head = NULL;
  int n;

  n = asprintf (&head, "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                status, type, len, extra);
  if (n == -1)
    return;
  /* A client that went away is no error of the daemon's. */
  if (xs_full_write (fd, head, (size_t) n) == 0 && !head_only)
    xs_full_write (fd, body, len);
  free (head);
}

static void
respond_text (int fd, const char *status, const char *extra,
              const char *text, bool head_only)
{
  respond (fd, status, "text/plain; charset=utf-8", extra, text,
           strlen (text), head_only);
}

/* Answer one request on FD. */
static void
serve_request (struct metrics_listener *l, int fd)
{
  char request[REQUEST_MAX], why[512] = "", *line_end, *method, *target;
  char *version, *save, *text, *query;
  size_t len;
  bool head;

  if (read_request (fd, request, sizeof request) == -1)
    return;
  line_end = strpbrk (request, "\r\n");
  *line_end = '\0';
  method = strtok_r (request, " ", &save);
  target = method ? strtok_r (NULL, " ", &save) : NULL;
  version = target ? strtok_r (NULL, " ", &save) : NULL;
  if (version == NULL || strtok_r (NULL, " ", &save) != NULL
      || strncmp (version, "HTTP/1.", 7) != 0) {
    respond_text (fd, "400 Bad Request", "", "bad request\n", false);
    return;
  }
  head = strcmp (method, "HEAD") == 0;
  if (!head && strcmp (method, "GET") != 0) {
    respond_text (fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                  "only GET and HEAD\n", false);
    return;
  }
  query = strchr (target, '?');
  if (query)
    *query = '\0';
  if (strcmp (target, "/metrics") != 0) {
    respond_text (fd, "404 Not Found", "", "not found: try /metrics\n",
                  head);
    return;
  }
  xs_error_capture_begin (why, sizeof why);
  text = xs_metrics_text (l->store, xs_wall_clock_ns (), &len);
  xs_error_capture_end ();
  if (text == NULL) {
    respond_text (fd, "500 Internal Server Error", "", why, head);
    return;
  }
  respond (fd, "200 OK", XS_METRICS_CONTENT_TYPE, "", text, len, head);
  free (text);
}

static void *
listener_thread (void *opaque)
{
  struct metrics_listener *l = opaque;
  struct timeval timeout = { .tv_sec = CLIENT_TIMEOUT_S };
  struct pollfd fds[2] = {
    { .fd = l->fd, .events = POLLIN },
    { .fd = l->stop_pipe[0], .events = POLLIN },
  };
  int client;

  for (;;) {
    if (poll (fds, 2, -1) == -1) {
      if (errno == EINTR)
        continue;
      xs_error ("metrics listener: %m");
      break;
    }
    if (fds[1].revents)
      break;
    if (!(fds[0].revents & POLLIN))
      continue;
    client = accept4 (l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (client == -1)
      continue;
    setsockopt (client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt (client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    serve_request (l, client);
    close (client);
  }
  return NULL;
}

static void
listener_free (struct metrics_listener *l)
{
  if (l->fd >= 0)
    close (l->fd);
  if (l->stop_pipe[0] >= 0) {
    close (l->stop_pipe[0]);
    close (l->stop_pipe[1]);
  }
  xs_store_close (l->store);
  free (l);
}

struct metrics_listener *
metrics_listen_start (const char *store_path, const char *address,
                      char **bound)
{
  struct metrics_listener *l = calloc (1, sizeof *l);
  sigset_t all, old;
  int e;

  if (l == NULL) {
    xs_error ("cannot listen on %s: %m", address);
    return NULL;
  }
  l->fd = l->stop_pipe[0] = -1;
  if (pipe2 (l->stop_pipe, O_CLOEXEC) == -1) {
    l->stop_pipe[0] = -1;
    xs_error ("cannot listen on %s: %m", address);
    goto fail;
  }
  if ((l->store = xs_store_open (store_path)) == NULL
      || (l->fd = open_listening (address)) == -1)
    goto fail;
  if (bound && (*bound = bound_address (l->fd)) == NULL) {
    xs_error ("cannot listen on %s: %m", address);
    goto fail;
  }
  /* Signals (SIGTERM: stop) are the main thread's. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  e = pthread_create (&l->thread, NULL, listener_thread, l);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (e != 0) {
    errno = e;
    xs_error ("cannot start the metrics listener: %m");
    if (bound) {
      free (*bound);
      *bound = NULL;
    }
    goto fail;
  }
  return l;
 fail:
  listener_free (l);
  return NULL;
}

void
metrics_listen_stop (struct metrics_listener *l)
{
  if (l == NULL)
    return;
  if (xs_full_write (l->stop_pipe[1], "x", 1) == 0)
    pthread_join (l->thread, NULL);
  listener_free (l);
}
