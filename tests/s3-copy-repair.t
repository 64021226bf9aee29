#!/usr/bin/env bash
# Copies to a region on a real S3 server (Ceph RGW) under attack: a
# destination chunk damaged behind the store's back (rewritten by another
# client) is found by verify, re-sent by the next copy instead of counted
# on, and put back by `verify --repair` from the source region; a region
# on S3 that a running copy writes to cannot be removed.
. "$(dirname "$0")/functions.sh"

require_tool jq curl nbdcopy nbdsh python3
require_s3

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
json () { xs --json "$@"; }
# Another client's GET and PUT of one object.
s3_get () {                     # s3_get BUCKET KEY FILE
  curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    -o "$3" "$AWS_ENDPOINT_URL_S3/$1/$2"
}
s3_put () {                     # s3_put BUCKET KEY FILE
  curl -sf -X PUT --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $(sha256sum <"$3" | cut -d' ' -f1)" \
    --data-binary "@$3" "$AWS_ENDPOINT_URL_S3/$1/$2" >/dev/null
}
# Flip the last byte of object KEY, as a damaged disk would.
s3_flip () {                    # s3_flip BUCKET KEY
  s3_get "$1" "$2" "$tmp/obj" || return 1
  python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2); b = f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))' "$tmp/obj"
  s3_put "$1" "$2" "$tmp/obj"
}
s3_keys () {                    # s3_keys BUCKET PREFIX: the first page
  curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$AWS_ENDPOINT_URL_S3/$1?list-type=2&prefix=$(s3_urlencode "$2")" \
    | grep -o '<Key>[^<]*</Key>' | sed 's/<Key>\(.*\)<\/Key>/\1/'
}
change () {                     # change BLOCK BYTE NAME
  start_server "w-$3"
  nbdsh -u "$(uri db)" -c "h.pwrite(b'\\x$2' * 65536, $1 * 65536); h.flush()"
  stop_server "$server_pid"
  xs snapshot create db --wait --name "$3" -q
}

bucket=$(s3_bucket s3repair)
xs init -q
check "a region on S3" -- quietly xs region add s3 --backend "s3://$bucket/dr"
xs volume create db --size 2M --block-size 64K -q
random_file "$tmp/db.img" 2 s3-repair
start_server w
quietly nbdcopy "$tmp/db.img" "$(uri db)"
stop_server "$server_pid"
xs snapshot create db --wait --name s1 -q
check "db@s1 is copied to the S3 region" -- quietly xs copy db@s1 --to-region s3
check "and verifies there" -- quietly xs --region s3 verify db@copy_local_s1

victim=$(s3_keys "$bucket" dr/admin/chunks/ | sed -n 5p)
check "another client damages one of its chunks on the server" -- \
  s3_flip "$bucket" "$victim"
check "verify finds the damage" -- fails xs --region s3 verify db@copy_local_s1

change 1 5a s2
out=$(json copy db@s2 --to-region s3)
is "$(jq -r .chunks_sent <<<"$out")" 2 \
   "the next copy re-sends the damaged chunk with the changed one"
check "the new copy verifies" -- quietly xs --region s3 verify db@copy_local_s2
check "and so does the old one" -- quietly xs --region s3 verify db@copy_local_s1

check "damaged again" -- s3_flip "$bucket" "$victim"
out=$(xs --region s3 verify --repair db@copy_local_s1 --from-region local 2>&1) || true
like "$out" "repaired 1 chunk" "verify --repair puts the chunk back from the local region"
check "the repaired copy verifies" -- quietly xs --region s3 verify db@copy_local_s1

# A region on S3 that a running copy writes to.
xs volume create big --size 8M --block-size 64K -q
random_file "$tmp/big.img" 8 s3-repair-big
start_server wb
quietly nbdcopy "$tmp/big.img" "$(uri big)"
stop_server "$server_pid"
xs snapshot create big --wait --name b -q
"$xsnap" copy big@b --to-region s3 --bandwidth 2M -q >/dev/null 2>&1 &
slow=$!
started_pids+=("$slow")
for _ in $(seq 100); do
  [ "$(json job list | jq '[.[] | select(.status == "running")] | length')" = 1 ] && break
  sleep 0.05
done
check "the S3 region a copy writes to cannot be removed" -- fails xs region remove s3
like "$(err)" "running, pid $slow" "... naming the copy's process"
r=0; wait "$slow" || r=$?
ok $r "the copy finishes"
check "and its snapshot verifies" -- quietly xs --region s3 verify big@copy_local_b

done_testing
