/* xsnap: tests for lib/repo/s3config.c, which reads an S3 backend's URL and
 * the AWS environment.
 *
 * The precedence of URL options, the AWS_* variables and the shared
 * credentials file is what users of every other S3 tool expect; a wrong
 * URL or missing keys must be refused with a message naming the problem.
 * Every test starts from an environment without AWS_* variables and with
 * HOME in a temporary directory, so the user's own setup never leaks in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "repo/s3config.h"
#include "tap.h"

static const char *const aws_variables[] = {
  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CA_BUNDLE",
};

static char *home;

static void
clear_environment (void)
{
  for (size_t i = 0; i < sizeof aws_variables / sizeof aws_variables[0]; i++)
    unsetenv (aws_variables[i]);
}

/* A clean environment with keys, so that only what a test sets matters. */
static void
fresh_environment_with_keys (void)
{
  clear_environment ();
  setenv ("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
}

/* Parse URL; 0 (config filled, caller frees) or -1. */
static int
parse (const char *url, struct xs_s3_config *c)
{
  tap_take_error ();
  memset (c, 0x5a, sizeof *c);  /* the parser must fill every field */
  return xs_s3_config_parse (url, c);
}

static void
refused (const char *url, const char *why)
{
  struct xs_s3_config c;

  is_int (parse (url, &c), -1, "refused: %s", url);
  error_contains (why, "... saying '%s'", why);
}

/* Parse URL, which must succeed, and return one string field of it
 * (copied; the config is freed).  For the precedence tests.
 */
enum field { BUCKET, PREFIX, SCHEME, HOST, REGION };

static char *
field_of (const char *url, enum field f)
{
  struct xs_s3_config c;
  char *value = NULL;
  const char *s;

  if (parse (url, &c) != 0)
    return strdup ("(parse failed)");
  s = f == BUCKET ? c.bucket : f == PREFIX ? c.prefix : f == SCHEME
    ? c.scheme : f == HOST ? c.host : c.region;
  value = strdup (s ? s : "(null)");
  xs_s3_config_free (&c);
  return value;
}

#define is_field(url, f, want, ...)                                     \
  do {                                                                  \
    char *tap_field_ = field_of ((url), (f));                           \
    is_str (tap_field_, (want), __VA_ARGS__);                           \
    free (tap_field_);                                                  \
  } while (0)

static void
test_defaults (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  is_int (parse ("s3://bucket-1.example/repo/r1", &c), 0,
          "s3://bucket-1.example/repo/r1 with only keys set");
  is_str (c.bucket, "bucket-1.example", "bucket");
  is_str (c.prefix, "repo/r1", "prefix");
  is_str (c.scheme, "https", "https by default");
  is_str (c.host, "s3.us-east-1.amazonaws.com",
          "AWS's endpoint for the region by default");
  is_str (c.region, "us-east-1", "region us-east-1 by default");
  is_int (c.retries, 4, "4 retries by default");
  is_int (XS_S3_DEFAULT_RETRIES, 4, "... which is XS_S3_DEFAULT_RETRIES");
  is_str (c.access_key, "AKIDENV", "access key from AWS_ACCESS_KEY_ID");
  is_str (c.secret_key, "secret-env",
          "secret key from AWS_SECRET_ACCESS_KEY");
  ok (c.session_token == NULL, "no session token unless given");
  ok (c.ca_bundle == NULL, "no CA bundle unless given");
  xs_s3_config_free (&c);
  is_str (tap_take_error (), "", "no error reported on success");
}

/* "s3://bbb...b/p" with a bucket name of LEN (static buffer). */
static const char *
long_bucket_url (size_t len)
{
  static char url[128];

  snprintf (url, sizeof url, "s3://%.*s/p", (int) len,
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  return url;
}

static void
test_location (void)
{
  fresh_environment_with_keys ();
  is_field ("s3://bkt/a/b/", BUCKET, "bkt", "bucket before the first '/'");
  is_field ("s3://bkt/a/b/", PREFIX, "a/b", "a trailing '/' is dropped");
  is_field ("s3://bkt/a/b///", PREFIX, "a/b", "... as are several");
  is_field ("s3://bkt", PREFIX, "", "no prefix: \"\"");
  is_field ("s3://bkt/", PREFIX, "", "only a '/': \"\"");
  is_field ("s3://bkt//", PREFIX, "", "only '/'s: \"\"");
  is_field ("s3://bkt?retries=1", PREFIX, "", "no prefix before a query");
  is_field ("s3://bkt?retries=1", BUCKET, "bkt",
            "... and the bucket stops at '?'");
  is_field ("s3://bkt/p/q/?retries=1", PREFIX, "p/q",
            "a prefix before a query, its '/' dropped");
  is_field ("s3://123.bkt-x.y", BUCKET, "123.bkt-x.y",
            "digits, dots and dashes in a bucket name");

  refused ("s3://ab/x", "'ab' is not a bucket name");
  refused ("s3://Bucket/x", "'Bucket' is not a bucket name");
  refused ("s3://-bkt/x", "'-bkt' is not a bucket name");
  refused ("s3://bkt-/x", "'bkt-' is not a bucket name");
  refused ("s3://bk_t/x", "'bk_t' is not a bucket name");
  refused ("s3:///x", "'' is not a bucket name");
  refused (long_bucket_url (64), "is not a bucket name");
  is_field (long_bucket_url (63), PREFIX, "p", "a bucket name of 63 is fine");
  refused ("s3://bkt/a//b", "bad prefix 'a//b'");
  refused ("s3://bkt/..", "bad prefix '..'");
  refused ("s3://bkt/a/../b", "bad prefix 'a/../b'");
  refused ("file:///srv/xsnap", "want s3://BUCKET[/PREFIX]");
  refused ("S3://bkt", "want s3://BUCKET[/PREFIX]");
}

static void
test_region (void)
{
  fresh_environment_with_keys ();
  is_field ("s3://bkt", REGION, "us-east-1", "no region anywhere: us-east-1");
  setenv ("AWS_DEFAULT_REGION", "eu-west-3", 1);
  is_field ("s3://bkt", REGION, "eu-west-3", "AWS_DEFAULT_REGION");
  is_field ("s3://bkt", HOST, "s3.eu-west-3.amazonaws.com",
            "... names AWS's endpoint");
  setenv ("AWS_REGION", "ap-south-1", 1);
  is_field ("s3://bkt", REGION, "ap-south-1",
            "AWS_REGION wins over AWS_DEFAULT_REGION");
  is_field ("s3://bkt?region=sa-east-1", REGION, "sa-east-1",
            "region= wins over both");
  is_field ("s3://bkt?region=sa-east-1", HOST, "s3.sa-east-1.amazonaws.com",
            "... and names AWS's endpoint");
  setenv ("AWS_REGION", "", 1);
  is_field ("s3://bkt", REGION, "eu-west-3",
            "an empty AWS_REGION is as unset");
}

static void
test_endpoint (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  setenv ("AWS_ENDPOINT_URL", "http://127.0.0.2:9000", 1);
  is_field ("s3://bkt", HOST, "127.0.0.2:9000", "AWS_ENDPOINT_URL");
  is_field ("s3://bkt", SCHEME, "http", "... its scheme");
  setenv ("AWS_ENDPOINT_URL_S3", "https://rgw.example:7480/", 1);
  is_field ("s3://bkt", HOST, "rgw.example:7480",
            "AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL (and its '/' "
            "is dropped)");
  is_field ("s3://bkt", SCHEME, "https", "... its scheme");
  is_field ("s3://bkt?endpoint=http://10.0.0.1:80", HOST, "10.0.0.1:80",
            "endpoint= wins over both");
  is_field ("s3://bkt?endpoint=http%3A%2F%2Frgw%2Einternal%3A8080%2F", HOST,
            "rgw.internal:8080", "a %%-encoded endpoint= is decoded");
  is_field ("s3://bkt?endpoint=http%3A%2F%2Frgw%2Einternal%3A8080%2F",
            SCHEME, "http", "... its scheme");
  is_field ("s3://bkt?region=eu-north-1&endpoint=https://minio.lan", REGION,
            "eu-north-1", "region= with endpoint= is the signing region");

  is_int (parse ("s3://bkt?endpoint=https://s3.example:8443", &c), 0,
          "an endpoint with a port");
  is_str (c.scheme, "https", "... scheme https");
  is_str (c.host, "s3.example:8443", "... host with its port");
  xs_s3_config_free (&c);

  refused ("s3://bkt?endpoint=http://h/path", "endpoint 'http://h/path' is "
           "not http[s]://HOST[:PORT]");
  refused ("s3://bkt?endpoint=ftp://h", "endpoint 'ftp://h' is not "
           "http[s]://HOST[:PORT]");
  refused ("s3://bkt?endpoint=https://", "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt?endpoint=rgw.example", "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt?endpoint=http://u:p@h", "must not carry user information");
  refused ("s3://bkt?endpoint=http%3A%2F%2Fh%2Fp",
           "endpoint 'http://h/p' is not");
  refused ("s3://bkt?endpoint=%zz", "bad %-escape in option 'endpoint'");
  refused ("s3://bkt?endpoint=http://h%00", "bad %-escape");
  unsetenv ("AWS_ENDPOINT_URL_S3");
  setenv ("AWS_ENDPOINT_URL", "ftp://h", 1);
  refused ("s3://bkt", "endpoint 'ftp://h' is not");
}

static void
test_style (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  is_int (parse ("s3://bkt", &c), 0, "AWS's default endpoint");
  is_int (c.virtual_host, 1, "... virtual-host style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=https://s3.eu-west-1.amazonaws.com:443",
                 &c), 0, "an explicit *.amazonaws.com endpoint with a port");
  is_int (c.virtual_host, 1, "... virtual-host style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=http://127.0.0.1:7480", &c), 0,
          "an RGW on an address");
  is_int (c.virtual_host, 0, "... path style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=https://amazonaws.com.evil.example", &c),
          0, "a host that only contains amazonaws.com");
  is_int (c.virtual_host, 0, "... path style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?style=path", &c), 0, "style=path on AWS");
  is_int (c.virtual_host, 0, "... path style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=http://rgw:7480&style=virtual", &c), 0,
          "style=virtual on RGW");
  is_int (c.virtual_host, 1, "... virtual-host style");
  xs_s3_config_free (&c);
  is_int (parse ("s3://my.bkt?endpoint=http://rgw:7480&style=path", &c), 0,
          "a dotted bucket with style=path");
  is_int (c.virtual_host, 0, "... path style");
  xs_s3_config_free (&c);

  is_int (parse ("s3://my.bkt", &c), 0, "a dotted bucket on AWS");
  is_int (c.virtual_host, 0, "... path style: AWS's wildcard certificate "
          "would not cover my.bkt.s3...");
  xs_s3_config_free (&c);

  refused ("s3://my.bkt/x?style=virtual", "a bucket with '.' in its name "
           "needs style=path");
  refused ("s3://bkt/x?style=bogus", "style must be path or virtual, not "
           "'bogus'");
  refused ("s3://bkt/x?style=", "style must be path or virtual");
}

static void
test_options (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  refused ("s3://bkt/x?colour=blue", "unknown option 'colour'");
  refused ("s3://bkt/x?region=r1&Region=r2", "unknown option 'Region'");
  refused ("s3://bkt/x?verbose", "an option without '='");

  is_int (parse ("s3://bkt/x?retries=0", &c), 0, "retries=0");
  is_int (c.retries, 0, "... no retries");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt/x?retries=10", &c), 0, "retries=10");
  is_int (c.retries, 10, "... is the maximum");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt/x?region=r1&retries=7&style=path", &c), 0,
          "several options");
  is_int (c.retries, 7, "... retries");
  is_str (c.region, "r1", "... region");
  is_int (c.virtual_host, 0, "... style");
  xs_s3_config_free (&c);
  refused ("s3://bkt/x?retries=11", "retries must be 0 to 10, not '11'");
  refused ("s3://bkt/x?retries=-1", "retries must be 0 to 10, not '-1'");
  refused ("s3://bkt/x?retries=", "retries must be 0 to 10");
  refused ("s3://bkt/x?retries=3x", "retries must be 0 to 10, not '3x'");
  refused ("s3://bkt/x?retries=+3", "retries must be 0 to 10, not '+3'");
  refused ("s3://bkt/x?retries=%203", "retries must be 0 to 10, not ' 3'");
  refused ("s3://bkt/x?region=", "region must be 1 to 64 letters");
  refused ("s3://bkt/x?region=us%0Aeast", "region must be 1 to 64 letters");
  refused ("s3://bkt/x?endpoint=http://h%0D%0AX:%20y",
           "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt/x?endpoint=http://:80", "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt/x?retries=99999999999999999999999",
           "retries must be 0 to 10");
}

static void
test_waits (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  is_int (parse ("s3://bkt/x", &c), 0, "no wait options");
  is_int (c.timeout, 120, "... a request may take 120 s, retries included");
  is_int (c.low_speed_time, 30, "... 30 s below 1 KiB/s");
  is_int (c.connect_timeout, 10, "... 10 s to connect");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt/x?timeout=2&low-speed-time=1&connect-timeout=3",
                 &c), 0, "timeout, low-speed-time and connect-timeout");
  is_int (c.timeout, 2, "... timeout");
  is_int (c.low_speed_time, 1, "... low-speed-time");
  is_int (c.connect_timeout, 3, "... connect-timeout");
  xs_s3_config_free (&c);
  refused ("s3://bkt/x?timeout=0", "timeout must be 1 to 86400, not '0'");
  refused ("s3://bkt/x?timeout=86401", "timeout must be 1 to 86400");
  refused ("s3://bkt/x?low-speed-time=", "low-speed-time must be 1 to");
  refused ("s3://bkt/x?connect-timeout=1.5",
           "connect-timeout must be 1 to 86400, not '1.5'");
}

/* URL, holding the secret "hunter2", is refused saying WHY, without
 * the secret.
 */
static void
refused_quietly (const char *url, const char *why)
{
  struct xs_s3_config c;
  const char *error;

  is_int (parse (url, &c), -1, "refused: %s", why);
  error = tap_take_error ();
  ok (strstr (error, why) != NULL, "... saying '%s'", why);
  if (!ok (strstr (error, "hunter2") == NULL, "... without the secret"))
    printf ("#   error was '%s'\n", error);
}

/* A refused URL is shown without what may be a secret. */
static void
is_redacted (const char *url, const char *want)
{
  char *shown = xs_s3_url_redact (url);

  is_str (shown, want, "redacted: %s", want);
  free (shown);
}

static void
test_redaction (void)
{
  fresh_environment_with_keys ();
  is_redacted ("s3://bkt/p?endpoint=http://h:1&region=r&style=path"
               "&profile=x&retries=2&timeout=3&low-speed-time=4"
               "&connect-timeout=5",
               "s3://bkt/p?endpoint=http://h:1&region=r&style=path"
               "&profile=x&retries=2&timeout=3&low-speed-time=4"
               "&connect-timeout=5");
  is_redacted ("s3://bkt/p?secret=hunter2&region=r",
               "s3://bkt/p?secret=REDACTED&region=r");
  is_redacted ("s3://AK:hunter2@bkt/p", "s3://REDACTED@bkt/p");
  is_redacted ("s3://AK:hun/ter@2@bkt/p?region=r",
               "s3://REDACTED@bkt/p?region=r");
  is_redacted ("s3://bkt/p?hunter2", "s3://bkt/p?REDACTED");
  is_redacted ("s3://bkt/p?endpoint=http://u:hunter2@h",
               "s3://bkt/p?endpoint=REDACTED");
  is_redacted ("s3://bkt/p?endpoint=http://u:hunter2%40h",
               "s3://bkt/p?endpoint=REDACTED");
  is_redacted ("https://u:hunter2@host/x?a=b",
               "https://REDACTED@host/x?a=REDACTED");
  is_redacted ("not a url", "not a url");
  is_redacted ("s3://bkt?&&", "s3://bkt?REDACTED&REDACTED&REDACTED");

  refused_quietly ("s3://AK:hunter2@bkt/p",
                   "user information ('...@') is not allowed");
  refused_quietly ("s3://bkt/p?access_key=hunter2",
                   "unknown option 'access_key'");
  refused_quietly ("s3://bkt/p?hunter2", "an option without '='");
  refused_quietly ("s3://bkt/p?endpoint=http://u:hunter2@h:1",
                   "the endpoint must not carry user information");
  setenv ("AWS_ENDPOINT_URL", "http://u:hunter2@h:1", 1);
  refused_quietly ("s3://bkt/p",
                   "the endpoint must not carry user information");
  unsetenv ("AWS_ENDPOINT_URL");
}

static void
test_ca_bundle (void)
{
  struct xs_s3_config c;

  fresh_environment_with_keys ();
  setenv ("AWS_CA_BUNDLE", "/etc/xsnap/rgw-ca.pem", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_CA_BUNDLE set");
  is_str (c.ca_bundle, "/etc/xsnap/rgw-ca.pem", "... is copied");
  xs_s3_config_free (&c);
  unsetenv ("AWS_CA_BUNDLE");
}

static void
write_file (const char *path, const char *text)
{
  FILE *fp = fopen (path, "w");

  if (fp == NULL || fputs (text, fp) == EOF || fclose (fp) != 0) {
    perror (path);
    abort ();
  }
}

static void
test_environment_keys (void)
{
  struct xs_s3_config c;

  clear_environment ();
  setenv ("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
  refused ("s3://bkt", "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY "
           "is not");
  setenv ("AWS_SECRET_ACCESS_KEY", "", 1);
  refused ("s3://bkt", "AWS_SECRET_ACCESS_KEY is not");

  setenv ("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
  setenv ("AWS_SESSION_TOKEN", "token-env", 1);
  is_int (parse ("s3://bkt", &c), 0, "keys and a token in the environment");
  is_str (c.access_key, "AKIDENV", "... access key");
  is_str (c.secret_key, "secret-env", "... secret key");
  is_str (c.session_token, "token-env", "... session token");
  xs_s3_config_free (&c);

  clear_environment ();
  refused ("s3://bkt", "no S3 credentials: set AWS_ACCESS_KEY_ID and "
           "AWS_SECRET_ACCESS_KEY");
  setenv ("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
  refused ("s3://bkt", "set AWS_ACCESS_KEY_ID");
}

static void
test_credentials_file (void)
{
  struct xs_s3_config c;
  char path[1024], other[1024];

  snprintf (path, sizeof path, "%s/.aws", home);
  if (mkdir (path, 0700) == -1) {
    perror (path);
    abort ();
  }
  snprintf (path, sizeof path, "%s/.aws/credentials", home);
  write_file (path,
              "# written by aws configure\n"
              "; and edited by hand\n"
              "[default]\n"
              "aws_access_key_id = AKIDDEFAULT\n"
              "aws_secret_access_key=secret-default\n"
              "region = ignored-here\n"
              "\n"
              "[other]\n"
              "  # indented comment\n"
              "  aws_access_key_id   =   AKIDOTHER  \n"
              "aws_secret_access_key\t= secret/other+x=\n"
              "aws_session_token = token-other\n"
              "\n"
              "[halfway]\n"
              "aws_access_key_id = AKIDHALF\n");

  clear_environment ();
  is_int (parse ("s3://bkt", &c), 0,
          "no keys in the environment: ~/.aws/credentials");
  is_str (c.access_key, "AKIDDEFAULT", "... profile default's access key");
  is_str (c.secret_key, "secret-default", "... its secret key");
  ok (c.session_token == NULL, "... no session token");
  xs_s3_config_free (&c);

  setenv ("AWS_PROFILE", "other", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_PROFILE=other");
  is_str (c.access_key, "AKIDOTHER", "... its access key, spaces trimmed");
  is_str (c.secret_key, "secret/other+x=",
          "... its secret key (a tab before '=', '=' inside)");
  is_str (c.session_token, "token-other", "... its session token");
  xs_s3_config_free (&c);

  setenv ("AWS_PROFILE", "nosuch", 1);
  refused ("s3://bkt", "profile 'nosuch'");
  unsetenv ("AWS_PROFILE");

  fresh_environment_with_keys ();
  is_int (parse ("s3://bkt", &c), 0, "keys in the environment and a file");
  is_str (c.access_key, "AKIDENV", "... the environment's keys win");
  xs_s3_config_free (&c);
  setenv ("AWS_SESSION_TOKEN", "token-env", 1);
  is_int (parse ("s3://bkt?profile=other", &c), 0,
          "profile= in the URL with keys in the environment");
  is_str (c.access_key, "AKIDOTHER", "... the URL's profile wins");
  is_str (c.secret_key, "secret/other+x=", "... its secret key");
  is_str (c.session_token, "token-other",
          "... its token, not AWS_SESSION_TOKEN");
  xs_s3_config_free (&c);
  setenv ("AWS_PROFILE", "other", 1);
  is_int (parse ("s3://bkt?profile=default", &c), 0,
          "profile= in the URL and AWS_PROFILE");
  is_str (c.access_key, "AKIDDEFAULT", "... the URL's profile wins");
  xs_s3_config_free (&c);

  refused ("s3://bkt?profile=nobody", "no profile 'nobody' in");
  refused ("s3://bkt?profile=halfway", "profile 'halfway' of");
  refused ("s3://bkt?profile=halfway",
           "lacks aws_access_key_id or aws_secret_access_key");

  snprintf (other, sizeof other, "%s/elsewhere.ini", home);
  write_file (other, "[default]\naws_access_key_id=AKIDFILE\n"
              "aws_secret_access_key=secret-file\n");
  clear_environment ();
  setenv ("AWS_SHARED_CREDENTIALS_FILE", other, 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_SHARED_CREDENTIALS_FILE");
  is_str (c.access_key, "AKIDFILE", "... is the file read, not ~/.aws");
  is_str (c.secret_key, "secret-file", "... its secret key");
  xs_s3_config_free (&c);
  refused ("s3://bkt?profile=other", "no profile 'other' in");
  refused ("s3://bkt?profile=other", "elsewhere.ini");

  snprintf (other, sizeof other, "%s/missing-file", home);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", other, 1);
  refused ("s3://bkt", "no S3 credentials: set AWS_ACCESS_KEY_ID");
  clear_environment ();
}

int
main (void)
{
  home = tap_tmpdir ();
  clear_environment ();
  setenv ("HOME", home, 1);

  test_defaults ();
  test_location ();
  test_region ();
  test_endpoint ();
  test_style ();
  test_options ();
  test_waits ();
  test_redaction ();
  test_ca_bundle ();
  test_environment_keys ();
  test_credentials_file ();

  tap_rmtree (home);
  free (home);
  return done_testing ();
}
