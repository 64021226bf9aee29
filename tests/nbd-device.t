#!/usr/bin/env bash
# Attaching a volume as /dev/nbdN with the kernel's nbd driver, where the
# machine has it: mkfs, mount, write, unmount, e2fsck, read back.
. "$(dirname "$0")/functions.sh"

require_root "it loads the nbd module and attaches /dev/nbd"
require_tool nbd-client
# Only a kernel without the nbd driver is a reason to skip.
modprobe nbd 2>/dev/null || true
[ -b /dev/nbd0 ] || skip_all "no /dev/nbd0: the nbd kernel module is not available here"
dev=
for d in /dev/nbd*; do
  [ -b "$d" ] || continue
  [ "$(cat "/sys/block/$(basename "$d")/size" 2>/dev/null)" = 0 ] && { dev=$d; break; }
done
[ -n "$dev" ] || skip_all "every /dev/nbd device is in use"

xs init -q
xs -q volume create disk --size 256M
start_server a
check "nbd-client attaches the volume as $dev" -- \
  nbd-client -unix "$sock" -N disk "$dev"
at_exit "nbd-client -d '$dev'"
check "mkfs.ext4 on $dev" -- mkfs.ext4 -q -F "$dev"
mkdir "$tmp/mnt"
check "mount it" -- mount "$dev" "$tmp/mnt"
at_exit "umount '$tmp/mnt'"
random_file "$tmp/mnt/data.bin" 16 seed-dev
cp "$tmp/mnt/data.bin" "$tmp/data.bin"
check "unmount" -- umount "$tmp/mnt"
check "detach" -- nbd-client -d "$dev"
check "e2fsck -fn through NBD is clean" -- \
  bash -c "nbdcopy '$(uri disk)' '$tmp/copy.img' && e2fsck -fn '$tmp/copy.img' >/dev/null 2>&1"
debugfs -R "cat /data.bin" "$tmp/copy.img" > "$tmp/out.bin" 2>/dev/null
check "the file written through /dev/nbd reads back" -- cmp "$tmp/out.bin" "$tmp/data.bin"
done_testing
