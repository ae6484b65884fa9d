/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the time and memory limits of one session (session.c), in
 * one place, as docs/protocol.md ("Timeouts and limits on the receiver")
 * states them to senders.
 */
#ifndef STM_RECEIVER_SESSION_LIMITS_H
#define STM_RECEIVER_SESSION_LIMITS_H

/* A connection must complete its TLS handshake (which the transport
 * bounds to 10 seconds) and send HELLO within this time from being
 * accepted, so idle connections cannot hold one of the listener's slots
 * for long.  A real sender sends HELLO as soon as the handshake is done. */
#define HELLO_TIMEOUT_S 15.0
/* The active sender must send something at least this often: it sends
 * KEEPALIVE when it has nothing else to say, so silence this long means
 * a peer that is stuck or hostile, and it would otherwise keep the
 * receiver busy for every other sender.  Longer than what a sender may
 * spend blocked in FREEZE with the filter's default freeze timeout (30 s):
 * the flush before the gate closes and the drain and flush after it are
 * each bounded by it, and stm-send waits 10 s more for the reply. */
#define IDLE_TIMEOUT_S 150.0
/* The sender is expected to read our (small) replies.  If it lets this
 * much pile up, stop reading from it until the queue drains, so a peer
 * that only writes cannot grow our memory without bound. */
#define OUTPUT_HIGH_WATER (1024 * 1024)
#define OUTPUT_LOW_WATER (64 * 1024)
/* How long the last reply to a connection that never said HELLO (an
 * ERROR, busy) may take to deliver: a peer that reads gets it within
 * milliseconds, and one that does not must not hold a socket for long.
 * The active sender keeps the transport's default (30 s) for COMMITTED. */
#define PRE_HELLO_LINGER_S 2.0
#define ACTIVE_LINGER_S 30.0

#endif /* STM_RECEIVER_SESSION_LIMITS_H */
