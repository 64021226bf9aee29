#!/usr/bin/env bash
# Run every libFuzzer target for a fixed time on a copy of its seed corpus
# (XSNAP_FUZZ_SECONDS each: short in `make check`, long in `make
# check-long`).  A crash, leak or sanitizer report fails the test and leaves
# the crashing input in the log.
. "$(dirname "$0")/functions.sh"

seconds=${XSNAP_FUZZ_SECONDS:-10}
found=0
for fuzzer in "$top"/tests/fuzz/fuzz-*; do
  [ -x "$fuzzer" ] && [ "${fuzzer%.c}" = "$fuzzer" ] || continue
  found=$((found + 1))
  name=${fuzzer##*/fuzz-}
  work=$tmp/corpus-$name
  mkdir -p "$work"
  cp -r "$top/tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  if (cd "$tmp" && "$fuzzer" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "$work" \
        > "$tmp/$name.log" 2>&1); then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$name.log")
    ok 0 "fuzz $name for ${seconds}s: no crash ($runs runs)"
  else
    ok 1 "fuzz $name for ${seconds}s"
    tail -30 "$tmp/$name.log" | sed 's/^/#   /'
  fi
done
check "found the fuzz targets" -- test "$found" -ge 3
done_testing
