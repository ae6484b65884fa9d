/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-send's asynchronous control channel
 * (sender/control_channel.c) against a socketpair peer on the same libev
 * loop, which answers late, out of time, wrongly or not at all: replies
 * are matched in order (multi-line SNAPSHOT, one line per CONFIRM),
 * timers on the loop keep firing while a reply is awaited, a timeout
 * fails the request, and a peer that closes fails every pending request
 * exactly once, never inside the call that issued it.
 */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <ev.h>

#include "control_channel.h"

#define STATUS_OK "OK size=1048576 block=65536 dirty_bytes=131072 state=tracking " \
  "owner=you migration=none instance=0123456789abcdef0123456789abcdef " \
  "freeze_timeout_ms=1000 write_bytes=0 writes=0\n"

/* One callback's record. */
struct seen {
  int calls;
  int order;                    /* 1-based position among all callbacks */
  int ok, err;
  bool broken;
  char error[1024];
  char line[256];
  uint64_t dirty;               /* STATUS */
  size_t extents;               /* SNAPSHOT */
  uint64_t extent_bytes;
};

struct fixture {
  struct ev_loop *loop;
  struct control_channel *ch;
  int peer;                     /* the filter's end */
  int order;                    /* callbacks so far */
  int expect;                   /* break the loop after this many */
  ev_timer reply_timer, ticker, guard;
  const char *reply;            /* written by reply_timer, then */
  bool close_after_reply;
  int ticks;
  int ticks_at_first_reply;
  struct seen seen[8];
};

static void
on_reply (void *opaque, uint64_t tag, const struct control_reply *r)
{
  struct fixture *f = opaque;
  struct seen *s = &f->seen[tag];

  s->calls++;
  s->order = ++f->order;
  if (f->order == 1)
    f->ticks_at_first_reply = f->ticks;
  s->ok = r->ok;
  s->err = r->err;
  s->broken = r->broken;
  snprintf (s->error, sizeof s->error, "%s", r->ok ? "" : r->error);
  snprintf (s->line, sizeof s->line, "%s", r->line);
  if (r->status)
    s->dirty = r->status->dirty_bytes;
  if (r->extents) {
    s->extents = r->extents->len;
    s->extent_bytes = extent_list_total_bytes (r->extents);
  }
  if (f->order == f->expect)
    ev_break (f->loop, EVBREAK_ALL);
}

static void
reply_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct fixture *f = w->data;

  if (f->reply)
    assert_int_equal (write (f->peer, f->reply, strlen (f->reply)),
                      (ssize_t) strlen (f->reply));
  if (f->close_after_reply) {
    /* Read what was asked first, as the filter would: closing with
     * unread bytes would reset the connection instead. */
    char buf[4096];
    while (recv (f->peer, buf, sizeof buf, MSG_DONTWAIT) > 0)
      ;
    close (f->peer);
    f->peer = -1;
  }
}

static void
tick_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct fixture *f = w->data;
  f->ticks++;
}

static void
guard_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  fail_msg ("the loop ran for 5 s without the expected callbacks");
}

static int
setup (void **state)
{
  struct fixture *f = calloc (1, sizeof *f);
  int sv[2];

  assert_non_null (f);
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  f->loop = ev_loop_new (EVFLAG_AUTO);
  assert_non_null (f->loop);
  f->ch = control_channel_new (f->loop, sv[0], 300, 600);
  assert_non_null (f->ch);
  f->peer = sv[1];
  ev_timer_init (&f->reply_timer, reply_cb, 0.1, 0.);
  f->reply_timer.data = f;
  ev_timer_init (&f->ticker, tick_cb, 0.01, 0.01);
  f->ticker.data = f;
  ev_timer_init (&f->guard, guard_cb, 5., 0.);
  f->guard.data = f;
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;

  control_channel_free (f->ch);
  if (f->peer >= 0)
    close (f->peer);
  ev_loop_destroy (f->loop);
  free (f);
  return 0;
}

/* Run the loop until f->expect callbacks have come, with the reply
 * written after delay seconds and a ticker counting meanwhile. */
static void
run (struct fixture *f, int expect, double delay)
{
  f->expect = expect;
  ev_timer_set (&f->reply_timer, delay, 0.);
  ev_timer_start (f->loop, &f->reply_timer);
  ev_timer_start (f->loop, &f->ticker);
  ev_timer_start (f->loop, &f->guard);
  ev_run (f->loop, 0);
  ev_timer_stop (f->loop, &f->ticker);
  ev_timer_stop (f->loop, &f->guard);
  ev_timer_stop (f->loop, &f->reply_timer);
}

/* What the peer was sent. */
static void
assert_requests (struct fixture *f, const char *want)
{
  char buf[4096];
  ssize_t n = recv (f->peer, buf, sizeof buf - 1, MSG_DONTWAIT);
  assert_true (n >= 0);
  buf[n] = '\0';
  assert_string_equal (buf, want);
}

static void
test_pipelined_in_order (void **state)
{
  struct fixture *f = *state;
  struct extent r[2] = { { 0, 4096 }, { 65536, 4096 } };

  control_channel_status (f->ch, on_reply, f, 0);
  control_channel_snapshot (f->ch, on_reply, f, 1);
  control_channel_confirm (f->ch, r, 2, on_reply, f, 2);
  control_channel_barrier (f->ch, on_reply, f, 3);
  control_channel_thaw (f->ch, on_reply, f, 4);
  /* Nothing is answered inside the calls that asked. */
  assert_int_equal (f->order, 0);
  assert_int_equal (control_channel_pending (f->ch), 5);
  /* The whole answer comes late, in one piece, 150 ms on. */
  f->reply = STATUS_OK
    "OK generation=7 extents=2 bytes=196608\n0 65536\n131072 131072\n.\n"
    "OK\nOK\n"
    "OK thawed frozen_us=1234\n";
  run (f, 5, 0.15);
  /* Timers on the loop fired while the replies were awaited. */
  assert_true (f->ticks_at_first_reply >= 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal (f->seen[i].calls, 1);
    assert_int_equal (f->seen[i].order, i + 1);
    assert_int_equal (f->seen[i].ok, 1);
  }
  assert_int_equal (f->seen[0].dirty, 131072);
  assert_int_equal (f->seen[1].extents, 2);
  assert_int_equal (f->seen[1].extent_bytes, 196608);
  assert_string_equal (f->seen[4].line, "OK thawed frozen_us=1234");
  assert_int_equal (control_channel_pending (f->ch), 0);
  assert_false (control_channel_is_broken (f->ch));
  assert_requests (f, "STATUS\nSNAPSHOT\nCONFIRM 0 4096\nCONFIRM 65536 4096\nTHAW\n");
}

static void
test_barrier_last (void **state)
{
  struct fixture *f = *state;
  struct extent r[1] = { { 0, 4096 } };

  /* A barrier after the last request completes once that is answered,
   * with no further reply to carry it; one on an idle channel at once,
   * from the loop. */
  control_channel_confirm (f->ch, r, 1, on_reply, f, 0);
  control_channel_barrier (f->ch, on_reply, f, 1);
  f->reply = "OK\n";
  run (f, 2, 0.02);
  assert_int_equal (f->seen[0].order, 1);
  assert_int_equal (f->seen[1].order, 2);
  assert_int_equal (f->seen[1].ok, 1);
  control_channel_barrier (f->ch, on_reply, f, 2);
  assert_int_equal (f->seen[2].calls, 0);
  f->reply = NULL;
  run (f, 3, 0.01);
  assert_int_equal (f->seen[2].calls, 1);
  assert_int_equal (control_channel_pending (f->ch), 0);
}

static void
test_err_replies_keep_step (void **state)
{
  struct fixture *f = *state;
  struct extent r[3] = { { 0, 1 }, { 10, 1 }, { 20, 1 } };

  control_channel_freeze (f->ch, on_reply, f, 0);
  control_channel_confirm (f->ch, r, 3, on_reply, f, 1);
  control_channel_throttle (f->ch, 0, on_reply, f, 2);
  f->reply = "ERR EBUSY another connection owns the migration\n"
    "OK\nERR EINVAL beyond the end\nERR EINVAL also beyond\n"
    "OK throttle=0\n";
  run (f, 3, 0.05);
  assert_int_equal (f->seen[0].ok, 0);
  assert_int_equal (f->seen[0].err, EBUSY);
  assert_false (f->seen[0].broken);
  assert_non_null (strstr (f->seen[0].error, "FREEZE refused by the filter: EBUSY"));
  /* One callback for the three CONFIRMs, with the first refusal. */
  assert_int_equal (f->seen[1].calls, 1);
  assert_int_equal (f->seen[1].ok, 0);
  assert_non_null (strstr (f->seen[1].error, "beyond the end"));
  /* And the channel is still in step. */
  assert_int_equal (f->seen[2].ok, 1);
  assert_string_equal (f->seen[2].line, "OK throttle=0");
  assert_false (control_channel_is_broken (f->ch));
}

static void
test_timeout_fails_pending (void **state)
{
  struct fixture *f = *state;

  /* The reply comes after the 300 ms timeout: too late. */
  control_channel_thaw (f->ch, on_reply, f, 0);
  control_channel_status (f->ch, on_reply, f, 1);
  f->reply = "OK thawed frozen_us=1\n";
  run (f, 2, 0.8);
  assert_int_equal (f->seen[0].calls, 1);
  assert_int_equal (f->seen[0].ok, 0);
  assert_true (f->seen[0].broken);
  assert_int_equal (f->seen[0].err, ETIMEDOUT);
  assert_non_null (strstr (f->seen[0].error, "THAW failed: no reply from the filter in time"));
  assert_int_equal (f->seen[1].calls, 1);
  assert_true (f->seen[1].broken);
  assert_non_null (strstr (f->seen[1].error, "STATUS failed: the control connection broke earlier"));
  assert_true (f->ticks_at_first_reply >= 20);
  assert_true (control_channel_is_broken (f->ch));
  /* A request after the break fails too, from the loop, once. */
  control_channel_thaw (f->ch, on_reply, f, 2);
  assert_int_equal (f->seen[2].calls, 0);
  f->reply = NULL;
  run (f, 3, 0.01);
  assert_int_equal (f->seen[2].calls, 1);
  assert_int_equal (f->seen[2].ok, 0);
  assert_true (f->seen[2].broken);
}

static void
test_slow_timeout (void **state)
{
  struct fixture *f = *state;

  /* FREEZE may take the longer timeout (600 ms): a reply after 450 ms
   * is in time for it, though not for an ordinary request. */
  control_channel_freeze (f->ch, on_reply, f, 0);
  f->reply = "OK drain_us=10 preflush_ms=0\n";
  run (f, 1, 0.45);
  assert_int_equal (f->seen[0].ok, 1);
  assert_string_equal (f->seen[0].line, "OK drain_us=10 preflush_ms=0");
}

static void
test_peer_closes (void **state)
{
  struct fixture *f = *state;
  struct extent r[1] = { { 0, 512 } };

  control_channel_status (f->ch, on_reply, f, 0);
  control_channel_freeze (f->ch, on_reply, f, 1);
  control_channel_confirm (f->ch, r, 1, on_reply, f, 2);
  /* The first is answered, then the peer goes away. */
  f->reply = STATUS_OK;
  f->close_after_reply = true;
  run (f, 3, 0.05);
  assert_int_equal (f->seen[0].ok, 1);
  for (int i = 1; i < 3; i++) {
    assert_int_equal (f->seen[i].calls, 1);
    assert_int_equal (f->seen[i].ok, 0);
    assert_true (f->seen[i].broken);
  }
  assert_non_null (strstr (f->seen[1].error, "FREEZE failed: the filter closed the control connection"));
  assert_non_null (strstr (f->seen[2].error, "broke earlier"));
  /* Nothing more comes, however long the loop runs. */
  f->reply = NULL;
  f->close_after_reply = false;
  f->expect = 99;
  ev_run (f->loop, EVRUN_NOWAIT);
  for (int i = 0; i < 3; i++)
    assert_int_equal (f->seen[i].calls, 1);
}

static void
test_garbage_breaks (void **state)
{
  struct fixture *f = *state;

  control_channel_thaw (f->ch, on_reply, f, 0);
  control_channel_snapshot (f->ch, on_reply, f, 1);
  f->reply = "HELLO THERE\n";
  run (f, 2, 0.02);
  assert_int_equal (f->seen[0].ok, 0);
  assert_true (f->seen[0].broken);
  assert_non_null (strstr (f->seen[0].error, "neither OK nor ERR"));
  assert_int_equal (f->seen[1].calls, 1);
  assert_true (f->seen[1].broken);
}

static void
test_snapshot_mismatch (void **state)
{
  struct fixture *f = *state;

  /* Announced 2 extents, sent 1: the whole reply is read, the request
   * fails, the channel stays in step for the next. */
  control_channel_snapshot (f->ch, on_reply, f, 0);
  control_channel_thaw (f->ch, on_reply, f, 1);
  f->reply = "OK generation=1 extents=2 bytes=8192\n0 4096\n.\nOK not-frozen frozen_us=0\n";
  run (f, 2, 0.02);
  assert_int_equal (f->seen[0].ok, 0);
  assert_false (f->seen[0].broken);
  assert_non_null (strstr (f->seen[0].error, "announced 2 extents"));
  assert_int_equal (f->seen[1].ok, 1);
  assert_false (control_channel_is_broken (f->ch));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_pipelined_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown (test_barrier_last, setup, teardown),
    cmocka_unit_test_setup_teardown (test_err_replies_keep_step, setup, teardown),
    cmocka_unit_test_setup_teardown (test_timeout_fails_pending, setup, teardown),
    cmocka_unit_test_setup_teardown (test_slow_timeout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_peer_closes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_garbage_breaks, setup, teardown),
    cmocka_unit_test_setup_teardown (test_snapshot_mismatch, setup, teardown),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
