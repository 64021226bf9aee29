#!/usr/bin/env bash
# The NBD server enforces accounts: a local client on the Unix socket is
# the account its uid maps to (a second local user made with useradd), a
# remote client is the one account an `xsnap serve --listen` server was
# started for, TLS with that account's pre-shared key required.  Exports
# a client may not see are neither listed nor opened (they look missing),
# and the refusal is audited.
. "$(dirname "$0")/functions.sh"

user=xsnap-nbd-test
fails () { ! "$@" >/dev/null 2>&1; }
require_tool useradd runuser
require_root "it adds a local user"

xs init -q
xs account create alice -q
xs account create bob -q
xs --account alice volume create avol --size 4M -q
xs --account bob volume create bvol --size 4M -q
xs --account admin volume create rootvol --size 4M -q

# The written content of bob's volume, to read back as bob.
random_file "$tmp/b.img" 4 7
start_server plain
check "a server acting as the administrator does not serve bob's volume" \
  -- fails nbdcopy "$tmp/b.img" "$(uri bvol "$tmp/plain.sock")"
stop_server "$server_pid"
# (that server acted as the administrator: bob's volume is not in its
# namespace, so the copy above must have failed)
start_server asbob account=bob
check "a server with account=bob serves bob's volume" -- \
  quietly nbdcopy "$tmp/b.img" "$(uri bvol)"
stop_server "$server_pid"

# A local user mapped to bob.
if ! id "$user" >/dev/null 2>&1; then
  if ! useradd -M -r -s /usr/sbin/nologin "$user"; then
    # Root can always add a user on Debian: this is a failure, not a skip.
    printf 'Bail out! root cannot add the local user %s\n' "$user"
    exit 1
  fi
  at_exit userdel "$user"
fi
uid=$(id -u "$user")
chmod 755 "$tmp"
as_user () { runuser -u "$user" -- "$@"; }
list_as_user () { as_user nbdinfo --list --json "$(uri '')" 2>/dev/null \
                    | jq -r '.exports[]."export-name"' | LC_ALL=C sort | tr '\n' ' '; }

start_server shared
chmod 666 "$sock"

# Unmapped: sees nothing, opens nothing.
is "$(list_as_user)" "" "an unmapped uid lists no exports"
check "an unmapped uid cannot open bob's volume" -- \
  fails as_user nbdinfo "$(uri bvol)"
like "$(cat "$tmp/shared.log")" "uid $uid is not mapped" \
  "the server log says why"

xs account map-uid "$uid" bob -q
is "$(list_as_user)" "bvol " "the mapped user lists bob's exports only"
is "$(as_user nbdcopy "$(uri bvol)" - | sha256sum | cut -d' ' -f1)" \
   "$(sha256sum < "$tmp/b.img" | cut -d' ' -f1)" \
   "the mapped user reads bob's volume"
check "the mapped user cannot open alice's volume" -- \
  fails as_user nbdinfo "$(uri avol)"
check "the mapped user cannot open the administrator's volume" -- \
  fails as_user nbdinfo "$(uri rootvol)"
root_list=$(nbdinfo --list --json "$(uri '')" \
              | jq -r '.exports[]."export-name"' | LC_ALL=C sort | tr '\n' ' ')
is "$root_list" "rootvol " "root is the administrator: its own namespace"

# Snapshots: bob's own by name; alice's only once shared and accepted.
xs --account bob snapshot create bvol --name s1 --wait -q
xs --account alice snapshot create avol --name a1 --wait -q
asnap=$(xs --account alice --json snapshot show avol@a1 | jq -r .id)
is "$(list_as_user)" "bvol bvol@s1 " "bob's snapshot is listed"
check "alice's snapshot cannot be opened before it is shared" -- \
  fails as_user nbdinfo "$(uri "$asnap")"
xs --account alice share avol@a1 --with bob -q
check "nor while the share is pending" -- \
  fails as_user nbdinfo "$(uri "$asnap")"
share=$(xs --account bob --json share list --with-me \
          | jq -r '.shared_with_me[0].id')
xs --account bob share accept "$share" -q
is "$(list_as_user)" "bvol bvol@s1 $asnap " \
  "once accepted, the shared snapshot is listed by its id"
check "and can be read" -- quietly as_user nbdcopy "$(uri "$asnap")" null:
check "but not written" -- \
  fails as_user nbdsh -u "$(uri "$asnap")" -c 'h.pwrite(b"x" * 512, 0)'
xs --account alice unshare avol@a1 --with bob -q
is "$(list_as_user)" "bvol bvol@s1 " "unshared: gone from the list"
check "unshared: cannot be opened" -- \
  fails as_user nbdinfo "$(uri "$asnap")"

# A policy document denying reads of volumes hides bob's volume from bob.
cat > "$tmp/deny.json" <<'EOF'
{"version": "2.0",
 "statement": [{"effect": "deny", "action": ["xsnap:AttachVolume"],
                "resource": ["xsnap:*:bob:volume/*"]}]}
EOF
xs policy-doc attach bob "$tmp/deny.json" -q
check "a denied volume cannot be opened for writing" -- \
  fails as_user nbdinfo "$(uri bvol)"
check "but the snapshot still can" -- \
  quietly as_user nbdcopy "$(uri bvol@s1)" null:
like "$(xs --json audit | jq -r '.[] | select(.outcome == "denied")
          | .actor + " " + .action' | sort -u | tr '\n' ' ')" \
  "bob xsnap:AttachVolume" "the denied open is in the audit log"
xs policy-doc detach bob deny -q
stop_server "$server_pid"

# TCP: one account per server, TLS with its pre-shared key required.
port=$(( 20000 + RANDOM % 20000 ))
"${nbdkit_env[@]}" "$xsnap" --account bob serve --listen "127.0.0.1:$port" -f \
  --pidfile "$tmp/tls.pid" 2>>"$tmp/tls.log" &
tls_pid=$!
started_pids+=("$tls_pid")
psk=$store/tls/bob.psk
# Ready when it answers (slow to start under the sanitizers).
for _ in $(seq 300); do
  [ -s "$tmp/tls.pid" ] && [ -s "$psk" ] \
    && quietly nbdinfo --size \
         "nbds://bob@127.0.0.1:$port/bvol?tls-psk-file=$psk" && break
  sleep 0.1
done
check "the key file is private" -- test "$(stat -c %a "$psk")" = 600
like "$(cat "$psk")" "^bob:[0-9a-f]{64}$" "it holds bob's key only"
tls_uri="nbds://bob@127.0.0.1:$port/bvol?tls-psk-file=$psk"
is "$(nbdcopy "$tls_uri" - | sha256sum | cut -d' ' -f1)" \
   "$(sha256sum < "$tmp/b.img" | cut -d' ' -f1)" \
   "bob reads his volume over TLS"
check "without TLS the server refuses" -- \
  fails nbdinfo "nbd://127.0.0.1:$port/bvol"
printf 'alice:%064d\n' 0 > "$tmp/alice.psk"
check "another account's key does not work" -- \
  fails nbdinfo "nbds://alice@127.0.0.1:$port/bvol?tls-psk-file=$tmp/alice.psk"
check "alice's volume is not served to bob's server" -- \
  fails nbdinfo "nbds://bob@127.0.0.1:$port/avol?tls-psk-file=$psk"
# (A client that failed its handshake may hold the server a while.)
stop_server "$tls_pid" || kill -9 "$tls_pid"

check "serve --listen refuses --unix too" -- \
  fails xs serve --listen 127.0.0.1:1 --unix "$tmp/x.sock"

done_testing
