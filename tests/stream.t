#!/usr/bin/env bash
# Replication streams end to end: send | receive into a second store, a
# full stream then a chain of incrementals whose received exports are
# byte-identical to the sources; received middle snapshots deleted and
# gc'd without harm; dry-run counts; refusals of cut, damaged, reordered,
# mismatched and newer streams that leave nothing visible; interrupted
# receives (a cut stream, a stopped receiver) resumed with their token,
# forged and stale tokens refused.
. "$(dirname "$0")/functions.sh"

store2=$tmp/store2
xs2 () { "$xsnap" --store "$store2" "$@"; }

# Serve store2 (start_server serves $store).
start_server2 () { store=$store2 start_server "$@"; }

# Random writes through a served volume: reproducible for a seed.
scribble () {                   # scribble URI SEED
  python3 - "$1" "$2" <<'PY'
import nbd, random, sys
r = random.Random(sys.argv[2])
h = nbd.NBD(); h.connect_uri(sys.argv[1])
size = h.get_size()
for _ in range(12):
    off = r.randrange(0, size // 4096) * 4096
    length = min(r.choice([4096, 65536, 300000]), size - off)
    h.pwrite(r.randbytes(length), off)
h.pwrite(bytes([r.randrange(1, 256)]) * 262144, r.randrange(0, 64) * 262144)
h.zero(65536, r.randrange(0, 128) * 65536)
h.flush()
PY
}

# Offsets in a stream: header end, trailer, then each record.
layout () {                     # layout FILE
  python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
m = struct.unpack_from('<I', d, 16)[0]
pos = header = 32 + m + 8
records = []
while d[pos:pos + 1] != b'T':
    records.append(pos)
    n = struct.unpack_from('<I', d, pos + 4)[0]
    pos += 40 + (n + 8 if n else 0)
print(header, pos, *records)
PY
}


# Cut a file: its first N bytes.
cut_at () { head -c "$2" "$1" > "$3"; }

# Flip one bit at OFFSET.
flip () {                       # flip IN OFFSET OUT
  python3 -c '
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[int(sys.argv[2])] ^= 0x10
open(sys.argv[3], "wb").write(d)' "$@"
}

# What store2 shows: snapshot ids and manifests.
visible2 () {
  xs2 --json snapshot list | jq -c '[.snapshots[].id]'
  find "$store2/regions/local/repo" -path '*/manifests/*' -type f | sort
}

# Receive FILE into store2 expecting a refusal matching REGEX, with
# nothing new visible.
refused () {                    # refused DESCRIPTION FILE REGEX
  local before out status
  before=$(visible2)
  out=$(xs2 receive -i "$2" 2>&1) && status=0 || status=$?
  is "$status" 1 "$1 is refused"
  like "$out" "$3" "  with a clear message"
  is "$(visible2)" "$before" "  and nothing new is visible"
}

# Blocks that differ between two images, in 64K blocks.
differing_blocks () {
  python3 - "$1" "$2" <<'PY'
import sys
a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
B = 65536
print(sum(a[i:i + B] != b[i:i + B] for i in range(0, len(a), B)))
PY
}

xs init -q
check "a second store" -- quietly "$xsnap" --store "$store2" init
xs -q volume create vol --size 32M --block-size 64K
start_server a
u=$(uri vol)
random_file "$tmp/a.img" 8 seed-a
nbdcopy "$tmp/a.img" "$u"
xs -q snapshot create vol --name s1 --wait
for i in 2 3 4; do
  scribble "$u" "seed-$i"
  xs -q snapshot create vol --name "s$i" --wait
done
declare -A sum id
for i in 1 2 3 4; do
  nbdcopy "$(uri "vol@s$i")" "$tmp/s$i.img"
  sum[$i]=$(sha256sum < "$tmp/s$i.img" | cut -d' ' -f1)
  id[$i]=$(xs --json snapshot show "vol@s$i" | jq -r .id)
done
stop_server "$server_pid"

# Dry runs count what a stream carries.
json=$(xs --json send vol@s1 --dry-run)
is "$(jq -r .blocks <<<"$json")" 128 "a full dry run carries the 128 written blocks"
xs send vol@s1 --progress=3 > "$tmp/full.xs" 3> "$tmp/progress"
is "$(tail -1 "$tmp/progress")" 128/128 "send --progress=FD counts the records"
is "$(jq -r .bytes <<<"$json")" "$(stat -c %s "$tmp/full.xs")" \
  "  and knows the stream's exact length"
want=$(differing_blocks "$tmp/s1.img" "$tmp/s2.img")
json=$(xs --json send vol@s2 --from vol@s1 --dry-run)
is "$(jq -r .blocks <<<"$json")" "$want" \
  "an incremental dry run carries exactly the $want blocks that differ"
check "  some as references to chunks the receiver has" -- \
  test "$(jq -r .references <<<"$json")" -ge 1
xs -q send vol@s2 --from vol@s1 -o "$tmp/inc.xs"
check "send -o writes a file" -- test -s "$tmp/inc.xs"

# Refusals (store2 is empty; a cut stream leaves only a resumable state).
rest=($(layout "$tmp/full.xs"))
trailer=${rest[1]}
records=("${rest[@]:2}")
cut_at "$tmp/full.xs" 20 "$tmp/bad"
refused "a stream cut inside the header" "$tmp/bad" "truncated inside the header"
cut_at "$tmp/full.xs" "${records[5]}" "$tmp/bad"
refused "a stream cut at a record boundary" "$tmp/bad" \
  "truncated after record 5 \(block [0-9]+\): the trailer is missing"
cut_at "$tmp/full.xs" $(( records[5] + 100 )) "$tmp/bad"
refused "a stream cut inside a record" "$tmp/bad" "truncated inside record 6"
cut_at "$tmp/full.xs" $(( trailer + 20 )) "$tmp/bad"
refused "a stream cut inside the trailer" "$tmp/bad" "truncated inside the trailer"
flip "$tmp/full.xs" $(( records[3] + 40 + 1000 )) "$tmp/bad"
refused "a flipped bit in a chunk" "$tmp/bad" "stream record 4 \(block 3\) is damaged"
flip "$tmp/full.xs" 60 "$tmp/bad"
refused "a flipped bit in the header" "$tmp/bad" "stream header is damaged"
flip "$tmp/full.xs" $(( trailer + 20 )) "$tmp/bad"
refused "a flipped bit in the trailer" "$tmp/bad" "stream trailer is damaged"
python3 - "$tmp/full.xs" "${records[1]}" "${records[2]}" "${records[3]}" "$tmp/bad" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
a, b, c = map(int, sys.argv[2:5])
open(sys.argv[5], 'wb').write(d[:a] + d[b:c] + d[a:b] + d[c:])
PY
refused "two records swapped" "$tmp/bad" "stream record 3 \(block 1\) is out of order"
restream "$tmp/full.xs" "$tmp/bad" 'version = 7'
refused "a stream of version 7" "$tmp/bad" \
  "stream format version 7 is newer than this xsnap supports \(6\)"
refused "an incremental stream whose base is missing" "$tmp/inc.xs" \
  "incremental from snapshot ${id[1]}, which is not in account 'admin', region 'local'"

# Round trips: full, then three incrementals, each through a pipe.
json=$(xs send vol@s1 | xs2 --json receive --progress=3 3> "$tmp/progress")
is "$(tail -1 "$tmp/progress")" 128/128 "receive --progress=FD counts them too"
is "$(jq -r .id <<<"$json")" "${id[1]}" "a full stream received keeps the snapshot's id"
is "$(jq -r .creation_method <<<"$json")" received "  its creation method is 'received'"
is "$(jq -r .changed_blocks <<<"$json")" 128 "  it carried 128 blocks"
is "$(xs2 --json receive --token | jq '.pending | length')" 0 \
  "the fresh stream replaced the states the cut ones left"
restream "$tmp/inc.xs" "$tmp/bad" \
  'meta["base_root_hash"] = "0" * 32; meta["_restream"] = True'
refused "an incremental stream whose base here differs" "$tmp/bad" \
  "snapshot ${id[1]} here is not the stream's base: its content differs"
refused "the full stream again" "$tmp/full.xs" \
  "snapshot ${id[1]} \(vol@s1\) already exists in this store"
for i in 2 3 4; do
  json=$(xs send "vol@s$i" --from "vol@s$((i - 1))" | xs2 --json receive)
  is "$(jq -r .parent <<<"$json")" "${id[$((i - 1))]}" \
    "incremental s$i received, its parent is s$((i - 1))"
done
is "$(xs2 --json snapshot show vol@s2 | jq -r .changed_blocks)" "$want" \
  "received s2 changed the $want blocks that differ"
start_server2 b
for i in 1 2 3 4; do
  is "$(export_sum "$(uri "vol@s$i")")" "${sum[$i]}" \
    "received vol@s$i reads exactly as the source"
done
stop_server "$server_pid"

# Received snapshots are full: delete the middle ones, gc, the rest stand.
check "delete received s2 and s3" -- quietly xs2 snapshot delete vol@s2
quietly xs2 snapshot delete vol@s3
gc=$(xs2 --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 2 "gc purged them"
check "gc deleted chunks only they used" -- test "$(jq -r .chunks_deleted <<<"$gc")" -gt 0
start_server2 c
is "$(export_sum "$(uri vol@s1)")" "${sum[1]}" "s1 is intact after deleting s2, s3 and gc"
is "$(export_sum "$(uri vol@s4)")" "${sum[4]}" "s4 is intact after deleting s2, s3 and gc"
stop_server "$server_pid"

# Resume: a third store receives s1 from a stream cut twice.
store3=$tmp/store3
xs3 () { "$xsnap" --store "$store3" "$@"; }
# send ARGS | receive into store3, with the receiver's messages.
send_to3 () { xs send "$@" 2>/dev/null | xs3 receive 2>&1; }
quietly xs3 init
cut_at "$tmp/full.xs" $(( records[40] + 500 )) "$tmp/cut1"
out=$(xs3 receive -i "$tmp/cut1" 2>&1) && status=0 || status=$?
is "$status" 1 "a cut stream fails"
like "$out" "receive interrupted; resume with: xsnap send ${id[1]} --resume xsr1-" \
  "  and prints how to resume"
token1=$(grep -o 'xsr1-[0-9a-f-]*' <<<"$out")
json=$(xs3 --json receive --token)
is "$(jq -r '.pending[0].token' <<<"$json")" "$token1" "receive --token shows the token"
is "$(jq -r '.pending[0].next_block' <<<"$json")" 40 \
  "  the receive has blocks 0 to 39, it needs block 40 on"
is "$(xs3 --json snapshot list | jq '.snapshots | length')" 0 "  nothing is visible"
forged=${token1:0:70}$( [ "${token1:70:1}" = 0 ] && echo 1 || echo 0 )${token1:71}
out=$(send_to3 vol@s1 --resume "$forged") && status=0 || status=$?
is "$status" 1 "a forged token (one character changed) is refused"
like "$out" "resume token does not verify" "  as not verifying"
xs send vol@s1 --resume "$token1" > "$tmp/resumed.xs"
check "a resumed stream is smaller" -- \
  test "$(stat -c %s "$tmp/resumed.xs")" -lt "$(stat -c %s "$tmp/full.xs")"
head -c 300000 "$tmp/resumed.xs" > "$tmp/cut2"
out=$(xs3 receive -i "$tmp/cut2" 2>&1) || true
token2=$(grep -o 'xsr1-[0-9a-f-]*' <<<"$out")
check "a resumed stream cut again gives a newer token" -- \
  test -n "$token2" -a "$token2" != "$token1"
out=$(xs3 receive -i "$tmp/resumed.xs" 2>&1) && status=0 || status=$?
is "$status" 1 "the older token is now stale"
like "$out" "stale resume token: the receive of stream [0-9a-f]+ needs block \
[0-9]+ on now, not 40" "  and said so"
json=$(xs send vol@s1 --resume "$token2" | xs3 --json receive)
is "$(jq -r .id <<<"$json")" "${id[1]}" "send --resume TOKEN | receive completes"
is "$(jq -r .root_hash <<<"$json")" "$(xs --json snapshot show vol@s1 | jq -r .root_hash)" \
  "  with the source's root hash"
is "$(xs3 --json receive --token | jq '.pending | length')" 0 "  and no pending receive"
out=$(send_to3 vol@s1 --resume "$token2") && status=0 || status=$?
is "$status" 1 "the token after completion is refused"
like "$out" "stale resume token" "  as stale"

# A receiver stopped by SIGTERM in the middle keeps what it has.
mkfifo "$tmp/fifo"
"$xsnap" --store "$store3" receive -i "$tmp/fifo" 2> "$tmp/stopped.err" &
receiver=$!
started_pids+=("$receiver")
exec 3> "$tmp/fifo"
head -c $(( $(stat -c %s "$tmp/inc.xs") / 2 )) "$tmp/inc.xs" >&3
sleep 1
kill -TERM "$receiver"
wait "$receiver" && status=0 || status=$?
exec 3>&-
is "$status" 1 "a receiver stopped by SIGTERM fails"
like "$(cat "$tmp/stopped.err")" \
  "receive was stopped.*resume with: xsnap send ${id[2]} --from ${id[1]} --resume" \
  "  and prints the resume command"
token=$(grep -o 'xsr1-[0-9a-f-]*' "$tmp/stopped.err")
check "send --from BASE --resume TOKEN | receive completes it" -- \
  quietly send_to3 vol@s2 --from vol@s1 --resume "$token"
store=$store3 start_server d
is "$(export_sum "$(uri vol@s2)")" "${sum[2]}" \
  "the resumed snapshot reads exactly as the source"
stop_server "$server_pid"

# --name renames what is received.
quietly "$xsnap" --store "$tmp/store4" init
json=$(xs send vol@s1 | "$xsnap" --store "$tmp/store4" --json receive --name copy@first)
is "$(jq -r '.volume + "@" + .name' <<<"$json")" copy@first \
  "receive --name VOLUME@NAME names the received snapshot"

# Sender-side refusals.
xs -q volume create other --size 32M --block-size 4K
xs -q snapshot create other --wait --name x
out=$(xs send vol@s2 --from other@x 2>&1 >/dev/null) && status=0 || status=$?
is "$status" 1 "a base of another geometry is refused"
like "$out" "different geometry" "  and said so"
out=$(xs send vol@s1 --resume "$token" 2>&1 >/dev/null) && status=0 || status=$?
like "$out" "the resume token is for another stream" \
  "a token of another stream is refused by send"
done_testing
