/* xsnap: a volume made from a snapshot, and a volume reset to one.
 *
 * Both start from a snapshot spec a user typed: it is found as the
 * account may see it (its own snapshots, and those shared with it that it
 * accepted), and the action is checked on it (access.h:
 * xsnap:CreateVolumeFromSnapshot, xsnap:ResetVolume); a snapshot the
 * account may not see looks missing.  The catalog (volume.h) then makes
 * or resets the volume.
 */
#ifndef XSNAP_CLONE_H
#define XSNAP_CLONE_H

#include <stdbool.h>

#include "catalog/store.h"
#include "catalog/volume.h"

/* Create volume NAME in SCOPE from SNAPSHOT_SPEC (VOLUME@NAME or an id);
 * ENCRYPT and KEY_SPEC as in xs_volume_create_from_snapshot.
 */
extern int xs_clone_create (struct xs_store *store,
                            const struct xs_scope *scope, const char *name,
                            const char *snapshot_spec, bool encrypt,
                            const char *key_spec, struct xs_volume *vol);

/* Roll VOL back to SNAPSHOT_SPEC (xs_volume_reset). */
extern int xs_clone_reset (struct xs_store *store, struct xs_volume *vol,
                           const char *snapshot_spec);

#endif /* XSNAP_CLONE_H */
