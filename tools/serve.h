/* xsnap CLI: what serve and serve-changes share. */
#ifndef XSNAP_SERVE_H
#define XSNAP_SERVE_H

/* The plugin to run: $XSNAP_PLUGIN, the one built beside this program,
 * or the installed one ("xsnap", which nbdkit finds in its plugin
 * directory).  Malloc'd, or NULL when out of memory.
 */
extern char *serve_plugin_path (void);

#endif /* XSNAP_SERVE_H */
