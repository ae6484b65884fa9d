# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""Checks of the TLS credentials stm-send and stm-recv are given.

The modules use these in check mode, and before starting a CLI, so that a
missing or malformed key file is reported by the task with the file's name
rather than as a failed TLS handshake later.  Pure functions over the file
system: each returns a list of problems (empty when the credentials look
usable), in sentences that name the file.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

# psktool writes one "identity:hexkey" line per user.
_PSK_LINE = re.compile(r'^([^:\s][^:]*):([0-9a-fA-F]+)$')

# Credentials files are small; reading more than this is not needed.
_MAX_PEM_FILE = 1 << 20

# The file names nbdkit and libnbd use, per side of the connection.
CERT_FILES = {
    'client': ('ca-cert.pem', 'client-cert.pem', 'client-key.pem'),
    'server': ('ca-cert.pem', 'server-cert.pem', 'server-key.pem'),
}


def check_psk_file(path, user=None):
    """Problems with a psktool-format key file (and USER in it, if given)."""
    try:
        with open(path, 'r') as f:
            lines = [line.strip() for line in f]
    except (IOError, OSError) as e:
        return ['cannot read the PSK file %s: %s' % (path, e.strerror or e)]
    identities = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith('#'):
            continue
        m = _PSK_LINE.match(line)
        if not m or len(m.group(2)) % 2 != 0:
            # Never echo the line: it holds a key.
            return ['the PSK file %s, line %d, is not in psktool\'s '
                    'user:hexkey format' % (path, number)]
        identities.append(m.group(1))
    if not identities:
        return ['the PSK file %s holds no key (make one with '
                'psktool -u stm -p %s)' % (path, path)]
    if user is not None and user not in identities:
        return ['the PSK file %s has no identity %r (it has: %s)'
                % (path, user, ', '.join(identities))]
    return []


def check_cert_dir(path, side):
    """Problems with an X.509 directory for SIDE ('client' or 'server')."""
    if not os.path.isdir(path):
        return ['the certificate directory %s does not exist' % path]
    problems = []
    for name in CERT_FILES[side]:
        full = os.path.join(path, name)
        try:
            with open(full, 'r') as f:
                # certtool puts a text dump of the key before the PEM block.
                head = f.read(_MAX_PEM_FILE)
        except (IOError, OSError) as e:
            problems.append('cannot read %s: %s' % (full, e.strerror or e))
            continue
        if '-----BEGIN ' not in head:
            problems.append('%s is not a PEM file' % full)
    return problems


def check_tls_options(params, side):
    """Problems with the TLS choice in a module's parameters.

    Exactly one of tls_psk, tls_certs and insecure must be chosen, as the
    CLIs require; tls_user only goes with tls_psk.
    """
    chosen = [name for name in ('tls_psk', 'tls_certs')
              if params.get(name)]
    if params.get('insecure'):
        chosen.append('insecure')
    if not chosen:
        return ['one of tls_psk, tls_certs or insecure=true is required '
                '(TLS is used unless insecure is set)']
    if len(chosen) > 1:
        return ['only one of tls_psk, tls_certs and insecure may be given '
                '(got: %s)' % ', '.join(chosen)]
    if params.get('tls_user') and not params.get('tls_psk'):
        return ['tls_user goes with tls_psk']
    if params.get('tls_psk'):
        return check_psk_file(params['tls_psk'], params.get('tls_user'))
    if params.get('tls_certs'):
        return check_cert_dir(params['tls_certs'], side)
    return []


def tls_cli_args(params):
    """The CLI options for the TLS choice in a module's parameters."""
    if params.get('tls_psk'):
        args = ['--tls-psk', params['tls_psk']]
        if params.get('tls_user'):
            args += ['--tls-user', params['tls_user']]
        return args
    if params.get('tls_certs'):
        return ['--tls-certs', params['tls_certs']]
    return ['--insecure']


def tls_argument_spec():
    """The TLS options both modules take."""
    return dict(
        tls_psk=dict(type='path'),
        tls_user=dict(type='str'),
        tls_certs=dict(type='path'),
        insecure=dict(type='bool', default=False),
    )
