#!/usr/bin/env bash
# Block maps stored as trees of pages: a snapshot writes only the pages
# on the paths to what changed and shares the rest with its parent; diff
# reads only what differs; gc deletes the pages no snapshot uses and keeps
# the shared ones; a copy to another region carries the pages it needs; a
# damaged, swapped or missing page is an error naming it, never wrong
# data, and putting it back heals everything.
. "$(dirname "$0")/functions.sh"

xs init -q
# 1 GiB in 64 KiB blocks: 16384 blocks, two levels of pages (64 leaves).
xs -q volume create vol --size 1G --block-size 64K
repo=$store/regions/local/repo/admin
pages () { find "$repo/pages" -type f 2>/dev/null | wc -l; }

start_server a
u=$(uri vol)
python3 - "$u" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for block, byte in ((0, 1), (5000, 2), (16000, 3)):
    h.pwrite(bytes([byte]) * 65536, block * 65536)
h.flush()
PY
xs -q snapshot create vol --name s1 --wait
is "$(pages)" 4 "three blocks in three leaves: three leaf pages and the top"
manifest=$(find "$repo/manifests" -type f -print -quit)
is "$(head -c 12 "$manifest" | tail -c 4 | od -An -tu4 | tr -d ' ')" 3 \
  "the manifest is a tree manifest (version 3)"
check "  and is small: it names the top page only" -- \
  test "$(stat -c %s "$manifest")" -lt 1024

touch "$tmp/before-s2"; sleep 1
nbdsh -u "$u" -c 'h.pwrite(b"\x07" * 65536, 5001 * 65536); h.flush()'
xs -q snapshot create vol --name s2 --wait
is "$(pages)" 6 "one more block: its leaf and the top are new, the rest shared"
sum2=$(export_sum "$(uri vol@s2)")
is "$(xs --json diff vol@s1 vol@s2 | jq -r .changed_blocks)" 1 \
  "diff finds the one changed block"
stop_server "$server_pid"

# gc: s1's own leaf and top go, the shared leaves stay.
xs -q snapshot delete vol@s1
json=$(xs --json gc)
is "$(jq -r .pages_deleted <<<"$json")" 2 "gc deletes s1's own two pages"
is "$(jq -r .pages_kept <<<"$json")" 4 "  and keeps the four s2 uses"
is "$(pages)" 4 "  four pages are left"

start_server b
is "$(export_sum "$(uri vol@s2)")" "$sum2" "s2 reads as before"
check "s2 verifies" -- quietly xs verify vol@s2

# A damaged page: reads under it fail, naming it; verify fails.
leaf=
for f in $(find "$repo/pages" -type f); do
  if [ "$(od -An -tu1 -j9 -N1 "$f" | tr -d ' ')" = 0 ]; then
    leaf=$f
    break
  fi
done
cp "$leaf" "$tmp/leaf.good"
printf 'X' | dd of="$leaf" bs=1 seek=40 conv=notrunc 2>/dev/null
out=$(xs verify vol@s2 2>&1) && st=0 || st=$?
check "verify of a snapshot with a damaged page fails" -- test "$st" != 0
like "$out" "map page [0-9a-f]{32} .* is bad: content does not match its id" \
  "  naming the page and why"
out=$(nbdcopy "$(uri vol@s2)" - 2>&1 >/dev/null) && st=0 || st=$?
check "reading the snapshot through NBD fails rather than returning wrong data" \
  -- test "$st" != 0

# Another valid page in its place.
other=$(find "$repo/pages" -type f ! -path "$leaf" -print -quit)
cp "$other" "$leaf"
out=$(xs verify vol@s2 2>&1) && st=0 || st=$?
check "a page swapped for another valid page is refused" -- test "$st" != 0
like "$out" "another page in its place" "  saying so"

# Missing.
rm "$leaf"
out=$(xs verify vol@s2 2>&1) && st=0 || st=$?
like "$out" "map page [0-9a-f]{32} .* is missing" "a missing page is named"

cp "$tmp/leaf.good" "$leaf"
check "with the page back, verify passes" -- quietly xs verify vol@s2
is "$(export_sum "$(uri vol@s2)")" "$sum2" "  and s2 reads as before"
stop_server "$server_pid"

# A copy to another region carries the pages; an incremental copy only the
# new ones.
quietly xs region add r2
r2=$store/regions/r2/repo/admin
check "copy to r2" -- quietly xs copy vol@s2 --to-region r2
is "$(find "$r2/pages" -type f | wc -l)" 4 "  r2 holds the four pages of s2"
is "$(read_in r2 admin vol@copy_local_s2)" "$sum2" "  the copy reads as s2"
xs -q snapshot create vol --wait --name s3
check "copy an unchanged s3 to r2" -- quietly xs copy vol@s3 --to-region r2
is "$(find "$r2/pages" -type f | wc -l)" 4 "  it needs no new page there"

done_testing
