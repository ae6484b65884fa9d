/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: accepting connections.  See listener.h.
 *
 * Accepted sockets get TCP keepalive so that a sender that vanished without
 * a word (a host that died, a cable pulled) is noticed within about a
 * minute; otherwise its session would stay active forever and the same
 * sender, restarted, would be refused as busy.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "events.h"
#include "receiver_options.h"
#include "session.h"
#include "tls_transport.h"

/* One active sender plus connections handshaking or being refused. */
#define LISTENER_MAX_SESSIONS 8
/* Connections held in all, sessions and those still delivering a last
 * reply after their session ended: past this, new connections are
 * refused at once, so that peers which connect and misbehave faster than
 * their replies drain cannot use up the descriptors the active migration
 * needs (its state file, its output). */
#define LISTENER_MAX_CONNECTIONS 64
/* At most one warning per this many seconds about such refusals. */
#define REFUSAL_WARNING_INTERVAL_S 10.0
/* Connections accepted per wake-up, so one busy listener cannot starve
 * the active session. */
#define ACCEPTS_PER_WAKEUP 8
/* After running out of descriptors, wait this long before accepting
 * again instead of spinning on a socket that stays readable. */
#define ACCEPT_RETRY_S 1.0
/* TCP keepalive: first probe after this idle time, then every interval,
 * giving up after count unanswered probes. */
#define KEEPALIVE_IDLE_S 30
#define KEEPALIVE_INTERVAL_S 10
#define KEEPALIVE_COUNT 3

struct listener {
  const struct session_env *env;   /* the receiver's, for every session */
  int fd;
  uint16_t port;
  ev_io accept_watcher;
  ev_timer retry_timer;
  struct session *sessions[LISTENER_MAX_SESSIONS];
  size_t n_sessions;
  ev_tstamp last_refusal_warning;
  unsigned refused_since_warning;
};

/* "host:port" for IPv4, "[host]:port" for IPv6, from a socket address.
 * host_only, if not NULL, gets the bare address. */
static void
format_address (const struct sockaddr *sa, socklen_t len,
                char *out, size_t outlen, char *host_only, size_t host_only_len)
{
  /* Numeric only: an IPv6 address with a scope, and a port. */
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2], serv[8];

  if (getnameinfo (sa, len, host, sizeof host, serv, sizeof serv,
                   NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    snprintf (out, outlen, "(unknown address)");
    if (host_only)
      snprintf (host_only, host_only_len, "unknown");
    return;
  }
  if (sa->sa_family == AF_INET6)
    snprintf (out, outlen, "[%s]:%s", host, serv);
  else
    snprintf (out, outlen, "%s:%s", host, serv);
  if (host_only)
    snprintf (host_only, host_only_len, "%s", host);
}

/* Best effort: a socket without these options still works. */
static void
tune_socket (int fd)
{
  int on = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTERVAL_S,
    count = KEEPALIVE_COUNT;

  (void) setsockopt (fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  (void) setsockopt (fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  (void) setsockopt (fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  (void) setsockopt (fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  /* Replies (DURABLE, COMMITTED) are small and the sender waits for
   * them: do not let Nagle hold them back. */
  (void) setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static void
add_session (struct listener *l, struct session *s)
{
  assert (l->n_sessions < LISTENER_MAX_SESSIONS);
  l->sessions[l->n_sessions++] = s;
}

void
listener_forget (struct listener *l, struct session *s)
{
  size_t i;

  for (i = 0; i < l->n_sessions; i++) {
    if (l->sessions[i] == s) {
      l->sessions[i] = l->sessions[--l->n_sessions];
      l->sessions[l->n_sessions] = NULL;
      return;
    }
  }
  assert (!"listener_forget: unknown session");
}

static void
on_retry (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct listener *l = w->data;

  if (l->fd >= 0)
    ev_io_start (loop, &l->accept_watcher);
}

/* All slots are taken: close the oldest connection that has not said
 * HELLO, so that peers which connect and say nothing (or keep a handshake
 * hanging) cannot lock a sender out until their timeouts expire.  A
 * session past HELLO is never closed for room. */
static void
evict_oldest_silent (struct listener *l, const char *newcomer)
{
  struct session *oldest = NULL;
  char reason[SESSION_PEER_MAX + 96];
  size_t i;

  for (i = 0; i < l->n_sessions; i++) {
    struct session *s = l->sessions[i];
    if (session_past_hello (s))
      continue;
    if (oldest == NULL || session_started_ns (s) < session_started_ns (oldest))
      oldest = s;
  }
  if (oldest == NULL)
    return;
  snprintf (reason, sizeof reason,
            "closed to make room for %s: %d connections were open and this one "
            "had not said HELLO", newcomer, LISTENER_MAX_SESSIONS);
  session_close (oldest, reason);
}

static void
accept_one (struct listener *l, int fd, const struct sockaddr *sa, socklen_t len)
{
  const struct session_env *env = l->env;
  char peer[SESSION_PEER_MAX];
  struct session *s;

  format_address (sa, len, peer, sizeof peer, NULL, 0);
  if (*env->live_connections >= LISTENER_MAX_CONNECTIONS) {
    ev_tstamp now = ev_now (env->loop);
    l->refused_since_warning++;
    if (now - l->last_refusal_warning >= REFUSAL_WARNING_INTERVAL_S) {
      events_warning (env->events,
                      "refusing the connection from %s (and %u more since the last "
                      "such warning): %u connections are held already, most of "
                      "them still delivering a last reply", peer,
                      l->refused_since_warning - 1, *env->live_connections);
      l->last_refusal_warning = now;
      l->refused_since_warning = 0;
    }
    close (fd);
    return;
  }
  if (l->n_sessions >= LISTENER_MAX_SESSIONS)
    evict_oldest_silent (l, peer);
  if (l->n_sessions >= LISTENER_MAX_SESSIONS) {
    events_warning (env->events,
                    "refusing the connection from %s: %d connections are open already",
                    peer, LISTENER_MAX_SESSIONS);
    close (fd);
    return;
  }
  tune_socket (fd);
  events_connected (env->events, peer);
  s = session_new (env, fd, peer);
  if (s != NULL)
    add_session (l, s);
}

static void
on_accept (struct ev_loop *loop, ev_io *w, int revents)
{
  struct listener *l = w->data;
  int i;

  for (i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd;

    fd = accept4 (l->fd, (struct sockaddr *) &ss, &len,
                  SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1) {
      switch (errno) {
      case EAGAIN:
#if EAGAIN != EWOULDBLOCK
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        log_warning ("cannot accept connections on port %u for now: %m",
                     (unsigned) l->port);
        ev_io_stop (loop, &l->accept_watcher);
        ev_timer_set (&l->retry_timer, ACCEPT_RETRY_S, 0.);
        ev_timer_start (loop, &l->retry_timer);
        return;
      default:
        log_warning ("accepting a connection on port %u failed: %m",
                     (unsigned) l->port);
        return;
      }
    }
    accept_one (l, fd, (const struct sockaddr *) &ss, len);
    if (l->fd < 0)             /* stopped meanwhile */
      return;
  }
}

struct listener *
listener_new (const struct session_env *env)
{
  const struct receiver_options *opts = env->opts;
  struct listener *l;

  l = calloc (1, sizeof *l);
  if (l == NULL) {
    log_error ("cannot listen on %s:%u: %m", opts->listen_host,
               (unsigned) opts->listen_port);
    return NULL;
  }
  l->env = env;
  l->port = opts->listen_port;
  l->fd = tcp_listen (opts->listen_host, opts->listen_port, &l->port);
  if (l->fd == -1) {
    free (l);
    return NULL;
  }
  ev_io_init (&l->accept_watcher, on_accept, l->fd, EV_READ);
  l->accept_watcher.data = l;
  ev_timer_init (&l->retry_timer, on_retry, ACCEPT_RETRY_S, 0.);
  l->retry_timer.data = l;
  return l;
}

void
listener_start (struct listener *l)
{
  const struct session_env *env = l->env;
  const struct receiver_options *opts = env->opts;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[RECEIVER_HOST_MAX];

  /* Announce the address actually bound (with port 0 the kernel chose
   * the port, and tests and tools read it from this event). */
  if (getsockname (l->fd, (struct sockaddr *) &ss, &len) == 0) {
    char where[SESSION_PEER_MAX];

    format_address ((struct sockaddr *) &ss, len, where, sizeof where,
                    host, sizeof host);
    l->port = ntohs (ss.ss_family == AF_INET6
                     ? ((struct sockaddr_in6 *) &ss)->sin6_port
                     : ((struct sockaddr_in *) &ss)->sin_port);
  }
  else
    snprintf (host, sizeof host, "%s", opts->listen_host);

  ev_io_start (env->loop, &l->accept_watcher);
  events_listening (env->events, host, l->port);
}

void
listener_stop (struct listener *l)
{
  struct ev_loop *loop = l->env->loop;

  ev_io_stop (loop, &l->accept_watcher);
  ev_timer_stop (loop, &l->retry_timer);
  if (l->fd >= 0) {
    close (l->fd);
    l->fd = -1;
  }
  /* session_close ends in the receiver's ended hook, which calls
   * listener_forget, which shrinks the array. */
  while (l->n_sessions > 0)
    session_close (l->sessions[l->n_sessions - 1], "the receiver is shutting down");
}

void
listener_free (struct listener *l)
{
  if (l == NULL)
    return;
  listener_stop (l);
  free (l);
}
