#!/usr/bin/env bash
# Every action the permission policy language names (lib/access/permdoc.c,
# docs/FORMAT.md), taken once under a policy document that denies it and
# once allowed: the denied attempt is refused as a permission, changes
# nothing and leaves a "denied" audit row; the allowed one succeeds and,
# for the actions the audit log promises to record, leaves an "allowed"
# row.  Then: the audit row of a delete is written in the delete's own
# transaction (a catalog that refuses audit rows refuses the delete),
# retention deletes are checked and audited, and an account that still
# has things is not deleted, with a message naming what remains.
. "$(dirname "$0")/functions.sh"
require_tool nbdkit nbdinfo nbdcopy jq sqlite3

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
audit_count () {                # audit_count ACTION OUTCOME
  xs --json audit | jq --arg a "$1" --arg o "$2" \
    '[.[] | select(.action == $a and .outcome == $o)] | length'
}
deny_doc () {                   # deny_doc ACTION: a document denying it
  printf '{"version": "2.0", "statement": [{"effect": "deny",
  "action": "%s", "resource": "*"}]}\n' "$1" > "$tmp/deny.json"
}
snap_id () { xs --account "$1" --json snapshot show "$2" | jq -r .id; }

# nbdkit serving the store read-only (the plugin then opens volumes for
# reading, xsnap:ReadVolume) as alice.
start_ro_server () {
  sock=$tmp/ro.sock
  rm -f "$sock" "$tmp/ro.pid"
  "${nbdkit_env[@]}" nbdkit -r -f -U "$sock" -P "$tmp/ro.pid" --log=stderr \
    "$plugin" store="$store" account=alice 2>>"$tmp/ro.log" &
  server_pid=$!
  started_pids+=("$server_pid")
  for _ in $(seq 100); do
    [ -s "$tmp/ro.pid" ] && [ -S "$sock" ] && break
    sleep 0.1
  done
}
# A plain nbdkit memory disk to import from and export to.
start_peer () {
  peer_sock=$tmp/peer.sock
  rm -f "$peer_sock"
  nbdkit -f -U "$peer_sock" memory 1M 2>>"$tmp/peer.log" &
  started_pids+=("$!")
  for _ in $(seq 100); do [ -S "$peer_sock" ] && break; sleep 0.1; done
}

xs init -q
xs account create alice -q
xs account create bob -q
xs account create carol --collaborator-of alice -q
xs region add r2 -q
xs --account alice volume create v1 --size 1M --block-size 64K -q
xs --account alice snapshot create v1 --wait --name s1 -q
xs --account alice volume create clone1 --from-snapshot v1@s1 -q
xs --account alice volume create gone --size 1M -q
xs --account alice snapshot create v1 --wait --name gone -q
xs --account alice volume create ch --size 1M -q
xs --account alice snapshot create ch --wait --name c1 -q
xs --account alice policy create pol --every 1h --retain 1 -q
xs --account alice policy create oldpol --every 1h --retain 1 -q
xs --account alice account create dave --collaborator-of alice -q
xs --account alice key create k1 -q
printf 'a passphrase of some length\n' > "$tmp/pass"
xs policy-doc attach alice <(echo '{"version":"2.0","statement":[{"effect":"allow","action":"xsnap:DescribeVolumes","resource":"*"}]}') --name mine -q
start_peer
other=$tmp/other
XSNAP_STORE=$other xs init -q
XSNAP_STORE=$other xs account create bob -q

# One function per action: take it once (as the row's caller).  The same
# call runs denied first, then allowed, so each must be able to run
# twice with only the allowed run having any effect.
do_CreateVolume () { xs --account alice volume create newvol --size 1M; }
do_DeleteVolume () { xs --account alice volume delete gone; }
do_DescribeVolumes () { xs --account alice volume show v1; }
do_ResizeVolume () { xs --account alice volume resize v1 --size 2M; }
do_ResetVolume () { xs --account alice volume reset clone1 --to v1@s1; }
do_HydrateVolume () { xs --account alice volume hydrate clone1; }
do_ImportVolume () {
  xs --account alice import "$(uri '' "$peer_sock")" --volume imported
}
do_AttachVolume () {
  start_server att account=alice || return 1
  nbdinfo --size "$(uri v1)"; local s=$?
  stop_server "$server_pid"; return $s
}
do_ReadVolume () {
  start_ro_server; nbdinfo --size "$(uri v1)"; local s=$?
  stop_server "$server_pid"; return $s
}
do_CreateSnapshot () { xs --account alice snapshot create v1 --wait --name s2; }
do_DeleteSnapshot () { xs --account alice snapshot delete v1@gone; }
do_DescribeSnapshots () { xs --account alice snapshot show v1@s1; }
do_ReadSnapshot () { xs --account alice verify v1@s1; }
do_ExportSnapshot () {
  xs --account alice export v1@s1 "$(uri '' "$peer_sock")"
}
# A snapshot is received into another store (this one holds it already).
do_ReceiveSnapshot () {
  XSNAP_STORE=$other xs --account bob receive --name recv -i "$tmp/stream"
}
do_CreateVolumeFromSnapshot () {
  xs --account alice volume create clone2 --from-snapshot v1@s1
}
do_ShareSnapshot () { xs --account alice share v1@s1 --with bob; }
do_UnshareSnapshot () { xs --account alice unshare v1@s1 --with bob; }
do_AcceptShare () {
  xs --account bob share accept \
    "$(xs --account bob --json share list --with-me \
         | jq -r '[.shared_with_me[] | select(.status == "pending")][0].id')"
}
do_DescribeShares () { xs --account alice share list --by-me; }
do_ShareChain () { xs --account alice share ch --chain --with bob; }
do_UnshareChain () { xs --account alice unshare ch --chain --with bob; }
do_CopySnapshot () { xs --account alice copy v1@s1 --encrypt --name cp1; }
do_CopySnapshotCrossAccount () {
  xs --account alice copy v1@s1 --to-account carol --name cp2
}
do_CopySnapshotCrossRegion () {
  xs --account alice copy v1@s1 --to-region r2 --name cp3
}
do_CopyAutoSnapshotPolicyCrossAccount () {
  xs --account alice policy copy-to pol --account carol
}
do_DescribeJobs () { xs --account alice job list; }
do_CreateAutoSnapshotPolicy () {
  xs --account alice policy create newpol --every 1h --retain 1
}
do_DeleteAutoSnapshotPolicy () { xs --account alice policy delete oldpol; }
do_AttachAutoSnapshotPolicy () { xs --account alice policy attach pol v1; }
do_DetachAutoSnapshotPolicy () { xs --account alice policy detach pol v1; }
do_DescribeAutoSnapshotPolicies () { xs --account alice policy list; }
do_CreateAccount () {
  xs --account alice account create erin --collaborator-of alice
}
do_DeleteAccount () { xs --account alice account delete dave; }
do_DescribeAccounts () { xs --account alice account list; }
do_AttachPolicyDoc () {
  xs --account alice policy-doc attach alice \
    <(echo '{"version":"2.0","statement":[{"effect":"allow","action":"xsnap:DescribeVolumes","resource":"*"}]}') \
    --name second
}
do_DetachPolicyDoc () { xs --account alice policy-doc detach alice mine; }
do_DescribePolicyDocs () { xs --account alice policy-doc list alice; }
do_MapUid () { xs account map-uid 4242 alice; }
do_DescribeAudit () { xs --account alice audit; }
do_CreateKey () { xs --account alice key create k2; }
do_DisableKey () { xs --account alice key disable k1; }
do_GrantKey () { xs --account alice key grant k1 --to bob; }
do_DescribeKeys () { xs --account alice key list; }
do_ExportKey () {
  xs --account alice key export k1 -o "$tmp/k1.key" \
    --passphrase-file "$tmp/pass"
}
# A key is imported into another store (this one holds it already).
do_ImportKey () {
  XSNAP_STORE=$other xs --account bob key import "$tmp/k1.key" \
    --name fromalice --passphrase-file "$tmp/pass"
}
do_CreateRegion () { xs region add r3; }
do_DeleteRegion () { xs region remove r3; }
do_DescribeRegions () { xs --account alice region list; }
do_RunGc () { xs --account alice gc; }
do_DescribeMetrics () { xs metrics; }
do_SetConfig () { xs config set share.max_days 100; }

# ACTION CALLER AUDITED: the caller the deny is attached to, and whether
# an allowed run is recorded in the audit log (changes of sharing, copies,
# deletes, accounts, permissions, keys, regions and settings are; reads,
# lists and the creation of one's own volumes and snapshots are not).
# The rows are in the order of the actions in lib/access/permdoc.c, except where
# one row needs what an earlier one made (a region to remove, a key file
# to import, a share to accept, a key to grant before it is disabled).
matrix='
CreateVolume alice no
DeleteVolume alice yes
DescribeVolumes alice no
ResizeVolume alice no
ResetVolume alice no
HydrateVolume alice no
ImportVolume alice no
AttachVolume alice no
ReadVolume alice no
CreateSnapshot alice no
DeleteSnapshot alice yes
DescribeSnapshots alice no
ReadSnapshot alice no
ExportSnapshot alice no
ReceiveSnapshot bob no
CreateVolumeFromSnapshot alice no
ShareSnapshot alice yes
AcceptShare bob yes
DescribeShares alice no
UnshareSnapshot alice yes
ShareChain alice yes
UnshareChain alice yes
CopySnapshot alice yes
CopySnapshotCrossAccount alice yes
CopySnapshotCrossRegion alice no
CopyAutoSnapshotPolicyCrossAccount alice yes
DescribeJobs alice no
CreateAutoSnapshotPolicy alice no
DeleteAutoSnapshotPolicy alice no
AttachAutoSnapshotPolicy alice no
DetachAutoSnapshotPolicy alice no
DescribeAutoSnapshotPolicies alice no
CreateAccount alice yes
DeleteAccount alice yes
DescribeAccounts alice no
AttachPolicyDoc alice yes
DetachPolicyDoc alice yes
DescribePolicyDocs alice no
MapUid admin yes
DescribeAudit alice no
CreateKey alice yes
GrantKey alice yes
ExportKey alice yes
ImportKey bob yes
DisableKey alice yes
DescribeKeys alice no
CreateRegion admin yes
DeleteRegion admin yes
DescribeRegions alice no
RunGc alice no
DescribeMetrics admin no
SetConfig admin yes
'

# The matrix covers exactly the actions the language knows.
known=$(sed -n '/^static const char \*const known_actions/,/^};/p' \
          "$top/lib/access/permdoc.c" | grep -o '"xsnap:[A-Za-z]*"' | tr -d '"' \
          | sed 's/^xsnap://' | sort | tr '\n' ' ')
is "$(awk 'NF { print $1 }' <<<"$matrix" | sort | tr '\n' ' ')" "$known" \
   "the matrix has one row for each action of lib/access/permdoc.c"

# A stream to receive.
xs --account alice send v1@s1 -o "$tmp/stream" 2>/dev/null

while read -r action caller audited; do
  [ -n "$action" ] || continue
  export XSNAP_STORE=$store
  case $action in ImportKey|ReceiveSnapshot) export XSNAP_STORE=$other ;; esac
  deny_doc "xsnap:$action"
  quietly xs policy-doc attach "$caller" "$tmp/deny.json" --name deny \
    || diag "cannot attach a document denying $action"
  before=$(audit_count "xsnap:$action" denied)
  check "$action denied: refused" -- fails "do_$action"
  # The NBD server says "no such export", as it does for what a caller
  # may not see; the CLI says why.
  case $action in
    AttachVolume|ReadVolume) ;;
    *) like "$(err)" "permission denied" "$action denied: as a permission" ;;
  esac
  is "$(audit_count "xsnap:$action" denied)" $((before + 1)) \
     "$action denied: one denied audit row"
  quietly xs policy-doc detach "$caller" deny || true
  before=$(audit_count "xsnap:$action" allowed)
  denied=$(audit_count "xsnap:$action" denied)
  check "$action allowed: done" -- quietly "do_$action"
  is "$(audit_count "xsnap:$action" denied)" "$denied" \
     "$action allowed: no denied audit row"
  if [ "$audited" = yes ]; then
    is "$(audit_count "xsnap:$action" allowed)" $((before + 1)) \
       "$action allowed: one allowed audit row"
  fi
done <<<"$matrix"
export XSNAP_STORE=$store

# What the denied runs did not do, the allowed ones did.
is "$(xs --json account list | jq -r '[.[].id] | join(" ")')" \
   "admin alice bob carol erin" "dave was deleted only when allowed"
is "$(xs --json region list | jq -r '[.[].name] | join(" ")')" \
   "local r2" "r3 was added and removed"
is "$(xs --json config list \
        | jq -r '.[] | select(.key == "share.max_days") | .value')" 100 \
   "the setting was changed"

# A deny of DeleteAccount attached to the administrator holds for it too.
xs account create frank -q
deny_doc "xsnap:DeleteAccount"
xs policy-doc attach admin "$tmp/deny.json" --name deny -q
check "a denied administrator cannot delete an account" -- \
  fails xs account delete frank
like "$(err)" "permission denied" "... as a permission"
xs policy-doc detach admin deny -q
check "without the document it can" -- quietly xs account delete frank

# An allow the administrator attaches delegates store administration; one
# an account attaches to itself does not.
cat > "$tmp/regions.json" <<'EOF'
{"version": "2.0", "statement": [{"effect": "allow",
  "action": ["xsnap:CreateRegion", "xsnap:DeleteRegion"], "resource": "*"}]}
EOF
check "bob may not add a region" -- fails xs --account bob region add r4
xs --account bob policy-doc attach bob "$tmp/regions.json" --name self -q
check "nor with an allow he attached himself" -- \
  fails xs --account bob region add r4
xs --account bob policy-doc detach bob self -q
xs policy-doc attach bob "$tmp/regions.json" --name granted -q
check "with one the administrator attached, he may" -- \
  quietly xs --account bob region add r4
check "... and remove it" -- quietly xs --account bob region remove r4
xs policy-doc detach bob granted -q

# The audit row of a delete is written in the delete's transaction: a
# catalog that refuses audit rows refuses the delete.
xs --account alice volume create tx --size 1M -q
xs --account alice snapshot create tx --wait --name s -q
xs account create hank -q
sqlite3 "$store/xsnap.db" "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is unavailable'); END;"
check "a snapshot delete whose audit row fails is refused" -- \
  fails xs --account alice snapshot delete tx@s
is "$(xs --account alice --json snapshot show tx@s | jq -r .status)" \
   available "... and the snapshot is still there"
check "a volume delete whose audit row fails is refused" -- \
  fails xs --account alice volume delete tx
check "... and the volume is still there" -- \
  quietly xs --account alice volume show tx
check "an account delete whose audit row fails is refused" -- \
  fails xs account delete hank
check "... and the account is still there" -- \
  quietly xs account show hank
sqlite3 "$store/xsnap.db" "DROP TRIGGER refuse_audit"
check "with the audit log back, the snapshot delete works" -- \
  quietly xs --account alice snapshot delete tx@s
is "$(audit_count xsnap:DeleteSnapshot allowed)" 2 \
   "... audited once (with the matrix's one)"

# Retention: what a policy deletes is checked and audited.
now=$(date +%s)
at () { XSNAP_NOW=$(( now + $1 )) "$xsnap" "${@:2}"; }
xs --account alice volume create rv --size 1M -q
xs --account alice policy create keep1 --every 1h --retain 1 -q
xs --account alice policy attach keep1 rv -q
at 60 policy run-due -q >/dev/null
first=$(xs --account alice --json snapshot list rv | jq -r '.snapshots[0].id')
at 3760 policy run-due -q >/dev/null
is "$(xs --account alice --json snapshot list rv | jq '.snapshots | length')" \
   1 "retention keeps one snapshot"
is "$(xs --json audit | jq -r --arg id "$first" \
        '[.[] | select(.action == "xsnap:DeleteSnapshot"
                       and (.resource | endswith("snapshot/" + $id)))
         | .outcome + " " + .actor] | join(",")')" "allowed alice" \
   "the retention delete is audited, as the policy's account"
like "$(xs --json audit | jq -r --arg id "$first" \
          '.[] | select(.resource | endswith("snapshot/" + $id))
           | .detail')" "retention of policy" "... saying it was retention"
deny_doc "xsnap:DeleteSnapshot"
xs policy-doc attach alice "$tmp/deny.json" --name deny -q
denied_deletes=$(audit_count xsnap:DeleteSnapshot denied)
at 7460 policy run-due -q >/dev/null 2>&1 || true
is "$(xs --account alice --json snapshot list rv | jq '.snapshots | length')" \
   2 "a deny of DeleteSnapshot holds against retention"
is "$(audit_count xsnap:DeleteSnapshot denied)" $((denied_deletes + 1)) \
   "... and the refusal is audited"
xs policy-doc detach alice deny -q

# An account that still has things is not deleted; the message names them.
xs account create gina -q
xs --account gina volume create gv --size 1M -q
xs --account gina snapshot create gv --wait --name s -q
xs --account gina key create gk -q
check "gina, with a volume, is not deleted" -- fails xs account delete gina
like "$(err)" "volume" "... naming the volume"
xs --account gina snapshot delete gv@s -q
xs --account gina volume delete gv -q
check "gina, with a deleted snapshot gc has not reclaimed, is not deleted" -- \
  fails xs account delete gina
like "$(err)" "snapshot.*gc" "... saying gc reclaims it"
unlike_fk () { ! grep -qi "foreign key" "$tmp/err"; }
check "... not a bare foreign-key error" -- unlike_fk
xs gc -q >/dev/null 2>&1
check "gina, with a key, is not deleted" -- fails xs account delete gina
like "$(err)" "key" "... naming the key"
check "... not a bare foreign-key error" -- unlike_fk
is "$(xs --json account list | jq -r '[.[].id] | index("gina") != null')" \
   true "gina is still there"

done_testing
