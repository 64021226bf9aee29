#!/usr/bin/env bash
# Fault-injection soak: a seeded mixed workload (writes, zeroes, trims,
# snapshots while writing, send | receive into a second store, copies to
# a second region, deletes, gc) with kill -9 of nbdkit, of `xsnap
# snapshot create`, of `xsnap send` and of `xsnap receive`, checked
# against a model of what was written (tests/soak-faults.py says what is
# checked).  Each kind of step runs once here; with XSNAP_LONG=1 (make
# check-long) the soak goes on with random steps.  The seed is fixed and
# printed; XSNAP_SOAK_SEED replays another, XSNAP_SOAK_STEPS sets the
# length.
. "$(dirname "$0")/functions.sh"

seed=${XSNAP_SOAK_SEED:-20261207}
steps=${XSNAP_SOAK_STEPS:-17}
[ -n "${XSNAP_LONG:-}" ] && steps=${XSNAP_SOAK_STEPS:-400}

XSNAP_SOAK_NBDKIT=$(jq -cn '$ARGS.positional' --args "${nbdkit_env[@]}" nbdkit)
export XSNAP_SOAK_NBDKIT
/usr/bin/python3 "$top/tests/soak-faults.py" "$xsnap" "$plugin" "$tmp" "$seed" "$steps"
