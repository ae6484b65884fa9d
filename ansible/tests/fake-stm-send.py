#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A stand-in for stm-send's command socket, for the collection's tests
(tests/integration/test-ansible-command.sh), so that they need no build
and no servers (test-ansible-manual.sh runs the real stm-send).

It takes stm-send's command line, serves --command-socket PATH with the
protocol of stm-send(1) "COMMAND SOCKET PROTOCOL", and logs every command
it receives (and its own argv) to $FAKE_LOG:

  STATUS   OK phase=ready pass=N dirty_bytes=... predicted_downtime_ms=7
           ready=0 for the first $FAKE_READY_AFTER seconds and until
           $FAKE_READY_AFTER_CUTOVERS CUTOVERs have been refused, then
           ready=1
  CUTOVER  before that: ERR EAGAIN not ready: ...; after: waits 0.3 s (a
           deferred reply), then OK flipped downtime_ms=12
  ABORT    OK aborted: the source is thawed and authoritative

FAKE_MODE=server only serves (CUTOVER and ABORT end nothing);
FAKE_MODE=garbage answers every line with a line that is not a reply;
FAKE_MODE=stm-send (the default) ends like stm-send --json after CUTOVER
(flip and done events, exit 0) or ABORT (an error event, exit 1).
Whatever happens it exits after $FAKE_LIFETIME seconds (default 60).
"""

import json
import os
import socket
import sys
import time

START = time.monotonic()
MODE = os.environ.get('FAKE_MODE', 'stm-send')
LOG = os.environ['FAKE_LOG']
READY_AFTER = float(os.environ.get('FAKE_READY_AFTER', '0'))
READY_AFTER_CUTOVERS = int(os.environ.get('FAKE_READY_AFTER_CUTOVERS', '0'))
LIFETIME = float(os.environ.get('FAKE_LIFETIME', '60'))


def log(text):
    with open(LOG, 'a') as f:
        f.write(text + '\n')


def event(name, **fields):
    fields['event'] = name
    print(json.dumps(fields), flush=True)


def read_line(conn):
    data = b''
    conn.settimeout(5)
    while b'\n' not in data:
        chunk = conn.recv(256)
        if not chunk:
            break
        data += chunk
    return data.split(b'\n', 1)[0].decode('ascii', 'replace').strip()


def answer(line, statuses, refused):
    """The reply to line, and what the fake does next (None, flip, abort),
    after statuses STATUS and refused CUTOVERs refused."""
    ready = (time.monotonic() - START >= READY_AFTER and
             refused >= READY_AFTER_CUTOVERS)
    if MODE == 'garbage':
        return 'HELLO this is not stm-send', None
    word = line.upper()
    if word == 'STATUS':
        return ('OK phase=ready pass=%d dirty_bytes=4096 '
                'predicted_downtime_ms=7 ready=%d' % (statuses, int(ready)),
                None)
    if word == 'CUTOVER':
        if not ready:
            return ('ERR EAGAIN not ready: dirty_bytes=5242880 '
                    'predicted_downtime_ms=900'), None
        time.sleep(0.3)
        return 'OK flipped downtime_ms=12', 'flip'
    if word == 'ABORT':
        return 'OK aborted: the source is thawed and authoritative', 'abort'
    return 'ERR EINVAL unknown command (STATUS, CUTOVER or ABORT)', None


def serve(path):
    """Answer commands until CUTOVER or ABORT (stm-send mode) or the end
    of the lifetime; returns what ended it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    listener.bind(path)
    os.umask(old)
    listener.listen(4)
    statuses = refused = 0
    try:
        while time.monotonic() - START < LIFETIME:
            listener.settimeout(max(0.1, LIFETIME - (time.monotonic() - START)))
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                break
            with conn:
                try:
                    line = read_line(conn)
                except (socket.timeout, OSError):
                    continue
                log('command %s' % line)
                if line.upper() == 'STATUS':
                    statuses += 1
                reply, outcome = answer(line, statuses, refused)
                if reply.startswith('ERR EAGAIN'):
                    refused += 1
                try:
                    conn.sendall(reply.encode('ascii') + b'\n')
                except OSError:
                    pass
            if outcome is not None and MODE == 'stm-send':
                return outcome
        return 'timeout'
    finally:
        listener.close()
        os.unlink(path)


def main():
    argv = sys.argv[1:]
    log('argv %s' % ' '.join(argv))
    path = argv[argv.index('--command-socket') + 1]
    with open(path + '.pid', 'w') as f:
        f.write('%d\n' % os.getpid())
    event('start', migration_id='0' * 32, mode='new')
    event('ready', **{'pass': 1, 'dirty_bytes': 4096})
    outcome = serve(path)
    os.unlink(path + '.pid')
    if outcome == 'flip':
        event('flip', mode='fence')
        event('done', bytes_sent=1048576, bytes_copied=1048576, bytes_zeroed=65536,
              wire_bytes=1050000, passes=3, downtime_ms=12, seconds=1.5)
        return 0
    if outcome == 'abort':
        message = 'aborted by the operator (ABORT on %s)' % path
        event('error', message=message, source_state='thawed')
        sys.stderr.write('stm-send: error: %s; the source is thawed and '
                         'authoritative\n' % message)
        return 1
    sys.stderr.write('stm-send: error: no command within %g s\n' % LIFETIME)
    return 1


if __name__ == '__main__':
    sys.exit(main())
