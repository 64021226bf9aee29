#!/usr/bin/env bash
# Paths that work anywhere: a relative --store (or XSNAP_STORE) is made
# absolute once, at start, so that every path a command stores (a
# region's backend) or prints (init, serve's socket and pre-shared key)
# is absolute and means the same from any folder.
. "$(dirname "$0")/functions.sh"

work=$tmp/work
mkdir -p "$work/sub"
cd "$work"
unset XSNAP_STORE
real=$(cd "$work" && pwd -P)

out=$(xs --store s init 2>&1)
is "$out" "initialised xsnap store $real/s (administrator account 'admin', region 'local')" \
   "init of a relative store prints its absolute path"

check "region add with a relative --store" -- quietly xs --store s region add dr
is "$(xs --store s --json region list | jq -r '.[] | select(.name == "dr") | .backend')" \
   "file://$real/s/regions/dr/repo" "the region's backend is an absolute file URL"

check "the same store through a relative XSNAP_STORE" -- \
  env XSNAP_STORE=s "$xsnap" region add dr2 -q
is "$(cd sub && "$xsnap" --store ../s --json region list | jq -r '.[] | select(.name == "dr2") | .backend')" \
   "file://$real/s/regions/dr2/repo" "... is the same store from a sub-folder"

check "store names with a trailing slash" -- quietly xs --store s/ region add dr3
is "$(xs --store "$real/s" --json region list | jq -r '.[] | select(.name == "dr3") | .backend')" \
   "file://$real/s/regions/dr3/repo" "... resolve to the same path"

# serve prints what it gives nbdkit; without nbdkit on PATH it stops there.
out=$(PATH=/nonexistent "$xsnap" --store s serve --listen 127.0.0.1:1 2>&1 || true)
like "$out" "tls-psk-file=$real/s/tls/admin\\.psk" "serve prints an absolute PSK path"
out=$(PATH=/nonexistent "$xsnap" --store s serve 2>&1 || true)
like "$out" "socket=$real/s/nbd\\.sock" "serve prints an absolute socket path"
out=$(cd sub && PATH=/nonexistent "$xsnap" --store ../s serve --unix x.sock 2>&1 || true)
like "$out" "socket=$real/sub/x\\.sock" "... and a relative --unix made absolute"

# A store whose parent is missing is refused, naming it.
out=$(xs --store nowhere/s init 2>&1) && status=0 || status=$?
is "$status" 1 "init under a missing folder fails"
like "$out" "nowhere/s" "... naming the store"

done_testing
