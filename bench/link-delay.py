#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark helper (bench/link.sh): a delay line, the propagation
# delay of a long link, for kernels without netem.
#
#   link-delay.py DEV_A DEV_B DELAY_MS
#
# It creates two TUN devices, DEV_A and DEV_B (point-to-point, no packet
# information header), prints "ready" on stdout once they exist, and from
# then on carries every packet sent out of one into the other, DELAY_MS
# milliseconds later, in the order sent.  link.sh moves each device into
# its own network namespace and addresses it, so that the two namespaces
# talk over this "cable" with a round trip of twice DELAY_MS; the rate is
# shaped by tc on each device's egress, before the delay, as a link's
# serialisation comes before its propagation.  The queue is not bounded:
# a real cable holds what is on it, and the tbf in front limits that to
# the rate times the delay.
#
# The devices exist only while this process holds them: ending it
# (SIGTERM) removes them, and with them the link.  It ends with status 1
# if a device cannot be created or read, after saying which and why.
import collections
import fcntl
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# A packet can be as large as the device's MTU; 64 KiB covers any.
MAX_PACKET = 65536
# Packets read from one device per wake-up before the due ones are
# written: a bound, so that a burst in one direction does not delay the
# other beyond its time.
READ_BURST = 64


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def run(fds, delay):
    """Forward packets between the two descriptors of fds, each DELAY
    seconds after it was read; never returns."""
    peer = {fds[0]: fds[1], fds[1]: fds[0]}
    # queue[fd]: (due time, packet) to write into fd, oldest first.
    queue = {fd: collections.deque() for fd in fds}
    while True:
        now = time.monotonic()
        for fd, q in queue.items():
            while q and q[0][0] <= now:
                try:
                    os.write(fd, q.popleft()[1])
                except BlockingIOError:
                    # The receiving stack is full: the packet is lost,
                    # as on a congested link, and TCP resends it.
                    pass
        due = [q[0][0] for q in queue.values() if q]
        timeout = max(0.0, min(due) - now) if due else None
        readable, _, _ = select.select(fds, [], [], timeout)
        for fd in readable:
            t = time.monotonic() + delay
            for _ in range(READ_BURST):
                try:
                    packet = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                queue[peer[fd]].append((t, packet))


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: link-delay.py DEV_A DEV_B DELAY_MS")
    names = sys.argv[1:3]
    delay = float(sys.argv[3]) / 1000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    fds = []
    for name in names:
        try:
            fds.append(open_tun(name))
        except OSError as e:
            sys.exit("link-delay: could not create the TUN device %s: %s "
                     "(no link was made)" % (name, e.strerror))
    print("ready", flush=True)
    try:
        run(fds, delay)
    except OSError as e:
        sys.exit("link-delay: forwarding between %s and %s failed: %s "
                 "(the link is down)" % (names[0], names[1], e.strerror))


if __name__ == "__main__":
    main()
