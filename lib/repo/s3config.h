/* xsnap: where an S3 backend's bucket is and how to sign for it.
 *
 * A region's backend URL names the bucket and the prefix; everything else
 * comes from the conventions every S3 tool follows, so that a region works
 * with the same environment as the aws CLI, restic or rclone:
 *
 *   s3://BUCKET[/PREFIX][?endpoint=URL&region=R&style=path|virtual
 *                        &profile=NAME&retries=N&timeout=S
 *                        &low-speed-time=S&connect-timeout=S]
 *
 *   endpoint  endpoint= > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL >
 *             https://s3.REGION.amazonaws.com
 *   region    region= > AWS_REGION > AWS_DEFAULT_REGION > us-east-1
 *   style     style= > virtual-host for *.amazonaws.com, else path (as
 *             Ceph RGW and MinIO expect)
 *   keys      with profile=, that profile of the shared credentials file;
 *             else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 *             AWS_SESSION_TOKEN; else profile AWS_PROFILE (or "default")
 *             of AWS_SHARED_CREDENTIALS_FILE (or ~/.aws/credentials)
 *   CA        AWS_CA_BUNDLE, else the system's
 *   waits     timeout= (all attempts of one request, default 120 s),
 *             low-speed-time= (an attempt slower than 1 KiB/s for that
 *             long fails, default 30 s), connect-timeout= (default 10 s)
 *
 * Secrets never appear in the URL, so the URL can live in the catalog;
 * a URL that is refused is shown redacted (xs_s3_url_redact), since
 * whatever was typed into it may be a secret.
 */
#ifndef XSNAP_S3CONFIG_H
#define XSNAP_S3CONFIG_H

#include <stdbool.h>

#define XS_S3_DEFAULT_RETRIES 4
#define XS_S3_MAX_RETRIES 10
/* A request of a 4 MiB chunk at 64 KiB/s takes a minute; twice that for
 * every attempt and pause of one request.
 */
#define XS_S3_DEFAULT_TIMEOUT 120
/* No byte for 30 s (below 1 KiB/s): the server is not answering. */
#define XS_S3_DEFAULT_LOW_SPEED_TIME 30
#define XS_S3_LOW_SPEED_LIMIT 1024
#define XS_S3_DEFAULT_CONNECT_TIMEOUT 10
#define XS_S3_MAX_WAIT 86400

struct xs_s3_config {
  char *bucket;
  char *prefix;                 /* "" or a valid key without a '/' at the end */
  char *scheme;                 /* "http" or "https" */
  char *host;                   /* endpoint host[:port], as sent in Host */
  char *region;
  bool virtual_host;
  char *access_key;
  char *secret_key;
  char *session_token;          /* or NULL */
  char *ca_bundle;              /* or NULL */
  unsigned retries;             /* attempts after the first */
  unsigned timeout;             /* seconds for all attempts of a request */
  unsigned low_speed_time;      /* seconds below XS_S3_LOW_SPEED_LIMIT */
  unsigned connect_timeout;     /* seconds to connect */
};

/* Fill *config from URL ("s3://...") and the environment.  Returns 0, or
 * -1 with an error that names the URL and what is wrong or missing.
 */
extern int xs_s3_config_parse (const char *url, struct xs_s3_config *config);
extern void xs_s3_config_free (struct xs_s3_config *config);

/* URL with what may be a secret replaced by "REDACTED": the user
 * information before an '@' (in the URL and in an endpoint= value) and
 * the value of every query option but the known ones above; an option
 * without '=' is redacted whole.  Malloc'd; NULL when out of memory.
 */
extern char *xs_s3_url_redact (const char *url);

#endif /* XSNAP_S3CONFIG_H */
