# Shared helpers for the shell integration tests (sourced, bash).
#
# Each test gets a private temporary directory ($tmp) removed at exit, a
# TAP producer (ok, is, like, done_testing), and helpers that start the real
# nbdkit with the plugin on a Unix socket and stop only what they started.

set -euo pipefail

# nbdsh runs "python3 -m nbd": Debian's python3 must come first.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin:$PATH

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
xsnap=$top/tools/xsnap
plugin=$top/plugin/nbdkit-xsnap-plugin.so
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xsnap-t.XXXXXX")
store=$tmp/store
export XSNAP_STORE=$store
unset XSNAP_ACCOUNT XSNAP_REGION

tap_count=0
tap_failed=0
cleanup_cmds=()
started_pids=()

# With SANITIZE=1 the plugin is built with ASan, which must be loaded first
# into the (uninstrumented) nbdkit.
nbdkit_env=()
if [ "${XSNAP_SANITIZE:-0}" = 1 ]; then
  nbdkit_env=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
              ASAN_OPTIONS=detect_leaks=0)
fi

at_exit () { cleanup_cmds+=("$*"); }

run_cleanup () {
  local i pid
  for (( i=${#cleanup_cmds[@]}-1; i>=0; i-- )); do
    eval "${cleanup_cmds[$i]}" >/dev/null 2>&1 || true
  done
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$tmp"
}
trap run_cleanup EXIT

diag () { printf '# %s\n' "$*"; }

ok () {                         # ok CONDITION-STATUS DESCRIPTION
  local status=$1; shift
  tap_count=$((tap_count + 1))
  if [ "$status" = 0 ]; then
    printf 'ok %d - %s\n' "$tap_count" "$*"
  else
    printf 'not ok %d - %s\n' "$tap_count" "$*"
    tap_failed=$((tap_failed + 1))
  fi
}

check () {                      # check DESCRIPTION -- COMMAND...
  local desc=$1; shift; [ "$1" = -- ] && shift
  if "$@"; then ok 0 "$desc"; else ok 1 "$desc"; fi
}

is () {                         # is GOT WANT DESCRIPTION
  if [ "$1" = "$2" ]; then
    ok 0 "$3"
  else
    ok 1 "$3"
    diag "got:  '$1'"
    diag "want: '$2'"
  fi
}

like () {                       # like GOT REGEX DESCRIPTION
  if [[ $1 =~ $2 ]]; then
    ok 0 "$3"
  else
    ok 1 "$3"
    diag "got:  '$1'"
    diag "want match: '$2'"
  fi
}

done_testing () {
  printf '1..%d\n' "$tap_count"
  [ "$tap_failed" = 0 ]
}

skip_all () {                   # the whole file cannot run here
  printf '1..0 # SKIP %s\n' "$*"
  exit 0
}

# A tool scripts/install-deps installs: missing is a failure, not a skip.
require_tool () {               # require_tool NAME...
  local tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      printf 'Bail out! %s is not installed (scripts/install-deps installs it)\n' "$tool"
      exit 1
    fi
  done
}

# Rewrite a stream: parse it into VERSION, META (the header's JSON) and
# RECORDS (dicts: kind, block, id, chunk, and a reference's source block
# in a version 5 or 6 stream), run PYTHON-EDIT on them, and write it
# again with every length and checksum made right, so that the check
# under test is the one that refuses it.  A reference is written with
# its source (0 if it has none) in version 5 and 6, without in older
# ones.  meta['_restream'] recomputes the stream id (an unencrypted
# stream's).
restream () {                   # restream IN OUT PYTHON-EDIT
  python3 - "$@" <<'PY'
import json, struct, subprocess, sys
def xxh(data, algo):
    out = subprocess.run(['xxhsum', '-H' + algo, '--tag', '-'], input=data,
                         capture_output=True, check=True).stdout
    return out.decode().split(' = ')[1].strip()
def xxh64(data):
    return struct.pack('<Q', int(xxh(data, '3'), 16))
d = open(sys.argv[1], 'rb').read()
version = struct.unpack_from('<I', d, 8)[0]
m = struct.unpack_from('<I', d, 16)[0]
meta = json.loads(d[32:32 + m])
pos, records = 32 + m + 8, []
while d[pos:pos + 1] != b'T':
    kind, n = d[pos:pos + 1], struct.unpack_from('<I', d, pos + 4)[0]
    block = struct.unpack_from('<Q', d, pos + 8)[0]
    rid = d[pos + 16:pos + 32]
    chunk = d[pos + 40:pos + 40 + n] if kind == b'C' else b''
    records.append(dict(kind=kind, block=block, id=rid, chunk=chunk))
    if kind == b'R' and n == 8:
        records[-1]['source'] = struct.unpack_from('<Q', d, pos + 40)[0]
    pos += 40 + (n + 8 if n else 0)
root = d[pos + 16:pos + 32]
exec(sys.argv[3])
if meta.pop('_restream', False):
    z = bytes(16)
    raw = (b'xsnap-stream-1\0' + meta['snapshot_id'].encode() + b'\0'
           + bytes.fromhex(meta['root_hash']) + meta['base_snapshot_id'].encode()
           + b'\0' + (bytes.fromhex(meta['base_root_hash'])
                      if meta['base_root_hash'] else z))
    meta['stream_id'] = xxh(raw, '2')
meta['records'] = len(records)
text = json.dumps(meta, separators=(',', ':')).encode()
out = bytearray(b'XSNPSTRM' + struct.pack('<IIII', version, 0, len(text), 0))
out += xxh64(bytes(out)) + text
out += xxh64(bytes(out))
for r in records:
    body = r['chunk']
    if r['kind'] == b'R' and version >= 5:
        body = struct.pack('<Q', r.get('source', 0))
    head = (r['kind'] + bytes(3) + struct.pack('<IQ', len(body), r['block'])
            + r['id'])
    head += xxh64(head)
    out += head
    if body:
        out += body + xxh64(head + body)
head = b'T' + bytes(3) + struct.pack('<IQ', 0, len(records)) + root
out += head + xxh64(head)
out += xxh64(bytes(out))
open(sys.argv[2], 'wb').write(out)
PY
}

# `make check` runs as root (CI does): a test that needs root fails
# without it, rather than skipping what it exists to check.
require_root () {               # require_root WHY
  if [ "$(id -u)" != 0 ]; then
    printf 'Bail out! must run as root: %s\n' "$1"
    exit 1
  fi
}

# A real S3 server (Ceph RGW, checking signatures) for this test: under
# `make check` the one tests/with-s3 started; run alone, one of its own
# (slower).  Exports the AWS_* variables for it.  Never a skip: a server
# that cannot start fails the test file.
require_s3 () {
  if [ -n "${XSNAP_TEST_S3_ERROR:-}" ]; then
    printf 'Bail out! %s\n' "$XSNAP_TEST_S3_ERROR"
    exit 1
  fi
  if [ -z "${XSNAP_TEST_S3:-}" ]; then
    XSNAP_TEST_S3=$(mktemp -d /tmp/xsnap-s3.XXXXXX)/c
    at_exit "$top/scripts/ceph-micro stop $XSNAP_TEST_S3; rm -rf ${XSNAP_TEST_S3%/c}"
    if ! "$top/scripts/ceph-micro" start "$XSNAP_TEST_S3" >"$tmp/ceph.log" 2>&1; then
      printf 'Bail out! the S3 test server (Ceph RGW) did not start: %s\n' \
        "$(tail -n 2 "$tmp/ceph.log" | tr '\n' ' ')"
      exit 1
    fi
  fi
  # shellcheck disable=SC1091
  . "$XSNAP_TEST_S3/s3.env"
  s3_admin=$XSNAP_TEST_S3
}

# A new bucket for this test file: s3_bucket NAME prints the full name.
s3_bucket () {
  local name
  name="$1-$(basename "$tmp" | tr 'A-Z' 'a-z' | tr -dc 'a-z0-9' | tail -c 8)"
  "$top/scripts/ceph-micro" bucket "$s3_admin" "$name" >&2 || return 1
  printf '%s\n' "$name"
}

# How many objects BUCKET holds under PREFIX, counted by another client
# (curl's own SigV4 signer), one ListObjectsV2 page after another.  curl
# 7.88 signs the query as given: parameters sorted, values encoded.
s3_urlencode () { jq -rn --arg v "$1" '$v | @uri'; }
s3_count () {                   # s3_count BUCKET PREFIX
  local token="" count=0 page query
  while :; do
    query="list-type=2&prefix=$(s3_urlencode "$2")"
    [ -z "$token" ] || query="continuation-token=$(s3_urlencode "$token")&$query"
    page=$(curl -sf --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
             --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
             -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
             "$AWS_ENDPOINT_URL_S3/$1?$query") || return 1
    count=$((count + $(grep -o '<Key>' <<<"$page" | wc -l)))
    grep -q '<IsTruncated>true</IsTruncated>' <<<"$page" || break
    token=$(sed -n 's/.*<NextContinuationToken>\([^<]*\)<.*/\1/p' <<<"$page")
  done
  echo "$count"
}

# The sha256 of an export as ACCOUNT sees it in REGION, through a server
# of its own.
read_in () {                    # read_in REGION ACCOUNT EXPORT
  start_server "read-$1-$2" region="$1" account="$2" || return 1
  local sum
  sum=$(export_sum "$(uri "$3")")
  stop_server "$server_pid"
  echo "$sum"
}

# Wait (up to 10 s) until ACCOUNT's running outgoing copy has done more
# than BYTES: the moment to kill it in the middle.
wait_copy_progress () {         # wait_copy_progress ACCOUNT BYTES
  for _ in $(seq 100); do
    [ "$(xs --account "$1" --json job list --outgoing \
           | jq -r '[.[] | select(.status == "running")
                     | .done_bytes] | max // 0')" -gt "$2" ] && return 0
    sleep 0.1
  done
}

# Run xsnap; in a test, status and output are checked by the caller.
xs () { "$xsnap" "$@"; }

# start_server NAME [PLUGIN-ARGS...]: nbdkit with the plugin on
# $tmp/NAME.sock serving $store, logging to $tmp/NAME.log (with the
# plugin's debug messages and notices if NBDKIT_VERBOSE=1); sets $sock
# and $server_pid.
start_server () {
  local name=$1; shift
  sock=$tmp/$name.sock
  local pidfile=$tmp/$name.pid log=$tmp/$name.log
  rm -f "$sock" "$pidfile"
  # -f: stay in the foreground so that the log keeps the plugin's errors.
  local verbose=()
  [ "${NBDKIT_VERBOSE:-0}" = 1 ] && verbose=(-v)
  "${nbdkit_env[@]}" nbdkit "${verbose[@]}" -f -U "$sock" -P "$pidfile" --log=stderr \
    "$plugin" store="$store" "$@" 2>>"$log" &
  server_pid=$!
  started_pids+=("$server_pid")
  for _ in $(seq 100); do
    [ -s "$pidfile" ] && [ -S "$sock" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$pidfile" ]; then
    diag "nbdkit did not start:"; sed 's/^/#   /' "$log"
    return 1
  fi
}

stop_server () {                # stop_server PID: graceful, and wait
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

uri () { printf 'nbd+unix:///%s?socket=%s' "$1" "${2:-$sock}"; }

# A file of N MiB of seeded pseudo-random bytes (reproducible).
random_file () {                # random_file PATH MIB SEED
  openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -pbkdf2 -iter 1 \
    < <(head -c "$(( $2 * 1048576 ))" /dev/zero) > "$1" 2>/dev/null
}

# The state of the store on disk, to prove a refused command changed
# nothing: file names, sizes and contents, and the catalog's rows.
store_state () {
  (cd "$store" && find . -path ./xsnap.db-shm -prune -o -type f \
     ! -name 'xsnap.db*' -printf '%p %s\n' | sort
   sqlite3 "$store/xsnap.db" .dump | grep -v '^PRAGMA')
}

# Run a command with its output discarded (for check).
quietly () { "$@" >/dev/null 2>&1; }

# The XXH-independent digest of an NBD export (sha256 of its bytes).
export_sum () { nbdcopy "$1" - | sha256sum | cut -d' ' -f1; }

# Wait until no snapshot of the store is pending (background sealing).
wait_sealed () {
  for _ in $(seq 300); do
    [ "$(xs --json snapshot list | jq '[.snapshots[] | select(.status == "pending")] | length')" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

# Wait (up to 20 s) until VOL no longer reads through to a snapshot;
# prints its source snapshot then ("" once hydrated).
wait_hydrated () {              # wait_hydrated VOL
  for _ in $(seq 200); do
    [ -z "$(xs --json volume show "$1" | jq -r .source_snapshot)" ] && break
    sleep 0.1
  done
  xs --json volume show "$1" | jq -r .source_snapshot
}

# serve_peer NAME COMMAND...: run another NBD server (qemu-nbd, nbdkit
# file, ...) in the foreground on $tmp/NAME.sock, its command naming
# that socket; sets $peer_sock, $peer_pid and $peer_uri.
serve_peer () {
  local name=$1; shift
  peer_sock=$tmp/$name.sock
  peer_uri=$(uri '' "$peer_sock")
  rm -f "$peer_sock"
  "$@" 2>>"$tmp/$name.log" &
  peer_pid=$!
  started_pids+=("$peer_pid")
  for _ in $(seq 100); do
    [ -S "$peer_sock" ] && nbdinfo --can connect "$peer_uri" 2>/dev/null \
      && return 0
    kill -0 "$peer_pid" 2>/dev/null || break
    sleep 0.1
  done
  diag "$name did not start:"; sed 's/^/#   /' "$tmp/$name.log"
  return 1
}

# Keep a client connected to URI (so the volume stays attached) until
# the returned process is killed.  Prints its pid.
hold_open () {
  python3 -c '
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(sys.argv[1])
print("connected", flush=True)
time.sleep(3600)' "$1" > "$tmp/hold.$$" 2>&1 &
  local pid=$!
  started_pids+=("$pid")
  for _ in $(seq 100); do grep -q connected "$tmp/hold.$$" 2>/dev/null && break; sleep 0.05; done
  echo "$pid"
}
