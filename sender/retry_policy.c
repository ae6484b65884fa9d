/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the reconnect policy (see retry_policy.h). */
#include <config.h>

#include <string.h>

#include <gnutls/gnutls.h>

#include "retry_policy.h"
#include "wire.h"

uint64_t
retry_backoff_ms (unsigned attempt)
{
  uint64_t ms = RETRY_FIRST_DELAY_MS;
  for (unsigned i = 1; i < attempt && ms < RETRY_MAX_DELAY_MS; i++)
    ms *= 2;
  return ms < RETRY_MAX_DELAY_MS ? ms : RETRY_MAX_DELAY_MS;
}

bool
retry_wire_error_transient (uint32_t code)
{
  return code == WIRE_ERR_BUSY;
}

bool
retry_close_transient (const char *reason)
{
  if (reason == NULL)
    return true;
  if (strstr (reason, "malformed message") != NULL)
    return false;
  if (strstr (reason, "TLS handshake") == NULL)
    return true;
  /* The handshake failed.  These are the ways it fails when the peer or
   * the network disappears rather than refuses us; GnuTLS's own words are
   * asked for, so the test follows its wording. */
  if (strstr (reason, "timed out") != NULL ||
      strstr (reason, gnutls_strerror (GNUTLS_E_PREMATURE_TERMINATION)) != NULL ||
      strstr (reason, gnutls_strerror (GNUTLS_E_PULL_ERROR)) != NULL ||
      strstr (reason, gnutls_strerror (GNUTLS_E_PUSH_ERROR)) != NULL)
    return true;
  return false;
}
