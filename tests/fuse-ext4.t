#!/usr/bin/env bash
# A filesystem on a volume: mkfs.ext4 through nbdfuse (the kernel's nbd
# module is not needed), populated with files, then e2fsck -fn is clean and
# the files read back through the served volume.
. "$(dirname "$0")/functions.sh"

# Only a machine without FUSE (no module, no device) is a reason to skip.
modprobe fuse 2>/dev/null || true
[ -c /dev/fuse ] || skip_all "no /dev/fuse on this machine (the fuse module is not available)"
require_tool nbdfuse

xs init -q
xs -q volume create fs --size 256M --block-size 64K
start_server a

mkdir "$tmp/mnt" "$tmp/content"
random_file "$tmp/content/random.bin" 8 seed-fuse
seq 1 100000 > "$tmp/content/numbers.txt"
nbdfuse "$tmp/mnt/disk" "$(uri fs)" &
fuse_pid=$!
started_pids+=("$fuse_pid")
at_exit "fusermount3 -u '$tmp/mnt'"
for _ in $(seq 100); do [ -e "$tmp/mnt/disk" ] && break; sleep 0.1; done
check "nbdfuse exposes the volume as a file" -- test -e "$tmp/mnt/disk"
is "$(stat -c %s "$tmp/mnt/disk")" 268435456 "  of the volume's size"

check "mkfs.ext4 -d populates a filesystem on it" -- \
  mkfs.ext4 -q -F -E nodiscard -d "$tmp/content" "$tmp/mnt/disk"
sync "$tmp/mnt/disk"
check "e2fsck -fn finds it clean" -- quietly e2fsck -fn "$tmp/mnt/disk"
debugfs -R "cat /random.bin" "$tmp/mnt/disk" > "$tmp/random.out" 2>/dev/null
check "a file reads back through the filesystem" -- \
  cmp "$tmp/random.out" "$tmp/content/random.bin"
fusermount3 -u "$tmp/mnt"
for _ in $(seq 50); do kill -0 "$fuse_pid" 2>/dev/null || break; sleep 0.1; done

# Straight from the volume, without FUSE: the same filesystem.
nbdcopy "$(uri fs)" "$tmp/copy.img"
check "a copy of the volume is a clean ext4" -- quietly e2fsck -fn "$tmp/copy.img"
debugfs -R "cat /numbers.txt" "$tmp/copy.img" > "$tmp/numbers.out" 2>/dev/null
check "  with the same files" -- cmp "$tmp/numbers.out" "$tmp/content/numbers.txt"
stop_server "$server_pid"
changed=$(xs --json diff --live fs | jq -r .changed_blocks)
check "mkfs changed some but not all blocks ($changed of 4096)" -- \
  test "$changed" -gt 0 -a "$changed" -lt 4096
done_testing
