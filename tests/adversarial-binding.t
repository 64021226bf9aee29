#!/usr/bin/env bash
# Metadata bound to the catalog, attacked from outside: a snapshot's
# manifest replaced by another's, the catalog's record of a snapshot
# edited, a volume's dirty map deleted or put back from an earlier
# moment, and a snapshot looked at while it is still pending.  Wrong data
# is never served or trusted: every use fails with a message, or falls
# back to comparing every block.
. "$(dirname "$0")/functions.sh"
require_tool nbdcopy nbdsh sqlite3

xs init -q
xs -q volume create v --size 4M --block-size 64K
xs -q account create bob --collaborator-of admin
manifests=$store/regions/local/repo/admin/manifests
db () { sqlite3 "$store/xsnap.db" "$@"; }
fails () { ! "$@" >/dev/null 2>&1; }

# write_block VOL BLOCK BYTE: one 64K block of BYTE through a server.
write_block () {
  start_server w
  nbdsh -u "$(uri "$1")" -c "h.pwrite(bytes([$3]) * 65536, $2 * 65536); h.flush()"
  stop_server "$server_pid"
}
# The sha256 of snapshot SNAP as served.
snap_sum () {
  start_server r
  export_sum "$(uri "$1")" || true
  stop_server "$server_pid"
}

random_file "$tmp/a.img" 2 seed-a
start_server w
nbdcopy "$tmp/a.img" "$(uri v)"
stop_server "$server_pid"
a=$(xs --json snapshot create v --wait --name a | jq -r .id)
write_block v 40 0x62
b=$(xs --json snapshot create v --wait --name b | jq -r .id)
sum_a=$(snap_sum v@a)
sum_b=$(snap_sum v@b)
check "a and b differ" -- test "$sum_a" != "$sum_b"

# --- The catalog's record edited -------------------------------------
root_a=$(db "SELECT root_hash FROM snapshots WHERE id = '$a'")
root_b=$(db "SELECT root_hash FROM snapshots WHERE id = '$b'")
db "UPDATE snapshots SET root_hash = '$root_a' WHERE id = '$b'"
out=$(xs verify v@b 2>&1) && status=0 || status=$?
check "verify fails when the catalog's root_hash is another's" -- test "$status" != 0
like "$out" "root" "  naming the root"
start_server edited
check "  and nbdcopy of the export fails" -- fails nbdcopy "$(uri v@b)" "$tmp/out.img"
stop_server "$server_pid"
db "UPDATE snapshots SET root_hash = '$root_b' WHERE id = '$b'"

db "UPDATE snapshots SET size = 8388608 WHERE id = '$b'"
check "verify fails when the catalog's size is edited" -- fails xs verify v@b
check "  and so does send" -- fails xs send v@b -o "$tmp/b.stream"
db "UPDATE snapshots SET size = 4194304 WHERE id = '$b'"
db "UPDATE snapshots SET block_size = 131072 WHERE id = '$b'"
check "verify fails when the catalog's block size is edited" -- fails xs verify v@b
db "UPDATE snapshots SET block_size = 65536 WHERE id = '$b'"
check "with the record restored v@b verifies" -- quietly xs verify v@b
check "  sends" -- quietly xs send v@b --from v@a -o "$tmp/b.stream"
check "  and diffs" -- quietly xs diff v@a v@b

# --- A manifest copied over another's ---------------------------------
cp "$manifests/$b" "$tmp/b.manifest"
cp "$manifests/$a" "$manifests/$b"

start_server swapped
out=$(nbdcopy "$(uri v@b)" - 2>&1 | sha256sum | cut -d' ' -f1; exit "${PIPESTATUS[0]}") && status=0 || status=$?
check "nbdcopy of v@b with a's manifest in its place fails" -- test "$status" != 0
check "  and never returns a's bytes" -- test "$out" != "$sum_a"
like "$(cat "$tmp/swapped.log")" "manifest of snapshot $b.*describes snapshot $a" \
  "  the server says the manifest describes another snapshot"
stop_server "$server_pid"

out=$(xs verify v@b 2>&1) && status=0 || status=$?
check "verify v@b fails" -- test "$status" != 0
like "$out" "describes snapshot $a" "  naming the mismatch"
check "send v@b fails" -- fails xs send v@b -o "$tmp/b.stream"
check "diff v@a v@b fails" -- fails xs diff v@a v@b
xs -q volume create c --from-snapshot v@b
start_server clone
check "a clone of v@b cannot read through it" -- fails nbdcopy "$(uri c)" "$tmp/out.img"
like "$(cat "$tmp/clone.log")" "describes snapshot $a" "  the server says why"
stop_server "$server_pid"
check "a copy of v@b is refused" -- fails xs copy v@b --to-account bob

chunks_before=$(find "$store/regions/local/repo/admin/chunks" -type f | sort)
out=$(xs gc 2>&1) && status=0 || status=$?
check "gc refuses to collect with a swapped manifest" -- test "$status" != 0
like "$out" "nothing deleted" "  and says nothing was deleted"
is "$(find "$store/regions/local/repo/admin/chunks" -type f | sort)" "$chunks_before" \
  "  no chunk was deleted"

cp "$tmp/b.manifest" "$manifests/$b"
is "$(snap_sum v@b)" "$sum_b" "with its own manifest back, v@b reads as before"
check "  and verifies" -- quietly xs verify v@b

# --- A pending snapshot -----------------------------------------------
sleep 60 & holder=$!
started_pids+=("$holder")
db "UPDATE snapshots SET status = 'pending', owner_pid = $holder WHERE id = '$b'"
out=$(xs verify "$b" 2>&1) && status=0 || status=$?
check "verify of a pending snapshot fails" -- test "$status" != 0
like "$out" "still being sealed" "  saying it is still being sealed"
like "$out" "process $holder" "  naming the process that seals it"
like "$out" "--wait|later" "  and when to retry"
kill "$holder"; wait "$holder" 2>/dev/null || true
out=$(xs verify "$b" 2>&1) && status=0 || status=$?
like "$out" "process $holder.*(died|no longer runs)" \
  "a pending snapshot whose sealer died says so"
db "UPDATE snapshots SET status = 'available', owner_pid = 0 WHERE id = '$b'"

# --- The dirty map deleted ---------------------------------------------
xs -q volume create m --size 4M --block-size 64K
head_dir=$store/regions/local/volumes/$(xs --json volume show m | jq -r .id)
start_server w
nbdcopy "$tmp/a.img" "$(uri m)"
stop_server "$server_pid"
xs -q snapshot create m --wait --name a
write_block m 2 0x63
rm -f "$head_dir/dirtymap"
xs -q snapshot create m --wait --name c && status=0 || status=$?
is "$status" 0 "a volume whose dirty map is gone still snapshots"
check "  the map is back" -- test -s "$head_dir/dirtymap"
cp "$tmp/a.img" "$tmp/c.model"; truncate -s 4M "$tmp/c.model"
printf 'c%.0s' $(seq 65536) | dd of="$tmp/c.model" bs=64K seek=2 conv=notrunc status=none
is "$(snap_sum m@c)" "$(sha256sum < "$tmp/c.model" | cut -d' ' -f1)" \
  "  and the snapshot has the write made before the map was lost"
write_block m 3 0x64 || true
rm -f "$head_dir/dirtymap"
out=$(xs --json diff --live m 2>/dev/null) || true
is "$(jq -r .trusted <<<"$out")" false "a lost map is untrusted"
like "$(jq -r .reason <<<"$out")" "missing" "  with the reason: it was missing"
xs -q snapshot create m --wait --name d || true
is "$(xs --json diff --live m | jq -r .trusted)" true \
  "after a snapshot compared every block the map is trusted again"

# --- The dirty map put back from an earlier moment ----------------------
xs -q volume create r --size 4M --block-size 64K
head_dir=$store/regions/local/volumes/$(xs --json volume show r | jq -r .id)
start_server w
nbdcopy "$tmp/a.img" "$(uri r)"
stop_server "$server_pid"
xs -q snapshot create r --wait --name a
cp "$tmp/a.img" "$tmp/r.model"; truncate -s 4M "$tmp/r.model"
cp "$head_dir/dirtymap" "$tmp/dirtymap.clean"
write_block r 5 0x65 || true
is "$(xs --json diff --live r | jq -r .changed_blocks)" 1 \
  "a clean open and close keep the map trusted (one block changed)"
cp "$tmp/dirtymap.clean" "$head_dir/dirtymap"
out=$(xs --json diff --live r 2>/dev/null) || true
is "$(jq -r .trusted <<<"$out")" false "a map rolled back to an earlier clean state is untrusted"
xs -q snapshot create r --wait --name e || true
printf 'e%.0s' $(seq 65536) | dd of="$tmp/r.model" bs=64K seek=5 conv=notrunc status=none
is "$(snap_sum r@e)" "$(sha256sum < "$tmp/r.model" | cut -d' ' -f1)" \
  "  and the next snapshot still has the block written since"

# The same after a crash: the old clean map must not match either.
cp "$head_dir/dirtymap" "$tmp/dirtymap.clean"
start_server crash
nbdsh -u "$(uri r)" -c "h.pwrite(b'f' * 65536, 6 * 65536); h.flush()"
kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true
cp "$tmp/dirtymap.clean" "$head_dir/dirtymap"
xs -q snapshot create r --wait --name f || true
printf 'f%.0s' $(seq 65536) | dd of="$tmp/r.model" bs=64K seek=6 conv=notrunc status=none
is "$(snap_sum r@f)" "$(sha256sum < "$tmp/r.model" | cut -d' ' -f1)" \
  "a clean map put back after a crash is not trusted: the snapshot has the write"
is "$(xs --json diff --live r | jq -r .trusted)" true \
  "  and the map is trusted again after that snapshot"

done_testing
