#!/usr/bin/env bash
# kill -9 of an import in the middle of its copy: no volume becomes
# visible, the name stays free, gc (or the next import) removes what the
# dead import staged, and a retried import is byte-identical.  A crash
# between the rename into place and the catalog commit is simulated too.
. "$(dirname "$0")/functions.sh"

require_tool nbdkit nbdcopy nbdinfo jq

xs init -q
volumes=$store/regions/local/volumes
staging=$volumes/.staging
random_file "$tmp/src.img" 64 crash
src_sum=$(sha256sum < "$tmp/src.img" | cut -d' ' -f1)

# A slow source: 64M at 256 Mbit/s, 2 s.  One thread (see
# import-export.t).
src_sock=$tmp/src.sock
nbdkit -f -U "$src_sock" --threads=1 --filter=rate file "$tmp/src.img" \
  rate=256M 2>>"$tmp/src.log" &
src_pid=$!
started_pids+=("$src_pid")
src_uri=$(uri '' "$src_sock")
for _ in $(seq 100); do
  [ -S "$src_sock" ] && nbdinfo --can connect "$src_uri" 2>/dev/null && break
  sleep 0.1
done

volume_count () { xs --json volume list | jq '.volumes | length'; }
staged_bytes () {               # bytes allocated in staged data files
  local f total=0
  for f in "$staging"/*/data; do
    [ -e "$f" ] && total=$(( total + $(stat -c '%b * %B' "$f" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}

# import_and_kill: start an import of the slow source as 'disk', wait
# until it has written at least 8M into staging, stop it there (SIGSTOP:
# a loaded machine must not let it finish while we look), check it is
# not visible, and kill -9 it.
import_and_kill () {
  "$xsnap" import "$src_uri" --volume disk >/dev/null 2>"$tmp/err" &
  local pid=$! i
  for i in $(seq 400); do
    [ "$(staged_bytes)" -ge $(( 8 << 20 )) ] && break
    sleep 0.05
  done
  kill -STOP "$pid" || diag "the import ended early: $(cat "$tmp/err")"
  check "the import is stopped mid-copy" -- test "$(staged_bytes)" -ge $(( 8 << 20 ))
  is "$(volume_count)" 0 "while the import copies, no volume is listed"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

import_and_kill
check "the import was killed mid-copy (its staged head holds $(staged_bytes) bytes)" -- \
  test "$(staged_bytes)" -ge $(( 8 << 20 ))
is "$(volume_count)" 0 "after kill -9, no volume is listed"
out=$(xs volume show disk 2>&1) && status=0 || status=$?
like "$status $out" "^1 xsnap: no volume 'disk' in account 'admin', region 'local'$" \
  "  and the name is free"
check "  the volumes directory holds no head" -- \
  test -z "$(find "$volumes" -mindepth 1 -maxdepth 1 ! -name .staging)"

json=$(xs --json gc)
is "$(jq -r .staged_removed <<<"$json")" 1 "gc removes the staged head"
is "$(find "$staging" -mindepth 1 | wc -l)" 0 "  and nothing is left in staging"

# Again, and this time the next import cleans up and succeeds.
import_and_kill
is "$(find "$staging" -mindepth 1 -maxdepth 1 | wc -l)" 1 "a second kill -9 leaves one staged head"
json=$(xs --json import "$src_uri" --volume disk)
is "$(jq -r .volume <<<"$json")" disk "a retried import succeeds"
is "$(find "$staging" -mindepth 1 | wc -l)" 0 "  and removed the dead import's head"
id=$(jq -r .id <<<"$json")
check "  the volume's head is in place, unmarked" -- \
  test -f "$volumes/$id/data" -a ! -e "$volumes/$id/staged"
start_server a
is "$(export_sum "$(uri disk)")" "$src_sum" "  and the volume is byte-identical"
stop_server "$server_pid"

# A name taken while the import copied is refused at the commit, and the
# staged head goes.
"$xsnap" import "$src_uri" --volume late >/dev/null 2>"$tmp/err" &
pid=$!
for _ in $(seq 400); do [ "$(staged_bytes)" -gt 0 ] && break; sleep 0.05; done
kill -STOP "$pid"
xs -q volume create late --size 1M
kill -CONT "$pid"
wait "$pid" && status=0 || status=$?
like "$status $(cat "$tmp/err")" "^1 xsnap: volume 'late' already exists in account 'admin', region 'local'$" \
  "a name taken during the copy is refused at the commit"
is "$(find "$staging" -mindepth 1 | wc -l)" 0 "  and the staged head is removed"
is "$(xs --json volume show late | jq -r .size)" 1048576 "  the other volume is untouched"

# A crash after the rename into place but before the commit: a marked
# head without a row.  And one after the commit but before the mark was
# removed: a marked head with a row.
mkdir -p "$volumes/vol-00000000deadbeef"
cp "$volumes/$id/dirtymap" "$volumes/vol-00000000deadbeef/"
: > "$volumes/vol-00000000deadbeef/staged"
: > "$volumes/$id/staged"
before=$(volume_count)
json=$(xs --json gc)
is "$(jq -r .staged_removed <<<"$json")" 1 "gc removes a marked head that has no row"
check "  it is gone" -- test ! -e "$volumes/vol-00000000deadbeef"
check "  a marked head with a row stays, unmarked" -- \
  test -f "$volumes/$id/data" -a ! -e "$volumes/$id/staged"
is "$(volume_count)" "$before" "  and every volume is still listed"
start_server b
is "$(export_sum "$(uri disk)")" "$src_sum" "  and reads the same"
stop_server "$server_pid"

done_testing
