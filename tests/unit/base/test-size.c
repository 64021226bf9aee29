/* Unit tests: parsing and printing sizes, and name rules. */
#include "tap.h"

#include "base/names.h"
#include "base/size.h"

static void
test_parse_valid (void)
{
  is_int (xs_size_parse ("0", "size"), 0, "0 parses (callers refuse it)");
  is_int (xs_size_parse ("4096", "size"), 4096, "plain bytes");
  is_int (xs_size_parse ("512K", "size"), 512 * 1024, "K suffix");
  is_int (xs_size_parse ("512k", "size"), 512 * 1024, "lower-case k");
  is_int (xs_size_parse ("10G", "size"), 10LL << 30, "G suffix");
  is_int (xs_size_parse ("2T", "size"), 2LL << 40, "T suffix");
  is_int (xs_size_parse ("1GiB", "size"), 1LL << 30, "GiB spelling");
  is_int (xs_size_parse ("3MB", "size"), 3LL << 20, "MB spelling");
  is_int (xs_size_parse ("7B", "size"), 7, "B suffix");
  is_int (xs_size_parse ("7E", "size"), 7LL << 60, "E suffix fits");
}

static void
test_parse_invalid (void)
{
  is_int (xs_size_parse ("12Q", "size"), -1, "12Q refused");
  error_contains ("unknown suffix 'Q'", "  and the message names the suffix");
  is_int (xs_size_parse ("", "size"), -1, "empty refused");
  error_contains ("required", "  with a message");
  is_int (xs_size_parse ("-1", "size"), -1, "negative refused");
  is_int (xs_size_parse ("G", "size"), -1, "suffix alone refused");
  is_int (xs_size_parse ("1.5G", "size"), -1, "fractions refused");
  is_int (xs_size_parse ("10 G", "size"), -1, "inner space refused");
  is_int (xs_size_parse ("8E", "block size"), -1, "8E overflows int64");
  error_contains ("invalid block size '8E': too large", "  names WHAT");
  is_int (xs_size_parse ("99999999999999999999", "size"), -1,
          "overflow of the digits refused");
  is_int (xs_size_parse ("16777216T", "size"), -1,
          "overflow of the shift refused");
  is_int (xs_size_parse ("1KK", "size"), -1, "double suffix refused");
}

static void
test_format (void)
{
  char buf[32];

  xs_size_format (512 * 1024, buf, sizeof buf);
  is_str (buf, "512K", "format 512K");
  xs_size_format (10ULL << 30, buf, sizeof buf);
  is_str (buf, "10G", "format 10G");
  xs_size_format (1536ULL << 20, buf, sizeof buf);
  is_str (buf, "1.5G", "format 1.5G");
  xs_size_format (4097, buf, sizeof buf);
  is_str (buf, "4.0K", "format 4097 rounds");
  xs_size_format (1000, buf, sizeof buf);
  is_str (buf, "1000", "format small values as bytes");
  ok (xs_is_power_of_2 (4096) && !xs_is_power_of_2 (0)
      && !xs_is_power_of_2 (4097), "power of two check");
}

static void
test_names (void)
{
  is_int (xs_name_check ("volume", "db1"), 0, "db1 is a good name");
  is_int (xs_name_check ("volume", "a.b_c-D9"), 0, "dots, dashes, underscores");
  is_int (xs_name_check ("volume", "a/b"), -1, "slash refused");
  error_contains ("'/' is not allowed", "  with the reason");
  is_int (xs_name_check ("volume", "a@b"), -1, "at sign refused");
  error_contains ("separates volume and snapshot", "  with the reason");
  is_int (xs_name_check ("volume", ""), -1, "empty refused");
  is_int (xs_name_check ("volume", "-x"), -1, "leading dash refused");
  is_int (xs_name_check ("volume", ".x"), -1, "leading dot refused");
  is_int (xs_name_check ("volume", "a b"), -1, "space refused");
  is_int (xs_name_check ("volume",
                         "123456789012345678901234567890123456789012345678901234567890"),
          0, "60 characters accepted");
  is_int (xs_name_check ("volume",
                         "1234567890123456789012345678901234567890123456789012345678901"),
          -1, "61 characters refused");
}

int
main (void)
{
  test_parse_valid ();
  test_parse_invalid ();
  test_format ();
  test_names ();
  return done_testing ();
}
