#!/usr/bin/env bash
# The bash completion (scripts/completion/xsnap), sourced into this shell
# and asked as bash asks it (COMP_WORDS split at spaces and at '=', as
# COMP_WORDBREAKS does): commands, subcommands, options, option values,
# and the names of the store's volumes, snapshots, accounts and regions.
. "$(dirname "$0")/functions.sh"
require_tool jq

# shellcheck disable=SC1091
. "$top/scripts/completion/xsnap"

# complete LINE: what <Tab> at the end of LINE offers, sorted, on one line
# (a LINE ending in a space completes a new word).
complete_line () {
  local line=$1
  read -ra COMP_WORDS <<<"${line//=/ = }"
  if [[ "$line" == *" " ]] || [[ "$line" == *"=" ]]; then
    COMP_WORDS+=("")
  fi
  [[ "$line" == *"=" ]] && COMP_WORDS[${#COMP_WORDS[@]}-2]="="
  COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  COMP_LINE=$line
  COMP_POINT=${#line}
  COMPREPLY=()
  _xsnap
  [ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}

# The program completed is the one typed: this tree's.
export PATH=$top/tools:$PATH
is "$(complete -p xsnap)" "complete -F _xsnap xsnap" "sourcing registers _xsnap"

like "$(complete_line "xsnap ")" \
  "^account audit chain config copy daemon diff export gc help import init job key metrics policy policy-doc receive region send serve serve-changes share snapshot status unshare verify version volume $" \
  "commands"
is "$(complete_line "xsnap sn")" "snapshot " "a command from its start"
is "$(complete_line "xsnap volume ")" \
   "create delete hydrate list reset resize show " "volume's subcommands"
is "$(complete_line "xsnap policy c")" "copy-to create " "policy's, from their start"
is "$(complete_line "xsnap volume create db --")" \
   "--account --block-size --encrypt --from-snapshot --help --json --key --quiet --region --size --store --verbose " \
   "volume create's options, and the global ones"
is "$(complete_line "xsnap serve --r")" "--region --rotate-key " "serve's options"
is "$(complete_line "xsnap diff --format ")" "bitmap blocks json table " \
   "--format's values"
is "$(complete_line "xsnap diff --format=j")" "json " "... also after '='"
is "$(complete_line "xsnap -")" \
   "--account --help --json --quiet --region --store --verbose --version -V -h -q -v " \
   "global options before the command"

xs init -q
xs account create alice -q
xs volume create db1 --size 1M -q
xs volume create db2 --size 1M -q
xs snapshot create db1 --name monday --wait -q
xs --account alice volume create web --size 1M -q
xs region add dr -q

is "$(complete_line "xsnap volume show ")" "db1 db2 " "volume names"
is "$(complete_line "xsnap volume show db")" "db1 db2 " "... from their start"
is "$(complete_line "xsnap --account alice volume show ")" "web " \
   "the volumes of the account on the command line"
is "$(complete_line "xsnap --account=alice snapshot create ")" "web " \
   "... also given as --account=ID"
is "$(complete_line "xsnap snapshot delete ")" "db1@monday " "snapshot names"
is "$(complete_line "xsnap verify ")" "db1@monday " "verify takes a snapshot"
is "$(complete_line "xsnap diff --live ")" "db1 db2 " "diff --live takes a volume"
is "$(complete_line "xsnap diff db1@monday ")" "db1@monday " \
   "diff takes two snapshots"
is "$(complete_line "xsnap volume create x --from-snapshot ")" "db1@monday " \
   "--from-snapshot takes a snapshot"
is "$(complete_line "xsnap copy db1@monday --to-account ")" "admin alice " \
   "--to-account takes an account"
is "$(complete_line "xsnap copy db1@monday --to-region ")" "dr local " \
   "--to-region takes a region"
is "$(complete_line "xsnap snapshot create db1 --name ")" "" \
   "a new name is not completed"
is "$(complete_line "xsnap --store $tmp/nowhere volume show ")" "" \
   "no store there: nothing, and no error"
check "and the store is not made" -- test ! -e "$tmp/nowhere"
is "$(XSNAP_STORE= complete_line "xsnap volume list --")" "--account --help --json --quiet --region --store --verbose " \
   "options need no store"

done_testing
