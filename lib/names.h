/* xsnap: the rules for names people give to volumes and snapshots. */
#ifndef XSNAP_NAMES_H
#define XSNAP_NAMES_H

/* Longest name, as in the clouds xsnap is modelled on. */
#define XS_NAME_MAX 60

/* Check a user-given name.  KIND is "volume", "snapshot", "account", ... and
 * appears in the message.  Names are 1..60 characters of letters, digits,
 * '.', '_' and '-', not starting with '.' or '-'.  '/' and '@' get their own
 * explanation because they have meaning elsewhere (paths, VOL@SNAP).
 * Returns 0, or -1 after reporting why.
 */
extern int xs_name_check (const char *kind, const char *name);

#endif /* XSNAP_NAMES_H */
