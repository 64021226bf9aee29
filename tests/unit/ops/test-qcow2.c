/* xsnap: tests for lib/ops/qcow2.c, the qcow2 overlay with a dirty
 * bitmap that serve-changes hands to qemu-nbd.
 *
 * The image is read back as QEMU's format describes it: the header, the
 * bitmaps extension, the directory entry and the bitmap table, whose
 * entries are "all clear", "all set" or a cluster holding the bits
 * given; every cluster the file uses has refcount 1.  A 1 TiB disk with
 * 64 changed blocks costs a few clusters, not the disk's size.  Where
 * qemu-img is installed, `qemu-img check` must find the image clean and
 * `qemu-img info` must show the bitmap.  Refusals: names too long, a
 * bitmap that does not fit the disk, one larger than QEMU loads.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/qcow2.h"
#include "tap.h"

#define CLUSTER 65536u

static uint64_t
get_be (const unsigned char *p, int n)
{
  uint64_t v = 0;

  while (n-- > 0)
    v = (v << 8) | *p++;
  return v;
}

static unsigned char *
slurp (const char *path, size_t *len)
{
  struct stat st;
  unsigned char *buf;
  int fd = open (path, O_RDONLY);

  if (fd == -1 || fstat (fd, &st) == -1)
    abort ();
  buf = malloc ((size_t) st.st_size);
  if (buf == NULL || read (fd, buf, (size_t) st.st_size) != st.st_size)
    abort ();
  close (fd);
  *len = (size_t) st.st_size;
  return buf;
}

/* What the image says, read as QEMU reads it. */
struct image {
  uint64_t size, l1_offset, l1_size, rt_offset, rt_clusters;
  uint64_t dir_offset, dir_size, table_offset, table_size;
  unsigned granularity_bits, flags, nb_bitmaps;
  char name[64], backing[256], backing_format[16];
  bool refcounts_ok;
};

static void
read_extensions (const unsigned char *f, struct image *im)
{
  const unsigned char *p = f + get_be (f + 100, 4);
  uint32_t type, len;

  for (;;) {
    type = (uint32_t) get_be (p, 4);
    len = (uint32_t) get_be (p + 4, 4);
    if (type == 0)
      break;
    if (type == 0xe2792aca && len < sizeof im->backing_format)
      memcpy (im->backing_format, p + 8, len);
    if (type == 0x23852875) {
      im->nb_bitmaps = (unsigned) get_be (p + 8, 4);
      im->dir_size = get_be (p + 16, 8);
      im->dir_offset = get_be (p + 24, 8);
    }
    p += 8 + ((len + 7) & ~7u);
  }
}

/* Every cluster of the file has refcount 1 (the file is exactly the
 * clusters the image uses).
 */
static bool
check_refcounts (const unsigned char *f, size_t len, const struct image *im)
{
  uint64_t clusters = len / CLUSTER, i, block, count;

  if (len % CLUSTER != 0)
    return false;
  for (i = 0; i < clusters; i++) {
    block = get_be (f + im->rt_offset + (i / 32768) * 8, 8);
    if (block == 0 || block % CLUSTER != 0 || block >= len)
      return false;
    count = get_be (f + block + (i % 32768) * 2, 2);
    if (count != 1)
      return false;
  }
  return true;
}

static void
read_image (const unsigned char *f, size_t len, struct image *im)
{
  const unsigned char *d;
  uint64_t backing_len = get_be (f + 16, 4);

  memset (im, 0, sizeof *im);
  im->size = get_be (f + 24, 8);
  im->l1_size = get_be (f + 36, 4);
  im->l1_offset = get_be (f + 40, 8);
  im->rt_offset = get_be (f + 48, 8);
  im->rt_clusters = get_be (f + 56, 4);
  if (backing_len < sizeof im->backing)
    memcpy (im->backing, f + get_be (f + 8, 8), backing_len);
  read_extensions (f, im);
  d = f + im->dir_offset;
  im->table_offset = get_be (d, 8);
  im->table_size = get_be (d + 8, 4);
  im->flags = (unsigned) get_be (d + 12, 4);
  im->granularity_bits = d[17];
  if (get_be (d + 18, 2) < sizeof im->name)
    memcpy (im->name, d + 24, get_be (d + 18, 2));
  im->refcounts_ok = check_refcounts (f, len, im);
}

static uint64_t
table_entry (const unsigned char *f, const struct image *im, uint64_t i)
{
  return get_be (f + im->table_offset + i * 8, 8);
}

/* Whether bit BIT of the image's bitmap is set. */
static bool
image_bit (const unsigned char *f, const struct image *im, uint64_t bit)
{
  uint64_t byte = bit / 8, entry = table_entry (f, im, byte / CLUSTER);

  if (entry == 0 || entry == 1)
    return entry == 1;
  return (f[entry + byte % CLUSTER] >> (bit % 8)) & 1;
}

static int
write_overlay (const char *path, uint64_t size, uint32_t granularity,
               const struct xs_bitmap *bits, const char *name)
{
  struct xs_qcow2_overlay o = {
    .size = size, .backing = "json:{\"file\":{\"driver\":\"null-co\"}}",
    .backing_format = "raw", .bitmap_name = name,
    .granularity = granularity, .bits = bits,
  };

  unlink (path);
  return xs_qcow2_write_overlay (path, &o);
}

static bool
have_qemu_img (void)
{
  return system ("qemu-img --version >/dev/null 2>&1") == 0;
}

static int
run (const char *fmt, const char *path)
{
  char *command;
  int r;

  if (asprintf (&command, fmt, path) == -1)
    abort ();
  r = system (command);
  free (command);
  return r;
}

/* 1 TiB in 512K blocks, 64 blocks changed, 16 GiB apart. */
static void
test_sparse_terabyte (const char *dir)
{
  uint64_t size = UINT64_C (1) << 40, nbits = size / 524288, i;
  struct xs_bitmap bits;
  struct image im;
  unsigned char *f;
  size_t len;
  char *path;
  bool all = true;

  if (asprintf (&path, "%s/tb.qcow2", dir) == -1
      || xs_bitmap_init (&bits, nbits) == -1)
    abort ();
  for (i = 0; i < 64; i++)
    xs_bitmap_set (&bits, i * 32768 + 14);
  ok (write_overlay (path, size, 524288, &bits, "changes") == 0,
      "a 1 TiB overlay with 64 changed blocks is written");
  f = slurp (path, &len);
  read_image (f, len, &im);
  is_int (memcmp (f, "QFI\xfb", 4), 0, "  it is a qcow2 image");
  is_int (get_be (f + 4, 4), 3, "  of version 3");
  is_int (get_be (f + 88, 8), 1, "  whose bitmaps extension is valid");
  is_int (im.size, size, "  of 1 TiB");
  is_int (im.l1_size, 2048, "  with an L1 table for it");
  is_str (im.backing, "json:{\"file\":{\"driver\":\"null-co\"}}",
          "  and its backing");
  is_str (im.backing_format, "raw", "  of format raw");
  is_int (im.nb_bitmaps, 1, "  one bitmap");
  is_str (im.name, "changes", "  named as asked");
  is_int (im.granularity_bits, 19, "  of granularity 512K");
  is_int (im.flags, 0, "  disabled, not in use");
  is_int (im.table_size, 4, "  its table has 4 entries (2M bits)");
  for (i = 0; i < nbits && all; i++)
    all = image_bit (f, &im, i) == xs_bitmap_get (&bits, i);
  ok (all, "  every bit reads back as given");
  ok (im.refcounts_ok, "  every cluster has refcount 1");
  ok (len <= 12 * CLUSTER, "  the file is %zu bytes: the few clusters it uses",
      len);
  if (have_qemu_img ()) {
    is_int (run ("qemu-img check -q '%s'", path), 0,
            "  qemu-img check finds it clean");
    is_int (run ("qemu-img info '%s' | grep -q 'name: changes'", path), 0,
            "  qemu-img info shows the bitmap");
  }
  free (f);
  xs_bitmap_free (&bits);
  free (path);
}

/* Whole clusters of set bits are table entries without data; a clear
 * one is nothing; a partial last cluster keeps its bits.
 */
static void
test_all_ones (const char *dir)
{
  uint64_t nbits = 3 * CLUSTER * 8 + 100, size = nbits * 4096 - 5;
  struct xs_bitmap bits;
  struct image im;
  unsigned char *f;
  size_t len;
  char *path;
  bool all = true;
  uint64_t i;

  if (asprintf (&path, "%s/ones.qcow2", dir) == -1
      || xs_bitmap_init (&bits, nbits) == -1)
    abort ();
  xs_bitmap_set_range (&bits, 0, CLUSTER * 8);           /* all set */
  xs_bitmap_set_range (&bits, 2 * CLUSTER * 8 + 7, 3);   /* some */
  xs_bitmap_set (&bits, nbits - 1);                      /* the last */
  ok (write_overlay (path, size, 4096, &bits, "b") == 0,
      "an overlay of 4K granularity is written");
  f = slurp (path, &len);
  read_image (f, len, &im);
  is_int (im.table_size, 4, "  its table has 4 entries");
  is_int (table_entry (f, &im, 0), 1, "  a cluster of set bits is 'all set'");
  is_int (table_entry (f, &im, 1), 0, "  a clear one is 'all clear'");
  ok (table_entry (f, &im, 2) > 1 && table_entry (f, &im, 3) > 1,
      "  the others have clusters of their own");
  for (i = 0; i < nbits && all; i++)
    all = image_bit (f, &im, i) == xs_bitmap_get (&bits, i);
  ok (all, "  every bit reads back as given");
  ok (im.refcounts_ok, "  every cluster has refcount 1");
  if (have_qemu_img ())
    is_int (run ("qemu-img check -q '%s'", path), 0,
            "  qemu-img check finds it clean");
  free (f);
  xs_bitmap_free (&bits);
  free (path);
}

static void
test_refusals (const char *dir)
{
  struct xs_bitmap bits;
  char name[1100], *path;
  struct stat st;

  if (asprintf (&path, "%s/bad.qcow2", dir) == -1
      || xs_bitmap_init (&bits, 16) == -1)
    abort ();
  memset (name, 'n', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  ok (write_overlay (path, 16 * 4096, 4096, &bits, name) == -1,
      "a bitmap name of 1099 bytes is refused");
  error_contains ("must be 1 to 1023 bytes", "  saying why");
  ok (write_overlay (path, 17 * 4096, 4096, &bits, "b") == -1,
      "a bitmap that does not fit the disk is refused");
  error_contains ("does not describe a disk", "  saying why");
  ok (write_overlay (path, 16 * 4096, 3000, &bits, "b") == -1,
      "a granularity that is not a power of two is refused");
  ok (stat (path, &st) == -1, "  and no file is left");
  xs_bitmap_free (&bits);
  if (xs_bitmap_init (&bits, (XS_QCOW2_MAX_BITMAP_BYTES + 1) * 8) == -1)
    abort ();
  ok (write_overlay (path, bits.nbits * 512, 512, &bits, "b") == -1,
      "a bitmap larger than QEMU loads is refused");
  error_contains ("more than QEMU loads", "  saying why");
  xs_bitmap_free (&bits);
  free (path);
}

int
main (void)
{
  char *dir = tap_tmpdir ();

  test_sparse_terabyte (dir);
  test_all_ones (dir);
  test_refusals (dir);
  tap_rmtree (dir);
  free (dir);
  return done_testing ();
}
