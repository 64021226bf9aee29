/* xsnap: tests for lib/base/lockorder.c, the lock-order checker.
 *
 * Each case runs in a child process (a broken order aborts it): the
 * order of lockorder.h taken outer to inner passes; an inner lock held
 * while an outer one is taken, two stripes of a one-at-a-time kind, sector
 * stripes out of index order, a lock taken twice and a lock released
 * without being held all abort, with a message naming both locks.  The
 * record is per thread.  When the library is built with the checker
 * (SANITIZE=1, LOCK_CHECK=1), its data path is checked too: a write to a
 * head by a thread holding an inner lock aborts.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "headfixture.h"
#include "base/lockorder.h"

static pthread_rwlock_t gate = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stripes[2] = { PTHREAD_MUTEX_INITIALIZER,
                                      PTHREAD_MUTEX_INITIALIZER };
static pthread_rwlock_t sectors[3] = { PTHREAD_RWLOCK_INITIALIZER,
                                       PTHREAD_RWLOCK_INITIALIZER,
                                       PTHREAD_RWLOCK_INITIALIZER };
static pthread_mutex_t queue = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pool = PTHREAD_MUTEX_INITIALIZER;

struct outcome {
  bool aborted;
  int status;
  char messages[1024];
};

/* Run FN in a child; what became of it and what it wrote to stderr. */
static struct outcome
run_child (void (*fn) (void))
{
  struct outcome o = { 0 };
  int fds[2], wstatus;
  ssize_t n;
  size_t got = 0;
  pid_t pid;

  fflush (stdout);
  if (pipe (fds) == -1 || (pid = fork ()) == -1)
    abort ();
  if (pid == 0) {
    dup2 (fds[1], 2);
    close (fds[0]);
    fn ();
    _exit (0);
  }
  close (fds[1]);
  while (got < sizeof o.messages - 1
         && (n = read (fds[0], o.messages + got,
                       sizeof o.messages - 1 - got)) > 0)
    got += (size_t) n;
  close (fds[0]);
  waitpid (pid, &wstatus, 0);
  o.aborted = WIFSIGNALED (wstatus) && WTERMSIG (wstatus) == SIGABRT;
  o.status = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : -1;
  return o;
}

static void
in_order (void)
{
  xs_lock_take_read (&gate, XS_LOCK_HEAD_GATE, 0);
  xs_lock_take (&stripes[0], XS_LOCK_SEAL_STRIPE, 0);
  xs_lock_take_write (&sectors[0], XS_LOCK_HEAD_SECTOR, 0);
  xs_lock_take_write (&sectors[2], XS_LOCK_HEAD_SECTOR, 2);
  xs_lock_take (&queue, XS_LOCK_SEAL_QUEUE, 0);
  if (xs_lock_check_held () != 5)
    _exit (2);
  /* Released in any order. */
  xs_lock_drop_rw (&sectors[0]);
  xs_lock_drop (&stripes[0]);
  xs_lock_drop (&queue);
  xs_lock_drop_rw (&sectors[2]);
  xs_lock_drop_rw (&gate);
  if (xs_lock_check_held () != 0)
    _exit (3);
  /* Taken again after release: fine. */
  xs_lock_take (&guard_lock, XS_LOCK_HEAD_GUARD, 0);
  xs_lock_take (&pool, XS_LOCK_SEAL_CODECS, 0);
  xs_lock_drop (&pool);
  xs_lock_drop (&guard_lock);
}

static void
inverted (void)
{
  xs_lock_take (&stripes[0], XS_LOCK_SEAL_STRIPE, 0);
  xs_lock_take_write (&gate, XS_LOCK_HEAD_GATE, 0);
}

static void
leaf_then_queue (void)
{
  xs_lock_take (&pool, XS_LOCK_SEAL_CODECS, 0);
  xs_lock_take (&queue, XS_LOCK_SEAL_QUEUE, 0);
}

static void
two_stripes (void)
{
  xs_lock_take (&stripes[0], XS_LOCK_SEAL_STRIPE, 0);
  xs_lock_take (&stripes[1], XS_LOCK_SEAL_STRIPE, 1);
}

static void
sectors_backwards (void)
{
  xs_lock_take_read (&sectors[2], XS_LOCK_HEAD_SECTOR, 2);
  xs_lock_take_read (&sectors[1], XS_LOCK_HEAD_SECTOR, 1);
}

static void
taken_twice (void)
{
  xs_lock_take (&queue, XS_LOCK_SEAL_QUEUE, 0);
  xs_lock_take (&queue, XS_LOCK_SEAL_QUEUE, 0);   /* would hang */
}

static void
dropped_unheld (void)
{
  xs_lock_drop (&queue);
}

static void *
hold_stripe (void *arg)
{
  xs_lock_take (&stripes[1], XS_LOCK_SEAL_STRIPE, 1);
  xs_lock_drop (&stripes[1]);
  return (void *) (uintptr_t) xs_lock_check_held ();
}

/* A thread holding an inner lock does not constrain another thread. */
static void
per_thread (void)
{
  pthread_t t;
  void *held;

  xs_lock_take (&queue, XS_LOCK_SEAL_QUEUE, 0);
  if (pthread_create (&t, NULL, hold_stripe, NULL) != 0
      || pthread_join (t, &held) != 0 || held != NULL)
    _exit (4);
  xs_lock_drop (&queue);
}

static void
expect_abort (void (*fn) (void), const char *what, const char *held,
              const char *taken, const char *why)
{
  struct outcome o = run_child (fn);

  ok (o.aborted, "%s: aborts", what);
  ok (strstr (o.messages, "lock order broken") != NULL
      && strstr (o.messages, held) != NULL
      && strstr (o.messages, taken) != NULL
      && strstr (o.messages, why) != NULL,
      "  naming the locks and why");
  if (!o.aborted || strstr (o.messages, why) == NULL)
    printf ("#   stderr: %s\n", o.messages);
}

static struct xs_head *head;

static void
write_holding_a_leaf (void)
{
  char byte = 'x';

  xs_lock_take (&pool, XS_LOCK_HEAD_BOUNCE, 0);
  xs_head_pwrite (head, &byte, 1, 0, false);
}

static void
test_library_checked (void)
{
  struct fixture f;

  if (!xs_lock_check_built_in ()) {
    ok (1, "# skip the library is built without the checker");
    return;
  }
  fixture_init (&f, 1 << 20, 65536, false);
  head = fixture_open (&f);
  if (head == NULL)
    abort ();
  expect_abort (write_holding_a_leaf,
                "the library: a write while holding a pool lock",
                "holding head bounce pool lock", "taking head gate",
                "an inner lock is held");
  xs_head_close (head);
  fixture_free (&f);
}

int
main (void)
{
  struct outcome o;

  o = run_child (in_order);
  ok (!o.aborted && o.status == 0,
      "the documented order, outer to inner, passes");
  if (o.status != 0)
    printf ("#   status %d, stderr: %s\n", o.status, o.messages);

  expect_abort (inverted, "a seal stripe held while taking the gate",
                "holding seal stripe 0", "taking head gate",
                "an inner lock is held");
  expect_abort (leaf_then_queue, "a pool (a leaf) held while taking more",
                "holding seal codec pool lock", "taking seal queue lock",
                "an inner lock is held");
  expect_abort (two_stripes, "two seal stripes at once",
                "holding seal stripe 0", "taking seal stripe 1",
                "one of its kind at a time");
  expect_abort (sectors_backwards, "sector stripes out of index order",
                "holding head sector stripe 2", "taking head sector stripe 1",
                "several are taken in index order");
  expect_abort (taken_twice, "a lock taken twice by one thread",
                "holding seal queue lock", "taking seal queue lock",
                "it is held already");

  o = run_child (dropped_unheld);
  ok (o.aborted && strstr (o.messages, "released but not held") != NULL,
      "releasing a lock not held aborts");

  o = run_child (per_thread);
  ok (!o.aborted && o.status == 0,
      "each thread is checked against its own locks");
  test_library_checked ();
  return done_testing ();
}
