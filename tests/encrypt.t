#!/usr/bin/env bash
# Encrypted volumes and snapshots: keys and their refusals, a pattern
# written through NBD that reads back byte-identical from a snapshot and
# a clone but appears nowhere in the repository, tampering with a chunk or
# a manifest caught, the live volume's data encrypted at rest too, a
# disabled key and a missing master key refused with
# clear messages.  Sharing and copying: encrypt-share.t.
. "$(dirname "$0")/functions.sh"

marker=XSNAP-SECRET-PATTERN-7f3a9c
xs init -q
is "$(stat -c %a "$store/master.key")" 600 "init makes the master key, mode 0600"
xs -q account create alice
xs -q account create bob
a=(--account alice)
b=(--account bob)

# Keys.
check "key create k1" -- quietly xs "${a[@]}" key create k1
out=$(xs "${a[@]}" key create k1 2>&1) && st=0 || st=$?
like "$out" "account 'alice' has a key of that name" "a second k1 is refused"
out=$(xs "${a[@]}" key create default 2>&1) && st=0 || st=$?
like "$out" "reserved for the account's default key" "'default' is reserved"
k1=$(xs "${a[@]}" --json key list | jq -r '.keys[] | select(.name == "k1") | .id')
like "$k1" '^key-[0-9a-f]{16}$' "key list shows k1 with its id"
check "alice's key material is not in the catalog in plaintext" -- \
  test -z "$(sqlite3 "$store/xsnap.db" "SELECT 1 FROM keys WHERE length(wrapped) != 122")"
out=$(xs "${b[@]}" key disable k1 2>&1) && st=0 || st=$?
like "$out" "no key 'k1' in account 'bob'" "bob cannot disable alice's key (it looks missing)"
out=$(xs "${b[@]}" key disable "$k1" 2>&1) && st=0 || st=$?
like "$out" "no key '$k1' in account 'bob'" "  not even by id"
out=$(xs "${a[@]}" key grant nope --to bob 2>&1) && st=0 || st=$?
like "$out" "no key 'nope' in account 'alice'" "an unknown key cannot be granted"
out=$(xs "${a[@]}" key grant k1 --to nobody 2>&1) && st=0 || st=$?
like "$out" "no account 'nobody'" "a key cannot be granted to an unknown account"
check "key grant k1 --to bob" -- quietly xs "${a[@]}" key grant k1 --to bob
is "$(xs "${b[@]}" --json key list | jq -r '.keys[0].granted_to + " " + .keys[0].name')" \
  "bob k1" "bob sees the key granted to him"
out=$(xs "${b[@]}" volume create bv --size 1M --encrypt --key "$k1" 2>&1) && st=0 || st=$?
like "$out" "no key '$k1' in account 'bob'" "bob cannot encrypt his volumes under alice's key"
like "$(xs --json audit | jq -r '.[] | select(.action | test("Key")) | .action' | sort -u | tr '\n' ' ')" \
  "xsnap:CreateKey xsnap:GrantKey" "key changes are audited"

# An encrypted volume, written through NBD.
check "volume create --encrypt --key k1" -- \
  quietly xs "${a[@]}" volume create ev --size 8M --block-size 64K --encrypt --key k1
is "$(xs "${a[@]}" --json volume show ev | jq -r '.encrypted, .key_id' | tr '\n' ' ')" \
  "true $k1 " "the volume records its key"
python3 - "$tmp/data.img" "$marker" <<'PY'
import sys, os
m = sys.argv[2].encode()
with open(sys.argv[1], "wb") as f:
    f.write((m * (2 * 1048576 // len(m) + 1))[:2 * 1048576])   # 2M of marker
    f.write(bytes(2 * 1048576))                                 # 2M of zeros
    f.write(os.urandom(1048576) + m + os.urandom(1048576 - len(m)))
    f.write(bytes(2 * 1048576))
PY
data_sum=$(sha256sum < "$tmp/data.img" | cut -d' ' -f1)
start_server a account=alice
nbdcopy "$tmp/data.img" "$(uri ev)"
check "snapshot create of the attached encrypted volume" -- \
  quietly xs "${a[@]}" snapshot create ev --name s1 --wait
is "$(export_sum "$(uri ev@s1)")" "$data_sum" "the snapshot reads back byte-identical through NBD"
snap=$(xs "${a[@]}" --json snapshot show ev@s1)
is "$(jq -r '.encrypted, .key_id' <<<"$snap" | tr '\n' ' ')" "true $k1 " \
  "the snapshot records its key"
sid=$(jq -r .id <<<"$snap")
stop_server "$server_pid"

ev_id=$(xs "${a[@]}" --json volume show ev | jq -r .id)
ev_data=$(find "$store" -path "*/volumes/$ev_id/data")
check "the volume's head holds its data at rest encrypted: no pattern in $(basename "$(dirname "$ev_data")")/data" -- \
  test -n "$ev_data" -a -z "$(grep -l -- "$marker" "$ev_data")"
check "  though it is allocated there (the check means something)" -- \
  test "$(du -k "$ev_data" | cut -f1)" -ge 2048
is "$(sqlite3 "$store/xsnap.db" "SELECT head_cipher FROM volumes WHERE id = '$ev_id'")" \
  aes128-xts-4k "  the catalog says how (aes128-xts-4k)"

repo=$store/regions/local/repo
check "the pattern is nowhere in the repository" -- \
  test -z "$(grep -rl -- "$marker" "$store"/regions/*/repo)"
check "  nor in the catalog" -- test -z "$(grep -l -- "$marker" "$store"/xsnap.db*)"
is "$(find "$repo/alice/chunks" -type f | head -1 | xargs head -c 5 | tail -c 1 | od -An -tu1 | tr -d ' ')" \
  2 "chunks are stored in the encrypted format (version 2)"
is "$(head -c 12 "$repo/alice/manifests/$sid" | tail -c 4 | od -An -tu4 | tr -d ' ')" \
  4 "the manifest is an encrypted tree manifest (version 4)"
# The same bytes in an unencrypted volume do show (the check above means
# something).
xs -q "${a[@]}" volume create pv --size 8M --block-size 64K
start_server p account=alice
nbdcopy "$tmp/data.img" "$(uri pv)"
stop_server "$server_pid"
xs -q "${a[@]}" snapshot create pv --wait --name s1
check "  whereas an unencrypted volume's chunks hold it" -- \
  test -n "$(grep -rl -- "$marker" "$repo/alice/chunks")"
check "verify of the encrypted snapshot" -- quietly xs "${a[@]}" verify ev@s1

# A second snapshot is incremental under the same data key; diff works.
start_server a2 account=alice
python3 - "$(uri ev)" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
h.pwrite(b"\x5a" * 65536, 3 * 65536)
h.flush()
PY
stop_server "$server_pid"
json=$(xs "${a[@]}" --json snapshot create ev --wait --name s2)
is "$(jq -r .changed_blocks <<<"$json")" 1 "the second snapshot stores only the changed block"
is "$(xs "${a[@]}" --json diff ev@s1 ev@s2 | jq -r '.changed_blocks')" 1 "diff of two encrypted snapshots"

# A clone reads through to the encrypted source.
check "volume create --from-snapshot of an encrypted snapshot" -- \
  quietly xs "${a[@]}" volume create ec --from-snapshot ev@s1
is "$(xs "${a[@]}" --json volume show ec | jq -r .key_id)" "$k1" "the clone is encrypted under the same key"
start_server c account=alice
is "$(export_sum "$(uri ec)")" "$data_sum" "the clone reads back byte-identical"
stop_server "$server_pid"
json=$(xs "${a[@]}" --json snapshot create ec --wait --name c1)
is "$(jq -r '.parent, .changed_blocks' <<<"$json" | tr '\n' ' ')" "$sid 0 " \
  "the clone's first snapshot is incremental against its source"
out=$(xs "${a[@]}" volume reset pv --to ev@s1 2>&1) && st=0 || st=$?
like "$out" "not encrypted under the same data key" "an unencrypted volume cannot be reset to an encrypted snapshot"

# Tampering with a chunk: EIO through NBD, and verify names it.
chunk=$(find "$repo/alice/chunks" -type f -size +1k | while read -r f; do
          if [ "$(head -c 5 "$f" | tail -c 1 | od -An -tu1 | tr -d ' ')" = 2 ]; then echo "$f"; break; fi
        done)
cp "$chunk" "$tmp/chunk.saved"
flip () { python3 -c '
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[off % len(b)] ^= 0x04
open(p, "wb").write(b)' "$1" "$2"; }
flip "$chunk" 200
read_errno () { python3 - "$1" <<'PY'
import nbd, sys, errno
h = nbd.NBD()
try:
    h.connect_uri(sys.argv[1])
    size = h.get_size(); off = 0
    while off < size:
        n = min(1 << 20, size - off); h.pread(n, off); off += n
    print("ok")
except nbd.Error as e:
    print(errno.errorcode.get(e.errno, "ENOENT" if e.errno is None else e.errno))
PY
}
start_server t account=alice
is "$(read_errno "$(uri ev@s1)")" EIO "a flipped bit in a chunk makes the NBD read fail with EIO"
stop_server "$server_pid"
like "$(cat "$tmp/t.log")" "authentication failed" "  the log says the chunk failed authentication"
out=$(xs "${a[@]}" verify ev@s1 2>&1) && st=0 || st=$?
is "$st" 4 "verify reports the damage (exit 4)"
like "$out" "authentication failed" "  naming it"
cp "$tmp/chunk.saved" "$chunk"
check "with the chunk restored, verify passes" -- quietly xs "${a[@]}" verify ev@s1

# Tampering with the manifest.
man=$repo/alice/manifests/$sid
cp "$man" "$tmp/man.saved"
flip "$man" 40
out=$(xs "${a[@]}" verify ev@s1 2>&1) && st=0 || st=$?
like "$out" "manifest $sid: (checksum mismatch|authentication failed|bad metadata)" \
  "a flipped bit in the manifest is detected"
cp "$tmp/man.saved" "$man"
# Only the MAC can catch a change to the MAC itself.
python3 - "$man" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) - 1] ^= 1          # the MAC itself
open(p, "wb").write(b)
PY
out=$(xs "${a[@]}" verify ev@s1 2>&1) && st=0 || st=$?
like "$out" "authentication failed \(the manifest was tampered with\)" \
  "a flipped bit in the manifest's MAC is detected"
start_server m account=alice
is "$(read_errno "$(uri ev@s1)")" ENOENT "  and the snapshot cannot be opened through NBD"
stop_server "$server_pid"
cp "$tmp/man.saved" "$man"

# Tampering with a wrapped key: the account key in the catalog, or the
# volume's wrapped data key.
flip_hex () { python3 -c '
import sys
s = sys.argv[1]; i = int(sys.argv[2])
print(s[:i] + ("0" if s[i] != "0" else "1") + s[i + 1:])' "$1" "$2"; }
saved=$(sqlite3 "$store/xsnap.db" "SELECT wrapped FROM keys WHERE id = '$k1'")
sqlite3 "$store/xsnap.db" "UPDATE keys SET wrapped = '$(flip_hex "$saved" 60)' WHERE id = '$k1'"
out=$(xs "${a[@]}" verify ev@s1 2>&1) && st=0 || st=$?
like "$out" "cannot unwrap key 'k1' of account 'alice': it is not authentic" \
  "a flipped bit in the wrapped account key is detected"
sqlite3 "$store/xsnap.db" "UPDATE keys SET wrapped = '$saved' WHERE id = '$k1'"
saved=$(sqlite3 "$store/xsnap.db" "SELECT data_key FROM volumes WHERE id = '$ev_id'")
sqlite3 "$store/xsnap.db" "UPDATE volumes SET data_key = '$(flip_hex "$saved" 30)' WHERE id = '$ev_id'"
out=$(xs "${a[@]}" snapshot create ev --wait --name tampered 2>&1) && st=0 || st=$?
like "$out" "cannot unwrap a data key under key 'k1' of account 'alice': it is not authentic" \
  "a flipped bit in the volume's wrapped data key is detected"
sqlite3 "$store/xsnap.db" "UPDATE volumes SET data_key = '$saved' WHERE id = '$ev_id'"
check "  restored, both work again" -- quietly xs "${a[@]}" verify ev@s1

# Clones under other keys than their source's.
check "a clone under another key (the default)" -- \
  quietly xs "${a[@]}" volume create ec2 --from-snapshot ev@s1 --key default
check "an encrypted clone of an unencrypted snapshot" -- \
  quietly xs "${a[@]}" volume create pc --from-snapshot pv@s1 --encrypt
for v in ec2 pc; do
  json=$(xs "${a[@]}" --json snapshot create "$v" --wait --name c1)
  is "$(jq -r '.encrypted, .key_id != "'"$k1"'", .changed_blocks' <<<"$json" | tr '\n' ' ')" \
    "true true 64 " "  $v's first snapshot re-encrypts its 64 data blocks under its own key"
  check "  and verifies" -- quietly xs "${a[@]}" verify "$v@c1"
done

# Streams of encrypted snapshots: --raw or --reencrypt (encrypt-stream.t).
out=$(xs "${a[@]}" send ev@s1 -o "$tmp/s.stream" 2>&1) && st=0 || st=$?
like "$out" "it is encrypted; send it --raw" "a plain send is refused"

# The default key, made on first use.
check "volume create --encrypt without --key uses the default key" -- \
  quietly xs "${a[@]}" volume create dv --size 1M --block-size 64K --encrypt
is "$(xs "${a[@]}" --json key list | jq -r '[.keys[] | select(.default)] | .[0].name')" default \
  "  made on first use"
xs -q "${a[@]}" snapshot create dv --wait --name s1

# A disabled key blocks new reads, snapshots and clones.
check "key disable k1" -- quietly xs "${a[@]}" key disable k1
out=$(xs "${a[@]}" verify ev@s1 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "verify is refused: the key is disabled"
start_server d account=alice
is "$(read_errno "$(uri ev@s1)")" ENOENT "an NBD read of the snapshot is refused"
stop_server "$server_pid"
like "$(cat "$tmp/d.log")" "key 'k1' of account 'alice' is disabled" "  the log says why"
out=$(xs "${a[@]}" snapshot create ev --wait --name s3 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "a new snapshot is refused"
out=$(xs "${a[@]}" volume create ec3 --from-snapshot ev@s1 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "a new clone is refused"
out=$(xs "${a[@]}" diff ev@s1 ev@s2 2>&1) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "diff is refused"
start_server dv account=alice
is "$(read_errno "$(uri ev)")" ENOENT "the volume itself cannot be attached (its head is under the key)"
stop_server "$server_pid"
check "the default key still works" -- quietly xs "${a[@]}" verify dv@s1

# The master key file.
mv "$store/master.key" "$tmp/master.key"
out=$(xs "${a[@]}" verify dv@s1 2>&1) && st=0 || st=$?
like "$out" "cannot read the master key $store/master.key: No such file" \
  "a missing master key is a clear error"
check "  and no new one was made" -- test ! -e "$store/master.key"
out=$(XSNAP_MASTER_KEY_FILE=$tmp/master.key xs "${a[@]}" verify dv@s1 2>&1) && st=0 || st=$?
is "$st" 0 "XSNAP_MASTER_KEY_FILE points at it elsewhere"
mv "$tmp/master.key" "$store/master.key"
check "with the file back, reads work" -- quietly xs "${a[@]}" verify dv@s1

done_testing
