/* xsnap: AWS Signature Version 4 (see sigv4.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/error.h"
#include "base/hash.h"
#include "crypto/sigv4.h"

void
xs_sha256_hex (const void *data, size_t len, char hex[XS_SHA256_HEX_LEN + 1])
{
  unsigned char digest[32];
  unsigned int n = 0;

  EVP_Digest (data, len, digest, &n, EVP_sha256 (), NULL);
  xs_hex_encode (digest, 32, hex);
}

void
xs_sigv4_amz_date (time_t when, char out[17])
{
  struct tm tm;

  gmtime_r (&when, &tm);
  strftime (out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

char *
xs_sigv4_uri_encode (const char *text, int keep_slash)
{
  static const char digits[] = "0123456789ABCDEF";
  size_t len = strlen (text), j = 0;
  char *out = malloc (3 * len + 1);
  unsigned char c;

  if (out == NULL) {
    xs_error ("cannot sign a request: %m");
    return NULL;
  }
  for (size_t i = 0; i < len; i++) {
    c = (unsigned char) text[i];
    if (isalnum (c) || c == '-' || c == '_' || c == '.' || c == '~'
        || (keep_slash && c == '/'))
      out[j++] = (char) c;
    else {
      out[j++] = '%';
      out[j++] = digits[c >> 4];
      out[j++] = digits[c & 15];
    }
  }
  out[j] = '\0';
  return out;
}

/* A growing string; FAILED once anything did not fit. */
struct text {
  char *s;
  size_t len, cap;
  int failed;
};

static void
append (struct text *t, const char *s)
{
  size_t n = strlen (s);
  char *more;

  if (t->failed)
    return;
  if (t->len + n + 1 > t->cap) {
    t->cap = (t->len + n + 1) * 2;
    more = realloc (t->s, t->cap);
    if (more == NULL) {
      t->failed = 1;
      return;
    }
    t->s = more;
  }
  memcpy (t->s + t->len, s, n + 1);
  t->len += n;
}

/* Encoded "name=value" pairs, sorted. */
struct pair {
  char *name, *value;
};

static int
compare_pairs (const void *a, const void *b)
{
  const struct pair *x = a, *y = b;
  int r = strcmp (x->name, y->name);

  return r ? r : strcmp (x->value, y->value);
}

static int
append_query (struct text *t, const struct xs_sigv4_request *req)
{
  struct pair *pairs = calloc (req->nparams ? req->nparams : 1,
                               sizeof *pairs);
  size_t i;
  int r = -1;

  if (pairs == NULL)
    return -1;
  for (i = 0; i < req->nparams; i++) {
    pairs[i].name = xs_sigv4_uri_encode (req->params[i].name, 0);
    pairs[i].value = xs_sigv4_uri_encode (req->params[i].value, 0);
    if (!pairs[i].name || !pairs[i].value)
      goto out;
  }
  qsort (pairs, req->nparams, sizeof *pairs, compare_pairs);
  for (i = 0; i < req->nparams; i++) {
    if (i)
      append (t, "&");
    append (t, pairs[i].name);
    append (t, "=");
    append (t, pairs[i].value);
  }
  r = 0;
 out:
  for (i = 0; i < req->nparams; i++) {
    free (pairs[i].name);
    free (pairs[i].value);
  }
  free (pairs);
  return r;
}

/* Lower-cased, trimmed header lines, sorted by name. */
static int
compare_headers (const void *a, const void *b)
{
  return strcmp (((const struct pair *) a)->name,
                 ((const struct pair *) b)->name);
}

static char *
trimmed (const char *value)
{
  size_t start = 0, end = strlen (value);

  while (start < end && isspace ((unsigned char) value[start]))
    start++;
  while (end > start && isspace ((unsigned char) value[end - 1]))
    end--;
  return strndup (value + start, end - start);
}

static struct pair *
sorted_headers (const struct xs_sigv4_request *req)
{
  struct pair *h = calloc (req->nheaders ? req->nheaders : 1, sizeof *h);
  size_t i;

  if (h == NULL)
    return NULL;
  for (i = 0; i < req->nheaders; i++) {
    h[i].name = strdup (req->headers[i].name);
    h[i].value = trimmed (req->headers[i].value);
    if (h[i].name == NULL || h[i].value == NULL)
      break;
    for (char *p = h[i].name; *p; p++)
      *p = (char) tolower ((unsigned char) *p);
  }
  if (i < req->nheaders) {
    for (size_t j = 0; j <= i && j < req->nheaders; j++) {
      free (h[j].name);
      free (h[j].value);
    }
    free (h);
    return NULL;
  }
  qsort (h, req->nheaders, sizeof *h, compare_headers);
  return h;
}

static void
free_headers (struct pair *h, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free (h[i].name);
    free (h[i].value);
  }
  free (h);
}

static void
append_signed_headers (struct text *t, const struct pair *h, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (i)
      append (t, ";");
    append (t, h[i].name);
  }
}

char *
xs_sigv4_canonical_request (const struct xs_sigv4_request *req)
{
  struct text t = { NULL, 0, 0, 0 };
  struct pair *h = sorted_headers (req);
  char *path = xs_sigv4_uri_encode (req->path, 1);

  if (h == NULL || path == NULL)
    t.failed = 1;
  append (&t, req->method);
  append (&t, "\n");
  append (&t, path ? path : "");
  append (&t, "\n");
  if (!t.failed && append_query (&t, req) == -1)
    t.failed = 1;
  append (&t, "\n");
  for (size_t i = 0; h && i < req->nheaders; i++) {
    append (&t, h[i].name);
    append (&t, ":");
    append (&t, h[i].value);
    append (&t, "\n");
  }
  append (&t, "\n");
  if (h)
    append_signed_headers (&t, h, req->nheaders);
  append (&t, "\n");
  append (&t, req->payload_sha256);
  if (h)
    free_headers (h, req->nheaders);
  free (path);
  if (t.failed) {
    xs_error ("cannot sign a request: out of memory");
    free (t.s);
    return NULL;
  }
  return t.s;
}

static void
hmac (const unsigned char *key, size_t keylen, const char *data,
      unsigned char out[32])
{
  unsigned int n = 32;

  HMAC (EVP_sha256 (), key, (int) keylen, (const unsigned char *) data,
        strlen (data), out, &n);
}

void
xs_sigv4_signing_key (const char *secret, const char *date,
                      const char *region, const char *service,
                      unsigned char key[32])
{
  size_t len = strlen (secret) + 4;
  unsigned char *first = malloc (len + 1), k[32];

  if (first == NULL) {          /* a secret of impossible length */
    memset (key, 0, 32);
    return;
  }
  memcpy (first, "AWS4", 4);
  memcpy (first + 4, secret, len - 4);
  hmac (first, len, date, k);
  hmac (k, 32, region, k);
  hmac (k, 32, service, k);
  hmac (k, 32, "aws4_request", key);
  OPENSSL_cleanse (first, len);
  OPENSSL_cleanse (k, sizeof k);
  free (first);
}

char *
xs_sigv4_authorization (const struct xs_sigv4_request *req)
{
  char amz_date[17], date[9], canonical_hash[XS_SHA256_HEX_LEN + 1];
  char signature[XS_SHA256_HEX_LEN + 1], *canonical, *sts = NULL;
  char *out = NULL;
  unsigned char key[32], mac[32];
  struct text signed_headers = { NULL, 0, 0, 0 };
  struct pair *h;

  canonical = xs_sigv4_canonical_request (req);
  h = sorted_headers (req);
  if (canonical == NULL || h == NULL)
    goto out;
  append_signed_headers (&signed_headers, h, req->nheaders);
  xs_sigv4_amz_date (req->when, amz_date);
  memcpy (date, amz_date, 8);
  date[8] = '\0';
  xs_sha256_hex (canonical, strlen (canonical), canonical_hash);
  if (asprintf (&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                amz_date, date, req->region, req->service,
                canonical_hash) == -1) {
    sts = NULL;
    goto out;
  }
  xs_sigv4_signing_key (req->secret_key, date, req->region, req->service,
                        key);
  hmac (key, sizeof key, sts, mac);
  OPENSSL_cleanse (key, sizeof key);
  xs_hex_encode (mac, 32, signature);
  if (signed_headers.failed
      || asprintf (&out, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/"
                   "aws4_request, SignedHeaders=%s, Signature=%s",
                   req->access_key, date, req->region, req->service,
                   signed_headers.s ? signed_headers.s : "",
                   signature) == -1)
    out = NULL;
 out:
  if (out == NULL && canonical && h)
    xs_error ("cannot sign a request: out of memory");
  if (h)
    free_headers (h, req->nheaders);
  free (signed_headers.s);
  free (canonical);
  free (sts);
  return out;
}
