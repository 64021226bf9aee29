#!/usr/bin/env bash
# Keeping a plain disk in step with a volume's snapshots (disaster
# recovery to a raw image served by qemu-nbd or nbdkit): export BASE
# whole once, then `export SNAP --from BASE` writes only the blocks that
# differ, zeroing those that became zero, and the target equals SNAP.
# --verify-base refuses a target that does not hold BASE, writing
# nothing.
. "$(dirname "$0")/functions.sh"

require_tool qemu-nbd nbdkit nbdcopy nbdinfo nbdsh jq

file_sum () { sha256sum < "$1" | cut -d' ' -f1; }

xs init -q
xs -q volume create d --size 64M
random_file "$tmp/data" 24 base
start_server a
nbdcopy "$tmp/data" "$(uri d)"
stop_server "$server_pid"
xs -q snapshot create d --name base --wait

# 1. The first copy is a whole export, to a raw file behind qemu-nbd.
truncate -s 64M "$tmp/dr.img"
serve_peer dr qemu-nbd -t -f raw -k "$tmp/dr.sock" "$tmp/dr.img"
check "export base to the plain disk" -- quietly xs export d@base "$peer_uri"

# 2. The volume changes: new data in some blocks, zeroes and a trim over
# others that held data, a few bytes in one more.
start_server b
nbdsh -u "$(uri d)" -c '
import os
h.pwrite(os.urandom(3 * 1048576), 40 * 1048576)
h.zero(1048576, 2 * 1048576)       # count, offset
h.trim(524288, 10 * 1048576)
h.pwrite(b"x" * 100, 20 * 1048576 + 12345)
h.flush()'
mon_sum=$(export_sum "$(uri d)")
stop_server "$server_pid"
xs -q snapshot create d --name mon --wait
changed=$(xs --json diff d@base d@mon --totals | jq .changed_bytes)

json=$(xs --json export d@mon "$peer_uri" --from d@base --verify-base \
         --progress=3 3>"$tmp/progress")
stop_server "$peer_pid"
is "$(file_sum "$tmp/dr.img")" "$mon_sum" "export mon --from base: the disk equals mon"
is "$(jq '.bytes_written + .bytes_zeroed' <<<"$json")" "$changed" \
  "  only the $changed bytes that differ were written or zeroed"
is "$(jq .bytes_zeroed <<<"$json")" $(( 1048576 + 524288 )) \
  "  those that became zero were zeroed"
is "$(jq '.bytes_unchanged + .bytes_written + .bytes_zeroed' <<<"$json")" 67108864 \
  "  the rest was left alone"
is "$(jq -r '.from + " " + (.base_blocks_verified | tostring)' <<<"$json")" "d@base 66" \
  "  after comparing 66 blocks of the target with base (64 random, first, last)"
is "$(tail -n 1 "$tmp/progress")" "67108864/67108864" "  --progress=FD reached 100%"

# 3. The next increment, to the same disk behind nbdkit file.
start_server c
nbdsh -u "$(uri d)" -c '
import os
h.pwrite(os.urandom(65536), 63 * 1048576)
h.flush()'
tue_sum=$(export_sum "$(uri d)")
stop_server "$server_pid"
xs -q snapshot create d --name tue --wait
serve_peer dr2 nbdkit -f -U "$tmp/dr2.sock" file "$tmp/dr.img"
out=$(xs export d@tue "$peer_uri" --from d@mon)
like "$out" "left 63.5M equal to d@mon alone" "export tue --from mon to nbdkit file: one block written"
stop_server "$peer_pid"
is "$(file_sum "$tmp/dr.img")" "$tue_sum" "  and the disk equals tue"

# 4. --verify-base refuses a target that holds something else, and
# writes nothing to it.
random_file "$tmp/other.img" 64 other
other_sum=$(file_sum "$tmp/other.img")
serve_peer other qemu-nbd -t -f raw -k "$tmp/other.sock" "$tmp/other.img"
out=$(xs export d@tue "$peer_uri" --from d@mon --verify-base 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot export to .* from d@mon: the target does not hold d@mon \(block 0, at offset 0, differs\); nothing was written$" \
  "--verify-base: a target that does not hold the base is refused"
stop_server "$peer_pid"
is "$(file_sum "$tmp/other.img")" "$other_sum" "  and is left as it was"

# Only the first block holds something else: the sample's first block
# finds it.
cp "$tmp/dr.img" "$tmp/near.img"
printf 'not the base' | dd of="$tmp/near.img" conv=notrunc status=none
serve_peer near qemu-nbd -t -f raw -k "$tmp/near.sock" "$tmp/near.img"
out=$(xs export d@tue "$peer_uri" --from d@tue --verify-base 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot export to .* the target does not hold d@tue \(block 0" \
  "  as is one that differs in its first block only"
stop_server "$peer_pid"

# 5. Usage and refusals.
out=$(xs export d@tue "$tmp/x" --verify-base 2>&1) && status=0 || status=$?
is "$status" 2 "--verify-base without --from is a usage error"
out=$(xs export d@tue "$tmp/x" --from d@mon --target-is-zero 2>&1) && status=0 || status=$?
is "$status" 2 "--from with --target-is-zero is a usage error"
xs -q volume create e --size 32M
xs -q snapshot create e --name e0 --wait
out=$(xs export d@tue "$(uri '' "$tmp/none.sock")" --from e@e0 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot compare e@e0 and d@tue: they differ in size or block size$" \
  "a base of another size is refused"
out=$(xs export d@tue "$(uri '' "$tmp/none.sock")" --from d@nope 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: no snapshot 'd@nope'" "an unknown base is refused"

done_testing
