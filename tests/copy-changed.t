#!/usr/bin/env bash
# A copy lists what was really sent: its changed_blocks (CHANGED in
# `snapshot list`) counts the blocks whose chunks the destination lacked
# and the copy stored there, not every block of the volume.  Holes count
# nothing; an incremental copy counts its changed blocks; a block whose
# content the destination already holds counts nothing.
. "$(dirname "$0")/functions.sh"

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q
xs region add r2 -q
# 128 blocks of 64K, of which 32 are written (2 MiB), the rest holes.
xs --account alice volume create db --size 8M --block-size 64K -q
random_file "$tmp/a.img" 2 5
start_server w1 account=alice
quietly nbdcopy "$tmp/a.img" "$(uri db)"
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q
is "$(xs --account alice --json snapshot show db@s1 | jq -r .changed_blocks)" \
   32 "the source's first snapshot changed its 32 written blocks"

changed_of () {                 # changed_of ACCOUNT SNAPSHOT-ID
  xs --account "$1" --json snapshot show "$2" | jq -r .changed_blocks
}

# Full copy to another account: 32 blocks sent, not 128.
out=$(xs --account alice --json copy db@s1 --to-account carol)
copy=$(jq -r .snapshot.id <<<"$out")
is "$(jq -r .chunks_sent <<<"$out")" 32 "the first copy sends 32 chunks"
is "$(changed_of carol "$copy")" 32 \
   "... and lists 32 changed blocks, not the volume's 128"
line=$(xs --account carol snapshot list | grep "$copy")
like "$line" "^db@s1 +$copy +available +8M +32 " \
   "snapshot list shows CHANGED 32"

# Incremental: one block rewritten, one block given content the
# destination holds already (block 0's), one hole written with it too.
start_server w2 account=alice
nbdsh -u "$(uri db)" -c '
h.pwrite(b"\x5a" * 65536, 3 << 20)
h.pwrite(h.pread(65536, 0), 6 << 20)
h.flush()'
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s2 -q
out=$(xs --account alice --json copy db@s2 --to-account carol)
copy2=$(jq -r .snapshot.id <<<"$out")
is "$(jq -r .chunks_sent <<<"$out")" 1 "the second copy sends one chunk"
is "$(changed_of carol "$copy2")" 1 "... and lists one changed block"

# Across regions, the same.
out=$(xs --account alice --json copy db@s2 --to-region r2)
is "$(jq -r .chunks_sent <<<"$out")" 33 "a first copy to r2 sends 33 chunks"
is "$(xs --account alice --region r2 --json snapshot show \
        "$(jq -r .snapshot.id <<<"$out")" | jq -r .changed_blocks)" 34 \
   "... listing the 34 blocks that hold them (two share one)"

# Nothing new: a copy of the same snapshot again sends and lists nothing.
out=$(xs --account alice --json copy db@s2 --to-account carol --name again)
is "$(jq -r .chunks_sent <<<"$out")" 0 "a repeated copy sends nothing"
is "$(changed_of carol "$(jq -r .snapshot.id <<<"$out")")" 0 \
   "... and lists no changed block"

done_testing
