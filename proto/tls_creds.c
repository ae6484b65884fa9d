/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: TLS credentials (see tls_creds.h): the PSK file reader, X.509
 * directories, and applying both to a GnuTLS session.
 *
 * The PSK reader is the only code that reads a PSK file.  It reads the
 * file with read(2) into a buffer of its own rather than through stdio,
 * because stdio's buffer and getline's outgrown buffers would keep copies
 * of the keys that nothing could wipe; every buffer that held key bytes
 * is wiped before it is freed, on success and on every error path.  A
 * server keeps its decoded keys (wiped at tls_creds_free); a client hands
 * its key to GnuTLS and wipes its own copy at once.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "human_units.h"
#include "log.h"
#include "tls_creds.h"

/* TLS 1.3 only.  PSK: the (EC)DHE variant of PSK key exchange with
 * elliptic-curve groups only, so every session has forward secrecy and a
 * peer offering plain PSK (psk_ke) finds nothing in common with us.  The
 * ciphers are listed because GnuTLS binds an external PSK to SHA-256, which
 * rules out AES-256-GCM (SHA-384), and NORMAL's next choice is ChaCha20,
 * five times slower than AES-128-GCM where the CPU has AES instructions
 * (as servers do).
 * X.509: the default TLS 1.3 suites and groups. */
static const char priority_psk[] =
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:-GROUP-ALL:+GROUP-EC-ALL"
  ":-CIPHER-ALL:+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-GCM:+AES-128-CCM";
static const char priority_x509[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3";

#define PSK_MAX_KEY_BYTES 512
/* A PSK file holds a line of at most about 1 KiB per user; anything much
 * bigger is not a PSK file, and reading it whole would only cost memory. */
#define PSK_FILE_MAX (64 * 1024 * 1024)

struct psk_key {
  char *user;
  char *hex;                   /* as in the file, for the client */
  unsigned char *key;          /* decoded, for the server */
  size_t keylen;
};

struct tls_creds {
  enum tls_mode mode;
  bool is_server;
  gnutls_priority_t priority;
  gnutls_psk_server_credentials_t psk_server;
  gnutls_psk_client_credentials_t psk_client;
  gnutls_certificate_credentials_t x509;
  /* Server PSK mode: the identities we accept and their keys. */
  struct psk_key *keys;
  size_t nkeys;
};

/*----------------------------------------------------------------------
 * The PSK file
 */

static void
wipe_free (void *p, size_t len)
{
  if (p != NULL) {
    explicit_bzero (p, len);
    free (p);
  }
}

static void
psk_key_clear (struct psk_key *k)
{
  free (k->user);
  if (k->hex)
    wipe_free (k->hex, strlen (k->hex));
  wipe_free (k->key, k->keylen);
  memset (k, 0, sizeof *k);
}

static void
psk_keys_free (struct psk_key *keys, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    psk_key_clear (&keys[i]);
  free (keys);
}

/* The whole file at path, NUL-terminated, in a buffer that only we hold
 * (see the top of this file), *len_out bytes long without the NUL.  Free it
 * with wipe_free (buf, *cap_out).  Returns NULL after reporting. */
static char *
psk_file_slurp (const char *path, size_t *len_out, size_t *cap_out)
{
  size_t cap = 4096, len = 0;
  char *buf = NULL, *grown;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    log_error ("cannot open the PSK file %s: %m", path);
    return NULL;
  }
  buf = malloc (cap);
  if (buf == NULL)
    goto nomem;
  for (;;) {
    ssize_t n;

    if (len + 1 == cap) {
      /* Grow by copying, so that the old buffer can be wiped; realloc
       * could leave it behind unwiped. */
      if (cap >= PSK_FILE_MAX) {
        log_error ("%s: the file is bigger than %d MiB: not a PSK file", path,
                   PSK_FILE_MAX / (1024 * 1024));
        goto fail;
      }
      grown = malloc (2 * cap);
      if (grown == NULL)
        goto nomem;
      memcpy (grown, buf, len);
      wipe_free (buf, cap);
      buf = grown;
      cap *= 2;
    }
    n = read (fd, buf + len, cap - 1 - len);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      log_error ("cannot read the PSK file %s: %m", path);
      goto fail;
    }
    if (n == 0)
      break;
    len += (size_t) n;
  }
  close (fd);
  buf[len] = '\0';
  *len_out = len;
  *cap_out = cap;
  return buf;

 nomem:
  log_error ("%s: out of memory", path);
 fail:
  wipe_free (buf, cap);
  close (fd);
  return NULL;
}

/* Parse one "user:hexkey" line (without its newline) into *k.  Returns 0,
 * or -1 after reporting what is wrong with the line. */
static int
psk_parse_line (const char *path, size_t lineno, char *line, struct psk_key *k)
{
  char *colon = strchr (line, ':');
  const char *hex;
  size_t hexlen, i;

  if (colon == NULL || colon == line) {
    log_error ("%s:%zu: expected USER:HEXKEY (the format psktool writes)",
               path, lineno);
    return -1;
  }
  *colon = '\0';
  hex = colon + 1;
  hexlen = strlen (hex);
  if (hexlen == 0 || hexlen % 2 != 0 || hexlen > 2 * PSK_MAX_KEY_BYTES) {
    log_error ("%s:%zu: the key of user \"%s\" must be an even number of hex "
               "digits, at most %d", path, lineno, line, 2 * PSK_MAX_KEY_BYTES);
    return -1;
  }
  for (i = 0; i < hexlen; i++) {
    if (hex_digit_value (hex[i]) < 0) {
      log_error ("%s:%zu: the key of user \"%s\" contains a character that is "
                 "not a hex digit", path, lineno, line);
      return -1;
    }
  }

  k->user = strdup (line);
  k->hex = strdup (hex);
  k->keylen = hexlen / 2;
  k->key = malloc (k->keylen);
  if (k->user == NULL || k->hex == NULL || k->key == NULL) {
    log_error ("%s:%zu: out of memory", path, lineno);
    return -1;
  }
  for (i = 0; i < k->keylen; i++)
    k->key[i] = (unsigned char) (hex_digit_value (hex[2 * i]) * 16
                                 + hex_digit_value (hex[2 * i + 1]));
  return 0;
}

/* The keys of a file being read: those kept so far. */
struct psk_list {
  struct psk_key *keys;
  size_t nkeys;
};

/* Check one non-blank line and keep its key in *list if only_user is NULL
 * or names it.  Returns 0, or -1 after reporting. */
static int
psk_add_line (const char *path, size_t lineno, char *line,
              const char *only_user, struct psk_list *list)
{
  struct psk_key k = { 0 };
  struct psk_key *grown;
  size_t i;

  if (psk_parse_line (path, lineno, line, &k) == -1)
    goto fail;
  for (i = 0; i < list->nkeys; i++) {
    if (strcmp (list->keys[i].user, k.user) == 0) {
      log_error ("%s:%zu: user \"%s\" appears a second time", path, lineno,
                 k.user);
      goto fail;
    }
  }
  if (only_user != NULL && strcmp (k.user, only_user) != 0) {
    /* Checked like the others, but not kept. */
    psk_key_clear (&k);
    return 0;
  }
  grown = realloc (list->keys, (list->nkeys + 1) * sizeof *grown);
  if (grown == NULL) {
    log_error ("%s: out of memory", path);
    goto fail;
  }
  list->keys = grown;
  list->keys[list->nkeys++] = k;
  return 0;

 fail:
  psk_key_clear (&k);
  return -1;
}

/* Read psktool's file: one "user:hexkey" per line, blank lines ignored.
 * Every line is checked; only the entries of only_user (if not NULL) are
 * kept.  Returns 0 with at least one key, or -1 after reporting. */
static int
psk_file_read (const char *path, const char *only_user,
               struct psk_key **keys_out, size_t *nkeys_out)
{
  struct psk_list list = { 0 };
  size_t len, cap, lineno = 0;
  char *buf, *p, *end;
  int ret = -1;

  buf = psk_file_slurp (path, &len, &cap);
  if (buf == NULL)
    return -1;
  for (p = buf, end = buf + len; p < end; ) {
    char *nl = memchr (p, '\n', end - p);
    char *next = nl ? nl + 1 : end;
    size_t linelen = (nl ? nl : end) - p;

    lineno++;
    while (linelen > 0 && p[linelen - 1] == '\r')
      linelen--;
    p[linelen] = '\0';
    if (linelen > 0 &&
        psk_add_line (path, lineno, p, only_user, &list) == -1)
      goto out;
    p = next;
  }
  if (list.nkeys == 0) {
    if (only_user != NULL)
      log_error ("%s: there is no key for user \"%s\"", path, only_user);
    else
      log_error ("%s: the file holds no key", path);
    goto out;
  }

  *keys_out = list.keys;
  *nkeys_out = list.nkeys;
  list.keys = NULL;
  list.nkeys = 0;
  ret = 0;

 out:
  wipe_free (buf, cap);
  psk_keys_free (list.keys, list.nkeys);
  return ret;
}

int
tls_psk_file_identity (const char *path, const char *user,
                       char *user_out, size_t len)
{
  struct psk_key *keys = NULL;
  size_t nkeys = 0;
  int ret = -1;

  if (psk_file_read (path, user, &keys, &nkeys) == -1)
    return -1;
  if (len > 0 && strlen (keys[0].user) < len) {
    strcpy (user_out, keys[0].user);
    ret = 0;
  }
  else
    log_error ("%s: the PSK identity \"%s\" is too long (at most %zu bytes)",
               path, keys[0].user, len - 1);
  psk_keys_free (keys, nkeys);
  return ret;
}

/*----------------------------------------------------------------------
 * Loading
 */

/* GnuTLS asks the server for the key of the identity a client offers.
 * Only the identities kept by tls_creds_load are known; for any other we
 * remember the name so the failure reason can say which was refused. */
static int
psk_server_lookup (gnutls_session_t session, const char *username,
                   gnutls_datum_t *key)
{
  struct tls_session_note *note = gnutls_session_get_ptr (session);
  const struct tls_creds *creds = note->creds;
  size_t i, j;

  for (i = 0; i < creds->nkeys; i++) {
    if (strcmp (creds->keys[i].user, username) == 0) {
      key->data = gnutls_malloc (creds->keys[i].keylen);
      if (key->data == NULL)
        return -1;
      memcpy (key->data, creds->keys[i].key, creds->keys[i].keylen);
      key->size = creds->keys[i].keylen;
      return 0;
    }
  }

  /* Keep a printable copy: the name comes from the network. */
  for (j = 0; username[j] != '\0' && j < sizeof note->rejected_identity - 1; j++)
    note->rejected_identity[j] =
      (username[j] >= 0x20 && username[j] < 0x7f) ? username[j] : '?';
  note->rejected_identity[j] = '\0';
  return -1;
}

static int
creds_load_psk (struct tls_creds *creds, const struct tls_options *opts)
{
  struct psk_key *keys = NULL;
  size_t nkeys = 0;
  int r;

  if (opts->psk_file == NULL) {
    log_error ("TLS with a pre-shared key needs a PSK file");
    return -1;
  }
  if (psk_file_read (opts->psk_file, opts->psk_user, &keys, &nkeys) == -1)
    return -1;

  if (creds->is_server) {
    r = gnutls_psk_allocate_server_credentials (&creds->psk_server);
    if (r < 0) {
      log_error ("cannot set up the PSK credentials of %s: %s",
                 opts->psk_file, gnutls_strerror (r));
      psk_keys_free (keys, nkeys);
      return -1;
    }
    gnutls_psk_set_server_credentials_function (creds->psk_server,
                                                psk_server_lookup);
    creds->keys = keys;
    creds->nkeys = nkeys;
    return 0;
  }

  /* Client: the first entry left (that of psk_user if one was named).
   * GnuTLS keeps its own copy of the key; ours is wiped below. */
  {
    gnutls_datum_t hex = {
      .data = (unsigned char *) keys[0].hex,
      .size = strlen (keys[0].hex),
    };

    r = gnutls_psk_allocate_client_credentials (&creds->psk_client);
    if (r == 0)
      r = gnutls_psk_set_client_credentials (creds->psk_client, keys[0].user,
                                             &hex, GNUTLS_PSK_KEY_HEX);
    if (r < 0)
      log_error ("cannot use the key of user \"%s\" from %s: %s",
                 keys[0].user, opts->psk_file, gnutls_strerror (r));
  }
  psk_keys_free (keys, nkeys);
  return r < 0 ? -1 : 0;
}

/* Check a file is readable first so the error names the file and the
 * system's reason, which GnuTLS's "Error while reading file" does not. */
static int
certs_file_check (const char *path)
{
  if (access (path, R_OK) == -1) {
    log_error ("cannot read %s: %m", path);
    return -1;
  }
  return 0;
}

static int
creds_load_x509 (struct tls_creds *creds, const struct tls_options *opts)
{
  const char *role = creds->is_server ? "server" : "client";
  char *ca = NULL, *cert = NULL, *key = NULL;
  int r, ret = -1;

  if (opts->certs_dir == NULL) {
    log_error ("TLS with X.509 certificates needs a certificates directory");
    return -1;
  }
  if (asprintf (&ca, "%s/ca-cert.pem", opts->certs_dir) == -1 ||
      asprintf (&cert, "%s/%s-cert.pem", opts->certs_dir, role) == -1 ||
      asprintf (&key, "%s/%s-key.pem", opts->certs_dir, role) == -1) {
    log_error ("%s: out of memory", opts->certs_dir);
    goto out;
  }
  if (certs_file_check (ca) == -1 || certs_file_check (cert) == -1 ||
      certs_file_check (key) == -1)
    goto out;

  r = gnutls_certificate_allocate_credentials (&creds->x509);
  if (r < 0) {
    log_error ("cannot set up the certificates of %s: %s", opts->certs_dir,
               gnutls_strerror (r));
    goto out;
  }
  /* The CA in the directory is the only trust anchor: it is dedicated to
   * this migration setup, so peers are authenticated by being signed by it
   * and no host name is checked (see tls_creds_apply). */
  r = gnutls_certificate_set_x509_trust_file (creds->x509, ca,
                                              GNUTLS_X509_FMT_PEM);
  if (r <= 0) {
    log_error ("%s: no usable CA certificate: %s", ca,
               r == 0 ? "no certificate found" : gnutls_strerror (r));
    goto out;
  }
  r = gnutls_certificate_set_x509_key_file (creds->x509, cert, key,
                                            GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    log_error ("cannot load the %s certificate %s with its key %s: %s",
               role, cert, key, gnutls_strerror (r));
    goto out;
  }
  ret = 0;

 out:
  free (ca);
  free (cert);
  free (key);
  return ret;
}

struct tls_creds *
tls_creds_load (const struct tls_options *opts, bool is_server)
{
  struct tls_creds *creds;
  const char *priority = NULL, *err_pos = NULL;
  int r = 0;

  creds = calloc (1, sizeof *creds);
  if (creds == NULL) {
    log_error ("cannot load TLS credentials: %m");
    return NULL;
  }
  creds->mode = opts->mode;
  creds->is_server = is_server;

  switch (opts->mode) {
  case TLS_MODE_INSECURE:
    return creds;
  case TLS_MODE_PSK:
    r = creds_load_psk (creds, opts);
    priority = priority_psk;
    break;
  case TLS_MODE_X509:
    r = creds_load_x509 (creds, opts);
    priority = priority_x509;
    break;
  default:
    abort ();
  }
  if (r == -1)
    goto fail;

  r = gnutls_priority_init2 (&creds->priority, priority, &err_pos, 0);
  if (r < 0) {
    log_error ("GnuTLS refuses the priority string \"%s\" at \"%s\": %s",
               priority, err_pos ? err_pos : "", gnutls_strerror (r));
    creds->priority = NULL;
    goto fail;
  }
  return creds;

 fail:
  tls_creds_free (creds);
  return NULL;
}

void
tls_creds_free (struct tls_creds *creds)
{
  if (creds == NULL)
    return;
  if (creds->priority)
    gnutls_priority_deinit (creds->priority);
  if (creds->psk_server)
    gnutls_psk_free_server_credentials (creds->psk_server);
  if (creds->psk_client)
    gnutls_psk_free_client_credentials (creds->psk_client);
  if (creds->x509)
    gnutls_certificate_free_credentials (creds->x509);
  psk_keys_free (creds->keys, creds->nkeys);
  free (creds);
}

enum tls_mode
tls_creds_mode (const struct tls_creds *creds)
{
  return creds->mode;
}

/*----------------------------------------------------------------------
 * Sessions
 */

int
tls_creds_apply (const struct tls_creds *creds, gnutls_session_t session,
                 bool is_server, struct tls_session_note *note)
{
  int r;

  r = gnutls_priority_set (session, creds->priority);
  if (r < 0)
    return r;
  if (creds->mode == TLS_MODE_PSK)
    r = gnutls_credentials_set (session, GNUTLS_CRD_PSK,
                                is_server ? (void *) creds->psk_server
                                : (void *) creds->psk_client);
  else
    r = gnutls_credentials_set (session, GNUTLS_CRD_CERTIFICATE, creds->x509);
  if (r < 0)
    return r;
  if (creds->mode == TLS_MODE_X509) {
    if (is_server)
      gnutls_certificate_server_set_request (session, GNUTLS_CERT_REQUIRE);
    /* Verify the peer's chain against our CA, with no host name: the CA
     * is dedicated to stm, so being signed by it is the authentication
     * (as with nbdkit and libnbd certificate directories). */
    gnutls_session_set_verify_cert (session, NULL, 0);
  }
  note->creds = creds;
  note->rejected_identity[0] = '\0';
  gnutls_session_set_ptr (session, note);
  return 0;
}
