#!/usr/bin/env bash
# No client can take the server down: clients that vanish with requests
# in flight, that send garbage after queueing requests, or that give up at
# the first EIO of a damaged snapshot leave the server running, the other
# clients served, and the volume's changed-block map trusted.
. "$(dirname "$0")/functions.sh"
require_tool nbdkit nbdcopy nbdsh

xs init -q
xs -q volume create v --size 64M --block-size 64K
start_server a
u=$(uri v)
random_file "$tmp/data" 64 1
nbdcopy "$tmp/data" "$u"
want=$(sha256sum <"$tmp/data" | cut -d' ' -f1)

# A second client stays connected to the volume throughout: it must be
# served after every attack.
coproc BYSTANDER { python3 -c '
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
for line in sys.stdin:
    try:
        out = "ok %d" % len(h.pread(65536, 0))
    except Exception as e:
        out = "error %s" % e
    print(out, flush=True)
' "$u" 2>&1; }
started_pids+=("$BYSTANDER_PID")
bystander_reads () {
  local answer=""
  echo read >&"${BYSTANDER[1]}" 2>/dev/null && read -r -t 20 answer <&"${BYSTANDER[0]}"
  printf '%s\n' "${answer:-no answer}"
}
is "$(bystander_reads)" "ok 65536" "a second client is connected and served"

# 2000 reads of 64 KiB queued, then the process exits without waiting:
# the socket closes while replies are being sent.
vanish () {
  python3 - "$1" "$2" <<'PY'
import nbd, os, sys
uri, how = sys.argv[1:3]
h = nbd.NBD(); h.connect_uri(uri)
size = h.get_size()
for i in range(2000):
    h.aio_pread(nbd.Buffer(65536), (i * 65536) % size)
if how == "garbage":
    # A request with a bad magic behind the queued reads: a protocol error.
    import socket
    s = socket.socket(fileno=os.dup(h.aio_get_fd()))
    s.settimeout(0.5)       # the server may not be reading: give up then
    try:
        s.send(b"\xde\xad\xbe\xef" * 7)
    except OSError:
        pass
os._exit(0)
PY
}

alive=0
for i in $(seq 6); do
  vanish "$u" plain || true
  vanish "$u" garbage || true
  kill -0 "$server_pid" 2>/dev/null || { alive=1; break; }
done
ok $alive "the server survives 12 clients that vanish with 2000 reads in flight"
if [ $alive != 0 ]; then diag "server log:"; sed 's/^/#   /' "$tmp/a.log" | tail -5; fi
is "$(bystander_reads)" "ok 65536" "the other client is still served"
is "$(nbdcopy "$u" - | sha256sum | cut -d' ' -f1)" "$want" \
  "the volume reads back what was written"

# A snapshot export with a damaged chunk: nbdcopy stops at the first EIO
# with many requests queued, which is the same hang-up.
xs -q snapshot create v --name s1 --wait
chunk=$(find "$store/regions" -path '*/chunks/*' -type f -print -quit)
printf '\xff' | dd of="$chunk" bs=1 seek=200 conv=notrunc status=none
for i in 1 2 3; do
  nbdcopy --request-size=65536 "$(uri v@s1)" null: 2>/dev/null && break
done
r=0; kill -0 "$server_pid" 2>/dev/null || r=$?
ok $r "the server survives clients that give up at a damaged chunk's EIO"
is "$(bystander_reads)" "ok 65536" "the other client is still served after them"

exec {BYSTANDER[1]}>&-
wait "$BYSTANDER_PID" || true
if stop_server "$server_pid"; then
  ok 0 "the server stops cleanly"
elif [ "${XSNAP_SANITIZE:-0}" = 1 ]; then
  # nbdkit with the ASan runtime preloaded can hang at exit, in glibc's
  # freelocale called by libp11-kit's destructor, after the plugin has
  # closed everything (the map below is clean); builds without ASan stop.
  printf 'ok %d # SKIP nbdkit under ASan hangs in an exit handler\n' \
    $((tap_count += 1))
  kill -9 "$server_pid" 2>/dev/null || true
else
  ok 1 "the server stops cleanly"
fi
json=$(xs diff --live v --json)
is "$(jq -r .trusted <<<"$json")" true \
  "the volume's changed-block map is trusted after the attacks (clean stop)"

# The model can be forced either way (documented in --help).
like "$("${nbdkit_env[@]}" nbdkit "$plugin" --help 2>&1)" "parallel=" "the plugin documents parallel="

done_testing
