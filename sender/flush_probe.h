/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: measuring what a flush of the source costs.
 *
 * FREEZE flushes the plugin with the gate closed, and that flush is part of
 * the downtime.  Before the first FREEZE the sender has no measurement of
 * it, so it times a flush of its own: a second, synchronous NBD connection
 * to the source (the read pipeline's connection runs asynchronously on the
 * event loop and must not be driven from here) sends NBD_CMD_FLUSH twice
 * and times the second.  FREEZE does the same (a flush with writes still
 * flowing, then the gate, then the flush the guest waits for), so the
 * second flush, which finds what the guest wrote during the first, is a
 * fair estimate of the frozen one.
 */
#ifndef STM_SENDER_FLUSH_PROBE_H
#define STM_SENDER_FLUSH_PROBE_H

#include <stddef.h>
#include <stdint.h>

struct flush_probe;

/* Connect to the source (blocking).  NULL with errbuf filled on failure. */
struct flush_probe *flush_probe_open (const char *uri, char *errbuf, size_t errlen);
void flush_probe_close (struct flush_probe *p);

/* Flush the source twice and return how long the second took in
 * nanoseconds, or
 * UINT64_MAX with errbuf filled if the flush failed.  A source that cannot
 * flush costs 0. */
uint64_t flush_probe_measure (struct flush_probe *p, char *errbuf, size_t errlen);

#endif /* STM_SENDER_FLUSH_PROBE_H */
