# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""A client of stm-send's command socket (stm-send --cutover manual
--command-socket PATH; stm-send(1), "COMMAND SOCKET PROTOCOL").

One command per connection: send the line, read the one reply line,
close.  The reply to CUTOVER comes only when the cutover is over, so the
caller gives a timeout long enough for one.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import socket
import time

# A reply is one line of at most 1024 bytes (sender/command_server.h).
_MAX_REPLY = 1024

COMMANDS = ('STATUS', 'CUTOVER', 'ABORT')

# An errno-like name, as ERR replies carry it (EAGAIN, E2BIG).
_ERRNO_NAME = re.compile(r'^[A-Z][A-Z0-9_]*$')


class CommandError(Exception):
    """The command socket could not be asked, or did not answer a reply."""


def _value(text):
    """A key=value value: an int when it is one, else the text."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def parse_reply(line):
    """Split a reply line into a dict.

    OK lines give ok=True, text (what follows "OK") and fields (its
    key=value words, numbers as numbers); ERR lines give ok=False, errno
    (the errno-like name) and message.  Anything else raises CommandError.
    """
    line = line.rstrip('\r\n')
    words = line.split(None, 1)
    if words and words[0] == 'OK':
        text = words[1] if len(words) > 1 else ''
        fields = {}
        for word in text.split():
            key, sep, value = word.partition('=')
            if sep and key:
                fields[key] = _value(value)
        return dict(ok=True, reply=line, text=text, fields=fields)
    if words and words[0] == 'ERR' and len(words) > 1:
        rest = words[1].split(None, 1)
        name = rest[0]
        if _ERRNO_NAME.match(name):
            return dict(ok=False, reply=line, errno=name,
                        message=rest[1] if len(rest) > 1 else '')
    raise CommandError('not a command socket reply: %s' % line[:200])


def send_command(path, command, timeout):
    """Send COMMAND to the socket at PATH and return parse_reply's dict.

    Raises CommandError naming PATH when it cannot connect, the socket
    closes without a reply, or no reply comes within TIMEOUT seconds.
    """
    if command not in COMMANDS:
        raise CommandError('unknown command %s' % command)
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(command.encode('ascii') + b'\n')
            reply = b''
            while b'\n' not in reply:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                sock.settimeout(left)
                chunk = sock.recv(_MAX_REPLY)
                if not chunk:
                    raise CommandError(
                        'the command socket %s closed without answering %s'
                        % (path, command))
                reply += chunk
                if len(reply) > _MAX_REPLY and b'\n' not in reply:
                    raise CommandError('the command socket %s answered %s '
                                       'with a line longer than %d bytes'
                                       % (path, command, _MAX_REPLY))
        except socket.timeout:
            raise CommandError('the command socket %s did not answer %s '
                               'within %g s' % (path, command, timeout))
        except (IOError, OSError) as e:
            raise CommandError('cannot send %s to the command socket %s: %s '
                               '(is stm-send running with --cutover manual '
                               '--command-socket %s?)'
                               % (command, path, e.strerror or e, path))
    finally:
        sock.close()
    line = reply.split(b'\n', 1)[0].decode('utf-8', 'replace')
    try:
        return parse_reply(line)
    except CommandError as e:
        raise CommandError('the command socket %s: %s' % (path, e))
