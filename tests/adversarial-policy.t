#!/usr/bin/env bash
# Automatic policies under pressure: two passes started together (one
# runs, the other says so and does nothing), retention against copies in
# flight (a copy's incremental base is held; a copy resumed after its
# pass died is still its task's; a task deleted during a pass gets no
# retention), the daemon stopped by SIGTERM in the middle of a slow copy
# (it stops between chunks, the job can be resumed), and a volume's last
# error shown, with its real reason.  Copies to another region go to a
# small S3 server on 127.0.0.1 whose chunk uploads can be slowed down.
. "$(dirname "$0")/functions.sh"

require_tool python3 jq nbdcopy

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
at () { XSNAP_NOW=$(( now + $1 )) "$xsnap" "${@:2}"; }    # at SECONDS CMD...
# policy_snaps ACCOUNT REGION VOLUME: how many of its snapshots there are.
snaps () {
  xs --account "$1" --region "$2" --json snapshot list \
    | jq --arg v "$3" '[.snapshots[] | select(.volume == $v)] | length'
}
fill () {                       # fill VOLUME MIB SEED [REGION]
  random_file "$tmp/fill.img" "$2" "$3"
  start_server fill account=alice ${4:+region=$4}
  quietly nbdcopy "$tmp/fill.img" "$(uri "$1")"
  stop_server "$server_pid"
}
slow () { echo "$1" >"$tmp/delay"; }
jobs_of () {                    # jobs_of STATUS: ids of alice's copy jobs
  xs --account alice --json job list \
    | jq -r --arg s "$1" '.[] | select(.status == $s) | .id'
}
wait_for () {                   # wait_for SECONDS COMMAND...: until true
  local i
  for (( i = 0; i < $1 * 10; i++ )); do "${@:2}" && return 0; sleep 0.1; done
  return 1
}
resume () {                     # resume JOB: job resume, its error kept
  xs --account alice job resume "$1" >/dev/null 2>"$tmp/err" \
    || { diag "$(cat "$tmp/err")"; return 1; }
}
running_job () { [ -n "$(jobs_of running)" ]; }

python3 "$top/tests/fake-s3.py" "$tmp" &
started_pids+=("$!")
wait_for 5 test -s "$tmp/port"
export AWS_ACCESS_KEY_ID=AKTEST AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL AWS_SESSION_TOKEN

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q
xs region add slow -q \
  --backend "s3://bkt/slow?endpoint=http://127.0.0.1:$(cat "$tmp/port")"

# --- Two passes at once: one at a time per store. ---
xs --account alice volume create r1 --size 1M --block-size 64K -q
xs --account alice volume create r2 --size 1M --block-size 64K -q
fill r1 1 1
fill r2 1 2
xs --account alice policy create race --every 1h --retain 5 -q
xs --account alice policy attach race r1 -q
xs --account alice policy attach race r2 -q
xs --account alice policy copy-to race --region slow --retain 5 -q
now=$(( $(date +%s) + 2 ))
slow 0.3
XSNAP_NOW=$(( now + 0 )) "$xsnap" policy run-due >"$tmp/a.out" 2>&1 &
first=$!
sleep 0.5
at 1 policy run-due >"$tmp/b.out" 2>&1 && second=0 || second=$?
wait "$first" && st=0 || st=$?
is "$st" 0 "the first pass succeeds"
is "$second" 0 "a second pass while one runs exits cleanly"
like "$(cat "$tmp/b.out")" "another policy pass is running \(pid $first\)" \
  "... saying that another pass (and which) is running"
is "$(( $(snaps alice local r1) + $(snaps alice local r2) ))" 2 \
  "one snapshot of each volume for the period, not two"
is "$(( $(snaps alice slow r1) + $(snaps alice slow r2) ))" 2 \
  "and one copy of each"
# The same again with one clock: the loser records no error.
XSNAP_NOW=$(( now + 3600 )) "$xsnap" policy run-due >"$tmp/a.out" 2>&1 &
first=$!
sleep 0.5
at 3600 policy run-due >"$tmp/b.out" 2>&1 || true
wait "$first" || true
errors=$(xs --account alice --json policy list \
           | jq -r '[.[] | select(.name == "race") | (.attachments // [])[]
                     | .last_error] | join("|")')
is "$errors" "|" "no volume of the policy records an error after the race"
is "$(( $(snaps alice local r1) + $(snaps alice local r2) ))" 4 \
  "the next period took one more snapshot of each"
slow 0
xs --account alice policy delete race -q

# --- An encrypted volume with --retain 1: the copy's base is held. ---
xs --account alice key create k -q
xs --account carol key create kc -q
xs --account alice volume create ev --size 4M --block-size 64K --encrypt \
  --key k -q
fill ev 4 3
xs --account alice policy create enc --every 1h --retain 1 -q
xs --account alice policy attach enc ev -q
xs --account alice policy copy-to enc --account carol --retain 1 -q
now=$(( $(date +%s) + 2 ))
out=$(at 0 policy run-due)
like "$out" "64 of 64 chunks sent" "the first copy of an encrypted volume is full"
start_server w account=alice
nbdsh -u "$(uri ev)" -c 'h.pwrite(b"\x22" * 65536, 0); h.flush()'
stop_server "$server_pid"
out=$(at 3600 policy run-due)
like "$out" "copied ev@enc-.* 1 of 64 chunks sent" \
  "with --retain 1 the next copy sends only the changed chunk"
is "$(snaps alice local ev)" 1 "the source keeps one snapshot"
is "$(snaps carol local ev)" 1 "the destination keeps one copy"
xs --account alice policy delete enc -q

# --- A copy resumed after its pass died still belongs to its task. ---
xs --account alice volume create rv --size 1M --block-size 64K -q
fill rv 1 4
xs --account alice policy create res --every 1h --retain 5 -q
xs --account alice policy attach res rv -q
xs --account alice policy copy-to res --region slow --retain 2 -q
now=$(( $(date +%s) + 2 ))
at 0 policy run-due >/dev/null
fill rv 1 40
slow 1
XSNAP_NOW=$(( now + 3600 )) "$xsnap" policy run-due >/dev/null 2>&1 &
pass=$!
wait_for 20 running_job
job=$(jobs_of running)
kill -KILL "$pass"
wait "$pass" 2>/dev/null || true
slow 0
check "the copy of the killed pass is resumed" -- \
  resume "$job"
at 7200 policy run-due >/dev/null
at 10800 policy run-due >/dev/null
is "$(snaps alice slow rv)" 2 \
  "the destination keeps 2 copies, the resumed one counted by its task"
xs --account alice policy delete res -q

# --- A task deleted during a pass gets no retention afterwards. ---
xs --account alice volume create dv --size 1M --block-size 64K -q
fill dv 1 5
xs --account alice policy create del --every 1h --retain 5 -q
xs --account alice policy attach del dv -q
xs --account alice policy copy-to del --account carol --region slow \
  --retain 1 -q
now=$(( $(date +%s) + 2 ))
at 0 policy run-due >/dev/null
is "$(snaps carol slow dv)" 1 "carol has the first copy"
fill dv 1 50
task=$(xs --account carol --json policy tasks --incoming \
         | jq -r '.copy_to_my_account[0].id')
slow 0.3
XSNAP_NOW=$(( now + 3600 )) "$xsnap" policy run-due >"$tmp/pass.out" 2>&1 &
pass=$!
wait_for 20 running_job
quietly xs --account carol policy task-delete "$task"
wait "$pass" || true
slow 0
is "$(snaps carol slow dv)" 2 \
  "after carol deleted the task, the pass deleted none of her copies"
xs --account alice policy delete del -q

# --- SIGTERM stops the daemon in the middle of a slow copy. ---
xs --account alice volume create sv --size 4M --block-size 64K -q
fill sv 4 6
xs --account alice policy create sig --every 1h --retain 5 -q
xs --account alice policy attach sig sv -q
xs --account alice policy copy-to sig --region slow --retain 5 -q
slow 0.5
"$xsnap" daemon --interval 1 >"$tmp/daemon.log" 2>&1 &
daemon=$!
started_pids+=("$daemon")
check "the daemon starts a copy" -- wait_for 20 running_job
job=$(jobs_of running)
sleep 0.5
t0=$(date +%s%N)
kill -TERM "$daemon"
wait "$daemon" && st=0 || st=$?
elapsed=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$st" 0 "the daemon exits cleanly on SIGTERM during a copy"
check "within 3 s, not after the whole copy ($elapsed ms)" -- \
  test "$elapsed" -lt 3000
like "$(tail -1 "$tmp/daemon.log")" "daemon stopped" "saying so"
info=$(xs --account alice --json job list \
         | jq -r --arg j "$job" '.[] | select(.id == $j)
                                | .status + ": " + .error')
like "$info" "^failed: .*stopped" "its copy is failed, saying it was stopped"
slow 0
check "the stopped copy can be resumed" -- resume "$job"
is "$(snaps alice slow sv)" 1 "and then the copy is there"
xs --account alice policy delete sig -q

# --- A volume's last error: shown, with its real reason. ---
mkdir "$tmp/tiny"
if mount -t tmpfs -o size=256k tmpfs "$tmp/tiny" 2>/dev/null; then
  at_exit "umount '$tmp/tiny'"
  xs region add tiny --backend "file://$tmp/tiny/r" -q
  xs --account alice --region tiny volume create fv --size 2M \
    --block-size 64K -q
  fill fv 2 7 tiny
  xs --account alice --region tiny policy create full --every 1h \
    --retain 1 -q
  xs --account alice --region tiny policy attach full fv -q
  now=$(( $(date +%s) + 2 ))
  check "a pass that cannot snapshot fails" -- fails at 0 policy run-due
  err=$(xs --account alice --region tiny --json policy list \
          | jq -r '.[0].attachments[0].last_error // ""')
  like "$err" "No space left on device" \
    "policy list shows the volume's last error, with the real reason"
  like "$(xs --account alice --region tiny policy show full)" \
    "fv .*No space left on device" "so does policy show"
  # The same through the volume's owner, a server holding it open.
  start_server tiny account=alice region=tiny
  holder=$(hold_open "$(uri fv)")
  check "a pass that cannot snapshot a served volume fails" -- \
    fails at 3600 policy run-due
  kill "$holder"
  # (Under ASan the server may outlive a failed seal on a full disk.)
  stop_server "$server_pid" || kill -KILL "$server_pid"
  err=$(xs --account alice --region tiny --json policy list \
          | jq -r '.[0].attachments[0].last_error // ""')
  like "$err" "No space left on device" \
    "... and records the real reason too"
else
  ok 0 "# SKIP cannot mount a small tmpfs here"
  ok 0 "# SKIP cannot mount a small tmpfs here"
  ok 0 "# SKIP cannot mount a small tmpfs here"
  ok 0 "# SKIP cannot mount a small tmpfs here"
  ok 0 "# SKIP cannot mount a small tmpfs here"
fi

done_testing
