#!/usr/bin/env bash
# The systemd units (scripts/systemd/): systemd-analyze verify finds
# nothing to say about any of them; every service reads
# /etc/default/xsnap, writes only its state directory and is hardened;
# `make install` rewrites their paths and never replaces the settings;
# and what the serving units run serves, started the way systemd starts
# it (systemd-socket-activate passes the socket as systemd would): a
# per-account Unix socket, the store-wide one, and a per-account TCP
# socket with TLS.  The timers' store-wide passes (xsnap-each) gc every
# region and verify every snapshot, reporting damage as verify does.
# What the units' sandboxing allows can only be seen under systemd
# itself; that needs systemd as PID 1 and is not tried here.
. "$(dirname "$0")/functions.sh"
require_tool nbdkit nbdinfo nbdcopy jq

fails () { ! "$@" >/dev/null 2>&1; }
# make install from this tree as built (-o all: nothing is rebuilt, so a
# suite running beside it keeps its binaries), outside the suite's make.
tree_make () { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -o all -C "$top" "$@"; }

units=$top/scripts/systemd
services=("$units"/*.service)
all_units=("$units"/*.service "$units"/*.socket "$units"/*.timer)

# The units as installed from this tree: paths rewritten as make install
# does, to the programs built here.
mkdir -p "$tmp/units" "$tmp/man/man1"
for u in "${all_units[@]}"; do
  sed -e "s|/usr/bin/xsnap|$xsnap|g" -e "s|/usr/libexec/xsnap|$units|g" \
    "$u" > "$tmp/units/${u##*/}"
done
cp "$top"/docs/*.1 "$tmp/man/man1/"

# ----- systemd-analyze verify -----
if command -v systemd-analyze >/dev/null \
   && systemd-analyze --version >/dev/null 2>&1; then
  out=$(cd "$tmp/units" && MANPATH=$tmp/man systemd-analyze verify \
          ./*.service ./*.socket ./*.timer 2>&1) && status=0 || status=$?
  is "$status:$out" "0:" "systemd-analyze verify: every unit is clean"
else
  ok 0 "# SKIP systemd-analyze is not installed (package systemd)"
fi

# ----- What every service says -----
for u in "${services[@]}"; do
  name=${u##*/}
  exec_start=$(sed -n 's/^ExecStart=//p' "$u")
  like "$exec_start" '^/usr/(bin/xsnap|libexec/xsnap/xsnap-each) ' \
       "$name runs the installed xsnap"
  check "$name reads /etc/default/xsnap" -- \
    grep -qx 'EnvironmentFile=-/etc/default/xsnap' "$u"
  check "$name defaults to the store /var/lib/xsnap" -- \
    grep -qx 'Environment=XSNAP_STORE=/var/lib/xsnap' "$u"
  missing=
  for line in StateDirectory=xsnap ProtectSystem=strict ProtectHome=yes \
              PrivateTmp=yes NoNewPrivileges=yes ProtectKernelTunables=yes \
              ProtectControlGroups=yes; do
    grep -qx "$line" "$u" || missing+=" $line"
  done
  is "$missing" "" "$name is hardened and writes only /var/lib/xsnap"
done
is "$(grep -l '^WantedBy=' "${all_units[@]}" | xargs -n1 basename | sort | tr '\n' ' ')" \
   "xsnap-daemon.service xsnap-gc.timer xsnap-policy.timer xsnap-serve.service xsnap-serve.socket xsnap-serve@.service xsnap-serve@.socket xsnap-verify.timer " \
   "what can be enabled: the servers and their sockets, the daemon and the timers"
is "$(sed -n 's/^Also=//p' "$units/xsnap-serve@.service")" "xsnap-serve@%i.socket" \
   "enabling an account's server enables its socket too"
is "$(sed -n 's/^ListenStream=//p' "$units/xsnap-serve@.socket")" \
   "/run/xsnap/%i.sock" "an account's socket is /run/xsnap/ACCOUNT.sock"
is "$(sed -n 's/^SocketMode=//p' "$units/xsnap-serve@.socket")" "0600" \
   "every client of it acts as the account: only root may connect"

# What `systemctl enable` makes of them, in a root of their own.
if command -v systemctl >/dev/null; then
  sysroot=$tmp/sysroot
  mkdir -p "$sysroot/lib/systemd/system"
  cp "${all_units[@]}" "$sysroot/lib/systemd/system/"
  quietly systemctl --root="$sysroot" enable xsnap-serve@alice.service \
    xsnap-serve.socket xsnap-gc.timer
  is "$(cd "$sysroot/etc/systemd/system" && find . -type l | sort | tr '\n' ' ')" \
     "./multi-user.target.wants/xsnap-serve@alice.service ./sockets.target.wants/xsnap-serve.socket ./sockets.target.wants/xsnap-serve@alice.socket ./timers.target.wants/xsnap-gc.timer " \
     "systemctl enable xsnap-serve@alice: the server at boot and its socket"
else
  ok 0 "# SKIP systemctl is not installed (package systemd)"
fi

# ----- make install -----
inst=$tmp/inst
tree_make install DESTDIR="$inst" PREFIX=/opt/xs >/dev/null
is "$(sed -n 's/^ExecStart=//p' "$inst/opt/xs/lib/systemd/system/xsnap-serve@.service")" \
   "/opt/xs/bin/xsnap --account %i serve" \
   "make install PREFIX=/opt/xs: the units run /opt/xs/bin/xsnap"
is "$(sed -n 's/^ExecStart=//p' "$inst/opt/xs/lib/systemd/system/xsnap-gc.service")" \
   "/opt/xs/libexec/xsnap/xsnap-each gc" "... and /opt/xs/libexec/xsnap/xsnap-each"
like "$(sed -n 's/^xsnap=.*PROGRAM:-\(.*\)}$/\1/p' "$inst/opt/xs/libexec/xsnap/xsnap-each")" \
   "^/opt/xs/bin/xsnap$" "xsnap-each runs /opt/xs/bin/xsnap"
check "the settings are installed in /etc/default/xsnap" -- \
  grep -qx 'XSNAP_STORE=/var/lib/xsnap' "$inst/etc/default/xsnap"
check "the bash completion is installed" -- \
  test -f "$inst/opt/xs/share/bash-completion/completions/xsnap"
echo 'XSNAP_STORE=/srv/mine' > "$inst/etc/default/xsnap"
tree_make install DESTDIR="$inst" PREFIX=/opt/xs >/dev/null
is "$(cat "$inst/etc/default/xsnap")" "XSNAP_STORE=/srv/mine" \
   "a second make install keeps the edited settings"
tree_make uninstall DESTDIR="$inst" PREFIX=/opt/xs >/dev/null
is "$(cd "$inst" && find . -type f | sort | tr '\n' ' ')" "./etc/default/xsnap " \
   "make uninstall removes everything but the settings"

# ----- Serving as the units do -----
xs init -q
xs account create alice -q
xs volume create adminvol --size 4M -q
xs --account alice volume create avol --size 4M -q
random_file "$tmp/a.img" 4 7

# The command line of UNIT's ExecStart for INSTANCE, with this tree's
# xsnap (as an array in $cmd).
unit_command () {               # unit_command UNIT INSTANCE
  local line
  line=$(sed -n 's/^ExecStart=//p' "$tmp/units/$1")
  line=${line//%i/$2}
  read -ra cmd <<<"$line"
}

# socket_activate LISTEN UNIT INSTANCE: start UNIT's command as systemd
# would, on a socket listening on LISTEN; sets $activated_pid.
socket_activate () {
  unit_command "$2" "$3"
  local envs=(-E XSNAP_STORE)
  if [ "${XSNAP_SANITIZE:-0}" = 1 ]; then
    envs+=(-E "${nbdkit_env[1]}" -E "${nbdkit_env[2]}")
  fi
  systemd-socket-activate -l "$1" "${envs[@]}" "${cmd[@]}" \
    2>>"$tmp/activate.log" &
  activated_pid=$!
  started_pids+=("$activated_pid")
}

if ! command -v systemd-socket-activate >/dev/null; then
  ok 0 "# SKIP systemd-socket-activate is not installed (package systemd)"
  done_testing
  exit
fi

# One account on a Unix socket.
asock=$tmp/run/alice.sock
mkdir -p "$tmp/run"
socket_activate "$asock" xsnap-serve@.service alice
for _ in $(seq 50); do [ -S "$asock" ] && break; sleep 0.1; done
check "systemd-socket-activate listens on alice's socket" -- test -S "$asock"
is "$(nbdinfo --list --json "nbd+unix:///?socket=$asock" | jq -r '.exports[]."export-name"')" \
   "avol" "the first client starts xsnap serve there: it lists alice's volume only"
quietly nbdcopy "$tmp/a.img" "$(uri avol "$asock")"
is "$(export_sum "$(uri avol "$asock")")" \
   "$(sha256sum < "$tmp/a.img" | cut -d' ' -f1)" "and writes and reads it back"
check "the server is the nbdkit that xsnap serve became" -- \
  grep -q "^nbdkit" "/proc/$activated_pid/comm"
stop_server "$activated_pid"
like "$(cat "$tmp/activate.log")" "serving on the 1 socket\(s\) passed by systemd" \
   "xsnap serve says it serves the socket systemd passed"

# The store-wide socket: each client is its uid's account (root: admin).
ssock=$tmp/run/xsnap.sock
socket_activate "$ssock" xsnap-serve.service ""
for _ in $(seq 50); do [ -S "$ssock" ] && break; sleep 0.1; done
is "$(nbdinfo --list --json "nbd+unix:///?socket=$ssock" | jq -r '.exports[]."export-name"')" \
   "adminvol" "the store-wide socket serves root as the administrator"
stop_server "$activated_pid"

# One account on TCP (a drop-in's ListenStream=ADDR:PORT): TLS with its key.
port=$(( 20000 + RANDOM % 20000 ))
socket_activate "127.0.0.1:$port" xsnap-serve@.service alice
psk=$store/tls/alice.psk
for _ in $(seq 300); do
  [ -s "$psk" ] && quietly nbdinfo --size \
    "nbds://alice@127.0.0.1:$port/avol?tls-psk-file=$psk" && break
  quietly nbdinfo --size "nbd://127.0.0.1:$port/avol" || true
  sleep 0.1
done
is "$(nbdinfo --size "nbds://alice@127.0.0.1:$port/avol?tls-psk-file=$psk")" \
   "4194304" "on a TCP socket alice is served with TLS and her pre-shared key"
check "without TLS it refuses" -- fails nbdinfo "nbd://127.0.0.1:$port/avol"
stop_server "$activated_pid" || kill -9 "$activated_pid"

check "serve --unix under socket activation is a usage error" -- \
  test "$(bash -c 'export LISTEN_PID=$$ LISTEN_FDS=1
                   exec "$0" serve --unix x.sock' "$xsnap" 2>/dev/null
          echo $?)" = 2

# ----- The timers' passes -----
xs volume create v --size 2M --block-size 64K -q
xs --account alice snapshot create avol --name s1 --wait -q
xs snapshot create v --name s1 --wait -q
xs region add r2 -q
quietly xs --account alice copy avol@s1 --to-region r2
unit_command xsnap-gc.service ""
out=$(XSNAP_PROGRAM=$xsnap "${cmd[@]}" 2>&1) && status=0 || status=$?
is "$status" 0 "xsnap-gc.service's pass succeeds"
is "$(grep -o "gc of region '[a-z0-9]*'" <<<"$out" | sort | tr '\n' ' ')" \
   "gc of region 'local' gc of region 'r2' " "it collects every region"

unit_command xsnap-verify.service ""
out=$(XSNAP_PROGRAM=$xsnap "${cmd[@]}" 2>&1) && status=0 || status=$?
is "$status" 0 "xsnap-verify.service's pass succeeds"
is "$(grep -o '^snapshot [^ ]*' <<<"$out" | sort | tr '\n' ' ')" \
   "snapshot avol@copy_local_s1 snapshot avol@s1 snapshot v@s1 " \
   "it verifies every account's snapshots in every region"
victim=$(find "$store/regions/local/repo/alice/chunks" -type f | sort | head -n 1)
python3 - "$victim" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
d[len(d) // 2] ^= 0xff
open(p, 'wb').write(d)
PY
out=$(XSNAP_PROGRAM=$xsnap "${cmd[@]}" 2>&1) && status=0 || status=$?
is "$status" 4 "damage makes the pass exit 4, as verify does"
like "$out" "snapshot v@s1 .*0 bad" "and the other snapshots are still verified"

done_testing
