/* SPDX-License-Identifier: BSD-3-Clause */
/* stm migrate filter: forwarding requests to the destination (see
 * forward.h).
 *
 * The connections are opened with libnbd's asynchronous connect and
 * driven by one bounded poll over their sockets, so that an unreachable
 * destination cannot hold the control thread (and with it the freeze
 * timeout) for as long as TCP keeps trying.  The first is opened alone,
 * while the guest is frozen; the others (forward_add_handles) together,
 * once it runs again, so that their handshakes (TLS with X.509 costs about
 * 100 ms each here) overlap.  The data path uses libnbd's synchronous
 * calls.  A capability the destination lacks is worked around
 * where the NBD meaning allows it (FUA becomes a flush, zero becomes
 * writes of zeroes, trim and cache are hints and may do nothing), and
 * refused with ENOTSUP where it does not (fast zero).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnbd.h>
#include <nbdkit-filter.h>

#include "clock.h"
#include "forward.h"
#include "time_units.h"

/* The longest connect_all waits in one poll. */
#define CONNECT_POLL_MAX_MS 1000
/* Largest write of zeroes sent at once when the destination cannot zero. */
#define ZERO_CHUNK (64 * 1024)

struct forward {
  struct nbd_handle *handles[FORWARD_HANDLES];
  unsigned nhandles;              /* published with release stores */
  unsigned next;                 /* round-robin counter, atomic */
  bool can_fua, can_zero, can_fast_zero, can_trim, can_flush, can_cache;
  bool can_multi_conn;
  char *uri;                     /* the destination, for messages */

  /* A destination that goes away fails every request the guest sends
   * from then on; one message per request would flood the log.  failed()
   * logs the first failure, then at most one message a second that counts
   * the failures in between. */
  pthread_mutex_t failure_log_lock;  /* guards the two fields below */
  uint64_t failures_unlogged;    /* failures since the last message */
  uint64_t failure_logged_ns;    /* monotonic time of the last; 0 = none */
};

static const char zeroes[ZERO_CHUNK];

/* libnbd writes its debug messages (enabled by LIBNBD_DEBUG=1 in the
 * environment) to stderr unless it is given a callback.  The filter says
 * everything through nbdkit, so that --log, -f and -v decide where it goes
 * and nothing reaches a stderr that a daemonized nbdkit has closed: these
 * become nbdkit debug messages too. */
static int
libnbd_debug (void *user_data, const char *context, const char *msg)
{
  nbdkit_debug ("migrate: forward: libnbd: %s: %s", context, msg);
  return 0;
}

/* Start connecting one handle to uri.  NULL with errbuf filled. */
static struct nbd_handle *
start_one (const char *uri, char *errbuf, size_t errlen)
{
  struct nbd_handle *h = nbd_create ();

  if (h == NULL) {
    snprintf (errbuf, errlen, "cannot create a libnbd handle: %s",
              nbd_get_error ());
    return NULL;
  }
  nbd_set_handle_name (h, "migrate-forward");
  /* The URI names local credential files (tls-psk-file=,
   * tls-certificates=), which libnbd only reads when allowed to. */
  if (nbd_set_debug_callback (h, (nbd_debug_callback) {
        .callback = libnbd_debug }) == -1 ||
      nbd_set_uri_allow_local_file (h, true) == -1 ||
      nbd_aio_connect_uri (h, uri) == -1) {
    snprintf (errbuf, errlen, "%s", nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  return h;
}

static bool
connecting (struct nbd_handle *h)
{
  return nbd_aio_is_connecting (h) || nbd_aio_is_created (h);
}

/* Drive the handles' connections (TCP, TLS handshake, NBD negotiation)
 * together, with one poll over all their sockets, until each is ready or
 * dead or the deadline passes: the handshakes overlap instead of adding
 * up, which matters because the guest is frozen meanwhile.  A readable
 * cancel_fd (if not -1) stops it at once; returns true then. */
static bool
connect_all (struct nbd_handle **h, unsigned n, uint64_t deadline_ns,
             int cancel_fd)
{
  for (;;) {
    struct pollfd fds[FORWARD_HANDLES + 1];
    unsigned idx[FORWARD_HANDLES], nfds = 0;
    uint64_t left_ns = deadline_left_ns (deadline_ns);

    for (unsigned i = 0; i < n; i++) {
      if (h[i] == NULL || !connecting (h[i]))
        continue;
      int fd = nbd_aio_get_fd (h[i]);
      unsigned dir = nbd_aio_get_direction (h[i]);
      if (fd == -1)
        continue;
      fds[nfds].fd = fd;
      fds[nfds].events = ((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                         ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0);
      fds[nfds].revents = 0;
      idx[nfds++] = i;
    }
    if (nfds == 0 || left_ns == 0)
      return false;
    if (cancel_fd >= 0)
      fds[nfds] = (struct pollfd) { .fd = cancel_fd, .events = POLLIN };
    /* Wake at least once a second to look at every handle's state
     * again, however far away the deadline is. */
    int left_ms = poll_timeout_ms (left_ns);
    if (poll (fds, nfds + (cancel_fd >= 0), left_ms > CONNECT_POLL_MAX_MS
              ? CONNECT_POLL_MAX_MS : left_ms) == -1) {
      if (errno == EINTR)
        continue;
      return false;
    }
    if (cancel_fd >= 0 && fds[nfds].revents != 0)
      return true;
    for (unsigned k = 0; k < nfds; k++) {
      struct nbd_handle *hh = h[idx[k]];
      if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
        nbd_aio_notify_read (hh);
      else if (fds[k].revents & POLLOUT)
        nbd_aio_notify_write (hh);
    }
  }
}

struct forward *
forward_connect (const char *uri, uint64_t expected_size, uint64_t timeout_ns,
                 const char *budget, int cancel_fd,
                 char *errbuf, size_t errlen)
{
  struct forward *f = calloc (1, sizeof *f);
  uint64_t deadline = deadline_after_ns (timeout_ns);
  struct nbd_handle *all[FORWARD_HANDLES] = { NULL };
  struct nbd_handle *h = NULL;
  int64_t size;

  if (f == NULL || (f->uri = strdup (uri)) == NULL) {
    free (f);
    snprintf (errbuf, errlen, "out of memory");
    return NULL;
  }
  pthread_mutex_init (&f->failure_log_lock, NULL);
  /* Only the first handle now: the guest is frozen until it is ready, and
   * a TLS handshake is mostly CPU (about 100 ms with X.509 here), so more
   * handles would not overlap but add up.  forward_add_handles opens the
   * others once the guest runs again. */
  all[0] = start_one (uri, errbuf, errlen);
  if (all[0] == NULL) {
    free (f);
    return NULL;
  }
  if (connect_all (all, 1, deadline, cancel_fd)) {
    snprintf (errbuf, errlen, "the connection was called off before it "
              "was ready");
    goto fail;
  }

  if (!nbd_aio_is_ready (all[0])) {
    const char *e = nbd_get_error ();
    /* Name the budget (the caller's words for the setting that bounds
     * it), so that the user knows which setting to raise. */
    if (connecting (all[0]))
      snprintf (errbuf, errlen, "no connection within the %" PRIu64
                " ms %s", timeout_ns / NS_PER_MS, budget);
    else
      snprintf (errbuf, errlen, "%s", e ? e : "the connection failed during the handshake");
    goto fail;
  }
  h = all[0];
  size = nbd_get_size (h);
  if (size < 0 || (uint64_t) size != expected_size) {
    snprintf (errbuf, errlen, "the export has %" PRId64 " bytes, not the %"
              PRIu64 " of this image", size, expected_size);
    goto fail;
  }
  if (nbd_is_read_only (h) == 1) {
    snprintf (errbuf, errlen, "the export is read-only");
    goto fail;
  }
  f->can_fua = nbd_can_fua (h) == 1;
  f->can_zero = nbd_can_zero (h) == 1;
  f->can_fast_zero = nbd_can_fast_zero (h) == 1;
  f->can_trim = nbd_can_trim (h) == 1;
  f->can_flush = nbd_can_flush (h) == 1;
  f->can_cache = nbd_can_cache (h) == 1;
  f->can_multi_conn = nbd_can_multi_conn (h) == 1;
  f->handles[0] = h;
  f->nhandles = 1;
  return f;

 fail:
  for (unsigned i = 0; i < FORWARD_HANDLES; i++)
    if (all[i] != NULL)
      nbd_close (all[i]);
  pthread_mutex_destroy (&f->failure_log_lock);
  free (f->uri);
  free (f);
  return NULL;
}

void
forward_add_handles (struct forward *f, const char *uri, uint64_t timeout_ns,
                     int cancel_fd)
{
  struct nbd_handle *more[FORWARD_HANDLES] = { NULL };
  unsigned n = FORWARD_HANDLES - 1;

  /* Without multi-conn the NBD protocol promises nothing across
   * connections: a write acknowledged on one need not be visible to a read
   * on another, nor made durable by a flush on another.  Spreading the
   * guest's requests over several would then break its consistency, so
   * such a destination gets the one connection only. */
  if (!f->can_multi_conn) {
    nbdkit_debug ("migrate: forward: %s does not advertise multi-conn; "
                  "forwarding over one connection", uri);
    return;
  }

  for (unsigned i = 0; i < n; i++) {
    char ignored[256];
    more[i] = start_one (uri, ignored, sizeof ignored);
  }
  if (connect_all (more, n, deadline_after_ns (timeout_ns), cancel_fd))
    nbdkit_debug ("migrate: forward: extra connections to %s called off",
                  uri);
  for (unsigned i = 0; i < n; i++) {
    if (more[i] == NULL)
      continue;
    if (!nbd_aio_is_ready (more[i]) ||
        nbd_get_size (more[i]) != nbd_get_size (f->handles[0])) {
      nbdkit_debug ("migrate: forward: an extra connection failed: %s",
                    nbd_get_error () ? nbd_get_error () : "not ready in time");
      nbd_close (more[i]);
      continue;
    }
    /* Fill the slot, then publish it: a worker that sees the new count
     * sees the handle. */
    unsigned k = f->nhandles;
    f->handles[k] = more[i];
    __atomic_store_n (&f->nhandles, k + 1, __ATOMIC_RELEASE);
  }
}

/* One idle handle still ready?  Nothing may be waiting to be read on an
 * idle NBD connection except what libnbd consumes by itself (TLS records
 * that carry no data, such as session tickets): let libnbd read whatever
 * is there, and see whether the handle is still ready afterwards.  A
 * server that closed or died shows as end of file, and the handle dies. */
static bool
handle_usable (struct nbd_handle *h)
{
  struct pollfd pfd;

  if (!nbd_aio_is_ready (h) || nbd_aio_in_flight (h) != 0)
    return false;
  pfd = (struct pollfd) { .fd = nbd_aio_get_fd (h), .events = POLLIN };
  if (pfd.fd == -1 || poll (&pfd, 1, 0) == -1)
    return false;
  if (pfd.revents & (POLLERR | POLLNVAL))
    return false;
  if (pfd.revents & (POLLIN | POLLHUP))
    nbd_aio_notify_read (h);
  return nbd_aio_is_ready (h);
}

bool
forward_usable (struct forward *f)
{
  unsigned n = forward_handles (f);

  for (unsigned i = 0; i < n; i++)
    if (!handle_usable (f->handles[i]))
      return false;
  return n > 0;
}

unsigned
forward_handles (const struct forward *f)
{
  return __atomic_load_n (&f->nhandles, __ATOMIC_ACQUIRE);
}

void
forward_close (struct forward *f)
{
  if (f == NULL)
    return;
  for (unsigned i = 0; i < f->nhandles; i++) {
    /* Tell the server we are going, then close. */
    nbd_shutdown (f->handles[i], 0);
    nbd_close (f->handles[i]);
  }
  pthread_mutex_destroy (&f->failure_log_lock);
  free (f->uri);
  free (f);
}

static struct nbd_handle *
pick (struct forward *f)
{
  unsigned i = __atomic_fetch_add (&f->next, 1, __ATOMIC_RELAXED);
  return f->handles[i % __atomic_load_n (&f->nhandles, __ATOMIC_ACQUIRE)];
}

/* Turn a libnbd failure of the request 'what' on [offset, offset+count)
 * into an errno for nbdkit, and log it (rate limited: see struct forward).
 * count 0 means the request has no range (a flush). */
static int
failed (struct forward *f, const char *what, uint64_t offset, uint32_t count,
        int *err)
{
  int e = nbd_get_errno ();
  const char *why = nbd_get_error ();
  uint64_t now = time_monotonic_ns (), others;
  char range[64] = "";
  bool log_it;

  pthread_mutex_lock (&f->failure_log_lock);
  log_it = f->failure_logged_ns == 0 ||
    now - f->failure_logged_ns >= NS_PER_S;
  others = f->failures_unlogged;
  if (log_it) {
    f->failures_unlogged = 0;
    f->failure_logged_ns = now;
  }
  else
    f->failures_unlogged++;
  pthread_mutex_unlock (&f->failure_log_lock);

  if (log_it) {
    if (count > 0)
      snprintf (range, sizeof range, " at offset %" PRIu64 " (%" PRIu32
                " bytes)", offset, count);
    if (others > 0)
      nbdkit_error ("migrate: forwarding %s%s to the destination %s "
                    "failed: %s (and %" PRIu64 " other forwarded requests "
                    "failed since the last such message)",
                    what, range, f->uri, why ? why : "unknown error", others);
    else
      nbdkit_error ("migrate: forwarding %s%s to the destination %s "
                    "failed: %s",
                    what, range, f->uri, why ? why : "unknown error");
  }
  *err = e != 0 ? e : EIO;
  return -1;
}

int
forward_pread (struct forward *f, void *buf, uint32_t count, uint64_t offset,
               int *err)
{
  if (nbd_pread (pick (f), buf, count, offset, 0) == -1)
    return failed (f, "a read", offset, count, err);
  return 0;
}

int
forward_flush (struct forward *f, int *err)
{
  if (!f->can_flush)
    return 0;
  /* With multi-conn one flush covers every connection; without, each
   * handle's writes are flushed on that handle. */
  unsigned n = __atomic_load_n (&f->nhandles, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < (f->can_multi_conn ? 1 : n); i++)
    if (nbd_flush (f->handles[i], 0) == -1)
      return failed (f, "a flush", 0, 0, err);
  return 0;
}

/* FUA the destination cannot do is a flush afterwards. */
static int
after_write (struct forward *f, uint32_t flags, int *err)
{
  if ((flags & NBDKIT_FLAG_FUA) && !f->can_fua)
    return forward_flush (f, err);
  return 0;
}

static uint32_t
fua_flag (const struct forward *f, uint32_t flags)
{
  return (flags & NBDKIT_FLAG_FUA) && f->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
}

int
forward_pwrite (struct forward *f, const void *buf, uint32_t count,
                uint64_t offset, uint32_t flags, int *err)
{
  if (nbd_pwrite (pick (f), buf, count, offset, fua_flag (f, flags)) == -1)
    return failed (f, "a write", offset, count, err);
  return after_write (f, flags, err);
}

int
forward_zero (struct forward *f, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  struct nbd_handle *h = pick (f);

  if (f->can_zero) {
    uint32_t cf = fua_flag (f, flags);

    if (!(flags & NBDKIT_FLAG_MAY_TRIM))
      cf |= LIBNBD_CMD_FLAG_NO_HOLE;
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
      if (!f->can_fast_zero) {
        *err = ENOTSUP;
        return -1;
      }
      cf |= LIBNBD_CMD_FLAG_FAST_ZERO;
    }
    if (nbd_zero (h, count, offset, cf) == -1)
      return failed (f, "a zero request", offset, count, err);
    return after_write (f, flags, err);
  }

  /* Writing zeroes is never fast. */
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  while (count > 0) {
    uint32_t n = count < ZERO_CHUNK ? count : ZERO_CHUNK;

    if (nbd_pwrite (h, zeroes, n, offset, 0) == -1)
      return failed (f, "a zero request (as writes)", offset, n, err);
    offset += n;
    count -= n;
  }
  /* Those writes carried no FUA: a FUA request becomes a flush. */
  if (flags & NBDKIT_FLAG_FUA)
    return forward_flush (f, err);
  return 0;
}

int
forward_trim (struct forward *f, uint32_t count, uint64_t offset,
              uint32_t flags, int *err)
{
  /* A trim is a hint: a destination that cannot trim just keeps the data. */
  if (f->can_trim &&
      nbd_trim (pick (f), count, offset, fua_flag (f, flags)) == -1)
    return failed (f, "a trim", offset, count, err);
  return after_write (f, flags, err);
}

int
forward_cache (struct forward *f, uint32_t count, uint64_t offset, int *err)
{
  if (f->can_cache && nbd_cache (pick (f), count, offset, 0) == -1)
    return failed (f, "a cache request", offset, count, err);
  return 0;
}

int
forward_extents (struct forward *f, uint32_t count, uint64_t offset,
                 struct nbdkit_extents *extents, int *err)
{
  (void) f;
  /* Type 0: allocated data, which is true of any range. */
  if (nbdkit_add_extent (extents, offset, count, 0) == -1) {
    *err = errno ? errno : EIO;
    return -1;
  }
  return 0;
}
