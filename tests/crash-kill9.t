#!/usr/bin/env bash
# kill -9 of nbdkit in the middle of a write load: every write that was
# flushed before the kill reads back after a restart, and the dirty map
# reports itself untrustworthy (exit status 3), for good.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 128M --block-size 4K
start_server a
u=$(uri vol)

# The writer fills never-reused 4K slots with seeded data and, after each
# flush returns, records the slots it covers.  It runs until the server
# dies under it.
python3 - "$u" "$tmp/flushed.txt" <<'PY' > "$tmp/writer.log" 2>&1 &
import nbd, random, sys
uri, log = sys.argv[1], sys.argv[2]
h = nbd.NBD(); h.connect_uri(uri)
slots = list(range(h.get_size() // 4096))
random.Random(7).shuffle(slots)
pending = []
with open(log, "w", buffering=1) as f:
    for n, slot in enumerate(slots):
        h.pwrite(random.Random(slot).randbytes(4096), slot * 4096)
        pending.append(slot)
        if n % 16 == 15:
            h.flush()
            f.write("".join("%d\n" % s for s in pending))
            pending = []
PY
writer=$!
for _ in $(seq 100); do
  [ -s "$tmp/flushed.txt" ] && [ "$(wc -l < "$tmp/flushed.txt")" -gt 2000 ] && break
  sleep 0.1
done
kill -9 "$server_pid"
wait "$writer" || true
flushed=$(wc -l < "$tmp/flushed.txt")
diag "$flushed writes were flushed before kill -9"
check "the writer got a good way before the kill" -- test "$flushed" -gt 2000

start_server b
u=$(uri vol)
out=$(python3 - "$u" "$tmp/flushed.txt" <<'PY'
import nbd, random, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
bad = [s for s in map(int, open(sys.argv[2])) if
       h.pread(4096, s * 4096) != random.Random(s).randbytes(4096)]
print(len(bad))
PY
)
is "$out" 0 "every write flushed before the kill reads back"
stop_server "$server_pid"

out=$(xs diff --live vol 2>&1 >/dev/null) && status=0 || status=$?
is "$status" 3 "diff --live exits 3: the map is untrustworthy"
like "$out" "cannot be trusted: the volume was not closed cleanly \(unclean stop\)" \
  "  and says why"
is "$(xs diff --live vol --json 2>/dev/null | jq -r '.trusted, .extents')" "false
null" "--json says trusted: false and gives no extents"

# A clean restart and stop does not make the map trustworthy again.
start_server c
nbdsh -u "$(uri vol)" -c 'h.pwrite(b"x" * 4096, 0); h.flush()'
stop_server "$server_pid"
xs diff --live vol >/dev/null 2>&1 && status=0 || status=$?
is "$status" 3 "still untrustworthy after a later clean stop"
done_testing
