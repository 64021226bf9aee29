#!/usr/bin/env bash
# A store written by an earlier release (tests/fixtures/store-v1.tar.gz,
# flat manifests; made by tests/fixtures/make-store-v1) opens and
# serves as it was: its snapshots, its clone and its encrypted volume
# read back byte for byte, verify, diff and send; its volumes take new
# snapshots incrementally on top of the old ones; gc keeps everything.
. "$(dirname "$0")/functions.sh"

tar -C "$tmp" -xzf "$top/tests/fixtures/store-v1.tar.gz"
check "the fixture unpacks into a store" -- test -f "$store/xsnap.db"
cp "$store/EXPECTED" "$tmp/EXPECTED"
expected () { awk -v k="$1" '$1 == k { print $2 }' "$tmp/EXPECTED"; }

# The store was made elsewhere: its region's repository URL names the
# directory it was made in.  Moving a store is pointing its region at the
# new place (the repository's owner mark names the store by id, not path).
python3 - "$store" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/xsnap.db")
db.execute("UPDATE regions SET backend = ? WHERE name = 'local'",
           ("file://" + sys.argv[1] + "/regions/local/repo",))
db.commit()
PY

json=$(xs --json snapshot list)
is "$(jq '[.snapshots[] | select(.status == "available")] | length' <<<"$json")" 3 \
  "its three snapshots are listed, available"
for snap in plain@s1 plain@s2 secret@s1; do
  check "verify $snap" -- quietly xs verify "$snap"
done
is "$(xs --json diff plain@s1 plain@s2 | jq -r .changed_blocks)" 5 \
  "diff of its snapshots: the 5 blocks rewritten between them"

start_server a
for name in plain@s1 plain@s2 plain c1 secret@s1; do
  is "$(export_sum "$(uri "$name")")" "$(expected "$name")" \
    "$name reads back as it was written"
done
# A new write on top of the old head, then a snapshot relative to s2.
python3 - "$(uri plain)" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"new" * 21845 + b"!", 30 * 65536)
h.flush()
PY
new_sum=$(export_sum "$(uri plain)")
stop_server "$server_pid"

json=$(xs --json snapshot create plain --name s3 --wait)
is "$(jq -r .changed_blocks <<<"$json")" 1 "a new snapshot stores only the block written since s2"
is "$(jq -r .parent <<<"$json")" "$(xs --json snapshot show plain@s2 | jq -r .id)" \
  "  relative to the old s2"
is "$(xs --json diff plain@s2 plain@s3 | jq -r .changed_blocks)" 1 \
  "diff between an old and a new snapshot"

# Replication from it: a full old snapshot, then increments old to new.
store2=$tmp/store2
xs2 () { "$xsnap" --store "$store2" "$@"; }
quietly xs2 init
xs send plain@s1 | quietly xs2 receive
xs send plain@s2 --from plain@s1 | quietly xs2 receive
xs send plain@s3 --from plain@s2 | quietly xs2 receive
store_saved=$store
store=$store2
start_server b
is "$(export_sum "$(uri plain@s2)")" "$(expected plain@s2)" \
  "an old snapshot sent incrementally arrives whole"
is "$(export_sum "$(uri plain@s3)")" "$new_sum" \
  "and so does the new one on top of it"
stop_server "$server_pid"
store=$store_saved

gc=$(xs --json gc)
is "$(jq -r .purged_snapshots <<<"$gc")" 0 "gc of the old store purges nothing"
start_server c
for name in plain@s1 c1 secret@s1; do
  is "$(export_sum "$(uri "$name")")" "$(expected "$name")" "  and $name still reads"
done
stop_server "$server_pid"

done_testing
