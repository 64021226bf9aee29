#!/usr/bin/env bash
# gc and init against setups that would make them destroy data: a second
# store pointed at the first one's repository (refused by the owner mark,
# and gc refuses to collect it), a region whose directory's parent does
# not exist, init over a store whose catalog was lost, a zero-length
# catalog, a repository with data and no owner mark, an old store whose
# repository is claimed on first use, and a manifest deleted by hand (gc
# deletes nothing and names the snapshot).
. "$(dirname "$0")/functions.sh"

require_tool jq nbdcopy sqlite3

fails () { ! "$@" >/dev/null 2>"$tmp/err"; }
err () { cat "$tmp/err"; }
count () { find "$1" -type f ! -name '.*' 2>/dev/null | wc -l; }
setting () { sqlite3 "$1/xsnap.db" "SELECT value FROM settings WHERE key = '$2'"; }
# A region row as a store of the previous release would have recorded it
# (its `region add` accepted any directory).
plant_region () {               # plant_region STORE NAME URL
  mkdir -p "$1/regions/$2/volumes"
  sqlite3 "$1/xsnap.db" "INSERT OR REPLACE INTO regions (name, backend, created_ns) VALUES ('$2', '$3', 0)"
}

storeA=$store
repoA=$storeA/regions/local/repo
xs init -q
xs -q volume create v --size 1M --block-size 64K
start_server w
random_file "$tmp/v.img" 1 adversarial-gc
nbdcopy "$tmp/v.img" "$(uri v)"
stop_server "$server_pid"
xs -q snapshot create v --wait --name s1
nbdcopy_poke () {
  start_server poke
  nbdsh -u "$(uri v)" -c 'h.pwrite(b"\x42" * 65536, 0); h.flush()'
  stop_server "$server_pid"
}
nbdcopy_poke
xs -q snapshot create v --wait --name s2
chunks=$(count "$repoA/admin/chunks")
is "$chunks" 17 "store A holds 17 chunks"
is "$(count "$repoA/admin/manifests")" 2 "and 2 manifests"
idA=$(setting "$storeA" store_id)
like "$idA" '^[0-9a-f]{32}$' "store A has a store id"
check "A's repository records its owner" -- test -s "$repoA/xsnap/owner"

# A second store may not take A's repository as a region.
storeB=$tmp/storeB
xsB () { "$xsnap" --store "$storeB" "$@"; }
xsB init -q
check "store B: region add on A's repository is refused" -- \
  fails xsB region add shared --backend "file://$repoA"
like "$(err)" "owned by another xsnap store \\($idA" "  naming the store that owns it"
is "$(xsB --json region list | jq -r '[.[].name] | join(" ")')" local \
   "  and no region was added"
# A region recorded before repositories were marked: gc refuses.
plant_region "$storeB" shared "file://$repoA"
check "store B: gc of a region on A's repository is refused" -- \
  fails xsB --region shared gc
like "$(err)" "owned by another xsnap store \\($idA" "  naming the owner"
is "$(count "$repoA/admin/chunks") $(count "$repoA/admin/manifests")" \
   "$chunks 2" "  and A's chunks and manifests are all there"
sqlite3 "$storeB/xsnap.db" "DELETE FROM regions WHERE name = 'shared'"
check "store A: a second region on its own repository is refused" -- \
  fails xs region add again --backend "file://$repoA"
like "$(err)" "region 'local' of this store" "  naming the region that uses it"

# A new repository's directory is made, but not its parents.
check "region add on a directory whose parent is missing is refused" -- \
  fails xsB region add far --backend "file://$tmp/no/such/dir"
like "$(err)" "$tmp/no" "  naming the missing parent"
check "  and nothing was created" -- test ! -e "$tmp/no"
check "region add on a new directory under an existing one works" -- \
  quietly xsB region add near --backend "file://$tmp/near"
check "  and the new repository records its owner" -- test -s "$tmp/near/xsnap/owner"

# The catalog lost: init refuses to start afresh over the store's data.
mv "$storeA/xsnap.db" "$tmp/saved.db"
check "init over a store whose catalog is missing is refused" -- fails xs init
like "$(err)" "holds the data of an xsnap store" "  saying the directory holds store data"
check "  and made no catalog" -- test ! -e "$storeA/xsnap.db"
: > "$storeA/xsnap.db"
check "a zero-length catalog is refused" -- fails xs volume list
like "$(err)" "empty" "  with a message that says it is empty"
check "  and it is left as it was" -- test ! -s "$storeA/xsnap.db"
check "init over a zero-length catalog is refused" -- fails xs init
rm -f "$storeA/xsnap.db"
mv "$tmp/saved.db" "$storeA/xsnap.db"
is "$(count "$repoA/admin/chunks")" "$chunks" "A's chunks are all there"

# A new store pointed at a populated repository with no owner mark (one
# of the previous release): it owns nothing there and collects nothing.
storeC=$tmp/storeC
xsC () { "$xsnap" --store "$storeC" "$@"; }
check "a new store cannot be made on A's repository" -- \
  fails xsC init --backend "file://$repoA"
like "$(err)" "owned by another xsnap store" "  (it is owned)"
mv "$repoA/xsnap/owner" "$tmp/ownerA"
check "nor on it without its owner mark" -- fails xsC init --backend "file://$repoA"
like "$(err)" "holds data but no owner mark" "  (it holds data)"
xsC init -q
plant_region "$storeC" old "file://$repoA"
check "gc of a new store's region on an unmarked populated repository is refused" -- \
  fails xsC --region old gc
like "$(err)" "holds data but no owner mark" "  because the catalog is newer than the data"
is "$(count "$repoA/admin/chunks") $(count "$repoA/admin/manifests")" \
   "$chunks 2" "  and nothing was deleted"
check "  nor marked" -- test ! -e "$repoA/xsnap/owner"

# An old store (no store id, no mark) claims its own repository on first use.
sqlite3 "$storeA/xsnap.db" "DELETE FROM settings WHERE key = 'store_id'"
json=$(xs --json gc 2>"$tmp/err") || diag "$(err)"
is "$(jq -r .chunks_deleted <<<"$json")" 0 "an old store's gc deletes nothing it needs"
idA2=$(setting "$storeA" store_id)
like "$idA2" '^[0-9a-f]{32}$' "  and it has a store id now"
check "  and has claimed its repository" -- grep -q "$idA2" "$repoA/xsnap/owner"
check "store C's gc is still refused" -- fails xsC --region old gc
like "$(err)" "owned by another xsnap store \\($idA2" "  now by A's mark"

# A manifest missing (deleted by hand, or dropped from a listing): gc
# deletes nothing and names it.
s2=$(xs --json snapshot show v@s2 | jq -r .id)
xs -q snapshot delete v@s1
mv "$repoA/admin/manifests/$s2" "$tmp/manifest-s2"
check "gc with a snapshot's manifest missing is refused" -- fails xs --json gc
like "$(err)" "$s2.*missing" "  naming the snapshot whose manifest is missing"
is "$(count "$repoA/admin/chunks")" "$chunks" "  and no chunk was deleted"
is "$(xs --json snapshot show v@s2 | jq -r .status)" available \
   "  and the snapshot is still available"
is "$(sqlite3 "$storeA/xsnap.db" "SELECT count(*) FROM snapshots")" 2 \
   "  and the deleted one was not purged"
mv "$tmp/manifest-s2" "$repoA/admin/manifests/$s2"
json=$(xs --json gc 2>"$tmp/err") || diag "$(err)"
is "$(jq -r .purged_snapshots <<<"$json") $(jq -r .chunks_deleted <<<"$json")" \
   "1 1" "with the manifest back, gc purges s1 and its one chunk s2 does not use"
check "verify reads s2 back" -- quietly xs verify v@s2

done_testing
