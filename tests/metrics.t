#!/usr/bin/env bash
# xsnap metrics, xsnap status and the daemon's /metrics: the text
# exposition format passes promtool; --output replaces its file
# atomically; volumes say whether they are attached, whether their
# changed-block maps are trusted (a server killed with -9 leaves one that
# is not, seen without opening the volume) and how much changed; a copy
# task's RPO lag rises while its destination is unreachable and falls
# after the next successful copy; gc and verify record their last runs;
# the daemon serves GET /metrics over HTTP and 404 elsewhere.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
# The value of the sample NAME{LABELS} (LABELS as printed, a regex part).
value () {                      # value TEXT NAME LABEL-REGEX
  grep -E "^$2\\{[^}]*$3[^}]*\\} " <<<"$1" | head -1 | awk '{print $2}'
}
lag () { value "$(xs metrics)" xsnap_copy_task_rpo_lag_seconds 'volume="db"'; }
greater () { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
have_promtool=false
command -v promtool >/dev/null && have_promtool=true
promtool_ok () {                # promtool_ok FILE DESCRIPTION
  if $have_promtool; then
    check "$2" -- promtool check metrics < "$1"
    [ "$tap_failed" = 0 ] || promtool check metrics < "$1" 2>&1 | sed 's/^/# /'
  else
    ok 0 "$2 # SKIP promtool is not installed (Debian package prometheus)"
  fi
}

xs init -q
xs account create alice -q
xs region add dr -q
xs --account alice volume create db --size 8M --block-size 64K -q
xs --account alice volume create idle --size 4M -q

# Data, and a snapshot of it.
start_server w1 account=alice
nbdsh -u "$(uri db)" -c 'h.pwrite(b"\x11" * (1 << 20), 0); h.flush()'
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q

xs metrics > "$tmp/m1.prom"
promtool_ok "$tmp/m1.prom" "xsnap metrics passes promtool check metrics"
m=$(cat "$tmp/m1.prom")
like "$m" "# TYPE xsnap_volume_attached gauge" "families have their TYPE"
is "$(value "$m" xsnap_volume_attached 'volume="db"')" 0 "db is not attached"
is "$(value "$m" xsnap_volume_cbt_trusted 'volume="db"')" 1 "db's map is trusted"
is "$(value "$m" xsnap_volume_changed_bytes 'volume="db"')" 0 \
   "nothing changed since s1"
check "its last snapshot is seconds old" -- \
  greater 60 "$(value "$m" xsnap_volume_last_snapshot_age_seconds 'volume="db"')"
check "the repository stored what s1 stored" -- \
  greater "$(value "$m" xsnap_repository_stored_bytes 'account="alice",region="local"')" 0
like "$m" $'\nxsnap_snapshots_pending 0\n' "no snapshot is pending"
like "$m" 'xsnap_jobs\{state="failed"\} 0' "jobs by state, failed 0"

# Attached (a client connected), with changes: as of the last flush.
start_server w2 account=alice
nbdsh -u "$(uri db)" -c "
import time
h.pwrite(b'\x22' * 65536, 2 << 20)
h.flush()
open('$tmp/flushed', 'w').close()
time.sleep(60)" &
client=$!
started_pids+=("$client")
for _ in $(seq 100); do [ -e "$tmp/flushed" ] && break; sleep 0.1; done
m=$(xs metrics)
is "$(value "$m" xsnap_volume_attached 'volume="db"')" 1 "db is attached while served"
is "$(value "$m" xsnap_volume_changed_bytes 'volume="db"')" 65536 \
   "one changed block, as of the last flush"
out=$(xs status)
like "$out" "attached +1" "status counts one attached volume"
like "$out" "alice/local db \\(vol-[0-9a-f]+\\): 64K changed" "... and names it"

# kill -9: the map stays open; seen without opening the volume.
kill -9 "$server_pid"
for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
kill "$client" 2>/dev/null || true
m=$(xs metrics)
is "$(value "$m" xsnap_volume_attached 'volume="db"')" 0 "after kill -9, not attached"
is "$(value "$m" xsnap_volume_cbt_trusted 'volume="db"')" 0 \
   "... and its map is no longer trusted (an unclean stop)"
is "$(value "$m" xsnap_volume_changed_bytes 'volume="db"')" 8388608 \
   "... so everything counts as changed"
is "$(xs --json status | jq -r '.cbt_untrusted[0].volume + ": " + .cbt_untrusted[0].reason')" \
   "db: the volume was not closed cleanly (unclean stop): changes after its last flush may be missing from the map" \
   "status --json names it with the reason"
xs --account alice snapshot create db --wait --name s2 -q
is "$(value "$(xs metrics)" xsnap_volume_cbt_trusted 'volume="db"')" 1 \
   "a snapshot that compared every block trusts it again"

# gc and verify record their runs; gc counts the chunks it kept.
xs gc -q
xs --account alice verify db@s2 -q
m=$(xs metrics)
is "$(value "$m" xsnap_gc_last_run_success 'region="local"')" 1 "gc's last run succeeded"
check "... and it has a time" -- \
  greater "$(value "$m" xsnap_gc_last_run_timestamp_seconds 'region="local"')" 1000000000
is "$(value "$m" xsnap_repository_chunks 'account="alice",region="local"')" 2 \
   "gc counted alice's 2 chunks"
is "$(value "$m" xsnap_verify_last_run_success 'account="alice",region="local"')" 1 \
   "verify's last run found nothing wrong"
is "$(value "$m" xsnap_verify_last_run_damaged 'account="alice",region="local"')" 0 \
   "... nothing damaged"

# A policy copying to region dr.
now=$(date +%s)
at () { XSNAP_NOW=$(( now + $1 )) "$xsnap" "${@:2}"; }
xs --account alice policy create p --every 1h --retain 3 -q
xs --account alice policy attach p db -q
xs --account alice policy copy-to p --account alice --region dr -q
at 0 --account alice policy run-due -q
m=$(xs metrics)
is "$(value "$m" xsnap_copy_task_failing 'dest_region="dr"')" 0 "the task's copy succeeded"
lag0=$(lag)
check "the RPO lag is small after the copy ($lag0 s)" -- greater 30 "$lag0"

# The destination becomes unreachable: the lag rises.
repo=$store/regions/dr/repo
mv "$repo" "$repo.away"
echo "not a repository" > "$repo"
sleep 1.2
at 3600 --account alice policy run-due -q 2>/dev/null || true
m=$(xs metrics)
is "$(value "$m" xsnap_copy_task_failing 'dest_region="dr"')" 1 \
   "the task's last copy failed"
check "its last failure has a time" -- \
  greater "$(value "$m" xsnap_copy_task_last_failure_timestamp_seconds 'dest_region="dr"')" 0
is "$(xs --account alice --json policy tasks \
        | jq -r '.copy_to_other_accounts[0] | (.last_failure != "") and (.last_error != "")')" \
   true "policy tasks --json says when and why it failed"
lag1=$(lag)
check "the lag rose while the destination is unreachable ($lag0 -> $lag1 s)" -- \
  greater "$lag1" "$lag0"
sleep 1.2
lag2=$(lag)
check "... and keeps rising ($lag2 s)" -- greater "$lag2" "$lag1"
is "$(xs --json status | jq -r '.tasks_behind | length')" 0 \
   "(two periods have not passed: no task is behind yet)"

# Reachable again: the next copy brings the lag down.
rm "$repo"
mv "$repo.away" "$repo"
at 7200 --account alice policy run-due -q
lag3=$(lag)
check "the lag fell after the next successful copy ($lag2 -> $lag3 s)" -- \
  greater "$lag2" "$lag3"
is "$(value "$(xs metrics)" xsnap_copy_task_failing 'dest_region="dr"')" 0 \
   "the task is no longer failing"

# A task behind its schedule: more than two periods since its newest copy.
out=$(XSNAP_NOW=$(( now + 3 * 3600 )) "$xsnap" --json status)
is "$(jq -r '.tasks_behind[0].policy + " " + .tasks_behind[0].dest_region' <<<"$out")" \
   "p dr" "status names a task whose newest copy is over two periods old"
like "$(XSNAP_NOW=$(( now + 3 * 3600 )) "$xsnap" status)" "tasks behind +1" \
   "... in its table too"

# --output: replaced atomically, nothing left beside it.
mkdir "$tmp/textfile"
echo old > "$tmp/textfile/xsnap.prom"
check "metrics --output writes the file" -- xs metrics --output "$tmp/textfile/xsnap.prom"
promtool_ok "$tmp/textfile/xsnap.prom" "... which passes promtool"
is "$(ls "$tmp/textfile")" "xsnap.prom" "... and leaves no temporary file"
is "$(stat -c %a "$tmp/textfile/xsnap.prom")" 644 "... readable by the collector"
check "metrics --output into a missing folder fails" -- \
  fails xs metrics --output "$tmp/nowhere/x.prom"

# Only the administrator (or whom it allows) reads the store's metrics.
check "alice may not read the store's metrics" -- fails xs --account alice metrics
like "$(err)" "permission denied" "... a permission"
check "nor its status" -- fails xs --account alice status

# The daemon's listener.
"$xsnap" daemon --interval 3600 --metrics-listen 127.0.0.1:0 \
  > "$tmp/daemon.out" 2>&1 &
daemon=$!
started_pids+=("$daemon")
for _ in $(seq 100); do
  grep -q 'metrics on http' "$tmp/daemon.out" && break
  sleep 0.1
done
url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$tmp/daemon.out" | head -1)
like "$url" '^http://127\.0\.0\.1:[0-9]+/metrics$' "the daemon says where it serves metrics"
curl -s -D "$tmp/headers" -o "$tmp/scrape.prom" "$url"
like "$(head -1 "$tmp/headers")" '^HTTP/1\.1 200 OK' "GET /metrics: 200"
like "$(cat "$tmp/headers")" $'Content-Type: text/plain; version=0\\.0\\.4' \
   "... text/plain; version=0.0.4"
like "$(cat "$tmp/scrape.prom")" 'xsnap_copy_task_rpo_lag_seconds\{' \
   "... with the metrics"
promtool_ok "$tmp/scrape.prom" "... which pass promtool"
is "$(curl -s -o /dev/null -w '%{http_code}' "${url%/metrics}/other")" 404 \
   "another path: 404"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url")" 405 "POST: 405"
is "$(curl -s -I -o /dev/null -w '%{http_code}' "$url")" 200 "HEAD: 200"
is "$(printf 'nonsense\r\n\r\n' | timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.stdin.buffer.read())
print(s.recv(100).decode().split("\r\n")[0])' "$(sed 's|.*:\([0-9]*\)/metrics|\1|' <<<"$url")")" \
   "HTTP/1.1 400 Bad Request" "a request that is not HTTP: 400"
# A client that sends nothing does not stop others for long.
python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(8)' "$(sed 's|.*:\([0-9]*\)/metrics|\1|' <<<"$url")" &
idle=$!
sleep 0.3
is "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url")" 200 \
   "a scrape behind an idle client is answered"
kill "$idle" 2>/dev/null || true
kill -TERM "$daemon"
status=0; wait "$daemon" || status=$?
is "$status" 0 "the daemon stops on SIGTERM, exit 0"
check "a refused listener stops the daemon from starting" -- \
  fails xs --account alice daemon --metrics-listen 127.0.0.1:0
check "a bad address is refused" -- fails xs daemon --metrics-listen nonsense
like "$(err)" "expected ADDR:PORT" "... saying what it takes"

done_testing
