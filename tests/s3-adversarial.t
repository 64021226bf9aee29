#!/usr/bin/env bash
# gc on a real S3 server (Ceph RGW) against setups that would make it
# destroy data: two stores pointed at one bucket and prefix (the second
# is refused, and its gc collects nothing), a manifest swapped for
# another's behind the store's back (refused on every read, never served),
# and a manifest deleted behind the store's back (gc deletes nothing and
# names the snapshot).
. "$(dirname "$0")/functions.sh"

require_tool jq curl nbdcopy nbdsh sqlite3
require_s3

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
s3_copy () {                    # s3_copy BUCKET FROM TO, by another client
  curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    -o "$tmp/object" "$AWS_ENDPOINT_URL_S3/$1/$2" || return 1
  curl -sf -X PUT --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $(sha256sum <"$tmp/object" | cut -d' ' -f1)" \
    --data-binary "@$tmp/object" "$AWS_ENDPOINT_URL_S3/$1/$3" >/dev/null
}
s3_delete () {                  # s3_delete BUCKET KEY, by another client
  curl -sf -X DELETE --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "$AWS_ENDPOINT_URL_S3/$1/$2"
}

bucket=$(s3_bucket s3adv)
url="s3://$bucket/shared"
xs init -q
check "store A adds region r2 on $url" -- quietly xs region add r2 --backend "$url"
idA=$(sqlite3 "$store/xsnap.db" "SELECT value FROM settings WHERE key = 'store_id'")
xs --region r2 -q volume create v --size 1M --block-size 64K
start_server w region=r2
random_file "$tmp/v.img" 1 s3-adversarial
nbdcopy "$tmp/v.img" "$(uri v)"
nbdsh -u "$(uri v)" -c 'h.flush()'
stop_server "$server_pid"
xs --region r2 -q snapshot create v --wait --name s1
start_server w2 region=r2
nbdsh -u "$(uri v)" -c 'h.pwrite(b"\x42" * 65536, 0); h.flush()'
stop_server "$server_pid"
xs --region r2 -q snapshot create v --wait --name s2
is "$(s3_count "$bucket" shared/admin/chunks/)" 17 "A's region holds 17 chunks"

# A second store on the same bucket and prefix.
storeB=$tmp/storeB
xsB () { "$xsnap" --store "$storeB" "$@"; }
xsB init -q
check "store B: region add on the same bucket and prefix is refused" -- \
  fails xsB region add r2 --backend "$url"
like "$(err)" "owned by another xsnap store \\($idA" "  naming the store that owns it"
mkdir -p "$storeB/regions/r2/volumes"
sqlite3 "$storeB/xsnap.db" \
  "INSERT OR REPLACE INTO regions (name, backend, created_ns) VALUES ('r2', '$url', 0)"
check "store B: gc there is refused" -- fails xsB --region r2 gc
like "$(err)" "owned by another xsnap store \\($idA" "  naming the owner"
is "$(s3_count "$bucket" shared/admin/chunks/) $(s3_count "$bucket" shared/admin/manifests/)" \
   "17 2" "  and every chunk and manifest of A is still there"

# A manifest swapped for another's behind the store's back.
s1=$(xs --region r2 --json snapshot show v@s1 | jq -r .id)
s2=$(xs --region r2 --json snapshot show v@s2 | jq -r .id)
check "another client saves s2's manifest" -- \
  s3_copy "$bucket" "shared/admin/manifests/$s2" "shared/admin/manifests/$s2.saved"
check "and copies s1's over it" -- \
  s3_copy "$bucket" "shared/admin/manifests/$s1" "shared/admin/manifests/$s2"
check "verify v@s2 is refused" -- fails xs --region r2 verify v@s2
like "$(err)" "describes snapshot $s1" "  saying the manifest is another snapshot's"
start_server r2read region=r2
check "an NBD read of v@s2 fails rather than return s1's bytes" -- \
  fails nbdcopy "$(uri v@s2)" "$tmp/s2.img"
stop_server "$server_pid"
check "send of v@s2 is refused" -- fails xs --region r2 send v@s2 -o "$tmp/s2.st"
check "the saved manifest is put back" -- \
  s3_copy "$bucket" "shared/admin/manifests/$s2.saved" "shared/admin/manifests/$s2"
s3_delete "$bucket" "shared/admin/manifests/$s2.saved"
check "and v@s2 verifies again" -- quietly xs --region r2 verify v@s2

# A manifest deleted behind the store's back.
xs --region r2 -q snapshot delete v@s1
check "another client deletes s2's manifest" -- s3_delete "$bucket" "shared/admin/manifests/$s2"
check "gc with the manifest missing is refused" -- fails xs --region r2 gc
like "$(err)" "$s2.*missing" "  naming the snapshot"
is "$(s3_count "$bucket" shared/admin/chunks/)" 17 "  and no chunk was deleted"
is "$(xs --region r2 --json snapshot show v@s2 | jq -r .status)" available \
   "  and the snapshot is still available"

done_testing
