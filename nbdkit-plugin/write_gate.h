/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the gate every write-like request passes through.
 *
 * Writes, zeroes, trims and flushes enter the gate before they reach the
 * plugin and leave it once they have completed (and their dirty bits are
 * set).  While the gate is open, entering costs one atomic increment and
 * one atomic load.  The control thread can close it (FREEZE): new requests
 * then wait at the gate, and write_gate_close_and_drain returns once the
 * requests already inside have left.  Opening it again (THAW) lets the
 * waiting requests through onto the source.  Fencing it (FLIP fence) is
 * final: waiting and later requests fail with EIO.  Turning it to
 * forwarding (FLIP forward) is final too: waiting and later requests are
 * told to go to the destination instead of the plugin.
 */
#ifndef STM_WRITE_GATE_H
#define STM_WRITE_GATE_H

#include <pthread.h>
#include <stdint.h>

enum write_gate_mode {
  WRITE_GATE_OPEN,       /* requests pass */
  WRITE_GATE_CLOSED,     /* requests wait (frozen) */
  WRITE_GATE_FENCED,     /* requests fail with EIO, for good */
  WRITE_GATE_FORWARDING, /* requests go to the destination, for good */
};

struct write_gate {
  int mode;                      /* enum write_gate_mode, atomic */
  uint64_t inflight;             /* requests inside the gate, atomic */
  pthread_mutex_t lock;          /* guards waiting on the two conditions */
  pthread_cond_t reopened;       /* mode left WRITE_GATE_CLOSED */
  pthread_cond_t drained;        /* inflight reached 0 while not open */
};

#define WRITE_GATE_INIT {                                             \
    .mode = WRITE_GATE_OPEN, .inflight = 0,                           \
    .lock = PTHREAD_MUTEX_INITIALIZER,                                \
    .reopened = PTHREAD_COND_INITIALIZER,                             \
    .drained = PTHREAD_COND_INITIALIZER,                              \
  }

/* Called by a worker thread before a write-like request reaches the
 * plugin.  Returns 0 when the request may proceed (it must then call
 * write_gate_leave exactly once), 1 when the source has been flipped
 * forward and the request must go to the destination instead (without
 * calling write_gate_leave), or -1 with *err set: EIO once the gate is
 * fenced, ESHUTDOWN if nbdkit is shutting down or the client went away
 * while the request waited at a closed gate. */
#define WRITE_GATE_FORWARD 1
int write_gate_enter (struct write_gate *gate, int *err);
void write_gate_leave (struct write_gate *gate);

/* The current mode, for reads (which fail only when fenced) and STATUS. */
enum write_gate_mode write_gate_mode (struct write_gate *gate);

/* Number of write-like requests inside the gate right now. */
uint64_t write_gate_inflight (struct write_gate *gate);

/* Control thread only.  Close the gate and wait until no request is inside
 * it, for at most timeout_ns.  Returns 0 when drained, or -1 with errno
 * ETIMEDOUT, in which case the gate is left closed and the caller decides
 * (it reopens it).  Closing an already closed gate just drains again. */
int write_gate_close_and_drain (struct write_gate *gate, uint64_t timeout_ns);

/* Control thread only.  Reopen a closed gate; waiting requests proceed.
 * Does nothing to a fenced gate. */
void write_gate_open (struct write_gate *gate);

/* Control thread only.  Fence the gate for good; waiting requests wake and
 * fail with EIO. */
void write_gate_fence (struct write_gate *gate);

/* Control thread only.  Send every request, waiting and later ones, to the
 * destination from now on, for good (the caller has published where). */
void write_gate_forward (struct write_gate *gate);

#endif /* STM_WRITE_GATE_H */
