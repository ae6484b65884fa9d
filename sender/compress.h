/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: DATA, compressed when that pays (--compress).
 *
 * Every DATA payload stm-send sends, a pass's data (pass.c) and the
 * mirror ring's records (mirror_stream.c) alike, goes through
 * compress_send_data, which sends it as DATA or as DATA_ZSTD.  DATA_ZSTD
 * is sent only once the receiver's HELLO_REPLY echoed WIRE_FEATURE_ZSTD
 * (compress_hello_reply), and only for a payload whose frame is at least
 * an eighth smaller (zstd_frame.h); a cheap probe of its first 16 KiB
 * spares whole payloads that will not compress.
 *
 * --compress zstd tries every payload of COMPRESS_MIN_BYTES or more.
 * --compress auto measures the copy in windows of COMPRESS_WINDOW_NS
 * (the event loop's CPU time, the time the output queue sat at its high
 * mark, the bytes in and out, what zstd cost and achieved), tries a
 * sample payload now and then while off, and lets compress_policy.c
 * decide.  While compression is on (always with zstd), payloads are
 * compressed on a worker thread beside the event loop
 * (compress_worker.h): level 1 compresses a MiB of text in about 1.7 ms
 * of CPU (the default, -1, in less), time the loop needs for reading,
 * encrypting and writing.
 * Their messages keep their places in the order of everything sent
 * (send_stage.h).  While auto is off, the samples are tried on the loop
 * (a probe of a MiB of random data costs 0.015 ms), and nothing waits.
 *
 * The counters (compress_counters) say what went in and came out, for
 * the summary; compress_send_data returns the payload's size on the wire,
 * which is what the byte accounting calls bytes_sent.
 */
#ifndef STM_SENDER_COMPRESS_H
#define STM_SENDER_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compress_policy.h"

struct migration;
struct migration_disk;
struct stm_conn;
struct zstd_deflater;
struct compress_worker;

/* Payloads shorter than this are never compressed. */
#define COMPRESS_MIN_BYTES 4096u
/* auto: the measurement window, and how often a payload is sampled while
 * off (whichever of bytes and time comes first). */
#define COMPRESS_WINDOW_NS (250u * 1000000)
#define COMPRESS_SAMPLE_BYTES (64u * 1024 * 1024)
#define COMPRESS_SAMPLE_NS (250u * 1000000)

struct compress_counters {
  uint64_t bytes_in;             /* DATA payload bytes, before compression */
  uint64_t bytes_out;            /* their payload bytes on the wire */
  uint64_t chunks_compressed;    /* sent as DATA_ZSTD */
  uint64_t chunks_skipped;       /* tried, and sent as DATA: did not pay */
};

struct compress_state {
  enum compress_mode mode;
  int level;
  bool agreed;                   /* the last HELLO_REPLY echoed the bit */
  struct zstd_deflater *z;       /* NULL with --compress off; the loop's */
  struct compress_worker *worker;  /* zstd's thread (compress_worker.h) */
  struct compress_policy policy; /* auto */
  struct compress_window win;    /* auto: the window being measured */
  uint64_t win_start_ns, win_cpu_ns;
  uint64_t last_send_ns;
  bool queue_full;               /* the last send left the queue at its mark */
  uint64_t since_sample, last_sample_ns;
  struct compress_counters counters;
};

/* Set up for mode and level.  -1 with errno set (out of memory). */
int compress_init (struct compress_state *c, enum compress_mode mode, int level);
/* Once m->loop exists: start the worker thread if compression may be
 * used (--compress auto or zstd).  -1 after logging why not. */
int compress_start (struct migration *m);
/* Stop and join the worker; free everything. */
void compress_free (struct compress_state *c);

/* The HELLO's feature bits for compression, and what the HELLO_REPLY
 * agreed to (each new session's reply replaces the last). */
uint32_t compress_hello_features (const struct compress_state *c);
void compress_hello_reply (struct compress_state *c, uint32_t features);

/* Send n (1 to WIRE_MAX_DATA) bytes at offset of disk d, as DATA or
 * DATA_ZSTD, in order with every other message (send_stage.h), and count
 * them (migration_account_data) once the message is made: at once, or
 * when the worker is done with them.  buf is copied: the caller may
 * reuse it on return.  0, or -1 after the receiver was reported lost
 * (migration_send). */
int compress_send_data (struct migration_disk *d, uint64_t offset,
                        const uint8_t *buf, size_t n);

/* Should the producers (the pass's reads, the mirror rings) hold back?
 * True while the bytes waiting for the receiver (the connection's output
 * queue and the ordered stage) are at MIGRATION_OUTPUT_HIGH or the worker
 * has COMPRESS_WORKER_JOBS jobs; the connection's on_drain and the
 * worker's completions (m->output_room) pump again. */
bool compress_hold_back (const struct migration *m);

const struct compress_counters *compress_counters (const struct compress_state *c);

/* One line on stderr saying what compression did, if it was offered. */
void compress_report (const struct compress_state *c);

#endif /* STM_SENDER_COMPRESS_H */
