/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: TCP sockets for the transport: listening, and connecting.
 *
 * There is one connector, made of two halves: tcp_connect_start begins a
 * non-blocking connect to one resolved address and tcp_connect_finish
 * reports how it ended.  tcp_connect drives them with poll(2) for a
 * blocking connect with a timeout (the first connection of stm-send);
 * stm-send's reconnect drives the same halves from its libev loop, so both
 * open sockets the same way (non-blocking, close-on-exec, TCP_NODELAY).
 */
#ifndef STM_PROTO_TCP_H
#define STM_PROTO_TCP_H

#include <stdint.h>

struct addrinfo;

/* Connect a TCP socket to host:port (blocking connect with a timeout in
 * milliseconds, 0 = none, then the fd is handed to stm_conn_new).  Returns
 * the fd or -1 with the error logged, naming host and port. */
int tcp_connect (const char *host, uint16_t port, unsigned timeout_ms);

/* Listen on host:port ("" = any).  Returns the listening fd or -1 with the
 * error logged. If port is 0, *bound_port gets the chosen port.  The fd is
 * non-blocking and close-on-exec, for an ev_io watcher that accepts. */
int tcp_listen (const char *host, uint16_t port, uint16_t *bound_port);

/* Resolve host:port (numeric port) to the stream addresses to connect to,
 * for *res (free it with freeaddrinfo).  Returns 0, or getaddrinfo's
 * code, which tcp_resolve_strerror puts in words. */
int tcp_resolve (const char *host, uint16_t port, struct addrinfo **res);

/* getaddrinfo's code r in words; for EAI_SYSTEM the errno it left, so
 * call this before anything else can change errno. */
const char *tcp_resolve_strerror (int r);

/* Start a non-blocking connect to one address.  Returns the socket
 * (connected, or with the connect in progress: it becomes writable when
 * the connect has ended either way), or -1 with errno set. */
int tcp_connect_start (const struct addrinfo *ai);

/* The connect started on fd has ended (fd became writable): returns 0 if
 * it is connected, with TCP_NODELAY set, or the errno saying why not.
 * The caller still owns fd either way. */
int tcp_connect_finish (int fd);

#endif /* STM_PROTO_TCP_H */
