/* xsnap: tests for lib/s3config.c, which reads an S3 backend's URL and
 * the AWS environment.
 *
 * The precedence of URL options, the AWS_* variables and the shared
 * credentials file is what users of every other S3 tool expect; a wrong
 * URL or missing keys must be refused with a message naming the problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "s3config.h"
#include "tap.h"

static const char *const aws_variables[] = {
  "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
  "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3",
  "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CA_BUNDLE",
};

static void
clear_environment (void)
{
  for (size_t i = 0; i < sizeof aws_variables / sizeof aws_variables[0]; i++)
    unsetenv (aws_variables[i]);
}

static void
set_keys (void)
{
  setenv ("AWS_ACCESS_KEY_ID", "AKENV", 1);
  setenv ("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
}

/* Parses URL; returns 0 (config filled, caller frees) or -1. */
static int
parse (const char *url, struct xs_s3_config *c)
{
  tap_take_error ();
  return xs_s3_config_parse (url, c);
}

static void
refused (const char *url, const char *why)
{
  struct xs_s3_config c;

  is_int (parse (url, &c), -1, "refused: %s", url);
  error_contains (why, "... saying '%s'", why);
}

static void
test_location (void)
{
  struct xs_s3_config c;

  set_keys ();
  is_int (parse ("s3://bucket-1/a/b//", &c), 0, "s3://bucket-1/a/b//");
  is_str (c.bucket, "bucket-1", "bucket");
  is_str (c.prefix, "a/b", "prefix without trailing slashes");
  is_str (c.scheme, "https", "AWS by default: https");
  is_str (c.host, "s3.us-east-1.amazonaws.com", "... its regional endpoint");
  is_str (c.region, "us-east-1", "region us-east-1 by default");
  ok (c.virtual_host, "virtual-host style for AWS");
  is_int (c.retries, XS_S3_DEFAULT_RETRIES, "default retries");
  ok (c.session_token == NULL && c.ca_bundle == NULL,
      "no session token or CA bundle unless given");
  xs_s3_config_free (&c);

  is_int (parse ("s3://bkt", &c), 0, "a bucket without a prefix");
  is_str (c.prefix, "", "... has the empty prefix");
  xs_s3_config_free (&c);

  refused ("s3://ab/x", "is not a bucket name");
  refused ("s3://Bucket/x", "is not a bucket name");
  refused ("s3://-bkt/x", "is not a bucket name");
  refused ("s3://bkt/a//b", "bad prefix");
  refused ("s3://bkt/a/../b", "bad prefix");
  refused ("s3://bkt/x?colour=blue", "unknown option 'colour'");
  refused ("s3://bkt/x?retries=11", "retries must be 0 to 10");
  refused ("s3://bkt/x?retries=-1", "retries must be 0 to 10");
  refused ("s3://bkt/x?style=sideways", "style must be path or virtual");
  refused ("s3://my.bkt/x?style=virtual", "needs style=path");
  refused ("s3://bkt/x?endpoint=ftp://h", "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt/x?endpoint=http://h/path", "is not http[s]://HOST[:PORT]");
  refused ("s3://bkt/x?endpoint=%zz", "bad %-escape");
  refused ("file:///x", "want s3://BUCKET");

  is_int (parse ("s3://bkt/x?retries=0", &c), 0, "retries=0");
  is_int (c.retries, 0, "... no retries");
  xs_s3_config_free (&c);
}

static void
test_endpoint_and_region (void)
{
  struct xs_s3_config c;

  setenv ("AWS_DEFAULT_REGION", "eu-west-3", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_DEFAULT_REGION");
  is_str (c.region, "eu-west-3", "... is the region");
  is_str (c.host, "s3.eu-west-3.amazonaws.com", "... and names the endpoint");
  xs_s3_config_free (&c);
  setenv ("AWS_REGION", "ap-south-1", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_REGION");
  is_str (c.region, "ap-south-1", "... wins over AWS_DEFAULT_REGION");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?region=r9", &c), 0, "region=");
  is_str (c.region, "r9", "... wins over both");
  xs_s3_config_free (&c);

  setenv ("AWS_ENDPOINT_URL", "http://127.0.0.2:9000", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_ENDPOINT_URL");
  is_str (c.host, "127.0.0.2:9000", "... is the endpoint");
  is_str (c.scheme, "http", "... over http");
  ok (!c.virtual_host, "path style for a non-AWS endpoint");
  xs_s3_config_free (&c);
  setenv ("AWS_ENDPOINT_URL_S3", "https://rgw.example:7480/", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_ENDPOINT_URL_S3");
  is_str (c.host, "rgw.example:7480", "... wins over AWS_ENDPOINT_URL");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=http%3A%2F%2F10.0.0.1%3A80&style=virtual",
                 &c), 0, "a %%-escaped endpoint= and style=virtual");
  is_str (c.host, "10.0.0.1:80", "... endpoint= wins over the variables");
  ok (c.virtual_host, "... virtual-host style as asked");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?endpoint=https://s3.eu-west-1.amazonaws.com", &c),
          0, "an AWS endpoint");
  ok (c.virtual_host, "... gets virtual-host style");
  xs_s3_config_free (&c);

  setenv ("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_CA_BUNDLE");
  is_str (c.ca_bundle, "/etc/ssl/certs/ca-certificates.crt", "... is kept");
  xs_s3_config_free (&c);
}

static void
write_file (const char *path, const char *text)
{
  FILE *fp = fopen (path, "w");

  if (fp == NULL || fputs (text, fp) == EOF || fclose (fp) != 0)
    abort ();
}

static void
test_credentials (const char *home)
{
  struct xs_s3_config c;
  char path[1024], other[1024];

  clear_environment ();
  setenv ("AWS_ACCESS_KEY_ID", "AKENV", 1);
  refused ("s3://bkt", "AWS_SECRET_ACCESS_KEY is not");
  set_keys ();
  setenv ("AWS_SESSION_TOKEN", "token-env", 1);
  is_int (parse ("s3://bkt", &c), 0, "keys from the environment");
  is_str (c.access_key, "AKENV", "access key");
  is_str (c.secret_key, "secret-env", "secret key");
  is_str (c.session_token, "token-env", "session token");
  xs_s3_config_free (&c);

  clear_environment ();
  refused ("s3://bkt", "no S3 credentials: set AWS_ACCESS_KEY_ID");

  snprintf (path, sizeof path, "%s/.aws", home);
  mkdir (path, 0700);
  snprintf (path, sizeof path, "%s/.aws/credentials", home);
  write_file (path,
              "# comment\n"
              "[default]\n"
              "aws_access_key_id = AKDEFAULT\n"
              "aws_secret_access_key=secret-default\n"
              "\n"
              "[ other ]\n"
              "; another comment\n"
              "  aws_access_key_id   =   AKOTHER  \n"
              "aws_secret_access_key = secret-other\n"
              "aws_session_token = token-other\n"
              "[broken]\n"
              "aws_access_key_id = AKBROKEN\n");
  is_int (parse ("s3://bkt", &c), 0, "~/.aws/credentials, profile default");
  is_str (c.access_key, "AKDEFAULT", "... its access key");
  is_str (c.secret_key, "secret-default", "... its secret key");
  xs_s3_config_free (&c);
  setenv ("AWS_PROFILE", "other", 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_PROFILE=other");
  is_str (c.access_key, "AKOTHER", "... its access key, trimmed");
  is_str (c.session_token, "token-other", "... its session token");
  xs_s3_config_free (&c);
  unsetenv ("AWS_PROFILE");

  set_keys ();
  is_int (parse ("s3://bkt", &c), 0, "keys in the environment");
  is_str (c.access_key, "AKENV", "... win over the file");
  xs_s3_config_free (&c);
  is_int (parse ("s3://bkt?profile=other", &c), 0, "profile= in the URL");
  is_str (c.access_key, "AKOTHER", "... wins over the environment");
  xs_s3_config_free (&c);
  refused ("s3://bkt?profile=nobody", "no profile 'nobody' in");
  refused ("s3://bkt?profile=broken", "lacks aws_access_key_id or "
           "aws_secret_access_key");

  snprintf (other, sizeof other, "%s/elsewhere", home);
  write_file (other, "[default]\naws_access_key_id=AKFILE\n"
              "aws_secret_access_key=secret-file\n");
  clear_environment ();
  setenv ("AWS_SHARED_CREDENTIALS_FILE", other, 1);
  is_int (parse ("s3://bkt", &c), 0, "AWS_SHARED_CREDENTIALS_FILE");
  is_str (c.access_key, "AKFILE", "... is the file read");
  xs_s3_config_free (&c);
}

int
main (void)
{
  char *home = tap_tmpdir ();

  clear_environment ();
  setenv ("HOME", home, 1);
  test_location ();
  test_endpoint_and_region ();
  test_credentials (home);
  tap_rmtree (home);
  free (home);
  return done_testing ();
}
