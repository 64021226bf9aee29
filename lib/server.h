/* xsnap: what the NBD server serves, independent of nbdkit.
 *
 * A server is one store seen from one scope (account, region).  It maps
 * export names to open exports and keeps one open head per volume, shared
 * by every connection to it: that is what makes multi-conn safe (a flush
 * on one connection syncs the one file all connections write to) and what
 * makes the volume's owner one process.  The head is closed, and the owner
 * lock dropped, when the last connection to it closes.
 *
 * The plugin holds exactly one xs_server; all functions are thread-safe.
 */
#ifndef XSNAP_SERVER_H
#define XSNAP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "head.h"

struct xs_server;
struct xs_export;

/* ACCOUNT and REGION may be NULL for the store's defaults. */
extern struct xs_server *xs_server_new (const char *store_path,
                                        const char *account,
                                        const char *region);
extern void xs_server_free (struct xs_server *srv);

/* Call FN with the name and a one-line description of every export the
 * server's scope may see.
 */
extern int xs_server_list_exports (struct xs_server *srv,
                                   int (*fn) (const char *name,
                                              const char *description,
                                              void *opaque),
                                   void *opaque);

/* Open export NAME for one connection.  Unknown names fail with ENOENT. */
extern struct xs_export *xs_server_open (struct xs_server *srv,
                                         const char *name, bool readonly);
extern void xs_server_close (struct xs_server *srv, struct xs_export *exp);

extern uint64_t xs_export_size (const struct xs_export *exp);
extern uint32_t xs_export_block_size (const struct xs_export *exp);
extern bool xs_export_writable (const struct xs_export *exp);
extern const char *xs_export_description (const struct xs_export *exp);

/* The head behind a writable export (NULL for read-only kinds). */
extern struct xs_head *xs_export_head (struct xs_export *exp);

#endif /* XSNAP_SERVER_H */
