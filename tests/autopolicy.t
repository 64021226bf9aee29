#!/usr/bin/env bash
# Automatic snapshot policies and their copy tasks: a policy snapshots
# its volumes when due (an injected clock steps through the schedule),
# keeps the newest N, copies each snapshot to a collaborator (the first
# in full, later ones sending only new chunks) and keeps N copies there;
# the destination lists and may delete its incoming task; deleting the
# policy stops everything; a served volume is snapshotted by its owner;
# the daemon runs what is due and stops on SIGTERM.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
now=$(date +%s)
at () { XSNAP_NOW=$(( now + $1 )) "$xsnap" "${@:2}"; }    # at SECONDS CMD...
autos () {                      # autos ACCOUNT: its auto snapshot names
  xs --account "$1" --json snapshot list \
    | jq -r '[.snapshots[] | .name] | join(" ")'
}
count () { xs --account "$1" --json snapshot list | jq '.snapshots | length'; }

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q
xs account create bob -q
xs --account alice volume create db --size 4M --block-size 64K -q
random_file "$tmp/a.img" 4 5
start_server w account=alice
quietly nbdcopy "$tmp/a.img" "$(uri db)"
stop_server "$server_pid"

# Refusals when creating.
check "an interval and a time of day are refused together" -- \
  fails xs --account alice policy create p --every 1h --daily 01:00 \
    --retain 1
check "a bad interval is refused" -- \
  fails xs --account alice policy create p --every 5s --retain 1
check "a bad time of day is refused" -- \
  fails xs --account alice policy create p --daily 25:00 --retain 1
check "retain is required" -- \
  fails xs --account alice policy create p --every 1h

xs --account alice policy create hourly --every 1h --retain 2 -q
xs --account alice policy attach hourly db -q
check "attaching twice is refused" -- \
  fails xs --account alice policy attach hourly db

# Copy tasks: collaborators only, and not against a deny.
check "a copy task to an account outside the organisation is refused" -- \
  fails at 0 --account alice policy copy-to hourly --account bob
like "$(cat "$tmp/err")" "not a collaborator" "... saying why"
cat > "$tmp/deny.json" <<'EOF'
{"version": "2.0", "statement": [{"effect": "deny",
  "action": "xsnap:CopyAutoSnapshotPolicyCrossAccount", "resource": "*"}]}
EOF
xs policy-doc attach alice "$tmp/deny.json" -q
check "a denied copy task is refused" -- \
  fails xs --account alice policy copy-to hourly --account carol
like "$(cat "$tmp/err")" "permission denied" "... as a permission"
xs policy-doc detach alice deny -q
xs --account alice policy copy-to hourly --account carol --retain 1 -q
is "$(xs --account alice --json policy tasks --outgoing \
        | jq -r '.copy_to_other_accounts[0].destination.account')" carol \
   "the source lists its outgoing task"
task=$(xs --account carol --json policy tasks --incoming \
         | jq -r '.copy_to_my_account[0].id')
like "$task" "^task-" "the destination lists its incoming task"

# First pass: a snapshot, copied in full.  (The clock starts after the
# policy's volume was attached.)
now=$(( $(date +%s) + 2 ))
out=$(at 0 policy run-due)
like "$out" "policy hourly: snapshot db@hourly-" "the first pass snapshots"
full=$(grep -o '[0-9]* of [0-9]* chunks sent' <<<"$out" || true)
like "$full" "^64 of 64 chunks" "and copies every chunk the first time"
is "$(xs --account alice --json snapshot list \
        | jq -r '.snapshots[0].creation_method')" auto \
   "the snapshot's creation method is auto"
is "$(at 60 policy run-due)" "" "a minute later nothing is due"

# Second pass an hour on, after a small change: only it travels.
start_server w2 account=alice
nbdsh -u "$(uri db)" -c 'h.pwrite(b"\x11" * 65536, 0); h.flush()'
stop_server "$server_pid"
out=$(at 3601 policy run-due)
like "$(grep -o '[0-9]* of [0-9]* chunks sent' <<<"$out" || true)" \
  "^1 of 64 chunks" \
  "the next copy sends only the changed chunk"
like "$out" "retention: deleted .* of account carol" \
  "carol keeps one copy"
at 7202 policy run-due >/dev/null
is "$(count alice)" 2 "alice keeps the newest two snapshots"
is "$(count carol)" 1 "carol keeps the newest copy"
latest=$(xs --account alice --json snapshot list \
           | jq -r '.snapshots[-1].id')
copy=$(xs --account carol --json snapshot list | jq -r '.snapshots[0].id')
start_server ra account=alice
a_sum=$(export_sum "$(uri "$latest")")
stop_server "$server_pid"
start_server rc account=carol
is "$(export_sum "$(uri "$copy")")" "$a_sum" \
  "the copy is byte-identical to the newest snapshot"
stop_server "$server_pid"

# The destination deletes its incoming task: copies stop, snapshots go on.
check "the destination deletes the incoming task" -- \
  quietly xs --account carol policy task-delete "$task"
out=$(at 10803 policy run-due)
like "$out" "policy hourly: snapshot" "the policy still snapshots"
check "but no longer copies" -- test "$(grep -c copied <<<"$out" || true)" = 0

# A served volume is snapshotted by its owner.
start_server served account=alice
holder=$(hold_open "$(uri db)")
out=$(at 14404 policy run-due)
like "$out" "policy hourly: snapshot" "a served volume is snapshotted"
is "$(xs --account alice --json snapshot list \
        | jq -r '.snapshots[-1].status')" available \
   "through its owner, and sealed"
kill "$holder"
stop_server "$server_pid"

# Daily at a time of day: due at the next HH:MM, once a day.
xs --account alice volume create logs --size 1M -q
hhmm=$(date -u -d "@$(( now + 7200 ))" +%H:%M)
xs --account alice policy create nightly --daily "$hhmm" --retain 3 -q
xs --account alice policy attach nightly logs -q
check "a daily policy is not due before its time" -- \
  test -z "$(at 3600 policy run-due | grep nightly || true)"
like "$(at 7300 policy run-due)" "policy nightly: snapshot logs@" \
  "it runs at its time"
check "and not again the same day" -- \
  test -z "$(at 9000 policy run-due | grep nightly || true)"

# Deleting the policy stops it.
xs --account alice policy delete hourly -q
before=$(count alice)
at 30000 policy run-due | grep -v nightly >/dev/null || true
is "$(xs --account alice --json snapshot list \
        | jq '[.snapshots[] | select(.name | startswith("hourly"))] | length')" \
   2 "a deleted policy takes no more snapshots (its last two stay)"
is "$(xs --account alice --json policy list | jq length)" 1 \
   "only the daily policy is left"

# The daemon runs what is due and stops on SIGTERM.
xs --account alice policy create often --every 1m --retain 1 -q
xs --account alice volume create tmpvol --size 1M -q
xs --account alice policy attach often tmpvol -q
"$xsnap" daemon --interval 1 >"$tmp/daemon.log" 2>&1 &
daemon=$!
started_pids+=("$daemon")
for _ in $(seq 100); do
  grep -q "policy often: snapshot" "$tmp/daemon.log" && break
  sleep 0.1
done
like "$(cat "$tmp/daemon.log")" "policy often: snapshot tmpvol@" \
  "the daemon took the due snapshot"
kill -TERM "$daemon"
wait "$daemon"
is "$?" 0 "and stopped cleanly on SIGTERM"
like "$(tail -1 "$tmp/daemon.log")" "daemon stopped" "saying so"

done_testing
