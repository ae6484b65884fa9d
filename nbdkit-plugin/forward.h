/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: forwarding every request to the destination after
 * FLIP forward.
 *
 * After the flip the destination's NBD server (normally the nbdkit that
 * stm-recv --export starts on the finished image) is authoritative, and the
 * guest keeps talking to the source's nbdkit, which passes each request on
 * through libnbd.  A small pool of libnbd handles to the destination is
 * opened at FLIP time from the control thread (after nbdkit's fork, as
 * libnbd requires); worker threads then issue synchronous libnbd calls,
 * each on the next handle of the pool.  libnbd handles are thread safe and
 * serialise the calls made on one handle, so several handles let several
 * guest requests be in flight at once.  PRECONNECT (preconnect.h) may
 * open the pool earlier, on a thread of its own, for FLIP to take over.
 *
 * Block status is not forwarded: extents answer "allocated data" for the
 * whole range asked, which is always a correct, if uninformative, answer.
 */
#ifndef STM_FORWARD_H
#define STM_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "time_units.h"

/* Handles in the pool. */
#define FORWARD_HANDLES 4
/* How long opening the handles after the first may take. */
#define FORWARD_EXTRA_TIMEOUT_NS (5 * NS_PER_S)

struct forward;

/* Connect to the NBD server at uri (nbd://, nbds://, nbd+unix://, ...;
 * TLS as the URI says; tls-psk-file= and tls-certificates= may name local
 * files), waiting at most timeout_ns for the first handle; budget names
 * that bound in the timeout message ("that remained of
 * migrate-freeze-timeout").  Bytes arriving on cancel_fd (-1: none) call
 * the attempt off at once.  The export must have exactly expected_size
 * bytes and be writable.  Returns NULL with a sentence in errbuf on
 * failure, having changed nothing. */
struct forward *forward_connect (const char *uri, uint64_t expected_size,
                                 uint64_t timeout_ns, const char *budget,
                                 int cancel_fd, char *errbuf, size_t errlen);
/* Control thread, after the flip (the guest already uses the first
 * handle): open up to FORWARD_HANDLES - 1 more connections to uri, within
 * timeout_ns, and add those that connect to the pool.  Failures only
 * leave the pool smaller (logged at debug level).  Does nothing when the
 * destination does not advertise multi-conn: only then may requests be
 * spread over several connections. */
void forward_add_handles (struct forward *f, const char *uri,
                          uint64_t timeout_ns, int cancel_fd);

/* Are all the handles of a pool that carried no request yet still
 * connected and ready?  Takes no time: it only looks at what the
 * destination may have sent meanwhile (an end of file when it closed). */
bool forward_usable (struct forward *f);

/* Handles that connected (1..FORWARD_HANDLES), for messages. */
unsigned forward_handles (const struct forward *f);
void forward_close (struct forward *f);

/* The data path, called by worker threads with nbdkit's flags; each
 * returns 0, or -1 with *err set to an errno. */
int forward_pread (struct forward *f, void *buf, uint32_t count,
                   uint64_t offset, int *err);
int forward_pwrite (struct forward *f, const void *buf, uint32_t count,
                    uint64_t offset, uint32_t flags, int *err);
int forward_zero (struct forward *f, uint32_t count, uint64_t offset,
                  uint32_t flags, int *err);
int forward_trim (struct forward *f, uint32_t count, uint64_t offset,
                  uint32_t flags, int *err);
int forward_flush (struct forward *f, int *err);
int forward_cache (struct forward *f, uint32_t count, uint64_t offset,
                   int *err);
int forward_extents (struct forward *f, uint32_t count, uint64_t offset,
                     struct nbdkit_extents *extents, int *err);

#endif /* STM_FORWARD_H */
