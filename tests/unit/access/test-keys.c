/* xsnap: tests for lib/catalog/keys.c — the master key, account keys, data keys.
 *
 * Wrapping round trips; a flipped bit in a wrapped key and a wrapped key
 * moved to another row are caught; the master key file missing, loose
 * or wrong is a clear error; a disabled key unwraps nothing; key names,
 * grants and the default key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/keyuse.h"
#include "catalog/account.h"
#include "catalog/catalog.h"
#include "catalog/keys.h"
#include "catalog/store.h"
#include "crypto/masterkey.h"
#include "tap.h"

static void
test_wrapping (void)
{
  unsigned char kek[XS_DATA_KEY_LEN], key[XS_DATA_KEY_LEN];
  unsigned char back[XS_DATA_KEY_LEN];
  char *wrapped = NULL;

  memset (kek, 0x42, sizeof kek);
  for (size_t i = 0; i < sizeof key; i++)
    key[i] = (unsigned char) i;
  is_int (xs_key_wrap (kek, "label", "alice", "key-1", key, &wrapped), 0,
          "wrap");
  ok (wrapped && strlen (wrapped) == 122, "wrapped is 61 bytes in hex");
  is_int (xs_key_unwrap (kek, "label", "alice", "key-1", wrapped, back,
                         "test key"), 0, "unwrap");
  ok (memcmp (key, back, sizeof key) == 0, "same key back");

  for (size_t i = 2; i < strlen (wrapped); i += 17) {
    char saved = wrapped[i];
    wrapped[i] = saved == '0' ? '1' : '0';
    if (xs_key_unwrap (kek, "label", "alice", "key-1", wrapped, back,
                       "test key") != -1)
      ok (0, "flip at %zu caught", i);
    wrapped[i] = saved;
  }
  ok (strstr (tap_take_error (), "not authentic") != NULL,
      "a flipped bit in a wrapped key is not authentic");
  is_int (xs_key_unwrap (kek, "label", "bob", "key-1", wrapped, back,
                         "test key"), -1, "another account: refused");
  is_int (xs_key_unwrap (kek, "label", "alice", "key-2", wrapped, back,
                         "test key"), -1, "another key id: refused");
  is_int (xs_key_unwrap (kek, "other", "alice", "key-1", wrapped, back,
                         "test key"), -1, "another purpose: refused");
  kek[0] ^= 1;
  is_int (xs_key_unwrap (kek, "label", "alice", "key-1", wrapped, back,
                         "test key"), -1, "another master key: refused");
  wrapped[5] = 'x';
  is_int (xs_key_unwrap (kek, "label", "alice", "key-1", wrapped, back,
                         "test key"), -1, "malformed: refused");
  ok (strstr (tap_take_error (), "malformed") != NULL, "... as malformed");
  free (wrapped);
}

static int
count_key (const struct xs_key *key, void *opaque)
{
  (*(int *) opaque)++;
  return 0;
}

static void
test_store_keys (struct xs_store *store, const char *path)
{
  struct xs_catalog *cat = xs_store_catalog (store);
  struct xs_key def, k1, k2, found;
  struct xs_data_key *dk;
  char *wrapped = NULL, *master;
  struct stat st;
  int n = 0;

  master = xs_master_key_path (path);
  ok (stat (master, &st) == 0 && (st.st_mode & 0777) == 0600,
      "init made the master key, mode 0600");
  ok (xs_account_create (store, NULL, "alice", NULL, NULL, NULL) == 0
      && xs_account_create (store, NULL, "bob", NULL, NULL, NULL) == 0,
      "accounts");

  is_int (xs_key_default (store, "alice", &def), 0,
          "alice's default key is made on first use");
  ok (def.is_default && def.enabled && strcmp (def.name, "default") == 0,
      "named default, enabled");
  is_int (xs_key_default (store, "alice", &found), 0, "asked again");
  ok (strcmp (found.id, def.id) == 0, "the same key");
  xs_key_clear (&found);

  is_int (xs_keyuse_create (store, "alice", "alice", "k1", &k1), 0,
          "create k1");
  is_int (xs_keyuse_create (store, "alice", "alice", "k1", &k2), -1,
          "a second k1 is refused");
  is_int (xs_keyuse_create (store, "alice", "alice", "default", &k2), -1,
          "'default' is reserved");
  is_int (xs_keyuse_create (store, "alice", "alice", "k2", &k2), 0,
          "create k2");
  is_int (xs_key_find (store, "bob", "k1", false, &found), 1,
          "bob does not see alice's k1");
  ok (strstr (tap_take_error (), "no key 'k1' in account 'bob'") != NULL,
      "... it looks missing");
  is_int (xs_key_find (store, "alice", k1.id, false, &found), 0,
          "found by id");
  xs_key_clear (&found);

  /* Data keys. */
  is_int (xs_key_new_data_key (store, &k1, &wrapped), 0, "a data key");
  dk = xs_key_open_data_key (store, "alice", "alice", k1.id, wrapped);
  ok (dk != NULL, "opens under k1");
  xs_data_key_free (dk);
  ok (xs_key_open_data_key (store, "alice", "alice", k2.id, wrapped) == NULL,
      "not under k2");
  ok (xs_key_open_data_key (store, "bob", "bob", k1.id, wrapped) == NULL,
      "not by bob, who does not hold k1");
  ok (strstr (tap_take_error (), "not granted to account 'bob'") != NULL,
      "... 'not granted to account bob'");
  ok (xs_key_open_data_key (store, "alice", "bob", k1.id, wrapped) == NULL,
      "not as wrapped by bob (the associated data differs)");
  is_int (xs_key_usable (store, "alice", k1.id), 1, "alice can use k1");
  is_int (xs_key_usable (store, "bob", k1.id), 0, "bob cannot");

  /* A wrapped account key moved to another row. */
  ok (xs_catalog_run (cat, "swap", "UPDATE keys SET wrapped ="
                      " (SELECT wrapped FROM keys WHERE id = ?)"
                      " WHERE id = ?", "ss", k2.id, k1.id) == 1,
      "copy k2's wrapped material into k1's row");
  ok (xs_key_open_data_key (store, "alice", "alice", k1.id, wrapped) == NULL,
      "k1 no longer unwraps");
  ok (strstr (tap_take_error (), "not authentic") != NULL,
      "... the moved key is not authentic");

  /* A disabled key. */
  is_int (xs_keyuse_grant (store, "alice", "alice", "k2", "bob"), 0,
          "grant k2 to bob");
  is_int (xs_keyuse_grant (store, "alice", "alice", "k2", "nobody"), -1,
          "grant to an unknown account: refused");
  is_int (xs_keyuse_grant (store, "alice", "alice", "k2", "alice"), -1,
          "grant to oneself: refused");
  n = 0;
  xs_keyuse_list (store, "bob", count_key, &n);
  is_int (n, 1, "bob lists the key granted to him");
  is_int (xs_keyuse_disable (store, "bob", "bob", k2.id), -1,
          "bob cannot disable it (it is not his)");
  is_int (xs_keyuse_disable (store, "alice", "alice", "k2"), 0, "disable k2");
  xs_key_clear (&k2);
  xs_key_find (store, "alice", "k2", false, &k2);
  ok (!k2.enabled, "k2 is disabled");
  free (wrapped);
  wrapped = NULL;
  is_int (xs_key_new_data_key (store, &k2, &wrapped), -1,
          "no new data key under a disabled key");
  ok (strstr (tap_take_error (),
              "key 'k2' of account 'alice' is disabled") != NULL,
      "... key 'k2' of account 'alice' is disabled");
  n = 0;
  xs_keyuse_list (store, "alice", count_key, &n);
  is_int (n, 3, "alice lists her three keys");

  /* The master key file. */
  setenv ("XSNAP_MASTER_KEY_FILE", "/nonexistent/master.key", 1);
  is_int (xs_key_new_data_key (store, &def, &wrapped), -1,
          "missing master key file: refused");
  ok (strstr (tap_take_error (), "cannot read the master key "
              "/nonexistent/master.key") != NULL,
      "... saying which file");
  unsetenv ("XSNAP_MASTER_KEY_FILE");
  chmod (master, 0644);
  is_int (xs_key_new_data_key (store, &def, &wrapped), -1,
          "a master key readable by others: refused");
  ok (strstr (tap_take_error (), "chmod 600") != NULL, "... saying so");
  chmod (master, 0600);
  is_int (xs_key_new_data_key (store, &def, &wrapped), 0,
          "with the file back: works");
  free (wrapped);
  unlink (master);
  is_int (xs_key_new_data_key (store, &def, &wrapped), -1,
          "master key removed while keys exist: refused, not remade");
  ok (access (master, F_OK) == -1, "no new master key was made");
  xs_key_clear (&def);
  xs_key_clear (&k1);
  xs_key_clear (&k2);
  free (master);
}

int
main (void)
{
  char *dir = tap_tmpdir (), *path;
  struct xs_store *store;

  unsetenv ("XSNAP_MASTER_KEY_FILE");
  test_wrapping ();
  if (asprintf (&path, "%s/store", dir) == -1)
    abort ();
  ok (xs_store_init (path, NULL, NULL) == 0, "init a store");
  store = xs_store_open (path);
  if (store == NULL)
    abort ();
  test_store_keys (store, path);
  xs_store_close (store);
  tap_rmtree (dir);
  free (path);
  free (dir);
  return done_testing ();
}
