/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: the write gate (see write_gate.h).
 *
 * The fast path takes no lock.  A request increments the in-flight counter
 * and then loads the mode; the control thread stores the mode and then
 * loads the counter.  Both use sequentially consistent atomics, so at least
 * one side sees the other: either the request sees the gate closed and
 * backs out, or the drainer sees the request counted and waits for it.
 *
 * Only when the gate is not open does anyone take gate->lock, which guards
 * the waits on two condition variables: reopened (requests waiting for
 * THAW, a fence or the forward flip) and drained (the control thread
 * waiting for the last request inside to leave).  Both waits use the monotonic clock, so a change of the
 * wall clock cannot stretch or cut short a freeze.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "clock.h"
#include "time_units.h"
#include "write_gate.h"

/* How often a request waiting at a closed gate checks whether nbdkit is
 * shutting down or its client has gone, so that neither waits for a THAW
 * that may never come. */
#define GATE_WAIT_SLICE_NS (100 * NS_PER_MS)

/* The deadline from_now_ns from now, for pthread_cond_clockwait on
 * CLOCK_MONOTONIC. */
static struct timespec
monotonic_deadline (uint64_t from_now_ns)
{
  return timespec_of_ns (deadline_after_ns (from_now_ns));
}

static enum write_gate_mode
load_mode (struct write_gate *gate)
{
  return (enum write_gate_mode) __atomic_load_n (&gate->mode, __ATOMIC_SEQ_CST);
}

static void
store_mode (struct write_gate *gate, enum write_gate_mode mode)
{
  __atomic_store_n (&gate->mode, (int) mode, __ATOMIC_SEQ_CST);
}

static uint64_t
load_inflight (struct write_gate *gate)
{
  return __atomic_load_n (&gate->inflight, __ATOMIC_SEQ_CST);
}

void
write_gate_leave (struct write_gate *gate)
{
  uint64_t before = __atomic_fetch_sub (&gate->inflight, 1, __ATOMIC_SEQ_CST);

  /* Wake the drainer only when the last request leaves a gate that is not
   * open: that is the only moment it waits for.  Taking the lock orders the
   * broadcast after the drainer's check of the counter, so the wakeup
   * cannot fall between its check and its wait. */
  if (before == 1 && load_mode (gate) != WRITE_GATE_OPEN) {
    pthread_mutex_lock (&gate->lock);
    pthread_cond_broadcast (&gate->drained);
    pthread_mutex_unlock (&gate->lock);
  }
}

int
write_gate_enter (struct write_gate *gate, int *err)
{
  for (;;) {
    enum write_gate_mode mode;

    __atomic_fetch_add (&gate->inflight, 1, __ATOMIC_SEQ_CST);
    mode = load_mode (gate);
    if (mode == WRITE_GATE_OPEN)
      return 0;

    /* Not open: back out, so that a drain does not wait for us. */
    write_gate_leave (gate);
    if (mode == WRITE_GATE_FENCED) {
      *err = EIO;
      return -1;
    }
    if (mode == WRITE_GATE_FORWARDING)
      return WRITE_GATE_FORWARD;

    pthread_mutex_lock (&gate->lock);
    while (load_mode (gate) == WRITE_GATE_CLOSED) {
      struct timespec until = monotonic_deadline (GATE_WAIT_SLICE_NS);

      pthread_cond_clockwait (&gate->reopened, &gate->lock, CLOCK_MONOTONIC,
                              &until);
      if (load_mode (gate) != WRITE_GATE_CLOSED)
        break;
      /* A zero-length nbdkit sleep fails at once if the server is shutting
       * down or this request's client has disconnected. */
      pthread_mutex_unlock (&gate->lock);
      if (nbdkit_nanosleep (0, 0) == -1) {
        *err = ESHUTDOWN;
        return -1;
      }
      pthread_mutex_lock (&gate->lock);
    }
    pthread_mutex_unlock (&gate->lock);
    /* Reopened, fenced or forwarding: go round and look again. */
  }
}

enum write_gate_mode
write_gate_mode (struct write_gate *gate)
{
  return load_mode (gate);
}

uint64_t
write_gate_inflight (struct write_gate *gate)
{
  return load_inflight (gate);
}

int
write_gate_close_and_drain (struct write_gate *gate, uint64_t timeout_ns)
{
  struct timespec until = monotonic_deadline (timeout_ns);
  int r = 0;

  pthread_mutex_lock (&gate->lock);
  if (load_mode (gate) == WRITE_GATE_OPEN)
    store_mode (gate, WRITE_GATE_CLOSED);

  while (load_inflight (gate) > 0) {
    if (pthread_cond_clockwait (&gate->drained, &gate->lock, CLOCK_MONOTONIC,
                                &until) == ETIMEDOUT &&
        load_inflight (gate) > 0) {
      r = -1;
      break;
    }
  }
  pthread_mutex_unlock (&gate->lock);

  if (r == -1)
    errno = ETIMEDOUT;
  return r;
}

void
write_gate_open (struct write_gate *gate)
{
  pthread_mutex_lock (&gate->lock);
  if (load_mode (gate) == WRITE_GATE_CLOSED)
    store_mode (gate, WRITE_GATE_OPEN);
  pthread_cond_broadcast (&gate->reopened);
  pthread_mutex_unlock (&gate->lock);
}

void
write_gate_fence (struct write_gate *gate)
{
  pthread_mutex_lock (&gate->lock);
  store_mode (gate, WRITE_GATE_FENCED);
  pthread_cond_broadcast (&gate->reopened);
  pthread_mutex_unlock (&gate->lock);
}

void
write_gate_forward (struct write_gate *gate)
{
  pthread_mutex_lock (&gate->lock);
  store_mode (gate, WRITE_GATE_FORWARDING);
  pthread_cond_broadcast (&gate->reopened);
  pthread_mutex_unlock (&gate->lock);
}
