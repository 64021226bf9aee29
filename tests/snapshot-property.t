#!/usr/bin/env bash
# Differential property test of snapshots and clones (seeded: set
# XSNAP_SEED to replay a run).  Random writes, zeroes and trims at random
# offsets and sizes go to a served volume and to a model; snapshots are
# taken at random moments, some while a second connection writes
# concurrently.  Afterwards every snapshot, read through its NBD export,
# must equal the model at its point in time (per-block hashes); with the
# concurrent writer, the point in time must fall between two of its writes.
# Then clones are made from some snapshots, written to, and must equal
# their snapshot plus their own writes; and a snapshot of each clone must
# equal the clone.
. "$(dirname "$0")/functions.sh"

seed=${XSNAP_SEED:-$RANDOM$RANDOM}
rounds=${XSNAP_PROPERTY_ROUNDS:-12}
[ -n "${XSNAP_LONG:-}" ] && rounds=60
diag "seed $seed, $rounds rounds (replay with XSNAP_SEED=$seed)"

xs init -q
xs -q volume create vol --size 32M --block-size 16K
start_server a

python3 - "$xsnap" "$sock" "$seed" "$rounds" "$tmp" <<'PY'
import hashlib, json, multiprocessing, nbd, random, struct, subprocess, sys, time

xsnap, sock, seed, rounds, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
BS = 16384
SIZE = 32 << 20
HALF = SIZE // 2                  # main ops in [0, HALF), writer in [HALF, SIZE)
rng = random.Random(seed)
count = 0
failed = 0

def ok(cond, desc):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (count, desc), flush=True)

def uri(name):
    return "nbd+unix:///%s?socket=%s" % (name, sock)

def block_hashes(data):
    return [hashlib.sha256(data[i:i + BS]).digest() for i in range(0, len(data), BS)]

def xs(*args):
    out = subprocess.run([xsnap, "--json"] + list(args), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)

def read_all(name):
    h = nbd.NBD(); h.connect_uri(uri(name))
    data = bytearray()
    for off in range(0, h.get_size(), 1 << 20):
        data += h.pread(1 << 20, off)
    h.shutdown()
    return data

def random_op(h, model, lo, hi, allow_trim=True):
    length = rng.choice([1, 511, 4096, BS, BS + 1, 3 * BS, rng.randint(1, 1 << 20)])
    offset = rng.randint(lo, hi - length)
    kind = rng.choice(["write"] * 4 + ["zero"] + (["trim"] if allow_trim else []))
    if kind == "write":
        data = rng.randbytes(length)
        h.pwrite(data, offset)
        model[offset:offset + length] = data
    elif kind == "zero":
        h.zero(length, offset)
        model[offset:offset + length] = bytes(length)
    else:
        h.trim(length, offset)     # a head punches a hole: reads zero
        model[offset:offset + length] = bytes(length)

# The concurrent writer, in its own process (libnbd's Python binding holds
# the GIL during calls): full blocks cycling through the upper half, block
# content derived from the write's sequence number k, one write in flight.
class Writer:
    def __init__(self):
        self.started = multiprocessing.Value("q", 0, lock=False)
        self.done = multiprocessing.Value("q", 0, lock=False)
        self.stop_flag = multiprocessing.Value("b", 0, lock=False)
        self.proc = multiprocessing.Process(target=Writer.main,
                                            args=(self.started, self.done,
                                                  self.stop_flag))
    def start(self):
        self.proc.start()
    @property
    def started_writes(self):
        return self.started.value
    @property
    def done_writes(self):
        return self.done.value
    def stop(self):
        self.stop_flag.value = 1
        self.proc.join()
    @staticmethod
    def main(started, done, stop_flag):
        h = nbd.NBD(); h.connect_uri(uri("vol"))
        k = 0
        while not stop_flag.value:
            k += 1
            started.value = k
            h.pwrite(Writer.content(k), Writer.offset(k))
            done.value = k
        h.flush()
    @staticmethod
    def offset(k):
        return HALF + ((k - 1) % (HALF // BS)) * BS
    @staticmethod
    def content(k):
        return struct.pack("<Q", k) * (BS // 8)

def upper_after(k, base):
    """The upper half after the writer's first k writes, over BASE."""
    upper = bytearray(base)
    nb = HALF // BS
    for j in range(nb):
        # the last write <= k to block j, if any
        last = k - ((k - 1 - j) % nb) if k > j else 0
        if last > 0:
            upper[j * BS:(j + 1) * BS] = Writer.content(last)
    return upper

h = nbd.NBD(); h.connect_uri(uri("vol"))
model = bytearray(SIZE)
snapshots = []            # (name, expected lower hashes, upper base, k_lo, k_hi or None)
writer = None
upper_base = None
for r in range(rounds):
    for _ in range(rng.randint(1, 20)):
        random_op(h, model, 0, HALF if writer else SIZE)
    concurrent = writer is not None
    if r == rounds // 2 and writer is None:
        h.flush()
        upper_base = bytes(model[HALF:])
        writer = Writer(); writer.start()
        while writer.done_writes < 10:
            time.sleep(0.01)
        concurrent = True
    name = "s%d" % r
    k_lo = writer.done_writes if writer else 0
    xs("snapshot", "create", "vol", "--name", name)
    k_hi = writer.started_writes if writer else 0
    if concurrent:
        snapshots.append((name, block_hashes(model[:HALF]), upper_base, k_lo, k_hi))
    else:
        snapshots.append((name, block_hashes(model), None, 0, 0))
if writer:
    writer.stop()
    model[HALF:] = upper_after(writer.done_writes, upper_base)
h.flush()

# Wait for background sealing.
for _ in range(600):
    if all(s["status"] == "available" for s in xs("snapshot", "list")["snapshots"]):
        break
    time.sleep(0.1)
ok(all(s["status"] == "available" for s in xs("snapshot", "list")["snapshots"]),
   "all %d snapshots sealed" % len(snapshots))

for name, lower, base, k_lo, k_hi in snapshots:
    data = read_all("vol@" + name)
    if base is None:
        ok(block_hashes(data) == lower, "vol@%s equals the model at its point in time" % name)
        continue
    ok(block_hashes(data[:HALF]) == lower,
       "vol@%s (writer running): the quiet half equals the model" % name)
    # Each written block names the write k that wrote it; the newest one is
    # the candidate point in time, and the whole half must be the state
    # right after it.
    got = block_hashes(data[HALF:])
    point = 0
    for j in range(HALF // BS):
        words = set(struct.unpack_from("<%dQ" % (BS // 8), data, HALF + j * BS))
        if len(words) == 1 and data[HALF + j * BS:HALF + (j + 1) * BS] != base[j * BS:(j + 1) * BS]:
            point = max(point, words.pop())
    ok(k_lo <= point <= k_hi and block_hashes(upper_after(point, base)) == got,
       "vol@%s: the written half is the state right after writer write %d, "
       "within [%d, %d]" % (name, point, k_lo, k_hi))

ok(block_hashes(read_all("vol")) == block_hashes(model), "the volume equals the model")

# Clones of some snapshots, written to: snapshot plus own writes.
quiet = [s for s in snapshots if s[2] is None]
for name, _, _, _, _ in rng.sample(quiet, min(3, len(quiet))):
    clone = "c-" + name
    xs("volume", "create", clone, "--from-snapshot", "vol@" + name)
    cm = bytearray(read_all("vol@" + name))
    ch = nbd.NBD(); ch.connect_uri(uri(clone))
    for _ in range(rng.randint(5, 40)):
        random_op(ch, cm, 0, SIZE, allow_trim=False)
    ch.flush()
    ok(block_hashes(read_all(clone)) == block_hashes(cm),
       "clone %s equals its snapshot plus its own writes" % clone)
    ch.shutdown()
    xs("snapshot", "create", clone, "--name", "after", "--wait")
    ok(block_hashes(read_all(clone + "@after")) == block_hashes(cm),
       "a snapshot of clone %s equals the clone" % clone)

print("1..%d" % count)
sys.exit(1 if failed else 0)
PY
