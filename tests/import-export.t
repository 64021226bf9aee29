#!/usr/bin/env bash
# Import from any NBD server into a new volume (skipping holes) and export
# snapshots to any writable NBD server: byte-identical copies, holes kept,
# progress on a file descriptor, and refusals that leave nothing behind.
. "$(dirname "$0")/functions.sh"

require_tool qemu-img qemu-io qemu-nbd nbdkit nbdcopy nbdinfo jq

# serve NAME COMMAND...: run an NBD server (qemu-nbd or plain nbdkit) in
# the foreground on $tmp/NAME.sock; sets $peer_sock and $peer_pid.
serve () {
  local name=$1; shift
  peer_sock=$tmp/$name.sock
  rm -f "$peer_sock"
  "$@" 2>>"$tmp/$name.log" &
  peer_pid=$!
  started_pids+=("$peer_pid")
  for _ in $(seq 100); do
    [ -S "$peer_sock" ] && nbdinfo --can connect "$(uri '' "$peer_sock")" \
      2>/dev/null && return 0
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
  done
  diag "$name did not start:"; sed 's/^/#   /' "$tmp/$name.log"
  return 1
}
nbdkit_on () { local name=$1; shift; serve "$name" nbdkit -f -U "$tmp/$name.sock" "$@"; }
sum_of () { sha256sum < "$1" | cut -d' ' -f1; }
# The last progress line is done/total with done == total, every line is
# N/TOTAL and they never go back.
progress_complete () {
  awk -F/ -v total="$2" '
    !/^[0-9]+\/[0-9]+$/ || $2 != total || $1 < last { bad = 1 }
    { last = $1; n++ }
    END { exit (bad || n == 0 || last != total) }' "$1"
}

xs init -q

# 1. A qcow2 with holes, served by qemu-nbd.
qemu-img create -q -f qcow2 "$tmp/img.qcow2" 256M
qemu-io -c 'write -P 0xab 1M 3M' -c 'write -P 0xcd 100M 1M' \
  -c 'write -z 50M 2M' -c 'write -P 0 200M 1M' "$tmp/img.qcow2" >/dev/null
qemu-img convert -O raw "$tmp/img.qcow2" "$tmp/raw.img"
serve qemu qemu-nbd -t -r -f qcow2 -k "$tmp/qemu.sock" "$tmp/img.qcow2"
qemu_uri=$(uri '' "$peer_sock")
is "$(nbdinfo --map --json "$qemu_uri" | jq '.[] | select(.offset <= 209715200 and .offset + .length > 209715200) | .type')" 0 \
  "qemu-nbd reports the zeroes written at 200M as data"
json=$(xs --json import "$qemu_uri" --volume q --progress=3 3>"$tmp/progress")
is "$(jq -r .size <<<"$json")" 268435456 "import q: the volume has the export's size"
is "$(jq -r .rounded <<<"$json")" false "  which needed no rounding"
read_bytes=$(jq -r .bytes_read <<<"$json")
check "  only the data was read ($read_bytes bytes of 256M)" -- \
  test "$read_bytes" -le $(( 8 << 20 ))
is "$(jq -r .bytes_written <<<"$json")" $(( 4 << 20 )) \
  "  and only non-zero data written"
is "$(jq -r .zeros_skipped <<<"$json")" $(( 1 << 20 )) \
  "  the 1M of zeroes read at 200M was not written"
is "$(jq -r '.holes_skipped + .bytes_read' <<<"$json")" 268435456 \
  "  holes skipped and bytes read cover the export"
check "--progress=FD wrote lines up to 100%" -- \
  progress_complete "$tmp/progress" 268435456
stop_server "$peer_pid"

start_server a
is "$(export_sum "$(uri q)")" "$(sum_of "$tmp/raw.img")" \
  "the imported volume equals qemu-img convert's raw image"
map=$(nbdinfo --map --json "$(uri q)")
is "$(jq '.[] | select(.offset <= 209715200 and .offset + .length > 209715200) | .type' <<<"$map")" 3 \
  "  and is a hole at 200M, where the qcow2 had data"
is "$(jq '[.[] | select(.type == 3) | .length] | add' <<<"$map")" $(( 252 << 20 )) \
  "  252M of it are holes"

# 2. 1 GiB of sparse random data from nbdkit, over several connections.
nbdkit_on sparse sparse-random 1G seed=42 percent=5
sparse_uri=$(uri '' "$peer_sock")
start=$(date +%s%N)
nbdcopy "$sparse_uri" "$tmp/sparse.img"
nbdcopy_ms=$(( ($(date +%s%N) - start) / 1000000 ))
json=$(xs --json import "$sparse_uri" --volume sr)
diag "1G sparse-random: import $(jq -r '.seconds * 1000 | floor' <<<"$json") ms," \
  "nbdcopy to a file ${nbdcopy_ms} ms," \
  "$(jq -r .connections <<<"$json") connections"
is "$(export_sum "$(uri sr)")" "$(sum_of "$tmp/sparse.img")" \
  "import sr from sparse-random: byte-identical"
rm -f "$tmp/sparse.img"
holes=$(nbdinfo --map --json "$(uri sr)" | jq '[.[] | select(.type == 3) | .length] | add')
check "  most of it is holes ($holes bytes of 1G)" -- \
  test "$holes" -ge $(( 800 << 20 ))
check "  and most of it was never read" -- \
  test "$(jq -r .holes_skipped <<<"$json")" -ge $(( 800 << 20 ))
stop_server "$peer_pid"

# 3. A size that is not a multiple of the block size is rounded up.
nbdkit_on pattern pattern 1000000
out=$(xs import "$(uri '' "$peer_sock")" --volume odd --block-size 64K)
like "$out" "1000000 bytes, is not a multiple of the block size \(64K\): the volume is 1048576 bytes" \
  "import of 1000000 bytes says it rounded up"
nbdcopy "$(uri '' "$peer_sock")" "$tmp/pattern.img"
truncate -s 1048576 "$tmp/pattern.img"
is "$(export_sum "$(uri odd)")" "$(sum_of "$tmp/pattern.img")" \
  "  the data is there and the tail reads as zeroes"
stop_server "$peer_pid"

# 4. Export a snapshot to other NBD servers.
stop_server "$server_pid"
xs -q snapshot create q --wait --name s1
start_server b
snap_sum=$(export_sum "$(uri q@s1)")
is "$snap_sum" "$(sum_of "$tmp/raw.img")" "snapshot q@s1 holds the imported bytes"
random_file "$tmp/junk.img" 256 junk

nbdkit_on mem memory 256M
nbdcopy "$tmp/junk.img" "$(uri '' "$peer_sock")"
json=$(xs --json export q@s1 "$(uri '' "$peer_sock")" --progress=3 3>"$tmp/progress")
is "$(export_sum "$(uri '' "$peer_sock")")" "$snap_sum" \
  "export to nbdkit memory over old data: equals the snapshot"
is "$(jq -r .bytes_zeroed <<<"$json")" $(( 252 << 20 )) \
  "  zero blocks were zeroed"
is "$(jq -r .bytes_written <<<"$json")" $(( 4 << 20 )) \
  "  data blocks were written"
check "  --progress=FD reached 100%" -- progress_complete "$tmp/progress" 268435456
stop_server "$peer_pid"

nbdkit_on fresh memory 256M
json=$(xs --json export q@s1 "$(uri '' "$peer_sock")" --target-is-zero)
is "$(export_sum "$(uri '' "$peer_sock")")" "$snap_sum" \
  "export --target-is-zero to an empty target: equals the snapshot"
is "$(jq -r '[.bytes_zeroed, .holes_skipped] | join(" ")' <<<"$json")" "0 $(( 252 << 20 ))" \
  "  zero blocks were skipped"
stop_server "$peer_pid"

nbdkit_on nozero --filter=nozero memory 256M
nbdcopy "$tmp/junk.img" "$(uri '' "$peer_sock")"
json=$(xs --json export q@s1 "$(uri '' "$peer_sock")")
is "$(export_sum "$(uri '' "$peer_sock")")" "$snap_sum" \
  "export to a target without zero support: zeroes are written"
stop_server "$peer_pid"

nbdkit_on bigger memory 300M
check "export to a larger target succeeds" -- \
  quietly xs export q@s1 "$(uri '' "$peer_sock")"
stop_server "$peer_pid"

nbdkit_on small memory 128M
out=$(xs export q@s1 "$(uri '' "$peer_sock")" 2>&1) && status=0 || status=$?
is "$status" 1 "export to a 128M target is refused"
like "$out" "^xsnap: cannot export snapshot q@s1 to .*: the target is too small \(128M, 134217728 bytes; the snapshot is 256M, 268435456 bytes\)$" \
  "  with one clear line"
stop_server "$peer_pid"

nbdkit_on ro -r memory 256M
out=$(xs export q@s1 "$(uri '' "$peer_sock")" 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot export snapshot q@s1 to .*: the target is read-only$" \
  "export to a read-only target is refused"
stop_server "$peer_pid"

out=$(xs export q@nope "$(uri '' "$tmp/none.sock")" 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: no snapshot 'q@nope'" "export of an unknown snapshot is refused"

# 5. Refused imports leave nothing behind.
serve qemu2 qemu-nbd -t -r -f qcow2 -k "$tmp/qemu2.sock" "$tmp/img.qcow2"
qemu_uri=$(uri '' "$peer_sock")
stop_server "$server_pid"
xs -q volume create existing --size 1M
before=$(store_state)
out=$(xs import "$qemu_uri" --volume existing 2>&1) && status=0 || status=$?
is "$status" 1 "import into an existing volume name is refused"
like "$out" "^xsnap: volume 'existing' already exists in account 'admin', region 'local'$" \
  "  with one clear line"
is "$(store_state)" "$before" "  and changes nothing in the store"
stop_server "$peer_pid"

out=$(xs import "$(uri '' "$tmp/nothing.sock")" --volume z 2>&1) && status=0 || status=$?
is "$status" 1 "import from a URI that does not connect is refused"
like "$out" "^xsnap: cannot connect to nbd\+unix:///\?socket=$tmp/nothing.sock: .*No such file or directory$" \
  "  with one clear line"
is "$(store_state)" "$before" "  and leaves no volume behind"

out=$(xs import "$qemu_uri" --volume z --progress=x 2>&1) && status=0 || status=$?
like "$status $out" "^2 xsnap: invalid --progress=FD 'x'" "a bad --progress=FD is a usage error"
out=$(xs import "$qemu_uri" --volume z --progress=9 2>&1) && status=0 || status=$?
like "$status $out" "^2 xsnap: invalid --progress=FD '9': the file descriptor is not open" \
  "  as is one that is not open"
out=$(xs import "$qemu_uri" 2>&1) && status=0 || status=$?
is "$status" 2 "import without --volume is a usage error"

# A source that dies, and an interrupted import: the new volume goes.
head -c $(( 64 << 20 )) /dev/urandom > "$tmp/slow.img"
for how in "source dies" "interrupted"; do
  # One thread: nbdkit 1.32 can abort (connections.c raw_send_socket
  # assertion) when a client goes away with requests in flight on
  # several threads.
  nbdkit_on slow --threads=1 --filter=rate file "$tmp/slow.img" rate=64M
  "$xsnap" import "$(uri '' "$peer_sock")" --volume partial \
    > /dev/null 2>"$tmp/err" &
  import_pid=$!
  sleep 0.7
  if [ "$how" = "source dies" ]; then
    kill "$peer_pid"
  else
    kill -TERM "$import_pid"
  fi
  wait "$import_pid" && status=0 || status=$?
  is "$status" 1 "import, $how: it fails"
  if [ "$how" = "source dies" ]; then
    like "$(head -1 "$tmp/err")" "^xsnap: cannot (read|talk to|get the map).*socket=$tmp/slow.sock" \
      "  saying why"
  else
    like "$(cat "$tmp/err")" "^xsnap: cannot import from .*: interrupted$" "  saying why"
  fi
  is "$(store_state)" "$before" "  and the partial volume is gone"
  stop_server "$peer_pid" || true
done

done_testing
