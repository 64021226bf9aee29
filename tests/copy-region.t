#!/usr/bin/env bash
# Regions and cross-region copies: regions are added with a
# group; a cross-region copy is complete and byte-identical, named
# copy_<region>_<name> by default, incremental in what it sends; every
# precondition is refused and accepted at its boundary: the size limit,
# concurrent copies (refused, or queued and run later), region groups,
# 60-character names, the permission.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
json () { xs --json "$@"; }

xs init -q
xs account create alice -q
xs account create carol --collaborator-of alice -q

# Regions.
check "add region r2 (default group)" -- quietly xs region add r2
check "add region m1 (mainland)" -- quietly xs region add m1 --group mainland
check "add regions i1, i2 (intl)" -- \
  quietly xs region add i1 --group intl
quietly xs region add i2 --group intl
is "$(json region list | jq -r '[.[] | .name + ":" + .group] | join(" ")')" \
   "i1:intl i2:intl local:default m1:mainland r2:default" "region list"
check "a region added twice is refused" -- fails xs region add r2
check "a region on a bad backend is refused" -- \
  fails xs region add r9 --backend ftp://x
check "only the administrator adds regions" -- \
  fails xs --account alice region add r8
like "$(err)" "permission denied" "... a permission"

# A volume of data in the default region.
xs --account alice volume create db --size 8M --block-size 64K -q
random_file "$tmp/db.img" 8 17
start_server w account=alice
quietly nbdcopy "$tmp/db.img" "$(uri db)"
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q
sum=$(sha256sum < "$tmp/db.img" | cut -d' ' -f1)

# Full, then incremental, to another region (and account).
out=$(json --account alice copy db@s1 --to-region r2 --to-account carol)
is "$(jq -r .snapshot.name <<<"$out")" copy_local_s1 \
   "the default name is copy_<source-region>_<source-name>"
is "$(jq -r '.chunks_sent == .chunks' <<<"$out")" true \
   "the first copy sends every chunk"
is "$(read_in r2 carol db@copy_local_s1)" "$sum" \
   "the copy in r2 is byte-identical through NBD"
start_server w2 account=alice
nbdsh -u "$(uri db)" -c 'h.pwrite(b"\x42" * 65536, 5 << 20); h.flush()'
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s2 -q
out=$(json --account alice copy db@s2 --to-region r2 --to-account carol)
is "$(jq -r .chunks_sent <<<"$out")" 1 \
   "the incremental copy sends only the changed chunk"
is "$(read_in r2 carol db@copy_local_s2)" "$(read_in local alice db@s2)" \
   "and is byte-identical"
check "a region holding snapshots cannot be removed" -- \
  fails xs region remove r2
like "$(err)" "snapshot" "... naming what it holds"

# Region groups.
check "a copy between groups (default to mainland) is refused" -- \
  fails xs --account alice copy db@s1 --to-region m1
like "$(err)" "between region groups" "... saying why"
xs --account alice --region i1 volume create w --size 1M -q
xs --account alice --region i1 snapshot create w --wait --name s -q
check "a copy between intl regions is refused" -- \
  fails xs --account alice --region i1 copy w@s --to-region i2
like "$(err)" "group 'intl' do not copy to each other" "... saying why"
xs config set copy.isolated_groups none -q
check "unless the store's rules allow it" -- \
  quietly xs --account alice --region i1 copy w@s --to-region i2
xs config reset copy.isolated_groups -q

# The size limit, at its boundary.
size=$(json --account alice snapshot show db@s1 | jq -r .size)
xs config set copy.max_cross_region_bytes $((size - 1)) -q
check "a snapshot one byte over the limit is refused" -- \
  fails xs --account alice copy db@s1 --to-region r2 --name over
like "$(err)" "a cross-region copy is at most" "... saying why"
check "a copy within the region is not limited" -- \
  quietly xs --account alice copy db@s1 --to-account carol --name same
xs config set copy.max_cross_region_bytes "$size" -q
check "a snapshot exactly at the limit is accepted" -- \
  quietly xs --account alice copy db@s1 --to-region r2 --name at-limit
xs config reset copy.max_cross_region_bytes -q

# Names: at most 60 characters; a default name too long asks for --name.
long60=$(printf 'n%.0s' $(seq 60))
check "a 60-character name is accepted" -- \
  quietly xs --account alice copy db@s1 --to-region r2 --name "$long60"
check "a 61-character name is refused" -- \
  fails xs --account alice copy db@s1 --to-region r2 --name "${long60}x"
xs --account alice snapshot create db --wait --name "$(printf 'l%.0s' $(seq 55))" -q
check "a default name over 60 characters is refused" -- \
  fails xs --account alice copy "db@$(printf 'l%.0s' $(seq 55))" --to-region r2
like "$(err)" "give one with --name" "... asking for one"

# The permission.
cat > "$tmp/deny.json" <<'EOF'
{"version": "2.0", "statement": [{"effect": "deny",
  "action": "xsnap:CopySnapshotCrossRegion", "resource": "*"}]}
EOF
xs policy-doc attach alice "$tmp/deny.json" -q
check "a denied cross-region copy is refused" -- \
  fails xs --account alice copy db@s1 --to-region r2 --name denied
like "$(err)" "permission denied" "... a permission"
check "a copy in the region still goes" -- \
  quietly xs --account alice copy db@s1 --to-account carol --name same2
xs policy-doc detach alice deny -q

# Concurrent cross-region copies: the one past the limit is refused, or
# queued with --queue and run by the next pass.
xs config set copy.max_cross_region_jobs 1 -q
xs --account alice volume create big --size 16M --block-size 64K -q
random_file "$tmp/big.img" 16 29
start_server wb account=alice
quietly nbdcopy "$tmp/big.img" "$(uri big)"
stop_server "$server_pid"
xs --account alice snapshot create big --wait --name b -q
"$xsnap" --account alice copy big@b --to-region r2 --to-account carol \
  --name slow --bandwidth 4M -q >/dev/null 2>&1 &
slow=$!
for _ in $(seq 100); do
  [ "$(json --account alice job list --outgoing \
         | jq '[.[] | select(.status == "running")] | length')" = 1 ] && break
  sleep 0.05
done
check "a second cross-region copy is refused while one runs" -- \
  fails xs --account alice copy db@s2 --to-region r2 --name second
like "$(err)" "at most 1 may run at once" "... naming the limit"
out=$(json --account alice copy db@s2 --to-region r2 --name queued --queue)
is "$(jq -r .queued <<<"$out")" true "with --queue it is queued"
job=$(jq -r .job <<<"$out")
is "$(json --account alice job list | jq -r --arg j "$job" \
        '.[] | select(.id == $j) | .status')" queued "its job says so"
wait "$slow"
like "$(xs policy run-due)" "queued copy $job done" \
  "the next pass runs it once the first is done"
is "$(json --account alice job list | jq -r --arg j "$job" \
        '.[] | select(.id == $j) | .status')" done "its job is done"
is "$(read_in r2 alice db@queued)" "$(read_in local alice db@s2)" \
  "and the copy is byte-identical"
xs config reset copy.max_cross_region_jobs -q

done_testing
