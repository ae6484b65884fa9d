/* stm-recv: serving the finished image over NBD (--export HOST:PORT).
 *
 * After a migration commits, stm-recv can start an nbdkit (file plugin) on
 * the finished image, with the receiver's own TLS credentials, and
 * announce its URI in COMMITTED; the source's migrate filter then forwards
 * the guest's I/O there (FLIP forward).  The URI carries no credentials
 * ("nbds://HOST:PORT/"): they would name files on this host, and the
 * sender adds its own (docs/protocol.md).
 *
 * nbdkit runs in the foreground as a child with --exit-with-parent, so it
 * never outlives stm-recv; stm-recv in turn keeps running while the
 * export does, and stops it when it is told to stop (SIGINT/SIGTERM).
 */
#ifndef STM_RECEIVER_EXPORT_H
#define STM_RECEIVER_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "receiver_options.h"

/* How long nbdkit may take to accept connections. */
#define EXPORT_START_TIMEOUT_S 10

struct export;

/* Called from the loop when the nbdkit process ends by itself; status is
 * waitpid's. */
typedef void (*export_exit_fn) (void *opaque, int status);

/* Start nbdkit serving image on opts->export_host:opts->export_port and
 * wait (at most EXPORT_START_TIMEOUT_S) until it says it is ready (its
 * pidfile).  Fills uri with the address for clients.  NULL after
 * log_error, with uri empty: no client may be sent to that port. */
struct export *export_start (struct ev_loop *loop, const struct receiver_options *opts,
                             const char *image, char *uri, size_t urilen,
                             export_exit_fn on_exit, void *opaque);

/* Stop nbdkit (SIGTERM, then SIGKILL after a few seconds) and free. */
void export_stop (struct export *e);

/* Format the URI clients use for host:port ("nbds://HOST:PORT/", or
 * "nbd://" without TLS; an IPv6 host in brackets).  Pure, for tests. */
int export_format_uri (const char *host, uint16_t port, int tls,
                       char *uri, size_t urilen);

#endif /* STM_RECEIVER_EXPORT_H */
