#!/usr/bin/env bash
# Streams of encrypted snapshots between stores: an encrypted snapshot
# leaves only --raw (its ciphertext, unreadable where the key is not
# held) or --reencrypt (the receiver encrypts it under a key of its own);
# a key travels between stores as a passphrase-sealed key file; raw and
# re-encrypting streams stay incremental; references in a plain stream
# received --encrypt resolve (of this release and of version 3); an
# interrupted re-encrypting
# receive resumes under the same key; every received snapshot reads back
# byte-identical through NBD.
. "$(dirname "$0")/functions.sh"

marker=XSNAP-STREAMED-SECRET-77ab01
store2=$tmp/store2
store3=$tmp/store3
store4=$tmp/store4
xs2 () { "$xsnap" --store "$store2" "$@"; }
xs3 () { "$xsnap" --store "$store3" "$@"; }
xs4 () { "$xsnap" --store "$store4" "$@"; }
xs5 () { "$xsnap" --store "$tmp/store5" "$@"; }
# read_in for another store: STORE REGION ACCOUNT EXPORT
read_at () { local s=$1; shift; store=$s read_in "$@"; }
a=(--account alice)
b=(--account bob)

xs init -q
xs -q account create alice
xs -q "${a[@]}" key create k1
xs2 init -q
xs2 -q account create bob
xs3 init -q
xs3 -q account create bob

python3 - "$tmp/v1.img" "$tmp/v2.img" "$marker" <<'PY'
import sys, os
m = sys.argv[3].encode()
one = (m * (1048576 // len(m) + 1))[:1048576] + bytes(1048576) \
      + os.urandom(2 * 1048576)
two = bytearray(one)
two[3 * 65536:4 * 65536] = os.urandom(65536)
two[40 * 65536:41 * 65536] = m * (65536 // len(m)) + bytes(65536 % len(m))
open(sys.argv[1], "wb").write(one)
open(sys.argv[2], "wb").write(bytes(two))
PY
sum1=$(sha256sum < "$tmp/v1.img" | cut -d' ' -f1)
sum2=$(sha256sum < "$tmp/v2.img" | cut -d' ' -f1)
# two_snapshots VOL SERVER IMG1 SNAP1 IMG2 SNAP2 CREATE-ARGS...: alice's
# VOL made with CREATE-ARGS, snapshotted as SNAP1 holding IMG1, then as
# SNAP2 holding IMG2.
two_snapshots () {
  local vol=$1 server=$2 img1=$3 snap1=$4 img2=$5 snap2=$6
  shift 6
  xs -q "${a[@]}" volume create "$vol" "$@"
  start_server "$server" account=alice
  nbdcopy "$img1" "$(uri "$vol")"
  xs -q "${a[@]}" snapshot create "$vol" --wait --name "$snap1"
  nbdcopy "$img2" "$(uri "$vol")"
  xs -q "${a[@]}" snapshot create "$vol" --wait --name "$snap2"
  stop_server "$server_pid"
}
two_snapshots ev w "$tmp/v1.img" s1 "$tmp/v2.img" s2 \
  --size 4M --block-size 64K --encrypt --key k1

# An encrypted snapshot does not leave as plaintext by default.
out=$(xs "${a[@]}" send ev@s1 -o "$tmp/x" 2>&1) && st=0 || st=$?
like "$out" "it is encrypted; send it --raw .* or --reencrypt" \
  "a plain send of an encrypted snapshot is refused"

# Raw: the ciphertext, and the key stays the sender's.
check "send --raw" -- quietly xs "${a[@]}" send --raw ev@s1 -o "$tmp/raw1"
check "  the raw stream does not hold the pattern" -- \
  test -z "$(grep -l -- "$marker" "$tmp/raw1")"
is "$(head -c 12 "$tmp/raw1" | tail -c 4 | od -An -tu4 | tr -d ' ')" 6 \
  "  it is a version 6 stream (encrypted, sourced references)"
out=$(xs2 "${b[@]}" receive --key default -i "$tmp/raw1" 2>&1) && st=0 || st=$?
like "$out" "raw stream .* keeps the sender's encryption" \
  "a raw stream cannot be received under the receiver's key"
json=$(xs2 "${b[@]}" --json receive -i "$tmp/raw1")
k1=$(xs "${a[@]}" --json key list | jq -r '.keys[] | select(.name == "k1") | .id')
is "$(jq -r '.encrypted, .key_id' <<<"$json" | tr '\n' ' ')" "true $k1 " \
  "store2 receives it without the key: still under alice's k1"
check "  nothing in store2 holds the pattern" -- \
  test -z "$(grep -rl -- "$marker" "$store2")"
out=$(xs2 "${b[@]}" verify ev@s1 2>&1) && st=0 || st=$?
like "$out" "encrypted under key $k1, which this store does not hold" \
  "  bob cannot read it without the key"
is "$(read_at "$store2" local bob ev@s1 2>/dev/null)" \
   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
  "  nor export it through NBD (nothing is read: the sum of no bytes)"

# A key file carries the key.
printf 'correct horse battery staple\n' > "$tmp/pass"
printf 'wrong horse battery staple\n' > "$tmp/wrong"
out=$(xs "${a[@]}" key export k1 -o "$tmp/k1.key" 2>&1) && st=0 || st=$?
like "$out" "passphrase-file FILE or set XSNAP_KEY_PASSPHRASE" "export needs a passphrase"
check "key export k1" -- \
  quietly xs "${a[@]}" key export k1 --passphrase-file "$tmp/pass" -o "$tmp/k1.key"
is "$(jq -r '.format, .key_id, .account, .kdf.name' "$tmp/k1.key" | tr '\n' ' ')" \
  "xsnap-key $k1 alice scrypt " "  the key file names the key, its account and its sealing"
out=$(xs2 "${b[@]}" key import "$tmp/k1.key" --passphrase-file "$tmp/wrong" 2>&1) && st=0 || st=$?
like "$out" "wrong passphrase, or the file was changed" "a wrong passphrase is refused"
jq '.name = "other"' "$tmp/k1.key" > "$tmp/k1-renamed.key"
jq '.account = "mallory"' "$tmp/k1.key" > "$tmp/k1-moved.key"
out=$(xs2 "${b[@]}" key import "$tmp/k1-moved.key" --passphrase-file "$tmp/pass" 2>&1) && st=0 || st=$?
like "$out" "wrong passphrase, or the file was changed" "  so is a key file claiming another account"
check "bob imports k1 into store2" -- \
  quietly xs2 "${b[@]}" key import "$tmp/k1.key" --passphrase-file "$tmp/pass"
out=$(xs2 "${b[@]}" key import "$tmp/k1-renamed.key" --passphrase-file "$tmp/pass" 2>&1) && st=0 || st=$?
like "$out" "this store holds it already" "  a second import is refused"
is "$(xs2 "${b[@]}" --json key list | jq -r '.keys[] | select(.id == "'"$k1"'") | .account + " " + .name')" \
  "bob k1" "  the key is bob's in store2"
check "now bob verifies the raw snapshot" -- quietly xs2 "${b[@]}" verify ev@s1
is "$(read_at "$store2" local bob ev@s1)" "$sum1" "  and reads it back byte-identical"

# Raw incremental.
json=$(xs "${a[@]}" --json send --raw ev@s2 --from ev@s1 -o "$tmp/raw2")
is "$(jq -r .chunks <<<"$json")" 2 "an incremental raw stream carries the 2 changed chunks"
check "store2 receives it" -- quietly xs2 "${b[@]}" receive -i "$tmp/raw2"
is "$(read_at "$store2" local bob ev@s2)" "$sum2" "  it reads back byte-identical"

# A receiver that holds the key before the stream verifies every chunk,
# and the manifest MAC, which covers the snapshot: a forged MAC (the
# stream's checksums fixed up) is refused.
xs3 -q "${b[@]}" key import "$tmp/k1.key" --passphrase-file "$tmp/pass"
python3 - "$tmp/raw1" "$tmp/forged" <<'PY'
import json, struct, subprocess, sys
def xxh64(data):
    out = subprocess.run(['xxhsum', '-H3', '--tag', '-'], input=data,
                         capture_output=True, check=True).stdout
    return struct.pack('<Q', int(out.decode().split(' = ')[1].strip(), 16))
d = bytearray(open(sys.argv[1], 'rb').read())
m = struct.unpack_from('<I', d, 16)[0]
meta = json.loads(d[32:32 + m])
mac = meta['encryption']['manifest_mac']
meta['encryption']['manifest_mac'] = ('0' if mac[0] != '0' else '1') + mac[1:]
text = json.dumps(meta, separators=(',', ':')).encode()
assert len(text) == m, 'the edit must keep the metadata length'
d[32:32 + m] = text
d[32 + m:40 + m] = xxh64(bytes(d[:32 + m]))
d[-8:] = xxh64(bytes(d[:-8]))
open(sys.argv[2], 'wb').write(d)
PY
out=$(xs3 "${b[@]}" receive -i "$tmp/forged" 2>&1) && st=0 || st=$?
like "$out" "manifest MAC does not match the snapshot that arrived" \
  "a forged manifest MAC is refused by a receiver that holds the key"
check "store3, holding the key, receives the genuine raw stream" -- \
  quietly xs3 "${b[@]}" receive -i "$tmp/raw1"
is "$(read_at "$store3" local bob ev@s1)" "$sum1" "  it reads back byte-identical"

# Re-encrypting: the receiver's key, incremental under it.
xs4 init -q
xs4 -q account create carol
c=(--account carol)
check "send --reencrypt" -- \
  quietly xs "${a[@]}" send --reencrypt ev@s1 -o "$tmp/re1"
json=$(xs4 "${c[@]}" --json receive -i "$tmp/re1")
carol_key=$(xs4 "${c[@]}" --json key list | jq -r '.keys[] | select(.default) | .id')
is "$(jq -r '.encrypted, .key_id' <<<"$json" | tr '\n' ' ')" "true $carol_key " \
  "a re-encrypting stream is encrypted under the receiver's default key"
is "$(read_at "$store4" local carol ev@s1)" "$sum1" "  it reads back byte-identical"
check "  no chunk in carol's repository holds the pattern" -- \
  test -z "$(grep -rl -- "$marker" "$store4/regions/local/repo/carol")"
xs4 -q "${c[@]}" key create ck
out=$(xs "${a[@]}" send --reencrypt ev@s2 --from ev@s1 | xs4 "${c[@]}" receive --key ck 2>&1) && st=0 || st=$?
like "$out" "incremental receive stays under its base's" \
  "an incremental re-encrypting receive under another key is refused"
json=$(xs "${a[@]}" send --reencrypt ev@s2 --from ev@s1 | xs4 "${c[@]}" --json receive)
is "$(jq -r '.key_id, .changed_blocks' <<<"$json" | tr '\n' ' ')" "$carol_key 2 " \
  "the incremental one stays under carol's key and changes 2 blocks"
is "$(read_at "$store4" local carol ev@s2)" "$sum2" "  it reads back byte-identical"

# An interrupted re-encrypting receive resumes under the same key.
xs5 init -q
xs5 -q account create dave
d=(--account dave)
xs -q "${a[@]}" send --reencrypt ev@s1 -o "$tmp/re-full"
head -c $(( $(stat -c %s "$tmp/re-full") / 2 )) "$tmp/re-full" > "$tmp/re-cut"
out=$(xs5 "${d[@]}" receive --key default -i "$tmp/re-cut" 2>&1) && st=0 || st=$?
token=$(grep -o -- '--resume [^ ]*' <<<"$out" | cut -d' ' -f2)
like "$out" "resume with: xsnap send .* --reencrypt --resume" \
  "a cut re-encrypting receive says how to resume (with --reencrypt)"
json=$(xs "${a[@]}" send --reencrypt ev@s1 --resume "$token" | xs5 "${d[@]}" --json receive)
is "$(jq -r .encrypted <<<"$json")" true "  the resumed receive completes, encrypted"
check "  and verifies" -- quietly xs5 "${d[@]}" verify ev@s1
is "$(read_at "$tmp/store5" local dave ev@s1)" "$sum1" "  it reads back byte-identical"

# A chunk that fails to decrypt stops a re-encrypting send cleanly.
# Every chunk of alice's large enough to damage is damaged (and put back
# after): which of them are ev@s1's is not known here, and one chunk
# picked by its name may be another volume's.
mkdir "$tmp/victims"
find "$store/regions/local/repo/alice/chunks" -type f -size +4k > "$tmp/victims.list"
check "  (there are chunks to damage)" -- test -s "$tmp/victims.list"
python3 -c '
import os, shutil, sys
saved = sys.argv[2]
for i, p in enumerate(open(sys.argv[1]).read().split()):
    shutil.copy(p, os.path.join(saved, str(i)))
    b = bytearray(open(p, "rb").read()); b[100] ^= 1
    open(p, "wb").write(b)' "$tmp/victims.list" "$tmp/victims"
out=$(timeout 60 "$xsnap" --account alice send --reencrypt ev@s1 -o "$tmp/re-bad" 2>&1) && st=0 || st=$?
is "$st" 1 "a re-encrypting send of a damaged snapshot fails (and does not hang)"
like "$out" "authentication failed" "  naming the damage"
check "  and leaves no stream behind" -- test ! -e "$tmp/re-bad"
python3 -c '
import os, shutil, sys
for i, p in enumerate(open(sys.argv[1]).read().split()):
    shutil.copy(os.path.join(sys.argv[2], str(i)), p)' "$tmp/victims.list" "$tmp/victims"

# An unencrypted snapshot can be encrypted on arrival.
xs -q "${a[@]}" volume create pv --size 4M --block-size 64K
start_server p account=alice
nbdcopy "$tmp/v1.img" "$(uri pv)"
stop_server "$server_pid"
xs -q "${a[@]}" snapshot create pv --wait --name p1
json=$(xs "${a[@]}" send pv@p1 | xs4 "${c[@]}" --json receive --encrypt)
is "$(jq -r .encrypted <<<"$json")" true "receive --encrypt of an unencrypted stream"
is "$(read_at "$store4" local carol pv@p1)" "$sum1" "  it reads back byte-identical"
out=$(xs "${a[@]}" send --raw pv@p1 2>&1 >/dev/null) && st=0 || st=$?
like "$out" "--raw: it is not encrypted" "send --raw of an unencrypted snapshot is refused"

# References received --encrypt: the chunk a reference names is sealed
# here under another name, found from its plaintext's id, in a stream of
# this release (sourced references) as in one of version 3.  rv@r1 has
# block 5 a copy of block 0; rv@r2 writes one new block at 7 and 9.
python3 - "$tmp/r1.img" "$tmp/r2.img" <<'PY'
import os, sys
one = bytearray(os.urandom(1048576))
one[5 * 65536:6 * 65536] = one[0:65536]
two = bytearray(one)
two[7 * 65536:8 * 65536] = two[9 * 65536:10 * 65536] = os.urandom(65536)
open(sys.argv[1], "wb").write(one)
open(sys.argv[2], "wb").write(two)
PY
two_snapshots rv r "$tmp/r1.img" r1 "$tmp/r2.img" r2 --size 1M --block-size 64K
out=$(xs "${a[@]}" send rv@r1 -o "$tmp/r1.xs" 2>&1)
like "$out" "15 chunks, 1 references" "a full stream refers to block 0 for block 5"
out=$(xs "${a[@]}" send rv@r2 --from rv@r1 -o "$tmp/r2.xs" 2>&1)
like "$out" "1 chunks, 1 references" "  an incremental one to block 7 for block 9"
check "  received --encrypt" -- quietly xs4 "${c[@]}" receive --encrypt -i "$tmp/r1.xs"
check "  the incremental onto it" -- quietly xs4 "${c[@]}" receive -i "$tmp/r2.xs"
is "$(read_at "$store4" local carol rv@r2)" "$(sha256sum < "$tmp/r2.img" | cut -d' ' -f1)" \
  "  it reads back byte-identical"
restream "$tmp/r1.xs" "$tmp/r1-v3.xs" 'version = 3'
restream "$tmp/r2.xs" "$tmp/r2-v3.xs" 'version = 3'
check "the same streams of version 3 received --encrypt" -- \
  quietly xs5 "${d[@]}" receive --encrypt -i "$tmp/r1-v3.xs"
check "  the incremental onto it" -- quietly xs5 "${d[@]}" receive -i "$tmp/r2-v3.xs"
is "$(read_at "$tmp/store5" local dave rv@r2)" "$(sha256sum < "$tmp/r2.img" | cut -d' ' -f1)" \
  "  it reads back byte-identical"

# A disabled key stops sending.
xs -q "${a[@]}" key disable k1
out=$(xs "${a[@]}" send --raw ev@s1 2>&1 >/dev/null) && st=0 || st=$?
like "$out" "key 'k1' of account 'alice' is disabled" "a disabled key stops a raw send"

done_testing
