/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: unit tests of the parsers (common/parse.c): good inputs with every
 * suffix, malformed inputs (EINVAL) and values that do not fit (ERANGE).
 */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "parse.h"

/* Each check is a helper so a failure names the input it failed on. */
static void
size_ok (const char *text, uint64_t expected)
{
  uint64_t v = 12345;

  if (parse_size (text, &v) != 0)
    fail_msg ("parse_size (\"%s\") failed: %s", text, strerror (errno));
  if (v != expected)
    fail_msg ("parse_size (\"%s\") = %llu, expected %llu", text,
              (unsigned long long) v, (unsigned long long) expected);
}

static void
size_bad (const char *text, int expected_errno)
{
  uint64_t v = 12345;

  errno = 0;
  if (parse_size (text, &v) != -1)
    fail_msg ("parse_size (\"%s\") succeeded with %llu", text,
              (unsigned long long) v);
  if (errno != expected_errno)
    fail_msg ("parse_size (\"%s\"): errno %d, expected %d", text, errno,
              expected_errno);
  assert_int_equal (v, 12345);  /* output untouched on failure */
}

static void
test_parse_size (void **state)
{
  size_ok ("0", 0);
  size_ok ("65536", 65536);
  size_ok ("007", 7);
  size_ok ("4096b", 4096);
  size_ok ("4096B", 4096);
  size_ok ("64K", 65536);
  size_ok ("64k", 65536);
  size_ok ("64KiB", 65536);
  size_ok ("64kib", 65536);
  size_ok ("64KB", 65536);
  size_ok ("64kB", 65536);
  size_ok ("1M", UINT64_C (1) << 20);
  size_ok ("1MiB", UINT64_C (1) << 20);
  size_ok ("2G", UINT64_C (2) << 30);
  size_ok ("2g", UINT64_C (2) << 30);
  size_ok ("1T", UINT64_C (1) << 40);
  size_ok ("3PiB", UINT64_C (3) << 50);
  size_ok ("18446744073709551615", UINT64_MAX);
  size_ok ("16383P", UINT64_C (16383) << 50);
  size_ok ("17179869183G", UINT64_C (17179869183) << 30);

  size_bad ("", EINVAL);
  size_bad ("K", EINVAL);
  size_bad ("B", EINVAL);
  size_bad ("-1", EINVAL);
  size_bad ("+1", EINVAL);
  size_bad (" 1", EINVAL);
  size_bad ("1 ", EINVAL);
  size_bad ("1 K", EINVAL);
  size_bad ("1.5G", EINVAL);
  size_bad ("1X", EINVAL);
  size_bad ("1KK", EINVAL);
  size_bad ("1Ki", EINVAL);
  size_bad ("1iB", EINVAL);
  size_bad ("1KiBx", EINVAL);
  size_bad ("1BB", EINVAL);
  size_bad ("0x10", EINVAL);

  size_bad ("18446744073709551616", ERANGE);    /* 2^64 */
  size_bad ("99999999999999999999999", ERANGE);
  size_bad ("16384P", ERANGE);                  /* exactly 2^64 */
  size_bad ("17179869184G", ERANGE);
  size_bad ("18446744073709551615K", ERANGE);
  /* Overflowing digits with a bad suffix are malformed first. */
  size_bad ("99999999999999999999999X", EINVAL);
}

static void
u64_ok (const char *text, uint64_t expected)
{
  uint64_t v = 0;

  if (parse_u64 (text, &v) != 0)
    fail_msg ("parse_u64 (\"%s\") failed: %s", text, strerror (errno));
  assert_int_equal (v, expected);
}

static void
u64_bad (const char *text, int expected_errno)
{
  uint64_t v = 42;

  errno = 0;
  if (parse_u64 (text, &v) != -1)
    fail_msg ("parse_u64 (\"%s\") succeeded", text);
  if (errno != expected_errno)
    fail_msg ("parse_u64 (\"%s\"): errno %d, expected %d", text, errno,
              expected_errno);
  assert_int_equal (v, 42);
}

static void
test_parse_u64 (void **state)
{
  u64_ok ("0", 0);
  u64_ok ("1", 1);
  u64_ok ("00001", 1);
  u64_ok ("18446744073709551615", UINT64_MAX);
  u64_ok ("18446744073709551610", UINT64_MAX - 5);

  u64_bad ("", EINVAL);
  u64_bad ("-0", EINVAL);
  u64_bad ("-1", EINVAL);
  u64_bad ("+1", EINVAL);
  u64_bad (" 1", EINVAL);
  u64_bad ("1 ", EINVAL);
  u64_bad ("1k", EINVAL);
  u64_bad ("1.0", EINVAL);
  u64_bad ("0x1", EINVAL);
  u64_bad ("18446744073709551616", ERANGE);
  u64_bad ("18446744073709551620", ERANGE);
  u64_bad ("100000000000000000000", ERANGE);
}

static void
duration_ok (const char *text, uint64_t default_unit, uint64_t expected)
{
  uint64_t v = 0;

  if (parse_duration (text, default_unit, &v) != 0)
    fail_msg ("parse_duration (\"%s\") failed: %s", text, strerror (errno));
  if (v != expected)
    fail_msg ("parse_duration (\"%s\") = %llu, expected %llu", text,
              (unsigned long long) v, (unsigned long long) expected);
}

static void
duration_bad (const char *text, uint64_t default_unit, int expected_errno)
{
  uint64_t v = 42;

  errno = 0;
  if (parse_duration (text, default_unit, &v) != -1)
    fail_msg ("parse_duration (\"%s\") succeeded with %llu", text,
              (unsigned long long) v);
  if (errno != expected_errno)
    fail_msg ("parse_duration (\"%s\"): errno %d, expected %d", text, errno,
              expected_errno);
  assert_int_equal (v, 42);
}

#define MS UINT64_C (1000000)
#define SEC UINT64_C (1000000000)

static void
test_parse_duration (void **state)
{
  duration_ok ("30s", MS, 30 * SEC);
  duration_ok ("200ms", SEC, 200 * MS);
  duration_ok ("5m", MS, 300 * SEC);
  duration_ok ("1h", MS, 3600 * SEC);
  duration_ok ("250us", MS, 250000);
  duration_ok ("7ns", MS, 7);
  duration_ok ("1.5s", MS, 1500 * MS);
  duration_ok ("0.25ms", SEC, 250000);
  duration_ok ("1.0000000001s", MS, SEC);       /* truncated at the ns */
  duration_ok ("0.5ns", MS, 0);
  duration_ok ("2.5h", MS, 9000 * SEC);
  duration_ok ("0.000000001s", MS, 1);
  duration_ok ("1.123456789123456789123456789s", MS, 1123456789);
  duration_ok ("30S", MS, 30 * SEC);            /* units are case-insensitive */
  duration_ok ("200MS", MS, 200 * MS);
  duration_ok ("0s", MS, 0);

  /* A bare number is in the default unit. */
  duration_ok ("100", MS, 100 * MS);
  duration_ok ("30", SEC, 30 * SEC);
  duration_ok ("1.5", SEC, 1500 * MS);

  /* The largest values: 2^64-1 ns fits, one more does not. */
  duration_ok ("18446744073709551615ns", MS, UINT64_MAX);
  duration_ok ("18446744073s", MS, 18446744073 * SEC);
  duration_ok ("18446744073.709551615s", MS, UINT64_MAX);
  duration_bad ("18446744073.709551616s", MS, ERANGE);
  duration_bad ("18446744074s", MS, ERANGE);
  duration_bad ("18446744073709551616ns", MS, ERANGE);
  duration_bad ("5124096h", MS, ERANGE);
  duration_bad ("99999999999999999999999s", MS, ERANGE);
  duration_bad ("18446744073709551615", MS, ERANGE);

  duration_bad ("", MS, EINVAL);
  duration_bad ("s", MS, EINVAL);
  duration_bad ("-1s", MS, EINVAL);
  duration_bad ("+1s", MS, EINVAL);
  duration_bad ("1 s", MS, EINVAL);
  duration_bad (" 1s", MS, EINVAL);
  duration_bad ("1s ", MS, EINVAL);
  duration_bad (".5s", MS, EINVAL);
  duration_bad ("1.s", MS, EINVAL);
  duration_bad ("1..5s", MS, EINVAL);
  duration_bad ("1.5.5s", MS, EINVAL);
  duration_bad ("1x", MS, EINVAL);
  duration_bad ("1sec", MS, EINVAL);
  duration_bad ("1ss", MS, EINVAL);
  duration_bad ("1d", MS, EINVAL);
  duration_bad ("1e3ms", MS, EINVAL);
  /* Bad unit beats overflow: the text is malformed first of all. */
  duration_bad ("99999999999999999999999x", MS, EINVAL);
  /* A default unit of 0 means the caller requires an explicit unit. */
  duration_bad ("100", 0, EINVAL);
  duration_ok ("100ms", 0, 100 * MS);
}

static void
host_port_ok (const char *text, const char *expected_host, uint16_t expected_port)
{
  char host[64];
  uint16_t port = 1;

  memset (host, 'x', sizeof host);
  if (parse_host_port (text, host, sizeof host, &port) != 0)
    fail_msg ("parse_host_port (\"%s\") failed: %s", text, strerror (errno));
  assert_string_equal (host, expected_host);
  assert_int_equal (port, expected_port);
}

static void
host_port_bad (const char *text, int expected_errno)
{
  char host[64] = "untouched";
  uint16_t port = 1;

  errno = 0;
  if (parse_host_port (text, host, sizeof host, &port) != -1)
    fail_msg ("parse_host_port (\"%s\") succeeded: host \"%s\" port %u", text,
              host, port);
  if (errno != expected_errno)
    fail_msg ("parse_host_port (\"%s\"): errno %d, expected %d", text, errno,
              expected_errno);
  assert_int_equal (port, 1);
}

static void
test_parse_host_port (void **state)
{
  char small[10];
  uint16_t port;

  host_port_ok ("127.0.0.1:10809", "127.0.0.1", 10809);
  host_port_ok ("localhost:1", "localhost", 1);
  host_port_ok ("dest.example.com:65535", "dest.example.com", 65535);
  host_port_ok (":10809", "", 10809);
  host_port_ok ("[::1]:10809", "::1", 10809);
  host_port_ok ("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
  host_port_ok ("[2001:db8::42]:443", "2001:db8::42", 443);
  /* Port 0 is "any free port" for a listener (see parse.h). */
  host_port_ok ("127.0.0.1:0", "127.0.0.1", 0);
  host_port_ok (":0", "", 0);

  host_port_bad ("", EINVAL);
  host_port_bad ("localhost", EINVAL);
  host_port_bad ("localhost:", EINVAL);
  host_port_bad (":", EINVAL);
  host_port_bad ("localhost:http", EINVAL);
  host_port_bad ("localhost:-1", EINVAL);
  host_port_bad ("localhost:+80", EINVAL);
  host_port_bad ("localhost:80 ", EINVAL);
  host_port_bad ("localhost:80:90", EINVAL);
  host_port_bad ("::1:80", EINVAL);              /* v6 needs brackets */
  host_port_bad ("[::1]", EINVAL);
  host_port_bad ("[::1]80", EINVAL);
  host_port_bad ("[::1]:", EINVAL);
  host_port_bad ("[]:80", EINVAL);
  host_port_bad ("[::1:80", EINVAL);
  host_port_bad ("a]:80", EINVAL);
  host_port_bad ("localhost:65536", ERANGE);
  host_port_bad ("localhost:99999999999999999999999", ERANGE);

  /* The host must fit the buffer, terminating NUL included. */
  assert_int_equal (parse_host_port ("1234567890:80", small, sizeof small, &port), -1);
  assert_int_equal (errno, ERANGE);
  assert_int_equal (parse_host_port ("123456789:80", small, sizeof small, &port), 0);
  assert_string_equal (small, "123456789");
  assert_int_equal (port, 80);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_size),
    cmocka_unit_test (test_parse_u64),
    cmocka_unit_test (test_parse_duration),
    cmocka_unit_test (test_parse_host_port),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
