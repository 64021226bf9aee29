#!/usr/bin/env bash
# Accounts, sharing of snapshots and chains, and permission policies
# through the CLI: every rule's allowed case and
# refused case, the limits at their boundaries (64/65 sharees, 1,024/1,025
# shared snapshots, three years), expiry on an injected clock, the effects
# of unsharing, chains, policy wildcards and denies, malformed documents,
# and the audit log of each.
. "$(dirname "$0")/functions.sh"

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
json () { xs --json "$@"; }
ids_of () { json --account "$1" snapshot list | jq -r '[.snapshots[].id] | sort | join(" ")'; }
audit_count () {                # audit_count ACTION OUTCOME
  json audit | jq --arg a "$1" --arg o "$2" \
    '[.[] | select(.action == $a and .outcome == $o)] | length'
}

xs init -q

# Accounts.
xs account create alice --name Alice --email alice@example.com -q
xs account create bob -q
xs account create carol --collaborator-of alice -q
is "$(json account show alice | jq -r '.name + " " + .email')" \
   "Alice alice@example.com" "an account has a name and an email"
is "$(json account show carol | jq -r .collaborator_of)" alice \
   "a collaborator records whose"
is "$(json account list | jq -r '[.[].id] | join(" ")')" \
   "admin alice bob carol" "the administrator is made by init"
check "a second account of one name is refused" -- \
  fails xs account create alice
like "$(err)" "already exists" "... saying so"
check "a bad account name is refused" -- fails xs account create 'a/b'
check "a bad email is refused" -- fails xs account create dave --email nope
check "a collaborator of nobody is refused" -- \
  fails xs account create dave --collaborator-of nobody
check "bob may not create accounts for others" -- \
  fails xs --account bob account create eve --collaborator-of alice
like "$(err)" "permission denied" "... a permission"
check "alice may create her own collaborator" -- \
  quietly xs --account alice account create dave --collaborator-of alice
check "a missing account is refused" -- \
  fails xs --account nosuch volume list
check "the administrator cannot be deleted" -- fails xs account delete admin

# Sharing a snapshot.
xs --account alice volume create db --size 2M --block-size 64K -q
random_file "$tmp/db.img" 2 3
start_server w account=alice
quietly nbdcopy "$tmp/db.img" "$(uri db)"
stop_server "$server_pid"
xs --account alice snapshot create db --wait --name s1 -q
s1=$(json --account alice snapshot show db@s1 | jq -r .id)
db_sum=$(sha256sum < "$tmp/db.img" | cut -d' ' -f1)

check "alice shares s1 with bob" -- \
  quietly xs --account alice share db@s1 --with bob
is "$(ids_of bob)" "" "a pending share shows nothing yet"
start_server pend account=bob
check "bob cannot open it through NBD while pending" -- \
  fails nbdinfo --size "$(uri "$s1")"
stop_server "$server_pid"
share=$(json --account bob share list --with-me \
          | jq -r '.shared_with_me[0].id')
is "$(json --account bob share list --with-me \
        | jq -r '.shared_with_me[0] | .status + " " + .owner')" \
   "pending alice" "bob sees the invitation, pending"
check "carol cannot accept bob's invitation" -- \
  fails xs --account carol share accept "$share"
check "bob accepts" -- quietly xs --account bob share accept "$share"
is "$(ids_of bob)" "$s1" "now bob lists it, by id"
is "$(json --account bob snapshot show "$s1" \
        | jq -r '.creation_method + " " + .shared_from')" \
   "shared sharedFrom:alice:local:$s1" \
   "marked shared, with where it came from"
check "bob cannot name it alice's way" -- \
  fails xs --account bob snapshot show db@s1

# What a sharee may do, and may not.
start_server rb account=bob
is "$(export_sum "$(uri "$s1")")" "$db_sum" "bob reads it through NBD"
check "but cannot write it" -- \
  fails nbdsh -u "$(uri "$s1")" -c 'h.pwrite(b"x" * 512, 0)'
stop_server "$server_pid"
check "bob verifies it" -- quietly xs --account bob verify "$s1"
check "bob diffs it" -- quietly xs --account bob diff "$s1" "$s1"
check "bob makes a disk from it" -- \
  quietly xs --account bob volume create mine --from-snapshot "$s1"
check "bob copies it into his own account" -- \
  quietly xs --account bob copy "$s1" --to-account bob --name bobs-copy
check "bob cannot delete it" -- fails xs --account bob snapshot delete "$s1"
like "$(err)" "not change, delete or share it" "... saying why"
check "bob cannot share it on" -- \
  fails xs --account bob share "$s1" --with carol
check "bob cannot unshare it" -- \
  fails xs --account bob unshare "$s1" --with bob

# A pending snapshot cannot be shared: a served volume with much to seal
# stays pending for a while after its point in time.
xs --account alice volume create busy --size 256M -q
random_file "$tmp/busy.img" 256 9
start_server busy account=alice
quietly nbdcopy "$tmp/busy.img" "$(uri busy)"
holder=$(hold_open "$(uri busy)")
pending=$(json --account alice snapshot create busy --name p1)
if [ "$(jq -r .status <<<"$pending")" = pending ]; then
  check "a pending snapshot cannot be shared" -- \
    fails xs --account alice share busy@p1 --with bob
  like "$(err)" "only available snapshots can be shared" "... saying why"
else
  ok 0 "# SKIP the snapshot sealed before it could be shared"
  ok 0 "# SKIP"
fi
XSNAP_ACCOUNT=alice wait_sealed
kill "$holder"
stop_server "$server_pid"
check "once available it can" -- \
  quietly xs --account alice share busy@p1 --with carol
xs --account alice unshare busy@p1 --all -q

# Sharees in alice's organisation accept at once.
check "alice shares s1 with carol" -- \
  quietly xs --account alice share db@s1 --with carol
is "$(ids_of carol)" "$s1" "carol, a collaborator, sees it at once"

# Unsharing: gone from lists, opens and new disks; disks made and copies
# stay; reset to it refused.
check "alice unshares it from bob" -- \
  quietly xs --account alice unshare db@s1 --with bob
is "$(ids_of bob)" "$(json --account bob snapshot show db@bobs-copy \
                      | jq -r .id)" \
   "bob lists only his own copy"
start_server ub account=bob
check "bob can no longer open it" -- fails nbdinfo --size "$(uri "$s1")"
is "$(export_sum "$(uri mine)")" "$db_sum" \
  "the disk bob made still reads the same"
stop_server "$server_pid"
check "bob can make no new disk from it" -- \
  fails xs --account bob volume create mine2 --from-snapshot "$s1"
check "bob cannot reset his disk to it" -- \
  fails xs --account bob volume reset mine --to "$s1"
like "$(err)" "no snapshot" "... it looks missing"
check "bob's copy is unaffected" -- \
  quietly xs --account bob verify db@bobs-copy
check "unsharing what is not shared is refused" -- \
  fails xs --account alice unshare db@s1 --with bob

# Expiry: --expires limits, and the injected clock.
check "an expiry past three years is refused" -- \
  fails xs --account alice share db@s1 --with bob --expires 4y
like "$(err)" "at most 1096 days" "... naming the limit"
check "an expiry in the past is refused" -- \
  fails xs --account alice share db@s1 --with bob --expires 2001-01-01
check "a share for 30 days" -- \
  quietly xs --account alice share db@s1 --with bob --expires 30d
share=$(json --account bob share list --with-me \
          | jq -r '.shared_with_me[0].id')
quietly xs --account bob share accept "$share"
is "$(ids_of bob | tr ' ' '\n' | grep -c "$s1")" 1 "bob sees it now"
later=$(( $(date +%s) + 31 * 86400 ))
is "$(XSNAP_NOW=$later "$xsnap" --account bob --json snapshot list \
        | jq -r '[.snapshots[].id] | map(select(. == "'"$s1"'")) | length')" \
   0 "31 days later the share has expired"

# The 64th sharee is accepted, the 65th refused.
for i in $(seq 1 64); do echo "u$i"; done | while read -r u; do
  "$xsnap" account create "$u" -q
done
xs --account alice volume create wide --size 1M -q
xs --account alice snapshot create wide --wait --name w -q
check "63 sharees at once" -- \
  quietly xs --account alice share wide@w --with "$(seq -s, -f 'u%g' 1 63)"
check "the 64th is accepted" -- \
  quietly xs --account alice share wide@w --with u64
check "the 65th is refused" -- \
  fails xs --account alice share wide@w --with bob
like "$(err)" "shared with 65 accounts; at most 64" "... naming the limit"
check "renewing one of the 64 is not a 65th" -- \
  quietly xs --account alice share wide@w --with u1

# The 1,024th shared snapshot is accepted, the 1,025th refused.  The
# first ones are made fast: rows standing for shares of snapshots.
shared=$(json --account alice share list --by-me \
           | jq '[.shared_by_me[] | .resource_id] | unique | length')
python3 - "$store/xsnap.db" "$(( 1023 - shared ))" <<'EOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
now = time.time_ns()
db.executemany(
    "INSERT INTO shares (id, owner, region, kind, resource_id, sharee,"
    " status, created_ns, expires_ns) VALUES (?, 'alice', 'local',"
    " 'snapshot', ?, 'bob', 'accepted', ?, ?)",
    [("share-f%015x" % i, "snap-f%015x" % i, now, now + 10**18)
     for i in range(int(sys.argv[2]))])
db.commit()
EOF
xs --account alice snapshot create db --wait --name s1024 -q
xs --account alice snapshot create db --wait --name s1025 -q
check "the 1,024th shared snapshot is accepted" -- \
  quietly xs --account alice share db@s1024 --with bob
check "the 1,025th is refused" -- \
  fails xs --account alice share db@s1025 --with bob
like "$(err)" "already shares 1024 snapshots and chains; at most 1024" \
  "... naming the limit"
xs config set share.max_shared 2000 -q
check "with the limit raised, it is accepted" -- \
  quietly xs --account alice share db@s1025 --with bob
xs config reset share.max_shared -q
python3 - "$store/xsnap.db" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DELETE FROM shares WHERE id LIKE 'share-f%'")
db.commit()
EOF

# Chains: every snapshot, present and future.
xs --account alice volume create web --size 1M -q
xs --account alice snapshot create web --wait --name c1 -q
check "alice shares the chain of web with bob" -- \
  quietly xs --account alice share web --chain --with bob
chain=$(json --account bob share list --with-me \
          | jq -r '.shared_with_me[] | select(.kind == "chain") | .id')
quietly xs --account bob share accept "$chain"
xs --account alice snapshot create web --wait --name c2 -q
c2=$(json --account alice snapshot show web@c2 | jq -r .id)
is "$(json --account bob chain list \
        | jq -r '.[0] | [.id, .name, .status, .owner, (.points | tostring)]
                 | join(" ")')" \
   "$chain web available alice 2" \
   "bob's chain list: id, name, status, owner, two points"
is "$(json --account bob chain list | jq -r '.[0].total_bytes')" \
   $((2 * 1048576)) "and its total size"
check "a later snapshot is in the chain" -- \
  quietly xs --account bob snapshot show "$c2"
check "bob makes a disk from a point of the chain" -- \
  quietly xs --account bob volume create from-chain --from-snapshot "$c2"
check "bob deletes the chain from his view" -- \
  quietly xs --account bob chain delete "$chain"
is "$(json --account bob chain list | jq length)" 0 "it is gone from his list"
check "and from his snapshots" -- fails xs --account bob snapshot show "$c2"
check "but alice's chain is untouched" -- \
  quietly xs --account alice snapshot show web@c2
check "and bob's disk from it is still his" -- \
  quietly xs --account bob volume show from-chain
check "alice unshares the chain" -- \
  quietly xs --account alice unshare web --chain --all
check "alice's snapshots are untouched" -- \
  quietly xs --account alice snapshot show web@c1

# Policies: wildcards, explicit deny, the attacher rule, malformed text.
cat > "$tmp/grant.json" <<'EOF'
{
  "version": "2.0",
  "statement": [
    {
      "effect": "allow",
      "action": ["xsnap:*Snapshot*"],
      "resource": "xsnap:*:alice:snapshot/*"
    }
  ]
}
EOF
c1=$(json --account alice snapshot show web@c1 | jq -r .id)
check "without a grant, alice's snapshot looks missing to bob" -- \
  fails xs --account bob snapshot show "$c1"
like "$(err)" "no snapshot" "... missing, not forbidden"
check "bob may attach documents to himself" -- \
  quietly xs --account bob policy-doc attach bob "$tmp/grant.json"
check "which grants nothing over alice's snapshots" -- \
  fails xs --account bob snapshot show "$c1"
xs --account bob policy-doc detach bob grant -q
check "alice cannot attach to bob (not her collaborator)" -- \
  fails xs --account alice policy-doc attach bob "$tmp/grant.json"
check "the administrator attaches the grant to bob" -- \
  quietly xs policy-doc attach bob "$tmp/grant.json"
check "now bob sees alice's snapshot by id (xsnap:*Snapshot* matches)" -- \
  quietly xs --account bob snapshot show "$c1"
check "the wildcard covers DeleteSnapshot too" -- \
  quietly xs --account bob snapshot delete \
    "$(json --account alice snapshot show db@s1025 | jq -r .id)"
cat > "$tmp/deny.json" <<'EOF'
{"version": "2.0", "statement": [
  {"effect": "deny", "action": "xsnap:DeleteSnapshot", "resource": "*"}]}
EOF
xs policy-doc attach bob "$tmp/deny.json" -q
check "an explicit deny beats the allow" -- \
  fails xs --account bob snapshot delete \
    "$(json --account alice snapshot show db@s1024 | jq -r .id)"
like "$(err)" "a policy document denies it" "... saying so"
xs policy-doc attach alice "$tmp/deny.json" -q
check "and beats ownership" -- fails xs --account alice snapshot delete db@s1024
xs policy-doc detach alice deny -q
check "detached, the owner deletes again" -- \
  quietly xs --account alice snapshot delete db@s1024
is "$(json policy-doc list bob | jq -r '[.[].name] | join(" ")')" \
   "grant deny" "the documents attached to bob"
printf '{\n  "version": "2.0",\n  "statement": [\n    {"effect": "alow",\n     "action": "xsnap:CreateSnapshot", "resource": "*"}\n  ]\n}\n' \
  > "$tmp/bad.json"
check "a malformed document is refused" -- \
  fails xs policy-doc attach bob "$tmp/bad.json"
like "$(err)" "bad.json:4: statement 1: unknown effect 'alow'" \
  "... with its line and reason"
printf '{"version": "2.0", "statement": [\n{"effect": "allow", "action": "cvm:*Snapshot*", "resource": "*"}]}' \
  > "$tmp/other.json"
check "another service's action is refused" -- \
  fails xs policy-doc attach bob "$tmp/other.json"
like "$(err)" "other.json:2" "... at its line"
check "unknown policy document names are refused on detach" -- \
  fails xs policy-doc detach bob nope

# The owner deletes a shared snapshot (and its volume) and gc runs: the
# sharee's unhydrated disk still reads the same.
xs --account alice volume create gone --size 2M --block-size 64K -q
start_server wg account=alice
quietly nbdcopy "$tmp/db.img" "$(uri gone)"
stop_server "$server_pid"
xs --account alice snapshot create gone --wait --name g -q
g=$(json --account alice snapshot show gone@g | jq -r .id)
xs --account alice share gone@g --with carol -q
xs --account carol volume create from-gone --from-snapshot "$g" -q
xs --account alice snapshot delete gone@g -q
xs --account alice volume delete gone -q
quietly xs gc
start_server rg account=carol hydrate=false
is "$(export_sum "$(uri from-gone)")" "$db_sum" \
  "after the owner deleted the source and gc ran, the sharee's disk reads the same"
stop_server "$server_pid"

# Accounts that own things cannot go; the audit log has every case.
check "alice cannot be deleted while she owns volumes" -- \
  fails xs account delete alice
like "$(err)" "volume" "... naming what she has"
check "an empty account can" -- quietly xs account delete u64

check "shares are audited, one entry a sharee" -- \
  test "$(audit_count xsnap:ShareSnapshot allowed)" -ge 70
check "refused shares too" -- \
  test "$(audit_count xsnap:ShareSnapshot failed)" -ge 2
check "re-shares as denied" -- \
  test "$(audit_count xsnap:ShareSnapshot denied)" -ge 1
check "unshares" -- test "$(audit_count xsnap:UnshareSnapshot allowed)" -ge 1
check "accepts" -- test "$(audit_count xsnap:AcceptShare allowed)" -ge 3
check "chains" -- test "$(audit_count xsnap:ShareChain allowed)" -ge 1
check "deletes and denied deletes" -- \
  test "$(audit_count xsnap:DeleteSnapshot allowed)" -ge 1 \
    -a "$(audit_count xsnap:DeleteSnapshot denied)" -ge 2
check "policy changes" -- \
  test "$(audit_count xsnap:AttachPolicyDoc allowed)" -ge 3 \
    -a "$(audit_count xsnap:DetachPolicyDoc allowed)" -ge 2
check "account changes" -- \
  test "$(audit_count xsnap:DeleteAccount allowed)" -eq 1
is "$(json --account bob audit | jq '[.[] | select(.actor != "bob"
        and .owner != "bob")] | length')" 0 \
   "an account sees only the entries that concern it"

done_testing
