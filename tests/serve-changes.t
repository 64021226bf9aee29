#!/usr/bin/env bash
# serve-changes: one read-only NBD export of a snapshot whose
# qemu:dirty-bitmap:NAME context marks exactly the blocks `xsnap diff`
# lists since another (or, with --live, a detached volume's blocks
# changed since its last snapshot), as QEMU's incremental backups read
# them.  The data read is the snapshot's; an account that may not read
# it is refused; the servers it starts stop with it, and what it made is
# removed.
. "$(dirname "$0")/functions.sh"

require_tool qemu-nbd qemu-img nbdkit nbdcopy nbdinfo nbdsh jq

export TMPDIR=$tmp/work          # where serve-changes makes its directory
mkdir -p "$TMPDIR"

# changes NAME ARGS...: run serve-changes in the background until it
# says where it serves; sets $changes_pid and $changes_uri.
changes () {
  local name=$1; shift
  # Under SANITIZE=1 the nbdkit it starts needs the sanitizers preloaded.
  "${nbdkit_env[@]}" "$xsnap" --json serve-changes "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  changes_pid=$!
  started_pids+=("$changes_pid")
  for _ in $(seq 300); do
    changes_uri=$(jq -r .uri "$tmp/$name.out" 2>/dev/null) && [ -n "$changes_uri" ] \
      && [ "$changes_uri" != null ] && return 0
    kill -0 "$changes_pid" 2>/dev/null || break
    sleep 0.05
  done
  diag "serve-changes did not start:"; sed 's/^/#   /' "$tmp/$name.err"
  return 1
}
# The blocks (of 64K) the dirty runs of CONTEXT at URI cover.
dirty_blocks () {
  nbdinfo --map="$2" --json "$1" \
    | jq -r '[.[] | select(.type == 1)
        | range(.offset / 65536 | floor; ((.offset + .length - 1) / 65536 | floor) + 1)]
        | map(tostring) | join(" ")'
}
diff_blocks () { xs diff --format=blocks "$@" | tr '\n' ' ' | sed 's/ $//'; }
# Whether the process PID, and every child it had, has ended.
all_gone () {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 1; done
  return 0
}
wait_gone () { for _ in $(seq 100); do all_gone "$@" && return 0; sleep 0.1; done; return 1; }

xs init -q
xs -q volume create v --size 64M --block-size 64K
random_file "$tmp/data" 16 changes
start_server a
nbdcopy "$tmp/data" "$(uri v)"
stop_server "$server_pid"
xs -q snapshot create v --name a --wait
start_server a2
a_sum=$(export_sum "$(uri v@a)")
stop_server "$server_pid"
start_server b
nbdsh -u "$(uri v)" -c '
import os
h.pwrite(os.urandom(200000), 3 * 1048576 + 1000)
h.pwrite(os.urandom(4096), 40 * 1048576)
h.zero(131072, 8 * 1048576)                 # count, offset: data to zeroes
h.trim(65536, 63 * 1048576 + 65536)         # a hole trimmed: no change
h.flush()'
want_sum=$(export_sum "$(uri v)")
stop_server "$server_pid"
xs -q snapshot create v --name b --wait
want_blocks=$(diff_blocks v@a v@b)

# 1. The export: contents of b, its changes since a as the bitmap.
changes main v@b --since v@a --unix "$tmp/changes.sock"
json=$(cat "$tmp/main.out")
is "$(jq -r '[.context, .snapshot, .since, (.changed_blocks | tostring)] | join(" ")' <<<"$json")" \
  "qemu:dirty-bitmap:xsnap v@b v@a $(wc -w <<<"$want_blocks")" \
  "serve-changes v@b --since v@a: says what it serves"
like "$changes_uri" "^nbd\+unix:///\?socket=$tmp/changes.sock$" "  and where"
contexts=$(nbdinfo --json "$changes_uri" | jq -r '.exports[0].contexts | join(" ")')
is "$contexts" "base:allocation qemu:dirty-bitmap:xsnap" \
  "  the export offers base:allocation and the bitmap"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:xsnap)" "$want_blocks" \
  "  the bitmap's dirty runs are exactly the blocks diff lists ($want_blocks)"
is "$(export_sum "$changes_uri")" "$want_sum" "  the data read is b's"
is "$(nbdinfo --json "$changes_uri" | jq '.exports[0].is_read_only')" true \
  "  read-only"
like "$(stat -c %a "$tmp/changes.sock")" "^[0-7]00$" "  on a socket only its owner may use"
kids=$(pgrep -P "$changes_pid" | tr '\n' ' ')
is "$(wc -w <<<"$kids")" 2 "  it runs two servers ($kids)"
kill -TERM "$changes_pid"
wait "$changes_pid" && status=0 || status=$?
is "$status" 0 "SIGTERM: serve-changes exits 0"
# shellcheck disable=SC2086
check "  its servers are gone" -- wait_gone $kids
check "  and its socket" -- test ! -e "$tmp/changes.sock"
is "$(ls -A "$TMPDIR")" "" "  and its work directory"

# 2. Another bitmap name and export name; SIGINT stops it too.
changes named v@b --since v@a --unix "$tmp/named.sock" --bitmap since-a --export v@b
like "$changes_uri" "^nbd\+unix:///v@b\?socket=" "--export v@b names the export"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:since-a)" "$want_blocks" \
  "--bitmap since-a names the context"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:since-a | wc -w)" "$(jq .changed_blocks "$tmp/named.out")" \
  "  and the JSON counts its blocks"
kids=$(pgrep -P "$changes_pid" | tr '\n' ' ')
kill -INT "$changes_pid"
wait "$changes_pid" && status=0 || status=$?
# shellcheck disable=SC2086
check "SIGINT: it exits 0 and its servers are gone" -- \
  eval 'test "$status" = 0 && wait_gone $kids'

# 3. No changes: an empty bitmap; the reverse pair: the same blocks.
changes same v@b --since v@b --unix "$tmp/same.sock"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:xsnap)" "" "b since b: nothing is dirty"
kill "$changes_pid"; wait "$changes_pid" || true
changes back v@a --since v@b --unix "$tmp/back.sock"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:xsnap)" "$want_blocks" \
  "a since b: the same blocks"
is "$(export_sum "$changes_uri")" "$a_sum" "  and a's data"
kill "$changes_pid"; wait "$changes_pid" || true

# 4. Accounts: one that may not read the snapshots is refused, before
# anything starts; once they are shared with it, it is served.
xs -q account create bob
out=$("$xsnap" --account bob serve-changes v@b --since v@a --unix "$tmp/bob.sock" 2>&1) \
  && status=0 || status=$?
like "$status $out" "^1 xsnap: no snapshot 'v@a'" "an account that may not read the snapshots is refused"
check "  and nothing serves" -- test ! -e "$tmp/bob.sock"
a_id=$(xs --json snapshot show v@a | jq -r .id)
b_id=$(xs --json snapshot show v@b | jq -r .id)
out=$("$xsnap" --account bob serve-changes "$b_id" --since "$a_id" --unix "$tmp/bob.sock" 2>&1) \
  && status=0 || status=$?
like "$status $out" "^1 xsnap: no snapshot 'snap-" "  also by id"
for id in "$a_id" "$b_id"; do
  xs -q share "$id" --with bob
  xs -q --account bob share accept \
    "$(xs --account bob --json share list --with-me \
         | jq -r '[.shared_with_me[] | select(.status == "pending")][0].id')"
done
XSNAP_ACCOUNT=bob changes bob "$b_id" --since "$a_id" --unix "$tmp/bob.sock"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:xsnap)" "$want_blocks" \
  "shared with bob: bob is served the changes"
is "$(export_sum "$changes_uri")" "$want_sum" "  and the data"
kill "$changes_pid"; wait "$changes_pid" || true

# 5. --live: a detached volume with its changes since its last
# snapshot, as diff --live lists them.
start_server c
nbdsh -u "$(uri v)" -c '
import os
h.pwrite(os.urandom(70000), 20 * 1048576 + 30000)
h.flush()'
live_sum=$(export_sum "$(uri v)")
holder=$(hold_open "$(uri v)")
out=$("$xsnap" serve-changes --live v --unix "$tmp/live.sock" 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot serve the changes of volume 'v': another process holds it" \
  "--live: an attached volume is refused"
kill "$holder"
stop_server "$server_pid"
live_blocks=$(xs diff --live v --format=blocks | tr '\n' ' ' | sed 's/ $//')
changes live --live v --unix "$tmp/live.sock"
is "$(dirty_blocks "$changes_uri" qemu:dirty-bitmap:xsnap)" "$live_blocks" \
  "--live v: the bitmap is diff --live's blocks ($live_blocks)"
is "$(export_sum "$changes_uri")" "$live_sum" "  the data is the volume's"
start_server d
out=$(nbdinfo --size "$(uri v)" 2>&1) && status=0 || status=$?
check "  which no other server can attach meanwhile" -- test "$status" != 0
stop_server "$server_pid"
kill "$changes_pid"; wait "$changes_pid" || true
is "$(xs --json diff --live v | jq -r '.trusted')" true "  and whose map stays trusted"

# 6. A server that dies ends serve-changes, which stops the other; a
# serve-changes killed outright takes its servers with it.
changes dies v@b --since v@a --unix "$tmp/dies.sock"
kids=$(pgrep -P "$changes_pid" | tr '\n' ' ')
qemu=$(pgrep -P "$changes_pid" qemu-nbd)
kill -KILL "$qemu"
wait "$changes_pid" && status=0 || status=$?
is "$status" 1 "qemu-nbd killed: serve-changes fails"
like "$(cat "$tmp/dies.err")" "xsnap: qemu-nbd \(pid $qemu\) was killed by signal 9" "  saying so"
# shellcheck disable=SC2086
check "  and stops nbdkit" -- wait_gone $kids
changes killed v@b --since v@a --unix "$tmp/killed.sock"
kids=$(pgrep -P "$changes_pid" | tr '\n' ' ')
kill -KILL "$changes_pid"
wait "$changes_pid" 2>/dev/null || true
# shellcheck disable=SC2086
check "serve-changes killed with SIGKILL: its servers stop too" -- wait_gone $kids
rm -rf "$TMPDIR"/xsnap-changes.* "$tmp/killed.sock"

# 7. Usage and refusals.
out=$(xs serve-changes v@b --since v@a 2>&1) && status=0 || status=$?
is "$status" 2 "--unix is required"
out=$(xs serve-changes v@b --unix "$tmp/u.sock" 2>&1) && status=0 || status=$?
is "$status" 2 "one of --since and --live is required"
out=$(xs serve-changes v --live --since v@a --unix "$tmp/u.sock" 2>&1) && status=0 || status=$?
is "$status" 2 "  not both"
touch "$tmp/taken.sock"
out=$(xs serve-changes v@b --since v@a --unix "$tmp/taken.sock" 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot serve on $tmp/taken.sock: it exists" "a socket path that exists is refused"
xs -q volume create w --size 32M --block-size 64K
xs -q snapshot create w --name w0 --wait
out=$(xs serve-changes v@b --since w@w0 --unix "$tmp/u.sock" 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: cannot compare w@w0 and v@b: they differ in size or block size$" \
  "snapshots of different sizes are refused"
is "$(ls -A "$TMPDIR")" "" "refusals leave nothing behind"

done_testing
