#!/usr/bin/env bash
# Streams sent by an earlier release (tests/fixtures/streams-v1.tar.gz,
# stream versions 1 and 2 with flat roots; made by
# tests/fixtures/make-streams-v1) are received: a full stream and an
# incremental one on top of it read back byte for byte, and what they
# built is a tree that this release sends on; a re-encrypting one is
# received under the receiver's key; a raw encrypted one, whose MAC is
# over a flat manifest, is refused with a message saying what to do; a
# forged root is still caught.
. "$(dirname "$0")/functions.sh"

mkdir "$tmp/in"
tar -C "$tmp/in" -xzf "$top/tests/fixtures/streams-v1.tar.gz"
expected () { awk -v k="$1" '$1 == k { print $2 }' "$tmp/in/EXPECTED"; }
version () { head -c 12 "$1" | tail -c 4 | od -An -tu4 | tr -d ' '; }
is "$(version "$tmp/in/full.xs") $(version "$tmp/in/raw.xs")" "1 2" \
  "the fixture's streams are versions 1 and 2"

xs init -q
check "receive the old full stream" -- quietly xs receive -i "$tmp/in/full.xs"
check "receive the old incremental stream on it" -- \
  quietly xs receive -i "$tmp/in/inc.xs"
start_server a
for snap in plain@s1 plain@s2; do
  is "$(export_sum "$(uri "$snap")")" "$(expected "$snap")" \
    "$snap reads back as the old sender had it"
done
stop_server "$server_pid"
manifest=$store/regions/local/repo/admin/manifests/$(xs --json snapshot show plain@s2 | jq -r .id)
is "$(version "$manifest")" 3 "what was received is a tree manifest"
is "$(xs --json diff plain@s1 plain@s2 | jq -r .changed_blocks)" 5 \
  "diff of the received snapshots: the 5 rewritten blocks"

# A damaged root is still refused: another root in the header and trailer.
store2=$tmp/store2 store3=$tmp/store3
xs2 () { XSNAP_STORE=$store2 "$xsnap" "$@"; }
xs3 () { XSNAP_STORE=$store3 "$xsnap" "$@"; }
xs2 init -q
restream "$tmp/in/full.xs" "$tmp/forged.xs" '
bad = ("0" if meta["root_hash"][0] != "0" else "1") + meta["root_hash"][1:]
meta["root_hash"] = bad
root = bytes.fromhex(bad)
meta["_restream"] = True'
out=$(xs2 receive -i "$tmp/forged.xs" 2>&1) && st=0 || st=$?
check "an old stream whose root does not match what it carries is refused" \
  -- test "$st" != 0
like "$out" "root hash .* differs from the stream's" "  saying so"

# This release sends what it received to another store, which takes the
# old stream's base and this release's increment.
xs3 init -q
check "the old full stream into a third store" -- \
  quietly xs3 receive -i "$tmp/in/full.xs"
check "this release's incremental send on top of it" -- \
  quietly sh -c "'$xsnap' send plain@s2 --from plain@s1 | XSNAP_STORE='$store3' '$xsnap' receive"
is "$(store=$store3 read_in local admin plain@s2)" "$(expected plain@s2)" \
  "  and reads back the same"

# Encrypted: raw is refused (its MAC covers a flat manifest), re-encrypting
# is received under this store's key.
out=$(xs receive -i "$tmp/in/raw.xs" 2>&1) && st=0 || st=$?
check "an old raw encrypted stream is refused" -- test "$st" != 0
like "$out" "raw stream of format version 2 .*older xsnap.*--reencrypt" \
  "  saying why and what to do"
json=$(xs --json receive -i "$tmp/in/reencrypt.xs")
is "$(jq -r .encrypted <<<"$json")" true \
  "an old re-encrypting stream is received, encrypted here"
is "$(read_in local admin secret@s1)" "$(expected secret@s1)" \
  "  and reads back as the old sender had it"

done_testing
