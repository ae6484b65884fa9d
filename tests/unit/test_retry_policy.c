/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the sender's reconnect policy (sender/retry_policy.c):
 * the backoff sequence and which failures are worth another attempt.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "retry_policy.h"
#include "wire.h"

static void
test_backoff (void **state)
{
  (void) state;
  assert_int_equal (retry_backoff_ms (1), 500);
  assert_int_equal (retry_backoff_ms (2), 1000);
  assert_int_equal (retry_backoff_ms (3), 2000);
  assert_int_equal (retry_backoff_ms (5), 8000);
  /* Capped at 10 s, and no overflow however many attempts. */
  assert_int_equal (retry_backoff_ms (6), 10000);
  assert_int_equal (retry_backoff_ms (1000000), 10000);
  /* Attempt 0 is treated as the first. */
  assert_int_equal (retry_backoff_ms (0), 500);
}

static void
test_wire_errors (void **state)
{
  (void) state;
  assert_true (retry_wire_error_transient (WIRE_ERR_BUSY));
  assert_false (retry_wire_error_transient (WIRE_ERR_NOSPACE));
  assert_false (retry_wire_error_transient (WIRE_ERR_MISMATCH));
  assert_false (retry_wire_error_transient (WIRE_ERR_PROTOCOL));
  assert_false (retry_wire_error_transient (WIRE_ERR_IO));
  assert_false (retry_wire_error_transient (WIRE_ERR_ABORTED));
  assert_false (retry_wire_error_transient (999));
}

static void
test_close_reasons (void **state)
{
  char buf[256];
  (void) state;
  /* The network or the peer went away: retry. */
  assert_true (retry_close_transient ("peer closed the connection"));
  assert_true (retry_close_transient ("receive from 127.0.0.1:1: Connection reset by peer"));
  assert_true (retry_close_transient ("TLS receive from 127.0.0.1:1 failed: x"));
  assert_true (retry_close_transient ("TLS handshake with 127.0.0.1:1 timed out"));
  snprintf (buf, sizeof buf, "TLS handshake with 127.0.0.1:1 failed: %s",
            gnutls_strerror (GNUTLS_E_PREMATURE_TERMINATION));
  assert_true (retry_close_transient (buf));
  /* As the transport words it: GnuTLS's full stop trimmed, and stm-send's
   * own text after it (a relay whose receiver is restarting closes the
   * handshake so). */
  buf[strlen (buf) - 1] = '\0';
  assert_int_equal (buf[strlen (buf) - 1], 'd');
  strcat (buf, "; the source was never frozen");
  assert_true (retry_close_transient (buf));
  snprintf (buf, sizeof buf, "TLS handshake with 127.0.0.1:1 failed: %s (%s)",
            gnutls_strerror (GNUTLS_E_PULL_ERROR), "Connection reset by peer");
  assert_true (retry_close_transient (buf));
  assert_true (retry_close_transient (NULL));
  /* Refused: authentication, configuration, a bug. */
  assert_false (retry_close_transient
                ("TLS handshake with 127.0.0.1:1 failed: the peer refused it "
                 "(alert: Unknown PSK identity)"));
  assert_false (retry_close_transient
                ("TLS handshake with 127.0.0.1:1 failed: the peer's certificate "
                 "is not trusted: x"));
  assert_false (retry_close_transient
                ("TLS handshake with 127.0.0.1:1 negotiated TLS1.2, not TLS 1.3"));
  assert_false (retry_close_transient
                ("malformed message from 127.0.0.1:1: bad magic"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_backoff),
    cmocka_unit_test (test_wire_errors),
    cmocka_unit_test (test_close_reasons),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
