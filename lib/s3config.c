/* xsnap: where an S3 backend's bucket is and how to sign for it
 * (see s3config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "s3config.h"

/* The query parameters a URL may carry, decoded (NULL when absent). */
struct url_options {
  char *endpoint;
  char *region;
  char *style;
  char *profile;
  char *retries;
};

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
}

/* Parse "name=value&..." into *o.  -1 with an error naming the URL. */
static int
parse_query (const char *url, const char *query, struct url_options *o)
{
  static const char *const names[] = {
    "endpoint", "region", "style", "profile", "retries",
  };
  char **slots[] = { &o->endpoint, &o->region, &o->style, &o->profile,
                     &o->retries };
  const char *p = query;

  while (*p) {
    const char *amp = strchrnul (p, '&'), *eq = memchr (p, '=', amp - p);
    size_t i, name_len = eq ? (size_t) (eq - p) : 0;

    for (i = 0; eq && i < sizeof names / sizeof names[0]; i++)
      if (strlen (names[i]) == name_len && memcmp (names[i], p, name_len) == 0)
        break;
    if (eq == NULL || i == sizeof names / sizeof names[0]) {
      xs_error ("unsupported backend URL '%s': unknown option '%.*s' "
                "(known: endpoint, region, style, profile, retries)",
                url, (int) (eq ? name_len : (size_t) (amp - p)), p);
      return -1;
    }
    free (*slots[i]);
    *slots[i] = xs_backend_url_decode (eq + 1, amp - eq - 1);
    if (*slots[i] == NULL) {
      xs_error ("unsupported backend URL '%s': bad %%-escape in option "
                "'%s'", url, names[i]);
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

static int
choose_retries (const char *url, const struct url_options *o,
                struct xs_s3_config *c)
{
  char *end;
  unsigned long n;

  c->retries = XS_S3_DEFAULT_RETRIES;
  if (o->retries == NULL)
    return 0;
  errno = 0;
  n = strtoul (o->retries, &end, 10);
  if (errno || !isdigit ((unsigned char) o->retries[0]) || *end
      || n > XS_S3_MAX_RETRIES) {
    xs_error ("unsupported backend URL '%s': retries must be 0 to %d, "
              "not '%s'", url, XS_S3_MAX_RETRIES, o->retries);
    return -1;
  }
  c->retries = n;
  return 0;
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

int
xs_s3_config_parse (const char *url, struct xs_s3_config *c)
{
  struct url_options o = { 0 };
  const char *location, *query;
  const char *region;
  int r = -1;

  memset (c, 0, sizeof *c);
  if (strncmp (url, "s3://", 5) != 0) {
    xs_error ("unsupported backend URL '%s': want s3://BUCKET[/PREFIX]",
              url);
    return -1;
  }
  location = url + 5;
  query = strchr (location, '?');
  if (parse_location (url, location,
                      query ? (size_t) (query - location) : strlen (location),
                      c) == -1
      || (query && parse_query (url, query + 1, &o) == -1))
    goto out;
  if (o.region && !region_is_valid (o.region)) {
    xs_error ("unsupported backend URL '%s': region must be 1 to 64 "
              "letters, digits, '-' and '_', not '%s'", url, o.region);
    goto out;
  }
  region = o.region ? o.region : env ("AWS_REGION");
  if (region == NULL)
    region = env ("AWS_DEFAULT_REGION");
  c->region = strdup (region ? region : "us-east-1");
  if (c->region == NULL
      || (env ("AWS_CA_BUNDLE")
          && (c->ca_bundle = strdup (env ("AWS_CA_BUNDLE"))) == NULL)) {
    xs_error ("cannot open '%s': %m", url);
    goto out;
  }
  if (choose_endpoint (url, &o, c) == -1 || choose_style (url, &o, c) == -1
      || choose_retries (url, &o, c) == -1
      || choose_credentials (url, &o, c) == -1)
    goto out;
  r = 0;
 out:
  free_options (&o);
  if (r == -1)
    xs_s3_config_free (c);
  return r;
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
