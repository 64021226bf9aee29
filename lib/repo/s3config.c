/* xsnap: where an S3 backend's bucket is and how to sign for it
 * (see s3config.h).
 */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/backend-impl.h"
#include "base/error.h"
#include "repo/s3config.h"

/* The query parameters a URL may carry, decoded (NULL when absent). */
struct url_options {
  char *endpoint;
  char *region;
  char *style;
  char *profile;
  char *retries;
  char *timeout;
  char *low_speed_time;
  char *connect_timeout;
};

/* The options a URL may carry; none of them holds a secret. */
static const char *const option_names[] = {
  "endpoint", "region", "style", "profile", "retries", "timeout",
  "low-speed-time", "connect-timeout",
};
#define NOPTIONS (sizeof option_names / sizeof option_names[0])
#define OPTIONS_KNOWN "endpoint, region, style, profile, retries, timeout, " \
  "low-speed-time, connect-timeout"

static const char *
env (const char *name)
{
  const char *value = getenv (name);

  return value && *value ? value : NULL;
}

static void
free_options (struct url_options *o)
{
  free (o->endpoint);
  free (o->region);
  free (o->style);
  free (o->profile);
  free (o->retries);
  free (o->timeout);
  free (o->low_speed_time);
  free (o->connect_timeout);
}

/* Parse "name=value&..." into *o.  -1 with an error naming the URL
 * (SHOWN, redacted) and the option, without its value.
 */
static int
parse_query (const char *shown, const char *query, struct url_options *o)
{
  char **slots[NOPTIONS] = { &o->endpoint, &o->region, &o->style,
                             &o->profile, &o->retries, &o->timeout,
                             &o->low_speed_time, &o->connect_timeout };
  const char *p = query;

  while (*p) {
    const char *amp = strchrnul (p, '&'), *eq = memchr (p, '=', amp - p);
    size_t i, name_len = eq ? (size_t) (eq - p) : 0;

    if (eq == NULL) {
      xs_error ("unsupported backend URL '%s': an option without '=' "
                "(known: " OPTIONS_KNOWN ")", shown);
      return -1;
    }
    for (i = 0; i < NOPTIONS; i++)
      if (strlen (option_names[i]) == name_len
          && memcmp (option_names[i], p, name_len) == 0)
        break;
    if (i == NOPTIONS) {
      xs_error ("unsupported backend URL '%s': unknown option '%.*s' "
                "(known: " OPTIONS_KNOWN ")", shown,
                (int) (name_len > 64 ? 64 : name_len), p);
      return -1;
    }
    free (*slots[i]);
    *slots[i] = xs_backend_url_decode (eq + 1, amp - eq - 1);
    if (*slots[i] == NULL) {
      xs_error ("unsupported backend URL '%s': bad %%-escape in option "
                "'%s'", shown, option_names[i]);
      return -1;
    }
    p = *amp ? amp + 1 : amp;
  }
  return 0;
}

/* Bucket names as S3 allows them: 3-63 of [a-z0-9.-], starting and ending
 * with a letter or digit.
 */
static bool
bucket_is_valid (const char *b)
{
  size_t i, len = strlen (b);

  if (len < 3 || len > 63 || !isalnum ((unsigned char) b[0])
      || !isalnum ((unsigned char) b[len - 1]))
    return false;
  for (i = 0; i < len; i++)
    if (!(islower ((unsigned char) b[i]) || isdigit ((unsigned char) b[i])
          || b[i] == '.' || b[i] == '-'))
      return false;
  return true;
}

/* Split "BUCKET[/PREFIX]" (before any '?') into the config. */
static int
parse_location (const char *url, const char *location, size_t len,
                struct xs_s3_config *c)
{
  const char *slash = memchr (location, '/', len), *problem;
  size_t prefix_len;

  if (memchr (location, '@', len)) {
    xs_error ("unsupported backend URL '%s': user information ('...@') "
              "is not allowed: the keys come from the environment or a "
              "profile", url);
    return -1;
  }

  c->bucket = strndup (location, slash ? (size_t) (slash - location) : len);
  prefix_len = slash ? len - (slash + 1 - location) : 0;
  while (prefix_len > 0 && slash[prefix_len] == '/')
    prefix_len--;
  c->prefix = strndup (slash ? slash + 1 : "", prefix_len);
  if (c->bucket == NULL || c->prefix == NULL) {
    xs_error ("cannot open '%s': %m", url);
    return -1;
  }
  if (!bucket_is_valid (c->bucket)) {
    xs_error ("unsupported backend URL '%s': '%s' is not a bucket name "
              "(3 to 63 of a-z, 0-9, '.' and '-')", url, c->bucket);
    return -1;
  }
  if (c->prefix[0] && (problem = xs_backend_key_problem (c->prefix))) {
    xs_error ("unsupported backend URL '%s': bad prefix '%s': %s",
              url, c->prefix, problem);
    return -1;
  }
  return 0;
}

/* A host name or address with an optional port: letters, digits, '.',
 * '-', ':' and IPv6 brackets, not starting with ':' (it goes into the
 * Host header as it is).
 */
static bool
host_is_valid (const char *host, size_t len)
{
  if (host[0] == ':')
    return false;
  for (size_t i = 0; i < len; i++)
    if (!(isalnum ((unsigned char) host[i]) || strchr (".-:[]", host[i])))
      return false;
  return true;
}

/* "http[s]://host[:port][/]" into scheme and host. */
static int
parse_endpoint (const char *url, const char *endpoint, struct xs_s3_config *c)
{
  const char *host = strstr (endpoint, "://");
  size_t len;

  if (host == NULL
      || !((host - endpoint == 4 && strncmp (endpoint, "http", 4) == 0)
           || (host - endpoint == 5 && strncmp (endpoint, "https", 5) == 0)))
    goto bad;
  host += 3;
  if (strchr (host, '@')) {
    xs_error ("cannot open '%s': the endpoint must not carry user "
              "information ('...@'): the keys come from the environment or "
              "a profile", url);
    return -1;
  }
  len = strcspn (host, "/?#@");
  if (len == 0 || (host[len] != '\0' && strcmp (host + len, "/") != 0)
      || !host_is_valid (host, len))
    goto bad;
  c->scheme = strndup (endpoint, strstr (endpoint, "://") - endpoint);
  c->host = strndup (host, len);
  if (c->scheme == NULL || c->host == NULL) {
    xs_error ("cannot open '%s': %m", url);
    return -1;
  }
  return 0;
 bad:
  xs_error ("cannot open '%s': endpoint '%s' is not "
            "http[s]://HOST[:PORT]", url, endpoint);
  return -1;
}

static int
choose_endpoint (const char *url, const struct url_options *o,
                 struct xs_s3_config *c)
{
  const char *endpoint = o->endpoint;
  char *aws = NULL;
  int r;

  if (endpoint == NULL)
    endpoint = env ("AWS_ENDPOINT_URL_S3");
  if (endpoint == NULL)
    endpoint = env ("AWS_ENDPOINT_URL");
  if (endpoint == NULL) {
    if (asprintf (&aws, "https://s3.%s.amazonaws.com", c->region) == -1) {
      xs_error ("cannot open '%s': %m", url);
      return -1;
    }
    endpoint = aws;
  }
  r = parse_endpoint (url, endpoint, c);
  free (aws);
  return r;
}

static int
choose_style (const char *url, const struct url_options *o,
              struct xs_s3_config *c)
{
  const char *host_end;

  if (o->style == NULL) {
    /* Virtual hosts for AWS itself, whose path style is deprecated,
     * unless the bucket has a '.' (AWS's wildcard certificate would not
     * cover bucket.with.dots.s3...); path style for everything else
     * (RGW, MinIO, addresses).
     */
    host_end = c->host + strcspn (c->host, ":");
    c->virtual_host = host_end - c->host >= 14
      && strncmp (host_end - 14, ".amazonaws.com", 14) == 0
      && strchr (c->bucket, '.') == NULL;
    return 0;
  }
  if (strcmp (o->style, "path") == 0)
    c->virtual_host = false;
  else if (strcmp (o->style, "virtual") == 0) {
    if (strchr (c->bucket, '.')) {
      xs_error ("cannot open '%s': a bucket with '.' in its name needs "
                "style=path", url);
      return -1;
    }
    c->virtual_host = true;
  }
  else {
    xs_error ("unsupported backend URL '%s': style must be path or "
              "virtual, not '%s'", url, o->style);
    return -1;
  }
  return 0;
}

/* ----- the shared credentials file ----- */

static char *
trim (char *s)
{
  char *end;

  while (isspace ((unsigned char) *s))
    s++;
  end = s + strlen (s);
  while (end > s && isspace ((unsigned char) end[-1]))
    *--end = '\0';
  return s;
}

static int
set_secret (char **slot, const char *value)
{
  free (*slot);
  *slot = strdup (value);
  return *slot ? 0 : -1;
}

/* Read PROFILE's keys from FILE.  Returns 0 (found, keys set), 1 (file or
 * profile missing), -1 (error reported).
 */
static int
read_credentials_file (const char *url, const char *file,
                       const char *profile, struct xs_s3_config *c)
{
  FILE *fp = fopen (file, "re");
  char *line = NULL, *s, *eq;
  size_t cap = 0;
  bool in_profile = false, found = false;
  int r = 0;

  if (fp == NULL) {
    if (errno == ENOENT)
      return 1;
    xs_error ("cannot open '%s': cannot read credentials file %s: %m",
              url, file);
    return -1;
  }
  while (r == 0 && getline (&line, &cap, fp) != -1) {
    s = trim (line);
    if (*s == '\0' || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *close = strchr (s, ']');

      if (close)
        *close = '\0';
      in_profile = strcmp (trim (s + 1), profile) == 0;
      found |= in_profile;
      continue;
    }
    eq = strchr (s, '=');
    if (!in_profile || eq == NULL)
      continue;
    *eq = '\0';
    s = trim (s);
    if (strcmp (s, "aws_access_key_id") == 0)
      r = set_secret (&c->access_key, trim (eq + 1));
    else if (strcmp (s, "aws_secret_access_key") == 0)
      r = set_secret (&c->secret_key, trim (eq + 1));
    else if (strcmp (s, "aws_session_token") == 0)
      r = set_secret (&c->session_token, trim (eq + 1));
  }
  if (line)
    explicit_bzero (line, cap);
  free (line);
  fclose (fp);
  if (r == -1) {
    xs_error ("cannot open '%s': %m", url);
    return -1;
  }
  return found ? 0 : 1;
}

static int
choose_credentials (const char *url, const struct url_options *o,
                    struct xs_s3_config *c)
{
  const char *profile = o->profile, *file = env ("AWS_SHARED_CREDENTIALS_FILE");
  char *home_file = NULL;
  int r;

  if (profile == NULL && env ("AWS_ACCESS_KEY_ID")) {
    if (env ("AWS_SECRET_ACCESS_KEY") == NULL) {
      xs_error ("cannot open '%s': AWS_ACCESS_KEY_ID is set but "
                "AWS_SECRET_ACCESS_KEY is not", url);
      return -1;
    }
    if (set_secret (&c->access_key, env ("AWS_ACCESS_KEY_ID")) == -1
        || set_secret (&c->secret_key, env ("AWS_SECRET_ACCESS_KEY")) == -1
        || (env ("AWS_SESSION_TOKEN")
            && set_secret (&c->session_token,
                           env ("AWS_SESSION_TOKEN")) == -1)) {
      xs_error ("cannot open '%s': %m", url);
      return -1;
    }
    return 0;
  }
  if (profile == NULL)
    profile = env ("AWS_PROFILE") ? env ("AWS_PROFILE") : "default";
  if (file == NULL && env ("HOME")) {
    if (asprintf (&home_file, "%s/.aws/credentials", env ("HOME")) == -1) {
      xs_error ("cannot open '%s': %m", url);
      return -1;
    }
    file = home_file;
  }
  r = file ? read_credentials_file (url, file, profile, c) : 1;
  if (r == 0 && (c->access_key == NULL || c->secret_key == NULL)) {
    xs_error ("cannot open '%s': profile '%s' of %s lacks "
              "aws_access_key_id or aws_secret_access_key", url, profile,
              file);
    r = -1;
  }
  else if (r == 1 && o->profile)
    xs_error ("cannot open '%s': no profile '%s' in %s", url, profile,
              file ? file : "~/.aws/credentials");
  else if (r == 1)
    xs_error ("cannot open '%s': no S3 credentials: set AWS_ACCESS_KEY_ID "
              "and AWS_SECRET_ACCESS_KEY, or give profile '%s' in %s",
              url, profile, file ? file : "~/.aws/credentials");
  free (home_file);
  return r == 0 ? 0 : -1;
}

/* Option NAME's TEXT as a number from MIN to MAX into *out; DEFAULT
 * when absent.
 */
static int
choose_number (const char *url, const char *name, const char *text,
               unsigned min, unsigned max, unsigned default_value,
               unsigned *out)
{
  char *end;
  unsigned long n;

  *out = default_value;
  if (text == NULL)
    return 0;
  errno = 0;
  n = strtoul (text, &end, 10);
  if (errno || !isdigit ((unsigned char) text[0]) || *end || n < min
      || n > max) {
    xs_error ("unsupported backend URL '%s': %s must be %u to %u, "
              "not '%s'", url, name, min, max, text);
    return -1;
  }
  *out = n;
  return 0;
}

/* How many times and how long a request may wait. */
static int
choose_waits (const char *url, const struct url_options *o,
              struct xs_s3_config *c)
{
  return choose_number (url, "retries", o->retries, 0, XS_S3_MAX_RETRIES,
                        XS_S3_DEFAULT_RETRIES, &c->retries)
    || choose_number (url, "timeout", o->timeout, 1, XS_S3_MAX_WAIT,
                      XS_S3_DEFAULT_TIMEOUT, &c->timeout)
    || choose_number (url, "low-speed-time", o->low_speed_time, 1,
                      XS_S3_MAX_WAIT, XS_S3_DEFAULT_LOW_SPEED_TIME,
                      &c->low_speed_time)
    || choose_number (url, "connect-timeout", o->connect_timeout, 1,
                      XS_S3_MAX_WAIT, XS_S3_DEFAULT_CONNECT_TIMEOUT,
                      &c->connect_timeout) ? -1 : 0;
}

/* A signing region: "us-east-1", "eu-central-1", "default"... */
static bool
region_is_valid (const char *region)
{
  if (region[0] == '\0' || strlen (region) > 64)
    return false;
  for (const char *p = region; *p; p++)
    if (!(isalnum ((unsigned char) *p) || *p == '-' || *p == '_'))
      return false;
  return true;
}

/* xs_s3_config_parse with SHOWN, URL redacted, for messages. */
static int
parse_config (const char *url, const char *shown, struct xs_s3_config *c)
{
  struct url_options o = { 0 };
  const char *location, *query;
  const char *region;
  int r = -1;

  if (strncmp (url, "s3://", 5) != 0) {
    xs_error ("unsupported backend URL '%s': want s3://BUCKET[/PREFIX]",
              shown);
    return -1;
  }
  location = url + 5;
  query = strchr (location, '?');
  if (parse_location (shown, location,
                      query ? (size_t) (query - location) : strlen (location),
                      c) == -1
      || (query && parse_query (shown, query + 1, &o) == -1))
    goto out;
  if (o.region && !region_is_valid (o.region)) {
    xs_error ("unsupported backend URL '%s': region must be 1 to 64 "
              "letters, digits, '-' and '_', not '%s'", shown, o.region);
    goto out;
  }
  region = o.region ? o.region : env ("AWS_REGION");
  if (region == NULL)
    region = env ("AWS_DEFAULT_REGION");
  c->region = strdup (region ? region : "us-east-1");
  if (c->region == NULL
      || (env ("AWS_CA_BUNDLE")
          && (c->ca_bundle = strdup (env ("AWS_CA_BUNDLE"))) == NULL)) {
    xs_error ("cannot open '%s': %m", shown);
    goto out;
  }
  if (choose_endpoint (shown, &o, c) == -1
      || choose_style (shown, &o, c) == -1
      || choose_waits (shown, &o, c) == -1
      || choose_credentials (shown, &o, c) == -1)
    goto out;
  r = 0;
 out:
  free_options (&o);
  return r;
}

int
xs_s3_config_parse (const char *url, struct xs_s3_config *c)
{
  char *shown = xs_s3_url_redact (url);
  int r;

  memset (c, 0, sizeof *c);
  if (shown == NULL) {
    xs_error ("cannot open an S3 backend: out of memory");
    return -1;
  }
  r = parse_config (url, shown, c);
  if (r == -1)
    xs_s3_config_free (c);
  free (shown);
  return r;
}

/* ----- redaction ----- */

static bool
is_known_option (const char *name, size_t len)
{
  for (size_t i = 0; i < NOPTIONS; i++)
    if (strlen (option_names[i]) == len
        && memcmp (option_names[i], name, len) == 0)
      return true;
  return false;
}

/* Whether [p, p+len) holds an '@', plain or %-escaped. */
static bool
has_at_sign (const char *p, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (p[i] == '@'
        || (p[i] == '%' && i + 2 < len && p[i + 1] == '4'
            && p[i + 2] == '0'))
      return true;
  return false;
}

/* Write one "name=value" option of a query, redacted, to fp. */
static void
redact_option (FILE *fp, const char *p, size_t len)
{
  const char *eq = memchr (p, '=', len);
  size_t name_len = eq ? (size_t) (eq - p) : 0;

  if (eq == NULL)
    fputs ("REDACTED", fp);
  else if (!is_known_option (p, name_len)
           || has_at_sign (eq + 1, len - name_len - 1))
    fprintf (fp, "%.*s=REDACTED", (int) (name_len > 64 ? 64 : name_len), p);
  else
    fwrite (p, 1, len, fp);
}

char *
xs_s3_url_redact (const char *url)
{
  const char *rest = strstr (url, "://"), *query = strchr (url, '?'), *at;
  char *out = NULL;
  size_t size = 0, path_len;
  FILE *fp = open_memstream (&out, &size);

  if (fp == NULL)
    return NULL;
  if (rest == NULL || (query && query < rest))
    rest = url;
  else
    rest += 3;
  fwrite (url, 1, rest - url, fp);
  path_len = query ? (size_t) (query - rest) : strlen (rest);
  at = memrchr (rest, '@', path_len);
  if (at) {
    fputs ("REDACTED", fp);
    path_len -= at - rest;
    rest = at;
  }
  fwrite (rest, 1, path_len, fp);
  for (const char *p = query; p && *p; ) {
    const char *amp = strchrnul (p + 1, '&');

    fputc (*p, fp);             /* '?' or '&' */
    redact_option (fp, p + 1, amp - p - 1);
    p = *amp ? amp : NULL;
  }
  if (fclose (fp) != 0) {
    free (out);
    return NULL;
  }
  return out;
}

static void
free_secret (char *s)
{
  if (s)
    explicit_bzero (s, strlen (s));
  free (s);
}

void
xs_s3_config_free (struct xs_s3_config *c)
{
  free (c->bucket);
  free (c->prefix);
  free (c->scheme);
  free (c->host);
  free (c->region);
  free (c->access_key);
  free_secret (c->secret_key);
  free_secret (c->session_token);
  free (c->ca_bundle);
  memset (c, 0, sizeof *c);
}
