/* xsnap daemon --metrics-listen ADDR:PORT: the daemon's metrics over
 * HTTP/1.1, for Prometheus to scrape.
 *
 * One thread accepts one connection at a time and answers one request on
 * it: GET (or HEAD) /metrics gets the store's metrics (lib/ops/metrics.h)
 * as text/plain; version=0.0.4, any other path 404, any other method 405,
 * a request that is not HTTP 400; then the connection is closed.  A
 * client that has not sent its request within 5 seconds is dropped.  The
 * thread has its own handle on the store, so a scrape never waits for
 * the daemon's pass to let go of its handle (SQLite's WAL lets it read
 * while a pass writes).
 * It serves anyone who can connect: bind it to loopback, or keep it
 * behind a firewall.
 */
#ifndef XSNAP_METRICS_LISTEN_H
#define XSNAP_METRICS_LISTEN_H

struct metrics_listener;

/* Listen on ADDR:PORT ("127.0.0.1:9310", "[::1]:9310", "localhost:0"
 * for a port the kernel picks) and serve the metrics of the store at
 * STORE_PATH.  *BOUND (may be NULL) gets the address it listens on, as
 * "ADDR:PORT" (malloc'd).  NULL with an error.
 */
extern struct metrics_listener *metrics_listen_start (const char *store_path,
                                                      const char *listen,
                                                      char **bound);

/* Stop serving (a request being answered is finished) and free. */
extern void metrics_listen_stop (struct metrics_listener *listener);

#endif /* XSNAP_METRICS_LISTEN_H */
