#!/usr/bin/env bash
# Writes while a snapshot is pending never leak into it, whichever way
# copy-before-write keeps what they overwrite: copied aside to the spill
# file (the default seal buffer), sealed by the write itself (seal-buffer=0),
# or both in one snapshot (a buffer far too small for the writes).  Each
# round fills the volume with fresh data, takes a snapshot without waiting,
# and at once overwrites, zeroes and trims at random (4K-aligned and not,
# from two connections) until the snapshot is available; the snapshot must
# equal the volume at its point in time, and the volume every write.  A
# last round does the same on an encrypted volume, whose head and spill
# hold ciphertext.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 96M --block-size 64K
xs -q volume create evol --size 96M --block-size 64K --encrypt

# The server, with debug messages (the seal's counts are among them).
start_verbose () {              # start_verbose NAME PLUGIN-ARGS...
  local name=$1; shift
  sock=$tmp/$name.sock
  log=$tmp/$name.log
  "${nbdkit_env[@]}" nbdkit -f -v -U "$sock" -P "$tmp/$name.pid" \
    --log=stderr "$plugin" store="$store" "$@" 2>>"$log" &
  server_pid=$!
  started_pids+=("$server_pid")
  for _ in $(seq 100); do
    [ -s "$tmp/$name.pid" ] && [ -S "$sock" ] && return 0
    sleep 0.1
  done
  return 1
}

# round NAME SEED [VOLUME]: prints "WRITES-WHILE-PENDING" on success.
round () {
  python3 - "$xsnap" "$(uri "${3:-vol}")" "$1" "$2" "$tmp" "${3:-vol}" <<'PY'
import hashlib, json, nbd, random, subprocess, sys, threading

xsnap, uri, name, seed, tmp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
vol = sys.argv[6]
SIZE = 96 << 20
rng = random.Random(seed)

def connect():
    h = nbd.NBD(); h.connect_uri(uri); return h

def status(snap):
    out = subprocess.run([xsnap, "--json", "snapshot", "show", snap],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["status"]

h = connect()
before = bytearray(rng.randbytes(SIZE))
for off in range(0, SIZE, 4 << 20):
    h.pwrite(bytes(before[off:off + (4 << 20)]), off)
h.flush()
model = bytearray(before)
out = subprocess.run([xsnap, "--json", "snapshot", "create", vol, "--name", name],
                     check=True, capture_output=True, text=True).stdout
snap = vol + "@" + name
pending = json.loads(out)["status"] == "pending"
counts = [0, 0]

def writer(i, lo, hi):
    w = connect()
    r = random.Random(seed * 2 + i)
    n = 0
    while True:
        for _ in range(32):
            if r.random() < 0.8:
                off = r.randrange(lo, hi - 4096) & ~4095
                ln = 4096 * r.choice([1, 1, 1, 4, 16])
            else:                   # unaligned, may span blocks
                off = r.randrange(lo, hi - 70000)
                ln = r.randrange(1, 70000)
            ln = min(ln, hi - off)
            op = r.random()
            if op < 0.85:
                data = r.randbytes(ln)
                w.pwrite(data, off)
                model[off:off + ln] = data
            elif op < 0.95:
                w.zero(ln, off)
                model[off:off + ln] = bytes(ln)
            else:
                w.zero(ln, off, nbd.CMD_FLAG_NO_HOLE)
                model[off:off + ln] = bytes(ln)
            n += 1
        if status(snap) != "pending":
            break
        counts[i] = n
    w.flush()
    w.shutdown()

threads = [threading.Thread(target=writer, args=(i, i * SIZE // 2, (i + 1) * SIZE // 2))
           for i in range(2)]
for t in threads: t.start()
for t in threads: t.join()

if status(snap) != "available":
    sys.exit("%s is %s" % (snap, status(snap)))
s = nbd.NBD(); s.connect_uri(uri.replace("///" + vol, "///" + snap))
got = bytearray()
for off in range(0, SIZE, 4 << 20):
    got += s.pread(4 << 20, off)
bad = [b for b in range(0, SIZE, 65536) if got[b:b + 65536] != before[b:b + 65536]]
if bad:
    sys.exit("%s differs from the volume at its point in time in %d blocks, "
             "first at %d" % (snap, len(bad), bad[0]))
now = bytearray()
for off in range(0, SIZE, 4 << 20):
    now += h.pread(4 << 20, off)
if now != model:
    sys.exit("the volume lost writes made while %s was pending" % snap)
print(sum(counts) if pending else 0)
PY
}

# counts LOG: "COPIED SEALED-FIRST" of the last snapshot the log reports.
counts () {
  sed -n 's/.*writes while pending copied \([0-9]*\) bytes aside and sealed \([0-9]*\) blocks first.*/\1 \2/p' "$1" | tail -1
}

n=0
for buffer in default 0 8K; do
  n=$((n + 1))
  if [ "$buffer" = default ]; then args=(); else args=("seal-buffer=$buffer"); fi
  start_verbose "s$n" "${args[@]}"
  keeper=$(hold_open "$(uri vol)")
  got=$(round "p$n" "$n$RANDOM" 2>"$tmp/round.err")
  ok $? "seal buffer $buffer: no write made while the snapshot was pending leaked into it" \
    || sed 's/^/#   /' "$tmp/round.err"
  diag "  $got writes while pending"
  check "  writes really raced with the sealers" -- test "${got:-0}" -gt 0
  read -r copied sealed <<<"$(counts "$log")"
  diag "  copied ${copied:-?} bytes aside, sealed ${sealed:-?} blocks first"
  case $buffer in
    default) check "  they copied what they overwrote aside, sealing nothing first" -- \
               test "${copied:-0}" -gt 0 -a "${sealed:-1}" = 0 ;;
    0) check "  with no buffer they sealed their blocks first" -- \
         test "${sealed:-0}" -gt 0 -a "${copied:-1}" = 0 ;;
    *) check "  with the buffer spent they sealed their blocks first" -- \
         test "${sealed:-0}" -gt 0 -a "${copied:-0}" -gt 0 ;;
  esac
  kill "$keeper"
  stop_server "$server_pid"
done
check "the snapshots verify" -- quietly xs verify vol@p1

start_verbose enc
keeper=$(hold_open "$(uri evol)")
got=$(round e1 "9$RANDOM" evol 2>"$tmp/round.err")
ok $? "an encrypted volume: no write made while the snapshot was pending leaked into it" \
  || sed 's/^/#   /' "$tmp/round.err"
check "  writes really raced with the sealers" -- test "${got:-0}" -gt 0
read -r copied sealed <<<"$(counts "$log")"
check "  they copied what they overwrote (ciphertext) aside" -- test "${copied:-0}" -gt 0
kill "$keeper"
stop_server "$server_pid"
check "  the snapshot verifies" -- quietly xs verify evol@e1
done_testing
