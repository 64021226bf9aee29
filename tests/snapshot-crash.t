#!/usr/bin/env bash
# Snapshots and crashes.
# 1. kill -9 between writes (some never flushed): the next snapshot falls
#    back to comparing every block and misses no change.
# 2. kill -9 of the owner at moments while it seals a snapshot: after a
#    restart no broken snapshot is visible as available, gc reclaims the
#    orphaned chunks, and the next snapshot is correct.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 128M --block-size 64K
start_server a
u=$(uri vol)
random_file "$tmp/base.img" 128 seed-base
nbdcopy "$tmp/base.img" "$u"
xs -q snapshot create vol --name s1 --wait

# Writes after s1: some flushed, the last ones not, then kill -9 while
# the client is still connected (the volume is open).
python3 - "$u" "$tmp/written" <<'PY' &
import nbd, random, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
rng = random.Random(99)
for i in range(200):
    off = rng.randrange(0, (128 << 20) - 70000)
    h.pwrite(rng.randbytes(rng.randint(1, 70000)), off)
    if i == 150:
        h.flush()
open(sys.argv[2], "w").close()
time.sleep(3600)
PY
writer=$!
started_pids+=("$writer")
for _ in $(seq 200); do [ -e "$tmp/written" ] && break; sleep 0.05; done
kill -9 "$server_pid"
wait "$server_pid" 2>/dev/null || true
kill "$writer" 2>/dev/null || true
start_server b
u=$(uri vol)
nbdcopy "$u" "$tmp/after-crash.img"
stop_server "$server_pid"
out=$(xs diff --live vol 2>&1 >/dev/null) && status=0 || status=$?
is "$status" 3 "after kill -9 the changed-block map is not trusted"
json=$(xs --json snapshot create vol --wait --name s2)
is "$(jq -r .status <<<"$json")" available "a snapshot after the unclean stop"
start_server c
is "$(export_sum "$(uri vol@s2)")" "$(sha256sum < "$tmp/after-crash.img" | cut -d' ' -f1)" \
  "it equals the volume: no write was missed, flushed or not"
changed=$(python3 - "$tmp/base.img" "$tmp/after-crash.img" <<'PY'
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
bs = 65536
print(sum(a[i:i + bs] != b[i:i + bs] for i in range(0, len(a), bs)))
PY
)
is "$(jq -r .changed_blocks <<<"$json")" "$changed" \
  "it records exactly the $changed blocks that differ from s1"
stop_server "$server_pid"
is "$(xs --json diff --live vol | jq -r .trusted)" true \
  "after that snapshot the map is trusted again"

# 2. Crash while sealing.
model_sum=$(sha256sum < "$tmp/after-crash.img" | cut -d' ' -f1)
for delay in 0.1 0.3 0.6; do
  start_server "k$delay"
  u=$(uri vol)
  # New content everywhere, so that the snapshot has a lot to seal.
  random_file "$tmp/new.img" 128 "seed-$delay"
  nbdcopy "$tmp/new.img" "$u"
  model_sum=$(sha256sum < "$tmp/new.img" | cut -d' ' -f1)
  holder=$(hold_open "$u")      # attached: the owner seals in the background
  xs -q snapshot create vol --name "c$delay"
  sleep "$delay"
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  kill "$holder" 2>/dev/null || true
  status=$(xs --json snapshot show "vol@c$delay" 2>/dev/null | jq -r .status) || status=none
  diag "killed ${delay}s into sealing: the snapshot is '$status'"
  if [ "$status" = available ]; then
    start_server "v$delay"
    is "$(export_sum "$(uri "vol@c$delay")")" "$model_sum" \
      "killed after ${delay}s: the snapshot is complete and correct"
    stop_server "$server_pid"
  else
    ok 0 "killed after ${delay}s: the snapshot is not available ($status)"
  fi
  gc=$(xs --json gc)
  is "$(xs --json snapshot list | jq '[.snapshots[] | select(.status == "pending")] | length')" 0 \
    "after gc no snapshot is pending"
  if [ "$status" != available ]; then
    check "gc reclaimed the orphaned chunks ($(jq -r .chunks_deleted <<<"$gc"))" -- \
      test "$(jq -r .chunks_deleted <<<"$gc")" -gt 0
  fi
  is "$(xs --json gc | jq -r .chunks_deleted)" 0 "a second gc finds nothing more"
  json=$(xs --json snapshot create vol --wait --name "n$delay")
  start_server "n$delay"
  is "$(export_sum "$(uri "vol@n$delay")")" "$model_sum" "the next snapshot is correct"
  stop_server "$server_pid"
done
# 3. gc while a snapshot is being sealed: gc waits for it; nothing of
#    the new snapshot is collected.
start_server g
u=$(uri vol)
random_file "$tmp/new.img" 128 seed-gc
nbdcopy "$tmp/new.img" "$u"
holder=$(hold_open "$u")
xs -q snapshot create vol --name during-gc
status=$(xs --json snapshot show vol@during-gc | jq -r .status)
gc=$(xs --json gc)
is "$(xs --json snapshot show vol@during-gc | jq -r .status)" available \
  "gc started while the snapshot was $status, and returned after it was sealed"
is "$(export_sum "$(uri vol@during-gc)")" "$(sha256sum < "$tmp/new.img" | cut -d' ' -f1)" \
  "the snapshot sealed during gc is complete"
kill "$holder"
stop_server "$server_pid"

check "verify passes on every snapshot left" -- \
  bash -c "for s in \$($xsnap --json snapshot list | jq -r '.snapshots[].id'); do $xsnap -q verify \$s || exit 1; done"
done_testing
