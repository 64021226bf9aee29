/* Unit tests for lib/crypto/headcrypt.c and an encrypted head (lib/head/head.c): the
 * cipher against OpenSSL's AES-128-XTS used directly, the zero-sector
 * rule, and a head whose data file holds only ciphertext while reads,
 * writes of any alignment, zeroes and trims behave as on a plaintext head
 * (checked against a model), from several threads at once too.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/fileio.h"
#include "head/head.h"
#include "crypto/headcrypt.h"
#include "tap.h"

#define SIZE (1u << 20)
#define BLOCK 65536u
#define THREADS 4

static const char marker[] = "XSNAP-HEAD-MARKER";

static void
make_key (unsigned char key[XS_HEAD_KEY_LEN], unsigned char seed)
{
  for (unsigned i = 0; i < XS_HEAD_KEY_LEN; i++)
    key[i] = (unsigned char) (seed * 31 + i * 7 + 1);
}

/* One sector with OpenSSL directly: the tweak is the sector number. */
static void
reference_encrypt (const unsigned char *key, const unsigned char *in,
                   unsigned char *out, uint64_t sector)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  unsigned char tweak[16] = { 0 };
  int len;

  for (unsigned i = 0; i < 8; i++)
    tweak[i] = (unsigned char) (sector >> (8 * i));
  if (ctx == NULL
      || EVP_EncryptInit_ex (ctx, EVP_aes_128_xts (), NULL, key, tweak) != 1
      || EVP_EncryptUpdate (ctx, out, &len, in, XS_HEAD_SECTOR) != 1)
    abort ();
  EVP_CIPHER_CTX_free (ctx);
}

static void
test_cipher (void)
{
  unsigned char key[XS_HEAD_KEY_LEN], same[XS_HEAD_KEY_LEN];
  unsigned char plain[3 * XS_HEAD_SECTOR], out[3 * XS_HEAD_SECTOR];
  unsigned char ref[XS_HEAD_SECTOR], back[3 * XS_HEAD_SECTOR];
  struct xs_head_cipher *c;

  make_key (key, 1);
  c = xs_head_cipher_new (key);
  ok (c != NULL, "a cipher under a 32-byte key");
  for (unsigned i = 0; i < sizeof plain; i++)
    plain[i] = (unsigned char) (i * 13 + 5);
  is_int (xs_head_encrypt (c, plain, out, sizeof plain, 5 * XS_HEAD_SECTOR),
          0, "encrypt three sectors at sector 5");
  reference_encrypt (key, plain + XS_HEAD_SECTOR, ref, 6);
  ok (memcmp (out + XS_HEAD_SECTOR, ref, XS_HEAD_SECTOR) == 0,
      "the middle one is AES-128-XTS with tweak 6 (plain64)");
  ok (memcmp (out, out + XS_HEAD_SECTOR, 16) != 0,
      "equal-looking sectors at other offsets differ");
  is_int (xs_head_decrypt (c, out, back, sizeof out, 5 * XS_HEAD_SECTOR), 0,
          "decrypt them");
  ok (memcmp (back, plain, sizeof plain) == 0, "  to the same bytes");
  is_int (xs_head_decrypt (c, out, back, sizeof out, 6 * XS_HEAD_SECTOR), 0,
          "decrypt them at the wrong offset");
  ok (memcmp (back, plain, sizeof plain) != 0, "  to other bytes");
  memcpy (back, plain, sizeof plain);
  xs_head_encrypt (c, back, back, sizeof back, 0);
  xs_head_decrypt (c, back, back, sizeof back, 0);
  ok (memcmp (back, plain, sizeof plain) == 0, "in place, both ways");
  memset (out, 0, sizeof out);
  memset (back, 0xee, sizeof back);
  is_int (xs_head_decrypt (c, out, back, sizeof out, 0), 0,
          "decrypt all-zero sectors");
  ok (back[0] == 0 && back[sizeof back - 1] == 0
      && memcmp (back, back + 1, sizeof back - 1) == 0,
      "  a stored zero sector reads as zeros (a hole)");
  is_int (xs_head_encrypt (c, plain, out, 100, 0), -1,
          "a part of a sector is refused");
  xs_head_cipher_free (c);
  memset (same, 9, sizeof same);
  ok (xs_head_cipher_new (same) == NULL, "equal key halves are refused");
  tap_take_error ();
}

/* ----- A head ----- */

struct fixture {
  char dir[256];
  unsigned char key[XS_HEAD_KEY_LEN];
  struct xs_head *h;
  unsigned char *model;
};

static struct xs_head *
open_head (struct fixture *f, const unsigned char *key)
{
  return xs_head_open (f->dir, "enc", SIZE, BLOCK,
                       &(struct xs_dirtymap_binding) { 0 }, NULL, NULL, NULL,
                       key);
}

static void
fill (unsigned char *buf, size_t len, unsigned seed)
{
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char) (seed + i * 7 + i / 251);
  if (len > sizeof marker)
    memcpy (buf + len / 2 - sizeof marker / 2, marker, sizeof marker - 1);
}

static void
write_both (struct fixture *f, size_t len, uint64_t offset, unsigned seed)
{
  unsigned char *buf = malloc (len);

  if (buf == NULL)
    abort ();
  fill (buf, len, seed);
  if (xs_head_pwrite (f->h, buf, (uint32_t) len, offset, false) != 0)
    ok (0, "write %zu bytes at %lu", len, (unsigned long) offset);
  memcpy (f->model + offset, buf, len);
  free (buf);
}

static int
matches_model (struct fixture *f, struct xs_head *h)
{
  unsigned char *got = malloc (SIZE);
  int r;

  if (got == NULL)
    abort ();
  r = xs_head_pread (h, got, SIZE, 0) == 0
    && memcmp (got, f->model, SIZE) == 0;
  free (got);
  return r;
}

static int
data_file_has_marker (struct fixture *f)
{
  char path[300];
  unsigned char *raw = malloc (SIZE);
  int fd, found = 0;

  snprintf (path, sizeof path, "%s/data", f->dir);
  fd = open (path, O_RDONLY);
  if (raw == NULL || fd == -1 || xs_full_pread (fd, raw, SIZE, 0) == -1)
    abort ();
  close (fd);
  for (size_t i = 0; i + sizeof marker - 1 <= SIZE; i++)
    if (memcmp (raw + i, marker, sizeof marker - 1) == 0) {
      found = 1;
      break;
    }
  free (raw);
  return found;
}

static void
test_head_data_path (struct fixture *f)
{
  unsigned char small[40];

  write_both (f, 8192, 0, 1);                    /* aligned */
  write_both (f, 5000, 12345, 2);                /* unaligned, spanning */
  write_both (f, 100, 20000, 3);                 /* inside one sector */
  write_both (f, 3 * BLOCK + 17, BLOCK - 9, 4);  /* across blocks */
  write_both (f, 4096, SIZE - 4096, 5);          /* the last sector */
  ok (matches_model (f, f->h), "reads give back every write (model)");
  ok (xs_head_zero (f->h, 3000, 12000, XS_HEAD_MAY_TRIM) == 0,
      "zero an unaligned range");
  memset (f->model + 12000, 0, 3000);
  ok (xs_head_trim (f->h, 9000, 60000, false) == 0,
      "trim an unaligned range");
  memset (f->model + 60000, 0, 9000);
  ok (xs_head_zero (f->h, 10, 20050, 0) == 0,
      "zero part of a sector, keeping it allocated");
  memset (f->model + 20050, 0, 10);
  ok (matches_model (f, f->h), "zeros and trims read as zeros, the rest "
      "as written");
  ok (xs_head_pread (f->h, small, sizeof small, 20040) == 0
      && memcmp (small, f->model + 20040, sizeof small) == 0,
      "a small unaligned read");
  ok (xs_head_flush (f->h) == 0, "flush");
  ok (!data_file_has_marker (f), "the data file holds no plaintext");
}

struct writer {
  struct fixture *f;
  unsigned index;
};

/* Each thread writes its own bytes of the same sectors, many times. */
static void *
partial_writer (void *opaque)
{
  struct writer *w = opaque;
  unsigned char buf[512];

  for (unsigned round = 0; round < 200; round++) {
    uint64_t sector = 100 + round % 8;
    uint64_t offset = sector * XS_HEAD_SECTOR + w->index * 1024 + 100;

    memset (buf, (int) (w->index + 1), sizeof buf);
    if (xs_head_pwrite (w->f->h, buf, sizeof buf, offset, false) != 0)
      return (void *) 1;
  }
  return NULL;
}

static void
test_concurrent_partial_writes (struct fixture *f)
{
  pthread_t threads[THREADS];
  struct writer w[THREADS];
  void *result;
  int failed = 0;

  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (struct writer) { f, i };
    pthread_create (&threads[i], NULL, partial_writer, &w[i]);
  }
  for (unsigned i = 0; i < THREADS; i++) {
    pthread_join (threads[i], &result);
    failed |= result != NULL;
  }
  ok (!failed, "%d threads write parts of the same sectors", THREADS);
  for (uint64_t sector = 100; sector < 108; sector++)
    for (unsigned i = 0; i < THREADS; i++)
      memset (f->model + sector * XS_HEAD_SECTOR + i * 1024 + 100,
              (int) (i + 1), 512);
  ok (matches_model (f, f->h), "  no thread's bytes were lost");
}

/* A writer rewrites bytes [0, 100) of a sector over and over while reads
 * of bytes [2048, 2148) of it must always see what was written there
 * once: never a sector caught half rewritten, which would decrypt to
 * garbage.
 */
struct rewriter {
  struct xs_head *h;
  int stop;
  int failed;
};

static void *
rewrite_front (void *opaque)
{
  struct rewriter *rw = opaque;
  char buf[100];

  for (unsigned n = 0; !__atomic_load_n (&rw->stop, __ATOMIC_RELAXED); n++) {
    memset (buf, 'a' + n % 26, sizeof buf);
    if (xs_head_pwrite (rw->h, buf, sizeof buf, 200 * XS_HEAD_SECTOR,
                        false) != 0)
      rw->failed = 1;
  }
  return NULL;
}

static void
test_reads_during_partial_writes (struct fixture *f)
{
  struct rewriter rw = { .h = f->h };
  unsigned char want[100], got[100];
  pthread_t thread;
  int bad = 0;

  memset (want, 'Q', sizeof want);
  if (xs_head_pwrite (f->h, want, sizeof want, 200 * XS_HEAD_SECTOR + 2048,
                      false) != 0)
    abort ();
  pthread_create (&thread, NULL, rewrite_front, &rw);
  for (int i = 0; i < 100000 && !bad; i++)
    if (xs_head_pread (f->h, got, sizeof got, 200 * XS_HEAD_SECTOR + 2048)
        != 0 || memcmp (got, want, sizeof want) != 0)
      bad = 1;
  __atomic_store_n (&rw.stop, 1, __ATOMIC_RELAXED);
  pthread_join (thread, NULL);
  ok (!bad && !rw.failed, "reads of a sector's other bytes never see it "
      "half rewritten by a partial write");
  memcpy (f->model + 200 * XS_HEAD_SECTOR + 2048, want, sizeof want);
  if (xs_head_pread (f->h, f->model + 200 * XS_HEAD_SECTOR, 100,
                     200 * XS_HEAD_SECTOR) != 0)
    abort ();
}

/* A large request is every sector under its own tweak, also with
 * several requests at once on one cipher (its pooled contexts).
 */
#define LARGE (1024 * 1024 + 3 * XS_HEAD_SECTOR)

struct large_job {
  struct xs_head_cipher *c;
  const unsigned char *key;
  uint64_t first_sector;
  int bad;
};

static int
check_large (struct xs_head_cipher *c, const unsigned char *key,
             uint64_t first_sector)
{
  unsigned char *plain = malloc (LARGE), *out = malloc (LARGE);
  unsigned char ref[XS_HEAD_SECTOR];
  int bad = 0;

  if (plain == NULL || out == NULL)
    abort ();
  for (size_t i = 0; i < LARGE; i++)
    plain[i] = (unsigned char) (i * 7 + first_sector);
  if (xs_head_encrypt (c, plain, out, LARGE,
                       first_sector * XS_HEAD_SECTOR) != 0)
    bad++;
  for (size_t s = 0; s < LARGE / XS_HEAD_SECTOR; s++) {
    reference_encrypt (key, plain + s * XS_HEAD_SECTOR, ref,
                       first_sector + s);
    if (memcmp (out + s * XS_HEAD_SECTOR, ref, XS_HEAD_SECTOR) != 0)
      bad++;
  }
  if (xs_head_decrypt (c, out, out, LARGE,
                       first_sector * XS_HEAD_SECTOR) != 0
      || memcmp (out, plain, LARGE) != 0)
    bad++;
  free (plain);
  free (out);
  return bad;
}

static void *
large_thread (void *opaque)
{
  struct large_job *j = opaque;

  for (int i = 0; i < 20; i++)
    j->bad += check_large (j->c, j->key, j->first_sector + (uint64_t) i);
  return NULL;
}

static void
test_large_requests (void)
{
  unsigned char key[XS_HEAD_KEY_LEN];
  struct xs_head_cipher *c;
  struct large_job jobs[4];
  pthread_t threads[4];
  int bad = 0;

  make_key (key, 3);
  c = xs_head_cipher_new (key);
  if (c == NULL)
    abort ();
  is_int (check_large (c, key, 77), 0,
          "a large request is every sector under its own tweak, and "
          "decrypts back");
  for (int i = 0; i < 4; i++) {
    jobs[i] = (struct large_job) { .c = c, .key = key,
                                   .first_sector = 1000u * (unsigned) i };
    if (pthread_create (&threads[i], NULL, large_thread, &jobs[i]) != 0)
      abort ();
  }
  for (int i = 0; i < 4; i++) {
    pthread_join (threads[i], NULL);
    bad += jobs[i].bad;
  }
  is_int (bad, 0, "80 large requests from 4 threads at once are all right");
  xs_head_cipher_free (c);
}

static void
test_head (void)
{
  struct fixture f;
  struct xs_head *plain;
  char template[] = "/tmp/xsnap-headcrypt-XXXXXX";
  unsigned char *tmp;

  if (mkdtemp (template) == NULL)
    abort ();
  snprintf (f.dir, sizeof f.dir, "%s/head", template);
  make_key (f.key, 2);
  f.model = calloc (1, SIZE);
  if (f.model == NULL)
    abort ();
  ok (xs_head_create (f.dir, SIZE, BLOCK, 0, NULL) == 0, "create a head");
  f.h = open_head (&f, f.key);
  ok (f.h != NULL, "open it with a key");
  ok (matches_model (&f, f.h), "a new encrypted head reads as zeros");
  test_head_data_path (&f);
  test_concurrent_partial_writes (&f);
  test_reads_during_partial_writes (&f);
  ok (xs_head_close (f.h) == 0, "close");
  f.h = open_head (&f, f.key);
  ok (f.h != NULL && matches_model (&f, f.h),
      "reopened with its key, it reads the same");
  xs_head_close (f.h);
  plain = open_head (&f, NULL);
  tmp = malloc (SIZE);
  ok (plain && tmp && xs_head_pread (plain, tmp, SIZE, 0) == 0
      && memcmp (tmp, f.model, SIZE) != 0,
      "opened without the key, it does not");
  free (tmp);
  xs_head_close (plain);
  free (f.model);
  xs_remove_tree (template);
}

int
main (void)
{
  test_cipher ();
  test_large_requests ();
  test_head ();
  return done_testing ();
}
