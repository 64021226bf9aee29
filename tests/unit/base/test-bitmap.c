/* Unit tests: the bitmap, checked against a plain bool-array model. */
#include <stdbool.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tap.h"

#include "base/bitmap.h"

struct runs {
  uint64_t firsts[64], counts[64];
  int n;
};

static int
collect_run (uint64_t first, uint64_t count, void *opaque)
{
  struct runs *runs = opaque;

  if (runs->n < 64) {
    runs->firsts[runs->n] = first;
    runs->counts[runs->n] = count;
  }
  runs->n++;
  return 0;
}

static void
test_basics (void)
{
  struct xs_bitmap bm;
  struct runs runs = { .n = 0 };

  ok (xs_bitmap_init (&bm, 100) == 0, "init 100 bits");
  is_int (bm.nbytes, 13, "13 bytes for 100 bits");
  is_int (xs_bitmap_count (&bm), 0, "starts empty");
  is_int (xs_bitmap_next_set (&bm, 0), 100, "next_set on empty is nbits");
  ok (xs_bitmap_set_atomic (&bm, 5), "set_atomic reports newly set");
  ok (!xs_bitmap_set_atomic (&bm, 5), "second set_atomic reports already set");
  xs_bitmap_set_range (&bm, 10, 30);
  xs_bitmap_set (&bm, 99);
  is_int (xs_bitmap_count (&bm), 32, "count after sets");
  ok (bm.bytes[0] == 0x20, "bit 5 is bit 5 of byte 0 (LSB first)");
  xs_bitmap_for_each_run (&bm, collect_run, &runs);
  is_int (runs.n, 3, "three runs");
  ok (runs.firsts[0] == 5 && runs.counts[0] == 1, "run 1: 5+1");
  ok (runs.firsts[1] == 10 && runs.counts[1] == 30, "run 2: 10+30");
  ok (runs.firsts[2] == 99 && runs.counts[2] == 1, "run 3: 99+1 (last bit)");
  is_int (xs_bitmap_next_clear (&bm, 10), 40, "next_clear inside a run");
  xs_bitmap_clear (&bm, 99);
  is_int (xs_bitmap_next_set (&bm, 40), 100, "cleared last bit");
  ok (xs_bitmap_resize (&bm, 1000) == 0, "grow to 1000 bits");
  is_int (xs_bitmap_count (&bm), 31, "grow keeps bits, adds clear ones");
  xs_bitmap_set (&bm, 999);
  ok (xs_bitmap_resize (&bm, 12) == 0, "shrink to 12 bits");
  is_int (xs_bitmap_count (&bm), 3, "  keeps the bits below (5, 10, 11)");
  is_int (xs_bitmap_next_set (&bm, 12), 12, "  and none past its end");
  ok (xs_bitmap_resize (&bm, 1000) == 0, "grow again to 1000 bits");
  is_int (xs_bitmap_count (&bm), 3, "  the bits dropped (12-39, 999) stay gone");
  is_int (xs_bitmap_next_set (&bm, 12), 1000, "  none past 11");
  xs_bitmap_free (&bm);
}

/* Random operations against a bool array; then every query agrees. */
static void
test_against_model (void)
{
  const uint64_t nbits = 5000;
  struct xs_bitmap bm;
  bool model[5000] = { false };
  unsigned seed = 12345;
  bool agree = true;

  xs_bitmap_init (&bm, nbits);
  for (int i = 0; i < 2000; i++) {
    uint64_t a = rand_r (&seed) % nbits;
    uint64_t len = rand_r (&seed) % 200;
    if (a + len > nbits)
      len = nbits - a;
    switch (rand_r (&seed) % 3) {
    case 0:
      xs_bitmap_set_range (&bm, a, len);
      for (uint64_t b = a; b < a + len; b++)
        model[b] = true;
      break;
    case 1:
      xs_bitmap_clear (&bm, a);
      model[a] = false;
      break;
    default:
      xs_bitmap_set_atomic (&bm, a);
      model[a] = true;
    }
  }
  uint64_t count = 0;
  for (uint64_t b = 0; b < nbits; b++) {
    count += model[b];
    if (xs_bitmap_get (&bm, b) != model[b])
      agree = false;
  }
  ok (agree, "every bit agrees with the model");
  is_int (xs_bitmap_count (&bm), count, "count agrees with the model");
  {
    struct xs_bitmap full;

    if (xs_bitmap_init (&full, 100003) == -1)
      abort ();
    xs_bitmap_set_range (&full, 5, 100000);
    is_int (xs_bitmap_count (&full), 100000, "count of words all ones");
    {
      struct xs_bitmap sum;
      bool same = true;

      if (xs_bitmap_init (&sum, bm.nbits) == -1)
        abort ();
      xs_bitmap_set (&sum, 0);
      xs_bitmap_or (&sum, &bm);
      for (uint64_t b = 0; b < bm.nbits; b++)
        same &= xs_bitmap_get (&sum, b) == (b == 0 || model[b]);
      ok (same, "or: the union of both, bit for bit");
      xs_bitmap_free (&sum);
    }
    xs_bitmap_free (&full);
  }
  for (uint64_t from = 0; from < nbits && agree; from += 37) {
    uint64_t want = from;
    while (want < nbits && !model[want])
      want++;
    if (xs_bitmap_next_set (&bm, from) != want)
      agree = false;
    want = from;
    while (want < nbits && model[want])
      want++;
    if (xs_bitmap_next_clear (&bm, from) != want)
      agree = false;
  }
  ok (agree, "next_set and next_clear agree with the model");
  xs_bitmap_free (&bm);
}

struct setter {
  struct xs_bitmap *bm;
  uint64_t start;
  uint64_t newly;
};

static void *
set_every_other (void *opaque)
{
  struct setter *s = opaque;

  for (uint64_t b = s->start; b < s->bm->nbits; b += 2)
    if (xs_bitmap_set_atomic (s->bm, b))
      s->newly++;
  return NULL;
}

/* Two threads set interleaved bits of the same bytes: none is lost. */
static void
test_concurrent_sets (void)
{
  struct xs_bitmap bm;
  struct setter a, b;
  pthread_t ta, tb;

  xs_bitmap_init (&bm, 1 << 20);
  a = (struct setter) { &bm, 0, 0 };
  b = (struct setter) { &bm, 1, 0 };
  pthread_create (&ta, NULL, set_every_other, &a);
  pthread_create (&tb, NULL, set_every_other, &b);
  pthread_join (ta, NULL);
  pthread_join (tb, NULL);
  is_int (xs_bitmap_count (&bm), 1 << 20, "no bit lost to a race");
  is_int (a.newly + b.newly, 1 << 20, "each bit reported newly set once");
  xs_bitmap_free (&bm);
}

/* A search within a range reads only that range: the map's bytes past
 * it are an inaccessible page, so a read there would crash.  (A sealer
 * claims a run of blocks of a map that may be 16 MiB; searching on to
 * the end from every run was quadratic in the volume's size.)
 */
static void
test_within (void)
{
  long page = sysconf (_SC_PAGESIZE);
  uint8_t *area = mmap (NULL, 2 * page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct xs_bitmap bm;

  if (area == MAP_FAILED || mprotect (area + page, page, PROT_NONE) == -1)
    abort ();
  memset (area, 0, page);
  /* The last 8 bytes before the guard: 64 bits, then a map that claims
   * to go on for a terabit.
   */
  bm.bytes = area + page - 8;
  bm.nbits = UINT64_C (1) << 40;
  bm.nbytes = bm.nbits / 8;
  is_int (xs_bitmap_next_set_within (&bm, 0, 64), 64,
          "a clean range: its end, nothing read past it");
  xs_bitmap_set_atomic (&bm, 9);
  xs_bitmap_set_atomic (&bm, 63);
  is_int (xs_bitmap_next_set_within (&bm, 0, 64), 9, "the first set bit");
  is_int (xs_bitmap_next_set_within (&bm, 9, 64), 9, "FROM itself");
  is_int (xs_bitmap_next_set_within (&bm, 10, 64), 63, "the next one");
  is_int (xs_bitmap_next_set_within (&bm, 10, 63), 63,
          "a bit at LIMIT is outside the range");
  is_int (xs_bitmap_next_set_within (&bm, 64, 64), 64, "an empty range");
  is_int (xs_bitmap_next_set_within (&bm, 40, 20), 20,
          "FROM past LIMIT: LIMIT");
  munmap (area, 2 * page);

  if (xs_bitmap_init (&bm, 100) == -1)
    abort ();
  xs_bitmap_set (&bm, 99);
  is_int (xs_bitmap_next_set_within (&bm, 0, 1000), 99,
          "LIMIT past the map: clamped, the last bit found");
  xs_bitmap_clear (&bm, 99);
  is_int (xs_bitmap_next_set_within (&bm, 0, 1000), 100,
          "none: the map's size");
  xs_bitmap_free (&bm);
}

int
main (void)
{
  test_basics ();
  test_against_model ();
  test_concurrent_sets ();
  test_within ();
  return done_testing ();
}
