/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: tests of the transport (proto/stm_conn.c, conn_tls.c, conn_plain.c,
 * tls_creds.c, tcp.c).
 *
 * Client and server are real TCP connections on 127.0.0.1, both ends
 * driven by one libev loop in this process, so the whole path is covered:
 * handshake, records, framing, flow control, graceful close.  Peers the
 * transport must refuse (a client offering plain PSK without ECDHE, a
 * client with no certificate) are raw GnuTLS clients in a second thread,
 * since our own code cannot be made to behave that way.  The X.509 tests
 * make a CA and certificates with certtool in a temporary directory and
 * are skipped if certtool is missing.
 *
 * Every loop is bounded by a guard timer; a test that hangs fails.
 */
#include <config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <gnutls/gnutls.h>

#include "tls_transport.h"
#include "wire.h"

#define GUARD_SECONDS 40.0
#define IMAGE_SIZE (1024ull * 1024 * 1024)
#define DATA_LEN WIRE_MAX_DATA                  /* 8 MiB, the largest frame */
#define SMALL_MESSAGES 20000u
#define DATA_EVERY 5000u                        /* one DATA per 5000 messages */

/* The key psktool would write for alice, another for bob, and a wrong one
 * for alice. */
#define KEY_ALICE "9b7a3c1de0f4a5b6c7d8e9f00112233445566778899aabbccddeeff001122334"
#define KEY_BOB   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY_WRONG "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static char tmpdir[256];
static bool have_certs;

/*----------------------------------------------------------------------
 * Files and certificates
 */

static void
write_file (const char *name, const char *text)
{
  char path[512];
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", tmpdir, name);
  fp = fopen (path, "w");
  assert_non_null (fp);
  fputs (text, fp);
  assert_int_equal (fclose (fp), 0);
}

static const char *
tmp_path (const char *name)
{
  static char path[4][512];
  static unsigned next;
  char *p = path[next++ % 4];

  snprintf (p, sizeof path[0], "%s/%s", tmpdir, name);
  return p;
}

static int
run (const char *fmt, ...)
{
  char cmd[2048];
  va_list args;
  int r;

  va_start (args, fmt);
  vsnprintf (cmd, sizeof cmd, fmt, args);
  va_end (args);
  r = system (cmd);
  return r == -1 || !WIFEXITED (r) ? -1 : WEXITSTATUS (r);
}

/* A CA, and under it a server and a client certificate, in DIR; with
 * rogue_client the client certificate comes from another CA instead. */
static int
make_certs (const char *dir, bool rogue_client)
{
  const char *d = dir;

  if (mkdir (dir, 0700) == -1)
    return -1;
  write_file ("ca.info", "cn = stm test CA\nca\ncert_signing_key\nexpiration_days = 2\n");
  write_file ("server.info", "cn = localhost\ndns_name = localhost\n"
              "ip_address = 127.0.0.1\ntls_www_server\nsigning_key\n"
              "encryption_key\nexpiration_days = 2\n");
  write_file ("client.info", "cn = stm test client\ntls_www_client\n"
              "signing_key\nencryption_key\nexpiration_days = 2\n");
  if (rogue_client) {
    /* The real CA (so the client trusts the server), and a second CA
     * nobody trusts that signs the client certificate. */
    if (run ("cd %s && cp certs/ca-cert.pem %s/ &&"
             " certtool -q --generate-privkey --key-type=ecdsa --outfile %s/rogue-key.pem 2>/dev/null &&"
             " certtool -q --generate-self-signed --load-privkey %s/rogue-key.pem --template ca.info"
             " --outfile %s/rogue-cert.pem 2>/dev/null", tmpdir, d, d, d, d) != 0)
      return -1;
  }
  else if (run ("cd %s && certtool -q --generate-privkey --key-type=ecdsa --outfile %s/ca-key.pem 2>/dev/null &&"
                " certtool -q --generate-self-signed --load-privkey %s/ca-key.pem --template ca.info"
                " --outfile %s/ca-cert.pem 2>/dev/null &&"
                " certtool -q --generate-privkey --key-type=ecdsa --outfile %s/server-key.pem 2>/dev/null &&"
                " certtool -q --generate-certificate --load-privkey %s/server-key.pem"
                " --load-ca-certificate %s/ca-cert.pem --load-ca-privkey %s/ca-key.pem"
                " --template server.info --outfile %s/server-cert.pem 2>/dev/null",
                tmpdir, d, d, d, d, d, d, d, d) != 0)
    return -1;
  if (run ("cd %s && certtool -q --generate-privkey --key-type=ecdsa --outfile %s/client-key.pem 2>/dev/null &&"
           " certtool -q --generate-certificate --load-privkey %s/client-key.pem"
           " --load-ca-certificate %s/%s-cert.pem --load-ca-privkey %s/%s-key.pem"
           " --template client.info --outfile %s/client-cert.pem 2>/dev/null",
           tmpdir, d, d, d, rogue_client ? "rogue" : "ca", d,
           rogue_client ? "rogue" : "ca", d) != 0)
    return -1;
  return 0;
}

static int
group_setup (void **state)
{
  char good[600], rogue[600];

  strcpy (tmpdir, "/tmp/stm-test-tls-XXXXXX");
  if (mkdtemp (tmpdir) == NULL)
    return -1;
  write_file ("keys.psk", "alice:" KEY_ALICE "\nbob:" KEY_BOB "\n");
  write_file ("alice.psk", "alice:" KEY_ALICE "\n");
  write_file ("bob.psk", "bob:" KEY_BOB "\n");
  write_file ("wrong.psk", "alice:" KEY_WRONG "\n");
  write_file ("bad.psk", "alice:" KEY_ALICE "\n\ncarol:12345\n");

  snprintf (good, sizeof good, "%s/certs", tmpdir);
  snprintf (rogue, sizeof rogue, "%s/rogue", tmpdir);
  have_certs = run ("certtool --version >/dev/null 2>&1") == 0 &&
    make_certs (good, false) == 0 && make_certs (rogue, true) == 0;
  if (!have_certs)
    fprintf (stderr, "certtool failed or is missing: X.509 tests are skipped\n");
  return 0;
}

static int
group_teardown (void **state)
{
  if (tmpdir[0] != '\0')
    run ("rm -rf %s", tmpdir);
  return 0;
}

/*----------------------------------------------------------------------
 * Capturing what the code under test logs
 */

static int saved_stderr = -1;

static void
capture_begin (void)
{
  int fd;

  fflush (stderr);
  saved_stderr = dup (2);
  fd = open (tmp_path ("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true (fd >= 0);
  dup2 (fd, 2);
  close (fd);
}

static char *
capture_end (void)
{
  static char text[4096];
  FILE *fp;
  size_t n;

  fflush (stderr);
  dup2 (saved_stderr, 2);
  close (saved_stderr);
  fp = fopen (tmp_path ("stderr.txt"), "r");
  assert_non_null (fp);
  n = fread (text, 1, sizeof text - 1, fp);
  text[n] = '\0';
  fclose (fp);
  /* Show it anyway, for whoever reads the test log. */
  fputs (text, stderr);
  return text;
}

/*----------------------------------------------------------------------
 * A pair of connections in one loop
 */

struct test;

struct side {
  struct test *t;
  const char *name;
  struct stm_conn *conn;
  bool ready;
  bool closed;                 /* on_close was called */
  bool let_go;                 /* we closed it ourselves */
  char reason[1500];
  char security[200];
  unsigned messages;
  unsigned drains;
  unsigned errors_received;    /* ERROR frames */
  /* stm_conn_wire_bytes and _received when we closed it ourselves. */
  uint64_t wire_sent, wire_received;
  void (*on_ready) (struct side *s);
  void (*on_message) (struct side *s, const struct wire_msg *msg);
  void (*on_drain) (struct side *s);
};

struct test {
  struct ev_loop *loop;
  ev_timer guard;
  bool timed_out;
  struct side client, server;

  /* The round trip. */
  unsigned total;              /* messages the client sends */
  unsigned next;               /* next one to queue */
  unsigned server_expect;      /* next one the server should see */
  unsigned durables;           /* DURABLE seen by the client */
  unsigned syncs;              /* SYNC among the total */
  uint8_t *send_buf;
  uint8_t *check_buf;
  unsigned data_frames;
  ev_timer resume;
  uint64_t frame_bytes;        /* what the client queued, headers included */
  uint64_t server_received;    /* its wire bytes received at the last message */
};

static bool
side_over (const struct side *s)
{
  return s->closed || s->let_go;
}

static void
maybe_done (struct test *t)
{
  if (side_over (&t->client) && side_over (&t->server))
    ev_timer_stop (t->loop, &t->guard);
}

static void
cb_ready (struct stm_conn *conn, void *opaque)
{
  struct side *s = opaque;

  assert_ptr_equal (conn, s->conn);
  assert_false (s->ready);
  s->ready = true;
  snprintf (s->security, sizeof s->security, "%s", stm_conn_security (conn));
  if (s->on_ready)
    s->on_ready (s);
}

static void
cb_message (struct stm_conn *conn, const struct wire_msg *msg, void *opaque)
{
  struct side *s = opaque;

  assert_ptr_equal (conn, s->conn);
  assert_true (s->ready);
  s->messages++;
  if (msg->type == WIRE_ERROR)
    s->errors_received++;
  if (s->on_message)
    s->on_message (s, msg);
}

static void
cb_drain (struct stm_conn *conn, void *opaque)
{
  struct side *s = opaque;

  assert_false (side_over (s));
  s->drains++;
  if (s->on_drain)
    s->on_drain (s);
}

static void
cb_close (struct stm_conn *conn, const char *reason, void *opaque)
{
  struct side *s = opaque;

  /* At most once, and never after we closed it. */
  assert_false (s->closed);
  assert_false (s->let_go);
  assert_ptr_equal (conn, s->conn);
  s->closed = true;
  s->conn = NULL;
  snprintf (s->reason, sizeof s->reason, "%s", reason);
  fprintf (stderr, "  %s: on_close: %s\n", s->name, reason);
  maybe_done (s->t);
}

static const struct stm_conn_callbacks callbacks = {
  .on_ready = cb_ready,
  .on_message = cb_message,
  .on_drain = cb_drain,
  .on_close = cb_close,
};

/* We close a side ourselves (not through on_close). */
static void
side_close (struct side *s, bool flush)
{
  struct stm_conn *conn = s->conn;

  s->let_go = true;
  s->conn = NULL;
  s->wire_sent = stm_conn_wire_bytes (conn);
  s->wire_received = stm_conn_wire_bytes_received (conn);
  if (flush)
    stm_conn_close_after_flush (conn);
  else
    stm_conn_close (conn);
  maybe_done (s->t);
}

static void
guard_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct test *t = w->data;

  t->timed_out = true;
  ev_break (loop, EVBREAK_ALL);
}

static void
test_init (struct test *t)
{
  memset (t, 0, sizeof *t);
  t->loop = ev_loop_new (EVFLAG_AUTO);
  assert_non_null (t->loop);
  ev_timer_init (&t->guard, guard_cb, GUARD_SECONDS, 0.);
  t->guard.data = t;
  ev_timer_start (t->loop, &t->guard);
  t->client.t = t->server.t = t;
  t->client.name = "client";
  t->server.name = "server";
}

/* Run until both sides are over and every lingering close has finished
 * (the loop then has no active watcher left). */
static void
test_run (struct test *t)
{
  ev_run (t->loop, 0);
  assert_false (t->timed_out);
}

static void
test_fini (struct test *t)
{
  ev_loop_destroy (t->loop);
  free (t->send_buf);
  free (t->check_buf);
}

/* A connected pair of TCP sockets on 127.0.0.1, made with the functions
 * under test. */
static void
tcp_pair (int *client_fd, int *server_fd)
{
  uint16_t port = 0;
  int lfd, cfd, sfd = -1, i;

  lfd = tcp_listen ("127.0.0.1", 0, &port);
  assert_true (lfd >= 0);
  assert_true (port != 0);
  cfd = tcp_connect ("127.0.0.1", port, 2000);
  assert_true (cfd >= 0);
  /* The listening socket is non-blocking; the kernel has completed the
   * connection already, but allow it a moment. */
  for (i = 0; i < 200 && sfd == -1; i++) {
    sfd = accept (lfd, NULL, NULL);
    if (sfd == -1) {
      assert_true (errno == EAGAIN || errno == EWOULDBLOCK);
      usleep (10000);
    }
  }
  assert_true (sfd >= 0);
  close (lfd);
  *client_fd = cfd;
  *server_fd = sfd;
}

static struct tls_creds *
load (enum tls_mode mode, const char *file_or_dir, const char *user,
      bool is_server)
{
  struct tls_options o = { .mode = mode, .psk_user = user };
  struct tls_creds *creds;

  if (mode == TLS_MODE_PSK)
    o.psk_file = tmp_path (file_or_dir);
  else if (mode == TLS_MODE_X509)
    o.certs_dir = tmp_path (file_or_dir);
  creds = tls_creds_load (&o, is_server);
  assert_non_null (creds);
  return creds;
}

static void
start_pair (struct test *t, struct tls_creds *client_creds,
            struct tls_creds *server_creds)
{
  int cfd, sfd;

  tcp_pair (&cfd, &sfd);
  t->server.conn = stm_conn_new (t->loop, sfd, server_creds, true,
                                 "test client", &callbacks, &t->server);
  assert_non_null (t->server.conn);
  stm_conn_set_image_size (t->server.conn, IMAGE_SIZE);
  t->client.conn = stm_conn_new (t->loop, cfd, client_creds, false,
                                 "test server", &callbacks, &t->client);
  assert_non_null (t->client.conn);
  /* Never from inside stm_conn_new. */
  assert_false (t->client.ready);
  assert_false (t->server.ready);
}

/*----------------------------------------------------------------------
 * Ping-pong: one message at a time, each answered before the next, in
 * turn a large DATA (sent straight from the buffer, record by record) and
 * a small SYNC (through the queue).  The transport tells the kernel that
 * more bytes follow (MSG_MORE) while it sends the pieces of a message; the
 * last piece of what it has must go without that, or the kernel holds the
 * tail back, and with nothing else in flight that waits for a zero-window
 * probe (200 ms or more) before the peer can answer.
 */

#define PING_ROUNDS 100u
#define PING_LEN (256u * 1024)
#define PING_SECONDS 8.0                /* 50 stalls would take 10 s */

static double
now_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
ping_send (struct side *s)
{
  struct test *t = s->t;
  uint8_t head[WIRE_ENCODE_MAX];
  size_t n;

  /* Nothing is queued, so a DATA's body goes from send_buf. */
  assert_int_equal (stm_conn_output_pending (s->conn), 0);
  if (t->next % 2 == 0) {
    n = wire_encode_data_header (head, (uint64_t) t->next * PING_LEN, PING_LEN);
    assert_int_equal (stm_conn_send (s->conn, head, n, t->send_buf, PING_LEN), 0);
  }
  else {
    n = wire_encode_sync (head, t->next);
    assert_int_equal (stm_conn_send (s->conn, head, n, NULL, 0), 0);
  }
  t->next++;
}

static void
ping_server_message (struct side *s, const struct wire_msg *msg)
{
  uint8_t out[WIRE_ENCODE_MAX];
  uint64_t seq;
  size_t n;

  if (msg->type == WIRE_DATA) {
    assert_int_equal (msg->u.data.length, PING_LEN);
    seq = msg->u.data.offset / PING_LEN;
  }
  else {
    assert_int_equal (msg->type, WIRE_SYNC);
    seq = msg->u.sync.seq;
  }
  n = wire_encode_durable (out, seq);
  assert_int_equal (stm_conn_send (s->conn, out, n, NULL, 0), 0);
}

static void
ping_client_message (struct side *s, const struct wire_msg *msg)
{
  struct test *t = s->t;

  assert_int_equal (msg->type, WIRE_DURABLE);
  assert_int_equal (msg->u.sync.seq, t->durables);
  t->durables++;
  if (t->durables == PING_ROUNDS)
    side_close (s, true);
  else
    ping_send (s);
}

static void
ping_pong (enum tls_mode mode, const char *client_src, const char *server_src)
{
  struct test t;
  struct tls_creds *cc, *sc;
  double t0, seconds;

  test_init (&t);
  t.send_buf = calloc (1, PING_LEN);
  assert_non_null (t.send_buf);
  t.send_buf[0] = 1;
  cc = load (mode, client_src, NULL, false);
  sc = load (mode, server_src, NULL, true);
  t.client.on_ready = ping_send;
  t.client.on_message = ping_client_message;
  t.server.on_message = ping_server_message;
  start_pair (&t, cc, sc);

  t0 = now_seconds ();
  test_run (&t);
  seconds = now_seconds () - t0;
  fprintf (stderr, "  %u round trips of %u in %.3f s\n", t.durables, PING_ROUNDS, seconds);
  assert_int_equal (t.durables, PING_ROUNDS);
  assert_true (seconds < PING_SECONDS);

  tls_creds_free (cc);
  tls_creds_free (sc);
  test_fini (&t);
}

static void
test_psk_ping_pong (void **state)
{
  ping_pong (TLS_MODE_PSK, "alice.psk", "keys.psk");
}

static void
test_insecure_ping_pong (void **state)
{
  ping_pong (TLS_MODE_INSECURE, NULL, NULL);
}

/*----------------------------------------------------------------------
 * Round trip: many small frames and 8 MiB DATA frames one way, a reply to
 * each SYNC the other way, with flow control and pauses.
 */

static void
fill_pattern (uint8_t *buf, unsigned k)
{
  uint32_t x = 0x9e3779b9u * (k + 1);
  size_t i;

  for (i = 0; i < DATA_LEN; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (uint8_t) x;
  }
}

static bool
is_data_index (unsigned i)
{
  return i % DATA_EVERY == DATA_EVERY / 2;
}

static void
rt_produce (struct side *s)
{
  struct test *t = s->t;

  while (t->next < t->total && !stm_conn_output_full (s->conn)) {
    uint8_t head[WIRE_ENCODE_MAX];
    unsigned i = t->next++;

    if (is_data_index (i)) {
      unsigned k = i / DATA_EVERY;
      size_t n = wire_encode_data_header (head, (uint64_t) k * DATA_LEN, DATA_LEN);

      fill_pattern (t->send_buf, k);
      assert_int_equal (stm_conn_send (s->conn, head, n, t->send_buf, DATA_LEN), 0);
      t->frame_bytes += n + DATA_LEN;
    }
    else {
      size_t n = wire_encode_sync (head, i);
      assert_int_equal (stm_conn_send (s->conn, head, n, NULL, 0), 0);
      t->frame_bytes += n;
    }
  }
}

static void
rt_client_message (struct side *s, const struct wire_msg *msg)
{
  struct test *t = s->t;

  assert_int_equal (msg->type, WIRE_DURABLE);
  /* DURABLE n answers SYNC n, in order, skipping the DATA indexes. */
  while (is_data_index (t->durables + t->data_frames))
    t->data_frames++;
  assert_int_equal (msg->u.sync.seq, t->durables + t->data_frames);
  t->durables++;
  if (t->durables == t->syncs) {
    assert_int_equal (t->next, t->total);
    /* Close from inside a callback, gracefully. */
    side_close (s, true);
  }
}

static void
resume_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct test *t = w->data;

  if (t->server.conn)
    stm_conn_pause_reading (t->server.conn, false);
}

static void
rt_server_message (struct side *s, const struct wire_msg *msg)
{
  struct test *t = s->t;
  unsigned i = t->server_expect++;

  assert_true (i < t->total);
  t->server_received = stm_conn_wire_bytes_received (s->conn);
  if (is_data_index (i)) {
    unsigned k = i / DATA_EVERY;

    assert_int_equal (msg->type, WIRE_DATA);
    assert_int_equal (msg->u.data.offset, (uint64_t) k * DATA_LEN);
    assert_int_equal (msg->u.data.length, DATA_LEN);
    fill_pattern (t->check_buf, k);
    assert_memory_equal (msg->u.data.bytes, t->check_buf, DATA_LEN);
    if (k == 0) {
      /* Stop reading for a while: frames wait in our buffer and in
       * GnuTLS's, and must all come out after the resume. */
      stm_conn_pause_reading (s->conn, true);
      ev_timer_start (t->loop, &t->resume);
    }
    else if (k == 1) {
      stm_conn_pause_reading (s->conn, true);
      stm_conn_pause_reading (s->conn, false);
    }
  }
  else {
    uint8_t out[WIRE_ENCODE_MAX];
    size_t n;

    assert_int_equal (msg->type, WIRE_SYNC);
    assert_int_equal (msg->u.sync.seq, i);
    n = wire_encode_durable (out, i);
    assert_int_equal (stm_conn_send (s->conn, out, n, NULL, 0), 0);
  }
}

/* The bytes on the socket: the client had written everything it queued
 * when its last DURABLE came, and nothing since; the server had read all
 * of it when it took the last SYNC.  Without TLS that is the frames
 * exactly; TLS adds its handshake and about 22 bytes a 16 KiB record,
 * well under 1% of 32 MiB of DATA. */
static void
check_wire_bytes (const struct test *t, enum tls_mode mode)
{
  fprintf (stderr, "  frames %" PRIu64 " bytes, wire %" PRIu64 " sent, %"
           PRIu64 " received by the server\n", t->frame_bytes,
           t->client.wire_sent, t->server_received);
  assert_true (t->frame_bytes > 4ull * DATA_LEN);
  assert_true (t->client.wire_sent == t->server_received);
  assert_true (t->client.wire_received > 0);
  if (mode == TLS_MODE_INSECURE)
    assert_true (t->client.wire_sent == t->frame_bytes);
  else {
    assert_true (t->client.wire_sent > t->frame_bytes);
    assert_true (t->client.wire_sent < t->frame_bytes + t->frame_bytes / 100);
  }
}

static void
round_trip (enum tls_mode mode, const char *client_src, const char *server_src,
            const char *expect_security)
{
  struct test t;
  struct tls_creds *cc, *sc;
  unsigned i;

  test_init (&t);
  t.total = SMALL_MESSAGES;
  for (i = 0; i < t.total; i++)
    if (!is_data_index (i))
      t.syncs++;
  t.send_buf = malloc (DATA_LEN);
  t.check_buf = malloc (DATA_LEN);
  assert_non_null (t.send_buf);
  assert_non_null (t.check_buf);
  ev_timer_init (&t.resume, resume_cb, 0.05, 0.);
  t.resume.data = &t;

  cc = load (mode, client_src, NULL, false);
  sc = load (mode, server_src, NULL, true);
  t.client.on_ready = rt_produce;
  t.client.on_drain = rt_produce;
  t.client.on_message = rt_client_message;
  t.server.on_message = rt_server_message;
  start_pair (&t, cc, sc);
  stm_conn_set_water_marks (t.client.conn, 1024 * 1024, 4 * 1024 * 1024);

  test_run (&t);
  ev_timer_stop (t.loop, &t.resume);

  assert_true (t.client.ready);
  assert_true (t.server.ready);
  assert_int_equal (t.server_expect, t.total);
  assert_int_equal (t.durables, t.syncs);
  assert_true (t.client.let_go);
  assert_false (t.client.closed);
  /* The client's graceful close reached the server after all data. */
  assert_true (t.server.closed);
  assert_string_equal (t.server.reason, "peer closed the connection");
  /* 32 MiB went through a 4 MiB high water mark. */
  assert_true (t.client.drains > 0);
  assert_non_null (strstr (t.client.security, expect_security));
  assert_non_null (strstr (t.server.security, expect_security));
  fprintf (stderr, "  negotiated: %s\n", t.client.security);
  check_wire_bytes (&t, mode);

  tls_creds_free (cc);
  tls_creds_free (sc);
  test_fini (&t);
}

static void
test_psk_round_trip (void **state)
{
  round_trip (TLS_MODE_PSK, "alice.psk", "keys.psk", "TLS 1.3, ECDHE-PSK");
}

static void
test_insecure_round_trip (void **state)
{
  round_trip (TLS_MODE_INSECURE, NULL, NULL, "insecure");
}

static void
test_x509_round_trip (void **state)
{
  if (!have_certs)
    skip ();
  round_trip (TLS_MODE_X509, "certs", "certs", "TLS 1.3, X.509");
}

/*----------------------------------------------------------------------
 * Handshakes that must fail
 */

/* Both ends of a pair whose handshake must fail: neither becomes ready
 * (unless allow_client_ready: in TLS 1.3 a client finishes its side of
 * the handshake before the server judges the client's certificate), and
 * both are told. */
static void
expect_refused (struct tls_creds *cc, struct tls_creds *sc,
                const char *server_reason, bool allow_client_ready)
{
  struct test t;

  test_init (&t);
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_false (t.server.ready);
  if (!allow_client_ready)
    assert_false (t.client.ready);
  assert_true (t.server.closed);
  assert_true (t.client.closed);
  assert_non_null (strstr (t.server.reason, server_reason));
  assert_non_null (strstr (t.server.reason, "test client"));
  test_fini (&t);
}

static void
test_psk_wrong_key (void **state)
{
  struct tls_creds *cc = load (TLS_MODE_PSK, "wrong.psk", NULL, false);
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);

  expect_refused (cc, sc, "TLS handshake with test client failed", false);
  tls_creds_free (cc);
  tls_creds_free (sc);
}

static void
test_psk_other_user (void **state)
{
  /* bob's key is right, but this server accepts only alice. */
  struct tls_creds *cc = load (TLS_MODE_PSK, "keys.psk", "bob", false);
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", "alice", true);

  expect_refused (cc, sc, "unknown PSK identity \"bob\"", false);
  tls_creds_free (cc);
  tls_creds_free (sc);

  /* The same client against a server that takes every listed user. */
  cc = load (TLS_MODE_PSK, "bob.psk", NULL, false);
  sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  {
    struct test t;

    test_init (&t);
    t.client.on_ready = NULL;
    start_pair (&t, cc, sc);
    /* Stop once both are ready: close both from the loop. */
    ev_run (t.loop, EVRUN_ONCE);
    while (!(t.client.ready && t.server.ready) && !t.timed_out &&
           !t.client.closed && !t.server.closed)
      ev_run (t.loop, EVRUN_ONCE);
    assert_true (t.client.ready && t.server.ready);
    side_close (&t.client, true);
    side_close (&t.server, false);
    test_run (&t);
    test_fini (&t);
  }
  tls_creds_free (cc);
  tls_creds_free (sc);
}

/* A client speaking the wire protocol in the clear to a TLS server. */
static void
plaintext_hello (struct side *s)
{
  struct wire_hello h = { .image_size = IMAGE_SIZE, .block_size = 65536 };
  uint8_t out[WIRE_ENCODE_MAX];
  size_t n = wire_encode_hello (out, &h);

  assert_int_equal (stm_conn_send (s->conn, out, n, NULL, 0), 0);
}

static void
test_plaintext_client (void **state)
{
  struct tls_creds *cc = load (TLS_MODE_INSECURE, NULL, NULL, false);
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  struct test t;

  test_init (&t);
  t.client.on_ready = plaintext_hello;
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_true (t.client.ready);          /* insecure is ready at once */
  assert_false (t.server.ready);
  assert_true (t.server.closed);
  assert_non_null (strstr (t.server.reason, "TLS handshake with test client failed"));
  assert_true (t.client.closed);
  test_fini (&t);
  tls_creds_free (cc);
  tls_creds_free (sc);
}

static void
test_x509_rogue_client (void **state)
{
  struct tls_creds *cc, *sc;

  if (!have_certs)
    skip ();
  /* rogue/ holds a client certificate from another CA. */
  cc = load (TLS_MODE_X509, "rogue", NULL, false);
  sc = load (TLS_MODE_X509, "certs", NULL, true);
  expect_refused (cc, sc, "not trusted", true);
  tls_creds_free (cc);
  tls_creds_free (sc);
}

/* A raw GnuTLS client in a thread, for peers our code refuses to be. */
struct raw_client {
  int fd;
  const char *priority;
  bool psk;                    /* else: X.509 with a CA and no certificate */
  bool expect_accepted;        /* then close at once after the handshake */
  int result;                  /* < 0: it failed as it should */
};

static void *
raw_client_main (void *arg)
{
  struct raw_client *rc = arg;
  gnutls_session_t s;
  gnutls_psk_client_credentials_t psk = NULL;
  gnutls_certificate_credentials_t x509 = NULL;
  struct timeval tv = { .tv_sec = 5 };
  int r, tries;

  /* Blocking, but never for long. */
  fcntl (rc->fd, F_SETFL, fcntl (rc->fd, F_GETFL) & ~O_NONBLOCK);
  setsockopt (rc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (rc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  gnutls_init (&s, GNUTLS_CLIENT);
  gnutls_priority_set_direct (s, rc->priority, NULL);
  if (rc->psk) {
    gnutls_datum_t key = { (unsigned char *) KEY_ALICE, strlen (KEY_ALICE) };
    gnutls_psk_allocate_client_credentials (&psk);
    gnutls_psk_set_client_credentials (psk, "alice", &key, GNUTLS_PSK_KEY_HEX);
    gnutls_credentials_set (s, GNUTLS_CRD_PSK, psk);
  }
  else {
    gnutls_certificate_allocate_credentials (&x509);
    gnutls_certificate_set_x509_trust_file (x509, tmp_path ("certs/ca-cert.pem"),
                                            GNUTLS_X509_FMT_PEM);
    gnutls_credentials_set (s, GNUTLS_CRD_CERTIFICATE, x509);
  }
  gnutls_transport_set_int (s, rc->fd);
  gnutls_handshake_set_timeout (s, 5000);

  tries = 0;
  do
    r = gnutls_handshake (s);
  while (r < 0 && !gnutls_error_is_fatal (r) && ++tries < 10);
  if (r == 0 && rc->expect_accepted)
    gnutls_bye (s, GNUTLS_SHUT_WR);
  else if (r == 0) {
    /* The server may refuse us only after our side has finished. */
    char buf[64];

    tries = 0;
    do
      r = gnutls_record_recv (s, buf, sizeof buf);
    while (r < 0 && !gnutls_error_is_fatal (r) && ++tries < 2);
    if (r == 0)
      r = -1;                  /* closed on us: refused too */
  }
  fprintf (stderr, "  raw client: %s\n", r < 0 ? gnutls_strerror (r) : "accepted");
  rc->result = r;
  gnutls_deinit (s);
  if (psk)
    gnutls_psk_free_client_credentials (psk);
  if (x509)
    gnutls_certificate_free_credentials (x509);
  close (rc->fd);
  return NULL;
}

static void
raw_client_refused (struct tls_creds *sc, struct raw_client *rc)
{
  struct test t;
  pthread_t thread;
  int sfd;

  test_init (&t);
  tcp_pair (&rc->fd, &sfd);
  t.client.let_go = true;                /* not ours */
  t.server.conn = stm_conn_new (t.loop, sfd, sc, true, "raw client",
                                &callbacks, &t.server);
  assert_non_null (t.server.conn);
  assert_int_equal (pthread_create (&thread, NULL, raw_client_main, rc), 0);
  test_run (&t);
  assert_int_equal (pthread_join (thread, NULL), 0);
  assert_false (t.server.ready);
  assert_true (t.server.closed);
  assert_non_null (strstr (t.server.reason, "TLS handshake with raw client failed"));
  assert_true (rc->result < 0);
  test_fini (&t);
}

static void
test_psk_without_ecdhe_refused (void **state)
{
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  struct raw_client rc = {
    .priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK",
    .psk = true,
  };

  raw_client_refused (sc, &rc);
  tls_creds_free (sc);
}

static void
test_raw_psk_with_ecdhe_accepted (void **state)
{
  /* The control for the test above: the same raw client with ECDHE-PSK
   * is accepted, so the refusal is about the key exchange. */
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  struct raw_client rc = {
    .priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK",
    .psk = true,
    .expect_accepted = true,
  };
  struct test t;
  pthread_t thread;
  int sfd;

  test_init (&t);
  tcp_pair (&rc.fd, &sfd);
  t.client.let_go = true;
  t.server.conn = stm_conn_new (t.loop, sfd, sc, true, "raw client",
                                &callbacks, &t.server);
  assert_non_null (t.server.conn);
  assert_int_equal (pthread_create (&thread, NULL, raw_client_main, &rc), 0);
  test_run (&t);
  assert_int_equal (pthread_join (thread, NULL), 0);
  assert_int_equal (rc.result, 0);
  assert_true (t.server.ready);
  assert_true (t.server.closed);
  assert_string_equal (t.server.reason, "peer closed the connection");
  test_fini (&t);
  tls_creds_free (sc);
}

static void
test_x509_no_client_cert (void **state)
{
  struct tls_creds *sc;
  struct raw_client rc = {
    .priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3",
    .psk = false,
  };

  if (!have_certs)
    skip ();
  sc = load (TLS_MODE_X509, "certs", NULL, true);
  raw_client_refused (sc, &rc);
  tls_creds_free (sc);
}

/* A peer that connects and says nothing. */
static void
test_handshake_timeout (void **state)
{
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  struct test t;
  int cfd, sfd;
  ev_tstamp start;

  test_init (&t);
  tcp_pair (&cfd, &sfd);
  t.client.let_go = true;
  t.server.conn = stm_conn_new (t.loop, sfd, sc, true, "silent client",
                                &callbacks, &t.server);
  assert_non_null (t.server.conn);
  start = ev_time ();
  test_run (&t);
  assert_true (t.server.closed);
  assert_string_equal (t.server.reason, "TLS handshake with silent client timed out");
  assert_true (ev_time () - start >= 9.5);
  close (cfd);
  test_fini (&t);
  tls_creds_free (sc);
}

/*----------------------------------------------------------------------
 * Malformed input, closing inside callbacks
 */

static void
send_garbage (struct side *s)
{
  uint8_t frame[WIRE_HEADER_SIZE] = "NOT A STM FRAME";

  assert_int_equal (stm_conn_send (s->conn, frame, sizeof frame, NULL, 0), 0);
}

static void
malformed (enum tls_mode mode, const char *src_client, const char *src_server)
{
  struct tls_creds *cc = load (mode, src_client, NULL, false);
  struct tls_creds *sc = load (mode, src_server, NULL, true);
  struct test t;

  test_init (&t);
  t.client.on_ready = send_garbage;
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_true (t.server.closed);
  assert_non_null (strstr (t.server.reason, "malformed message from test client: "));
  /* The server said why before closing, and closed gracefully. */
  assert_int_equal (t.client.errors_received, 1);
  assert_true (t.client.closed);
  assert_string_equal (t.client.reason, "peer closed the connection");
  test_fini (&t);
  tls_creds_free (cc);
  tls_creds_free (sc);
}

static void
test_malformed_insecure (void **state)
{
  malformed (TLS_MODE_INSECURE, NULL, NULL);
}

static void
test_malformed_psk (void **state)
{
  malformed (TLS_MODE_PSK, "alice.psk", "keys.psk");
}

static void
close_on_first_message (struct side *s, const struct wire_msg *msg)
{
  /* msg must stay readable after the close, until we return. */
  assert_int_equal (msg->type, WIRE_SYNC);
  side_close (s, false);
  assert_int_equal (msg->u.sync.seq, 0);
}

static void
close_when_ready (struct side *s)
{
  side_close (s, false);
}

static void
test_close_inside_callbacks (void **state)
{
  struct tls_creds *cc = load (TLS_MODE_PSK, "alice.psk", NULL, false);
  struct tls_creds *sc = load (TLS_MODE_PSK, "keys.psk", NULL, true);
  struct test t;

  /* The server closes abruptly on the first of many messages. */
  test_init (&t);
  t.total = 2000;
  t.syncs = t.total;
  t.send_buf = malloc (DATA_LEN);
  assert_non_null (t.send_buf);
  t.client.on_ready = rt_produce;
  t.client.on_drain = rt_produce;
  t.server.on_message = close_on_first_message;
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_true (t.server.let_go);
  assert_false (t.server.closed);
  assert_int_equal (t.server.messages, 1);
  assert_true (t.client.closed);
  test_fini (&t);

  /* The client closes as soon as it is ready. */
  test_init (&t);
  t.client.on_ready = close_when_ready;
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_true (t.client.let_go);
  assert_false (t.client.closed);
  assert_true (t.server.closed);
  test_fini (&t);

  tls_creds_free (cc);
  tls_creds_free (sc);
}

/* A receiver refusing a sender that floods it (as stm-recv answers a
 * second sender ERROR busy): the refusal must arrive, not a reset. */
static void
flood_produce (struct side *s)
{
  struct test *t = s->t;

  while (t->next < t->total && !stm_conn_output_full (s->conn)) {
    uint8_t head[WIRE_ENCODE_MAX];
    size_t n = wire_encode_data_header (head, (uint64_t) t->next * DATA_LEN,
                                        DATA_LEN);

    t->next++;
    assert_int_equal (stm_conn_send (s->conn, head, n, t->send_buf, DATA_LEN), 0);
  }
}

static void
refuse_busy (struct side *s, const struct wire_msg *msg)
{
  uint8_t out[WIRE_ENCODE_TEXT_MAX];
  size_t n = wire_encode_error (out, WIRE_ERR_BUSY, "another sender is active");

  assert_int_equal (stm_conn_send (s->conn, out, n, NULL, 0), 0);
  side_close (s, true);
}

static void
give_up_on_error (struct side *s, const struct wire_msg *msg)
{
  assert_int_equal (msg->type, WIRE_ERROR);
  assert_int_equal (msg->u.error.code, WIRE_ERR_BUSY);
  side_close (s, false);
}

static void
refuse_while_flooded (enum tls_mode mode, const char *src_client,
                      const char *src_server)
{
  struct tls_creds *cc = load (mode, src_client, NULL, false);
  struct tls_creds *sc = load (mode, src_server, NULL, true);
  struct test t;

  test_init (&t);
  t.total = 16;                                 /* 128 MiB */
  t.send_buf = calloc (1, DATA_LEN);
  assert_non_null (t.send_buf);
  t.client.on_ready = flood_produce;
  t.client.on_drain = flood_produce;
  t.client.on_message = give_up_on_error;
  t.server.on_message = refuse_busy;
  start_pair (&t, cc, sc);
  test_run (&t);
  assert_true (t.server.let_go);
  assert_int_equal (t.server.messages, 1);
  assert_true (t.client.let_go);
  assert_false (t.client.closed);
  assert_int_equal (t.client.errors_received, 1);
  test_fini (&t);
  tls_creds_free (cc);
  tls_creds_free (sc);
}

static void
test_refuse_while_flooded_psk (void **state)
{
  refuse_while_flooded (TLS_MODE_PSK, "alice.psk", "keys.psk");
}

static void
test_refuse_while_flooded_insecure (void **state)
{
  refuse_while_flooded (TLS_MODE_INSECURE, NULL, NULL);
}

/*----------------------------------------------------------------------
 * Credentials and TCP errors
 */

static void
test_creds_errors (void **state)
{
  struct tls_options o = { .mode = TLS_MODE_PSK };
  const char *text;

  o.psk_file = tmp_path ("bad.psk");
  capture_begin ();
  assert_null (tls_creds_load (&o, true));
  text = capture_end ();
  assert_non_null (strstr (text, "bad.psk:3: the key of user \"carol\""));

  o.psk_file = tmp_path ("missing.psk");
  capture_begin ();
  assert_null (tls_creds_load (&o, false));
  text = capture_end ();
  assert_non_null (strstr (text, "missing.psk"));
  assert_non_null (strstr (text, "No such file"));

  o.psk_file = tmp_path ("alice.psk");
  o.psk_user = "mallory";
  capture_begin ();
  assert_null (tls_creds_load (&o, false));
  text = capture_end ();
  assert_non_null (strstr (text, "no key for user \"mallory\""));

  o.mode = TLS_MODE_X509;
  o.certs_dir = tmp_path ("nowhere");
  capture_begin ();
  assert_null (tls_creds_load (&o, true));
  text = capture_end ();
  assert_non_null (strstr (text, "nowhere/ca-cert.pem"));
}

/* tls_psk_file_identity on file with user gives want, or with want NULL
 * fails with a message containing error. */
static void
check_identity (const char *file, const char *user, size_t len,
                const char *want, const char *error)
{
  char out[64] = "";
  int r;

  assert_true (len <= sizeof out);
  capture_begin ();
  r = tls_psk_file_identity (tmp_path (file), user, out, len);
  const char *text = capture_end ();
  if (want != NULL) {
    assert_int_equal (r, 0);
    assert_string_equal (out, want);
  }
  else {
    assert_int_equal (r, -1);
    assert_non_null (strstr (text, error));
  }
}

/* The identity stm-send names in a forward-flip URI comes from the same
 * reader as the keys, with the same checks. */
static void
test_psk_file_identity (void **state)
{
  check_identity ("keys.psk", NULL, 64, "alice", NULL);
  check_identity ("keys.psk", "bob", 64, "bob", NULL);
  /* Blank lines, a CR before each newline and no newline at the end. */
  write_file ("crlf.psk", "\r\n\ncarol:" KEY_BOB "\r\ndave:" KEY_ALICE);
  check_identity ("crlf.psk", NULL, 64, "carol", NULL);
  check_identity ("crlf.psk", "dave", 64, "dave", NULL);

  check_identity ("keys.psk", "mallory", 64, NULL,
                  "no key for user \"mallory\"");
  check_identity ("bad.psk", NULL, 64, NULL,
                  "bad.psk:3: the key of user \"carol\"");
  check_identity ("keys.psk", NULL, 3, NULL, "too long");
}

static void
test_tcp_errors (void **state)
{
  uint16_t port = 0;
  int lfd, fd;
  const char *text;

  /* A port that was just free: nothing listens there. */
  lfd = tcp_listen ("127.0.0.1", 0, &port);
  assert_true (lfd >= 0);
  close (lfd);
  capture_begin ();
  fd = tcp_connect ("127.0.0.1", port, 2000);
  text = capture_end ();
  assert_int_equal (fd, -1);
  assert_non_null (strstr (text, "127.0.0.1:"));
  assert_non_null (strstr (text, "refused"));

  /* Listening on a port in use. */
  lfd = tcp_listen ("127.0.0.1", 0, &port);
  assert_true (lfd >= 0);
  capture_begin ();
  fd = tcp_listen ("127.0.0.1", port, NULL);
  text = capture_end ();
  assert_int_equal (fd, -1);
  assert_non_null (strstr (text, "in use"));
  close (lfd);

  /* Any address, chosen port. */
  lfd = tcp_listen ("", 0, &port);
  assert_true (lfd >= 0);
  assert_true (port != 0);
  fd = tcp_connect ("127.0.0.1", port, 2000);
  assert_true (fd >= 0);
  close (fd);
  close (lfd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_psk_round_trip),
    cmocka_unit_test (test_insecure_round_trip),
    cmocka_unit_test (test_x509_round_trip),
    cmocka_unit_test (test_psk_ping_pong),
    cmocka_unit_test (test_insecure_ping_pong),
    cmocka_unit_test (test_psk_wrong_key),
    cmocka_unit_test (test_psk_other_user),
    cmocka_unit_test (test_plaintext_client),
    cmocka_unit_test (test_psk_without_ecdhe_refused),
    cmocka_unit_test (test_raw_psk_with_ecdhe_accepted),
    cmocka_unit_test (test_x509_rogue_client),
    cmocka_unit_test (test_x509_no_client_cert),
    cmocka_unit_test (test_malformed_insecure),
    cmocka_unit_test (test_malformed_psk),
    cmocka_unit_test (test_close_inside_callbacks),
    cmocka_unit_test (test_refuse_while_flooded_psk),
    cmocka_unit_test (test_refuse_while_flooded_insecure),
    cmocka_unit_test (test_creds_errors),
    cmocka_unit_test (test_psk_file_identity),
    cmocka_unit_test (test_tcp_errors),
    cmocka_unit_test (test_handshake_timeout),
  };

  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
