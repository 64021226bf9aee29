#!/usr/bin/env bash
# xsnap copy between accounts: the destination gets a complete snapshot
# of its own (byte-identical through NBD, verified, surviving the source's
# deletion and gc); only the chunks it lacks travel; every precondition
# is refused with a clear message; both sides see the job; the audit log
# records it.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
read_as () {                    # read_as ACCOUNT EXPORT: sha256 via NBD
  local account=$1 export=$2 sum
  start_server "read-$account" account="$account" || return 1
  sum=$(export_sum "$(uri "$export")")
  stop_server "$server_pid"
  echo "$sum"
}

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q
xs account create bob -q
xs --account alice volume create db --size 8M --block-size 64K -q

random_file "$tmp/a.img" 8 11
start_server write account=alice
quietly nbdcopy "$tmp/a.img" "$(uri db)"
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q
src_sum=$(read_as alice db@s1)
is "$src_sum" "$(sha256sum < "$tmp/a.img" | cut -d' ' -f1)" \
  "the source snapshot holds the data"

# Full copy to a collaborator.
out=$(xs --account alice --json copy db@s1 --to-account carol \
        --description "nightly to carol")
copy=$(jq -r .snapshot.id <<<"$out")
chunks=$(jq -r .chunks <<<"$out")
is "$(jq -r .chunks_sent <<<"$out")" "$chunks" \
  "the first copy sends every chunk ($chunks)"
is "$(xs --account carol --json snapshot show "$copy" \
        | jq -r '.creation_method + " " + .origin + " " + .description')" \
   "copy copiedFrom:alice:local:$(xs --account alice --json snapshot show \
        db@s1 | jq -r .id) nightly to carol" \
   "the copy records how and where it came from"
is "$(read_as carol "$copy")" "$src_sum" \
  "the copy reads back byte-identical through NBD"
check "the copy verifies" -- quietly xs --account carol verify "$copy"

# An incremental change: only the new chunks travel.
start_server write2 account=alice
nbdsh -u "$(uri db)" -c 'h.pwrite(b"\x5a" * 65536, 3 << 20); h.flush()'
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s2 -q
out=$(xs --account alice --json copy db@s2 --to-account carol)
is "$(jq -r .chunks_sent <<<"$out")" 1 \
  "the second copy sends only the changed chunk"
copy2=$(jq -r .snapshot.id <<<"$out")
is "$(read_as carol "$copy2")" "$(read_as alice db@s2)" \
  "and reads back byte-identical"

# The source snapshot shows its copies.
is "$(xs --account alice --json snapshot show db@s1 \
        | jq -r '.copies[0] | .status + " " + .to_account + " " + .copy')" \
   "done carol $copy" "the source snapshot shows its copy, done"

# Both sides see the jobs.
is "$(xs --account alice --json job list | jq -r '[.[] | .status] | join(" ")')" \
   "done done" "the source lists its two copy jobs, done"
is "$(xs --account carol --json job list --snapshot \
        "$(xs --account alice --json snapshot show db@s1 | jq -r .id)" \
        | jq -r '.[0].destination.snapshot')" "$copy" \
   "the destination sees the job that made its copy"

# Deleting the source and collecting garbage never breaks a copy.
xs --account alice snapshot delete db@s1 -q
xs --account alice snapshot delete db@s2 -q
xs --account alice volume delete db -q
quietly xs gc
check "after the source is gone, the copy still verifies" -- \
  quietly xs --account carol verify "$copy"
is "$(read_as carol "$copy")" "$src_sum" "and reads back the same"

# Refusals.
xs --account alice volume create web --size 1M -q
xs --account alice snapshot create web --wait --name w1 -q
check "a copy to an account outside the organisation is refused" -- \
  fails xs --account alice copy web@w1 --to-account bob
like "$(err)" "not a collaborator" "... saying why"
check "a copy to a missing account is refused" -- \
  fails xs --account alice copy web@w1 --to-account nobody
like "$(err)" "no such account" "... saying why"
check "a name over 60 characters is refused" -- \
  fails xs --account alice copy web@w1 --to-account carol \
    --name "$(printf 'n%.0s' $(seq 61))"
check "a copy with the source's name" -- \
  quietly xs --account alice copy web@w1 --to-account carol
check "a name taken at the destination is refused" -- \
  fails xs --account alice copy web@w1 --to-account carol
like "$(err)" "exists there" "... saying why"
check "a copy needs a destination" -- fails xs --account alice copy web@w1
check "a missing snapshot is refused" -- \
  fails xs --account alice copy web@nope --to-account carol

# A policy document denying cross-account copies stops alice.
cat > "$tmp/deny.json" <<'EOF'
{"version": "2.0", "statement": [{"effect": "deny",
  "action": "xsnap:CopySnapshotCrossAccount", "resource": "*"}]}
EOF
xs policy-doc attach alice "$tmp/deny.json" -q
check "a denied cross-account copy is refused" -- \
  fails xs --account alice copy web@w1 --to-account carol --name w1-denied
like "$(err)" "permission denied" "... as a permission"
xs policy-doc detach alice deny -q
check "detached, the copy goes through" -- \
  quietly xs --account alice copy web@w1 --to-account carol --name w1-ok

# A sharee copies a shared snapshot into its own account; unsharing
# leaves the copy alone.
wid=$(xs --account alice --json snapshot show web@w1 | jq -r .id)
xs --account alice share web@w1 --with bob -q
share=$(xs --account bob --json share list --with-me \
          | jq -r '.shared_with_me[0].id')
xs --account bob share accept "$share" -q
check "the sharee copies the shared snapshot into its own account" -- \
  quietly xs --account bob copy "$wid" --to-account bob --name mine
check "but not into another account" -- \
  fails xs --account bob copy "$wid" --to-account carol --name theirs
xs --account alice unshare web@w1 --with bob -q
check "after unsharing, the sharee's copy still verifies" -- \
  quietly xs --account bob verify web@mine

# kill -9 in the middle of a copy, then resume: nothing half-visible,
# the rest sent, the result identical.
xs --account alice volume create big --size 16M --block-size 64K -q
random_file "$tmp/big.img" 16 23
start_server big account=alice
quietly nbdcopy "$tmp/big.img" "$(uri big)"
stop_server "$server_pid"
xs --account alice snapshot create big --wait --name b1 -q
"$xsnap" --account alice copy big@b1 --to-account carol --bandwidth 4M \
  -q >/dev/null 2>&1 &
copier=$!
wait_copy_progress alice $((2 << 20))
kill -9 "$copier"
wait "$copier" 2>/dev/null || true
job=$(xs --account alice --json job list --outgoing | jq -r '.[0].id')
is "$(xs --account alice --json job list | jq -r --arg j "$job" \
        '.[] | select(.id == $j) | .status')" failed \
   "the killed copy's job is failed"
like "$(xs --account alice --json job list | jq -r --arg j "$job" \
          '.[] | select(.id == $j) | .error')" "process running it stopped" \
   "... saying why"
check "nothing of it is visible at the destination" -- \
  fails xs --account carol snapshot show big@b1
out=$(xs --account alice --json job resume "$job")
sent=$(jq -r .chunks_sent <<<"$out")
total=$(jq -r .chunks <<<"$out")
check "the resumed copy sends only what was missing ($sent of $total)" -- \
  test "$sent" -lt "$total"
is "$(read_as carol big@b1)" "$(sha256sum < "$tmp/big.img" | cut -d' ' -f1)" \
  "and the copy is byte-identical"
is "$(xs --account carol --json job list --incoming | jq -r --arg j "$job" \
        '.[] | select(.id == $j) | .status')" done \
   "the destination sees the job done"
check "a finished job cannot be resumed" -- \
  fails xs --account alice job resume "$job"

# The audit log has the copies and the refusals.
audit=$(xs --json audit)
is "$(jq -r '[.[] | select(.action == "xsnap:CopySnapshotCrossAccount"
                 and .outcome == "allowed") | .detail | split(" ")[1]]
             | join(" ")' <<<"$audit")" \
   "carol/local carol/local carol/local carol/local carol/local" \
   "the five cross-account copies are audited"
is "$(jq '[.[] | select(.action == "xsnap:CopySnapshot"
                 and .outcome == "allowed")] | length' <<<"$audit")" 1 \
   "and the sharee's copy into its own account"
like "$(jq -r '.[] | select(.outcome == "denied") | .action' <<<"$audit" \
        | sort -u | tr '\n' ' ')" "xsnap:CopySnapshotCrossAccount" \
   "the denied ones too"

done_testing
