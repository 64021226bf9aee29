#!/usr/bin/env bash
# Incremental backup of a VM disk through its dirty bitmap, as QEMU keeps
# one: a qcow2 with a persistent bitmap, served by qemu-nbd -B, imported
# whole once and then only what the bitmap marks (import --dirty-bitmap),
# each import taking its snapshot.  Every snapshot equals the disk at its
# point; diff between two lists exactly the blocks the bitmap marked;
# refusals say why; a source that vanishes leaves the last snapshot as it
# was, and the same import completes the volume afterwards.
. "$(dirname "$0")/functions.sh"

require_tool qemu-img qemu-io qemu-nbd nbdkit nbdcopy nbdinfo jq python3

BS=524288

# The disk as qemu-nbd serves it, with its bitmap b0.
serve_vm () { serve_peer vm qemu-nbd -t -r -f qcow2 -B b0 -k "$tmp/vm.sock" "$tmp/vm.qcow2"; }
raw_sum () { qemu-img convert -O raw "$tmp/vm.qcow2" "$tmp/vm.raw" && sha256sum < "$tmp/vm.raw" | cut -d' ' -f1; }
# The volume's blocks (of $BS) that the dirty runs of $peer_uri touch.
dirty_blocks () {
  nbdinfo --map=qemu:dirty-bitmap:b0 --json "$peer_uri" \
    | jq -r --argjson bs "$BS" '[.[] | select(.type == 1)
        | range(.offset / $bs | floor; ((.offset + .length - 1) / $bs | floor) + 1)]
        | unique | map(tostring) | join(" ")'
}
dirty_bytes () {
  nbdinfo --map=qemu:dirty-bitmap:b0 --json "$peer_uri" \
    | jq '[.[] | select(.type == 1) | .length] | add // 0'
}
diff_blocks () { xs diff --format=blocks "$1" "$2" | tr '\n' ' ' | sed 's/ $//'; }
snap_sum () {                   # snap_sum SNAP: through a server of its own
  start_server "read-$1" || return 1
  export_sum "$(uri "$1")"
  stop_server "$server_pid"
}

xs init -q

# The disk: 64M, 8M of data, and a bitmap that records every write from
# now on.
qemu-img create -q -f qcow2 "$tmp/vm.qcow2" 64M
qemu-io -c 'write -P 0x11 0 8M' "$tmp/vm.qcow2" >/dev/null
qemu-img bitmap --add --enable "$tmp/vm.qcow2" b0

# 1. The first backup is a whole import, with its snapshot.
serve_vm
json=$(xs --json import "$peer_uri" --volume vm --snapshot s0)
is "$(jq -r '.snapshot.name + " " + .snapshot.status' <<<"$json")" "s0 available" \
  "full import --snapshot s0: the snapshot is taken in the same command"
stop_server "$peer_pid"
is "$(snap_sum vm@s0)" "$(raw_sum)" "  and equals the disk"

# 2. Three incrementals.  Every block a round's writes touch changes its
# content (new patterns, zeroes over data, discards of data), so the
# diff of two snapshots must list exactly the bitmap's blocks.
rounds=(
  "write -P 0x41 1M 64k|write -P 0x41 10M 1M|write -z 2M 128k"
  "write -P 0x42 1056k 4k|write -P 0x42 40M 3M|discard 6M 1M"
  "write -P 0x43 63M 1M|write -z 40M 1M|write -P 0x43 7M 4k"
)
prev=s0
for r in 1 2 3; do
  args=()
  IFS='|' read -r -a cmds <<<"${rounds[$((r - 1))]}"
  for c in "${cmds[@]}"; do args+=(-c "$c"); done
  qemu-io "${args[@]}" "$tmp/vm.qcow2" >/dev/null
  local_bytes=0
  if [ "$r" = 2 ]; then
    # The volume itself changed since its last snapshot (block 60, clean
    # in the bitmap): the import puts the disk's bytes back there too.
    start_server local
    nbdsh -u "$(uri vm)" -c 'h.pwrite(b"\xee" * 65536, 30 * 1048576)'
    stop_server "$server_pid"
    local_bytes=$BS
  fi
  serve_vm
  want_blocks=$(dirty_blocks)
  want_bytes=$(( $(dirty_bytes) + local_bytes ))
  json=$(xs --json import "$peer_uri" --volume vm --dirty-bitmap b0 \
           --snapshot "s$r" --progress=3 3>"$tmp/progress")
  stop_server "$peer_pid"
  is "$(jq -r .bytes_dirty <<<"$json")" "$want_bytes" \
    "incremental $r: it copied the dirty runs ($want_bytes bytes)"
  check "  and left the rest alone" -- \
    test "$(jq -r '.clean_skipped + .bytes_dirty' <<<"$json")" = 67108864
  check "  reading no more than that" -- \
    test "$(jq -r .bytes_read <<<"$json")" -le "$want_bytes"
  is "$(tail -n 1 "$tmp/progress")" "67108864/67108864" "  --progress=FD reached 100%"
  is "$(snap_sum "vm@s$r")" "$(raw_sum)" \
    "  snapshot s$r equals qemu-img convert of the disk"
  is "$(diff_blocks "vm@$prev" "vm@s$r")" "$want_blocks" \
    "  diff $prev s$r lists exactly the dirty blocks ($want_blocks)"
  qemu-img bitmap --clear "$tmp/vm.qcow2" b0
  prev=s$r
done
is "$(xs --json diff --live vm | jq .changed_blocks)" 0 \
  "the volume has no change since its last snapshot"

# 3. Refusals.
serve_peer vm-nobitmap qemu-nbd -t -r -f qcow2 -k "$tmp/vm-nobitmap.sock" "$tmp/vm.qcow2"
out=$(xs import "$peer_uri" --volume vm --dirty-bitmap b0 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot import from .*: the server offers no qemu:dirty-bitmap:b0 \(qemu-nbd serves a qcow2's persistent bitmap NAME with -B NAME\)$" \
  "a server without the bitmap's context is refused"
stop_server "$peer_pid"

qemu-img create -q -f qcow2 "$tmp/other.qcow2" 32M
qemu-img bitmap --add --enable "$tmp/other.qcow2" b0
serve_peer other qemu-nbd -t -r -f qcow2 -B b0 -k "$tmp/other.sock" "$tmp/other.qcow2"
before=$(store_state)
out=$(xs import "$peer_uri" --volume vm --dirty-bitmap b0 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot import from .* into volume 'vm': the export is 32M \(33554432 bytes\) and the volume 64M \(67108864 bytes\); an incremental import needs the disk the volume was imported from$" \
  "an export of another size is refused"
is "$(store_state)" "$before" "  before the volume is touched"
stop_server "$peer_pid"

out=$(xs import "$peer_uri" --volume nothing --dirty-bitmap b0 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: no volume 'nothing'" "an incremental import into a missing volume is refused"
out=$(xs import "$peer_uri" --volume vm --dirty-bitmap b0 --block-size 64K 2>&1) && status=0 || status=$?
is "$status" 2 "--dirty-bitmap with --block-size is a usage error"

# A bitmap finer than 512 bytes (no qemu makes one: a server of our own).
qemu-img convert -O raw "$tmp/vm.qcow2" "$tmp/vm.raw"
serve_peer fine python3 "$top/tests/fake-dirty-nbd.py" "$tmp/fine.sock" "$tmp/vm.raw" b0 1000+300
out=$(xs import "$peer_uri" --volume vm --dirty-bitmap b0 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot import from .*: its qemu:dirty-bitmap:b0 has a granularity finer than 512 bytes \(a run ends at offset 1000\), which xsnap does not support$" \
  "a bitmap finer than 512 bytes is refused"
is "$(xs --json diff --live vm | jq .changed_blocks)" 0 "  and nothing was written"
stop_server "$peer_pid"

# An attached volume is refused.
serve_vm
start_server attached
holder=$(hold_open "$(uri vm)")
out=$(xs import "$peer_uri" --volume vm --dirty-bitmap b0 2>&1) && status=0 || status=$?
is "$status $out" "1 xsnap: cannot import into volume 'vm': it is attached (an NBD server serves it); detach it first" \
  "an attached volume is refused"
kill "$holder"
stop_server "$server_pid"
stop_server "$peer_pid"

# 4. A source that vanishes half way: the import fails, the volume's last
# snapshot is as it was, and the same import completes the volume.
s3_sum=$(snap_sum vm@s3)
qemu-io -c 'write -P 0x77 0 16M' "$tmp/vm.qcow2" >/dev/null
want=$(raw_sum)
serve_peer slow python3 "$top/tests/fake-dirty-nbd.py" "$tmp/slow.sock" "$tmp/vm.raw" b0 0+16777216 0.05
"$xsnap" import "$peer_uri" --volume vm --dirty-bitmap b0 --snapshot s4 \
  >/dev/null 2>"$tmp/err" &
import_pid=$!
sleep 0.8
kill "$peer_pid"
wait "$import_pid" && status=0 || status=$?
is "$status" 1 "the source vanishes: the import fails"
like "$(head -n 1 "$tmp/err")" "^xsnap: cannot (read|talk to|get the map).*slow.sock" "  saying why"
like "$(cat "$tmp/err")" "volume 'vm' now holds part of the changes of .*: import again to complete it" \
  "  and what became of the volume"
is "$(xs --json snapshot list vm | jq -r '[.snapshots[].name] | join(" ")')" "s0 s1 s2 s3" \
  "  no snapshot s4 was made"
is "$(snap_sum vm@s3)" "$s3_sum" "  and s3 is intact"
serve_peer again python3 "$top/tests/fake-dirty-nbd.py" "$tmp/again.sock" "$tmp/vm.raw" b0 0+16777216
check "the same import again succeeds" -- \
  quietly xs import "$peer_uri" --volume vm --dirty-bitmap b0 --snapshot s4
stop_server "$peer_pid"
is "$(snap_sum vm@s4)" "$want" "  and s4 equals the disk"

done_testing
