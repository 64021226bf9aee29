#!/usr/bin/env bash
# Volumes up to 64 TiB on any file system: a head keeps its data in
# segments of 1 TiB (data, data.1, ...), so a file system's limit on one
# file (ext4: 16 TiB) stops no create, resize or import.  Through the
# real nbdkit: blocks written near 0, across 16 TiB and at the end read
# back, live and from a snapshot; a volume grows across the 16 TiB line
# and on to 64 TiB; a sparse 64 TiB import.  A resize that fails (a
# directory where a new segment goes, a catalog that refuses the new
# size) leaves the volume as it was, its dirty map trusted; a head of one
# file made before segments grows by segments of its own length.  All
# sparse: the test writes a few hundred KiB.
. "$(dirname "$0")/functions.sh"

require_tool nbdkit nbdsh nbdinfo qemu-img qemu-io qemu-nbd sqlite3 jq

T=$((1 << 40))
if [ "$(stat -f -c %T "$tmp")" = ext2/ext3 ]; then
  diag "on ext4: one file stops short of 16 TiB"
else
  diag "not on ext4 ($(stat -f -c %T "$tmp")): the same tests, no file limit"
fi

vdir () { printf '%s/regions/local/volumes/%s' "$store" \
            "$(xs --json volume show "$1" | jq -r .id)"; }
# The data files of a volume's head, with their lengths, in order.
data_files () {
  (cd "$(vdir "$1")" && find . -maxdepth 1 -type f -name 'data*' \
     -printf '%f %s\n' | sort -V)
}
size_of () { xs --json volume show "$1" | jq -r .size; }
trusted () { xs --json diff --live "$1" | jq -r .trusted; }

# Write or read back 64 KiB blocks, each OFFSET:CHAR (CHAR 0: zeroes).
write_blocks () {               # write_blocks URI OFFSET:CHAR...
  local u=$1; shift
  BLOCKS="$*" nbdsh -u "$u" -c "
import os
for spec in os.environ['BLOCKS'].split():
    offset, char = spec.split(':')
    h.pwrite(char.encode() * 65536, int(offset))
h.flush()
"
}
reads_back () {                 # reads_back URI OFFSET:CHAR...
  local u=$1; shift
  BLOCKS="$*" nbdsh -u "$u" -c "
import os, sys
for spec in os.environ['BLOCKS'].split():
    offset, char = spec.split(':')
    want = bytes(65536) if char == '0' else char.encode() * 65536
    if h.pread(65536, int(offset)) != want:
        print('bad at', offset); sys.exit(1)
"
}

xs init -q

# 1. 64 TiB, written and read through NBD.
check "create a 64 TiB volume" -- xs -q volume create big --size 64T
is "$(data_files big | wc -l)" 64 "  its data is 64 segments"
is "$(data_files big | awk '$2 != 1099511627776' | wc -l)" 0 \
  "  of 1 TiB each"
is "$(du -sk "$(vdir big)" | cut -f1 | awk '{print ($1 < 20000) ? "sparse" : $1}')" \
  sparse "  holding no space"

start_server a
u=$(uri big)
blocks=("4096:A" "$((16 * T - 32768)):B" "$((64 * T - 65536)):C")
check "write 64 KiB near 0, across 16 TiB and at the end" -- \
  write_blocks "$u" "${blocks[@]}"
is "$(nbdinfo --json "$u" | jq -r '.exports[0]."export-size"')" $((64 * T)) \
  "  the export is 64 TiB"
check "  they read back" -- reads_back "$u" "${blocks[@]}" "$((32 * T)):0"
is "$(nbdinfo --map --json "$u" | jq -c '[.[] | select(.type == 0) | [.offset, .length]]')" \
   "[[4096,65536],[$((16 * T - 32768)),65536],[$((64 * T - 65536)),65536]]" \
  "  the extents are those three runs of data (one across the segments)"
check "snapshot it while attached" -- xs -q snapshot create big --name s1 --wait
stop_server "$server_pid"
is "$(xs --json snapshot show big@s1 | jq -r .changed_blocks)" 4 \
  "  it sealed the 4 blocks written"
start_server b
check "  the snapshot reads them back" -- \
  reads_back "$(uri big@s1)" "${blocks[@]}" "$((48 * T)):0"
stop_server "$server_pid"

# 2. Across the 16 TiB line, and on to 64 TiB.
xs -q volume create mid --size 15T
start_server c
write_blocks "$(uri mid)" "$((15 * T - 65536)):D"
stop_server "$server_pid"
check "grow a 15 TiB volume to 17 TiB" -- xs -q volume resize mid --size 17T
is "$(size_of mid)" $((17 * T)) "  the catalog has the new size"
is "$(data_files mid | tail -1)" "data.16 1099511627776" \
  "  its data is 17 segments"
start_server d
u=$(uri mid)
check "  write past 16 TiB" -- write_blocks "$u" "$((16 * T + 524288)):E"
check "  both blocks read back" -- \
  reads_back "$u" "$((15 * T - 65536)):D" "$((16 * T + 524288)):E"
stop_server "$server_pid"
check "  a snapshot of it" -- xs -q snapshot create mid --name s1 --wait
start_server e
check "  reads them back" -- \
  reads_back "$(uri mid@s1)" "$((15 * T - 65536)):D" "$((16 * T + 524288)):E"
stop_server "$server_pid"
check "grow it on to 64 TiB" -- xs -q volume resize mid --size 64T
is "$(data_files mid | wc -l)" 64 "  64 segments"
is "$(trusted mid)" true "  its dirty map is still trusted"

# 3. Resizes that fail leave the volume as it was.
xs -q volume create r --size 17T
xs -q snapshot create r --name s0 --wait
# The dirty map's length is its geometry (its header changes on each open).
before=$(data_files r; stat -c 'dirtymap %s' "$(vdir r)/dirtymap")
mkdir "$(vdir r)/data.20"
out=$(xs volume resize r --size 30T 2>&1) && status=0 || status=$?
is "$status" 1 "a resize blocked by a directory where data.20 goes fails"
like "$out" "data.20" "  naming it"
rmdir "$(vdir r)/data.20"
is "$(data_files r; stat -c 'dirtymap %s' "$(vdir r)/dirtymap")" "$before" \
  "  the data files and the dirty map are as they were"
is "$(size_of r)" $((17 * T)) "  and the catalog has the old size"
is "$(trusted r)" true "  the dirty map is trusted"

sqlite3 "$store/xsnap.db" "CREATE TRIGGER refuse_resize BEFORE UPDATE OF size
  ON volumes BEGIN SELECT RAISE(ABORT, 'the test refuses the new size'); END;"
out=$(xs volume resize r --size 30T 2>&1) && status=0 || status=$?
is "$status" 1 "a resize the catalog cannot record fails"
like "$out" "refuses the new size" "  saying why"
is "$(data_files r; stat -c 'dirtymap %s' "$(vdir r)/dirtymap")" "$before" \
  "  the head's grow is undone: data files and dirty map as they were"
is "$(trusted r)" true "  the dirty map is trusted"
sqlite3 "$store/xsnap.db" "DROP TRIGGER refuse_resize;"
check "  the same resize works once the catalog takes it" -- \
  xs -q volume resize r --size 30T
is "$(data_files r | wc -l)" 30 "  30 segments"
is "$(trusted r)" true "  its dirty map trusted"

# 4. Import a sparse 64 TiB image.
qemu-img create -q -f qcow2 "$tmp/src.qcow2" 64T
qemu-io -c "write -P 0x41 4096 64k" \
  -c "write -P 0x42 $((16 * T - 32768)) 64k" \
  -c "write -P 0x43 $((64 * T - 65536)) 64k" "$tmp/src.qcow2" >/dev/null
qemu-nbd -t -r -f qcow2 -k "$tmp/qemu.sock" "$tmp/src.qcow2" 2>"$tmp/qemu.log" &
started_pids+=("$!")
for _ in $(seq 100); do
  nbdinfo --can connect "$(uri '' "$tmp/qemu.sock")" 2>/dev/null && break
  sleep 0.1
done
json=$(xs --json import "$(uri '' "$tmp/qemu.sock")" --volume imp)
is "$(jq -r .size <<<"$json")" $((64 * T)) "import a 64 TiB image"
is "$(jq -r .bytes_written <<<"$json")" 196608 "  writing only its data"
is "$(data_files imp | wc -l)" 64 "  into 64 segments"
start_server f
check "  it reads back" -- reads_back "$(uri imp)" "${blocks[@]}"
stop_server "$server_pid"

# 5. A head of one file made before segments, longer than one.
xs -q volume create old --size 2T
start_server g
write_blocks "$(uri old)" "$((3 * T / 2)):F"
stop_server "$server_pid"
# What a store made before segments has: one file.
dd if="$(vdir old)/data.1" of="$(vdir old)/data" bs=64K count=1 \
  skip=$(((T / 2) / 65536)) seek=$(((3 * T / 2) / 65536)) conv=notrunc,sparse \
  status=none
rm "$(vdir old)/data.1"
truncate -s 2T "$(vdir old)/data"
check "a head of one 2 TiB file grows to 5 TiB" -- \
  xs -q volume resize old --size 5T
is "$(data_files old | tr '\n' ' ')" \
  "data 2199023255552 data.1 2199023255552 data.2 1099511627776 " \
  "  by segments of its own length"
start_server h
check "  its data stays" -- reads_back "$(uri old)" "$((3 * T / 2)):F"
stop_server "$server_pid"

done_testing
