#!/usr/bin/env bash
# The installed Debian package (.ci/run installs it after `make check`,
# runs this and the demo with it, and removes it): /usr/bin/xsnap and
# `nbdkit xsnap` are this version, the installed units verify clean,
# xsnap-serve@.service's command serves through the installed plugin
# (found by name) on a socket passed as systemd passes it, the timers'
# passes run the installed xsnap, and the completion loads.  Skipped
# when the package is not installed (in make check), a failure when
# XSNAP_REQUIRE_INSTALLED=1 (in .ci/run, after it installed it).
. "$(dirname "$0")/functions.sh"

if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' xsnap 2>/dev/null)" != "ii " ]; then
  # .ci/run installs the package and then requires it: no silent skip.
  if [ "${XSNAP_REQUIRE_INSTALLED:-0}" = 1 ]; then
    printf 'Bail out! the package xsnap is not installed\n'
    exit 1
  fi
  skip_all "the package xsnap is not installed (.ci/run installs it: make deb; apt-get install ./xsnap_*.deb)"
fi
require_tool nbdkit nbdinfo nbdcopy jq systemd-analyze systemd-socket-activate

version=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$top" version)
xsnap=/usr/bin/xsnap
unset XSNAP_PLUGIN
units=/lib/systemd/system

is "$("$xsnap" --version)" "xsnap $version" "/usr/bin/xsnap is this version"
is "$(nbdkit xsnap --version | sed -n 's/^xsnap //p')" "$version" \
   "nbdkit finds the plugin by its name, this version"
check "dpkg finds every file as the package installed it" -- quietly dpkg -V xsnap

out=$(systemd-analyze verify "$units"/xsnap-*.service "$units"/xsnap-*.socket \
        "$units"/xsnap-*.timer 2>&1) && status=0 || status=$?
is "$status:$out" "0:" "systemd-analyze verify: the installed units are clean"
is "$(systemctl is-enabled xsnap-serve.socket xsnap-daemon.service \
        xsnap-policy.timer xsnap-gc.timer xsnap-verify.timer 2>/dev/null | sort -u)" \
   "disabled" "installing enabled none of them"

# xsnap-serve@alice.service's command, on a socket passed to it.
xs init -q
xs account create alice -q
xs --account alice volume create avol --size 4M -q
xs volume create adminvol --size 4M -q
line=$(sed -n 's/^ExecStart=//p' "$units/xsnap-serve@.service")
read -ra cmd <<<"${line//%i/alice}"
is "${cmd[*]}" "/usr/bin/xsnap --account alice serve" "xsnap-serve@alice's command"
sock=$tmp/alice.sock
systemd-socket-activate -l "$sock" -E XSNAP_STORE "${cmd[@]}" 2>>"$tmp/serve.log" &
server_pid=$!
started_pids+=("$server_pid")
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
is "$(nbdinfo --list --json "nbd+unix:///?socket=$sock" | jq -r '.exports[]."export-name"')" \
   "avol" "it serves alice's volume"
random_file "$tmp/a.img" 4 3
quietly nbdcopy "$tmp/a.img" "$(uri avol "$sock")"
is "$(export_sum "$(uri avol "$sock")")" "$(sha256sum < "$tmp/a.img" | cut -d' ' -f1)" \
   "writes and reads back"
is "$(tr '\0' ' ' < "/proc/$server_pid/cmdline")" \
   "nbdkit xsnap store=$store region=local account=alice " \
   "the server is nbdkit with the installed plugin, by name"
stop_server "$server_pid"

xs --account alice snapshot create avol --name s1 --wait -q
out=$(/usr/libexec/xsnap/xsnap-each verify 2>&1) && status=0 || status=$?
is "$status" 0 "the installed verify pass runs /usr/bin/xsnap"
like "$out" "snapshot avol@s1 .* 0 bad" "and verifies alice's snapshot"

is "$(bash -c '. /usr/share/bash-completion/completions/xsnap; complete -p xsnap')" \
   "complete -F _xsnap xsnap" "the installed bash completion loads"

done_testing
