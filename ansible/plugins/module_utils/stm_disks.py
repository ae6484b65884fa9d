# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""The disks of a group: a virtual machine's disks migrated as one.

stm-send takes a group as repeated --disk name=NAME,source=URI,control=PATH
options (QEMU's key=value syntax, a comma in a value written twice) and
stm-recv as repeated --output NAME=IMAGE options; the names must be the
same set on both sides.  This file checks the names as the CLIs do, builds
those options, and reads the per-disk figures of stm-send's events.  It
does no I/O, so the modules' decisions about a group stay testable.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

# The wire's disk name alphabet (proto/wire.c, wire_disk_name_ok): 1 to 64
# of A-Z a-z 0-9 . _ -, not starting with "." or "-".
_DISK_NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$')

# At most this many disks in a group (WIRE_MAX_DISKS).
MAX_DISKS = 16

# The suboptions of a disk, for the modules' argument specs.  source is
# not required, so that stm_source_info accepts the list stm_send takes.
DISK_OPTIONS = dict(
    name=dict(type='str', required=True),
    source=dict(type='str'),
    control=dict(type='path', required=True),
)


def disk_name_problem(name):
    """Why NAME cannot name a disk of a group, or None."""
    if not _DISK_NAME.match(name or ''):
        return ('the disk name %r must be 1 to 64 of A-Z a-z 0-9 "." "_" "-", '
                'not starting with "." or "-"' % (name,))
    return None


def check_names(names, what):
    """Problems with a group's NAMES (a list), as sentences; WHAT names the
    option in them (disks, outputs)."""
    problems = []
    if not names:
        problems.append('%s: a group needs at least one disk' % what)
    if len(names) > MAX_DISKS:
        problems.append('%s: at most %d disks in a group, not %d'
                        % (what, MAX_DISKS, len(names)))
    seen = set()
    for name in names:
        why = disk_name_problem(name)
        if why is not None:
            problems.append('%s: %s' % (what, why))
        elif name in seen:
            problems.append('%s: the disk name %s is given twice' % (what, name))
        seen.add(name)
    return problems


def check_disks(disks):
    """Problems with stm_send's disks option, as sentences."""
    problems = check_names([d['name'] for d in disks], 'disks')
    for d in disks:
        if not d.get('source'):
            problems.append('disks: the disk %s has no source' % d['name'])
    controls = [d['control'] for d in disks]
    if len(set(controls)) != len(controls):
        problems.append('disks: each disk needs its own filter, but a control '
                        'socket is given twice')
    return problems


def qemu_escape(value):
    """VALUE for a QEMU-style key=value list: every comma doubled."""
    return value.replace(',', ',,')


def disk_option(disk):
    """The value of stm-send's --disk for DISK (name, source, control)."""
    return 'name=%s,source=%s,control=%s' % (
        qemu_escape(disk['name']), qemu_escape(disk['source']),
        qemu_escape(disk['control']))


def disk_args(disks):
    """stm-send's --disk options for DISKS, in their order (the group's)."""
    argv = []
    for disk in disks:
        argv += ['--disk', disk_option(disk)]
    return argv


def output_args(outputs):
    """stm-recv's --output NAME=IMAGE options for OUTPUTS (a dict), in the
    order of the names (the order does not matter to stm-recv)."""
    argv = []
    for name in sorted(outputs):
        argv += ['--output', '%s=%s' % (name, outputs[name])]
    return argv


def group_state_output(outputs):
    """The output beside which stm-recv keeps the group's one state file:
    the one whose name sorts first (strcmp, which is Python's order for
    names of this ASCII alphabet)."""
    return outputs[min(outputs)]


def flip_state(mode):
    """The filter state a disk's flip mode (fence, forward) leaves."""
    return 'forwarding' if mode == 'forward' else 'fenced'


def done_disks(done):
    """The per-disk figures of a done event (a group's), as a list of dicts
    with name, size, bytes_copied, bytes_zeroed, bytes_sent, flip and
    source_state; [] for one disk."""
    result = []
    for d in (done or {}).get('disks') or []:
        if not isinstance(d, dict) or 'name' not in d:
            continue
        mode = str(d.get('flip', 'fence'))
        result.append(dict(name=str(d['name']), size=int(d.get('size', 0)),
                           bytes_copied=int(d.get('bytes_copied', 0)),
                           bytes_zeroed=int(d.get('bytes_zeroed', 0)),
                           bytes_sent=int(d.get('bytes_sent', 0)), flip=mode,
                           source_state=flip_state(mode)))
    return result


def common_state(states):
    """The one state of STATES (a list) when they agree, else 'mixed'."""
    distinct = set(states)
    if len(distinct) == 1:
        return distinct.pop()
    return 'mixed'
