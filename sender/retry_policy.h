/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: when to reconnect to the receiver, and how long to wait.
 *
 * Pure functions, no I/O and no clock, so the unit tests reach them.  The
 * migration asks here, each time the receiver connection ends, whether the
 * cause may go away by itself (a cut network, a restarted receiver, a
 * receiver still holding our previous connection) and so is worth another
 * attempt, or whether it is a configuration or destination problem that
 * retrying cannot fix (authentication, a mismatched output, no space).
 */
#ifndef STM_SENDER_RETRY_POLICY_H
#define STM_SENDER_RETRY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* The first wait after losing the receiver and the longest one: 0.5 s,
 * doubling with each attempt, at most 10 s. */
#define RETRY_FIRST_DELAY_MS 500u
#define RETRY_MAX_DELAY_MS 10000u

/* The wait before attempt number attempt (1 for the first). */
uint64_t retry_backoff_ms (unsigned attempt);

/* The receiver sent ERROR or ABORT with this code: worth retrying?  Only
 * "busy" is: the receiver may still be holding our previous connection
 * until it notices that connection is dead. */
bool retry_wire_error_transient (uint32_t code);

/* The transport closed the connection with this reason (proto/
 * tls_transport.h's words).  A failed TLS handshake is an authentication
 * or configuration problem unless the peer simply went away during it
 * (the connection ended, was reset, or the handshake timed out), and a
 * malformed message is a bug; neither is retried.  Anything else (the
 * peer closed, a reset, a send or receive error) is. */
bool retry_close_transient (const char *reason);

#endif /* STM_SENDER_RETRY_POLICY_H */
