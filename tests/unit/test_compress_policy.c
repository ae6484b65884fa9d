/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of --compress auto's decision (sender/compress_policy.c)
 * and of parsing --compress.
 *
 * Windows are made up from a few rates: how fast the link drains (when it
 * is the bottleneck), how much CPU the loop spends per byte besides zstd,
 * what zstd costs per byte and what ratio it reaches.  Random data,
 * a fast link and a slow compressor must keep compression off;
 * compressible data behind a slow link must turn it on; and a gain that
 * the achieved rate does not show must turn it off again, for longer each
 * time.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "compress_policy.h"
#include "zstd_frame.h"

#define MB 1000000.0

/* A quarter-second window of a copy moving in_rate data bytes/s, of which
 * zstd was given tried_share, at ratio and zstd_rate bytes per CPU second,
 * with other_rate bytes per CPU second for the rest; the output queue full
 * for full_share of it. */
static struct compress_window
window (double in_rate, double full_share, double tried_share, double ratio,
        double zstd_rate, double other_rate, bool on)
{
  struct compress_window w = { .wall_ns = 250000000 };
  double in = in_rate / 4;

  w.in_bytes = (uint64_t) in;
  w.tried_in = (uint64_t) (in * tried_share);
  w.tried_out = (uint64_t) ((double) w.tried_in * ratio);
  w.tried_ns = (uint64_t) ((double) w.tried_in / zstd_rate * 1e9);
  w.cpu_ns = w.tried_ns + (uint64_t) (in / other_rate * 1e9);
  w.out_bytes = on ? (uint64_t) (in * ratio) : (uint64_t) in;
  w.full_ns = (uint64_t) (full_share * (double) w.wall_ns);
  return w;
}

/* Random data behind a slow link: zstd gains nothing. */
static void
test_random_stays_off (void **state)
{
  struct compress_policy p;

  compress_policy_init (&p);
  for (int i = 0; i < 40; i++) {
    struct compress_window w = window (100 * MB, 0.9, 0.02, 1.0, 2000 * MB,
                                       1500 * MB, false);
    assert_false (compress_policy_update (&p, &w));
  }
  assert_true (p.link_bps > 90 * MB && p.link_bps < 110 * MB);
}

/* Compressible data behind a 100 MB/s link, zstd at 600 MB/s: on. */
static void
test_slow_link_turns_on (void **state)
{
  struct compress_policy p;
  struct compress_window w;
  double off, on;
  int i;

  compress_policy_init (&p);
  w = window (100 * MB, 0.9, 0.02, 0.3, 600 * MB, 1500 * MB, false);
  assert_true (compress_policy_update (&p, &w));
  compress_policy_predict (&p, &off, &on);
  assert_true (off > 95 * MB && off < 105 * MB);
  assert_true (on > 2.5 * off);
  /* Once on, the copy runs at what the link carries of compressed data
   * (100 MB/s of frames, 330 MB/s of data), queue no longer full: stays on. */
  for (i = 0; i < 20; i++) {
    w = window (330 * MB, 0.2, 1.0, 0.3, 600 * MB, 1500 * MB, true);
    w.out_bytes = 100 * 1000000 / 4;
    assert_true (compress_policy_update (&p, &w));
  }
}

/* A fast link (the queue never full): the CPU is the limit, stay off
 * whatever the ratio. */
static void
test_fast_link_stays_off (void **state)
{
  struct compress_policy p;

  compress_policy_init (&p);
  for (int i = 0; i < 20; i++) {
    struct compress_window w = window (900 * MB, 0.05, 0.05, 0.2, 600 * MB,
                                       1000 * MB, false);
    assert_false (compress_policy_update (&p, &w));
  }
  assert_true (p.link_bps == 0);
}

/* A saturated 1 GB/s link, but zstd at 300 MB/s: compression would make
 * the CPU the bottleneck below what the link carries now. */
static void
test_slow_compressor_stays_off (void **state)
{
  struct compress_policy p;

  compress_policy_init (&p);
  for (int i = 0; i < 20; i++) {
    struct compress_window w = window (1000 * MB, 0.8, 0.05, 0.3, 300 * MB,
                                       2000 * MB, false);
    assert_false (compress_policy_update (&p, &w));
  }
}

/* zstd on its own thread (threaded): its CPU time is not the loop's.  A
 * 300 MB/s link, the loop at 600 MB/s, zstd at 450 MB/s and a ratio of
 * 0.3: on one thread the two together (257 MB/s) would be slower than
 * the link is now, and compression stays off; beside the loop, zstd's
 * 450 MB/s is the limit, a clear gain, and it turns on.  The windows'
 * zstd time, spent on the worker, is not taken off the loop's. */
static void
test_threaded (void **state)
{
  struct compress_policy serial, threaded;
  struct compress_window w;
  double off, on;

  compress_policy_init (&serial);
  for (int i = 0; i < 10; i++) {
    w = window (300 * MB, 0.9, 0.05, 0.3, 450 * MB, 600 * MB, false);
    assert_false (compress_policy_update (&serial, &w));
  }
  compress_policy_init (&threaded);
  threaded.threaded = true;
  w = window (300 * MB, 0.9, 0.05, 0.3, 450 * MB, 600 * MB, false);
  assert_true (compress_policy_update (&threaded, &w));
  compress_policy_predict (&threaded, &off, &on);
  assert_true (off > 295 * MB && off < 305 * MB);
  assert_true (on > 440 * MB && on < 460 * MB);
  /* On: every payload goes to the worker, whose CPU time is outside the
   * loop's; the loop's own cost per byte stays what it was. */
  for (int i = 0; i < 10; i++) {
    w = window (450 * MB, 0.2, 1.0, 0.3, 450 * MB, 600 * MB, true);
    w.cpu_ns -= w.tried_ns;
    w.worker_ns = w.tried_ns;
    assert_true (compress_policy_update (&threaded, &w));
  }
  assert_true (threaded.other_spb > 1 / (620 * MB) && threaded.other_spb < 1 / (580 * MB));
}

/* The link looked like the bottleneck, but on, the copy goes no faster
 * (the receiver's disk is the limit): off again, and each later try waits
 * longer. */
static void
test_no_gain_backs_off (void **state)
{
  struct compress_policy p;
  struct compress_window w;
  unsigned holds[3];
  int tries = 0, i;

  compress_policy_init (&p);
  for (i = 0; i < 400 && tries < 3; i++) {
    if (!p.on) {
      w = window (200 * MB, 0.9, 0.02, 0.3, 600 * MB, 1500 * MB, false);
      if (compress_policy_update (&p, &w))
        tries++;
    }
    else {
      /* The same 200 MB/s of data, fewer bytes on a link that now waits
       * for the receiver: the queue full, its rate apparently lower. */
      w = window (150 * MB, 0.9, 1.0, 0.3, 600 * MB, 1500 * MB, true);
      if (!compress_policy_update (&p, &w))
        holds[tries - 1] = p.hold;
    }
  }
  assert_int_equal (tries, 3);
  assert_true (holds[0] >= 4);
  assert_true (holds[1] == 2 * holds[0]);
}

/* Data that turns incompressible while on: off, within a few windows
 * (the ratio is a running estimate). */
static void
test_data_changes (void **state)
{
  struct compress_policy p;
  struct compress_window w;

  compress_policy_init (&p);
  w = window (100 * MB, 0.9, 0.02, 0.3, 600 * MB, 1500 * MB, false);
  assert_true (compress_policy_update (&p, &w));
  int i;
  for (i = 0; i < 8 && p.on; i++) {
    w = window (100 * MB, 0.9, 1.0, 1.0, 2000 * MB, 1500 * MB, true);
    compress_policy_update (&p, &w);
  }
  assert_false (p.on);
  assert_true (i >= 2);
}

/* Short windows change nothing. */
static void
test_short_window (void **state)
{
  struct compress_policy p;
  struct compress_window w = window (100 * MB, 0.9, 0.02, 0.3, 600 * MB, 1500 * MB,
                                     false);

  compress_policy_init (&p);
  w.in_bytes = COMPRESS_WINDOW_MIN_BYTES - 1;
  assert_false (compress_policy_update (&p, &w));
  assert_true (p.other_spb == 0 && p.link_bps == 0);
}

static void
test_parse (void **state)
{
  enum compress_mode m;
  int level;

  assert_int_equal (compress_parse ("auto", &m, &level), 0);
  assert_int_equal (m, COMPRESS_AUTO);
  assert_int_equal (level, ZSTD_FRAME_DEFAULT_LEVEL);
  assert_int_equal (compress_parse ("off", &m, &level), 0);
  assert_int_equal (m, COMPRESS_OFF);
  assert_int_equal (compress_parse ("zstd", &m, &level), 0);
  assert_int_equal (m, COMPRESS_ZSTD);
  assert_int_equal (compress_parse ("zstd:19", &m, &level), 0);
  assert_int_equal (level, 19);
  assert_int_equal (compress_parse ("zstd:3", &m, &level), 0);
  assert_int_equal (level, 3);
  assert_int_equal (compress_parse ("zstd:0", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:20", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:1x", &m, &level), -1);
  /* zstd's fast levels, down to -5. */
  assert_int_equal (compress_parse ("zstd:-1", &m, &level), 0);
  assert_int_equal (level, -1);
  assert_int_equal (compress_parse ("zstd:-5", &m, &level), 0);
  assert_int_equal (level, -5);
  assert_int_equal (compress_parse ("zstd:-6", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:-0", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:--1", &m, &level), -1);
  assert_int_equal (compress_parse ("zstd:003", &m, &level), -1);
  assert_int_equal (compress_parse ("lz4", &m, &level), -1);
  assert_int_equal (compress_parse ("", &m, &level), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_random_stays_off),
    cmocka_unit_test (test_slow_link_turns_on),
    cmocka_unit_test (test_fast_link_stays_off),
    cmocka_unit_test (test_slow_compressor_stays_off),
    cmocka_unit_test (test_no_gain_backs_off),
    cmocka_unit_test (test_threaded),
    cmocka_unit_test (test_data_changes),
    cmocka_unit_test (test_short_window),
    cmocka_unit_test (test_parse),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
