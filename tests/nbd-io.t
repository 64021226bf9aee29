#!/usr/bin/env bash
# Data integrity through the real nbdkit with the plugin, over a Unix
# socket: nbdcopy, libnbd at unaligned offsets, qemu-img, extents after
# trim, multi-conn visibility, and what nbdinfo reports.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 64M --block-size 64K
start_server a
u=$(uri vol)

listing=$(nbdinfo --list --json "nbd+unix:///?socket=$sock")
is "$(jq -r '[.exports[]."export-name"] | join(",")' <<<"$listing")" vol \
  "nbdinfo --list shows the volume"
info=$(nbdinfo --json "$u")
is "$(jq -r '.exports[0]."export-size"' <<<"$info")" 67108864 "export size"
is "$(jq -r '.exports[0]."block_size_preferred"' <<<"$info")" 4096 \
  "preferred block size of a plain volume is 4K (any size is efficient)"
for cap in multi-conn fua flush trim zero fast-zero; do
  check "server advertises $cap" -- nbdinfo --can "$cap" "$u"
done
check "the export is writable" -- bash -c "! nbdinfo --is read-only '$u'"

# 1. nbdcopy known random data in, and back out.
random_file "$tmp/in.img" 64 seed-a
check "nbdcopy writes 64M of random data" -- nbdcopy "$tmp/in.img" "$u"
check "nbdcopy reads it back" -- nbdcopy "$u" "$tmp/out.img"
check "  byte-identical" -- cmp "$tmp/in.img" "$tmp/out.img"
cp "$tmp/in.img" "$tmp/model.img"

# 2. libnbd: unaligned writes of random sizes at random offsets, applied
#    to a model file too; then the whole export equals the model.
out=$(python3 - "$u" "$tmp/model.img" <<'PY'
import nbd, random, sys
uri, model = sys.argv[1], sys.argv[2]
h = nbd.NBD(); h.connect_uri(uri)
rng = random.Random(1234)
size = h.get_size()
with open(model, "r+b") as m:
    for i in range(400):
        length = rng.randint(1, 200000)
        offset = rng.randint(0, size - length)
        data = rng.randbytes(length)
        h.pwrite(data, offset, nbd.CMD_FLAG_FUA if i % 7 == 0 else 0)
        m.seek(offset); m.write(data)
h.flush()
bad = 0
with open(model, "rb") as m:
    for offset in range(0, size, 1 << 20):
        m.seek(offset)
        if h.pread(1 << 20, offset) != m.read(1 << 20):
            bad += 1
print(bad)
PY
)
is "$out" 0 "400 unaligned writes (some FUA) read back as the model"

# 3. qemu-img convert from the NBD URI.
check "qemu-img convert from nbd+unix://" -- \
  qemu-img convert -f raw -O raw "$u" "$tmp/qemu.img"
check "  equals the model" -- cmp "$tmp/qemu.img" "$tmp/model.img"

# 4. Trim and zero punch holes: nbdinfo --map shows them, reads give zeros.
python3 - "$u" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.trim(4 << 20, 8 << 20)
h.zero(2 << 20, 20 << 20)   # no NO_HOLE flag: may trim
h.flush()
PY
map=$(nbdinfo --map --json "$u")
hole_bytes=$(jq '[.[] | select(.type == 3) | .length] | add' <<<"$map")
is "$hole_bytes" $(( 6 << 20 )) "nbdinfo --map shows exactly the 6M trimmed and zeroed as holes"
like "$(nbdinfo --map "$u")" "8388608 +4194304 +3 +hole,zero" "  the trimmed range is a hole"
dd if=/dev/zero of="$tmp/model.img" bs=1M seek=8 count=4 conv=notrunc status=none
dd if=/dev/zero of="$tmp/model.img" bs=1M seek=20 count=2 conv=notrunc status=none
nbdcopy "$u" "$tmp/out2.img"
check "trimmed and zeroed ranges read as zero, the rest is intact" -- \
  cmp "$tmp/out2.img" "$tmp/model.img"

# 5. Multi-conn: a write plus flush on one connection is visible on another,
#    in another process.
python3 - "$u" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"multi-conn!" * 100, 12345)
h.flush()
PY
got=$(nbdsh -u "$u" -c 'print(h.pread(11, 12345 + 11 * 99).decode())')
is "$got" "multi-conn!" "a flushed write on one connection is read on another"
out=$(python3 - "$u" <<'PY'
import nbd, sys
a = nbd.NBD(); a.connect_uri(sys.argv[1])
b = nbd.NBD(); b.connect_uri(sys.argv[1])
a.pwrite(b"x" * 4096, 1 << 20); a.flush()
print(b.pread(4096, 1 << 20) == b"x" * 4096)
PY
)
is "$out" True "two connections in one client see each other's flushed writes"

# 6. Fast zero is honoured.
out=$(nbdsh -u "$u" -c 'h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO); print("ok")' 2>&1)
is "$out" ok "a fast zero succeeds where holes can be punched"

stop_server "$server_pid"
check "server log has no errors" -- bash -c "! grep -i error '$tmp/a.log'"
done_testing
