/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the listening socket and the set of open connections.
 *
 * The listener accepts TCP connections and gives each its own session; it
 * bounds how many are open at once (one active sender plus a few that are
 * handshaking or being refused), so a flood of connections cannot exhaust
 * memory or descriptors; when every slot is taken, the oldest connection
 * that has not said HELLO makes room for the newcomer, so silent peers
 * cannot lock a sender out.  Which session is the active sender is decided by
 * the session on HELLO (and recorded by the receiver), not here: a
 * connection that fails its handshake or is refused never affects another.
 */
#ifndef STM_RECEIVER_LISTENER_H
#define STM_RECEIVER_LISTENER_H

#include <stdint.h>

struct session;
struct session_env;
struct listener;

/* Listen on env->opts' listen_host:listen_port.  Nothing is accepted
 * until listener_start; then each connection gets a session with env
 * (which must outlive the listener).  NULL after the failure was
 * reported. */
struct listener *listener_new (const struct session_env *env);

/* Accept connections, and announce the address (events "listening",
 * with the port actually bound). */
void listener_start (struct listener *l);

/* Stop accepting and close every open session.  Idempotent. */
void listener_stop (struct listener *l);

/* A session ended (whatever the reason): forget it.  The receiver calls
 * this from its ended hook. */
void listener_forget (struct listener *l, struct session *s);

/* listener_stop, then free.  NULL is allowed. */
void listener_free (struct listener *l);

#endif /* STM_RECEIVER_LISTENER_H */
