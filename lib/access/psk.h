/* xsnap: per-account TLS pre-shared keys (see psk.c). */
#ifndef XSNAP_PSK_H
#define XSNAP_PSK_H

#include <stdbool.h>

#include "catalog/store.h"

/* The key file of ACCOUNT (malloc'd path), made with a fresh random key
 * if it does not exist yet or ROTATE is set.  The caller checks that the
 * account exists and may have it.
 */
extern char *xs_psk_file (struct xs_store *store, const char *account,
                          bool rotate);

#endif /* XSNAP_PSK_H */
