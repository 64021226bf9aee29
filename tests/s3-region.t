#!/usr/bin/env bash
# Regions on a real S3 server (Ceph RGW, which checks every signature and
# payload hash): added with clear refusals for wrong keys and buckets;
# account A in region local (file) copies to account B in region r2 (S3),
# full then incremental, byte-identical, the incremental sending only the
# changed chunk (objects counted by another S3 client); snapshots taken in
# the S3 region are read through NBD, diffed, sent and received, and gc
# reclaims their chunks from the bucket; a copy killed with -9 resumes.
. "$(dirname "$0")/functions.sh"

require_tool jq curl nbdcopy nbdsh
require_s3

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
write_in () {                   # write_in REGION ACCOUNT EXPORT FILE
  start_server "write-$1-$2" region="$1" account="$2" || return 1
  nbdcopy "$4" "$(uri "$3")"
  stop_server "$server_pid"
}
poke () {                       # poke REGION ACCOUNT EXPORT OFFSET BYTE
  start_server "poke-$1-$2" region="$1" account="$2" || return 1
  nbdsh -u "$(uri "$3")" -c "h.pwrite(bytes([$5]) * 65536, $4); h.flush()"
  stop_server "$server_pid"
}

bucket=$(s3_bucket s3r)
xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q

# Adding a region checks the endpoint, the bucket and the keys.
check "add region r2 on s3://$bucket/r2" -- \
  quietly xs region add r2 --backend "s3://$bucket/r2"
is "$(xs --json region list | jq -r '.[] | select(.name == "r2") | .backend')" \
   "s3://$bucket/r2" "region list shows the S3 backend"
check "a wrong secret key is refused" -- fails env AWS_SECRET_ACCESS_KEY=not-the-secret \
  "$xsnap" region add r3 --backend "s3://$bucket/r3"
like "$(err)" "access denied: HTTP 403 SignatureDoesNotMatch" \
     "... with RGW's reason"
fails env AWS_ACCESS_KEY_ID=NOSUCHKEY "$xsnap" region add r3 \
  --backend "s3://$bucket/r3"
like "$(err)" "403 InvalidAccessKeyId" "an unknown access key is refused"
fails xs region add r3 --backend "s3://no-such-bucket-$bucket/r3"
like "$(err)" "bucket 'no-such-bucket-$bucket' does not exist" \
     "a missing bucket is refused by name"
fails env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$tmp" \
  "$xsnap" region add r3 --backend "s3://$bucket/r3"
like "$(err)" "no S3 credentials" "no credentials at all is refused"
fails xs region add r3 --backend "s3://$bucket/r3?endpoint=http://127.0.0.1:1&retries=1"
like "$(err)" "after 2 attempts" "an endpoint that does not answer: retried, then refused"
is "$(xs --json region list | jq -r '[.[].name] | join(" ")')" "local r2" \
   "none of the refused regions was added"

# Virtual-host addressing (bucket.localhost: libcurl resolves *.localhost
# to the loopback address itself, and RGW's "rgw dns name" is localhost).
vbucket=$(s3_bucket s3v)
check "a region in virtual-host style" -- quietly xs region add rv \
  --backend "s3://$vbucket/rv?endpoint=${AWS_ENDPOINT_URL_S3/127.0.0.1/localhost}&style=virtual"
xs --region rv --account alice volume create vv --size 1M -q
check "a snapshot there" -- \
  quietly xs --region rv --account alice snapshot create vv --name v1 --wait
is "$(s3_count "$vbucket" rv/alice/manifests/)" 1 \
   "its manifest is in the bucket, seen with path-style requests"

# Account alice in region local (file) copies to carol in r2 (S3).
xs --account alice volume create db --size 8M --block-size 64K -q
random_file "$tmp/db.img" 8 31
write_in local alice db "$tmp/db.img"
xs --account alice snapshot create db --wait --name s1 -q
sum1=$(sha256sum < "$tmp/db.img" | cut -d' ' -f1)
out=$(xs --json --account alice copy db@s1 --to-region r2 --to-account carol)
is "$(jq -r .snapshot.name <<<"$out")" copy_local_s1 "the full copy is named copy_local_s1"
is "$(jq -r .chunks_sent <<<"$out")" 128 "the full copy sends all 128 chunks"
is "$(s3_count "$bucket" r2/carol/chunks/)" 128 \
   "the bucket holds 128 chunks for carol (counted by another client)"
is "$(read_in r2 carol db@copy_local_s1)" "$sum1" \
   "carol's copy in r2 is byte-identical through NBD"

poke local alice db $((3 << 20)) 7
xs --account alice snapshot create db --wait --name s2 -q
objects=$(s3_count "$bucket" r2/)
pages=$(s3_count "$bucket" r2/carol/pages/)
out=$(xs --json --account alice copy db@s2 --to-region r2 --to-account carol)
is "$(jq -r .chunks_sent <<<"$out")" 1 "the incremental copy sends 1 chunk"
check "... $(jq -r .bytes_sent <<<"$out") bytes: one chunk's, not more" -- \
  test "$(jq -r .bytes_sent <<<"$out")" -lt 70000
is "$(s3_count "$bucket" r2/carol/chunks/)" 129 "the bucket gained exactly one chunk"
new_pages=$(( $(s3_count "$bucket" r2/carol/pages/) - pages ))
check "the block map gained only the pages on the changed block's path ($new_pages)" -- \
  test "$new_pages" -ge 1 -a "$new_pages" -le 2
check "and one manifest (objects $objects -> $(s3_count "$bucket" r2/))" -- \
  test "$(s3_count "$bucket" r2/)" -eq $((objects + 2 + new_pages))
is "$(read_in r2 carol db@copy_local_s2)" "$(read_in local alice db@s2)" \
   "the incremental copy is byte-identical"
is "$(xs --region r2 --account carol diff db@copy_local_s1 db@copy_local_s2 --format=blocks)" 48 \
   "diff in the S3 region names the changed block"
check "verify reads every chunk back from S3" -- \
  quietly xs --region r2 --account carol verify db@copy_local_s2

# Snapshots taken in the S3 region itself.
xs --region r2 --account carol volume create web --size 4M --block-size 64K -q
random_file "$tmp/web.img" 4 32
write_in r2 carol web "$tmp/web.img"
check "a snapshot of a volume in r2 is taken" -- \
  quietly xs --region r2 --account carol snapshot create web --name w1 --wait
is "$(read_in r2 carol web@w1)" "$(sha256sum < "$tmp/web.img" | cut -d' ' -f1)" \
   "and read back through NBD"
# Sent from the S3 region, received by a second store whose own default
# region is on S3, and back.
xs --region r2 --account carol send web@w1 -o "$tmp/w1.xs" -q
store2=$tmp/store2
xs2 () { "$xsnap" --store "$store2" "$@"; }
check "a second store whose default region is on S3" -- \
  quietly xs2 init --backend "s3://$bucket/store2"
check "receives the stream sent from r2" -- quietly xs2 receive -i "$tmp/w1.xs"
is "$(store=$store2 read_in local admin "$(jq -r .id <<<"$(xs --json --region r2 --account carol snapshot show web@w1)")")" \
   "$(read_in r2 carol web@w1)" "the received snapshot equals the sent one"
check "... and its chunks are in the second store's bucket prefix" -- \
  test "$(s3_count "$bucket" store2/)" -gt 64
xs --region r2 --account carol snapshot delete web@w1 -q
xs --region r2 --account carol volume delete web -q
before=$(s3_count "$bucket" r2/carol/chunks/)
xs --region r2 --json gc >/dev/null
after=$(s3_count "$bucket" r2/carol/chunks/)
check "gc reclaims the deleted snapshot's chunks from the bucket ($before -> $after)" -- \
  test "$after" -eq $((before - 64))

# kill -9 in the middle of a copy to S3, then resume.
xs --account alice volume create big --size 16M --block-size 64K -q
random_file "$tmp/big.img" 16 33
write_in local alice big "$tmp/big.img"
xs --account alice snapshot create big --wait --name b1 -q
"$xsnap" --account alice copy big@b1 --to-region r2 --to-account carol \
  --bandwidth 4M -q >/dev/null 2>&1 &
copier=$!
wait_copy_progress alice $((2 << 20))
kill -9 "$copier"
wait "$copier" 2>/dev/null || true
check "nothing of the killed copy is visible in r2" -- \
  fails xs --region r2 --account carol snapshot show big@copy_local_b1
job=$(xs --account alice --json job list --outgoing | jq -r '.[0].id')
out=$(xs --account alice --json job resume "$job")
check "the resumed copy sends only the rest ($(jq -r .chunks_sent <<<"$out") of 256)" -- \
  test "$(jq -r .chunks_sent <<<"$out")" -lt 256
is "$(read_in r2 carol big@copy_local_b1)" \
   "$(sha256sum < "$tmp/big.img" | cut -d' ' -f1)" "and the copy is byte-identical"

done_testing
