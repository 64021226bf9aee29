#!/usr/bin/env bash
# The volume commands of the CLI, and every kind of bad input: one clear
# line on stderr, a non-zero exit, and nothing on disk changes.
. "$(dirname "$0")/functions.sh"

out=$(xs volume list 2>&1) && status=0 || status=$?
is "$status" 1 "no store: exit 1"
like "$out" "^xsnap: no xsnap store at $store \(create one with 'xsnap init'\)$" \
  "no store: one clear line"

check "init creates the store" -- xs init -q
out=$(xs init 2>&1) && status=0 || status=$?
is "$status" 1 "a second init fails"
like "$out" "already holds an xsnap store" "  saying why"

check "create vol1 (10G, default block size)" -- xs -q volume create vol1 --size 10G
json=$(xs --json volume show vol1)
is "$(jq -r .size <<<"$json")" 10737418240 "vol1 size is 10G in bytes"
is "$(jq -r .block_size <<<"$json")" 524288 "default block size is 512K"
is "$(jq -r .attached <<<"$json")" false "vol1 is not attached"
like "$(jq -r .id <<<"$json")" '^vol-[0-9a-f]{16}$' "vol1 has an id"
check "create vol2 with 4K blocks" -- xs -q volume create vol2 --size 64M --block-size 4K
is "$(xs --json volume show vol2 | jq -r .block_size)" 4096 "vol2 block size is 4K"
is "$(xs --json volume list | jq -r '[.volumes[].name] | join(",")')" "vol1,vol2" \
  "volume list shows both, by name"
like "$(xs volume list)" "vol1 +vol-[0-9a-f]+ +10G +512K +no" "text listing"
check "a 64G sparse volume is instant and sparse" -- xs -q volume create big --size 64G
is "$(du -sk "$store" | cut -f1 | awk '{print ($1 < 20000) ? "small" : $1}')" small \
  "  the store stays small"
id=$(xs --json volume show vol1 | jq -r .id)
is "$(xs --json volume show "$id" | jq -r .name)" vol1 "a volume can be named by id"

before=$(store_state)
refuse () {                     # refuse DESCRIPTION PATTERN -- COMMAND...
  local desc=$1 pattern=$2; shift 3
  local out status
  out=$("$@" 2>&1 >/dev/null) && status=0 || status=$?
  if [ "$status" != 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] \
     && [[ $out =~ $pattern ]]; then
    ok 0 "$desc"
  else
    ok 1 "$desc"; diag "status $status, stderr: $out"
  fi
}
refuse "--size 0" "invalid size '0': it must be greater than zero" -- \
  xs volume create v --size 0
refuse "--size 12Q" "invalid size '12Q': unknown suffix 'Q'" -- \
  xs volume create v --size 12Q
refuse "size not a multiple of the block size" "not a multiple of the block size \(512K\)" -- \
  xs volume create v --size 1000000
refuse "block size not a power of two" "invalid block size 5000" -- \
  xs volume create v --size 1M --block-size 5000
refuse "block size too small" "from 4K to 4M" -- \
  xs volume create v --size 1M --block-size 2K
refuse "block size too large" "from 4K to 4M" -- \
  xs volume create v --size 64M --block-size 8M
refuse "size too large" "larger than the limit" -- \
  xs volume create v --size 65T
refuse "duplicate name" "volume 'vol1' already exists in account 'admin', region 'local'" -- \
  xs volume create vol1 --size 1G
refuse "name with /" "invalid volume name 'a/b': '/' is not allowed" -- \
  xs volume create a/b --size 1G
refuse "name with @" "invalid volume name 'a@b': '@' is not allowed" -- \
  xs volume create a@b --size 1G
refuse "unknown volume" "no volume 'nope' in account 'admin', region 'local'" -- \
  xs volume show nope
refuse "delete of an unknown volume" "no volume 'nope'" -- xs volume delete nope
refuse "shrink" "cannot shrink volume 'vol1'" -- xs volume resize vol1 --size 1G
refuse "unknown account" "no account 'mallory' in this store" -- \
  xs --account mallory volume list
refuse "unknown region" "no region 'mars' in this store" -- \
  xs --region mars volume list
refuse "missing --size" "--size SIZE is required" -- xs volume create v
refuse "unknown command" "unknown command" -- xs frobnicate
is "$(store_state)" "$before" "no refused command changed anything on disk"

out=$(xs volume create v 2>&1) && status=0 || status=$?
is "$status" 2 "a usage error exits 2"

check "grow vol2 to 128M" -- xs -q volume resize vol2 --size 128M
is "$(xs --json volume show vol2 | jq -r .size)" 134217728 "  the catalog has the new size"
vol2_id=$(xs --json volume show vol2 | jq -r .id)
is "$(stat -c %s "$store/regions/local/volumes/$vol2_id/data")" 134217728 \
  "  and so does the head"
check "delete vol2" -- xs -q volume delete vol2
check "  its head is gone" -- test ! -e "$store/regions/local/volumes/$vol2_id"
is "$(xs --json volume list | jq -r '[.volumes[].name] | join(",")')" "big,vol1" \
  "  and it is not listed"

done_testing
