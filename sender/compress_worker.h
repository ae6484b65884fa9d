/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the compression worker, one thread beside the event loop.
 *
 * stm-send's loop reads the source, encrypts and writes the receiver's
 * socket; zstd on the same thread would take the CPU time those need (at
 * level 1, about 2.5 CPU-seconds per GiB).  So with --compress auto or
 * zstd, a DATA payload to be compressed is copied into a job
 * (compress_job_new) and handed to this thread (compress_worker_submit),
 * which compresses it with its own zstd context and measures
 * the CPU time that took on its own clock (CLOCK_THREAD_CPUTIME_ID).
 * Jobs are done in the order they were submitted; each one done wakes
 * the loop through an ev_async watcher, whose callback takes them back
 * (compress_worker_take), in order, and puts their messages in the
 * ordered stage (send_stage.h).
 *
 * One mutex guards the queues of jobs to do and done, held for a few
 * pointer moves, never across a zstd call.  Only the loop submits and
 * takes; the job being compressed belongs to the worker alone.
 */
#ifndef STM_SENDER_COMPRESS_WORKER_H
#define STM_SENDER_COMPRESS_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct send_stage_entry;
struct compress_worker;

/* Jobs (submitted, not yet taken back) at which the producers hold back:
 * the pass stops issuing reads and mirror records wait in the ring, as at
 * the output queue's high water mark.  Reads already in flight still
 * land, so there may be up to SOURCE_READER_SLOTS more. */
#define COMPRESS_WORKER_JOBS 4

struct compress_job {
  struct compress_job *next;     /* in the worker's queues */
  /* The loop's, carried through: what the payload is and where its
   * message goes. */
  void *owner;
  uint64_t offset;
  struct send_stage_entry *slot;
  uint64_t gen;
  size_t n;                      /* payload bytes */
  uint8_t *buf;                  /* the payload; then the frame, if it paid */
  /* The worker's results. */
  size_t flen;                   /* the frame's length; 0: did not pay */
  uint64_t cpu_ns;               /* the worker's CPU time for it */
};

/* A job for a copy of buf[0..n).  NULL with errno set (out of memory). */
struct compress_job *compress_job_new (const void *buf, size_t n);
void compress_job_free (struct compress_job *job);

/* Start the thread, compressing at level, calling done (opaque) on loop
 * when jobs have been done.  NULL with errno set, after logging what
 * failed. */
struct compress_worker *compress_worker_new (struct ev_loop *loop, int level,
                                             void (*done) (void *opaque),
                                             void *opaque);
/* Stop and join the thread, and free every job still held. */
void compress_worker_free (struct compress_worker *w);

void compress_worker_submit (struct compress_worker *w, struct compress_job *job);
/* The oldest job done, or NULL if the oldest submitted is not done yet. */
struct compress_job *compress_worker_take (struct compress_worker *w);
/* Jobs submitted and not yet taken back. */
unsigned compress_worker_outstanding (const struct compress_worker *w);

#endif /* STM_SENDER_COMPRESS_WORKER_H */
