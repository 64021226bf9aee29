/* xsnap: the rules for names people give to volumes and snapshots, and
 * the resource names ("xsnap:REGION:ACCOUNT:TYPE/ID") that permission
 * documents, audit records and errors use for them.
 */
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

/* Build "xsnap:REGION:ACCOUNT:TYPE/ID" (malloc'd; NULL, reported, if out
 * of memory).  TYPE is one of xs_permdoc_resource_types () (access/permdoc.h); REGION or
 * ACCOUNT may be NULL or "" for resources outside any region or account.
 */
extern char *xs_resource_name (const char *region, const char *account,
                               const char *type, const char *id);

#endif /* XSNAP_NAMES_H */
