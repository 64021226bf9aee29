#!/usr/bin/env bash
# One owner per live volume: while one nbdkit serves a volume to a client,
# a second nbdkit cannot open it, and delete and resize are refused, each
# with a clear message; once the client goes, the volume is free again.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create vol --size 16M
start_server a
pid_a=$server_pid
sock_a=$sock

# A client that stays connected until told to leave.
mkfifo "$tmp/leave"
python3 - "$(uri vol "$sock_a")" "$tmp/ready" "$tmp/leave" <<'PY' &
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"a" * 512, 0); h.flush()
open(sys.argv[2], "w").close()
open(sys.argv[3]).read()
PY
client=$!
for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.1; done

start_server b
names=$(python3 - "nbd+unix:///?socket=$sock" <<'PY'
import nbd, sys
h = nbd.NBD(); h.set_opt_mode(True); h.connect_uri(sys.argv[1])
h.opt_list(lambda name, description: print(name) or 0)
PY
)
is "$names" vol "the second server still lists the volume (NBD_OPT_LIST)"
check "but cannot open it" -- bash -c "! nbdinfo '$(uri vol)' 2>/dev/null"
like "$(cat "$tmp/b.log")" "volume 'vol' is in use by another process \(pid $pid_a\)" \
  "  and its log names the owner's pid"

out=$(xs volume delete vol 2>&1) && status=0 || status=$?
is "$status" 1 "volume delete is refused while attached"
is "$out" "xsnap: volume 'vol' is in use by another process (pid $pid_a)" "  with one clear line"
out=$(xs volume resize vol --size 32M 2>&1) && status=0 || status=$?
is "$status" 1 "volume resize is refused while attached"
like "$out" "in use by another process" "  with a clear message"
is "$(xs --json volume show vol | jq -r .size)" 16777216 "  and the size is unchanged"
is "$(xs --json volume show vol | jq -r .attached)" true "volume show says attached"

echo bye > "$tmp/leave"
wait "$client"
# The owner releases the volume when its last client disconnects.
for _ in $(seq 50); do
  [ "$(xs --json volume show vol | jq -r .attached)" = false ] && break
  sleep 0.1
done
is "$(xs --json volume show vol | jq -r .attached)" false "detached after the client left"
got=$(nbdsh -u "$(uri vol)" -c 'print(h.pread(3, 0).decode())')
is "$got" aaa "the second server can now serve it, with the data"
check "and resize now works" -- xs -q volume resize vol --size 32M
done_testing
