# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""HOST:PORT strings as the CLIs take them, and a TCP reachability probe.

IPv6 addresses go in brackets ([::1]:10809); an empty host (":10809")
means every address, for --listen.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket


def parse_host_port(text):
    """(host, port) from HOST:PORT; raises ValueError with the reason."""
    if text.startswith('['):
        host, sep, rest = text[1:].partition(']')
        if not sep or not rest.startswith(':'):
            raise ValueError('%r: an IPv6 address goes as [ADDRESS]:PORT' % text)
        port = rest[1:]
    else:
        host, sep, port = text.rpartition(':')
        if not sep:
            raise ValueError('%r is not HOST:PORT' % text)
        if ':' in host:
            raise ValueError('%r: put an IPv6 address in brackets' % text)
    if not port.isdigit() or int(port) > 65535:
        raise ValueError('%r: the port must be a number from 0 to 65535' % text)
    return host, int(port)


def probe_tcp(host, port, timeout=5.0):
    """None if a TCP connection to HOST:PORT opens, else the reason.

    The connection is closed at once: the receiver sees a peer that went
    away before its TLS handshake, which affects no other connection.
    """
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        return 'no answer from %s:%d within %g s' % (host, port, timeout)
    except (IOError, OSError) as e:
        return 'cannot connect to %s:%d: %s' % (host, port, e.strerror or e)
    conn.close()
    return None
