#!/usr/bin/env bash
# Disks from snapshots: instant lazy clones that read through to their
# snapshot, copy blocks up on partial writes, hydrate, snapshot
# incrementally against their source, survive the deletion of their
# source snapshot, and reset.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 256M --block-size 64K
start_server a hydrate=false
random_file "$tmp/base.img" 64 seed-clone
nbdcopy "$tmp/base.img" "$(uri vol)"
xs -q snapshot create vol --name s1 --wait
stop_server "$server_pid"
truncate -s 256M "$tmp/base.img"
base_sum=$(sha256sum < "$tmp/base.img" | cut -d' ' -f1)

start=$(date +%s%N)
check "volume create --from-snapshot" -- xs -q volume create c1 --from-snapshot vol@s1
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "  is instant (${ms} ms for 256M)" -- test "$ms" -lt 1000
id=$(xs --json volume show c1 | jq -r .id)
is "$(du -sk "$store/regions/local/volumes/$id" | cut -f1 | awk '{print ($1 < 1024) ? "small" : $1}')" small \
  "  and copies nothing"
json=$(xs --json volume show c1)
is "$(jq -r .source_snapshot <<<"$json")" "$(xs --json snapshot show vol@s1 | jq -r .id)" \
  "the clone reads from s1"
is "$(jq -r .size <<<"$json")" 268435456 "it has the snapshot's size"

start_server b hydrate=false
is "$(export_sum "$(uri c1)")" "$base_sum" "the clone reads back the snapshot's bytes"
hole=$(nbdinfo --map --json "$(uri c1)" | jq '[.[] | select(.type == 3) | .length] | add')
is "$hole" $(( 192 << 20 )) "the snapshot's zero blocks are holes of the clone"

# Partial writes copy the block up first; the rest of the block stays.
python3 - "$(uri c1)" "$tmp/base.img" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"clone!", 100000)          # inside block 1
h.pwrite(b"\x11" * 65536, 5 * 65536)  # block 5, whole
h.zero(65536, 7 * 65536)               # block 7, whole
h.flush()
with open(sys.argv[2], "r+b") as m:
    m.seek(100000); m.write(b"clone!")
    m.seek(5 * 65536); m.write(b"\x11" * 65536)
    m.seek(7 * 65536); m.write(bytes(65536))
PY
clone_sum=$(sha256sum < "$tmp/base.img" | cut -d' ' -f1)
is "$(export_sum "$(uri c1)")" "$clone_sum" "after partial and whole writes the clone is the snapshot plus them"
is "$(export_sum "$(uri vol@s1)")" "$base_sum" "the snapshot is unchanged"
stop_server "$server_pid"

json=$(xs --json snapshot create c1 --wait --name first)
is "$(jq -r .changed_blocks <<<"$json")" 3 "the clone's first snapshot records only its 3 changed blocks"
is "$(jq -r .parent <<<"$json")" "$(xs --json snapshot show vol@s1 | jq -r .id)" \
  "  relative to its source"

# Deleting the source snapshot does not break the clone.
xs -q volume create c2 --from-snapshot vol@s1
xs -q snapshot delete vol@s1
gc=$(xs --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 0 "gc keeps a deleted snapshot that clones still read from"
start_server c hydrate=false
is "$(export_sum "$(uri c2)")" "$base_sum" "a clone of a deleted snapshot still reads it"
check "vol@s1 itself is gone" -- bash -c "! nbdinfo '$(uri vol@s1)' >/dev/null 2>&1"
stop_server "$server_pid"

# Hydrate: everything copied, the source no longer needed.
out=$(xs volume hydrate c2)
like "$out" "volume 'c2' is fully hydrated \(4096 blocks copied in [0-9.]+ s\)" "hydrate copies every block"
is "$(xs --json volume show c2 | jq -r .source_snapshot)" "" "c2 no longer reads from a snapshot"
check "c2's data is in its head now" -- \
  test "$(du -sk "$store/regions/local/volumes/$(xs --json volume show c2 | jq -r .id)/data" | cut -f1)" -ge 60000
xs -q volume hydrate c1
xs -q snapshot delete c1@first
start_server d hydrate=false
is "$(export_sum "$(uri c2)")" "$base_sum" "after hydration c2 is unchanged"
stop_server "$server_pid"
gc=$(xs --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 0 \
  "deleted snapshots stay hidden while changed-block maps are relative to them"
xs -q snapshot create vol --wait --name s2
xs -q snapshot create c1 --wait --name second
xs -q snapshot create c2 --wait --name first
gc=$(xs --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 2 \
  "once nothing needs them, gc purges the deleted source and c1@first"
start_server e hydrate=false
is "$(export_sum "$(uri c2)")" "$base_sum" "c2 still reads correctly after its source is purged"
is "$(export_sum "$(uri c1)")" "$clone_sum" "and so does c1"

# Reset: refused while attached, then rolls the volume back.
xs -q volume create r --size 256M --block-size 64K
nbdcopy "$tmp/base.img" "$(uri r)"
xs -q snapshot create r --name good --wait
nbdsh -u "$(uri r)" -c 'h.pwrite(b"\xff" * (1 << 20), 0); h.flush()'
holder=$(hold_open "$(uri r)")
out=$(xs volume reset r --to r@good 2>&1) && status=0 || status=$?
is "$status" 1 "reset is refused while the volume is attached"
like "$out" "volume 'r' is in use by another process" "  with a clear message"
kill "$holder"; wait "$holder" 2>/dev/null || true
sleep 0.3
check "reset r to r@good" -- xs -q volume reset r --to r@good
is "$(export_sum "$(uri r)")" "$clone_sum" "after reset the volume equals the snapshot"
is "$(xs --json diff --live r | jq -r .changed_blocks)" 0 "and has no changes since it"
out=$(xs volume reset r --to vol@nope 2>&1) && status=0 || status=$?
like "$out" "no snapshot 'vol@nope'" "reset to an unknown snapshot is refused"
out=$(xs volume resize c2 --size 512M 2>&1) && status=0 || status=$?
is "$status" 0 "a hydrated clone can grow"
stop_server "$server_pid"

# Served clones are hydrated in the background (hydrate=true, the default).
xs -q volume create c3 --from-snapshot r@good
start_server f
holder=$(hold_open "$(uri c3)")
is "$(wait_hydrated c3)" "" \
  "a served clone is hydrated in the background"
is "$(export_sum "$(uri c3)")" "$clone_sum" "  and reads the same"
kill "$holder"
done_testing
