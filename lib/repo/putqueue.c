/* xsnap: storing chunks from a background thread (see putqueue.h).
 *
 * A ring of DEPTH slots, each with a buffer that is kept and grown, so a
 * steady stream of chunks allocates nothing.  A slot belongs to the
 * caller until it is queued and to the thread until its job is done;
 * only then does the ring's count go down, so the caller never writes a
 * buffer the thread is reading.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "repo/putqueue.h"

struct slot {
  struct xs_hash128 id;
  uint8_t *buf;
  size_t len, cap;
  uint64_t tag;
};

struct xs_putqueue {
  struct xs_repo *repo;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  struct slot *slots;
  unsigned depth, head, count;  /* jobs are slots[head .. head + count) */
  bool quit, abandon;
  bool failed;                  /* sticky: no job after it is tried */
  uint64_t failed_tag;
  char why[512];                /* what the failed job reported */
  uint64_t stored_bytes;        /* new to the repository, since drained */
};

/* Do the job at the head, unlocked; then free its slot. */
static void
run_job (struct xs_putqueue *q)
{
  struct slot *s = &q->slots[q->head];
  bool skip = q->failed || q->abandon;
  char why[sizeof q->why] = "";
  int r = 0;

  pthread_mutex_unlock (&q->lock);
  if (!skip) {
    xs_error_capture_begin (why, sizeof why);
    r = xs_repo_put_chunk (q->repo, &s->id, s->buf, s->len, false);
    xs_error_capture_end ();
  }
  pthread_mutex_lock (&q->lock);
  if (r == -1 && !q->failed) {
    memcpy (q->why, why, sizeof why);
    q->failed = true;
    q->failed_tag = s->tag;
  }
  if (r == 1)
    q->stored_bytes += s->len;
  q->head = (q->head + 1) % q->depth;
  q->count--;
  pthread_cond_broadcast (&q->changed);
}

static void *
putqueue_thread (void *opaque)
{
  struct xs_putqueue *q = opaque;

  pthread_mutex_lock (&q->lock);
  for (;;) {
    while (q->count == 0 && !q->quit)
      pthread_cond_wait (&q->changed, &q->lock);
    if (q->count == 0)
      break;
    run_job (q);
  }
  pthread_mutex_unlock (&q->lock);
  return NULL;
}

struct xs_putqueue *
xs_putqueue_new (struct xs_repo *repo, unsigned depth)
{
  struct xs_putqueue *q = calloc (1, sizeof *q);
  sigset_t all, old;
  int err;

  if (q == NULL || (q->slots = calloc (depth, sizeof *q->slots)) == NULL) {
    xs_error ("cannot start storing chunks: %m");
    free (q);
    return NULL;
  }
  q->repo = repo;
  q->depth = depth;
  pthread_mutex_init (&q->lock, NULL);
  pthread_cond_init (&q->changed, NULL);
  /* Signals stay with the caller's thread, whose reads they interrupt. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  err = pthread_create (&q->thread, NULL, putqueue_thread, q);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err != 0) {
    errno = err;
    xs_error ("cannot start storing chunks: %m");
    pthread_cond_destroy (&q->changed);
    pthread_mutex_destroy (&q->lock);
    free (q->slots);
    free (q);
    return NULL;
  }
  return q;
}

/* Make S's buffer hold LEN bytes (the caller owns S). */
static int
slot_reserve (struct slot *s, size_t len)
{
  uint8_t *bigger;

  if (len <= s->cap)
    return 0;
  bigger = realloc (s->buf, len);
  if (bigger == NULL) {
    xs_error ("cannot store a chunk of %zu bytes: %m", len);
    return -1;
  }
  s->buf = bigger;
  s->cap = len;
  return 0;
}

int
xs_putqueue_add (struct xs_putqueue *q, const struct xs_hash128 *id,
                 const void *stored, size_t len, uint64_t tag)
{
  struct slot *s;

  pthread_mutex_lock (&q->lock);
  while (q->count == q->depth && !q->failed)
    pthread_cond_wait (&q->changed, &q->lock);
  if (q->failed) {
    pthread_mutex_unlock (&q->lock);
    return -1;
  }
  s = &q->slots[(q->head + q->count) % q->depth];
  pthread_mutex_unlock (&q->lock);

  /* The slot is not queued yet: it is ours to fill. */
  if (slot_reserve (s, len) == -1)
    return -1;
  memcpy (s->buf, stored, len);
  s->len = len;
  s->id = *id;
  s->tag = tag;

  pthread_mutex_lock (&q->lock);
  q->count++;
  pthread_cond_broadcast (&q->changed);
  pthread_mutex_unlock (&q->lock);
  return 0;
}

bool
xs_putqueue_idle (struct xs_putqueue *q)
{
  bool idle;

  pthread_mutex_lock (&q->lock);
  idle = q->count == 0;
  pthread_mutex_unlock (&q->lock);
  return idle;
}

int
xs_putqueue_drain (struct xs_putqueue *q, uint64_t *stored_bytes,
                   uint64_t *failed_tag)
{
  int r = 0;

  pthread_mutex_lock (&q->lock);
  while (q->count > 0)
    pthread_cond_wait (&q->changed, &q->lock);
  *stored_bytes += q->stored_bytes;
  q->stored_bytes = 0;
  if (q->failed) {
    *failed_tag = q->failed_tag;
    xs_error_capture_note (q->why);
    r = -1;
  }
  pthread_mutex_unlock (&q->lock);
  return r;
}

void
xs_putqueue_free (struct xs_putqueue *q, bool abandon)
{
  if (q == NULL)
    return;
  pthread_mutex_lock (&q->lock);
  q->quit = true;
  q->abandon = abandon;
  pthread_cond_broadcast (&q->changed);
  pthread_mutex_unlock (&q->lock);
  pthread_join (q->thread, NULL);
  for (unsigned i = 0; i < q->depth; i++)
    free (q->slots[i].buf);
  free (q->slots);
  pthread_cond_destroy (&q->changed);
  pthread_mutex_destroy (&q->lock);
  free (q);
}
