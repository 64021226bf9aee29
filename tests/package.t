#!/usr/bin/env bash
# The Debian package (debian/, `make deb`): built from this tree into a
# temporary directory (or the one in $XSNAP_DEB), it holds the CLI in
# /usr/bin, the plugin in nbdkit's plugin directory, the man pages, every
# systemd unit, /etc/default/xsnap as a conffile and the bash completion;
# its version is the Makefile's; it depends on what it loads with dlopen;
# installing it enables and starts nothing; lintian finds no error or
# warning.  (.ci/run installs it and runs the demo with it.)
. "$(dirname "$0")/functions.sh"

# Missing tools skip the file, except in CI, where scripts/install-deps
# has installed them.
need () {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    if [ "${CI:-}" = true ]; then
      printf 'Bail out! %s is not installed (scripts/install-deps installs it)\n' "$tool"
      exit 1
    fi
    skip_all "$tool is not installed (scripts/install-deps installs it)"
  done
}
need dpkg-deb lintian nbdkit
version=$(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$top" version)
arch=$(dpkg --print-architecture)

if [ -n "${XSNAP_DEB:-}" ]; then
  deb=$XSNAP_DEB
  diag "checking $deb"
else
  need dpkg-buildpackage dh git
  start=$(date +%s)
  deb=$("$top/scripts/make-deb" --work "$tmp/build" --out "$tmp" --no-lintian \
          2>"$tmp/make-deb.log" | tail -n 1) && status=0 || status=$?
  is "$status" 0 "make-deb builds the package"
  if [ "$status" != 0 ]; then
    sed 's/^/#   /' "$tmp/make-deb.log"
    done_testing
    exit
  fi
  diag "built in $(( $(date +%s) - start )) s"
fi
is "${deb##*/}" "xsnap_${version}_${arch}.deb" "it is xsnap_VERSION_ARCH.deb"

field () { dpkg-deb -f "$deb" "$1"; }
is "$(field Package) $(field Version)" "xsnap $version" \
   "its version is the Makefile's VERSION"
depends=$(field Depends)
missing=
for dep in nbdkit 'libnbd0 (>= 1.14)' libcurl4 jq libc6 libsqlite3-0 \
           libjansson4 libzstd1 libssl3; do
  [[ ", $depends," == *", $dep"[,\ ]* ]] || missing+=" $dep"
done
is "$missing" "" "it depends on nbdkit, the libraries it links and those it loads (libnbd0, libcurl4)"

# ----- Contents -----
dpkg-deb -c "$deb" | awk '{ print $1, $NF }' > "$tmp/contents"
has () { grep -qx -- "$1 .$2" "$tmp/contents"; }
plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
check "the CLI is /usr/bin/xsnap" -- has -rwxr-xr-x /usr/bin/xsnap
check "the plugin is in nbdkit's plugindir ($plugindir)" -- \
  has -rw-r--r-- "$plugindir/nbdkit-xsnap-plugin.so"
check "the man pages xsnap(1) and nbdkit-xsnap-plugin(1)" -- \
  eval 'has -rw-r--r-- /usr/share/man/man1/xsnap.1.gz &&
        has -rw-r--r-- /usr/share/man/man1/nbdkit-xsnap-plugin.1.gz'
missing=
for unit in "$top"/scripts/systemd/*.service "$top"/scripts/systemd/*.socket \
            "$top"/scripts/systemd/*.timer; do
  has -rw-r--r-- "/lib/systemd/system/${unit##*/}" || missing+=" ${unit##*/}"
done
is "$missing" "" "every unit of scripts/systemd/ is in /lib/systemd/system"
check "the timers' passes are /usr/libexec/xsnap/xsnap-each" -- \
  has -rwxr-xr-x /usr/libexec/xsnap/xsnap-each
check "the bash completion is in /usr/share/bash-completion/completions" -- \
  has -rw-r--r-- /usr/share/bash-completion/completions/xsnap
check "/etc/default/xsnap is there" -- has -rw-r--r-- /etc/default/xsnap
mkdir -p "$tmp/control" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
dpkg-deb -x "$deb" "$tmp/root"
is "$(cat "$tmp/control/conffiles")" "/etc/default/xsnap" "... as a conffile"
check "the units are scripts/systemd's, naming /usr/bin/xsnap" -- \
  diff -r -x 'xsnap-each' -x 'xsnap.default' "$top/scripts/systemd" \
    "$tmp/root/lib/systemd/system"

# ----- Installing enables and starts nothing -----
is "$(grep -h 'deb-systemd-invoke \$_dh_action' "$tmp/control/postinst")" \
   "		deb-systemd-invoke \$_dh_action 'xsnap-daemon.service' 'xsnap-gc.timer' 'xsnap-policy.timer' 'xsnap-verify.timer' >/dev/null || true" \
   "after an upgrade only the daemon and the timers are restarted (if enabled); the servers are not"
is "$(grep -c 'deb-systemd-helper enable' "$tmp/control/postinst")" \
   "$(grep -c 'if deb-systemd-helper --quiet was-enabled' "$tmp/control/postinst")" \
   "a unit is enabled only if it was enabled before"

# ----- The programs -----
is "$("$tmp/root/usr/bin/xsnap" --version)" "xsnap $version" "xsnap --version"
is "$(nbdkit "$tmp/root/$plugindir/nbdkit-xsnap-plugin.so" --version \
       | sed -n 's/^xsnap //p')" "$version" "the plugin's version"

# ----- lintian -----
lintian --fail-on error,warning "$deb" >"$tmp/lintian" 2>&1 && status=0 || status=$?
is "$status" 0 "lintian finds no error or warning"
grep -v '^running with root privileges' "$tmp/lintian" | sed 's/^/# /' || true

done_testing
