/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of stm-send's ordered stage (sender/send_stage.c).
 *
 * A fake sink records the messages in the order it is given them.  With
 * nothing reserved, messages go straight through; behind a reservation
 * they wait, copied, and go out in order when it is filled; a cleared
 * stage sends nothing of what it held and ignores stale fills; a sink
 * that refuses keeps what was not sent.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "send_stage.h"

struct sink {
  char got[64][256];             /* each message: head, then body */
  unsigned n;
  unsigned refuse_at;            /* refuse the message with this index + 1 */
};

static int
fake_sink (void *opaque, const void *head, size_t headlen, const void *body,
           size_t bodylen)
{
  struct sink *k = opaque;

  if (k->refuse_at != 0 && k->n + 1 == k->refuse_at)
    return -1;
  assert_true (k->n < 64 && headlen + bodylen < 256);
  memcpy (k->got[k->n], head, headlen);
  if (body != NULL)
    memcpy (k->got[k->n] + headlen, body, bodylen);
  k->got[k->n][headlen + bodylen] = '\0';
  k->n++;
  return 0;
}

static int
send_str (struct send_stage *s, struct sink *k, const char *head, const char *body)
{
  return send_stage_send (s, fake_sink, k, head, strlen (head), body,
                          body != NULL ? strlen (body) : 0);
}

static void *
dup_str (const char *str)
{
  char *p = strdup (str);
  assert_non_null (p);
  return p;
}

static void
test_straight_through (void **state)
{
  struct send_stage s;
  struct sink k = { .n = 0 };

  send_stage_init (&s);
  assert_true (send_stage_empty (&s));
  assert_int_equal (send_str (&s, &k, "A", "1"), 0);
  assert_int_equal (send_str (&s, &k, "B", NULL), 0);
  assert_int_equal (k.n, 2);
  assert_string_equal (k.got[0], "A1");
  assert_string_equal (k.got[1], "B");
  assert_true (send_stage_empty (&s));
  assert_int_equal (s.bytes, 0);
}

/* Two jobs, messages between and after them: filled in order, every
 * message goes out in the order sent, and the caller's buffers may be
 * reused at once. */
static void
test_order_behind_reservations (void **state)
{
  struct send_stage s;
  struct sink k = { .n = 0 };
  struct send_stage_entry *j1, *j2;
  uint64_t g1, g2;
  char body[4] = "x";

  send_stage_init (&s);
  assert_int_equal (send_str (&s, &k, "P", NULL), 0);
  j1 = send_stage_reserve (&s, &g1);
  assert_non_null (j1);
  assert_false (send_stage_empty (&s));
  assert_int_equal (send_str (&s, &k, "Z", body), 0);
  body[0] = 'y';                 /* copied: the change must not show */
  j2 = send_stage_reserve (&s, &g2);
  assert_non_null (j2);
  assert_int_equal (send_str (&s, &k, "S", NULL), 0);
  /* A long head (an ABORT's text) waits whole. */
  char text[201];
  memset (text, 'T', 200);
  text[200] = '\0';
  assert_int_equal (send_str (&s, &k, text, NULL), 0);
  assert_int_equal (k.n, 1);
  assert_int_equal (s.entries, 5);
  assert_int_equal (s.reserved, 2);
  assert_int_equal (s.bytes, 203);

  /* The second job done first: nothing may pass the first. */
  assert_int_equal (send_stage_fill (&s, j2, g2, "D2", 2, dup_str ("b"), 1,
                                     fake_sink, &k), 0);
  assert_int_equal (k.n, 1);
  assert_int_equal (send_stage_fill (&s, j1, g1, "D1", 2, dup_str ("a"), 1,
                                     fake_sink, &k), 0);
  assert_int_equal (k.n, 6);
  assert_string_equal (k.got[1], "D1a");
  assert_string_equal (k.got[2], "Zx");
  assert_string_equal (k.got[3], "D2b");
  assert_string_equal (k.got[4], "S");
  assert_string_equal (k.got[5], text);
  assert_true (send_stage_empty (&s));
  assert_int_equal (s.bytes, 0);
  assert_int_equal (s.reserved, 0);
}

/* The connection is let go: what waited is dropped, a job of it that
 * comes back later is not sent, and the next messages go straight out. */
static void
test_clear_drops_stale (void **state)
{
  struct send_stage s;
  struct sink k = { .n = 0 };
  struct send_stage_entry *j;
  uint64_t g;

  send_stage_init (&s);
  j = send_stage_reserve (&s, &g);
  assert_non_null (j);
  assert_int_equal (send_str (&s, &k, "SYNC", NULL), 0);
  send_stage_clear (&s);
  assert_true (send_stage_empty (&s));
  assert_int_equal (s.bytes, 0);
  assert_int_equal (send_str (&s, &k, "HELLO", NULL), 0);
  /* j was freed with the stage: a stale fill must not touch it. */
  assert_int_equal (send_stage_fill (&s, j, g, "D", 1, dup_str ("old"), 3,
                                     fake_sink, &k), 0);
  assert_int_equal (k.n, 1);
  assert_string_equal (k.got[0], "HELLO");
}

/* A sink that refuses: the message refused and those behind it stay. */
static void
test_sink_refuses (void **state)
{
  struct send_stage s;
  struct sink k = { .refuse_at = 2 };
  struct send_stage_entry *j;
  uint64_t g;

  send_stage_init (&s);
  j = send_stage_reserve (&s, &g);
  assert_non_null (j);
  assert_int_equal (send_str (&s, &k, "A", NULL), 0);
  assert_int_equal (send_stage_fill (&s, j, g, "D", 1, dup_str ("1"), 1,
                                     fake_sink, &k), -1);
  assert_int_equal (k.n, 1);
  assert_int_equal (s.entries, 1);
  assert_int_equal (s.bytes, 1);
  send_stage_clear (&s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_straight_through),
    cmocka_unit_test (test_order_behind_reservations),
    cmocka_unit_test (test_clear_drops_stale),
    cmocka_unit_test (test_sink_refuses),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
