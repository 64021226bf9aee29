#!/usr/bin/env bash
# Changed-block tracking: `xsnap diff --live` lists exactly the blocks
# that writes, zeroes and trims touched (checked against a model of the
# requests), in every output format, while attached and after.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 256M --block-size 64K
is "$(xs diff --live vol --format=blocks | wc -l)" 0 "a new volume has no changed blocks"
start_server a
u=$(uri vol)

# Seeded random requests; the script prints the model's block set and
# keeps the connection open (attached) until told to finish.
mkfifo "$tmp/go"
python3 - "$u" "$tmp/model.txt" "$tmp/ready" "$tmp/go" <<'PY' &
import nbd, random, sys
uri, model_path, ready, go = sys.argv[1:5]
bs = 65536
h = nbd.NBD(); h.connect_uri(uri)
size = h.get_size()
rng = random.Random(20261122)
blocks = set()
for i in range(300):
    length = rng.choice([1, 512, 4096, 65536, 100000, 1 << 20, rng.randint(1, 3 << 20)])
    offset = rng.randint(0, size - length)
    kind = rng.choice(["write", "write", "write", "zero", "trim"])
    if kind == "write":
        h.pwrite(rng.randbytes(length), offset)
    elif kind == "zero":
        h.zero(length, offset)
    else:
        h.trim(length, offset)
    blocks.update(range(offset // bs, (offset + length - 1) // bs + 1))
h.flush()
with open(model_path, "w") as f:
    f.write("\n".join(str(b) for b in sorted(blocks)) + "\n")
open(ready, "w").close()
open(go).read()              # stay connected until the test says go
PY
writer=$!
started_pids+=("$writer")
for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.1; done

# While attached: the map as of the owner's last flush.
json=$(xs diff --live vol --json)
is "$(jq -r .live <<<"$json")" true "while attached, diff --live reads the live map"
is "$(jq -r .trusted <<<"$json")" true "  and it is trusted"
xs diff --live vol --format=blocks > "$tmp/live.txt"
check "  it lists exactly the blocks the requests touched" -- \
  cmp "$tmp/live.txt" "$tmp/model.txt"
check "xsnap volume show says attached" -- \
  bash -c "[ \"\$($xsnap --json volume show vol | jq -r .attached)\" = true ]"
echo go > "$tmp/go"
wait "$writer"
# The server closes the volume a moment after its last client left.
for _ in $(seq 100); do
  [ "$(xs --json volume show vol | jq -r .attached)" = false ] && break
  sleep 0.1
done

# After the last connection closed.
json=$(xs diff --live vol --json)
is "$(jq -r .live <<<"$json")" false "after close, the map is read from disk"
is "$(jq -r .trusted <<<"$json")" true "  trusted after a clean close"
is "$(jq -r .changed_blocks <<<"$json")" "$(wc -l < "$tmp/model.txt")" \
  "changed_blocks counts the model's blocks"
is "$(jq -r '[.extents[].blocks] | add' <<<"$json")" "$(wc -l < "$tmp/model.txt")" \
  "the JSON extents cover the same number of blocks"
# Expand the extents back into block numbers: same set as the model.
jq -r '.extents[] | range(.first_block; .first_block + .blocks)' <<<"$json" > "$tmp/json.txt"
check "JSON extents are exactly the model's blocks" -- cmp "$tmp/json.txt" "$tmp/model.txt"
is "$(jq -r '.extents[0].offset == .extents[0].first_block * .block_size' <<<"$json")" true \
  "extent offsets are in bytes"

# The table: one line per run, offsets and lengths in bytes.
xs -q diff --live vol | awk '{for (b = $3; b < $3 + $4; b++) print b}' > "$tmp/table.txt"
check "the table lists the same blocks" -- cmp "$tmp/table.txt" "$tmp/model.txt"

# The binary bitmap, decoded independently here.
xs diff --live vol --format=bitmap > "$tmp/map.bin"
out=$(python3 - "$tmp/map.bin" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic, version, flags, bs, _, size, nblocks = struct.unpack_from("<8sIIIIQQ", data, 0)
assert magic == b"XSNPBMAP", magic
n = (nblocks + 7) // 8
bits = data[40:40 + n]
assert len(data) == 40 + n + 8
for b in range(nblocks):
    if bits[b // 8] >> (b % 8) & 1:
        print(b)
PY
)
is "$out" "$(cat "$tmp/model.txt")" "the binary bitmap decodes to the same blocks"
is "$(head -c 8 "$tmp/map.bin")" XSNPBMAP "bitmap starts with its magic"
out=$(script -qc "$xsnap diff --live vol --format=bitmap" /dev/null 2>&1) || true
like "$out" "refusing to write a binary bitmap to a terminal" \
  "the bitmap is not written to a terminal"

# Reading the map does not disturb it.
xs diff --live vol --format=blocks > "$tmp/again.txt"
check "a second diff --live gives the same answer" -- cmp "$tmp/again.txt" "$tmp/model.txt"
done_testing
