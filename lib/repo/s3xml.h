/* xsnap: the two S3 response bodies the S3 backend reads.
 *
 * S3 answers a listing (ListObjectsV2) and every error in XML.  The
 * backend needs four things from them: the keys listed, whether the
 * listing goes on and its continuation token, and an error's code and
 * message.  A full XML library would cost every command its start-up time
 * for that, so this is a small extractor: it finds elements by name in a
 * length-bounded body, never reads past its end, decodes the five
 * predefined entities and numeric character references, and refuses
 * anything it does not understand.  Bodies come from the network, so the
 * extractor is fuzzed (tests/fuzz/fuzz-s3xml.c).
 */
#ifndef XSNAP_S3XML_H
#define XSNAP_S3XML_H

#include <stdbool.h>
#include <stddef.h>

/* Called with each <Contents><Key> of a listing, decoded. Non-zero stops
 * the parse and is returned.
 */
typedef int (*xs_s3xml_key_fn) (const char *key, void *opaque);

struct xs_s3xml_listing {
  bool truncated;               /* <IsTruncated>true</IsTruncated> */
  char *next_token;             /* <NextContinuationToken>, malloc'd or NULL */
  size_t keys;                  /* how many keys were passed to fn */
};

/* The longest continuation token taken (AWS's are some 100 bytes). */
#define XS_S3XML_TOKEN_MAX 1024
#define XS_S3XML_STRINGIFY(x) XS_S3XML_STRINGIFY_ (x)
#define XS_S3XML_STRINGIFY_(x) #x

/* Parse a ListObjectsV2 result.  Returns 0, fn's non-zero return, or -1
 * with an error reported ("WHAT: the answer is not a listing: " and what
 * is wrong with the body).  A truncated listing must carry a token that
 * is not empty, not longer than XS_S3XML_TOKEN_MAX and clean (see
 * xs_s3xml_clean_text).  On success the caller frees
 * listing->next_token.
 */
extern int xs_s3xml_parse_listing (const char *what, const char *body,
                                   size_t len, xs_s3xml_key_fn fn,
                                   void *opaque,
                                   struct xs_s3xml_listing *listing);

/* From an <Error> body, copy <Code> and <Message> (decoded, truncated to
 * fit, cleaned by xs_s3xml_clean_text, "" when absent or unreadable).
 * Never fails.
 */
extern void xs_s3xml_parse_error (const char *body, size_t len,
                                  char *code, size_t code_size,
                                  char *message, size_t message_size);

/* Make server text safe to print, in place: each control character
 * (C0, DEL, C1: what a terminal acts on) and each byte that is not part
 * of a UTF-8 character becomes '?'.  Never longer than it was.
 */
extern void xs_s3xml_clean_text (char *text);

#endif /* XSNAP_S3XML_H */
