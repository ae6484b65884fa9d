/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the reconnect policy (see retry_policy.h). */
#include <config.h>

#include <stdio.h>
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

/* Does reason quote GnuTLS's text for err?  The transport trims the
 * full stop GnuTLS ends its texts with (its own text follows), so the
 * text is looked for without it. */
static bool
says_gnutls_error (const char *reason, int err)
{
  char text[256];
  size_t n;

  snprintf (text, sizeof text, "%s", gnutls_strerror (err));
  n = strlen (text);
  while (n > 0 && (text[n - 1] == '.' || text[n - 1] == ' '))
    text[--n] = '\0';
  return n > 0 && strstr (reason, text) != NULL;
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
  return strstr (reason, "timed out") != NULL ||
    says_gnutls_error (reason, GNUTLS_E_PREMATURE_TERMINATION) ||
    says_gnutls_error (reason, GNUTLS_E_PULL_ERROR) ||
    says_gnutls_error (reason, GNUTLS_E_PUSH_ERROR);
}
