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
#include <stddef.h>
#include <stdint.h>

#include "catalog/snapshot.h"
#include "head/head.h"

struct xs_server;
struct xs_export;

/* ACCOUNT and REGION may be NULL for the store's defaults.  CACHE_BYTES
 * bounds the cache of decompressed chunks shared by snapshot exports and
 * clones.
 */
extern struct xs_server *xs_server_new (const char *store_path,
                                        const char *account,
                                        const char *region,
                                        size_t cache_bytes);
extern void xs_server_free (struct xs_server *srv);

/* Whether clones served are hydrated in the background (default off;
 * the plugin turns it on unless hydrate=false), and at most how many
 * bytes a second each (0: no limit).  A hydrator waits while clients
 * read through to the snapshot.
 */
extern void xs_server_set_hydration (struct xs_server *srv, bool on,
                                     uint64_t rate);

/* The seal buffer of every volume served (xs_head_set_seal_buffer). */
extern void xs_server_set_seal_buffer (struct xs_server *srv,
                                       uint64_t bytes);

/* TEXT for the server's log as one line: control characters (a newline
 * in an export name a client sent) become C escapes (\n, \x1b), so that
 * nothing a client sends can forge a line of the log.  Truncated to fit
 * LEN bytes; 4 times TEXT's length, plus one, always fits.
 */
extern void xs_server_log_line (const char *text, char *buf, size_t len);

/* Who a client is.  The plugin asks for every connection: with a fixed
 * account= it is that account; a client on a Unix socket is the account
 * its uid maps to (root and uids mapped to the administrator: the
 * server's default account).  Returns the account (malloc'd) or NULL
 * (reported) if the uid is not mapped: such a client sees nothing.
 */
extern char *xs_server_account_for_uid (struct xs_server *srv, int64_t uid);
extern const char *xs_server_default_account (const struct xs_server *srv);

/* Call FN with the name and a one-line description of every export
 * ACCOUNT may see in the server's region: its volumes, its available
 * snapshots (VOL@SNAP) and those shared with it (by id).  What a policy
 * denies is left out.
 */
extern int xs_server_list_exports (struct xs_server *srv, const char *account,
                                   int (*fn) (const char *name,
                                              const char *description,
                                              void *opaque),
                                   void *opaque);

/* Open export NAME for one connection of ACCOUNT.  Unknown names, and
 * names ACCOUNT may not open, fail with ENOENT (a denied export looks
 * missing; the reason is logged and audited).
 */
extern struct xs_export *xs_server_open (struct xs_server *srv,
                                         const char *account,
                                         const char *name, bool readonly);
extern void xs_server_close (struct xs_server *srv, struct xs_export *exp);

/* A detached sealer: the owner of a volume that no server serves while a
 * snapshot of it seals (xsnap snapshot create starts one as a process of
 * its own, so that the command returns once the point in time is taken).
 * It is a server without NBD clients: its volume's control socket takes
 * further snapshots as a server's does (each waits for the one before).
 * Its owner lock names it a sealer (head/ownerlock.h), so that a server
 * that opens the volume asks it, over the control socket ("handover"),
 * to stop sealing and give the volume up, and takes the pending snapshot
 * over (catalog/snapnew.h) before anything is written: the open never
 * fails and never waits for the seal, and copy-before-write protects the
 * point in time from then on as for any attached volume.
 *
 * SEAL_DETACHED takes the volume VOLUME_ID of the server's account (the
 * caller decided that it may) and snapshot NAME (NULL: its id) of it, and
 * starts sealing it; *SNAP describes it, pending.  NULL if it fails
 * (reported), with *BUSY set if another process owns the volume (the
 * caller should ask that owner instead).  WAIT_SEALED waits until that
 * snapshot is sealed, failed (WHY: its first error) or handed over (to
 * process *HANDED_TO).  GIVE_UP waits until no snapshot of the volume
 * seals, then gives the volume up and frees EXP.
 */
enum xs_sealer_end {
  XS_SEALER_AVAILABLE,
  XS_SEALER_FAILED,
  XS_SEALER_HANDED_OVER,
};

extern struct xs_export *xs_server_seal_detached (struct xs_server *srv,
                                                  const char *volume_id,
                                                  const char *name,
                                                  struct xs_snapshot *snap,
                                                  bool *busy);
extern enum xs_sealer_end xs_export_wait_sealed (struct xs_export *exp,
                                                 char *why, size_t len,
                                                 long *handed_to);
extern void xs_server_give_up (struct xs_server *srv, struct xs_export *exp);

extern uint64_t xs_export_size (const struct xs_export *exp);
extern uint32_t xs_export_block_size (const struct xs_export *exp);
extern bool xs_export_writable (const struct xs_export *exp);

/* The request size the export handles best (NBD's preferred block size). */
extern uint32_t xs_export_preferred_size (const struct xs_export *exp);
extern const char *xs_export_description (const struct xs_export *exp);

/* The head behind a volume export (NULL for a snapshot), for writes. */
extern struct xs_head *xs_export_head (struct xs_export *exp);

/* Reads, flush and extents of either kind. */
extern int xs_export_pread (struct xs_export *exp, void *buf, uint32_t count,
                            uint64_t offset);
extern int xs_export_flush (struct xs_export *exp);
extern int xs_export_extents (struct xs_export *exp, uint64_t offset,
                              uint64_t count,
                              int (*fn) (uint64_t offset, uint64_t length,
                                         bool hole, void *opaque),
                              void *opaque);

#endif /* XSNAP_SERVER_H */
