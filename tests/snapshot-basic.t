#!/usr/bin/env bash
# Snapshots end to end: create (in-process and through the served
# volume's owner), list, show, exports VOL@SNAP that stay byte-identical,
# incremental storage, deleting a middle snapshot, gc, verify and a
# bit-flipped chunk.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 64M --block-size 64K
start_server a
u=$(uri vol)

random_file "$tmp/a.img" 16 seed-a
nbdcopy "$tmp/a.img" "$u"
json=$(xs --json snapshot create vol --name s1 --wait)
is "$(jq -r .status <<<"$json")" available "snapshot of a served volume with --wait is available"
is "$(jq -r .changed_blocks <<<"$json")" 256 "it sealed exactly the 256 written blocks"
like "$(jq -r .id <<<"$json")" '^snap-[0-9a-f]{16}$' "it has an id"
s1=$(jq -r .id <<<"$json")

# Overwrite 1 MiB: the next snapshot stores only that.
python3 - "$u" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * (1 << 20), 4 << 20); h.flush()
PY
json=$(xs --json snapshot create vol --name s2)
like "$(jq -r .status <<<"$json")" "pending|available" "without --wait the snapshot returns at once"
check "  and is sealed in the background" -- wait_sealed
json=$(xs --json snapshot show vol@s2)
is "$(jq -r .changed_blocks <<<"$json")" 16 "s2 changed exactly 16 blocks (1M)"
is "$(jq -r .parent <<<"$json")" "$s1" "s2's parent is s1"
check "s2's new chunks are tiny (1M of one byte compresses)" -- \
  test "$(jq -r .stored_bytes <<<"$json")" -lt 20000

nbdsh -u "$u" -c 'h.zero(8 << 20, 0); h.flush()'
stop_server "$server_pid"
json=$(xs --json snapshot create vol --name s3)
like "$(jq -r .status <<<"$json")" "pending|available" \
  "a snapshot of an unattached volume returns at once too (its sealer is detached)"
check "  and is sealed in the background" -- wait_sealed
json=$(xs --json snapshot show vol@s3)
is "$(jq -r .changed_blocks <<<"$json")" 128 "s3 changed the 128 zeroed blocks"
is "$(xs --json diff --live vol | jq -r .changed_blocks)" 0 \
  "after a snapshot, diff --live is relative to it (no changes)"
is "$(xs --json volume show vol | jq -r .last_snapshot)" "$(xs --json snapshot show vol@s3 | jq -r .id)" \
  "the volume's last snapshot is s3"

start_server b
names=$(nbdinfo --list --json "nbd+unix:///?socket=$sock" | jq -r '[.exports[]."export-name"] | sort | join(",")')
is "$names" "vol,vol@s1,vol@s2,vol@s3" "nbdinfo --list shows the volume and its snapshots"
check "a snapshot export is read-only" -- nbdinfo --is read-only "$(uri vol@s1)"
cp "$tmp/a.img" "$tmp/s1.model"; truncate -s 64M "$tmp/s1.model"
is "$(export_sum "$(uri vol@s1)")" "$(sha256sum < "$tmp/s1.model" | cut -d' ' -f1)" \
  "vol@s1 reads back exactly what was written before it"
is "$(export_sum "$(uri "$s1")")" "$(sha256sum < "$tmp/s1.model" | cut -d' ' -f1)" \
  "a snapshot can be opened by its id"
hole=$(nbdinfo --map --json "$(uri vol@s1)" | jq '[.[] | select(.type == 3) | .length] | add')
is "$hole" $(( 48 << 20 )) "zero blocks of a snapshot are holes in its extents"
out=$(nbdsh -u "$(uri vol@s1)" -c 'h.pwrite(b"x", 0)' 2>&1) && status=0 || status=$?
check "writing to a snapshot export is refused" -- test "$status" != 0
sum2=$(export_sum "$(uri vol@s2)")
sum3=$(export_sum "$(uri vol@s3)")
check "three snapshots, three different contents" -- \
  test "$sum2" != "$sum3" -a "$sum2" != "$(export_sum "$(uri vol@s1)")"
stop_server "$server_pid"

# Delete the middle one: the others are byte-identical afterwards.
check "delete the middle snapshot" -- xs -q snapshot delete vol@s2
is "$(xs --json snapshot list | jq -r '[.snapshots[].name] | join(",")')" "s1,s3" \
  "it is gone from the list"
gc=$(xs --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 1 "gc purged it"
is "$(jq -r .chunks_deleted <<<"$gc")" 1 \
  "gc deleted the one chunk only s2 used (16 identical blocks)"
start_server c
is "$(export_sum "$(uri vol@s1)")" "$(sha256sum < "$tmp/s1.model" | cut -d' ' -f1)" \
  "s1 is byte-identical after deleting s2 and gc"
is "$(export_sum "$(uri vol@s3)")" "$sum3" "s3 is byte-identical after deleting s2 and gc"
check "vol@s2 no longer opens" -- bash -c "! nbdinfo '$(uri vol@s2)' >/dev/null 2>&1"
stop_server "$server_pid"

# Refusals.
out=$(xs snapshot create vol --name s1 2>&1) && status=0 || status=$?
is "$status" 1 "a duplicate snapshot name is refused"
like "$out" "snapshot 'vol@s1' already exists" "  with a clear message"
out=$(xs snapshot create vol --name 'a@b' 2>&1) && status=0 || status=$?
like "$out" "invalid snapshot name 'a@b'" "a bad snapshot name is refused"
out=$(xs snapshot show vol@nope 2>&1) && status=0 || status=$?
like "$out" "no snapshot 'vol@nope' in account 'admin', region 'local'" "an unknown snapshot"
is "$(xs --json snapshot list | jq '[.snapshots[] | select(.status == "pending")] | length')" 0 \
  "refused snapshots left nothing pending"

# verify, then flip one bit of one stored chunk of s1.
check "verify passes on a good snapshot" -- quietly xs verify vol@s1
account_repo=$store/regions/local/repo/admin/chunks
victim=$(find "$account_repo" -type f | sort | sed -n 1p)   # sed reads all: no SIGPIPE under pipefail
victim_id=$(basename "$victim")
python3 - "$victim" <<'PY'
import sys
p = sys.argv[1]
data = bytearray(open(p, "rb").read())
data[len(data) // 2] ^= 0x04
open(p, "wb").write(bytes(data))
PY
out=$(xs verify vol@s1 2>&1) && status=0 || status=$?
is "$status" 4 "verify exits 4 when a chunk is damaged"
like "$out" "bad block [0-9]+: chunk $victim_id: " "  and names the block and the chunk"
bad_blocks=$(xs --json verify vol@s1 2>/dev/null | jq -r '.bad | map(.block) | join(" ")') || true
start_server d
block=${bad_blocks%% *}
out=$(nbdsh -u "$(uri vol@s1)" -c "h.pread(65536, $block * 65536)" 2>&1) && status=0 || status=$?
check "reading the bad block through NBD fails" -- test "$status" != 0
like "$out" "Input/output error" "  with EIO"
like "$(cat "$tmp/d.log")" "snapshot vol@s1 \(snap-[0-9a-f]+\): block $block: chunk $victim_id" \
  "the server log names the snapshot, the block and the chunk"
out=$(nbdsh -u "$(uri vol@s1)" -c "print(len(h.pread(65536, 200 * 65536)))" 2>&1)
is "$out" 65536 "other blocks still read"
check "the volume itself is unaffected" -- quietly nbdcopy "$(uri vol)" null:
done_testing
