#!/usr/bin/env bash
# The S3 backend against a server that misbehaves (tests/fake-s3.py on
# 127.0.0.1): listings whose continuation tokens repeat, cycle, are empty
# or never end are stopped at once with an error naming the listing;
# servers that trickle or hang are given up on within the configured
# timeouts, retries included; an error body's escape sequences and
# control characters never reach the terminal; a refused URL's secrets
# are not echoed; and a read from an S3 region whose server fails reaches
# NBD clients as EIO.
. "$(dirname "$0")/functions.sh"

require_tool python3 nbdsh nbdcopy

fake=$tmp/fake
mkdir "$fake"
python3 "$top/tests/fake-s3.py" "$fake" &
started_pids+=("$!")
for _ in $(seq 50); do [ -s "$fake/port" ] && break; sleep 0.1; done
endpoint=http://127.0.0.1:$(cat "$fake/port")
export AWS_ACCESS_KEY_ID=AKTEST AWS_SECRET_ACCESS_KEY=secret AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL_S3 AWS_ENDPOINT_URL AWS_SESSION_TOKEN AWS_PROFILE

fails () { ! "$@" >/dev/null 2>"$tmp/err"; sed "s/^/# /" "$tmp/err" | cut -c1-400; }
err () { cat "$tmp/err"; }
mode () { printf '%s\n' "$1" >"$fake/mode"; : >"$fake/log"; }
# Listings other than a backend's one-key probe.
listings () { grep -c 'list-type=2&max-keys=1000' "$fake/log" || true; }
# Seconds since the epoch, with a fraction.
now () { date +%s.%N; }
unlike () {                     # unlike GOT REGEX DESCRIPTION
  if [[ $1 =~ $2 ]]; then ok 1 "$3"; diag "got: '$1'"; else ok 0 "$3"; fi
}
within () {                     # within START SECONDS: true if not later
  awk -v s="$1" -v e="$(now)" -v max="$2" 'BEGIN { exit !(e - s <= max) }'
}

xs init -q
mode ok
check "region r1 on the fake server" -- \
  quietly xs region add r1 --backend "s3://bucket/r1?endpoint=$endpoint"
check "region r2 on the fake server" -- \
  quietly xs region add r2 --backend "s3://bucket/r2?endpoint=$endpoint"
xs --region r1 volume create v --size 1M --block-size 64K -q
start_server w region=r1
random_file "$tmp/v.img" 1 s3-faults
nbdcopy "$tmp/v.img" "$(uri v)"
nbdsh -u "$(uri v)" -c 'h.flush()'
stop_server "$server_pid"
check "a snapshot stored in r1" -- quietly xs --region r1 snapshot create v --name s1 --wait

# ----- listings that would never end -----

for m in repeat-token cycle-token; do
  mode "$m"
  start=$(now)
  check "$m: gc fails" -- fails timeout 60 "$xsnap" --region r1 gc
  ok "$(within "$start" 10; echo $?)" "... at once"
  like "$(err)" "cannot list .*s3://bucket/r1.*(repeated|again)" \
       "... naming the listing and the repeated token"
  n=$(listings)
  ok "$([ "$n" -le 4 ]; echo $?)" "... after $n listing requests"
  is "$(grep -c 'token' "$tmp/err")" 1 "... reported once"
done

mode empty-token
check "empty-token: gc fails" -- fails timeout 60 "$xsnap" --region r1 gc
like "$(err)" "cannot list .*s3://bucket/r1.*NextContinuationToken" \
     "... naming the listing and the missing token"
is "$(listings)" 1 "... after one listing request"

mode endless
start=$(now)
check "endless: gc fails" -- fails timeout 120 "$xsnap" --region r1 gc
ok "$(within "$start" 30; echo $?)" "... within the bound on empty pages"
like "$(err)" "cannot list .*s3://bucket/r1.*pages" "... saying why"

mode repeat-token
start=$(now)
check "repeat-token: copy to r2 fails" -- \
  fails timeout 60 "$xsnap" --region r1 copy v@s1 --to-region r2
ok "$(within "$start" 10; echo $?)" "... at once"
like "$(err)" "s3://bucket/r2.*(repeated|again)" "... naming the listing"

# ----- waits -----

mode hang
start=$(now)
check "hang: region add with low-speed-time=1 fails" -- fails timeout 60 \
  "$xsnap" region add h1 --backend "s3://bucket/h1?endpoint=$endpoint&low-speed-time=1&retries=1"
ok "$(within "$start" 8; echo $?)" "... within two low-speed windows and a pause"
like "$(err)" "timed out.*low-speed-time=1" "... naming the low-speed timeout"
is "$(grep -c . "$fake/log")" 2 "... after two attempts"

mode trickle
start=$(now)
check "trickle at 2 bytes/s: region add with timeout=2 fails" -- fails timeout 60 \
  "$xsnap" region add t1 --backend "s3://bucket/t1?endpoint=$endpoint&timeout=2&low-speed-time=60"
ok "$(within "$start" 6; echo $?)" "... within the 2 s deadline"
like "$(err)" "timed out.*timeout=2" "... naming the deadline"

mode hang
start=$(now)
check "hang with retries=10: the deadline bounds all attempts" -- fails timeout 60 \
  "$xsnap" region add h2 --backend "s3://bucket/h2?endpoint=$endpoint&timeout=3&low-speed-time=1&retries=10"
ok "$(within "$start" 7; echo $?)" "... within the 3 s deadline and one pause"
like "$(err)" "timed out" "... saying it timed out"

check "a bad timeout is refused" -- \
  fails xs region add b1 --backend "s3://bucket/b1?endpoint=$endpoint&timeout=0"
like "$(err)" "timeout must be" "... saying what it must be"

# ----- what reaches the terminal -----

mode evil-error
check "evil-error: region add fails" -- \
  fails xs region add e1 --backend "s3://bucket/e1?endpoint=$endpoint"
like "$(err)" "HTTP 403 Evil.*red" "... with the server's code and message"
ok "$(LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/err"; [ $? = 1 ]; echo $?)" \
   "... and no control character"
ok "$(LC_ALL=C grep -q $'\xc2\x9b\|\x9b' "$tmp/err"; [ $? = 1 ]; echo $?)" \
   "... nor an 8-bit CSI"
ok "$([ "$(wc -c <"$tmp/err")" -lt 2048 ]; echo $?)" \
   "... and the message is bounded ($(wc -c <"$tmp/err") bytes)"
mode ok

for url in "s3://bucket/p?endpoint=$endpoint&secret=hunter2" \
           "s3://AKTEST:hunter2@bucket/p?endpoint=$endpoint" \
           "s3://bucket/p?access-key=hunter2&endpoint=$endpoint" \
           "s3://bucket/p?hunter2" \
           "s3://bucket/p?endpoint=http://user:hunter2@127.0.0.1:1" \
           "https://user:hunter2@example.com/bucket"; do
  check "refused: ${url//hunter2/SECRET}" -- fails xs region add s1 --backend "$url"
  unlike "$(err)" "hunter2" "... the secret is not echoed"
done

# ----- the read path -----
# A GET dropped by the server is a transport failure, retried and then
# given up on; the client must see an I/O error, not "invalid argument".

# The export is opened (its manifest read) before the server fails.
start_server r region=r1
mode ok
nbdsh -u "$(uri v@s1)" -c '
import errno
with open("'"$fake/mode"'", "w") as f:
    f.write("drop-gets")
try:
    h.pread(65536, 0)
    print("read")
except nbd.Error as e:
    print(errno.errorcode.get(e.errno, e.errno))
' >"$tmp/errno" 2>&1 || true
is "$(cat "$tmp/errno")" EIO "a transport failure reaches the NBD client as EIO"
mode ok
stop_server "$server_pid"

done_testing
