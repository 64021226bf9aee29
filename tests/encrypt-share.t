#!/usr/bin/env bash
# Encrypted snapshots under the clouds' sharing and copying rules: what a
# default key protects is not shared (copied under a custom key, it is);
# a sharee needs the key granted, and its disks and copies are
# re-encrypted under a key of its own; copies to other accounts and
# regions are re-encrypted under the destination's key and stay
# incremental; a disabled key stops them.  Every copy and disk reads back
# byte-identical through NBD, and no plaintext reaches any repository.
. "$(dirname "$0")/functions.sh"

marker=XSNAP-SHARED-SECRET-51c0de
xs init -q
xs -q account create alice
xs -q account create bob --collaborator-of alice
xs -q account create carol
xs -q region add r2
a=(--account alice)
c=(--account carol)

python3 - "$tmp/data.img" "$marker" <<'PY'
import sys, os
m = sys.argv[2].encode()
with open(sys.argv[1], "wb") as f:
    f.write((m * (1048576 // len(m) + 1))[:1048576])
    f.write(bytes(1048576))
    f.write(os.urandom(1048576) + m + os.urandom(1048576 - len(m)))
PY
sum=$(sha256sum < "$tmp/data.img" | cut -d' ' -f1)
xs -q "${a[@]}" volume create ev --size 4M --block-size 64K --encrypt
start_server w account=alice
nbdcopy "$tmp/data.img" "$(uri ev)"
stop_server "$server_pid"
xs -q "${a[@]}" snapshot create ev --wait --name s1
default_key=$(xs "${a[@]}" --json key list | jq -r '.keys[] | select(.default) | .id')

# What the default key protects is not shared.
out=$(xs "${a[@]}" share ev@s1 --with carol 2>&1) && st=0 || st=$?
like "$out" "encrypted under the default key of account 'alice'.*copy it under a custom key" \
  "a snapshot under the default key cannot be shared"
out=$(xs "${a[@]}" share ev --chain --with carol 2>&1) && st=0 || st=$?
like "$out" "encrypted under the default key" "  nor the chain of a volume under it"
like "$(xs --json audit | jq -r '.[] | select(.action == "xsnap:ShareSnapshot") | .outcome + " " + .detail')" \
  "denied encrypted under the default key" "  the refusal is audited"

# Copied under a custom key, it is.
xs -q "${a[@]}" key create k1
k1=$(xs "${a[@]}" --json key list | jq -r '.keys[] | select(.name == "k1") | .id')
out=$(xs "${a[@]}" copy ev@s1 --key k1 2>&1) && st=0 || st=$?
like "$out" "snapshot ev@s1 exists there" "a copy in place needs another name"
json=$(xs "${a[@]}" --json copy ev@s1 --key k1 --name s1k)
is "$(jq -r '.snapshot.key_id' <<<"$json")" "$k1" "copy --key k1: the copy is under k1"
is "$(jq -r '.chunks_sent == .chunks and .chunks > 0' <<<"$json")" true \
  "  every chunk was re-encrypted for it"
sk=$(jq -r .snapshot.id <<<"$json")
is "$(read_in local alice ev@s1k)" "$sum" "  it reads back byte-identical"
check "share the copy with carol" -- quietly xs "${a[@]}" share ev@s1k --with carol
check "carol accepts" -- quietly xs "${c[@]}" share accept \
  "$(xs "${c[@]}" --json share list --with-me | jq -r '.shared_with_me[0].id')"

# The sharee needs the key.
out=$(xs "${c[@]}" volume create cv --from-snapshot "$sk" 2>&1) && st=0 || st=$?
like "$out" "encrypted under key 'k1' of account 'alice', which is not granted to account 'carol'" \
  "without a grant of k1, carol cannot make a disk of it"
out=$(xs "${c[@]}" copy "$sk" --to-account carol 2>&1) && st=0 || st=$?
like "$out" "not granted to account 'carol'" "  nor copy it"
check "alice grants k1 to carol" -- quietly xs "${a[@]}" key grant k1 --to carol

# A sharee's disk is under a key of its own.
out=$(xs "${c[@]}" volume create cv --from-snapshot "$sk" --key "$k1" 2>&1) && st=0 || st=$?
like "$out" "no key '$k1' in account 'carol'" "carol cannot make her disk under alice's key"
check "carol makes a disk of the shared snapshot" -- \
  quietly xs "${c[@]}" volume create cv --from-snapshot "$sk"
carol_key=$(xs "${c[@]}" --json key list | jq -r '.keys[] | select(.default and .granted_to == "") | .id')
is "$(xs "${c[@]}" --json volume show cv | jq -r .key_id)" "$carol_key" \
  "  it is encrypted under carol's default key"
# Snapshot it before anything hydrates it: every block still reads
# through to alice's snapshot.
json=$(xs "${c[@]}" --json snapshot create cv --wait --name c1)
is "$(jq -r '.key_id' <<<"$json")" "$carol_key" "carol's snapshot of it is under her key"
is "$(jq -r '.changed_blocks' <<<"$json")" 48 "  and re-encrypts every block that is not zero (48)"
check "  verify: every chunk is in carol's repository, authentic" -- \
  quietly xs "${c[@]}" verify cv@c1
is "$(read_in local carol cv@c1)" "$sum" "  it reads back byte-identical"
is "$(read_in local carol cv)" "$sum" "the disk reads back byte-identical"

# A sharee's copy is re-encrypted under its key.
out=$(xs "${c[@]}" copy "$sk" --to-account carol --key k1 2>&1) && st=0 || st=$?
like "$out" "no key 'k1' in account 'carol'" "carol cannot copy under alice's key"
json=$(xs "${c[@]}" --json copy "$sk" --to-account carol --name mine)
is "$(jq -r .snapshot.key_id <<<"$json")" "$carol_key" "carol's copy is under her default key"
is "$(read_in local carol ev@mine)" "$sum" "  it reads back byte-identical"

# To another account: under the destination's default key.
json=$(xs "${a[@]}" --json copy ev@s1 --to-account bob)
bob_key=$(xs --account bob --json key list | jq -r '.keys[] | select(.default) | .id')
is "$(jq -r .snapshot.key_id <<<"$json")" "$bob_key" "a copy to bob is under bob's default key"
is "$(read_in local bob ev@s1)" "$sum" "  bob reads it back byte-identical"
out=$(xs "${a[@]}" copy ev@s1 --to-account bob --name other --key bobs 2>&1) && st=0 || st=$?
like "$out" "no key 'bobs' in account 'bob'" "  --key names a key of the destination"

# To another region: re-encrypted, then incremental under the same key.
json=$(xs "${a[@]}" --json copy ev@s1 --to-region r2)
is "$(jq -r .snapshot.key_id <<<"$json")" "$default_key" \
  "a copy to r2 is under alice's key (the source's)"
r2s1=$(jq -r .snapshot.id <<<"$json")
full=$(jq -r .chunks_sent <<<"$json")
is "$(read_in r2 alice ev@copy_local_s1)" "$sum" "  it reads back byte-identical in r2"
start_server w2 account=alice
python3 - "$(uri ev)" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * 65536, 5 * 65536)
h.flush()
PY
export_sum "$(uri ev)" > "$tmp/sum2"
stop_server "$server_pid"
xs -q "${a[@]}" snapshot create ev --wait --name s2
json=$(xs "${a[@]}" --json copy ev@s2 --to-region r2)
is "$(jq -r .chunks_sent <<<"$json")" 1 \
  "the next copy to r2 re-encrypts only the changed chunk (1 of $full)"
is "$(read_in r2 alice ev@copy_local_s2)" "$(cat "$tmp/sum2")" "  it reads back byte-identical"
m1=$(xs --json --account alice --region r2 snapshot show ev@copy_local_s1 | jq -r .id)
check "  both copies share one data key in r2" -- \
  test "$(strings "$store"/regions/r2/repo/alice/manifests/"$m1" | grep -o '"data_key": *"[0-9a-f]*"')" = \
       "$(strings "$store"/regions/r2/repo/alice/manifests/"$(jq -r .snapshot.id <<<"$json")" | grep -o '"data_key": *"[0-9a-f]*"')"

# An unencrypted snapshot's copy can be encrypted.
xs -q "${a[@]}" volume create pv --size 4M --block-size 64K
start_server p account=alice
nbdcopy "$tmp/data.img" "$(uri pv)"
stop_server "$server_pid"
xs -q "${a[@]}" snapshot create pv --wait --name s1
json=$(xs "${a[@]}" --json copy pv@s1 --encrypt --name enc)
is "$(jq -r .snapshot.encrypted <<<"$json")" true "copy --encrypt of an unencrypted snapshot"
is "$(read_in local alice pv@enc)" "$sum" "  it reads back byte-identical"

# A sharee's disk of an unencrypted snapshot: its first snapshot, taken
# before the disk is hydrated, holds every block in the sharee's own
# repository too.
check "share pv@s1 with carol" -- quietly xs "${a[@]}" share pv@s1 --with carol
xs -q "${c[@]}" share accept \
  "$(xs "${c[@]}" --json share list --with-me | jq -r '.shared_with_me[] | select(.status == "pending") | .id')"
xs -q "${c[@]}" volume create pc --from-snapshot "$(xs "${a[@]}" --json snapshot show pv@s1 | jq -r .id)"
xs -q "${c[@]}" snapshot create pc --wait --name p1
check "  verify of carol's first snapshot of it" -- quietly xs "${c[@]}" verify pc@p1

# No plaintext anywhere but in unencrypted chunks.
leaks=0 plain=0
for f in $(grep -rl -- "$marker" "$store"/regions/*/repo); do
  if [ "$(head -c 5 "$f" | tail -c 1 | od -An -tu1 | tr -d ' ')" = 1 ]; then
    plain=$((plain + 1))
  else
    leaks=$((leaks + 1)); diag "the pattern is in $f"
  fi
done
is "$leaks" 0 "the pattern is in no repository file but unencrypted chunks"
check "  (which do hold it: $plain)" -- test "$plain" -gt 0

# A disabled key stops new reads and copies.
check "alice disables k1" -- quietly xs "${a[@]}" key disable k1
out=$(xs "${c[@]}" copy "$sk" --to-account carol --name again 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "carol's copy is refused: k1 is disabled"
out=$(xs "${c[@]}" volume create cv2 --from-snapshot "$sk" 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "  and so is a new disk"
out=$(xs "${a[@]}" copy ev@s1k --to-region r2 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "  and alice's own copy"
is "$(read_in local carol cv@c1)" "$sum" \
  "carol's own re-encrypted snapshot does not depend on alice's key"

done_testing
