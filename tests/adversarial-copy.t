#!/usr/bin/env bash
# Copies under attack, on file regions: a destination chunk damaged after
# it arrived is never counted on again once a verify found the damage,
# nor with --verify-destination, and `verify --repair` puts back every
# damaged chunk from another region; a region or account that a running
# copy uses cannot be removed or deleted, and a copy whose destination
# region changed under it never records a snapshot; a failed transfer is
# reported once, and its reason reaches the job and the copy task; a
# resume of a running job names the process running it.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
json () { xs --json "$@"; }
now=$(date +%s)
at () { XSNAP_NOW=$(( now + $1 )) "$xsnap" "${@:2}"; }    # at SECONDS CMD...

# Flip the last byte of FILE (a chunk's payload).
flip () {
  python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(-1, 2); b = f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))' "$1"
}
# Bad blocks of SNAP in REGION as verify lists them (ACCOUNT alice).
bad_blocks () {                 # bad_blocks REGION SNAP
  json --account alice --region "$1" verify "$2" 2>/dev/null \
    | jq -r '[.bad[].block] | join(" ")' || true
}
# Write 64 KiB of BYTE at block BLOCK of volume db, snapshot it as NAME.
change () {                     # change BLOCK BYTE NAME
  start_server "w-$3" account=alice
  nbdsh -u "$(uri db)" \
    -c "h.pwrite(b'\\x$2' * 65536, $1 * 65536); h.flush()"
  stop_server "$server_pid"
  xs --account alice snapshot create db --wait --name "$3" -q
}

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q
quietly xs region add r2
xs --account alice volume create db --size 4M --block-size 64K -q
random_file "$tmp/db.img" 4 41
start_server w account=alice
quietly nbdcopy "$tmp/db.img" "$(uri db)"
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q

# ----- A damaged chunk at the destination -----
quietly xs --account alice copy db@s1 --to-region r2
r2chunks=$store/regions/r2/repo/alice/chunks
victim=$(find "$r2chunks" -type f | sort | sed -n 10p)
flip "$victim"
bad=$(bad_blocks r2 db@copy_local_s1)
like "$bad" '^[0-9]+$' "verify finds the one damaged block of the copy"
check "and fails" -- fails xs --account alice --region r2 verify db@copy_local_s1
other=$(( (bad + 1) % 64 ))

# The verify found damage there: the next copy does not count on it.
change "$other" 5a s2
out=$(json --account alice copy db@s2 --to-region r2 2>"$tmp/err")
is "$(jq -r .chunks_sent <<<"$out")" 2 \
   "after a verify found damage, a copy re-sends the damaged chunk too"
check "the new copy verifies" -- \
  quietly xs --account alice --region r2 verify db@copy_local_s2
check "and so does the old one, whose chunk it replaced" -- \
  quietly xs --account alice --region r2 verify db@copy_local_s1

# Damage nobody has seen yet: --verify-destination reads back what the
# copy counts on.
flip "$victim"
change "$other" 5b s3
out=$(json --account alice copy db@s3 --to-region r2 --verify-destination \
        2>"$tmp/err") || true
is "$(jq -r .chunks_sent <<<"${out:-{\}}")" 2 \
   "copy --verify-destination re-sends a damaged chunk nobody verified"
check "the new copy verifies" -- \
  quietly xs --account alice --region r2 verify db@copy_local_s3

# Repair from another region.
flip "$victim"
check "the damaged copy fails verify" -- \
  fails xs --account alice --region r2 verify db@copy_local_s1
out=$(xs --account alice --region r2 verify --repair db@copy_local_s1 \
        --from-region local 2>&1) || true
like "$out" "repaired 1 chunk" "verify --repair re-fetches the damaged chunk"
check "the repaired copy verifies" -- \
  quietly xs --account alice --region r2 verify db@copy_local_s1
change "$other" 5c s4
out=$(json --account alice copy db@s4 --to-region r2)
is "$(jq -r .chunks_sent <<<"$out")" 1 \
   "after the repair, the next incremental copy sends one chunk"
check "and verifies" -- \
  quietly xs --account alice --region r2 verify db@copy_local_s4

# A repair whose source is damaged too leaves the chunk alone.
flip "$victim"
src=$(find "$store/regions/local/repo/alice/chunks" -type f \
        -name "$(basename "$victim")")
flip "$src"
before=$(sha256sum < "$victim")
check "a repair from a damaged source fails" -- \
  fails xs --account alice --region r2 verify --repair db@copy_local_s1 \
    --from-region local
like "$(err)" "not repaired" "... saying what it could not repair"
is "$(sha256sum < "$victim")" "$before" "and leaves the chunk as it was"
flip "$src"
quietly xs --account alice --region r2 verify --repair db@copy_local_s1 \
  --from-region local || true

# ----- Regions and accounts in use by a copy -----
xs --account alice volume create big --size 8M --block-size 64K -q
random_file "$tmp/big.img" 8 43
start_server wb account=alice
quietly nbdcopy "$tmp/big.img" "$(uri big)"
stop_server "$server_pid"
xs --account alice snapshot create big --wait --name b -q
quietly xs region add r3
quietly xs account create dave --collaborator-of alice
slow_copy () {                  # slow_copy ARGS...: in the background
  "$xsnap" --account alice copy big@b --bandwidth 2M -q "$@" \
    >"$tmp/slow.out" 2>"$tmp/slow.err" &
  slow=$!
  for _ in $(seq 100); do
    [ "$(json --account alice job list | jq '[.[] | select(.status == "running")]
                                | length')" = 1 ] && break
    sleep 0.05
  done
}
slow_copy --to-region r3 --to-account dave
job=$(json --account alice job list | jq -r '.[] | select(.status == "running") | .id')
check "a region a copy writes to cannot be removed" -- \
  fails xs region remove r3
like "$(err)" "$job" "... naming the job"
like "$(err)" "running, pid $slow" "... and its process"
check "the account a copy writes to cannot be deleted" -- \
  fails xs account delete dave
like "$(err)" "$job" "... naming the job"
check "the region a copy reads from cannot be removed" -- \
  fails xs region remove local
like "$(err)" "$job|snapshot" "... saying why"
check "a second resume of the running job is refused" -- \
  fails xs --account alice job resume "$job"
like "$(err)" "it is running \\(pid $slow\\)" "... naming its process"
check "a job cancel stops the running copy" -- \
  quietly xs --account alice job cancel "$job"
wait "$slow" 2>/dev/null || true
is "$(json --account alice job list | jq -r --arg j "$job" '.[] | select(.id == $j)
        | .status')" failed "the cancelled job is failed"
is "$(json --account dave --region r3 snapshot list \
        | jq '.snapshots | length')" 0 "and recorded no snapshot"
check "then the region can be removed" -- quietly xs region remove r3
check "and the account deleted" -- quietly xs account delete dave

# A destination region removed and added again on another backend
# under a running copy, behind the checks' back (straight in the
# catalog): the copy's commit finds the region changed and records
# nothing.
quietly xs region add r3
slow_copy --to-region r3
mkdir "$tmp/elsewhere"
sqlite3 "$store/xsnap.db" "BEGIN; DELETE FROM regions WHERE name = 'r3';
  INSERT INTO regions (name, backend, grp, created_ns)
  VALUES ('r3', 'file://$tmp/elsewhere', 'default', 1); COMMIT;"
wait "$slow" || true
like "$(cat "$tmp/slow.err")" "region 'r3'.*(removed|changed)" \
  "a copy whose region changed under it fails at its commit"
is "$(sqlite3 "$store/xsnap.db" \
        "SELECT count(*) FROM snapshots WHERE region = 'r3'")" 0 \
   "and records no snapshot"

# ----- A failed transfer is reported once, to the job and the task -----
xs --account alice policy create hourly --every 1h --retain 2 -q
xs --account alice policy attach hourly db -q
xs --account alice policy copy-to hourly --account carol --region r2 -q
# carol's chunk folder in r2 cannot be made: every worker fails.
mkdir -p "$store/regions/r2/repo/carol"
touch "$store/regions/r2/repo/carol/chunks"
now=$(( $(date +%s) + 2 ))
fails at 0 policy run-due || true
is "$(grep -c "Not a directory" "$tmp/err" || true)" 1 \
   "a failed transfer is reported once"
like "$(json --account alice policy tasks --outgoing \
          | jq -r '.copy_to_other_accounts[0].last_error')" \
   "carol/chunks.*Not a directory" "the copy task keeps the reason"
like "$(json --account alice job list | jq -r '.[0].error')" \
   "carol/chunks.*Not a directory" "and so does its job"
rm "$store/regions/r2/repo/carol/chunks"

done_testing
