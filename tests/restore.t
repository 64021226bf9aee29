#!/usr/bin/env bash
# Restores: reads of snapshots and clones that the read-ahead serves
# (sequential, random, several connections, request sizes that do not
# match the block size, interleaved with writes to the clone) return the
# right bytes; `volume hydrate` copies everything, keeps to --rate,
# reports its progress and survives kill -9; a served clone is hydrated
# in the background at hydrate-rate while clients read it.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create v --size 128M --block-size 64K
start_server a hydrate=false
# 40 MiB random, 24 MiB text, the rest zero: data, compressible, holes.
random_file "$tmp/random.img" 40 seed-restore
cat "$tmp/random.img" > "$tmp/model.img"
for _ in $(seq 200); do cat "$(dirname "$0")/functions.sh"; done \
  | head -c $((24 << 20)) >> "$tmp/model.img"
truncate -s 128M "$tmp/model.img"
nbdcopy "$tmp/model.img" "$(uri v)"
xs -q snapshot create v --name s1 --wait
stop_server "$server_pid"
model_sum=$(sha256sum < "$tmp/model.img" | cut -d' ' -f1)

# ---- Sequential reads of a snapshot, in every shape nbdcopy makes them.
start_server b hydrate=false
for args in "--connections=1 --request-size=65536" \
            "--connections=4 --request-size=262144" \
            "--connections=2 --request-size=1048576" \
            "--connections=1 --request-size=4194304"; do
  # shellcheck disable=SC2086
  nbdcopy $args "$(uri v@s1)" "$tmp/out.img"
  is "$(sha256sum < "$tmp/out.img" | cut -d' ' -f1)" "$model_sum" \
    "nbdcopy $args of the snapshot reads it right"
done

# ---- A clone: sequential and random reads interleaved with writes.
xs -q volume create c1 --from-snapshot v@s1
cat > "$tmp/interleave.py" <<'EOF'
import nbd, random, sys
uri, model_path = sys.argv[1], sys.argv[2]
model = bytearray(open(model_path, 'rb').read())
rng = random.Random(7)
h = nbd.NBD(); h.connect_uri(uri)
size = len(model)
bad = 0
def check(offset, n):
    global bad
    if h.pread(n, offset) != bytes(model[offset:offset + n]):
        bad += 1
def write(offset, n):
    data = rng.randbytes(n)
    h.pwrite(data, offset)
    model[offset:offset + n] = data
# Sequential passes with odd request sizes, writing ahead of the reader
# (blocks the read-ahead may have decoded already) and behind it.
for step in (4096, 24576, 65536, 200000):
    pos = 0
    while pos < size:
        n = min(step, size - pos)
        check(pos, n)
        if rng.random() < 0.05:
            ahead = min(size - 8192, pos + rng.randrange(0, 4 << 20))
            write(ahead, rng.choice((512, 4096, 65536 - ahead % 65536)))
        if rng.random() < 0.02 and pos > 65536:
            write(rng.randrange(0, pos - 4096), 4096)
        pos += n
# Random reads and writes.
for _ in range(3000):
    offset = rng.randrange(0, size - 65536)
    if rng.random() < 0.2:
        write(offset, rng.randrange(1, 65536))
    else:
        check(offset, rng.randrange(1, 65536))
h.flush()
print(bad)
open(model_path + '.after', 'wb').write(model)
EOF
cp "$tmp/model.img" "$tmp/c1.img"
is "$(/usr/bin/python3 "$tmp/interleave.py" "$(uri c1)" "$tmp/c1.img")" 0 \
  "sequential and random reads of a clone, interleaved with writes, are all right"
is "$(export_sum "$(uri c1)")" "$(sha256sum < "$tmp/c1.img.after" | cut -d' ' -f1)" \
  "  and the clone holds every write"
stop_server "$server_pid"

# ---- volume hydrate: everything, at most --rate, with progress.
xs -q volume create c2 --from-snapshot v@s1
start=$(date +%s%N)
json=$(xs --json volume hydrate c2 --rate 32M)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
is "$(jq -r .blocks_copied <<<"$json")" 2048 "hydrate copies every block"
is "$(jq -r .bytes_copied <<<"$json")" $((128 << 20)) "  and says how many bytes"
check "  keeps to --rate 32M (128 MiB in ${ms} ms)" -- test "$ms" -ge 3500
is "$(xs --json volume show c2 | jq -r .source_snapshot)" "" \
  "  and the volume stands alone"
start_server c hydrate=false
is "$(export_sum "$(uri c2)")" "$model_sum" "  with the snapshot's bytes"
stop_server "$server_pid"

out=$(xs volume hydrate c2 --rate nonsense 2>&1) && status=0 || status=$?
is "$status" 2 "a bad --rate is a usage error"
like "$out" "rate" "  naming the option"

xs -q volume create c3 --from-snapshot v@s1
xs -q volume hydrate c3 --progress=3 3>"$tmp/progress" >/dev/null
like "$(tail -n 1 "$tmp/progress")" "^2048/2048$" "--progress=FD ends at every block"
check "  after lines on the way" -- test "$(wc -l < "$tmp/progress")" -ge 10

# ---- kill -9 in the middle of a hydration: nothing lost, it resumes.
xs -q volume create c4 --from-snapshot v@s1
"$xsnap" -q volume hydrate c4 --rate 16M >/dev/null 2>&1 &
hydrator=$!
started_pids+=("$hydrator")
sleep 2
kill -9 "$hydrator"; wait "$hydrator" 2>/dev/null || true
is "$(xs --json volume show c4 | jq -r '.source_snapshot | length > 0')" true \
  "a killed hydration leaves a clone"
start_server d hydrate=false
is "$(export_sum "$(uri c4)")" "$model_sum" "  which reads the snapshot's bytes"
stop_server "$server_pid"
json=$(xs --json volume hydrate c4)
check "  and hydrates again to the end" -- test "$(jq -r .blocks_copied <<<"$json")" -gt 0
start_server e hydrate=false
is "$(export_sum "$(uri c4)")" "$model_sum" "  with the snapshot's bytes"
stop_server "$server_pid"

# ---- A served clone hydrates in the background at hydrate-rate while
# a client reads it all the time.
xs -q volume create c5 --from-snapshot v@s1
NBDKIT_VERBOSE=1 start_server f hydrate-rate=32M
cat > "$tmp/reader.py" <<'EOF'
import nbd, random, sys, time
uri, model_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
model = open(model_path, 'rb').read()
rng = random.Random(3)
h = nbd.NBD(); h.connect_uri(uri)
bad = reads = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    offset = rng.randrange(0, len(model) - 65536)
    n = rng.randrange(1, 65536)
    reads += 1
    if h.pread(n, offset) != model[offset:offset + n]:
        bad += 1
print(bad, reads)
EOF
/usr/bin/python3 "$tmp/reader.py" "$(uri c5)" "$tmp/model.img" 2 > "$tmp/reader.out"
read -r bad reads < "$tmp/reader.out"
is "$bad" 0 "reads of a clone being hydrated are right ($reads reads)"
is "$(xs --json volume show c5 | jq -r '.source_snapshot | length > 0')" true \
  "  and after 2 s at 32M/s it is not hydrated yet"
holder=$(hold_open "$(uri c5)")
is "$(wait_hydrated c5)" "" \
  "  but it is soon after"
is "$(export_sum "$(uri c5)")" "$model_sum" "  with the snapshot's bytes"
kill "$holder"
stop_server "$server_pid"
# The hydration the reader's connection started stopped when it closed,
# and the holder's went on to the end.
gave_way=$(sed -n 's/.*background hydration stopped.*, \([0-9.]*\) s of it giving way.*/\1/p' "$tmp/f.log" | head -1)
check "  and it gave way to the client's reads (${gave_way:-no} s of waiting)" -- \
  awk -v s="${gave_way:-0}" 'BEGIN { exit !(s > 0) }'
# hydrated_line LOG: the server's notice that a hydration ended.
hydrated_line () { grep -o 'hydrated in the background: .*' "$1" | head -1; }

# ---- Without clients reading through, a hydration never waits.
xs -q volume create c6 --from-snapshot v@s1
NBDKIT_VERBOSE=1 start_server g
holder=$(hold_open "$(uri c6)")
is "$(wait_hydrated c6)" "" "a served clone nobody reads hydrates"
kill "$holder"
stop_server "$server_pid"
like "$(hydrated_line "$tmp/g.log")" ', 0.00 s of it giving way' \
  "  without giving way"

done_testing
