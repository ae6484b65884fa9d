/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: DATA, compressed when that pays.  See compress.h.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "compress_worker.h"
#include "log.h"
#include "migration.h"
#include "stm_conn.h"
#include "zstd_frame.h"

/* The event loop thread's CPU time: what compression competes for. */
static uint64_t
thread_cpu_ns (void)
{
  struct timespec ts;

  if (clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
    return 0;
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int
compress_init (struct compress_state *c, enum compress_mode mode, int level)
{
  memset (c, 0, sizeof *c);
  c->mode = mode;
  c->level = level;
  compress_policy_init (&c->policy);
  if (mode == COMPRESS_OFF)
    return 0;
  c->z = zstd_deflater_new (level);
  return c->z != NULL ? 0 : -1;
}

static void jobs_done (void *opaque);

int
compress_start (struct migration *m)
{
  struct compress_state *c = &m->comp;

  if (c->z == NULL)
    return 0;
  c->worker = compress_worker_new (m->loop, c->level, jobs_done, m);
  /* The policy's model: zstd beside the loop, not on it. */
  c->policy.threaded = c->worker != NULL;
  return c->worker != NULL ? 0 : -1;
}

void
compress_free (struct compress_state *c)
{
  compress_worker_free (c->worker);
  c->worker = NULL;
  zstd_deflater_free (c->z);
  c->z = NULL;
}

uint32_t
compress_hello_features (const struct compress_state *c)
{
  return c->z != NULL ? WIRE_FEATURE_ZSTD : 0;
}

void
compress_hello_reply (struct compress_state *c, uint32_t features)
{
  c->agreed = c->z != NULL && (features & WIRE_FEATURE_ZSTD) != 0;
}

const struct compress_counters *
compress_counters (const struct compress_state *c)
{
  return &c->counters;
}

/* Is this payload to be given to zstd? */
static bool
should_try (struct compress_state *c, size_t n, uint64_t now)
{
  if (!c->agreed || n < COMPRESS_MIN_BYTES)
    return false;
  if (c->mode == COMPRESS_ZSTD || c->policy.on)
    return true;
  /* auto, off: a sample now and then keeps the ratio and the cost known. */
  c->since_sample += n;
  if (c->since_sample < COMPRESS_SAMPLE_BYTES &&
      now - c->last_sample_ns < COMPRESS_SAMPLE_NS)
    return false;
  c->since_sample = 0;
  c->last_sample_ns = now;
  return true;
}

/* Probe, then compress, on the loop (a sample while auto is off).  The
 * frame's length, or 0 if it did not pay. */
static size_t
try_compress (struct compress_state *c, const uint8_t *buf, size_t n,
              const uint8_t **frame)
{
  uint64_t t0 = thread_cpu_ns ();
  size_t flen = 0;

  if (zstd_probe (c->z, buf, n))
    flen = zstd_deflate (c->z, buf, n, frame);
  c->win.tried_ns += thread_cpu_ns () - t0;
  c->win.tried_in += n;
  c->win.tried_out += flen > 0 ? flen : n;
  if (flen == 0)
    c->counters.chunks_skipped++;
  return flen;
}

/* auto: close the window once it is long enough, and decide. */
static void
window_end (struct compress_state *c, uint64_t now)
{
  if (now - c->win_start_ns < COMPRESS_WINDOW_NS)
    return;
  c->win.wall_ns = now - c->win_start_ns;
  c->win.cpu_ns = thread_cpu_ns () - c->win_cpu_ns;
  /* A window with too little data grows until it has enough, unless the
   * copy has been idle so long that it would say little of now. */
  if (c->win.in_bytes < COMPRESS_WINDOW_MIN_BYTES && c->win.wall_ns < 8 * COMPRESS_WINDOW_NS)
    return;
  (void) compress_policy_update (&c->policy, &c->win);
  memset (&c->win, 0, sizeof c->win);
  c->win_start_ns = now;
  c->win_cpu_ns = thread_cpu_ns ();
}

/* The bytes waiting to be written to the receiver: the connection's
 * output queue and the messages waiting in the ordered stage. */
static size_t
output_pending (const struct migration *m)
{
  return (m->conn != NULL ? stm_conn_output_pending (m->conn) : 0) + m->stage.bytes;
}

bool
compress_hold_back (const struct migration *m)
{
  return output_pending (m) >= MIGRATION_OUTPUT_HIGH ||
    compress_worker_outstanding (m->comp.worker) >= COMPRESS_WORKER_JOBS;
}

/* Before a payload: the time since the last one counts as the link's if
 * the output queue was at its high mark then (the copy waited for the
 * link). */
static void
note_full (struct compress_state *c, uint64_t now)
{
  if (c->win_start_ns == 0) {
    c->win_start_ns = now;
    c->win_cpu_ns = thread_cpu_ns ();
  }
  if (c->queue_full)
    c->win.full_ns += now - c->last_send_ns;
  c->last_send_ns = now;
}

/* A payload of n bytes went into a message of payload bytes: count it,
 * once, and let auto judge its window. */
static void
note_sent (struct migration_disk *d, size_t n, size_t payload)
{
  struct migration *m = d->m;
  struct compress_state *c = &m->comp;

  migration_account_data (d, n, payload);
  c->counters.bytes_in += n;
  c->counters.bytes_out += payload;
  c->win.in_bytes += n;
  c->win.out_bytes += payload;
  note_full (c, time_monotonic_ns ());
  c->queue_full = output_pending (m) >= MIGRATION_OUTPUT_HIGH;
  if (c->mode == COMPRESS_AUTO)
    window_end (c, c->last_send_ns);
}

/* Hand the payload to the worker, its message's place reserved in the
 * ordered stage.  -1 after reporting (out of memory: the receiver is
 * given up as lost, and the migration goes on as after any loss). */
static int
submit (struct migration_disk *d, uint64_t offset, const uint8_t *buf, size_t n)
{
  struct migration *m = d->m;
  struct compress_job *job = compress_job_new (buf, n);

  if (job != NULL && (job->slot = send_stage_reserve (&m->stage, &job->gen)) != NULL) {
    job->owner = d;
    job->offset = offset;
    compress_worker_submit (m->comp.worker, job);
    return 0;
  }
  compress_job_free (job);
  errno = ENOMEM;
  return migration_send_failed (m);
}

/* The worker has done jobs: their messages take their places in the
 * order (DATA_ZSTD, or DATA where zstd did not pay), are counted once,
 * and the producers held back by the jobs may go on. */
static void
jobs_done (void *opaque)
{
  struct migration *m = opaque;
  struct compress_state *c = &m->comp;
  struct compress_job *job;
  uint8_t head[WIRE_ENCODE_MAX];
  int r = 0;

  while ((job = compress_worker_take (c->worker)) != NULL) {
    struct migration_disk *d = job->owner;
    size_t payload = job->flen > 0 ? job->flen : job->n;
    size_t hlen = job->flen > 0
      ? wire_encode_data_zstd_header (head, d->index, job->offset, job->n, job->flen)
      : wire_encode_disk_data_header (head, d->index, job->offset, job->n);

    /* A job of a connection since let go: nothing of it is sent or
     * counted (its pass was abandoned, its records rewound). */
    if (job->gen != m->stage.gen || r == -1) {
      compress_job_free (job);
      continue;
    }
    c->win.tried_ns += job->cpu_ns;
    c->win.worker_ns += job->cpu_ns;
    c->win.tried_in += job->n;
    c->win.tried_out += payload;
    if (job->flen > 0)
      c->counters.chunks_compressed++;
    else
      c->counters.chunks_skipped++;
    r = migration_send_fill (m, job->slot, job->gen, head, hlen, job->buf, payload);
    job->buf = NULL;           /* the stage's now */
    if (r == 0)
      note_sent (d, job->n, payload);
    compress_job_free (job);
  }
  if (r == 0 && !migration_ended (m) && m->output_room != NULL &&
      !compress_hold_back (m))
    m->output_room (m);
}

int
compress_send_data (struct migration_disk *d, uint64_t offset, const uint8_t *buf,
                    size_t n)
{
  struct migration *m = d->m;
  struct compress_state *c = &m->comp;
  uint8_t head[WIRE_ENCODE_MAX];
  const uint8_t *frame = NULL;
  uint64_t now = time_monotonic_ns ();
  size_t flen = 0;
  int r;

  note_full (c, now);
  /* zstd on the worker whenever compression is on, for a payload that
   * the probe (on the loop: 16 KiB of it, a fraction of the whole's cost)
   * says is worth it, so that incompressible data never waits for the
   * worker; while auto is off, only the samples are tried, on the loop,
   * where they cost little. */
  if (c->agreed && n >= COMPRESS_MIN_BYTES && c->worker != NULL &&
      (c->mode == COMPRESS_ZSTD || c->policy.on)) {
    uint64_t t0 = thread_cpu_ns ();
    bool worth = zstd_probe (c->z, buf, n);
    c->win.tried_ns += thread_cpu_ns () - t0;
    if (worth)
      return submit (d, offset, buf, n);
    c->win.tried_in += n;
    c->win.tried_out += n;
    c->counters.chunks_skipped++;
  }
  else if (should_try (c, n, now))
    flen = try_compress (c, buf, n, &frame);
  if (flen > 0) {
    r = migration_send (m, head, wire_encode_data_zstd_header (head, d->index, offset,
                                                               n, flen),
                        frame, flen);
    c->counters.chunks_compressed++;
  }
  else
    r = migration_send (m, head, wire_encode_disk_data_header (head, d->index, offset, n),
                        buf, n);
  if (r == -1)
    return -1;
  note_sent (d, n, flen > 0 ? flen : n);
  return 0;
}

void
compress_report (const struct compress_state *c)
{
  const struct compress_counters *k = &c->counters;

  if (c->z == NULL || k->bytes_in == 0)
    return;
  if (!c->agreed && k->chunks_compressed == 0) {
    log_info ("compression (--compress %s) was not used: the receiver did not "
              "agree to it", c->mode == COMPRESS_AUTO ? "auto" : "zstd");
    return;
  }
  log_info ("compression (zstd level %d, --compress %s): %" PRIu64 " data bytes "
            "sent as %" PRIu64 " bytes; %" PRIu64 " chunks compressed, %" PRIu64
            " tried that did not pay", c->level,
            c->mode == COMPRESS_AUTO ? "auto" : "zstd", k->bytes_in, k->bytes_out,
            k->chunks_compressed, k->chunks_skipped);
}
