/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the TLS credentials of a process, loaded once from the command
 * line's files and shared by all its connections.
 *
 * PSK mode reads psktool's "user:hexkey" file (tls_psk_file_identity reads
 * the same file through the same reader, for the identity stm-send puts in
 * a forward-flip URI); X.509 mode loads ca-cert.pem and the role's
 * certificate and key from a directory.  Key material read from a file is
 * wiped from memory as soon as GnuTLS has its copy, or the read failed.
 * The second half of this header is for the TLS connection operations
 * (conn_tls.c): it applies the credentials to one GnuTLS session.
 */
#ifndef STM_PROTO_TLS_CREDS_H
#define STM_PROTO_TLS_CREDS_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

enum tls_mode {
  TLS_MODE_PSK,
  TLS_MODE_X509,
  TLS_MODE_INSECURE,
};

struct tls_options {
  enum tls_mode mode;
  const char *psk_file;      /* TLS_MODE_PSK */
  const char *psk_user;      /* TLS_MODE_PSK, client: NULL = first entry */
  const char *certs_dir;     /* TLS_MODE_X509 */
};

struct tls_creds;

/* Load credentials once per process.  Returns NULL after reporting with
 * log_error what was wrong (missing file, unreadable key, bad format). */
struct tls_creds *tls_creds_load (const struct tls_options *opts, bool is_server);
void tls_creds_free (struct tls_creds *creds);

enum tls_mode tls_creds_mode (const struct tls_creds *creds);

/* The PSK identity a client of the PSK file at path presents: that of
 * user if not NULL (it must be in the file), else the file's first.  The
 * whole file is checked as tls_creds_load checks it.  Returns 0 with the
 * name in user_out, or -1 after reporting with log_error. */
int tls_psk_file_identity (const char *path, const char *user,
                           char *user_out, size_t len);

/*----------------------------------------------------------------------
 * For the TLS connection operations
 */

/* What the credentials learn during one session's handshake, for the
 * failure message: the identity a PSK client offered that we do not know
 * (printable, "" if none). */
struct tls_session_note {
  const struct tls_creds *creds;
  char rejected_identity[64];
};

/* Give a new session the credentials' priorities and keys, and for X.509
 * the peer verification.  note must live as long as the session; the
 * session's user pointer (gnutls_session_set_ptr) is taken for it.
 * Returns 0 or a GnuTLS error code. */
int tls_creds_apply (const struct tls_creds *creds, gnutls_session_t session,
                     bool is_server, struct tls_session_note *note);

#endif /* STM_PROTO_TLS_CREDS_H */
