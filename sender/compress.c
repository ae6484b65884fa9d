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
#include "log.h"
#include "migration.h"
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

void
compress_free (struct compress_state *c)
{
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

/* Probe, then compress.  The frame's length, or 0 if it did not pay. */
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

int64_t
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

  if (c->win_start_ns == 0) {
    c->win_start_ns = now;
    c->win_cpu_ns = thread_cpu_ns ();
  }
  /* The time since the last send counts as the link's if that send left
   * the queue at its high mark: the copy waited for the link. */
  if (c->queue_full)
    c->win.full_ns += now - c->last_send_ns;
  if (should_try (c, n, now))
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

  size_t payload = flen > 0 ? flen : n;
  c->counters.bytes_in += n;
  c->counters.bytes_out += payload;
  c->win.in_bytes += n;
  c->win.out_bytes += payload;
  c->queue_full = m->conn != NULL &&
    stm_conn_output_pending (m->conn) >= MIGRATION_OUTPUT_HIGH;
  c->last_send_ns = time_monotonic_ns ();
  if (c->mode == COMPRESS_AUTO)
    window_end (c, c->last_send_ns);
  return (int64_t) payload;
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
