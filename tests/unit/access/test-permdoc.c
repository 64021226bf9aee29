/* xsnap: tests for lib/access/permdoc.c.
 *
 * Policy documents are written by people, so besides evaluation (wildcards,
 * deny over allow) the tests pin down every refusal: its exact message and
 * the line it points at, since that line is what the author will look at.
 * The canonical form must mean exactly what the original meant.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/permdoc.h"
#include "base/names.h"
#include "tap.h"

static struct xs_permdoc *
parse (const char *text)
{
  return xs_permdoc_parse (text, strlen (text), "policy.json");
}

/* TEXT is refused with exactly MESSAGE. */
static void
refused (const char *text, const char *message, const char *what)
{
  struct xs_permdoc *p = parse (text);

  ok (p == NULL, "refused: %s", what);
  is_str (tap_take_error (), message, "  with the message and line");
  xs_permdoc_free (p);
}

static const char *
effect (const struct xs_permdoc *p, const char *action, const char *resource)
{
  return xs_permdoc_effect_name (xs_permdoc_evaluate (p, action, resource));
}

#define SNAP_R1_A1 "xsnap:r1:acct-1:snapshot/snap-1"

/* A cloud's example policy (Tencent Cloud CAM), with the cvm actions translated
 * to xsnap's.
 */
static const char seed_example[] =
  "{\n"
  "    \"version\": \"2.0\",\n"
  "    \"statement\": [\n"
  "        {\n"
  "            \"action\": [\n"
  "                \"xsnap:*Volume*\",\n"
  "                \"xsnap:*Snapshot*\"\n"
  "            ],\n"
  "            \"resource\": \"*\",\n"
  "            \"effect\": \"allow\"\n"
  "        }\n"
  "    ]\n"
  "}\n";

static void
test_seed_example (void)
{
  struct xs_permdoc *p = parse (seed_example);

  if (!ok (p != NULL, "a cloud's example policy parses"))
    return;
  is_int (xs_permdoc_statement_count (p), 1, "  one statement");
  is_str (effect (p, "xsnap:CopySnapshotCrossAccount", SNAP_R1_A1), "allow",
          "  allows CopySnapshotCrossAccount");
  is_str (effect (p, "xsnap:CopyAutoSnapshotPolicyCrossAccount",
                  "xsnap:r1:acct-1:policy/asp-1"), "allow",
          "  allows CopyAutoSnapshotPolicyCrossAccount");
  is_str (effect (p, "xsnap:CreateVolumeFromSnapshot", SNAP_R1_A1), "allow",
          "  allows CreateVolumeFromSnapshot");
  is_str (effect (p, "xsnap:ResizeVolume", "xsnap:r1:acct-1:volume/v"),
          "allow", "  allows ResizeVolume");
  is_str (effect (p, "xsnap:CreateAccount", "xsnap::acct-2:account/acct-2"),
          "none", "  says nothing about CreateAccount");
  is_str (effect (p, "xsnap:DescribeKeys", "*"), "none",
          "  says nothing about DescribeKeys");
  xs_permdoc_free (p);

  /* The original, with the other cloud's actions, is refused at the line
   * of its first action.
   */
  refused ("{\n"
           "    \"version\": \"2.0\",\n"
           "    \"statement\": [\n"
           "        {\n"
           "            \"action\": [\n"
           "                \"cvm:*Cbs*\",\n"
           "                \"cvm:*Storage*\",\n"
           "                \"cvm:*Snapshot*\"\n"
           "            ],\n"
           "            \"resource\": \"*\",\n"
           "            \"effect\": \"allow\"\n"
           "        }\n"
           "    ]\n"
           "}\n",
           "policy.json:6: statement 1: action 'cvm:*Cbs*' belongs to service "
           "'cvm', not xsnap (xsnap actions are written xsnap:ACTION)",
           "a cloud's example policy with cvm: actions");
}

static void
test_match (void)
{
  ok (xs_permdoc_match ("*", "", false), "'*' matches the empty string");
  ok (xs_permdoc_match ("*", "xsnap:r:a:snapshot/x", false),
      "'*' matches ':' and '/'");
  ok (xs_permdoc_match ("xsnap:Copy*", "xsnap:CopySnapshotCrossRegion", true),
      "prefix wildcard");
  ok (!xs_permdoc_match ("xsnap:Copy*", "xsnap:CreateSnapshot", true),
      "prefix wildcard does not match another prefix");
  ok (xs_permdoc_match ("xsnap:*Snapshot*", "xsnap:CreateVolumeFromSnapshot",
                       true), "*Snapshot* matches a trailing Snapshot");
  ok (xs_permdoc_match ("xsnap:*Snapshot*", "xsnap:CopySnapshotCrossAccount",
                       true), "*Snapshot* matches an inner Snapshot");
  ok (xs_permdoc_match ("XSNAP:createsnapshot", "xsnap:CreateSnapshot", true),
      "actions ignore case");
  ok (!xs_permdoc_match ("xsnap:r1:ACCT-1:*", "xsnap:r1:acct-1:volume/v",
                        false), "resources do not ignore case");
  ok (xs_permdoc_match ("xsnap:r?:a:volume/v", "xsnap:r1:a:volume/v", false),
      "'?' matches one character");
  ok (!xs_permdoc_match ("xsnap:r?:a:volume/v", "xsnap:r:a:volume/v", false),
      "'?' does not match none");
  ok (!xs_permdoc_match ("xsnap:r?:a:volume/v", "xsnap:r12:a:volume/v", false),
      "'?' does not match two");
  ok (xs_permdoc_match ("a*b*c", "aXbYbZc", false), "backtracking over '*'");
  ok (!xs_permdoc_match ("a*b*c", "aXbYbZ", false), "  and its failure");
  ok (xs_permdoc_match ("**?", "x", false), "stacked wildcards");
  ok (!xs_permdoc_match ("abc", "ab", false), "a longer pattern fails");
  ok (!xs_permdoc_match ("ab", "abc", false), "a longer subject fails");
  ok (xs_permdoc_match ("", "", false), "empty matches empty");
}

static void
test_wildcard_actions (void)
{
  struct xs_permdoc *p =
    parse ("{\"version\":\"2.0\",\"statement\":["
           "{\"effect\":\"allow\",\"action\":\"xsnap:Copy*\","
           "\"resource\":\"*\"},"
           "{\"effect\":\"allow\",\"action\":\"xsnap:Describe?olumes\","
           "\"resource\":\"*\"}]}");

  if (!ok (p != NULL, "wildcard actions parse"))
    return;
  is_str (effect (p, "xsnap:CopySnapshot", SNAP_R1_A1), "allow",
          "  Copy* allows CopySnapshot");
  is_str (effect (p, "xsnap:copysnapshotcrossregion", SNAP_R1_A1), "allow",
          "  Copy* allows copysnapshotcrossregion (case)");
  is_str (effect (p, "xsnap:CreateSnapshot", SNAP_R1_A1), "none",
          "  Copy* does not allow CreateSnapshot");
  is_str (effect (p, "xsnap:DescribeVolumes", "*"), "allow",
          "  Describe?olumes allows DescribeVolumes");
  xs_permdoc_free (p);

  p = parse ("{\"version\":\"2.0\",\"statement\":[{\"effect\":\"allow\","
             "\"action\":\"*\",\"resource\":\"*\"}]}");
  if (ok (p != NULL, "action '*' parses")) {
    const char *const *a;
    bool all = true;

    for (a = xs_permdoc_actions (); *a; a++)
      all = all && xs_permdoc_evaluate (p, *a, SNAP_R1_A1) == XS_PERMDOC_ALLOW;
    ok (all, "  and allows every known action");
  }
  xs_permdoc_free (p);
}

static void
test_wildcard_resources (void)
{
  struct xs_permdoc *p =
    parse ("{\"version\":\"2.0\",\"statement\":[{\"effect\":\"allow\","
           "\"action\":[\"xsnap:ReadSnapshot\",\"xsnap:CopySnapshot\"],"
           "\"resource\":[\"xsnap:*:acct-1:snapshot/*\","
           "\"xsnap:r?:acct-2:volume/db-*\"]}]}");

  if (!ok (p != NULL, "wildcard resources parse"))
    return;
  is_str (effect (p, "xsnap:ReadSnapshot", SNAP_R1_A1), "allow",
          "  acct-1's snapshot in r1");
  is_str (effect (p, "xsnap:ReadSnapshot", "xsnap:eu-west:acct-1:snapshot/s"),
          "allow", "  acct-1's snapshot in another region");
  is_str (effect (p, "xsnap:ReadSnapshot", "xsnap:r1:acct-3:snapshot/snap-1"),
          "none", "  not acct-3's snapshot");
  is_str (effect (p, "xsnap:ReadSnapshot", "xsnap:r1:acct-1:volume/v"),
          "none", "  not acct-1's volume");
  is_str (effect (p, "xsnap:ReadSnapshot", "xsnap:r1:ACCT-1:snapshot/s"),
          "none", "  resources are case-sensitive");
  is_str (effect (p, "xsnap:CopySnapshot", "xsnap:r2:acct-2:volume/db-main"),
          "allow", "  r? and db-* match");
  is_str (effect (p, "xsnap:CopySnapshot", "xsnap:r22:acct-2:volume/db-1"),
          "none", "  r? does not match r22");
  is_str (effect (p, "xsnap:DeleteSnapshot", SNAP_R1_A1), "none",
          "  an action not listed says nothing");
  xs_permdoc_free (p);
}

static void
test_deny_beats_allow (void)
{
  static const char *const docs[] = {
    "{\"version\":\"2.0\",\"statement\":["
    "{\"effect\":\"allow\",\"action\":\"xsnap:*\",\"resource\":\"*\"},"
    "{\"effect\":\"deny\",\"action\":\"xsnap:Delete*\","
    "\"resource\":\"xsnap:*:acct-1:snapshot/keep-*\"}]}",
    "{\"version\":\"2.0\",\"statement\":["
    "{\"effect\":\"deny\",\"action\":\"xsnap:Delete*\","
    "\"resource\":\"xsnap:*:acct-1:snapshot/keep-*\"},"
    "{\"effect\":\"allow\",\"action\":\"xsnap:*\",\"resource\":\"*\"}]}",
  };
  size_t i;

  for (i = 0; i < 2; i++) {
    struct xs_permdoc *p = parse (docs[i]);

    if (!ok (p != NULL, "deny and allow, deny %s", i ? "first" : "last"))
      continue;
    is_str (effect (p, "xsnap:DeleteSnapshot",
                    "xsnap:r1:acct-1:snapshot/keep-1"), "deny",
            "  the explicit deny wins");
    is_str (effect (p, "xsnap:DeleteSnapshot",
                    "xsnap:r1:acct-1:snapshot/tmp-1"), "allow",
            "  other snapshots are allowed");
    is_str (effect (p, "xsnap:ReadSnapshot",
                    "xsnap:r1:acct-1:snapshot/keep-1"), "allow",
            "  other actions are allowed");
    xs_permdoc_free (p);
  }
}

static void
test_alibaba_shape (void)
{
  struct xs_permdoc *p =
    parse ("{\n"
           "  \"Version\": \"1\",\n"
           "  \"Statement\": [\n"
           "    {\n"
           "      \"Effect\": \"Allow\",\n"
           "      \"Action\": [\"xsnap:ShareSnapshot\", "
           "\"xsnap:DescribeSnapshots\"],\n"
           "      \"Resource\": [\"xsnap:cn-hangzhou:1234:snapshot/*\"]\n"
           "    },\n"
           "    {\n"
           "      \"Effect\": \"DENY\",\n"
           "      \"Action\": \"XSNAP:SHARESNAPSHOT\",\n"
           "      \"Resource\": \"xsnap:cn-hangzhou:1234:snapshot/s-secret\"\n"
           "    }\n"
           "  ]\n"
           "}\n");
  char *canonical;

  if (!ok (p != NULL, "Alibaba-cased keys and version \"1\" parse"))
    return;
  is_str (effect (p, "xsnap:ShareSnapshot",
                  "xsnap:cn-hangzhou:1234:snapshot/s-1"), "allow",
          "  allow applies");
  is_str (effect (p, "xsnap:ShareSnapshot",
                  "xsnap:cn-hangzhou:1234:snapshot/s-secret"), "deny",
          "  upper-case DENY applies");
  canonical = xs_permdoc_canonical (p);
  is_str (canonical,
          "{\"version\":\"1\",\"statement\":["
          "{\"effect\":\"allow\",\"action\":[\"xsnap:ShareSnapshot\","
          "\"xsnap:DescribeSnapshots\"],"
          "\"resource\":[\"xsnap:cn-hangzhou:1234:snapshot/*\"]},"
          "{\"effect\":\"deny\",\"action\":[\"XSNAP:SHARESNAPSHOT\"],"
          "\"resource\":[\"xsnap:cn-hangzhou:1234:snapshot/s-secret\"]}]}",
          "  canonical form: lower-case keys and effects, arrays");
  free (canonical);
  xs_permdoc_free (p);
}

/* A document of one statement whose body is BODY (the statement's
 * "{...}" begins on line 4).
 */
#define ONE(body)                                                       \
  "{\n"                                                                 \
  "  \"version\": \"2.0\",\n"                                           \
  "  \"statement\": [\n"                                                \
  "    {\n" body "\n    }\n"                                            \
  "  ]\n"                                                               \
  "}\n"

#define EFFECT   "      \"effect\": \"allow\",\n"
#define ACTION   "      \"action\": \"xsnap:CreateSnapshot\",\n"
#define RESOURCE "      \"resource\": \"*\""

static void
test_malformed_json (void)
{
  refused ("{\n  \"version\": \"2.0\",\n  \"statement\": [\n    {\n"
           "      \"effect\": \"allow\"\n      \"action\": \"*\"\n",
           "policy.json:6:14: '}' expected near '\"action\"'",
           "a missing comma (line and column from jansson)");
  refused ("", "policy.json:1: '[' or '{' expected near end of file",
           "an empty document");
  refused ("{\"version\":\"2.0\",\n\"version\":\"2.0\"}",
           "policy.json:2:9: duplicate object key near '\"version\"'",
           "a repeated key");
  refused ("[1, 2]", "policy.json:1: a policy document must be a JSON object",
           "an array at the top");
  ok (xs_permdoc_parse ("{}", 2, NULL) == NULL, "no origin");
  is_str (tap_take_error (), "policy:1: version is missing "
          "(\"version\": \"2.0\")", "  is called policy");
}

static void
test_malformed_top (void)
{
  refused ("{\n  \"version\": \"2.0\"\n}\n",
           "policy.json:1: statement is missing", "no statement");
  refused ("{\n  \"statement\": []\n}\n",
           "policy.json:2: statement must not be an empty array",
           "an empty statement array");
  refused ("{\n  \"statement\": [{}]\n}\n",
           "policy.json:2: statement 1: effect is missing (allow or deny)",
           "statements are checked before the missing version is noticed");
  refused ("{\n  \"version\": 2,\n  \"statement\": []\n}\n",
           "policy.json:2: version must be the string \"2.0\"",
           "a numeric version");
  refused ("{\n  \"version\": \"2012-10-17\",\n  \"statement\": []\n}\n",
           "policy.json:2: unsupported version '2012-10-17' "
           "(expected \"2.0\", or \"1\")", "another cloud's version");
  refused ("{\n  \"version\": \"2.0\",\n  \"statement\": {}\n}\n",
           "policy.json:3: statement must be an array of statements",
           "statement as an object");
  refused ("{\n  \"version\": \"2.0\",\n  \"Version\": \"2.0\",\n"
           "  \"statement\": []\n}\n",
           "policy.json:3: duplicate key 'Version' (keys are not "
           "case-sensitive)", "keys equal after case folding");
  refused ("{\n  \"version\": \"2.0\",\n  \"comment\": \"hi\",\n"
           "  \"statement\": []\n}\n",
           "policy.json:3: unknown key 'comment' in a policy document",
           "an unknown top-level key");
  refused ("{\n  \"version\": \"2.0\",\n  \"statement\": [\n    {\n" EFFECT
           ACTION RESOURCE "\n    },\n    \"allow\"\n  ]\n}\n",
           "policy.json:9: statement 2: not an object",
           "a statement that is a string");
}

static void
test_malformed_statement (void)
{
  refused (ONE (EFFECT ACTION "      \"resource\": \"*\",\n"
                "      \"condition\": {}"),
           "policy.json:8: statement 1: condition is not supported",
           "condition");
  refused (ONE (EFFECT ACTION RESOURCE ",\n      \"principal\": \"*\""),
           "policy.json:8: statement 1: principal is not supported "
           "(a document applies to the accounts it is attached to)",
           "principal");
  refused (ONE (EFFECT "      \"notaction\": \"xsnap:RunGc\",\n" RESOURCE),
           "policy.json:6: statement 1: notaction is not supported "
           "(list the actions, or deny them)", "notaction");
  refused (ONE ("      \"Sid\": \"1\",\n" EFFECT ACTION RESOURCE),
           "policy.json:5: statement 1: sid and id are not supported", "sid");
  refused (ONE (EFFECT ACTION RESOURCE ",\n      \"effects\": \"allow\""),
           "policy.json:8: statement 1: unknown key 'effects' in a statement",
           "an unknown statement key");
  refused (ONE (EFFECT ACTION RESOURCE ",\n      \"Effect\": \"deny\""),
           "policy.json:8: statement 1: duplicate key 'Effect' (keys are not "
           "case-sensitive)", "effect twice, in two cases");
  refused (ONE (ACTION RESOURCE),
           "policy.json:4: statement 1: effect is missing (allow or deny)",
           "missing effect (the statement's line)");
  refused (ONE (EFFECT RESOURCE),
           "policy.json:4: statement 1: action is missing", "missing action");
  refused (ONE (EFFECT "      \"action\": \"xsnap:RunGc\""),
           "policy.json:4: statement 1: resource is missing",
           "missing resource");
  refused (ONE ("      \"effect\": \"alow\",\n" ACTION RESOURCE),
           "policy.json:5: statement 1: unknown effect 'alow' "
           "(expected allow or deny)", "a misspelt effect");
  refused (ONE ("      \"effect\": true,\n" ACTION RESOURCE),
           "policy.json:5: statement 1: effect must be a string "
           "(allow or deny)", "a boolean effect");
  refused (ONE (EFFECT "      \"action\": 7,\n" RESOURCE),
           "policy.json:6: statement 1: action must be a string or an array "
           "of strings", "a numeric action");
  refused (ONE (EFFECT "      \"action\": [],\n" RESOURCE),
           "policy.json:6: statement 1: action must not be an empty array",
           "an empty action array");
  refused (ONE (EFFECT "      \"action\": [\n        \"xsnap:RunGc\",\n"
                "        null\n      ],\n" RESOURCE),
           "policy.json:8: statement 1: action 2 is not a string",
           "a null in the action array (its own line)");
  refused (ONE (EFFECT ACTION "      \"resource\": {\"a\": 1}"),
           "policy.json:7: statement 1: resource must be a string or an "
           "array of strings", "an object resource");
  refused (ONE (EFFECT ACTION "      \"resource\": []"),
           "policy.json:7: statement 1: resource must not be an empty array",
           "an empty resource array");
}

/* The statement with a bad value is found among several, on the value's
 * own line.
 */
static void
test_line_of_later_statement (void)
{
  refused ("{\"version\": \"2.0\", \"statement\": [\n"
           "  {\"effect\": \"allow\", \"action\": \"*\", \"resource\": \"*\"},\n"
           "  {\"effect\": \"deny\", \"action\": \"xsnap:RunGc\",\n"
           "   \"resource\": \"*\"},\n"
           "  {\"effect\": \"deny\",\n"
           "   \"action\": [\"xsnap:RunGc\", \"xsnap:ReadSnapshot\",\n"
           "              \"xsnap:DeleteVolumes\"],\n"
           "   \"resource\": \"*\"}\n"
           "]}\n",
           "policy.json:7: statement 3: unknown action 'xsnap:DeleteVolumes' "
           "(did you mean xsnap:DeleteVolume?)",
           "statement 3's third action, on line 7");
  refused ("{\"version\": \"2.0\", \"statement\": [\n"
           "  {\"effect\": \"allow\", \"action\": \"*\", \"resource\": \"*\"},\n"
           "  {\"effect\": \"deny\", \"action\": \"xsnap:RunGc\",\n"
           "   \"resource\": \"*\"},\n"
           "  {\"effect\": \"deny\", \"action\": \"xsnap:RunGc\"}\n"
           "]}\n",
           "policy.json:5: statement 3: resource is missing",
           "a missing field of statement 3, at its line");
  refused ("{\"version\": \"2.0\", \"statement\": [\n"
           "  {\"effect\": \"allow\", \"action\": \"*\", \"resource\": \"*\"},\n"
           "  {\"effect\": \"deny\", \"action\": \"xsnap:RunGc\",\n"
           "   \"resource\": \"*\"}, {\"effect\": \"Deny \", \"action\": \"*\","
           " \"resource\": \"*\"}]}\n",
           "policy.json:4: statement 3: unknown effect 'Deny ' "
           "(expected allow or deny)", "two statements on one line");
  refused ("{\"version\": \"2.0\", \"statement\": [\n"
           "  {\"effect\": \"allow\", \"action\": \"*\", \"resource\":\n"
           "    [\"*\", \"x\\\"y[\\\\\",\n"
           "     \"xsnap:r:a:snapshot/*\", {}]}]}",
           "policy.json:3: statement 1: resource 'x\"y[\\' is not '*' or "
           "xsnap:REGION:ACCOUNT:TYPE/ID",
           "escaped quotes and brackets do not confuse the line");
  refused ("{\"version\": \"2.0\", \"statement\": [\n"
           "  {\"effect\": \"allow\", \"action\": \"*\", \"resource\":\n"
           "    [\"*\", \"x\\\"y[\\\\\", {\"k\": [1, {\"z\": []}]},\n"
           "     \"xsnap:r:a:snapshot/*\",\n 5]}]}",
           "policy.json:3: statement 1: resource 'x\"y[\\' is not '*' or "
           "xsnap:REGION:ACCOUNT:TYPE/ID",
           "the same with nesting after it");
}

static void
test_bad_actions (void)
{
  refused (ONE (EFFECT "      \"action\": \"xsnap:CreateSnapshots\",\n"
                RESOURCE),
           "policy.json:6: statement 1: unknown action "
           "'xsnap:CreateSnapshots' (did you mean xsnap:CreateSnapshot?)",
           "a typo gets a hint");
  refused (ONE (EFFECT "      \"action\": \"xsnap:FormatDisk\",\n" RESOURCE),
           "policy.json:6: statement 1: unknown action 'xsnap:FormatDisk'",
           "no hint when nothing is close");
  refused (ONE (EFFECT "      \"action\": \"xsnap:*Snapshotz*\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'xsnap:*Snapshotz*' matches "
           "no known action, so it could never apply",
           "a wildcard matching nothing");
  refused (ONE (EFFECT "      \"action\": \"kms:Decrypt\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'kms:Decrypt' belongs to "
           "service 'kms', not xsnap (xsnap actions are written "
           "xsnap:ACTION)", "another service");
  refused (ONE (EFFECT "      \"action\": \"CreateSnapshot\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'CreateSnapshot' lacks the "
           "service prefix (write 'xsnap:CreateSnapshot')",
           "a missing prefix");
  refused (ONE (EFFECT "      \"action\": \"delete\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'delete' is not '*' or "
           "xsnap:ACTION", "neither '*' nor prefixed");
  refused (ONE (EFFECT "      \"action\": \"xsnap:\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'xsnap:' names no action",
           "the prefix alone");
  refused (ONE (EFFECT "      \"action\": \"xsnap:Create Snapshot\",\n"
                RESOURCE),
           "policy.json:6: statement 1: action 'xsnap:Create Snapshot' "
           "contains ' ' (actions are letters, with '*' and '?' as "
           "wildcards)", "a space in an action");
  refused (ONE (EFFECT "      \"action\": \"xsnap:Run\\nGc\",\n" RESOURCE),
           "policy.json:6: statement 1: action 'xsnap:Run\\x0aGc' contains "
           "'\\x0a' (actions are letters, with '*' and '?' as wildcards)",
           "control characters are shown escaped");
}

static void
test_bad_resources (void)
{
  refused (ONE (EFFECT ACTION "      \"resource\": \"acs:ecs:*:*:snapshot/*\""),
           "policy.json:7: statement 1: resource 'acs:ecs:*:*:snapshot/*' is "
           "not '*' or xsnap:REGION:ACCOUNT:TYPE/ID", "another cloud's name");
  refused (ONE (EFFECT ACTION "      \"resource\": \"xsnap:*\""),
           "policy.json:7: statement 1: resource 'xsnap:*' is not "
           "xsnap:REGION:ACCOUNT:TYPE/ID (4 parts separated by ':')",
           "too few parts");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r:a:b:snapshot/x\""),
           "policy.json:7: statement 1: resource 'xsnap:r:a:b:snapshot/x' is "
           "not xsnap:REGION:ACCOUNT:TYPE/ID (4 parts separated by ':')",
           "too many parts");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r1:acct-1:snapshots/x\""),
           "policy.json:7: statement 1: resource "
           "'xsnap:r1:acct-1:snapshots/x': unknown resource type 'snapshots' "
           "(expected account, audit, chain, job, key, policy, policydoc, "
           "region, setting, share, snapshot or volume)", "an unknown type");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r1:acct-1:disk*/x\""),
           "policy.json:7: statement 1: resource 'xsnap:r1:acct-1:disk*/x': "
           "unknown resource type 'disk*' (expected account, audit, chain, "
           "job, key, policy, policydoc, region, setting, share, snapshot "
           "or volume)",
           "a type pattern that matches no type");
  refused (ONE (EFFECT ACTION "      \"resource\": \"xsnap:r1:acct-1:snap\""),
           "policy.json:7: statement 1: resource 'xsnap:r1:acct-1:snap': "
           "last part 'snap' is not TYPE/ID", "no TYPE/ID");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r1:acct-1:snapshot/\""),
           "policy.json:7: statement 1: resource "
           "'xsnap:r1:acct-1:snapshot/': ID must be letters, digits, '.', "
           "'_', '-', '@' or wildcards", "an empty ID");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r 1:acct-1:snapshot/x\""),
           "policy.json:7: statement 1: resource "
           "'xsnap:r 1:acct-1:snapshot/x': REGION must be letters, digits, "
           "'.', '_', '-' or wildcards", "a space in the region");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"xsnap:r1:acct/1:snapshot/x\""),
           "policy.json:7: statement 1: resource "
           "'xsnap:r1:acct/1:snapshot/x': ACCOUNT must be letters, digits, "
           "'.', '_', '-' or wildcards", "a slash in the account");
  refused (ONE (EFFECT ACTION
                "      \"resource\": \"XSNAP:r1:acct-1:snapshot/x\""),
           "policy.json:7: statement 1: resource "
           "'XSNAP:r1:acct-1:snapshot/x' is not '*' or "
           "xsnap:REGION:ACCOUNT:TYPE/ID", "resources are case-sensitive");
}

static void
test_good_resources (void)
{
  static const char *const good[] = {
    "*",
    "xsnap:*:*:*",
    "xsnap:r1:acct-1:*",
    "xsnap::acct-1:account/acct-1",
    "xsnap:r1::region/r1",
    "xsnap:*:acct-1:snap*/*",
    "xsnap:r?:a:volume/vol@snap",
    "xsnap:r1:a:policydoc/readers",
    NULL,
  };
  size_t i;

  for (i = 0; good[i]; i++) {
    char text[256];
    struct xs_permdoc *p;

    snprintf (text, sizeof text,
              "{\"version\":\"2.0\",\"statement\":[{\"effect\":\"allow\","
              "\"action\":\"*\",\"resource\":\"%s\"}]}", good[i]);
    p = parse (text);
    ok (p != NULL, "resource %s is accepted", good[i]);
    xs_permdoc_free (p);
  }
}

/* A document with N statements (each with M actions and resources), whose
 * first action is FIRST_ACTION.
 */
static char *
big_document (size_t n, size_t m, const char *first_action)
{
  size_t cap = 64 + n * (64 + m * 80) + strlen (first_action);
  char *text = malloc (cap);
  size_t len = 0, i, j;

  if (text == NULL)
    abort ();
  len += snprintf (text + len, cap - len,
                   "{\"version\": \"2.0\", \"statement\": [\n");
  for (i = 0; i < n; i++) {
    len += snprintf (text + len, cap - len,
                     "%s{\"effect\": \"allow\",\n \"action\": [\n",
                     i ? ",\n" : "");
    for (j = 0; j < m; j++)
      len += snprintf (text + len, cap - len, "%s\"%s\"\n", j ? "," : "",
                       i == 0 && j == 0 ? first_action : "xsnap:RunGc");
    len += snprintf (text + len, cap - len, "],\n \"resource\": [\n");
    for (j = 0; j < m; j++)
      len += snprintf (text + len, cap - len, "%s\"*\"\n", j ? "," : "");
    len += snprintf (text + len, cap - len, "]}");
  }
  snprintf (text + len, cap - len, "\n]}\n");
  return text;
}

static void
test_limits (void)
{
  char *text, *long_action;
  struct xs_permdoc *p;
  size_t len;

  text = big_document (100, 1, "xsnap:RunGc");
  p = parse (text);
  ok (p != NULL, "100 statements are accepted");
  xs_permdoc_free (p);
  free (text);

  text = big_document (1, 100, "xsnap:RunGc");
  p = parse (text);
  ok (p != NULL, "100 actions and 100 resources are accepted");
  xs_permdoc_free (p);
  free (text);

  text = big_document (101, 1, "xsnap:RunGc");
  /* Each statement takes 7 lines; the 101st starts on line 2 + 100 * 7. */
  refused (text, "policy.json:702: 101 statements; at most 100 allowed",
           "101 statements, at the 101st's line");
  free (text);

  text = big_document (1, 101, "xsnap:RunGc");
  refused (text, "policy.json:104: statement 1: action has 101 entries; "
           "at most 100 allowed", "101 actions, at the 101st's line");
  free (text);

  long_action = malloc (600);
  strcpy (long_action, "xsnap:");
  memset (long_action + 6, '*', 507);
  long_action[513] = '\0';
  text = big_document (1, 1, long_action);
  refused (text, "policy.json:4: statement 1: action is 513 bytes long; "
           "at most 512 allowed", "a 513-byte action");
  free (text);
  long_action[512] = '\0';
  text = big_document (1, 1, long_action);
  p = parse (text);
  ok (p != NULL, "a 512-byte action is accepted");
  xs_permdoc_free (p);
  free (text);
  free (long_action);

  len = XS_PERMDOC_MAX_SIZE + 1;
  text = malloc (len + 1);
  memset (text, ' ', len);
  memcpy (text, seed_example, strlen (seed_example));
  text[len] = '\0';
  refused (text, "policy.json: policy document is 65537 bytes; at most "
           "65536 allowed", "a document over 64 KiB");
  text[len - 1] = '\0';
  p = parse (text);
  ok (p != NULL, "a document of exactly 64 KiB is accepted");
  xs_permdoc_free (p);
  free (text);
}

/* Every action of the table against a handful of resources. */
static bool
same_verdicts (const struct xs_permdoc *a, const struct xs_permdoc *b)
{
  static const char *const resources[] = {
    SNAP_R1_A1, "xsnap:r2:acct-2:snapshot/keep-1", "xsnap:r1:acct-1:volume/v",
    "xsnap::acct-1:account/acct-1", "xsnap:R1:acct-1:snapshot/snap-1", "",
    NULL
  };
  const char *const *action;
  size_t i;

  for (action = xs_permdoc_actions (); *action; action++)
    for (i = 0; resources[i]; i++)
      if (xs_permdoc_evaluate (a, *action, resources[i])
          != xs_permdoc_evaluate (b, *action, resources[i]))
        return false;
  return true;
}

static void
test_canonical_round_trip (void)
{
  static const char text[] =
    "{\"Statement\": [\n"
    "  {\"Resource\": \"xsnap:*:acct-1:snapshot/*\", \"Effect\": \"ALLOW\",\n"
    "   \"Action\": \"xsnap:*Snapshot*\"},\n"
    "  {\"action\": [\"xsnap:Delete*\", \"xsnap:copy?napshot\"],\n"
    "   \"effect\": \"Deny\",\n"
    "   \"resource\": [\"xsnap:r2:*:snapshot/keep-*\", \"xsnap:r1:acct-1:*\"]},\n"
    "  {\"effect\": \"allow\", \"action\": \"*\",\n"
    "   \"resource\": \"xsnap::acct-1:account/acct-1\"}\n"
    "], \"Version\": \"2.0\"}\n";
  struct xs_permdoc *p = parse (text), *q = NULL;
  char *canonical = NULL, *again = NULL;

  if (!ok (p != NULL, "a mixed document parses"))
    return;
  canonical = xs_permdoc_canonical (p);
  is_str (canonical,
          "{\"version\":\"2.0\",\"statement\":["
          "{\"effect\":\"allow\",\"action\":[\"xsnap:*Snapshot*\"],"
          "\"resource\":[\"xsnap:*:acct-1:snapshot/*\"]},"
          "{\"effect\":\"deny\",\"action\":[\"xsnap:Delete*\","
          "\"xsnap:copy?napshot\"],\"resource\":[\"xsnap:r2:*:snapshot/keep-*\","
          "\"xsnap:r1:acct-1:*\"]},"
          "{\"effect\":\"allow\",\"action\":[\"*\"],"
          "\"resource\":[\"xsnap::acct-1:account/acct-1\"]}]}",
          "canonical form");
  if (canonical)
    q = xs_permdoc_parse (canonical, strlen (canonical), "canonical");
  ok (q != NULL, "the canonical form parses");
  if (q) {
    ok (same_verdicts (p, q), "  and evaluates as the original does");
    again = xs_permdoc_canonical (q);
    is_str (again, canonical, "  and is its own canonical form");
  }
  is_str (effect (p, "xsnap:DeleteSnapshot", "xsnap:r2:acct-2:snapshot/keep-1"),
          "deny", "spot check: deny");
  is_str (effect (p, "xsnap:CopySnapshot", "xsnap:r9:acct-1:snapshot/x"),
          "allow", "spot check: allow");
  is_str (effect (p, "xsnap:CopySnapshot", "xsnap:r1:acct-1:snapshot/x"),
          "deny", "spot check: copy?napshot denied on acct-1 in r1");
  free (again);
  free (canonical);
  xs_permdoc_free (q);
  xs_permdoc_free (p);
}

static void
test_tables (void)
{
  const char *const *a;
  bool all_ok = true;
  size_t n = 0;
  char *name;

  for (a = xs_permdoc_actions (); *a; a++, n++)
    all_ok = all_ok && strncmp (*a, "xsnap:", 6) == 0
      && strpbrk (*a, "*?") == NULL && xs_permdoc_action_known (*a);
  ok (n >= 45 && all_ok, "%zu actions, all xsnap:NAME and known", n);
  ok (xs_permdoc_action_known ("xsnap:copysnapshotcrossaccount"),
      "known actions ignore case");
  ok (!xs_permdoc_action_known ("xsnap:Copy*"), "a pattern is not an action");
  ok (!xs_permdoc_action_known ("CopySnapshot"), "the prefix is needed");
  ok (!xs_permdoc_action_known (NULL), "NULL is not an action");

  name = xs_resource_name ("r1", "acct-1", "snapshot", "snap-1");
  is_str (name, SNAP_R1_A1, "resource name");
  free (name);
  name = xs_resource_name (NULL, "acct-1", "account", "acct-1");
  is_str (name, "xsnap::acct-1:account/acct-1", "resource name, no region");
  free (name);

  is_int (xs_permdoc_evaluate (NULL, "xsnap:RunGc", "*"), XS_PERMDOC_NONE,
          "no policy says nothing");
  is_str (xs_permdoc_effect_name (XS_PERMDOC_DENY), "deny", "effect names");
}

int
main (void)
{
  test_seed_example ();
  test_match ();
  test_wildcard_actions ();
  test_wildcard_resources ();
  test_deny_beats_allow ();
  test_alibaba_shape ();
  test_malformed_json ();
  test_malformed_top ();
  test_malformed_statement ();
  test_line_of_later_statement ();
  test_bad_actions ();
  test_bad_resources ();
  test_good_resources ();
  test_limits ();
  test_canonical_round_trip ();
  test_tables ();
  return done_testing ();
}
