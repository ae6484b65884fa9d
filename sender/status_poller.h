/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: asking the filter for STATUS without blocking the loop.
 *
 * While a pass runs, stm-send looks at the dirty set from its one-second
 * tick and, while a mid-pass throttle may be due, every 50 ms.  A blocking
 * round trip there would stall the reads and sends of the pass behind a
 * filter that is slow to answer, so those looks go through a connection
 * of their own (STATUS is open to any connection, owner or not), written
 * and read on the event loop: status_poller_ask sends the request unless
 * one is in flight, and the reply comes to the callback.  A poller whose
 * connection fails goes quiet; the pass's end, which cannot do without
 * the filter, notices the failure on the owning connection and reports
 * it.
 */
#ifndef STM_SENDER_STATUS_POLLER_H
#define STM_SENDER_STATUS_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "control_client.h"

struct status_poller;

/* A STATUS reply arrived, rtt_ns after it was asked for. */
typedef void status_poller_cb (void *opaque, const struct control_status *st,
                               uint64_t rtt_ns);

/* Connect to the control socket at path.  NULL with err filled. */
struct status_poller *status_poller_open (struct ev_loop *loop, const char *path,
                                          status_poller_cb *cb, void *opaque,
                                          char *err, size_t errlen);
/* Ask for STATUS, unless a request is in flight or the poller failed. */
void status_poller_ask (struct status_poller *p);
/* NULL is allowed. */
void status_poller_close (struct status_poller *p);

#endif /* STM_SENDER_STATUS_POLLER_H */
