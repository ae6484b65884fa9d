/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the transport between stm-send and stm-recv, as its users include
 * it: one header for the three parts, each in files of its own.
 *
 *   tls_creds.h   the TLS credentials of a process (PSK file or X.509
 *                 directory), and the PSK identity of a file
 *   stm_conn.h    the message connection, plain or TLS 1.3, on a libev loop
 *   tcp.h         listening and connecting TCP sockets
 *
 * The connection engine (stm_conn.c) drives either transport through a
 * table of operations (conn_ops.h: conn_plain.c, conn_tls.c).
 */
#ifndef STM_PROTO_TLS_TRANSPORT_H
#define STM_PROTO_TLS_TRANSPORT_H

#include "stm_conn.h"
#include "tcp.h"
#include "tls_creds.h"

#endif /* STM_PROTO_TLS_TRANSPORT_H */
