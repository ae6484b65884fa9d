/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: measuring what a flush of the source costs.
 *
 * FREEZE flushes the plugin with the gate closed, and that flush is part of
 * the downtime.  Before the first FREEZE the sender has no measurement of
 * it, so it times a flush of its own, on a second NBD connection to the
 * source (the read pipeline's is busy with reads), driven by the loop
 * like the read pipeline (nbd_watch.h), so that a slow flush never holds
 * the loop.  It sends NBD_CMD_FLUSH twice and times the second.  FREEZE
 * does the same (a flush with writes still flowing, then the gate, then
 * the flush the guest waits for), so the second flush, which finds what
 * the guest wrote during the first, is a fair estimate of the frozen one.
 */
#ifndef STM_SENDER_FLUSH_PROBE_H
#define STM_SENDER_FLUSH_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct flush_probe;

/* Connect to the source (blocking: it is called before the loop runs).
 * NULL with errbuf filled on failure. */
struct flush_probe *flush_probe_open (const char *uri, char *errbuf, size_t errlen);
/* Stops a measurement in progress (its callback does not run). */
void flush_probe_close (struct flush_probe *p);
/* Is a measurement in progress? */
bool flush_probe_busy (const struct flush_probe *p);
/* Stop watching a measurement in progress, so that it does not keep the
 * loop running at the end (its callback does not run); NULL is fine. */
void flush_probe_abandon (struct flush_probe *p);

/* The result of a measurement: the second flush's duration in
 * nanoseconds, or UINT64_MAX with why saying what failed. */
typedef void flush_probe_cb (void *opaque, uint64_t ns, const char *why);

/* Flush the source twice on loop, timing the second; cb runs from the
 * loop when it is done.  Returns 0 when started, 1 when there is nothing
 * to measure (the source cannot flush: it costs 0, and cb does not run),
 * -1 with why filled when the first flush cannot even be issued.  One
 * measurement at a time. */
int flush_probe_start (struct flush_probe *p, struct ev_loop *loop,
                       flush_probe_cb *cb, void *opaque,
                       char *why, size_t whylen);

#endif /* STM_SENDER_FLUSH_PROBE_H */
