/* xsnap: the S3 backend (s3://bucket/prefix) for AWS S3, Ceph RGW, MinIO.
 *
 * Each object is an S3 object named PREFIX/KEY.  Requests go out over
 * libcurl and are signed here (sigv4.c) with the real SHA-256 of the
 * payload, so a server that checks it (RGW does) rejects a body damaged
 * on the way.  An S3 PUT replaces the object atomically and is durable
 * when answered, which gives put and sync their meaning for free;
 * put-if-absent is a PUT with "If-None-Match: *" (412 when the key
 * exists).  A server that ignores that header (s3rver, S3 before 2024)
 * overwrites instead: harmless for xsnap, whose objects under one key
 * always have the same content (chunks are named by their hash,
 * manifests by their snapshot, written once by the one copy holding the
 * catalog's claim).
 *
 * Failures that can pass (transport errors, timeouts, 500, 502, 503
 * SlowDown, 504, RequestTimeout) are retried with exponential backoff and
 * jitter, each attempt signed afresh, all within the request's deadline
 * (timeout=); an attempt also fails when it moves less than 1 KiB/s for
 * low-speed-time= or cannot connect within connect-timeout=.  A refusal
 * (403, 404, ...) is final.  The server is outside input: its error text
 * is cleaned before any message, and a listing whose continuation tokens
 * repeat or never end is stopped (list_goes_on).  The object
 * may be used by many threads at once: each request borrows a curl
 * handle from a small pool, so connections are kept alive and requests
 * run in parallel.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "repo/backend-impl.h"
#include "repo/curlapi.h"
#include "base/error.h"
#include "repo/s3config.h"
#include "repo/s3xml.h"
#include "crypto/sigv4.h"

#define IDLE_HANDLES_MAX 16
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define LIST_PAGE_KEYS "1000"
/* A listing ends: 2^20 pages are a billion keys (64 TiB of 64 KiB
 * chunks), and a server that answers page after page with no key while
 * saying there is more is not getting anywhere.
 */
#define LIST_PAGES_MAX (1u << 20)
#define LIST_EMPTY_PAGES_MAX 1000
#define TOKEN_SHOWN_MAX 64
#define EMPTY_SHA256 \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A curl handle and the socket of its connection, when it has one. */
struct s3_handle {
  CURL *curl;
  curl_socket_t fd;
};

struct s3_backend {
  struct xs_curl_api curl;      /* libcurl, loaded by s3_open */
  struct xs_s3_config config;
  const char *url;              /* for messages (the front's copy) */
  pthread_mutex_t lock;         /* protects idle */
  struct s3_handle *idle[IDLE_HANDLES_MAX];
  size_t nidle;
};

/* What to send. */
struct s3_request {
  const char *method;           /* GET PUT HEAD DELETE */
  const char *key;              /* under the prefix; NULL: the bucket */
  const struct xs_sigv4_param *params;
  size_t nparams;
  const void *body;
  size_t body_len;
  bool if_none_match;
};

/* What came back. */
struct s3_response {
  struct s3_handle *handle;     /* while the answer arrives */
  long status;
  char *body;
  size_t len, cap;
  char code[64];                /* the S3 error code, when status >= 300 */
  char message[256];
};

struct upload {
  const char *data;
  size_t left;
};

/* ----- handles ----- */

static struct s3_handle *
take_handle (struct s3_backend *b)
{
  struct s3_handle *h = NULL;

  pthread_mutex_lock (&b->lock);
  if (b->nidle > 0)
    h = b->idle[--b->nidle];
  pthread_mutex_unlock (&b->lock);
  if (h) {
    b->curl.easy_reset (h->curl);
    return h;
  }
  h = calloc (1, sizeof *h);
  if (h == NULL || (h->curl = b->curl.easy_init ()) == NULL) {
    xs_error ("cannot reach %s: cannot create a curl handle", b->url);
    free (h);
    return NULL;
  }
  h->fd = CURL_SOCKET_BAD;
  return h;
}

static void
free_handle (const struct s3_backend *b, struct s3_handle *h)
{
  b->curl.easy_cleanup (h->curl);
  free (h);
}

static void
give_back_handle (struct s3_backend *b, struct s3_handle *h)
{
  pthread_mutex_lock (&b->lock);
  if (b->nidle < IDLE_HANDLES_MAX) {
    b->idle[b->nidle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock (&b->lock);
  if (h)
    free_handle (b, h);
}

/* ----- one attempt ----- */

static size_t
on_upload (char *buffer, size_t size, size_t nitems, void *opaque)
{
  struct upload *u = opaque;
  size_t n = size * nitems < u->left ? size * nitems : u->left;

  memcpy (buffer, u->data, n);
  u->data += n;
  u->left -= n;
  return n;
}

static size_t
on_download (char *data, size_t size, size_t nitems, void *opaque)
{
  struct s3_response *resp = opaque;
  size_t n = size * nitems;

  if (resp->len + n + 1 > resp->cap) {
    size_t cap = resp->cap ? resp->cap : 4096;
    char *body;

    while (cap < resp->len + n + 1)
      cap *= 2;
    body = realloc (resp->body, cap);
    if (body == NULL)
      return 0;                 /* curl fails the transfer: CURLE_WRITE_ERROR */
    resp->body = body;
    resp->cap = cap;
  }
  memcpy (resp->body + resp->len, data, n);
  resp->len += n;
  resp->body[resp->len] = '\0';
  return n;
}

/* Acknowledge what has arrived now, and on new connections (sockopt
 * callback) from the start.  RGW sends a 64 KiB chunk's answer as one
 * full segment and a small tail that its Nagle timer holds until the
 * first is acknowledged, which our delayed ACK puts off by 40 ms: 25 GETs
 * a second on loopback instead of hundreds.  The header callback calls
 * this as the status line arrives; Linux leaves quick-ack mode by itself.
 */
static void
set_quick_ack (curl_socket_t fd)
{
  int one = 1;

  setsockopt (fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

static int
on_new_socket (void *opaque, curl_socket_t fd, curlsocktype purpose)
{
  struct s3_handle *h = opaque;

  h->fd = fd;
  set_quick_ack (fd);
  return CURL_SOCKOPT_OK;
}

static int
on_close_socket (void *opaque, curl_socket_t fd)
{
  struct s3_handle *h = opaque;

  if (h->fd == fd)
    h->fd = CURL_SOCKET_BAD;
  return close (fd);
}

/* Reserve room for the body once its length is known. */
static size_t
on_header (char *line, size_t size, size_t nitems, void *opaque)
{
  struct s3_response *resp = opaque;
  size_t n = size * nitems;
  unsigned long long length;

  if (n > 5 && strncmp (line, "HTTP/", 5) == 0
      && resp->handle->fd != CURL_SOCKET_BAD)
    set_quick_ack (resp->handle->fd);
  if (n > 15 && strncasecmp (line, "content-length:", 15) == 0
      && sscanf (line + 15, " %llu", &length) == 1 && resp->cap == 0
      && length < (1ULL << 33)) {
    resp->body = malloc (length + 1);
    resp->cap = resp->body ? length + 1 : 0;
  }
  return n;
}

/* The object path: "/bucket/prefix/key" or, on a virtual host,
 * "/prefix/key".  Malloc'd.
 */
static char *
request_path (const struct s3_backend *b, const char *key)
{
  const struct xs_s3_config *c = &b->config;
  char *path;
  int r;

  if (key == NULL)
    r = asprintf (&path, "/%s", c->virtual_host ? "" : c->bucket);
  else
    r = asprintf (&path, "/%s%s%s%s%s", c->virtual_host ? "" : c->bucket,
                  c->virtual_host ? "" : "/", c->prefix,
                  c->prefix[0] ? "/" : "", key);
  return r == -1 ? NULL : path;
}

/* scheme://host/encoded-path?encoded-query, and the Host header value. */
static int
request_url (const struct s3_backend *b, const struct s3_request *req,
             const char *path, char **url, char **host)
{
  char *encoded = xs_sigv4_uri_encode (path, 1), *query = NULL;
  size_t i, qlen = 0;

  if (encoded == NULL)
    return -1;
  for (i = 0; i < req->nparams; i++)
    qlen += 3 * (strlen (req->params[i].name)
                 + strlen (req->params[i].value)) + 2;
  query = calloc (1, qlen + 1);
  if (query == NULL)
    goto oom;
  for (i = 0; i < req->nparams; i++) {
    char *name = xs_sigv4_uri_encode (req->params[i].name, 0);
    char *value = name ? xs_sigv4_uri_encode (req->params[i].value, 0) : NULL;

    if (value)
      sprintf (query + strlen (query), "%s%s=%s", i ? "&" : "", name, value);
    free (name);
    free (value);
    if (value == NULL)
      goto reported;
  }
  if (asprintf (host, "%s%s%s", b->config.virtual_host ? b->config.bucket : "",
                b->config.virtual_host ? "." : "", b->config.host) == -1)
    goto oom;
  if (asprintf (url, "%s://%s%s%s%s", b->config.scheme, *host, encoded,
                query[0] ? "?" : "", query) == -1) {
    free (*host);
    goto oom;
  }
  free (encoded);
  free (query);
  return 0;
 oom:
  xs_error ("cannot build a request to %s: out of memory", b->url);
 reported:
  free (encoded);
  free (query);
  return -1;
}

/* Appends "Name: value" to the curl list and the header to sign. */
static int
add_header (const struct xs_curl_api *api, struct curl_slist **list,
            struct xs_sigv4_header *signed_headers,
            size_t *n, const char *name, const char *value, char *storage,
            size_t storage_size)
{
  struct curl_slist *grown;

  snprintf (storage, storage_size, "%s: %s", name, value);
  grown = api->slist_append (*list, storage);
  if (grown == NULL)
    return -1;
  *list = grown;
  signed_headers[*n].name = name;
  signed_headers[*n].value = value;
  (*n)++;
  return 0;
}

/* The signed headers of one attempt, and libcurl's list of them. */
static struct curl_slist *
signed_header_list (const struct s3_backend *b, const struct s3_request *req,
                    const char *path, const char *host,
                    const char *payload_hash)
{
  const struct xs_s3_config *c = &b->config;
  const struct xs_curl_api *api = &b->curl;
  struct xs_sigv4_header h[5];
  char amz_date[17], lines[5][4096], *auth = NULL, *auth_line = NULL;
  struct curl_slist *list = NULL, *grown;
  size_t n = 0;
  time_t now = time (NULL);
  struct xs_sigv4_request sig = {
    .method = req->method, .params = req->params, .nparams = req->nparams,
    .payload_sha256 = payload_hash, .region = c->region, .service = "s3",
    .access_key = c->access_key, .secret_key = c->secret_key, .when = now,
    .path = path,
  };

  xs_sigv4_amz_date (now, amz_date);
  if (c->session_token && strlen (c->session_token) > sizeof lines[3] - 32) {
    xs_error ("cannot sign a request to %s: the session token is longer "
              "than %zu bytes", b->url, sizeof lines[3] - 32);
    goto fail_reported;
  }
  if (add_header (api, &list, h, &n, "host", host, lines[0], sizeof lines[0])
      || add_header (api, &list, h, &n, "x-amz-date", amz_date, lines[1],
                     sizeof lines[1])
      || add_header (api, &list, h, &n, "x-amz-content-sha256", payload_hash,
                     lines[2], sizeof lines[2])
      || (c->session_token
          && add_header (api, &list, h, &n, "x-amz-security-token",
                         c->session_token, lines[3], sizeof lines[3]))
      || (req->if_none_match
          && add_header (api, &list, h, &n, "if-none-match", "*", lines[4],
                         sizeof lines[4])))
    goto fail;
  sig.headers = h;
  sig.nheaders = n;
  auth = xs_sigv4_authorization (&sig);
  if (auth == NULL)
    goto fail_reported;
  if (asprintf (&auth_line, "Authorization: %s", auth) == -1
      || (grown = api->slist_append (list, auth_line)) == NULL)
    goto fail;
  list = grown;
  /* No "100-continue" round trip before each upload. */
  if ((grown = api->slist_append (list, "Expect:")) == NULL)
    goto fail;
  list = grown;
  free (auth_line);
  free (auth);
  return list;
 fail:
  xs_error ("cannot build a request to %s: out of memory", b->url);
 fail_reported:
  free (auth_line);
  free (auth);
  api->slist_free_all (list);
  return NULL;
}

static void
set_method (const struct xs_curl_api *api, CURL *curl,
            const struct s3_request *req, struct upload *up)
{
  if (strcmp (req->method, "PUT") == 0) {
    api->easy_setopt (curl, CURLOPT_UPLOAD, 1L);
    api->easy_setopt (curl, CURLOPT_READFUNCTION, on_upload);
    api->easy_setopt (curl, CURLOPT_READDATA, up);
    api->easy_setopt (curl, CURLOPT_INFILESIZE_LARGE,
                      (curl_off_t) req->body_len);
  }
  else if (strcmp (req->method, "HEAD") == 0)
    api->easy_setopt (curl, CURLOPT_NOBODY, 1L);
  else if (strcmp (req->method, "GET") != 0)
    api->easy_setopt (curl, CURLOPT_CUSTOMREQUEST, req->method);
}

/* One attempt.  Returns the curl result; resp->status is the HTTP status
 * when the result is CURLE_OK.  -1 (as a CURLcode never used) when the
 * request could not even be built (reported).
 */
static int
attempt (struct s3_backend *b, struct s3_handle *h,
         const struct s3_request *req, const char *path,
         const char *payload_hash, long allowed_ms,
         struct s3_response *resp, char errbuf[CURL_ERROR_SIZE])
{
  const struct xs_curl_api *api = &b->curl;
  struct upload up = { req->body, req->body_len };
  CURL *curl = h->curl;
  struct curl_slist *headers = NULL;
  char *url = NULL, *host = NULL;
  CURLcode rc;

  if (request_url (b, req, path, &url, &host) == -1)
    return -1;
  headers = signed_header_list (b, req, path, host, payload_hash);
  if (headers == NULL) {
    free (url);
    free (host);
    return -1;
  }
  errbuf[0] = '\0';
  api->easy_setopt (curl, CURLOPT_URL, url);
  api->easy_setopt (curl, CURLOPT_HTTPHEADER, headers);
  api->easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  api->easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
  api->easy_setopt (curl, CURLOPT_CONNECTTIMEOUT,
                    (long) b->config.connect_timeout);
  api->easy_setopt (curl, CURLOPT_LOW_SPEED_LIMIT,
                    (long) XS_S3_LOW_SPEED_LIMIT);
  api->easy_setopt (curl, CURLOPT_LOW_SPEED_TIME,
                    (long) b->config.low_speed_time);
  api->easy_setopt (curl, CURLOPT_TIMEOUT_MS, allowed_ms > 0 ? allowed_ms : 1);
  api->easy_setopt (curl, CURLOPT_WRITEFUNCTION, on_download);
  api->easy_setopt (curl, CURLOPT_WRITEDATA, resp);
  api->easy_setopt (curl, CURLOPT_HEADERFUNCTION, on_header);
  api->easy_setopt (curl, CURLOPT_HEADERDATA, resp);
  api->easy_setopt (curl, CURLOPT_SOCKOPTFUNCTION, on_new_socket);
  api->easy_setopt (curl, CURLOPT_SOCKOPTDATA, h);
  api->easy_setopt (curl, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  api->easy_setopt (curl, CURLOPT_CLOSESOCKETDATA, h);
  resp->handle = h;
  if (b->config.ca_bundle)
    api->easy_setopt (curl, CURLOPT_CAINFO, b->config.ca_bundle);
  set_method (api, curl, req, &up);
  rc = api->easy_perform (curl);
  if (rc == CURLE_OK)
    api->easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &resp->status);
  api->slist_free_all (headers);
  free (url);
  free (host);
  return rc;
}

static bool
status_may_pass (const struct s3_response *resp)
{
  switch (resp->status) {
  case 500: case 502: case 503: case 504:
    return true;
  case 400:
    return strcmp (resp->code, "RequestTimeout") == 0;
  case 409:                     /* a concurrent conditional write */
    return strcmp (resp->code, "ConditionalRequestConflict") == 0
      || strcmp (resp->code, "OperationAborted") == 0;
  default:
    return false;
  }
}

/* The pause before retry number RETRY (from 0), in milliseconds. */
static long
backoff_ms (unsigned retry)
{
  unsigned ms = BACKOFF_FIRST_MS << (retry < 6 ? retry : 6);
  uint32_t jitter = 0;

  if (ms > BACKOFF_MAX_MS)
    ms = BACKOFF_MAX_MS;
  if (getrandom (&jitter, sizeof jitter, GRND_NONBLOCK) != sizeof jitter)
    jitter = (uint32_t) time (NULL);
  return ms / 2 + jitter % (ms / 2 + 1);  /* between half and all of it */
}

static void
sleep_ms (long ms)
{
  struct timespec ts = { .tv_sec = ms / 1000,
                         .tv_nsec = (ms % 1000) * 1000000 };

  nanosleep (&ts, NULL);
}

static long
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static void
response_reset (struct s3_response *resp)
{
  free (resp->body);
  memset (resp, 0, sizeof *resp);
}

/* Report that no answer came (curl's RC), once, and set errno to EIO:
 * to the caller, and to an NBD client, a transport failure is an I/O
 * error.
 */
static void
report_no_answer (const struct s3_backend *b, const char *what, int rc,
                  char errbuf[CURL_ERROR_SIZE], unsigned attempts,
                  bool out_of_time)
{
  const struct xs_s3_config *c = &b->config;
  char waits[160] = "";

  xs_s3xml_clean_text (errbuf);
  if (rc == CURLE_OPERATION_TIMEDOUT || out_of_time)
    snprintf (waits, sizeof waits, "; timed out (timeout=%u s for the "
              "request, low-speed-time=%u s below %u bytes/s, "
              "connect-timeout=%u s)", c->timeout, c->low_speed_time,
              XS_S3_LOW_SPEED_LIMIT, c->connect_timeout);
  xs_error ("%s: %s%s%s (after %u attempt%s)%s", what,
            b->curl.easy_strerror (rc), errbuf[0] ? ": " : "", errbuf,
            attempts, attempts == 1 ? "" : "s", waits);
  errno = EIO;
}

/* Send req, retrying what may pass, within the request's timeout (all
 * attempts and pauses).  Returns 0 with resp holding the final answer
 * (any status; for status >= 300 code and message are filled), or -1
 * with an error reported (WHAT names the operation) when no answer came.
 * The caller frees resp->body.
 */
static int
perform (struct s3_backend *b, const struct s3_request *req,
         struct s3_response *resp, const char *what)
{
  char payload_hash[XS_SHA256_HEX_LEN + 1], errbuf[CURL_ERROR_SIZE];
  struct s3_handle *h;
  char *path = request_path (b, req->key);
  long deadline = now_ms () + b->config.timeout * 1000L, pause;
  unsigned retry;
  bool out_of_time = false;
  int rc = CURLE_OK;

  memset (resp, 0, sizeof *resp);
  if (path == NULL) {
    xs_error ("%s: out of memory", what);
    return -1;
  }
  h = take_handle (b);
  if (h == NULL) {
    free (path);
    return -1;
  }
  if (req->body_len > 0)
    xs_sha256_hex (req->body, req->body_len, payload_hash);
  else
    strcpy (payload_hash, EMPTY_SHA256);
  for (retry = 0;; retry++) {
    response_reset (resp);
    rc = attempt (b, h, req, path, payload_hash, deadline - now_ms (), resp,
                  errbuf);
    if (rc == -1)
      break;
    if (rc == CURLE_OK && resp->status >= 300)
      xs_s3xml_parse_error (resp->body, resp->len, resp->code,
                            sizeof resp->code, resp->message,
                            sizeof resp->message);
    if (rc == CURLE_OK && !status_may_pass (resp))
      break;
    if (rc == CURLE_WRITE_ERROR || retry >= b->config.retries)
      break;
    pause = backoff_ms (retry);
    if (now_ms () + pause >= deadline) {
      out_of_time = true;
      break;
    }
    xs_debug ("%s: %s, retrying", what,
              rc != CURLE_OK ? b->curl.easy_strerror (rc) : resp->code);
    sleep_ms (pause);
  }
  give_back_handle (b, h);
  free (path);
  if (rc == CURLE_OK)
    return 0;
  if (rc != -1)
    report_no_answer (b, what, rc, errbuf, retry + 1, out_of_time);
  response_reset (resp);
  return -1;
}

/* What a refusal usually means, for the codes people meet first. */
static const char *
hint_for (const char *code)
{
  static const struct {
    const char *code;
    const char *hint;
  } hints[] = {
    { "SignatureDoesNotMatch",
      " (the secret key is not the one of this access key)" },
    { "InvalidAccessKeyId", " (the server has no such access key)" },
    { "RequestTimeTooSkewed", " (this machine's clock is off)" },
    { "AccessDenied", " (the keys lack a permission on the bucket)" },
  };

  for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
    if (strcmp (code, hints[i].code) == 0)
      return hints[i].hint;
  return "";
}

/* Report a final answer that is not what the caller wanted. */
static void
report_status (const struct s3_backend *b, const struct s3_response *resp,
               const char *what)
{
  const char *meaning = "";

  switch (resp->status) {
  case 403: meaning = "access denied: "; break;
  case 404: meaning = "not found: "; break;
  case 412: meaning = "precondition failed: "; break;
  }
  if (strcmp (resp->code, "NoSuchBucket") == 0)
    xs_error ("%s: bucket '%s' does not exist", what, b->config.bucket);
  else
    xs_error ("%s: %sHTTP %ld%s%s%s%s%s", what, meaning, resp->status,
              resp->code[0] ? " " : "", resp->code, hint_for (resp->code),
              resp->message[0] ? ": " : "", resp->message);
  errno = resp->status == 403 ? EACCES : EIO;
}

/* ----- operations ----- */

#define WHAT_MAX (XS_BACKEND_KEY_MAX + 256)

/* Sends REQ about its key; WHAT becomes "cannot VERB KEY PREP URL" for
 * the messages.  0 with resp (caller frees its body), or -1 (reported).
 */
static int
object_request (struct s3_backend *b, const struct s3_request *req,
                const char *verb, const char *prep, struct s3_response *resp,
                char what[WHAT_MAX])
{
  snprintf (what, WHAT_MAX, "cannot %s %s %s %s", verb, req->key, prep,
            b->url);
  return perform (b, req, resp, what);
}

/* The end of an operation: R, with a refusal reported when R is -1. */
static int
finish (const struct s3_backend *b, struct s3_response *resp,
        const char *what, int r)
{
  if (r == -1)
    report_status (b, resp, what);
  free (resp->body);
  return r;
}

/* A 404 about the key, not about the bucket. */
static bool
key_not_found (const struct s3_response *resp)
{
  return resp->status == 404 && strcmp (resp->code, "NoSuchBucket") != 0;
}

static int
s3_put (void *impl, const char *key, const void *data, size_t len,
        bool durable, bool if_absent)
{
  struct s3_backend *b = impl;
  struct s3_request req = { .method = "PUT", .key = key, .body = data,
                            .body_len = len, .if_none_match = if_absent };
  struct s3_response resp;
  char what[WHAT_MAX];

  if (object_request (b, &req, "store", "in", &resp, what) == -1)
    return -1;
  return finish (b, &resp, what,
                 resp.status == 200 ? 1
                 : resp.status == 412 && if_absent ? 0 : -1);
}

static int
s3_get (void *impl, const char *key, void **data, size_t *len)
{
  struct s3_backend *b = impl;
  struct s3_request req = { .method = "GET", .key = key };
  struct s3_response resp;
  char what[WHAT_MAX];

  if (object_request (b, &req, "read", "from", &resp, what) == -1)
    return -1;
  if (resp.status != 200)
    return finish (b, &resp, what, key_not_found (&resp) ? 1 : -1);
  if (resp.body == NULL && (resp.body = malloc (1)) == NULL) {
    xs_error ("%s: out of memory", what);
    return -1;
  }
  *data = resp.body;
  *len = resp.len;
  return 0;
}

static int
s3_exists (void *impl, const char *key)
{
  struct s3_backend *b = impl;
  struct s3_request req = { .method = "HEAD", .key = key };
  struct s3_response resp;
  char what[WHAT_MAX];

  if (object_request (b, &req, "look for", "in", &resp, what) == -1)
    return -1;
  return finish (b, &resp, what,
                 resp.status == 200 ? 1 : resp.status == 404 ? 0 : -1);
}

static int
s3_delete (void *impl, const char *key)
{
  struct s3_backend *b = impl;
  struct s3_request req = { .method = "DELETE", .key = key };
  struct s3_response resp;
  char what[WHAT_MAX];

  if (object_request (b, &req, "delete", "from", &resp, what) == -1)
    return -1;
  return finish (b, &resp, what,
                 resp.status == 200 || resp.status == 204
                 || key_not_found (&resp) ? 0 : -1);
}

/* ----- listing ----- */

struct list_walk {
  const char *strip;            /* "prefix/" of the backend, or "" */
  size_t strip_len;
  xs_backend_list_fn fn;
  void *opaque;
};

/* Pass on keys under the backend's prefix that are valid keys; others
 * (written there by something else) are not ours to list.
 */
static int
on_listed_key (const char *key, void *opaque)
{
  struct list_walk *w = opaque;

  if (strncmp (key, w->strip, w->strip_len) != 0
      || xs_backend_key_problem (key + w->strip_len) != NULL)
    return 0;
  return w->fn (key + w->strip_len, w->opaque);
}

/* One page of ListObjectsV2.  Returns 0, fn's non-zero, or -1. */
static int
list_page (struct s3_backend *b, const char *s3_prefix, const char *token,
           const char *max_keys, struct list_walk *w,
           struct xs_s3xml_listing *listing, const char *what)
{
  struct xs_sigv4_param params[4] = {
    { "list-type", "2" }, { "max-keys", max_keys }, { "prefix", s3_prefix },
    { "continuation-token", token },
  };
  struct s3_request req = { .method = "GET", .params = params,
                            .nparams = token ? 4 : 3 };
  struct s3_response resp;
  int r = -1;

  if (perform (b, &req, &resp, what) == -1)
    return -1;
  if (resp.status != 200)
    return finish (b, &resp, what, -1);
  r = xs_s3xml_parse_listing (what, resp.body ? resp.body : "", resp.len,
                              on_listed_key, w, listing);
  if (r == -1)
    errno = EIO;
  free (resp.body);
  return r;
}

/* Where a listing is, to see that it goes somewhere: a token seen again
 * means the server leads in a circle (Brent's cycle detection: the token
 * of page 2^k is kept and compared with those after it, which finds any
 * cycle within twice its length and start, in constant memory), and
 * pages are bounded in number and in how many may in a row be empty.
 */
struct list_progress {
  char *kept;                   /* the token kept, or NULL */
  unsigned since_kept;          /* pages since it was kept */
  unsigned horizon;             /* when to keep the next one */
  unsigned pages;
  unsigned empty_pages;         /* truncated pages without a key, in a row */
};

/* After a truncated page: 0 when the listing may go on, -1 (reported)
 * when it would not end.
 */
static int
list_goes_on (struct list_progress *p, const struct xs_s3xml_listing *l,
              const char *what)
{
  p->pages++;
  p->empty_pages = l->keys ? 0 : p->empty_pages + 1;
  if (p->kept && strcmp (p->kept, l->next_token) == 0) {
    xs_error ("%s: the server sent continuation token '%.*s%s' again "
              "after %u pages: the listing would never end", what,
              TOKEN_SHOWN_MAX, l->next_token,
              strlen (l->next_token) > TOKEN_SHOWN_MAX ? "..." : "",
              p->pages);
    goto never_ends;
  }
  if (p->pages >= LIST_PAGES_MAX || p->empty_pages >= LIST_EMPTY_PAGES_MAX) {
    xs_error ("%s: the listing did not end after %u pages (%u of them "
              "empty in a row)", what, p->pages, p->empty_pages);
    goto never_ends;
  }
  if (++p->since_kept >= p->horizon) {
    free (p->kept);
    if ((p->kept = strdup (l->next_token)) == NULL) {
      xs_error ("%s: out of memory", what);
      return -1;
    }
    p->since_kept = 0;
    p->horizon *= 2;
  }
  return 0;
 never_ends:
  errno = EIO;
  return -1;
}

static int
list_pages (struct s3_backend *b, const char *folder, const char *max_keys,
            xs_backend_list_fn fn, void *opaque, const char *what)
{
  const struct xs_s3_config *c = &b->config;
  struct xs_s3xml_listing listing = { 0 };
  struct list_walk w = { .fn = fn, .opaque = opaque };
  struct list_progress progress = { .horizon = 1 };
  char *strip = NULL, *s3_prefix = NULL, *token = NULL;
  int r = -1;

  if (asprintf (&strip, "%s%s", c->prefix, c->prefix[0] ? "/" : "") == -1
      || asprintf (&s3_prefix, "%s%s%s", strip, folder,
                   folder[0] ? "/" : "") == -1) {
    xs_error ("%s: out of memory", what);
    goto out;
  }
  w.strip = strip;
  w.strip_len = strlen (strip);
  do {
    r = list_page (b, s3_prefix, token, max_keys, &w, &listing, what);
    free (token);
    token = listing.next_token;
    if (r == 0 && listing.truncated)
      r = list_goes_on (&progress, &listing, what);
  } while (r == 0 && listing.truncated);
 out:
  free (progress.kept);
  free (token);
  free (strip);
  free (s3_prefix);
  return r;
}

static int
s3_list (void *impl, const char *prefix, xs_backend_list_fn fn, void *opaque)
{
  struct s3_backend *b = impl;
  char what[XS_BACKEND_KEY_MAX + 64];

  snprintf (what, sizeof what, "cannot list %s%s in %s", prefix,
            prefix[0] ? "/" : "(everything)", b->url);
  return list_pages (b, prefix, LIST_PAGE_KEYS, fn, opaque, what);
}

static int
s3_sync (void *impl)
{
  return 0;                     /* every answered PUT is durable */
}

static long
s3_remove_stale_temps (void *impl, unsigned older_than_seconds)
{
  return 0;                     /* S3 objects appear whole: no temps */
}

/* ----- open and close ----- */

static int
ignore_key (const char *key, void *opaque)
{
  return 0;
}

/* One page of at most one key: the endpoint answers, the bucket exists,
 * the keys are right.
 */
static int
probe (struct s3_backend *b, const char *what)
{
  struct xs_s3xml_listing listing;
  struct list_walk w = { .strip = "", .fn = ignore_key };
  char *s3_prefix = NULL;
  int r;

  if (asprintf (&s3_prefix, "%s%s", b->config.prefix,
                b->config.prefix[0] ? "/" : "") == -1) {
    xs_error ("%s: out of memory", what);
    return -1;
  }
  r = list_page (b, s3_prefix, NULL, "1", &w, &listing, what);
  if (r == 0)
    free (listing.next_token);
  free (s3_prefix);
  return r;
}

static void
s3_close (void *impl)
{
  struct s3_backend *b = impl;
  size_t i;

  if (b == NULL)
    return;
  for (i = 0; i < b->nidle; i++)
    free_handle (b, b->idle[i]);
  pthread_mutex_destroy (&b->lock);
  xs_s3_config_free (&b->config);
  xs_curl_api_unload (&b->curl);
  free (b);
}

static int
s3_open (const char *url, const char *location, void **impl)
{
  struct s3_backend *b = calloc (1, sizeof *b);
  char what[512];

  if (b == NULL) {
    xs_error ("cannot open '%s': %m", url);
    return -1;
  }
  pthread_mutex_init (&b->lock, NULL);
  b->url = url;
  if (xs_s3_config_parse (url, &b->config) == -1
      || xs_curl_api_load (&b->curl) == -1) {
    s3_close (b);
    return -1;
  }
  /* Ask once, so that a wrong endpoint, bucket or key is reported when
   * the region is added rather than in the middle of a copy.
   */
  snprintf (what, sizeof what, "cannot open '%s' at %s://%s", url,
            b->config.scheme, b->config.host);
  if (probe (b, what) == -1) {
    s3_close (b);
    return -1;
  }
  *impl = b;
  return 0;
}

const struct xs_backend_ops xs_backend_s3_ops = {
  .scheme = "s3",
  .remote = true,
  .open = s3_open,
  .close = s3_close,
  .put = s3_put,
  .get = s3_get,
  .exists = s3_exists,
  .list = s3_list,
  .delete = s3_delete,
  .sync = s3_sync,
  .remove_stale_temps = s3_remove_stale_temps,
};
