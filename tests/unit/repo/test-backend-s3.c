/* xsnap: tests for lib/repo/backend-s3.c against a real S3 server.
 *
 * Under `make check` tests/with-s3 runs a Ceph RGW and names it in
 * XSNAP_TEST_S3 (a directory with s3.env); the bucket xsnap-unit exists.
 * The S3 backend must keep the backend contract: whole objects, exactly
 * one winner of racing put-if-absent writers (RGW honours If-None-Match),
 * missing keys without an error, folder-exact listings across pages, and
 * clear refusals for wrong keys.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/backend-impl.h"
#include "tap.h"

#define RACE_ROUNDS 20
#define RACERS 4
#define MANY_KEYS 1100

static char prefix_url[256];

/* Export the variables of DIR/s3.env ("export K=V" lines). */
static bool
load_s3_env (const char *dir)
{
  char path[512], line[512], *eq, *name;
  FILE *fp;

  snprintf (path, sizeof path, "%s/s3.env", dir);
  fp = fopen (path, "r");
  if (fp == NULL)
    return false;
  while (fgets (line, sizeof line, fp)) {
    line[strcspn (line, "\n")] = '\0';
    name = strncmp (line, "export ", 7) == 0 ? line + 7 : line;
    eq = strchr (name, '=');
    if (eq) {
      *eq = '\0';
      setenv (name, eq + 1, 1);
    }
  }
  fclose (fp);
  return true;
}

static bool
get_equals (struct xs_backend *backend, const char *key, const void *want,
            size_t want_len)
{
  void *data = NULL;
  size_t len = 0;
  bool same;

  if (xs_backend_get (backend, key, &data, &len) != 0)
    return false;
  same = len == want_len && memcmp (data, want, len) == 0;
  free (data);
  return same;
}

static void
test_put_get (struct xs_backend *b)
{
  void *data = NULL;
  size_t len = 99, big_len = 5 << 20;
  char *big = malloc (big_len);

  is_int (xs_backend_put_if_absent (b, "a/b/c", "first", 5, true), 1,
          "put_if_absent stores a new key");
  is_int (xs_backend_put_if_absent (b, "a/b/c", "second", 6, true), 0,
          "put_if_absent returns 0 when the key exists (If-None-Match)");
  ok (get_equals (b, "a/b/c", "first", 5), "the first content is kept");
  is_int (xs_backend_put (b, "a/b/c", "replaced", 8, true), 0,
          "put overwrites");
  ok (get_equals (b, "a/b/c", "replaced", 8), "get sees the new content");
  is_int (xs_backend_put (b, "empty", "", 0, true), 0, "an empty object");
  ok (get_equals (b, "empty", "", 0), "... reads back empty");

  for (size_t i = 0; i < big_len; i++)
    big[i] = (char) (i * 2654435761u >> 13);
  is_int (xs_backend_put (b, "big", big, big_len, false), 0,
          "a 5 MiB object is stored");
  ok (get_equals (b, "big", big, big_len), "... and read back whole");
  free (big);

  is_int (xs_backend_exists (b, "a/b/c"), 1, "exists: yes");
  is_int (xs_backend_exists (b, "a/b/d"), 0, "exists: no");
  is_int (xs_backend_exists (b, "a/b"), 0, "a folder is not an object");

  tap_take_error ();
  is_int (xs_backend_get (b, "a/b/missing", &data, &len), 1,
          "get of a missing key returns 1");
  is_str (tap_take_error (), "", "... and reports no error");

  is_int (xs_backend_delete (b, "a/b/c"), 0, "delete");
  is_int (xs_backend_exists (b, "a/b/c"), 0, "... it is gone");
  is_int (xs_backend_delete (b, "a/b/c"), 0, "deleting a missing key is fine");
  is_int (xs_backend_sync (b), 0, "sync");
  is_int ((int) xs_backend_remove_stale_temps (b, 0), 0,
          "S3 leaves no temporary objects");
}

struct counter {
  int n;
  int bad;
  int stop_after;
};

static int
count_key (const char *key, void *opaque)
{
  struct counter *c = opaque;

  if (strncmp (key, "many/", 5) != 0 || xs_backend_key_problem (key))
    c->bad++;
  c->n++;
  return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static int
collect_key (const char *key, void *opaque)
{
  char *out = opaque;

  strcat (out, key);
  strcat (out, " ");
  return 0;
}

static void
test_list (struct xs_backend *b)
{
  struct counter c = { 0 };
  char got[512] = "", key[64];
  int i, failed = 0;

  for (i = 0; i < MANY_KEYS; i++) {
    snprintf (key, sizeof key, "many/%04d", i);
    if (xs_backend_put (b, key, key, strlen (key), false) != 0)
      failed++;
  }
  is_int (failed, 0, "%d keys stored", MANY_KEYS);
  is_int (xs_backend_list (b, "many", count_key, &c), 0,
          "list across pages");
  is_int (c.n, MANY_KEYS, "... sees every key once (more than a page)");
  is_int (c.bad, 0, "... each relative to the backend's prefix");
  c = (struct counter) { .stop_after = 5 };
  is_int (xs_backend_list (b, "many/", count_key, &c), 42,
          "a callback's non-zero stops the listing and is returned");
  is_int (c.n, 5, "... after 5 keys");

  xs_backend_put (b, "f/x/1", "1", 1, false);
  xs_backend_put (b, "f/x/y/2", "2", 1, false);
  xs_backend_put (b, "f/xz", "3", 1, false);
  is_int (xs_backend_list (b, "f/x", collect_key, got), 0, "list f/x");
  is_str (got, "f/x/1 f/x/y/2 ", "lists f/x/1 and f/x/y/2, not f/xz");
}

struct racer {
  struct xs_backend *backend;
  pthread_barrier_t *barrier;
  int id;
  int wins[RACE_ROUNDS];
};

static void *
race (void *arg)
{
  struct racer *r = arg;
  char key[64], content[64];

  for (int i = 0; i < RACE_ROUNDS; i++) {
    snprintf (key, sizeof key, "race/k%d", i);
    snprintf (content, sizeof content, "writer %d round %d", r->id, i);
    pthread_barrier_wait (r->barrier);
    r->wins[i] = xs_backend_put_if_absent (r->backend, key, content,
                                           strlen (content), true);
  }
  return NULL;
}

static void
test_race (struct xs_backend *b)
{
  pthread_barrier_t barrier;
  struct racer racers[RACERS];
  pthread_t threads[RACERS];
  int bad_rounds = 0, bad_content = 0;

  pthread_barrier_init (&barrier, NULL, RACERS);
  for (int t = 0; t < RACERS; t++) {
    racers[t] = (struct racer) { .backend = b, .barrier = &barrier, .id = t };
    pthread_create (&threads[t], NULL, race, &racers[t]);
  }
  for (int t = 0; t < RACERS; t++)
    pthread_join (threads[t], NULL);
  pthread_barrier_destroy (&barrier);
  for (int i = 0; i < RACE_ROUNDS; i++) {
    int winners = 0, winner = -1;
    char key[64], want[64];

    for (int t = 0; t < RACERS; t++)
      if (racers[t].wins[i] == 1) {
        winners++;
        winner = t;
      }
      else if (racers[t].wins[i] != 0)
        bad_rounds++;
    if (winners != 1) {
      bad_rounds++;
      continue;
    }
    snprintf (key, sizeof key, "race/k%d", i);
    snprintf (want, sizeof want, "writer %d round %d", winner, i);
    if (!get_equals (b, key, want, strlen (want)))
      bad_content++;
  }
  is_int (bad_rounds, 0, "%d rounds of %d racing writers: exactly one stored",
          RACE_ROUNDS, RACERS);
  is_int (bad_content, 0, "the stored content is the winner's");
}

static void
test_refusals (const char *bucket)
{
  char url[256], *secret = strdup (getenv ("AWS_SECRET_ACCESS_KEY"));

  setenv ("AWS_SECRET_ACCESS_KEY", "wrong", 1);
  ok (xs_backend_open (prefix_url) == NULL, "a wrong secret key is refused");
  error_contains ("SignatureDoesNotMatch", "... with the server's reason");
  setenv ("AWS_SECRET_ACCESS_KEY", secret, 1);
  free (secret);
  snprintf (url, sizeof url, "s3://%s-missing/x", bucket);
  ok (xs_backend_open (url) == NULL, "a missing bucket is refused");
  error_contains ("does not exist", "... saying so");
}

int
main (void)
{
  const char *dir = getenv ("XSNAP_TEST_S3"), *problem;
  struct xs_backend *b;

  problem = getenv ("XSNAP_TEST_S3_ERROR");
  if (problem && *problem) {
    printf ("Bail out! %s\n", problem);
    return 1;
  }
  if (dir == NULL || !*dir) {
    printf ("1..0 # SKIP no S3 server: run under make check (tests/with-s3)\n");
    return 0;
  }
  if (!load_s3_env (dir)) {
    printf ("Bail out! cannot read %s/s3.env\n", dir);
    return 1;
  }
  snprintf (prefix_url, sizeof prefix_url, "s3://xsnap-unit/run-%ld",
            (long) getpid ());
  b = xs_backend_open (prefix_url);
  ok (b != NULL, "open %s", prefix_url);
  if (b == NULL)
    return done_testing ();
  is_str (xs_backend_url (b), prefix_url, "xs_backend_url gives the URL");
  test_put_get (b);
  test_list (b);
  test_race (b);
  xs_backend_close (b);
  test_refusals ("xsnap-unit");
  return done_testing ();
}
