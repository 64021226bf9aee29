/* xsnap: permission policy documents (docs/FORMAT.md, "Permission policy
 * documents (version 2.0)").
 *
 * A policy document says which actions an account may or may not take on
 * which resources, in the JSON shape the clouds xsnap is modelled on use
 * (Tencent Cloud CAM "version 2.0", Alibaba Cloud RAM "Version 1").  This
 * module only parses, validates and evaluates documents: it is pure, holds
 * no state and never reads the catalog.  Loading the documents attached to
 * an account and combining their verdict with ownership, sharing and admin
 * rules is lib/access/access.c's job.
 *
 * Documents come from users, so they are checked strictly: anything that
 * could not mean what its author intended (unknown keys, unknown actions,
 * actions of another service, resources of the wrong shape) is refused
 * with one line naming the file, the line and the reason.
 */
#ifndef XSNAP_PERMDOC_H
#define XSNAP_PERMDOC_H

#include <stdbool.h>
#include <stddef.h>

/* Limits on one document (refused beyond). */
#define XS_PERMDOC_MAX_SIZE (64 * 1024)   /* bytes of JSON text */
#define XS_PERMDOC_MAX_STATEMENTS 100
#define XS_PERMDOC_MAX_ITEMS 100          /* actions or resources per statement */
#define XS_PERMDOC_MAX_STRING 512         /* bytes in any string */

struct xs_permdoc;                         /* one parsed, validated document */

/* Parse and validate a policy document (JSON text of LEN bytes).  ORIGIN
 * names it in errors (a file name; NULL means "policy").  Malformed
 * documents are refused with one xs_error line giving ORIGIN, the line (and
 * column for JSON syntax errors) and the reason, e.g.
 *   "policy.json:7: statement 2: unknown effect 'alow' (expected allow or deny)"
 * Returns NULL on error.
 */
extern struct xs_permdoc *xs_permdoc_parse (const char *text, size_t len,
                                          const char *origin);
extern void xs_permdoc_free (struct xs_permdoc *policy);

/* The document in canonical JSON (compact; lower-case keys in the order
 * version, statement, and effect, action, resource; effect in lower case;
 * action and resource always arrays), malloc'd; what the catalog stores and
 * `policy-doc list` shows.  Parsing it again gives an equivalent document.
 * Returns NULL (reported) if out of memory.
 */
extern char *xs_permdoc_canonical (const struct xs_permdoc *policy);

/* Number of statements in POLICY (at least 1). */
extern size_t xs_permdoc_statement_count (const struct xs_permdoc *policy);

enum xs_permdoc_effect { XS_PERMDOC_NONE = 0, XS_PERMDOC_ALLOW, XS_PERMDOC_DENY };

/* What POLICY says about ACTION ("xsnap:CreateSnapshot") on RESOURCE
 * ("xsnap:REGION:ACCOUNT:snapshot/ID"): DENY if any matching statement
 * denies, else ALLOW if any matching statement allows, else NONE.  A
 * statement matches when one of its actions matches ACTION and one of its
 * resources matches RESOURCE.
 */
extern enum xs_permdoc_effect xs_permdoc_evaluate (const struct xs_permdoc *policy,
                                                 const char *action,
                                                 const char *resource);

/* "allow", "deny" or "none". */
extern const char *xs_permdoc_effect_name (enum xs_permdoc_effect effect);

/* Wildcard match used for actions and resources: '*' matches any run of
 * characters (including ':' and '/', and the empty run), '?' exactly one
 * character; everything else matches itself.  Actions compare
 * case-insensitively (ASCII), resources case-sensitively.
 */
extern bool xs_permdoc_match (const char *pattern, const char *subject,
                             bool ignore_case);

/* Is NAME a known action ("xsnap:CreateSnapshot", exact but
 * case-insensitive, no wildcard)?  And the table of them, as spelled in
 * docs/FORMAT.md.
 */
extern bool xs_permdoc_action_known (const char *name);
extern const char *const *xs_permdoc_actions (void);          /* NULL-terminated */

/* The resource types a resource name may have (NULL-terminated). */
extern const char *const *xs_permdoc_resource_types (void);

#endif /* XSNAP_PERMDOC_H */
