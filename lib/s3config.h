/* xsnap: where an S3 backend's bucket is and how to sign for it.
 *
 * A region's backend URL names the bucket and the prefix; everything else
 * comes from the conventions every S3 tool follows, so that a region works
 * with the same environment as the aws CLI, restic or rclone:
 *
 *   s3://BUCKET[/PREFIX][?endpoint=URL&region=R&style=path|virtual
 *                        &profile=NAME&retries=N]
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
 *
 * Secrets never appear in the URL, so the URL can live in the catalog.
 */
#ifndef XSNAP_S3CONFIG_H
#define XSNAP_S3CONFIG_H

#include <stdbool.h>

#define XS_S3_DEFAULT_RETRIES 4
#define XS_S3_MAX_RETRIES 10

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
};

/* Fill *config from URL ("s3://...") and the environment.  Returns 0, or
 * -1 with an error that names the URL and what is wrong or missing.
 */
extern int xs_s3_config_parse (const char *url, struct xs_s3_config *config);
extern void xs_s3_config_free (struct xs_s3_config *config);

#endif /* XSNAP_S3CONFIG_H */
