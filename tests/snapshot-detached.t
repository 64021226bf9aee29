#!/usr/bin/env bash
# Snapshots of a detached volume return at once: `snapshot create` starts
# a detached sealer (a process of its own that owns the volume while the
# snapshot seals) and returns once the point in time is taken.
# 1. It returns while the snapshot is pending, with nothing of the
#    command's output or terminal held by the sealer, whose messages go
#    to sealer.log; meanwhile the volume is not attached, and delete and
#    resize say why they are refused; the snapshot is right once sealed.
# 2. --wait returns once it is available and the volume is free again.
# 3. A server that opens the volume meanwhile never fails: the sealer
#    hands the volume and the pending snapshot over, and writes made
#    through NBD while it was still sealing never reach the snapshot
#    (plain and encrypted volumes); --wait follows the snapshot there.
# 4. A second snapshot waits for the first to be sealed (as for an
#    attached volume); refusals reach the command.
# 5. kill -9 of the sealer as it takes the point in time, while it seals,
#    under a waiting command, and while a server waits for its handover:
#    the snapshot is never wrong, the next owner removes its pending
#    record, the volume opens with its data (the server's open does not
#    fail), and the next snapshot is right.
# The sealer is stopped (SIGSTOP) where a step must happen while it seals,
# so that no step depends on how fast this machine seals.
. "$(dirname "$0")/functions.sh"

MB=48
xs init -q
xs -q volume create vol --size ${MB}M --block-size 64K
xs -q volume create evol --size ${MB}M --block-size 64K --encrypt
start_server a                  # idle: it owns a volume only while a client is connected

head_of () { echo "$store/regions/local/volumes/$(xs --json volume show "$1" | jq -r .id)"; }
head=$(head_of vol)
holder () { cut -d' ' -f1 "$1/lock"; }
# A process that ended (the init of some containers reaps it late).
gone () { ! kill -0 "$1" 2>/dev/null || [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" = Z ]; }
free_now () { flock -n "$1/lock" true; }
wait_free () {
  for _ in $(seq 400); do free_now "$1" && return 0; sleep 0.05; done
  return 1
}
# fresh VOL SEED: new content everywhere ($tmp/VOL.img), the volume free.
fresh () {
  random_file "$tmp/$1.img" "$MB" "$2"
  nbdcopy "$tmp/$1.img" "$(uri "$1")"
  img_sum=$(sha256sum < "$tmp/$1.img" | cut -d' ' -f1)
  wait_free "$(head_of "$1")"
}
status_of () { xs --json snapshot show "$1" 2>/dev/null | jq -r .status || echo none; }
pending_count () {
  xs --json snapshot list | jq '[.snapshots[] | select(.status == "pending")] | length'
}

# create_stopped VOL NAME: snapshot create VOL --name NAME, its standard
# output and error a pipe (as in $(...)), and as soon as it returns, its
# sealer stopped (SIGSTOP) with the snapshot pending.  Sets $json, $ms
# (how long the command took) and $sealer (0: no sealer held the volume).
create_stopped () {
  local out
  out=$(python3 - "$xsnap" "$(head_of "$1")/lock" "$1" "$2" <<'PY'
import json, os, signal, subprocess, sys, time
xsnap, lock, vol, name = sys.argv[1:]
t = time.monotonic()
p = subprocess.run([xsnap, "--json", "snapshot", "create", vol, "--name", name],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
ms = (time.monotonic() - t) * 1000
pid, role = (open(lock).read().split() + [""])[:2]
if role == "sealer":
    os.kill(int(pid), signal.SIGSTOP)
print(json.dumps({"ms": int(ms), "sealer": int(pid) if role == "sealer" else 0,
                  "out": p.stdout.decode()}))
PY
)
  json=$(jq -r .out <<<"$out")
  ms=$(jq -r .ms <<<"$out")
  sealer=$(jq -r .sealer <<<"$out")
}

# watch_pending NAME PID-FILE: in the background ($watcher), stop the
# sealer (SIGSTOP) as soon as snapshot NAME is pending and write its pid;
# ready before it returns, so before the snapshot is created.
watch_pending () {
  rm -f "$2" "$2.ready"
  python3 - "$store/xsnap.db" "$head/lock" "$1" "$2" <<'PY' &
import os, signal, sqlite3, sys, time
db, lock, name, out = sys.argv[1:]
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
open(out + ".ready", "w").close()
end = time.time() + 20
while time.time() < end:
    row = con.execute("SELECT status FROM snapshots WHERE name = ?", (name,)).fetchone()
    if row and row[0] == "pending":
        pid = int(open(lock).read().split()[0])
        os.kill(pid, signal.SIGSTOP)
        open(out, "w").write("%d\n" % pid)
        break
    time.sleep(0.001)
PY
  watcher=$!
  for _ in $(seq 200); do [ -e "$2.ready" ] && break; sleep 0.02; done
}

# write_while_pending VOL SNAP SEED: random writes through NBD to VOL
# (the open takes the volume over), flushed; the volume's expected
# content goes to $tmp/VOL.model.  Prints how many writes were made while
# SNAP was still pending (if it exists).
write_while_pending () {
  python3 - "$(uri "$1")" "$tmp/$1.img" "$tmp/$1.model" "$xsnap" "$2" "$3" <<'PY'
import json, nbd, random, subprocess, sys
uri, img, model_path, xsnap, snap, seed = sys.argv[1:]
rng = random.Random(int(seed))
model = bytearray(open(img, "rb").read())
h = nbd.NBD(); h.connect_uri(uri)
raced = 0
for _ in range(4):
    for _ in range(64):
        off = rng.randrange(0, len(model) - 70000)
        if rng.random() < 0.7:
            off &= ~4095
        data = rng.randbytes(rng.randrange(1, 70000))
        h.pwrite(data, off)
        model[off:off + len(data)] = data
    out = subprocess.run([xsnap, "--json", "snapshot", "show", snap],
                         capture_output=True, text=True).stdout
    if out and json.loads(out)["status"] == "pending":
        raced += 64
h.flush()
h.shutdown()
open(model_path, "wb").write(model)
print(raced)
PY
}

# 1. At once, pending; the sealer holds nothing of the command's.
fresh vol 1
create_stopped vol s1
is "$(jq -r .status <<<"$json")" pending \
  "snapshot create of a detached volume returns while the snapshot is pending"
diag "  in $ms ms"
check "  a detached sealer (pid $sealer) was still sealing it" -- test "$sealer" -gt 0
is "$(jq -c keys <<<"$json")" "$(xs --json snapshot show vol@s1 | jq -c 'del(.copies) | keys')" \
  "  its JSON is a snapshot's, as ever"
is "$(cat "$head/lock")" "$sealer sealer" "  it owns the volume"
is "$(readlink "/proc/$sealer/fd/0") $(readlink "/proc/$sealer/fd/1")" "/dev/null /dev/null" \
  "  its standard input and output are /dev/null (not the command's pipe)"
is "$(readlink "/proc/$sealer/fd/2")" "$head/sealer.log" \
  "  its errors go to sealer.log in the volume's head"
check "  it is in a session of its own" -- \
  test "$(ps -o sid= -p "$sealer")" != "$(ps -o sid= -p $$)"
is "$(xs --json volume show vol | jq -r .attached)" false \
  "  the volume is not attached meanwhile"
out=$(xs volume delete vol 2>&1) && st=0 || st=$?
is "$st" 1 "  volume delete is refused meanwhile"
like "$out" "in use by process $sealer, which is sealing a snapshot of it" "  saying why"
out=$(xs volume resize vol --size 128M 2>&1) && st=0 || st=$?
like "$out" "which is sealing a snapshot of it" "  and so is resize"
kill -CONT "$sealer"
check "the snapshot becomes available" -- wait_sealed
wait_free "$head"
check "  the sealer lets the volume go and exits" -- gone "$sealer"
is "$(export_sum "$(uri vol@s1)")" "$img_sum" "  the snapshot is the volume at its point in time"
check "  and the sealer's log is empty: nothing failed" -- test ! -s "$head/sealer.log"

# 2. --wait: available, the volume free.
fresh vol 2
json=$(xs --json snapshot create vol --name s2 --wait)
is "$(jq -r .status <<<"$json")" available "with --wait it returns the snapshot available"
check "  once the volume is free again" -- free_now "$head"
is "$(export_sum "$(uri vol@s2)")" "$img_sum" "  and right"

# 3. A server opens the volume while the sealer seals: the writer's open
# asks the (stopped) sealer to hand the volume over, which it does once
# it goes on, in the middle of sealing.
for v in vol evol; do
  h=$(head_of "$v")
  fresh "$v" "3$v"
  create_stopped "$v" s3
  id=$(jq -r .id <<<"$json")
  write_while_pending "$v" "$v@s3" 3 >"$tmp/w.out" 2>"$tmp/w.err" &
  writer=$!
  sleep 0.3
  kill -CONT "$sealer"
  wait "$writer" && st=0 || st=$?
  is "$st" 0 "$v: writes through NBD during its snapshot's seal: the open did not fail"
  [ "$st" = 0 ] || sed 's/^/#   /' "$tmp/w.err"
  raced=$(cat "$tmp/w.out")
  check "  $raced of them while the snapshot was pending" -- test "${raced:-0}" -gt 0
  like "$(cat "$h/sealer.log")" "snapshot $id handed over, pending, to process $server_pid" \
    "  the sealer handed it over to the server"
  check "  the snapshot becomes available" -- wait_sealed
  is "$(export_sum "$(uri "$v@s3")")" "$img_sum" \
    "  none of the writes reached the snapshot: it is the volume at its point in time"
  is "$(export_sum "$(uri "$v")")" "$(sha256sum < "$tmp/$v.model" | cut -d' ' -f1)" \
    "  and the volume has every write"
  check "  it verifies" -- quietly xs verify "$v@s3"
  : > "$h/sealer.log"
done

fresh vol 4
watch_pending s4 "$tmp/s4.pid"
xs --json snapshot create vol --name s4 --wait >"$tmp/s4.json" 2>"$tmp/s4.err" &
waiter=$!
wait "$watcher"
write_while_pending vol vol@s4 4 >"$tmp/w.out" 2>/dev/null &
writer=$!
sleep 0.3
kill -CONT "$(cat "$tmp/s4.pid")"
wait "$writer"
wait "$waiter" && st=0 || st=$?
is "$st" 0 "--wait follows a snapshot handed over to the server until it is sealed"
[ "$st" = 0 ] || sed 's/^/#   /' "$tmp/s4.err"
is "$(jq -r .status "$tmp/s4.json")" available "  it prints it available"
is "$(export_sum "$(uri vol@s4)")" "$img_sum" \
  "  and it is right ($(cat "$tmp/w.out") writes raced with it)"

# 4. A second snapshot while the sealer seals waits for the first.
fresh vol 5
create_stopped vol s5
xs --json snapshot create vol --name s6 >"$tmp/s6.json" &
second=$!
sleep 0.3
check "a second create waits while the first is sealing, as for an attached volume" -- \
  kill -0 "$second"
kill -CONT "$sealer"
wait "$second"
is "$(status_of vol@s5)" available "  until the first is sealed"
like "$(jq -r .status "$tmp/s6.json")" "pending|available" "  then returns the second"
is "$(holder "$head")" "$sealer" "  taken by the same sealer"
check "  which seals it too" -- wait_sealed
is "$(export_sum "$(uri vol@s6)")" "$img_sum" "  the second is right"
out=$(xs snapshot create vol --name s6 2>&1) && st=0 || st=$?
is "$st" 1 "a refused snapshot (its name is taken) fails the command"
like "$out" "snapshot 'vol@s6' already exists" "  with the sealer's reason"
wait_free "$head"
is "$(pending_count)" 0 "  and leaves nothing pending"

# 5. kill -9 of the sealer.
kill_check () {                 # kill_check NAME PHASE
  local st
  st=$(status_of "vol@$1")
  diag "killed $2: the snapshot is '$st'"
  if [ "$st" = available ]; then
    is "$(export_sum "$(uri "vol@$1")")" "$img_sum" "killed $2: the snapshot is complete and right"
  else
    ok 0 "killed $2: the snapshot is not available ($st)"
  fi
  is "$(export_sum "$(uri vol)")" "$img_sum" "  the volume opens, with its data"
  is "$(pending_count)" 0 "  its next owner removed the pending record"
  json=$(xs --json snapshot create vol --name "after-$1" --wait)
  is "$(jq -r .status <<<"$json")" available "  the next snapshot succeeds"
  is "$(export_sum "$(uri "vol@after-$1")")" "$img_sum" "  and is right"
}

# As it takes the point in time: killed as soon as it owns the volume.
fresh vol 6
python3 - "$xsnap" "$head/lock" >"$tmp/k.out" <<'PY'
import os, signal, subprocess, sys, time
xsnap, lock = sys.argv[1:]
before = open(lock).read()
p = subprocess.Popen([xsnap, "snapshot", "create", "vol", "--name", "k1", "--wait"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
end = time.time() + 10
while time.time() < end:
    now = open(lock).read()
    if now != before and now.strip():
        os.kill(int(now.split()[0]), signal.SIGKILL)
        break
p.wait()
print(p.returncode, p.stderr.read().decode().strip().replace("\n", " "))
PY
read -r st why < "$tmp/k.out"
is "$st" 1 "killed as it takes the point in time: create --wait fails"
like "$why" "(ended before it reported the snapshot|its sealer \\(pid [0-9]+\\) died)" \
  "  saying the sealer ended"
kill_check k1 "as it took the point in time"

# While sealing (stopped as soon as the command returned, then killed).
fresh vol 7
create_stopped vol k2
kill -9 "$sealer"
for _ in $(seq 100); do gone "$sealer" && break; sleep 0.05; done
is "$(status_of vol@k2)" pending "killed while sealing: the snapshot stays pending"
like "$(xs verify vol@k2 2>&1)" "no longer runs: it will never be available" \
  "  and is said to be dead"
kill_check k2 "while sealing"

# Under a command waiting for it (stopped as soon as it is pending, which
# may be before it told the command so, then killed).
fresh vol 8
watch_pending k3 "$tmp/k3.pid"
xs --json snapshot create vol --name k3 --wait >/dev/null 2>"$tmp/k3.err" &
waiter=$!
wait "$watcher"
sealer=$(cat "$tmp/k3.pid")
kill -9 "$sealer"
wait "$waiter" && st=0 || st=$?
is "$st" 1 "killed under a waiting create --wait: it fails"
like "$(cat "$tmp/k3.err")" "(will never be available: its sealer \\(pid $sealer\\) died|ended before it reported the snapshot)" \
  "  saying the sealer ended"
kill_check k3 "under a waiting command"

# While a server waits for it to hand the volume over (stopped, then
# killed instead of going on): the open goes on without it.
fresh vol 9
create_stopped vol k4
write_while_pending vol vol@k4 9 >"$tmp/w.out" 2>"$tmp/w.err" &
writer=$!
sleep 0.3
kill -9 "$sealer"
wait "$writer" && st=0 || st=$?
is "$st" 0 "killed while a server waited for its handover: the server's open did not fail"
[ "$st" = 0 ] || sed 's/^/#   /' "$tmp/w.err"
is "$(status_of vol@k4)" none "  the server, the volume's next owner, removed the snapshot"
is "$(export_sum "$(uri vol)")" "$(sha256sum < "$tmp/vol.model" | cut -d' ' -f1)" \
  "  and the volume has every write"
json=$(xs --json snapshot create vol --name after-k4 --wait)
is "$(jq -r .status <<<"$json")" available "  the next snapshot succeeds"
is "$(export_sum "$(uri vol@after-k4)")" "$(sha256sum < "$tmp/vol.model" | cut -d' ' -f1)" \
  "  and is right"

check "gc afterwards, and everything verifies" -- \
  bash -c "$xsnap -q gc && for s in \$($xsnap --json snapshot list | jq -r '.snapshots[].id'); do $xsnap -q verify \$s || exit 1; done"
stop_server "$server_pid"
done_testing
