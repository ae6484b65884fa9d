# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""A read-only client of the migrate filter's control socket.

Only STATUS is ever sent from here: any connection may ask it, it takes no
ownership and changes nothing, so the modules can look at a source in check
mode without freezing or snapshotting it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket

# A STATUS reply is one line; anything longer is not the filter talking.
_MAX_REPLY = 4096


class ControlError(Exception):
    """The control socket could not be asked, or answered an error."""


# Fields that are names, even when every character is a digit (a migration
# id is 32 hexadecimal digits).
TEXT_FIELDS = frozenset(('state', 'owner', 'migration'))


def parse_status(line):
    """The fields of an 'OK key=value ...' STATUS reply, numbers as ints."""
    words = line.split()
    if not words or words[0] != 'OK':
        raise ControlError('unexpected reply: %s' % line.strip()[:200])
    fields = {}
    for word in words[1:]:
        key, sep, value = word.partition('=')
        if not sep:
            continue
        if key in TEXT_FIELDS:
            fields[key] = value
            continue
        try:
            fields[key] = int(value)
        except ValueError:
            fields[key] = value
    if 'state' not in fields:
        raise ControlError('the reply has no state: %s' % line.strip()[:200])
    return fields


def query_status(path, timeout=5.0):
    """Ask the filter at PATH for STATUS; return its fields.

    Raises ControlError with a message naming PATH.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
            sock.sendall(b'STATUS\n')
            reply = b''
            while b'\n' not in reply and len(reply) < _MAX_REPLY:
                chunk = sock.recv(_MAX_REPLY)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            raise ControlError('the control socket %s did not answer STATUS '
                               'within %g s' % (path, timeout))
        except (IOError, OSError) as e:
            raise ControlError('cannot ask the control socket %s: %s'
                               % (path, e.strerror or e))
    finally:
        sock.close()
    line = reply.split(b'\n', 1)[0].decode('utf-8', 'replace')
    if line.startswith('ERR'):
        raise ControlError('the control socket %s answered: %s' % (path, line))
    try:
        return parse_status(line)
    except ControlError as e:
        raise ControlError('the control socket %s: %s' % (path, e))
