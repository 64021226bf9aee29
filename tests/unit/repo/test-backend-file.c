/* xsnap: tests for lib/repo/backend.c and lib/repo/backend-file.c.
 *
 * The object store must keep whole objects, refuse keys that could escape
 * the root, never list its temporary files, let exactly one of two
 * racing writers of a key win, and read objects into buffers chosen by
 * the caller (get_placed).
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "repo/backend.h"
#include "tap.h"

static struct xs_backend *
open_store (const char *dir, const char *sub)
{
  char *url;
  struct xs_backend *backend;

  if (asprintf (&url, "file://%s/%s", dir, sub) == -1)
    abort ();
  backend = xs_backend_open (url);
  free (url);
  return backend;
}

static bool
get_equals (struct xs_backend *backend, const char *key, const char *want)
{
  void *data = NULL;
  size_t len = 0;
  bool same;

  if (xs_backend_get (backend, key, &data, &len) != 0)
    return false;
  same = len == strlen (want) && memcmp (data, want, len) == 0;
  free (data);
  return same;
}

static void
test_put_get (struct xs_backend *backend)
{
  void *data = NULL;
  size_t len = 99;

  is_int (xs_backend_put_if_absent (backend, "a/b/c", "first", 5, true), 1,
          "put_if_absent stores a new key");
  is_int (xs_backend_put_if_absent (backend, "a/b/c", "second", 6, true), 0,
          "put_if_absent returns 0 when the key exists");
  ok (get_equals (backend, "a/b/c", "first"), "the first content is kept");
  is_int (xs_backend_put_if_absent (backend, "a/b/c", "second", 6, false), 0,
          "... also when not durable");

  is_int (xs_backend_put (backend, "a/b/c", "replaced", 8, true), 0,
          "put overwrites");
  ok (get_equals (backend, "a/b/c", "replaced"), "get sees the new content");
  is_int (xs_backend_put (backend, "top", "t", 1, false), 0,
          "put of a top-level key");
  ok (get_equals (backend, "top", "t"), "get of a top-level key");

  is_int (xs_backend_exists (backend, "a/b/c"), 1, "exists: yes");
  is_int (xs_backend_exists (backend, "a/b/d"), 0, "exists: no");
  is_int (xs_backend_exists (backend, "a/b"), 0, "a folder is not an object");
  is_int (xs_backend_exists (backend, "top/x"), 0,
          "a key under an object is absent");

  tap_take_error ();
  is_int (xs_backend_get (backend, "a/b/missing", &data, &len), 1,
          "get of a missing key returns 1");
  is_str (tap_take_error (), "", "... and reports no error");
  is_int (xs_backend_get (backend, "nowhere/at/all", &data, &len), 1,
          "get under a missing folder returns 1");

  is_int (xs_backend_put_if_absent (backend, "empty", "", 0, true), 1,
          "an empty object is stored");
  data = NULL;
  is_int (xs_backend_get (backend, "empty", &data, &len), 0,
          "an empty object is read");
  ok (data != NULL && len == 0, "... as a non-NULL buffer of length 0");
  free (data);

  is_int (xs_backend_delete (backend, "a/b/c"), 0, "delete");
  is_int (xs_backend_exists (backend, "a/b/c"), 0, "deleted key is gone");
  is_int (xs_backend_delete (backend, "a/b/c"), 0,
          "deleting a missing key is not an error");
  is_int (xs_backend_put_if_absent (backend, "a/b/c", "again", 5, true), 1,
          "put_if_absent after delete stores again");
  is_int (xs_backend_sync (backend), 0, "sync");
}

/* Places an object in two buffers: the first split bytes, then the rest
 * (or, with bad set, buffers one byte short).
 */
struct placement {
  char head[8], tail[64];
  size_t split;
  size_t size;
  bool bad;
};

static int
place_split (size_t size, struct xs_backend_place *where, void *opaque)
{
  struct placement *p = opaque;

  p->size = size;
  if (size > p->split + sizeof p->tail)
    abort ();
  where->iov[0].iov_base = p->head;
  where->iov[0].iov_len = p->split;
  where->iov[1].iov_base = p->tail;
  where->iov[1].iov_len = size - p->split - (p->bad ? 1 : 0);
  where->count = 2;
  return 0;
}

static void
test_get_placed (struct xs_backend *backend)
{
  struct placement p = { .split = 5 };

  xs_backend_put (backend, "placed/one", "head+the tail", 13, false);
  is_int (xs_backend_get_placed (backend, "placed/one", place_split, &p), 0,
          "get_placed reads an object");
  is_int (p.size, 13, "... telling its size first");
  ok (memcmp (p.head, "head+", 5) == 0 && memcmp (p.tail, "the tail", 8) == 0,
      "... into the buffers chosen");
  p.split = 0;
  memset (p.tail, 0, sizeof p.tail);
  is_int (xs_backend_get_placed (backend, "placed/one", place_split, &p), 0,
          "an empty first buffer is fine");
  ok (memcmp (p.tail, "head+the tail", 13) == 0, "... all in the second");
  is_int (xs_backend_get_placed (backend, "placed/none", place_split, &p), 1,
          "a missing key is 1");
  p.bad = true;
  is_int (xs_backend_get_placed (backend, "placed/one", place_split, &p), -1,
          "buffers that do not hold exactly the object are refused");
  error_contains ("cannot read placed/one", "... with an error naming it");
  xs_backend_delete (backend, "placed/one");
}

static void
test_torn_object (struct xs_backend *backend, const char *root)
{
  char *path;
  int fd;

  /* What a crash leaves of a non-durable put: the name, no data. */
  xs_backend_put (backend, "torn/x", "soon empty", 10, false);
  if (asprintf (&path, "%s/torn/x", root) == -1)
    abort ();
  fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  ok (fd >= 0, "truncate an object to zero bytes");
  if (fd >= 0)
    close (fd);
  is_int (xs_backend_put_if_absent (backend, "torn/x", "content", 7, true), 1,
          "put_if_absent replaces an empty (torn) object");
  ok (get_equals (backend, "torn/x", "content"), "... with the new content");
  free (path);
}

/* A put-if-absent leaves the directory with the object's entry alone
 * (no temporary name made, nothing left over), durable or not.
 */
static void
test_put_leaves_one_entry (struct xs_backend *backend, const char *root)
{
  char *path;
  DIR *dir;
  struct dirent *d;
  int entries = 0;

  is_int (xs_backend_put_if_absent (backend, "one/a", "aaa", 3, false), 1,
          "put_if_absent of a new object");
  is_int (xs_backend_put_if_absent (backend, "one/b", "bbb", 3, true), 1,
          "... and of another, durably");
  is_int (xs_backend_put_if_absent (backend, "one/a", "aaa", 3, false), 0,
          "... and of the first again: present");
  if (asprintf (&path, "%s/one", root) == -1 || (dir = opendir (path)) == NULL)
    abort ();
  while ((d = readdir (dir)) != NULL)
    if (strcmp (d->d_name, ".") != 0 && strcmp (d->d_name, "..") != 0)
      entries++;
  closedir (dir);
  is_int (entries, 2, "the directory holds the two objects and nothing else");
  ok (get_equals (backend, "one/a", "aaa") && get_equals (backend, "one/b",
                                                          "bbb"),
      "... with their contents");
  free (path);
}

static void
test_bad_keys (struct xs_backend *backend)
{
  static const char *const bad[] = {
    "", "/abs", "a//b", "a/../b", "..", ".", "a/", "a b", ".tmp.x",
    "a/.hidden", "a/./b", "a\\b", "caf\xc3\xa9", "a?b",
  };
  char long_key[XS_BACKEND_KEY_MAX + 2];
  size_t i;
  void *data;
  size_t len;

  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    is_int (xs_backend_put (backend, bad[i], "x", 1, false), -1,
            "put refuses key '%s'", bad[i]);
    error_contains ("invalid object key", "message says invalid key");
    is_int (xs_backend_get (backend, bad[i], &data, &len), -1,
            "get refuses key '%s'", bad[i]);
    error_contains ("invalid object key", "message says invalid key");
  }
  memset (long_key, 'k', sizeof long_key - 1);
  long_key[sizeof long_key - 1] = '\0';
  is_int (xs_backend_put_if_absent (backend, long_key, "x", 1, false), -1,
          "a key over %d bytes refused", XS_BACKEND_KEY_MAX);
  error_contains ("too long", "message says too long");
  is_int (xs_backend_exists (backend, "../x"), -1, "exists refuses '../x'");
  is_int (xs_backend_delete (backend, "a/../../x"), -1,
          "delete refuses 'a/../../x'");
  is_int (xs_backend_list (backend, "../", NULL, NULL), -1,
          "list refuses prefix '../'");
  tap_take_error ();
}

/* Collects listed keys into one sorted-independent string set. */
struct listing {
  char keys[32][64];
  int count;
  int stop_after;
};

static int
collect_key (const char *key, void *opaque)
{
  struct listing *l = opaque;

  if (l->count < 32)
    snprintf (l->keys[l->count], sizeof l->keys[0], "%s", key);
  l->count++;
  if (l->stop_after && l->count >= l->stop_after)
    return 7;
  return 0;
}

static bool
listed (const struct listing *l, const char *key)
{
  int i;

  for (i = 0; i < l->count && i < 32; i++)
    if (strcmp (l->keys[i], key) == 0)
      return true;
  return false;
}

static void
make_temp_file (const char *root, const char *rel, time_t age)
{
  char *path;
  int fd;
  struct timespec times[2];

  if (asprintf (&path, "%s/%s", root, rel) == -1)
    abort ();
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd == -1)
    abort ();
  clock_gettime (CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age;
  times[1] = times[0];
  futimens (fd, times);
  close (fd);
  free (path);
}

static void
test_list (const char *dir)
{
  struct xs_backend *backend = open_store (dir, "list");
  char *root;
  struct listing l;

  if (asprintf (&root, "%s/list", dir) == -1)
    abort ();
  xs_backend_put (backend, "x/1", "1", 1, false);
  xs_backend_put (backend, "x/y/2", "2", 1, false);
  xs_backend_put (backend, "xz/3", "3", 1, false);
  xs_backend_put (backend, "top", "t", 1, false);
  make_temp_file (root, "x/.tmp.0123456789abcdef", 3600);
  make_temp_file (root, "x/y/.tmp.fresh", 0);
  make_temp_file (root, ".tmp.top", 3600);

  memset (&l, 0, sizeof l);
  is_int (xs_backend_list (backend, "x", collect_key, &l), 0, "list x");
  is_int (l.count, 2, "list x finds 2 keys");
  ok (listed (&l, "x/1") && listed (&l, "x/y/2"),
      "list x finds x/1 and x/y/2 (recursively, not xz/3)");

  memset (&l, 0, sizeof l);
  xs_backend_list (backend, "x/", collect_key, &l);
  is_int (l.count, 2, "list x/ is the same as list x");

  memset (&l, 0, sizeof l);
  is_int (xs_backend_list (backend, "", collect_key, &l), 0, "list all");
  is_int (l.count, 4, "list all finds 4 keys, no temporary files");
  ok (listed (&l, "top") && listed (&l, "xz/3"), "list all finds top, xz/3");

  memset (&l, 0, sizeof l);
  is_int (xs_backend_list (backend, "missing/folder", collect_key, &l), 0,
          "listing a missing folder is not an error");
  is_int (l.count, 0, "... and finds nothing");

  memset (&l, 0, sizeof l);
  l.stop_after = 1;
  is_int (xs_backend_list (backend, "", collect_key, &l), 7,
          "a non-zero return from the callback is returned");
  is_int (l.count, 1, "... and stops the listing");

  is_int (xs_backend_remove_stale_temps (backend, 600), 2,
          "two stale temporary files removed");
  is_int (xs_backend_remove_stale_temps (backend, 600), 0,
          "the fresh one is kept");
  is_int (xs_backend_remove_stale_temps (backend, 0) >= 0, 1,
          "remove with age 0 works");
  memset (&l, 0, sizeof l);
  xs_backend_list (backend, "", collect_key, &l);
  is_int (l.count, 4, "objects survive the clean-up");

  xs_backend_close (backend);
  free (root);
}

/* Two threads race put_if_absent on the same keys, round after round. */
#define RACE_ROUNDS 300

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
  int i;

  for (i = 0; i < RACE_ROUNDS; i++) {
    snprintf (key, sizeof key, "race/%02d/k%d", i % 7, i);
    snprintf (content, sizeof content, "writer %d round %d", r->id, i);
    pthread_barrier_wait (r->barrier);
    r->wins[i] = xs_backend_put_if_absent (r->backend, key, content,
                                           strlen (content), i % 2);
  }
  return NULL;
}

static void
test_race (struct xs_backend *backend)
{
  pthread_barrier_t barrier;
  struct racer racers[2];
  pthread_t threads[2];
  int i, t, bad_rounds = 0, bad_content = 0;

  pthread_barrier_init (&barrier, NULL, 2);
  for (t = 0; t < 2; t++) {
    racers[t].backend = backend;
    racers[t].barrier = &barrier;
    racers[t].id = t;
    pthread_create (&threads[t], NULL, race, &racers[t]);
  }
  for (t = 0; t < 2; t++)
    pthread_join (threads[t], NULL);
  pthread_barrier_destroy (&barrier);

  for (i = 0; i < RACE_ROUNDS; i++) {
    char key[64], want[64];
    int winner = racers[0].wins[i] == 1 ? 0 : 1;

    if (racers[0].wins[i] + racers[1].wins[i] != 1
        || racers[0].wins[i] < 0 || racers[1].wins[i] < 0)
      bad_rounds++;
    snprintf (key, sizeof key, "race/%02d/k%d", i % 7, i);
    snprintf (want, sizeof want, "writer %d round %d", winner, i);
    if (!get_equals (backend, key, want))
      bad_content++;
  }
  is_int (bad_rounds, 0, "%d racing rounds: exactly one writer stored",
          RACE_ROUNDS);
  is_int (bad_content, 0, "the stored content is the winner's, whole");
}

static void
test_urls (const char *dir)
{
  struct xs_backend *backend;
  char *url;
  struct stat st;

  ok (xs_backend_open ("s3x://bucket/prefix") == NULL, "s3x:// refused");
  error_contains ("unsupported backend URL 's3x://bucket/prefix'",
                  "message quotes the URL");
  ok (xs_backend_open ("S3x://bucket") == NULL, "an unknown scheme refused");
  error_contains ("supported: file:///absolute/path, s3://bucket",
                  "message lists the schemes");
  ok (xs_backend_open ("/just/a/path") == NULL, "a bare path refused");
  error_contains ("not a URL", "message says not a URL");
  ok (xs_backend_open ("file:relative/dir") == NULL, "file:relative refused");
  error_contains ("file:///absolute/path", "message shows the right form");
  ok (xs_backend_open ("file://otherhost/dir") == NULL,
      "file://host/ refused");
  error_contains ("not host 'otherhost'", "message names the host");
  ok (xs_backend_open ("file:///tmp/a%zzb") == NULL, "bad %%-escape refused");
  error_contains ("bad %-escape", "message says bad escape");
  ok (xs_backend_open ("file:///tmp/a%00b") == NULL, "%%00 refused");
  ok (xs_backend_open ("file:///tmp/x?y=1") == NULL, "a query refused");
  tap_take_error ();

  if (asprintf (&url, "file://localhost%s/with%%20space/deeper", dir) == -1)
    abort ();
  backend = xs_backend_open (url);
  ok (backend != NULL, "file://localhost/... with %%20 opens");
  if (backend) {
    is_str (xs_backend_url (backend), url, "xs_backend_url gives the URL");
    xs_backend_close (backend);
  }
  free (url);
  if (asprintf (&url, "%s/with space/deeper", dir) == -1)
    abort ();
  ok (stat (url, &st) == 0 && S_ISDIR (st.st_mode),
      "the directory was created, escapes decoded");
  free (url);
}

int
main (void)
{
  char *dir = tap_tmpdir ();
  char *root;
  struct xs_backend *backend = open_store (dir, "store");

  ok (backend != NULL, "open a file backend (creating its directory)");
  if (backend == NULL)
    return done_testing ();
  if (asprintf (&root, "%s/store", dir) == -1)
    abort ();
  test_put_get (backend);
  test_get_placed (backend);
  test_torn_object (backend, root);
  test_put_leaves_one_entry (backend, root);
  test_bad_keys (backend);
  test_race (backend);
  xs_backend_close (backend);
  test_list (dir);
  test_urls (dir);
  free (root);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
