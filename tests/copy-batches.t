#!/usr/bin/env bash
# A copy takes the source's blocks 65536 at a time: a copy of a volume
# of 65540 distinct 4K blocks (two batches), plain or encrypted on the
# way, is whole, and the next encrypted copy, which finds the names the
# last one gave, seals only the new chunk.
. "$(dirname "$0")/functions.sh"

xs init -q
xs -q volume create m --size 262160K --block-size 4K
start_server m
# Every 8-byte word of nbdkit's pattern is its offset: every block is
# distinct.
nbdkit -U - pattern size=262160K --run "nbdcopy \"\$uri\" '$(uri m)'"
xs -q snapshot create m --name s1 --wait
nbdsh -u "$(uri m)" -c 'h.pwrite(b"\x5a" * 4096, 65539 * 4096); h.flush()'
xs -q snapshot create m --name s2 --wait
stop_server "$server_pid"

xs -q account create carol --collaborator-of admin
copied () { jq -r .chunks_sent <<<"$1"; }
json=$(xs --json copy m@s1 --to-account carol --name c1)
is "$(copied "$json")" 65540 "a copy of 65540 blocks sends each of their chunks"
is "$(xs --account carol --json snapshot show m@c1 | jq -r .root_hash)" \
  "$(xs --json snapshot show m@s1 | jq -r .root_hash)" "  and has the source's root"
json=$(xs --json copy m@s1 --to-account carol --name e1 --encrypt)
is "$(copied "$json")" 65540 "a copy encrypted on the way seals each of them"
json=$(xs --json copy m@s2 --to-account carol --name e2 --encrypt)
is "$(copied "$json")" 1 "  the next one, under its data key, only the new chunk"
check "  it verifies" -- quietly xs --account carol verify m@e2

done_testing
