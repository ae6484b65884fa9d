/* SPDX-License-Identifier: BSD-3-Clause */
/* stm integration tests: a small consumer of the migrate filter's mirror
 * ring, standing in for stm-send so that the filter's side of mirroring
 * can be tested before the sender takes the ring.
 *
 *   mirror-consumer --control PATH --uri NBD-URI --copy FILE --until FILE
 *                   [--ring BYTES] [--sync MS] [--wait MS] [--stall-ms MS]
 *                   [--no-ack] [--ack-delay-ms MS]
 *                   [--status-out FILE] [--chunk-delay-ms MS]
 *                   [--no-copy] [--discard] [--verbose] [--clock-after-read]
 *                   [--expect-flip-refused]
 *
 * It owns the migration: MIRROR START (taking the ring's descriptors from
 * the reply), SNAPSHOT (every block: the full pass), then a copy pass
 * through the filter into FILE, chunk by chunk, applying the ring's
 * records in their order around each chunk by the rule of
 * docs/architecture.md ("Mirroring"): a chunk's data goes in at the ring
 * position sampled before its read was issued.  Then it applies records
 * as they come until the --until file exists, then FREEZE, drains the
 * ring, writes STATUS to --status-out, MIRROR STOP (records not made
 * durable become dirty), SNAPSHOT and copies what is dirty (the writes
 * that fell back), THAW, and exits 0.  FILE then equals the source as it
 * was at the freeze.
 *
 * --wait: MIRROR START ... wait MS (a write that finds the ring full
 * waits that long for room before it falls back to dirty).  --stall-ms:
 * take no record for that long after MIRROR START (the ring fills,
 * writes fall back to dirty).  --no-ack: never report a record durable
 * (mirror-sync writes time out; the ring fills).  --ack-delay-ms: sleep
 * that long before each report of records durable, like a destination
 * that takes that long to make a batch durable (a consumer that keeps
 * up, but slower than the guest writes).  "Durable" here
 * means written to FILE: the copy is the destination.  --chunk-delay-ms:
 * pause after each chunk of the copy pass, so that it spans the guest's
 * writes and its reads race them.  For bench/mirror-overhead.sh:
 * --no-copy makes no copy pass (no SNAPSHOT, no reads: only the ring is
 * consumed), --discard takes records without writing them to FILE.  For
 * test-mirror-order.sh: --verbose says when each copy read is issued;
 * --clock-after-read samples the clock after each read instead of
 * before, which breaks the ordering rule.  --expect-flip-refused: after
 * the drain, FLIP fence must be refused (records not durable: use with
 * --no-ack) and leave the source frozen.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#include "control_proto.h"
#include "mirror_consumer.h"
#include "mirror_ring.h"

#define CHUNK (256 * 1024)

static struct mirror_consumer cons;
static int copy_fd = -1;
static int ctl_fd = -1;
static bool no_ack;
static bool discard;
static bool verbose;
static bool clock_after_read;
static bool expect_flip_refused;
static uint64_t applied_entries;
static long chunk_delay_ms;
static long ack_delay_ms;

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

  nanosleep (&ts, NULL);
}

static void __attribute__((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  fprintf (stderr, "mirror-consumer: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  exit (1);
}

/* --- the control connection ---------------------------------------- */

static char inbuf[65536];
static size_t inlen;

/* Read one reply line into line (without the newline), taking any
 * descriptors that come with it. */
static void
read_line (char *line, size_t size, int *fds, unsigned *nfds)
{
  for (;;) {
    char *nl = memchr (inbuf, '\n', inlen);
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE (3 * sizeof (int))];
    } control;
    struct iovec iov = { inbuf + inlen, sizeof inbuf - inlen };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf,
                          .msg_controllen = sizeof control.buf };
    ssize_t n;

    if (nl != NULL) {
      size_t len = (size_t) (nl - inbuf);

      if (len >= size)
        die ("control reply too long");
      memcpy (line, inbuf, len);
      line[len] = '\0';
      inlen -= len + 1;
      memmove (inbuf, nl + 1, inlen);
      return;
    }
    n = recvmsg (ctl_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0)
      die ("control socket: %s", n == 0 ? "closed" : strerror (errno));
    for (struct cmsghdr *c = CMSG_FIRSTHDR (&msg); c != NULL;
         c = CMSG_NXTHDR (&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
          fds != NULL) {
        *nfds = (unsigned) ((c->cmsg_len - CMSG_LEN (0)) / sizeof (int));
        if (*nfds > 3)
          die ("%u descriptors passed", *nfds);
        memcpy (fds, CMSG_DATA (c), *nfds * sizeof (int));
      }
    }
    inlen += (size_t) n;
  }
}

static void
command (const char *request, char *reply, size_t size)
{
  size_t len = strlen (request);

  if (write (ctl_fd, request, len) != (ssize_t) len ||
      write (ctl_fd, "\n", 1) != 1)
    die ("sending %s: %s", request, strerror (errno));
  read_line (reply, size, NULL, NULL);
  if (!control_reply_is_ok (reply))
    die ("%s answered: %s", request, reply);
}

static void
connect_control (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  ctl_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (ctl_fd == -1 ||
      connect (ctl_fd, (struct sockaddr *) &addr, sizeof addr) == -1)
    die ("connecting to %s: %s", path, strerror (errno));
}

/* --- records ------------------------------------------------------- */

static void
write_copy (const void *buf, size_t len, uint64_t offset)
{
  if (pwrite (copy_fd, buf, len, (off_t) offset) != (ssize_t) len)
    die ("writing the copy at %" PRIu64 ": %s", offset, strerror (errno));
}

static void
apply (const struct mirror_entry *e)
{
  static const uint8_t zeroes[CHUNK];

  /* --discard: only the ring's cost is measured. */
  if (!discard && e->type == MIRROR_WRITE) {
    write_copy (e->data[0], e->data_len[0], e->offset);
    if (e->data_len[1] > 0)
      write_copy (e->data[1], e->data_len[1], e->offset + e->data_len[0]);
  }
  else if (!discard) {
    for (uint64_t done = 0; done < e->length; ) {
      uint64_t n = e->length - done < CHUNK ? e->length - done : CHUNK;

      write_copy (zeroes, (size_t) n, e->offset + done);
      done += n;
    }
  }
  applied_entries++;
}

/* Wait for the next record.  Sleeping on the eventfd whenever the ring is
 * empty would cost a consumer that keeps up a system call on every guest
 * write (the writer signals a sleeping consumer), and waking often costs
 * every process on the machine context switches: in mirror mode, nap
 * for a millisecond or two first, then take what came in one go.  (With
 * naps of 100 us, nbdkit spent 6 us more CPU per 4k write than without
 * a ring, mostly switching tasks; with 1 ms, 1 to 2 us.)  In
 * mirror-sync every write waits for us, so we sleep at once and are
 * woken at once. */
static void
await_records (int timeout_ms)
{
  for (int i = 0; i < 2 && !cons.ring.hdr->sync; i++) {
    struct mirror_entry e;
    struct timespec ts = { 0, 1000 * 1000 };

    if (mirror_ring_peek (&cons.ring, cons.next_pos, &e) != 0 ||
        mirror_consumer_stopped (&cons))
      return;
    nanosleep (&ts, NULL);
  }
  if (mirror_consumer_wait (&cons, timeout_ms) == -1)
    die ("waiting for the ring: %s", strerror (errno));
}

/* Report what has been applied: taken, and (the copy being the
 * destination) durable, which frees the ring's space. */
static void
report_applied (void)
{
  mirror_consumer_taken (&cons, cons.next_pos, applied_entries);
  if (no_ack)
    return;
  /* Only a report that frees space costs the delay. */
  if (ack_delay_ms > 0 &&
      __atomic_load_n (&cons.page->durable, __ATOMIC_RELAXED) != cons.next_pos)
    sleep_ms (ack_delay_ms);
  mirror_consumer_durable (&cons, cons.next_pos, applied_entries);
}

/* Apply records: those before the ring's position `until` (waiting for
 * records reserved but not committed yet), or, when all_committed, every
 * record committed so far. */
static void
apply_records (uint64_t until, bool all_committed)
{
  for (;;) {
    struct mirror_entry e;
    int r;

    if (!all_committed && cons.next_pos >= until) {
      report_applied ();
      return;
    }
    r = mirror_consumer_next (&cons, &e);
    if (r == -1)
      die ("the ring is corrupt at %" PRIu64 ": %s", cons.next_pos,
           strerror (errno));
    if (r == 1) {
      apply (&e);
      /* In batches: each report may wake writers with a system call. */
      if (applied_entries % 64 == 0)
        report_applied ();
      continue;
    }
    report_applied ();
    if (all_committed)
      return;
    await_records (100);
  }
}

/* --- copying through the filter ------------------------------------ */

static void
copy_range (struct nbd_handle *nbd, uint64_t offset, uint64_t length)
{
  static uint8_t buf[CHUNK];

  for (uint64_t done = 0; done < length; ) {
    uint64_t n = length - done < CHUNK ? length - done : CHUNK;
    /* The ordering rule: the read's data goes in at the ring's clock as
     * it was before the read was issued.  Records before it are older
     * than what the read sees; records after it may be newer. */
    uint64_t clock = mirror_consumer_clock (&cons);

    if (verbose) {
      printf ("reading %" PRIu64 "+%" PRIu64 " at clock %" PRIu64 "\n",
              offset + done, n, clock);
      fflush (stdout);
    }
    if (nbd_pread (nbd, buf, (size_t) n, offset + done, 0) == -1)
      die ("reading the source at %" PRIu64 ": %s", offset + done,
           nbd_get_error ());
    /* --clock-after-read breaks the rule on purpose, so that a test can
     * show that it forces the race the rule is for. */
    if (clock_after_read)
      clock = mirror_consumer_clock (&cons);
    apply_records (clock, false);
    write_copy (buf, (size_t) n, offset + done);
    done += n;
    if (chunk_delay_ms > 0)
      sleep_ms (chunk_delay_ms);
  }
}

/* SNAPSHOT, then copy every extent it lists. */
static void
snapshot_and_copy (struct nbd_handle *nbd, uint64_t *bytes)
{
  char line[4096];
  uint64_t offset, length;
  uint64_t (*extents)[2] = NULL;
  size_t n = 0, cap = 0;

  command ("SNAPSHOT", line, sizeof line);
  for (;;) {
    int r;

    read_line (line, sizeof line, NULL, NULL);
    r = control_parse_extent_line (line, &offset, &length);
    if (r == -1)
      die ("bad SNAPSHOT line: %s", line);
    if (r == 0)
      break;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      extents = realloc (extents, cap * sizeof *extents);
      if (extents == NULL)
        die ("out of memory");
    }
    extents[n][0] = offset;
    extents[n][1] = length;
    n++;
  }
  *bytes = 0;
  for (size_t i = 0; i < n; i++) {
    copy_range (nbd, extents[i][0], extents[i][1]);
    *bytes += extents[i][1];
  }
  free (extents);
}

/* MIRROR START, taking the ring's descriptors from the reply, and map
 * the ring. */
static void
start_mirror (uint64_t ring, uint64_t sync_ms, uint64_t wait_ms)
{
  char line[4096], request[128];
  int fds[3];
  unsigned nfds = 0;
  int n;

  n = snprintf (request, sizeof request, "MIRROR START %" PRIu64, ring);
  if (sync_ms > 0)
    n += snprintf (request + n, sizeof request - (size_t) n,
                   " sync %" PRIu64, sync_ms);
  if (wait_ms > 0)
    snprintf (request + n, sizeof request - (size_t) n,
              " wait %" PRIu64, wait_ms);
  if (write (ctl_fd, request, strlen (request)) == -1 ||
      write (ctl_fd, "\n", 1) != 1)
    die ("sending MIRROR START: %s", strerror (errno));
  read_line (line, sizeof line, fds, &nfds);
  if (!control_reply_is_ok (line) || nfds != 3)
    die ("MIRROR START answered '%s' with %u descriptors", line, nfds);
  /* The ring is the filter's alone to write: its memfd is sealed. */
  {
    void *w = mmap (NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);

    if (w != MAP_FAILED)
      die ("the ring's memfd can be mapped writable by its consumer");
  }
  if (mirror_consumer_map (&cons, fds[0], fds[1], fds[2]) == -1)
    die ("mapping the ring: %s", strerror (errno));
  printf ("%s\n", line);
  fflush (stdout);
}

int
main (int argc, char *argv[])
{
  const char *control = NULL, *uri = NULL, *copy = NULL, *until = NULL;
  const char *status_out = NULL;
  bool no_copy = false;
  uint64_t ring = 8 << 20, sync_ms = 0, wait_ms = 0, stall_ms = 0, bytes;
  static const struct option opts[] = {
    { "control", required_argument, NULL, 'c' },
    { "uri", required_argument, NULL, 'u' },
    { "copy", required_argument, NULL, 'o' },
    { "until", required_argument, NULL, 't' },
    { "ring", required_argument, NULL, 'r' },
    { "sync", required_argument, NULL, 's' },
    { "wait", required_argument, NULL, 'w' },
    { "ack-delay-ms", required_argument, NULL, 'a' },
    { "stall-ms", required_argument, NULL, 'S' },
    { "no-ack", no_argument, NULL, 'n' },
    { "status-out", required_argument, NULL, 'O' },
    { "chunk-delay-ms", required_argument, NULL, 'd' },
    { "no-copy", no_argument, NULL, 'N' },
    { "discard", no_argument, NULL, 'D' },
    { "verbose", no_argument, NULL, 'v' },
    { "clock-after-read", no_argument, NULL, 'A' },
    { "expect-flip-refused", no_argument, NULL, 'F' },
    { NULL, 0, NULL, 0 },
  };
  char line[4096];
  int c;
  struct nbd_handle *nbd;
  int64_t size;
  FILE *fp;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'c': control = optarg; break;
    case 'u': uri = optarg; break;
    case 'o': copy = optarg; break;
    case 't': until = optarg; break;
    case 'r': ring = strtoull (optarg, NULL, 10); break;
    case 's': sync_ms = strtoull (optarg, NULL, 10); break;
    case 'w': wait_ms = strtoull (optarg, NULL, 10); break;
    case 'a': ack_delay_ms = strtol (optarg, NULL, 10); break;
    case 'S': stall_ms = strtoull (optarg, NULL, 10); break;
    case 'n': no_ack = true; break;
    case 'O': status_out = optarg; break;
    case 'd': chunk_delay_ms = strtol (optarg, NULL, 10); break;
    case 'N': no_copy = true; break;
    case 'D': discard = true; break;
    case 'v': verbose = true; break;
    case 'A': clock_after_read = true; break;
    case 'F': expect_flip_refused = true; break;
    default: exit (2);
    }
  }
  if (!control || !uri || !copy || !until)
    die ("usage: --control PATH --uri URI --copy FILE --until FILE ...");

  connect_control (control);
  start_mirror (ring, sync_ms, wait_ms);

  nbd = nbd_create ();
  if (nbd == NULL || nbd_connect_uri (nbd, uri) == -1)
    die ("connecting to %s: %s", uri, nbd_get_error ());
  size = nbd_get_size (nbd);
  copy_fd = open (copy, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (size < 0 || copy_fd == -1 || ftruncate (copy_fd, size) == -1)
    die ("preparing %s: %s", copy, strerror (errno));

  if (stall_ms > 0)
    sleep_ms ((long) stall_ms);
  if (!no_copy) {
    snapshot_and_copy (nbd, &bytes);
    printf ("full pass: %" PRIu64 " bytes, %" PRIu64 " records so far\n",
            bytes, applied_entries);
    fflush (stdout);
  }

  while (access (until, F_OK) == -1) {
    apply_records (0, true);
    await_records (50);
  }

  command ("FREEZE", line, sizeof line);
  /* Its drain_ms tells how long the writes in flight held the freeze. */
  printf ("%s\n", line);
  fflush (stdout);
  /* Frozen and drained: every record is committed, and the head is final. */
  apply_records (mirror_consumer_clock (&cons), false);
  command ("STATUS", line, sizeof line);
  if (status_out != NULL) {
    fp = fopen (status_out, "w");
    if (fp == NULL || fprintf (fp, "%s\n", line) < 0 || fclose (fp) != 0)
      die ("writing %s: %s", status_out, strerror (errno));
  }
  /* With records not durable the source must refuse to flip, and stay
   * frozen. */
  if (expect_flip_refused) {
    const char *fence = "FLIP fence\n";

    if (write (ctl_fd, fence, strlen (fence)) == -1)
      die ("sending FLIP fence: %s", strerror (errno));
    read_line (line, sizeof line, NULL, NULL);
    if (strncmp (line, "ERR EBUSY FLIP refused: ", 24) != 0 ||
        strstr (line, "mirrored records") == NULL)
      die ("FLIP fence with records not durable answered: %s", line);
    printf ("%s\n", line);
    command ("STATUS", line, sizeof line);
    if (strstr (line, " state=frozen ") == NULL)
      die ("not frozen after the refused FLIP: %s", line);
  }
  command ("MIRROR STOP", line, sizeof line);
  printf ("%s\n", line);
  if (!no_copy) {
    snapshot_and_copy (nbd, &bytes);
    printf ("final pass: %" PRIu64 " bytes dirty, %" PRIu64
            " records applied\n", bytes, applied_entries);
  }
  if (fsync (copy_fd) == -1)
    die ("fsync %s: %s", copy, strerror (errno));
  command ("THAW", line, sizeof line);
  nbd_close (nbd);
  mirror_consumer_unmap (&cons);
  close (copy_fd);
  close (ctl_fd);
  return 0;
}
