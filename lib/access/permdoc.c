/* xsnap: permission policy documents (see permdoc.h and docs/FORMAT.md).
 *
 * jansson parses the JSON and reports syntax errors with their line, but it
 * keeps no positions for the values it returns.  People fix policy files by
 * line, so when a value is wrong the line is found again in the raw text:
 * jansson keeps object members in document order and duplicate keys are
 * refused, so the Nth member or element of the tree is the Nth in the text,
 * and a small scanner (locate_line) walks the text along that path of
 * indices.  This runs only on the error path.
 *
 * A parsed document is a flat array of statements, each holding its effect
 * and copies of its action and resource patterns; evaluation is a loop of
 * wildcard matches with no allocation, so it is safe from any thread.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "base/error.h"
#include "access/permdoc.h"

#define SERVICE_PREFIX "xsnap:"
#define SERVICE_PREFIX_LEN 6

/* Deepest path of indices an error needs to locate:
 * top object member → statement element → statement member → list element.
 */
#define MAX_PATH 4

/* Longest rendition of an offending value in a message. */
#define QUOTE_MAX 80

/* Every action an xsnap permission check can ask about.  Keep in step with
 * docs/FORMAT.md.
 */
static const char *const known_actions[] = {
  "xsnap:CreateVolume",
  "xsnap:DeleteVolume",
  "xsnap:DescribeVolumes",
  "xsnap:ResizeVolume",
  "xsnap:ResetVolume",
  "xsnap:HydrateVolume",
  "xsnap:ImportVolume",
  "xsnap:AttachVolume",
  "xsnap:ReadVolume",
  "xsnap:CreateSnapshot",
  "xsnap:DeleteSnapshot",
  "xsnap:DescribeSnapshots",
  "xsnap:ReadSnapshot",
  "xsnap:ExportSnapshot",
  "xsnap:ReceiveSnapshot",
  "xsnap:CreateVolumeFromSnapshot",
  "xsnap:ShareSnapshot",
  "xsnap:UnshareSnapshot",
  "xsnap:AcceptShare",
  "xsnap:DescribeShares",
  "xsnap:ShareChain",
  "xsnap:UnshareChain",
  "xsnap:CopySnapshot",
  "xsnap:CopySnapshotCrossAccount",
  "xsnap:CopySnapshotCrossRegion",
  "xsnap:CopyAutoSnapshotPolicyCrossAccount",
  "xsnap:CreateAutoSnapshotPolicy",
  "xsnap:DeleteAutoSnapshotPolicy",
  "xsnap:AttachAutoSnapshotPolicy",
  "xsnap:DetachAutoSnapshotPolicy",
  "xsnap:DescribeAutoSnapshotPolicies",
  "xsnap:DescribeJobs",
  "xsnap:CreateAccount",
  "xsnap:DeleteAccount",
  "xsnap:DescribeAccounts",
  "xsnap:AttachPolicyDoc",
  "xsnap:DetachPolicyDoc",
  "xsnap:DescribePolicyDocs",
  "xsnap:MapUid",
  "xsnap:DescribeAudit",
  "xsnap:CreateKey",
  "xsnap:DisableKey",
  "xsnap:GrantKey",
  "xsnap:DescribeKeys",
  "xsnap:ExportKey",
  "xsnap:ImportKey",
  "xsnap:CreateRegion",
  "xsnap:DeleteRegion",
  "xsnap:DescribeRegions",
  "xsnap:RunGc",
  "xsnap:DescribeMetrics",
  "xsnap:SetConfig",
  NULL
};

/* TYPE in xsnap:REGION:ACCOUNT:TYPE/ID.  "policy" is an automatic snapshot
 * policy, "policydoc" a permission policy document, "setting" one of the
 * store's settings (lib/catalog/config.c).
 */
static const char *const resource_types[] = {
  "account", "audit", "chain", "job", "key", "policy", "policydoc",
  "region", "setting", "share", "snapshot", "volume",
  NULL
};

struct statement {
  enum xs_permdoc_effect effect;
  size_t nactions;
  char **actions;
  size_t nresources;
  char **resources;
};

struct xs_permdoc {
  char *version;
  size_t nstatements;
  struct statement *statements;
};

/* What the parser needs to report an error at the right place. */
struct parser {
  const char *text;
  size_t len;
  const char *origin;
  /* Path of indices from the top value to the value being checked. */
  size_t path[MAX_PATH];
  size_t depth;
  /* 1-based number of the statement being checked, 0 outside them. */
  size_t statement;
};

/* ---------------------------------------------------------------------- */
/* Matching */

static inline unsigned char
ascii_lower (unsigned char c)
{
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static inline bool
same_char (unsigned char a, unsigned char b, bool ignore_case)
{
  return ignore_case ? ascii_lower (a) == ascii_lower (b) : a == b;
}

/* Glob matching with the usual single backtrack point: on a mismatch, let
 * the last '*' absorb one more character.  O(pattern × subject) at worst,
 * no recursion, no allocation.
 */
bool
xs_permdoc_match (const char *pattern, const char *subject, bool ignore_case)
{
  const char *p = pattern, *s = subject;
  const char *star = NULL, *resume = NULL;

  while (*s) {
    if (*p == '*') {
      star = p++;
      resume = s;
    }
    else if (*p == '?' || (*p && same_char (*p, *s, ignore_case))) {
      p++;
      s++;
    }
    else if (star) {
      p = star + 1;
      s = ++resume;
    }
    else
      return false;
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}

static bool
has_wildcard (const char *pattern)
{
  return strpbrk (pattern, "*?") != NULL;
}

static bool
statement_matches (const struct statement *st, const char *action,
                   const char *resource)
{
  bool action_matches = false;
  size_t i;

  for (i = 0; i < st->nactions && !action_matches; i++)
    action_matches = xs_permdoc_match (st->actions[i], action, true);
  if (!action_matches)
    return false;
  for (i = 0; i < st->nresources; i++)
    if (xs_permdoc_match (st->resources[i], resource, false))
      return true;
  return false;
}

enum xs_permdoc_effect
xs_permdoc_evaluate (const struct xs_permdoc *policy, const char *action,
                    const char *resource)
{
  enum xs_permdoc_effect verdict = XS_PERMDOC_NONE;
  size_t i;

  if (policy == NULL || action == NULL || resource == NULL)
    return XS_PERMDOC_NONE;
  for (i = 0; i < policy->nstatements; i++) {
    const struct statement *st = &policy->statements[i];

    if (!statement_matches (st, action, resource))
      continue;
    if (st->effect == XS_PERMDOC_DENY)
      return XS_PERMDOC_DENY;
    verdict = XS_PERMDOC_ALLOW;
  }
  return verdict;
}

const char *
xs_permdoc_effect_name (enum xs_permdoc_effect effect)
{
  switch (effect) {
  case XS_PERMDOC_ALLOW: return "allow";
  case XS_PERMDOC_DENY: return "deny";
  case XS_PERMDOC_NONE: break;
  }
  return "none";
}

/* ---------------------------------------------------------------------- */
/* Tables */

const char *const *
xs_permdoc_actions (void)
{
  return known_actions;
}

const char *const *
xs_permdoc_resource_types (void)
{
  return resource_types;
}

bool
xs_permdoc_action_known (const char *name)
{
  size_t i;

  if (name == NULL)
    return false;
  for (i = 0; known_actions[i]; i++)
    if (strcasecmp (known_actions[i], name) == 0)
      return true;
  return false;
}

static bool
pattern_matches_some_action (const char *pattern)
{
  size_t i;

  for (i = 0; known_actions[i]; i++)
    if (xs_permdoc_match (pattern, known_actions[i], true))
      return true;
  return false;
}

static bool
resource_type_known (const char *type, size_t len)
{
  size_t i;

  for (i = 0; resource_types[i]; i++)
    if (strlen (resource_types[i]) == len
        && memcmp (resource_types[i], type, len) == 0)
      return true;
  return false;
}

/* Does the type pattern TYPE (LEN bytes, with wildcards) match some known
 * type?
 */
static bool
type_pattern_matches_some_type (const char *type, size_t len)
{
  char pattern[XS_PERMDOC_MAX_STRING + 1];
  size_t i;

  if (len > XS_PERMDOC_MAX_STRING)
    return false;
  memcpy (pattern, type, len);
  pattern[len] = '\0';
  for (i = 0; resource_types[i]; i++)
    if (xs_permdoc_match (pattern, resource_types[i], false))
      return true;
  return false;
}

/* ---------------------------------------------------------------------- */
/* Locating values in the raw text (error path only) */

struct cursor {
  const char *p, *end;
  int line;
};

static void
skip_space (struct cursor *c)
{
  while (c->p < c->end
         && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')) {
    if (*c->p == '\n')
      c->line++;
    c->p++;
  }
}

/* At an opening quote: move past the closing one.  (JSON strings hold no
 * raw newlines.)
 */
static void
skip_string (struct cursor *c)
{
  c->p++;
  while (c->p < c->end && *c->p != '"') {
    if (*c->p == '\\' && c->p + 1 < c->end)
      c->p++;
    c->p++;
  }
  if (c->p < c->end)
    c->p++;
}

static bool
ends_scalar (char ch)
{
  return ch != '\0' && strchr (" \t\r\n\"{}[],:", ch) != NULL;
}

/* Move past one value of any kind, without recursion. */
static void
skip_value (struct cursor *c)
{
  size_t nesting = 0;

  do {
    skip_space (c);
    if (c->p >= c->end)
      return;
    switch (*c->p) {
    case '"':
      skip_string (c);
      break;
    case '{': case '[':
      nesting++;
      c->p++;
      break;
    case '}': case ']':
      if (nesting > 0)
        nesting--;
      c->p++;
      break;
    case ',': case ':':
      /* between the members or elements of a nested value */
      c->p++;
      break;
    default:
      /* a number or a literal: at least one character */
      do
        c->p++;
      while (c->p < c->end && !ends_scalar (*c->p));
      if (nesting == 0)
        return;
    }
  } while (nesting > 0);
}

/* Inside an object or array, just past its opening bracket: move to
 * member or element INDEX and return true, leaving the cursor at its value
 * and *LINE at the line where it starts (the key's line for a member).
 */
static bool
enter_child (struct cursor *c, bool is_object, size_t index, int *line)
{
  size_t i;

  for (i = 0;; i++) {
    skip_space (c);
    if (c->p >= c->end || *c->p == '}' || *c->p == ']')
      return false;
    *line = c->line;
    if (is_object) {
      skip_string (c);
      skip_space (c);
      if (c->p < c->end && *c->p == ':')
        c->p++;
      skip_space (c);
    }
    if (i == index)
      return true;
    skip_value (c);
    skip_space (c);
    if (c->p < c->end && *c->p == ',')
      c->p++;
  }
}

/* The line of the value at PATH (or as near as the text allows). */
static int
locate_line (const char *text, size_t len, const size_t *path, size_t depth)
{
  struct cursor c = { .p = text, .end = text + len, .line = 1 };
  int line;
  size_t i;

  skip_space (&c);
  line = c.line;
  for (i = 0; i < depth; i++) {
    bool is_object;

    if (c.p >= c.end || (*c.p != '{' && *c.p != '['))
      break;
    is_object = *c.p == '{';
    c.p++;
    if (!enter_child (&c, is_object, path[i], &line))
      break;
  }
  return line;
}

/* ---------------------------------------------------------------------- */
/* Error reporting */

/* Render S for a message: printable ASCII as is, other bytes escaped,
 * shortened with "..." past QUOTE_MAX.
 */
static const char *
quote (const char *s, char *buf, size_t size)
{
  size_t n = 0;

  for (; *s && n + 8 < size; s++) {
    unsigned char c = *s;

    if (n >= QUOTE_MAX) {
      n += snprintf (buf + n, size - n, "...");
      break;
    }
    if (c >= 0x20 && c < 0x7f)
      buf[n++] = c;
    else
      n += snprintf (buf + n, size - n, "\\x%02x", c);
  }
  buf[n] = '\0';
  return buf;
}

#define QUOTE_BUF (QUOTE_MAX + 16)

static const char *
origin_name (const struct parser *ps)
{
  return ps->origin ? ps->origin : "policy";
}

/* Report a problem with the value at the parser's current path, naming
 * the statement when inside one.
 */
static void __attribute__ ((format (printf, 2, 3)))
refuse (const struct parser *ps, const char *fmt, ...)
{
  char reason[1024];
  va_list args;
  int line;

  va_start (args, fmt);
  vsnprintf (reason, sizeof reason, fmt, args);
  va_end (args);
  line = locate_line (ps->text, ps->len, ps->path,
                      ps->depth < MAX_PATH ? ps->depth : MAX_PATH);
  if (ps->statement > 0)
    xs_error ("%s:%d: statement %zu: %s", origin_name (ps), line,
              ps->statement, reason);
  else
    xs_error ("%s:%d: %s", origin_name (ps), line, reason);
}

static void
push (struct parser *ps, size_t index)
{
  if (ps->depth < MAX_PATH)
    ps->path[ps->depth] = index;
  ps->depth++;
}

static void
pop (struct parser *ps)
{
  ps->depth--;
}

/* ---------------------------------------------------------------------- */
/* Freeing */

static void
free_strings (char **strings, size_t n)
{
  size_t i;

  if (strings == NULL)
    return;
  for (i = 0; i < n; i++)
    free (strings[i]);
  free (strings);
}

void
xs_permdoc_free (struct xs_permdoc *policy)
{
  size_t i;

  if (policy == NULL)
    return;
  for (i = 0; i < policy->nstatements; i++) {
    free_strings (policy->statements[i].actions,
                  policy->statements[i].nactions);
    free_strings (policy->statements[i].resources,
                  policy->statements[i].nresources);
  }
  free (policy->statements);
  free (policy->version);
  free (policy);
}

size_t
xs_permdoc_statement_count (const struct xs_permdoc *policy)
{
  return policy ? policy->nstatements : 0;
}

/* ---------------------------------------------------------------------- */
/* Validation of single values */

/* Refuse strings longer than the limit.  WHAT names the value. */
static int
check_length (const struct parser *ps, json_t *value, const char *what)
{
  size_t len = json_string_length (value);

  if (len > XS_PERMDOC_MAX_STRING) {
    refuse (ps, "%s is %zu bytes long; at most %d allowed", what, len,
            XS_PERMDOC_MAX_STRING);
    return -1;
  }
  return 0;
}

/* Levenshtein distance between A and B ignoring case, for "did you
 * mean".  Both are at most XS_PERMDOC_MAX_STRING bytes.
 */
static size_t
edit_distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  size_t row[XS_PERMDOC_MAX_STRING + 1];
  size_t i, j;

  if (la > XS_PERMDOC_MAX_STRING || lb > XS_PERMDOC_MAX_STRING)
    return (size_t) -1;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    size_t diagonal = row[0];

    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t above = row[j];
      size_t cost = same_char (a[i - 1], b[j - 1], true) ? 0 : 1;
      size_t best = diagonal + cost;

      if (above + 1 < best)
        best = above + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      diagonal = above;
      row[j] = best;
    }
  }
  return row[lb];
}

/* The known action closest to NAME, if close enough to be a typo. */
static const char *
closest_action (const char *name)
{
  const char *best = NULL;
  size_t best_distance = (size_t) -1;
  size_t i;

  for (i = 0; known_actions[i]; i++) {
    size_t d = edit_distance (name, known_actions[i]);

    if (d < best_distance) {
      best_distance = d;
      best = known_actions[i];
    }
  }
  /* A third of the action's own name (after "xsnap:") may be wrong. */
  if (best && best_distance <= (strlen (best) - SERVICE_PREFIX_LEN) / 3)
    return best;
  return NULL;
}

static bool
action_char_ok (char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*'
    || c == '?';
}

/* ACTION without the "xsnap:" prefix, "*" alone, or the prefix with a
 * pattern of letters and wildcards.
 */
static int
check_action (const struct parser *ps, const char *action)
{
  char q[QUOTE_BUF];
  const char *colon, *name, *suggestion;

  if (strcmp (action, "*") == 0)
    return 0;
  colon = strchr (action, ':');
  if (colon == NULL) {
    char prefixed[SERVICE_PREFIX_LEN + XS_PERMDOC_MAX_STRING + 1];

    snprintf (prefixed, sizeof prefixed, SERVICE_PREFIX "%s", action);
    if (xs_permdoc_action_known (prefixed)
        || (has_wildcard (action) && pattern_matches_some_action (prefixed)))
      refuse (ps, "action '%s' lacks the service prefix (write 'xsnap:%s')",
              quote (action, q, sizeof q), quote (action, q, sizeof q));
    else
      refuse (ps, "action '%s' is not '*' or xsnap:ACTION",
              quote (action, q, sizeof q));
    return -1;
  }
  if ((size_t) (colon - action) != SERVICE_PREFIX_LEN - 1
      || strncasecmp (action, SERVICE_PREFIX, SERVICE_PREFIX_LEN) != 0) {
    char service[QUOTE_BUF], qs[QUOTE_BUF];
    size_t n = colon - action < QUOTE_MAX ? colon - action : QUOTE_MAX;

    memcpy (service, action, n);
    service[n] = '\0';
    refuse (ps, "action '%s' belongs to service '%s', not xsnap "
            "(xsnap actions are written xsnap:ACTION)",
            quote (action, q, sizeof q), quote (service, qs, sizeof qs));
    return -1;
  }
  name = action + SERVICE_PREFIX_LEN;
  if (*name == '\0') {
    refuse (ps, "action '%s' names no action", quote (action, q, sizeof q));
    return -1;
  }
  for (; *name; name++)
    if (!action_char_ok (*name)) {
      char bad[2] = { *name, '\0' };
      char qc[QUOTE_BUF];

      refuse (ps, "action '%s' contains '%s' (actions are letters, "
              "with '*' and '?' as wildcards)",
              quote (action, q, sizeof q), quote (bad, qc, sizeof qc));
      return -1;
    }
  if (has_wildcard (action)) {
    if (!pattern_matches_some_action (action)) {
      refuse (ps, "action '%s' matches no known action, so it could never "
              "apply", quote (action, q, sizeof q));
      return -1;
    }
    return 0;
  }
  if (xs_permdoc_action_known (action))
    return 0;
  suggestion = closest_action (action);
  if (suggestion)
    refuse (ps, "unknown action '%s' (did you mean %s?)",
            quote (action, q, sizeof q), suggestion);
  else
    refuse (ps, "unknown action '%s'", quote (action, q, sizeof q));
  return -1;
}

/* Characters of the REGION and ACCOUNT parts: those of names, plus
 * wildcards.
 */
static bool
name_char_ok (char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
    || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
    || c == '*' || c == '?';
}

/* ID also allows '@' (VOLUME@SNAPSHOT). */
static bool
id_char_ok (char c)
{
  return name_char_ok (c) || c == '@';
}

static bool
span_ok (const char *s, size_t len, bool (*char_ok) (char))
{
  size_t i;

  for (i = 0; i < len; i++)
    if (!char_ok (s[i]))
      return false;
  return true;
}

static bool
span_has_wildcard (const char *s, size_t len)
{
  return memchr (s, '*', len) || memchr (s, '?', len);
}

/* Check the last part of a resource, TYPE/ID (or a wildcard spanning
 * both).
 */
static int
check_resource_tail (const struct parser *ps, const char *resource,
                     const char *tail)
{
  char q[QUOTE_BUF], qt[QUOTE_BUF];
  const char *slash = strchr (tail, '/');
  size_t type_len;

  if (slash == NULL) {
    if (strchr (tail, '*') && span_ok (tail, strlen (tail), id_char_ok))
      return 0;
    refuse (ps, "resource '%s': last part '%s' is not TYPE/ID",
            quote (resource, q, sizeof q), quote (tail, qt, sizeof qt));
    return -1;
  }
  type_len = slash - tail;
  if (span_has_wildcard (tail, type_len)
      ? !type_pattern_matches_some_type (tail, type_len)
      : !resource_type_known (tail, type_len)) {
    char type[QUOTE_BUF];
    size_t n = type_len < QUOTE_MAX ? type_len : QUOTE_MAX;

    memcpy (type, tail, n);
    type[n] = '\0';
    refuse (ps, "resource '%s': unknown resource type '%s' (expected "
            "account, audit, chain, job, key, policy, policydoc, region, "
            "setting, share, snapshot or volume)",
            quote (resource, q, sizeof q), quote (type, qt, sizeof qt));
    return -1;
  }
  if (slash[1] == '\0' || !span_ok (slash + 1, strlen (slash + 1), id_char_ok)) {
    refuse (ps, "resource '%s': ID must be letters, digits, '.', '_', '-', "
            "'@' or wildcards", quote (resource, q, sizeof q));
    return -1;
  }
  return 0;
}

/* "*" or xsnap:REGION:ACCOUNT:TYPE/ID. */
static int
check_resource (const struct parser *ps, const char *resource)
{
  char q[QUOTE_BUF];
  const char *region, *account, *tail;

  if (strcmp (resource, "*") == 0)
    return 0;
  if (strncmp (resource, SERVICE_PREFIX, SERVICE_PREFIX_LEN) != 0) {
    refuse (ps, "resource '%s' is not '*' or xsnap:REGION:ACCOUNT:TYPE/ID",
            quote (resource, q, sizeof q));
    return -1;
  }
  region = resource + SERVICE_PREFIX_LEN;
  account = strchr (region, ':');
  tail = account ? strchr (account + 1, ':') : NULL;
  if (account == NULL || tail == NULL || strchr (tail + 1, ':')) {
    refuse (ps, "resource '%s' is not xsnap:REGION:ACCOUNT:TYPE/ID "
            "(4 parts separated by ':')", quote (resource, q, sizeof q));
    return -1;
  }
  account++;
  tail++;
  if (!span_ok (region, account - 1 - region, name_char_ok)) {
    refuse (ps, "resource '%s': REGION must be letters, digits, '.', '_', "
            "'-' or wildcards", quote (resource, q, sizeof q));
    return -1;
  }
  if (!span_ok (account, tail - 1 - account, name_char_ok)) {
    refuse (ps, "resource '%s': ACCOUNT must be letters, digits, '.', '_', "
            "'-' or wildcards", quote (resource, q, sizeof q));
    return -1;
  }
  return check_resource_tail (ps, resource, tail);
}

/* ---------------------------------------------------------------------- */
/* Validation of the document's structure */

/* Fold KEY to lower case into BUF; false if it is too long to be one we
 * know.
 */
static bool
fold_key (const char *key, char *buf, size_t size)
{
  size_t i;

  for (i = 0; key[i]; i++) {
    if (i + 1 >= size)
      return false;
    buf[i] = ascii_lower (key[i]);
  }
  buf[i] = '\0';
  return true;
}

/* Why a key we do not take is refused. */
static const char *
unsupported_key_reason (const char *folded)
{
  if (strcmp (folded, "condition") == 0)
    return "condition is not supported";
  if (strcmp (folded, "principal") == 0 || strcmp (folded, "notprincipal") == 0)
    return "principal is not supported (a document applies to the accounts "
      "it is attached to)";
  if (strcmp (folded, "notaction") == 0)
    return "notaction is not supported (list the actions, or deny them)";
  if (strcmp (folded, "notresource") == 0)
    return "notresource is not supported (list the resources, or deny them)";
  if (strcmp (folded, "sid") == 0 || strcmp (folded, "id") == 0)
    return "sid and id are not supported";
  return NULL;
}

/* Look KEY up (case-insensitively) in NAMES; refuse unknown keys and keys
 * seen before (in *SEEN, one bit per name).  Returns the index or -1.
 */
static int
classify_key (const struct parser *ps, const char *key,
              const char *const *names, unsigned *seen, const char *where)
{
  char folded[16], q[QUOTE_BUF];
  const char *reason;
  int i;

  if (fold_key (key, folded, sizeof folded)) {
    for (i = 0; names[i]; i++)
      if (strcmp (folded, names[i]) == 0) {
        if (*seen & (1u << i)) {
          refuse (ps, "duplicate key '%s' (keys are not case-sensitive)",
                  quote (key, q, sizeof q));
          return -1;
        }
        *seen |= 1u << i;
        return i;
      }
    reason = unsupported_key_reason (folded);
    if (reason) {
      refuse (ps, "%s", reason);
      return -1;
    }
  }
  refuse (ps, "unknown key '%s' in %s", quote (key, q, sizeof q), where);
  return -1;
}

/* Copy the strings of a string-or-array field into *OUT. */
static int
parse_string_list (struct parser *ps, json_t *value, const char *what,
                   int (*check) (const struct parser *, const char *),
                   char ***out, size_t *n)
{
  size_t count, i;

  if (json_is_string (value))
    count = 1;
  else if (json_is_array (value))
    count = json_array_size (value);
  else {
    refuse (ps, "%s must be a string or an array of strings", what);
    return -1;
  }
  if (count == 0) {
    refuse (ps, "%s must not be an empty array", what);
    return -1;
  }
  if (count > XS_PERMDOC_MAX_ITEMS) {
    push (ps, XS_PERMDOC_MAX_ITEMS);
    refuse (ps, "%s has %zu entries; at most %d allowed", what, count,
            XS_PERMDOC_MAX_ITEMS);
    pop (ps);
    return -1;
  }
  *out = calloc (count, sizeof **out);
  if (*out == NULL) {
    xs_error ("%s: %m", origin_name (ps));
    return -1;
  }
  for (i = 0; i < count; i++) {
    json_t *item = json_is_array (value) ? json_array_get (value, i) : value;
    int r;

    if (json_is_array (value))
      push (ps, i);
    if (!json_is_string (item)) {
      refuse (ps, "%s %zu is not a string", what, i + 1);
      r = -1;
    }
    else
      r = check_length (ps, item, what) == -1
        || check (ps, json_string_value (item)) == -1 ? -1 : 0;
    if (json_is_array (value))
      pop (ps);
    if (r == -1)
      return -1;
    (*out)[i] = strdup (json_string_value (item));
    if ((*out)[i] == NULL) {
      xs_error ("%s: %m", origin_name (ps));
      return -1;
    }
    *n = i + 1;
  }
  return 0;
}

static int
parse_effect (const struct parser *ps, json_t *value,
              enum xs_permdoc_effect *effect)
{
  char q[QUOTE_BUF];
  const char *s;

  if (!json_is_string (value)) {
    refuse (ps, "effect must be a string (allow or deny)");
    return -1;
  }
  if (check_length (ps, value, "effect") == -1)
    return -1;
  s = json_string_value (value);
  if (strcasecmp (s, "allow") == 0)
    *effect = XS_PERMDOC_ALLOW;
  else if (strcasecmp (s, "deny") == 0)
    *effect = XS_PERMDOC_DENY;
  else {
    refuse (ps, "unknown effect '%s' (expected allow or deny)",
            quote (s, q, sizeof q));
    return -1;
  }
  return 0;
}

enum { ST_EFFECT, ST_ACTION, ST_RESOURCE };
static const char *const statement_keys[] = {
  "effect", "action", "resource", NULL
};

/* One statement object; the parser's path points at it. */
static int
parse_statement (struct parser *ps, json_t *obj, struct statement *st)
{
  unsigned seen = 0;
  size_t index = 0;
  const char *key;
  json_t *value;

  if (!json_is_object (obj)) {
    refuse (ps, "not an object");
    return -1;
  }
  json_object_foreach (obj, key, value) {
    int which, r = -1;

    push (ps, index++);
    which = classify_key (ps, key, statement_keys, &seen, "a statement");
    if (which == ST_EFFECT)
      r = parse_effect (ps, value, &st->effect);
    else if (which == ST_ACTION)
      r = parse_string_list (ps, value, "action", check_action,
                             &st->actions, &st->nactions);
    else if (which == ST_RESOURCE)
      r = parse_string_list (ps, value, "resource", check_resource,
                             &st->resources, &st->nresources);
    pop (ps);
    if (r == -1)
      return -1;
  }
  if (!(seen & (1u << ST_EFFECT))) {
    refuse (ps, "effect is missing (allow or deny)");
    return -1;
  }
  if (!(seen & (1u << ST_ACTION))) {
    refuse (ps, "action is missing");
    return -1;
  }
  if (!(seen & (1u << ST_RESOURCE))) {
    refuse (ps, "resource is missing");
    return -1;
  }
  return 0;
}

/* The "statement" array; the parser's path points at it. */
static int
parse_statements (struct parser *ps, json_t *array, struct xs_permdoc *policy)
{
  size_t count, i;

  if (!json_is_array (array)) {
    refuse (ps, "statement must be an array of statements");
    return -1;
  }
  count = json_array_size (array);
  if (count == 0) {
    refuse (ps, "statement must not be an empty array");
    return -1;
  }
  if (count > XS_PERMDOC_MAX_STATEMENTS) {
    push (ps, XS_PERMDOC_MAX_STATEMENTS);
    refuse (ps, "%zu statements; at most %d allowed", count,
            XS_PERMDOC_MAX_STATEMENTS);
    pop (ps);
    return -1;
  }
  policy->statements = calloc (count, sizeof *policy->statements);
  if (policy->statements == NULL) {
    xs_error ("%s: %m", origin_name (ps));
    return -1;
  }
  policy->nstatements = count;
  for (i = 0; i < count; i++) {
    int r;

    push (ps, i);
    ps->statement = i + 1;
    r = parse_statement (ps, json_array_get (array, i),
                         &policy->statements[i]);
    ps->statement = 0;
    pop (ps);
    if (r == -1)
      return -1;
  }
  return 0;
}

static int
parse_version (const struct parser *ps, json_t *value, char **version)
{
  char q[QUOTE_BUF];
  const char *s;

  if (!json_is_string (value)) {
    refuse (ps, "version must be the string \"2.0\"");
    return -1;
  }
  s = json_string_value (value);
  if (strcmp (s, "2.0") != 0 && strcmp (s, "1") != 0) {
    refuse (ps, "unsupported version '%s' (expected \"2.0\", or \"1\")",
            quote (s, q, sizeof q));
    return -1;
  }
  *version = strdup (s);
  if (*version == NULL) {
    xs_error ("%s: %m", origin_name (ps));
    return -1;
  }
  return 0;
}

enum { TOP_VERSION, TOP_STATEMENT };
static const char *const top_keys[] = { "version", "statement", NULL };

static int
parse_document (struct parser *ps, json_t *root, struct xs_permdoc *policy)
{
  unsigned seen = 0;
  size_t index = 0;
  const char *key;
  json_t *value;

  if (!json_is_object (root)) {
    refuse (ps, "a policy document must be a JSON object");
    return -1;
  }
  json_object_foreach (root, key, value) {
    int which, r = -1;

    push (ps, index++);
    which = classify_key (ps, key, top_keys, &seen, "a policy document");
    if (which == TOP_VERSION)
      r = parse_version (ps, value, &policy->version);
    else if (which == TOP_STATEMENT)
      r = parse_statements (ps, value, policy);
    pop (ps);
    if (r == -1)
      return -1;
  }
  if (!(seen & (1u << TOP_VERSION))) {
    refuse (ps, "version is missing (\"version\": \"2.0\")");
    return -1;
  }
  if (!(seen & (1u << TOP_STATEMENT))) {
    refuse (ps, "statement is missing");
    return -1;
  }
  return 0;
}

static json_t *
load_json (const struct parser *ps)
{
  json_error_t err;
  json_t *root;

  root = json_loadb (ps->text, ps->len, JSON_REJECT_DUPLICATES, &err);
  if (root == NULL) {
    if (err.line > 0 && err.column > 0)
      xs_error ("%s:%d:%d: %s", origin_name (ps), err.line, err.column,
                err.text);
    else if (err.line > 0)
      xs_error ("%s:%d: %s", origin_name (ps), err.line, err.text);
    else
      xs_error ("%s: %s", origin_name (ps), err.text);
  }
  return root;
}

struct xs_permdoc *
xs_permdoc_parse (const char *text, size_t len, const char *origin)
{
  struct parser ps = { .text = text, .len = len, .origin = origin };
  struct xs_permdoc *policy;
  json_t *root;

  if (len > XS_PERMDOC_MAX_SIZE) {
    xs_error ("%s: policy document is %zu bytes; at most %d allowed",
              origin_name (&ps), len, XS_PERMDOC_MAX_SIZE);
    return NULL;
  }
  root = load_json (&ps);
  if (root == NULL)
    return NULL;
  policy = calloc (1, sizeof *policy);
  if (policy == NULL) {
    xs_error ("%s: %m", origin_name (&ps));
    json_decref (root);
    return NULL;
  }
  if (parse_document (&ps, root, policy) == -1) {
    xs_permdoc_free (policy);
    policy = NULL;
  }
  json_decref (root);
  return policy;
}

/* ---------------------------------------------------------------------- */
/* Canonical form */

static json_t *
string_array (char *const *strings, size_t n)
{
  json_t *array = json_array ();
  size_t i;

  if (array == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (json_array_append_new (array, json_string (strings[i])) == -1) {
      json_decref (array);
      return NULL;
    }
  return array;
}

static json_t *
statement_json (const struct statement *st)
{
  json_t *obj = json_object ();

  if (obj == NULL)
    return NULL;
  if (json_object_set_new (obj, "effect",
                           json_string (xs_permdoc_effect_name (st->effect))) == -1
      || json_object_set_new (obj, "action",
                              string_array (st->actions, st->nactions)) == -1
      || json_object_set_new (obj, "resource",
                              string_array (st->resources,
                                            st->nresources)) == -1) {
    json_decref (obj);
    return NULL;
  }
  return obj;
}

static json_t *
document_json (const struct xs_permdoc *policy)
{
  json_t *obj = json_object (), *statements = json_array ();
  size_t i;

  if (obj == NULL || statements == NULL)
    goto failed;
  for (i = 0; i < policy->nstatements; i++)
    if (json_array_append_new (statements,
                               statement_json (&policy->statements[i])) == -1)
      goto failed;
  if (json_object_set_new (obj, "version", json_string (policy->version)) == -1)
    goto failed;
  if (json_object_set_new (obj, "statement", statements) == -1) {
    statements = NULL;          /* set_new consumed it */
    goto failed;
  }
  return obj;

 failed:
  json_decref (statements);
  json_decref (obj);
  return NULL;
}

char *
xs_permdoc_canonical (const struct xs_permdoc *policy)
{
  json_t *obj = document_json (policy);
  char *text = NULL;

  if (obj)
    text = json_dumps (obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref (obj);
  if (text == NULL)
    xs_error ("policy: canonical form: out of memory");
  return text;
}
