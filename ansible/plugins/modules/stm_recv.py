#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-3-Clause
#
# The Ansible module that runs stm-recv, the receiving end of a live disk
# migration, detached on the destination host.  It starts the receiver in
# a session of its own, with --json output going to a file, waits (boundedly)
# for the "listening" event to learn the port, and keeps a pid file so that
# a later task can stop it.  All state lives in three files under run_dir,
# named after the migration: NAME.pid, NAME.json (events), NAME.log (stderr).
# A virtual machine's disks are received as one group by one receiver, one
# output per disk name (the outputs option, stm-recv's --output NAME=IMAGE).

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stm_recv
short_description: Run stm-recv, the receiving end of a live disk migration
version_added: "0.1.0"
description:
  - Starts C(stm-recv) detached on the destination host, to receive one
    disk from C(stm-send) (see M(stm.migration.stm_send)) and write it to
    I(output), or a group of disks (a virtual machine's, sent with
    I(disks) of M(stm.migration.stm_send)) and write each to its image in
    I(outputs).
  - Waits until the receiver listens and returns the port, which is what
    the source host needs when I(listen) asks for port 0 (a free port).
  - Keeps a pid file, the receiver's JSON events and its messages in
    I(run_dir), named after I(name); C(state=absent) stops the receiver
    named I(name) and reports whether its migration committed.
  - Starting a receiver that is already running under I(name) changes
    nothing and returns its port again.
  - With I(once) and without I(force), an I(output) (or I(outputs)) whose state file
    already records its migration as final (C(state final), written
    only after stm-send reported that the source flipped to it; see
    stm-recv(1), "Destination states") is left alone; no receiver is
    started, nothing changes, and I(complete) is returned true (and no
    I(port)). So running a playbook again after a success changes
    nothing. Set I(force) to start a receiver that may overwrite it.
options:
  name:
    description:
      - A name for this migration on this host, unique among the receivers
        running there. It names the files in I(run_dir).
    type: str
    required: true
  state:
    description:
      - C(started) starts the receiver if it is not running.
      - C(absent) stops it (SIGTERM, then SIGKILL after I(stop_timeout)
        seconds) and removes its pid file; the event and message files stay
        for a look afterwards.
    type: str
    choices: [started, absent]
    default: started
  listen:
    description:
      - The address to listen on, C(HOST:PORT). Port 0 picks a free port;
        the module returns it as I(port). IPv6 addresses go in brackets;
        C(:PORT) listens on every address.
    type: str
    default: "0.0.0.0:10809"
  output:
    description:
      - The image to write, a regular file (created with mode 0600 if
        missing) or a block device at least as large as the source.
      - With C(state=started), this or I(outputs) is required.
    type: path
  outputs:
    description:
      - For a group of disks, each disk's image by disk name
        (C(--output NAME=IMAGE) for each); the names must be the sender's
        I(disks) names, the same set (1 to 64 of C(A-Z a-z 0-9 . _ -), not
        starting with C(.) or C(-); at most 16). In place of I(output).
      - The group has one state file, beside the image of the name that
        sorts first (I(state_file)); what is said of an output's state
        file here (I(once), I(force)) is said of that one.
    type: dict
    version_added: "0.4.0"
  tls_psk:
    description:
      - A TLS pre-shared key file in C(psktool) format (C(user:hexkey)
        lines), the same file the sender uses.
      - One of I(tls_psk), I(tls_certs) or C(insecure=true) is required
        with C(state=started).
    type: path
  tls_user:
    description:
      - With I(tls_psk), accept only this PSK identity.
    type: str
  tls_certs:
    description:
      - A directory with C(ca-cert.pem), C(server-cert.pem) and
        C(server-key.pem). Senders must present a client certificate
        signed by that CA.
    type: path
  insecure:
    description:
      - No TLS at all; the disk crosses the network in the clear,
        unauthenticated. For trusted networks and tests only.
    type: bool
    default: false
  force:
    description:
      - Let the first migration to connect overwrite an output that
        C(stm-recv) would otherwise refuse (C(--force)); a non-empty
        regular file with no C(OUTPUT.stm-state) beside it (somebody's
        data), an output whose state file is damaged or no longer matches
        it, or one that holds another migration (an earlier migration of
        the same disk under another nbdkit process, say).
      - A migration the output holds is still resumed, not overwritten,
        when its own sender comes back.
      - Without it such an output makes the receiver exit before it
        listens (or refuse the sender with a C(mismatch) error), and the
        task fails saying so.
    type: bool
    version_added: "0.2.0"
    default: false
  export:
    description:
      - After a migration commits, serve the finished image over NBD at
        C(HOST:PORT) (C(--export)), for M(stm.migration.stm_send) with
        C(flip=forward); C(stm-recv) runs C(nbdkit) with its own
        credentials and announces the URI to the sender.
      - HOST must be a name or address the source host reaches this host
        by (not a wildcard such as C(0.0.0.0)), PORT a fixed port.
      - Once it serves, the receiver takes no more senders and keeps
        running, with or without I(once), for as long as the export is
        needed; C(state=absent) stops both, which cuts off a guest still
        forwarded to it.
      - The export's URI is returned as I(export_uri) once the receiver
        reports it (after the commit; run the task again, or stop the
        receiver, to learn it).
    type: str
    version_added: "0.2.0"
  once:
    description:
      - Exit after one migration has committed (C(--once)). Without it the
        receiver keeps listening, so that a dropped sender can reconnect
        and resume.
    type: bool
    default: true
  run_dir:
    description:
      - Where the pid file, the JSON events and the messages of the
        receiver are kept. Created (mode 0700) if missing.
    type: path
    default: /run/stm
  binary:
    description:
      - The C(stm-recv) program, a path or a name looked up in C(PATH).
    type: path
    default: stm-recv
  extra_args:
    description:
      - More C(stm-recv) options, one list item per word, placed before
        the module's own C(--json). For options this module does not have
        yet.
    type: list
    elements: str
    default: []
  start_timeout:
    description:
      - How many seconds to wait for the receiver to listen.
    type: int
    default: 30
  stop_timeout:
    description:
      - With C(state=absent), how many seconds to wait after SIGTERM before
        SIGKILL.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: >-
      Checks the arguments, the program, the credentials files and the
      output's directory, and says whether the receiver would be started
      or stopped, without starting or stopping anything.
  diff_mode:
    support: none
    description: The module shows no differences.
notes:
  - The receiver runs in a session of its own and outlives the task; stop it
    with C(state=absent) (for example in an C(always) section) when the
    migration is over or has failed.
seealso:
  - module: stm.migration.stm_send
author:
  - stm developers
'''

EXAMPLES = r'''
- name: Receive disk0 on a free port, over TLS with a pre-shared key
  stm.migration.stm_recv:
    name: disk0
    listen: "0.0.0.0:0"
    output: /var/lib/disks/disk0.img
    tls_psk: /etc/stm/keys.psk
  register: receiver

- name: Show where the sender must go
  ansible.builtin.debug:
    msg: "stm-send --dest {{ inventory_hostname }}:{{ receiver.port }}"

- name: Receive with X.509 certificates on a fixed port
  stm.migration.stm_recv:
    name: disk1
    listen: "[::]:10810"
    output: /dev/vg0/disk1
    tls_certs: /etc/stm/pki

- name: Receive over an existing image, and serve the result for flip=forward
  stm.migration.stm_recv:
    name: disk2
    listen: "0.0.0.0:10811"
    output: /var/lib/disks/disk2.img   # an old copy, not an stm-recv output
    force: true
    export: "dest1.example.com:10812"
    tls_psk: /etc/stm/keys.psk

- name: Later, after stm_send with flip=forward, learn the export's URI
  stm.migration.stm_recv:
    name: disk2
    listen: "0.0.0.0:10811"
    output: /var/lib/disks/disk2.img
    force: true
    export: "dest1.example.com:10812"
    tls_psk: /etc/stm/keys.psk
  register: exporting

- name: Show it
  ansible.builtin.debug:
    msg: "{{ exporting.export_uri | default('not exporting (yet)') }}"

- name: Receive a VM's two disks as one group (stm_send with disks sys and data)
  stm.migration.stm_recv:
    name: vm1
    listen: "0.0.0.0:0"
    outputs:
      sys: /var/lib/disks/vm1-sys.img
      data: /var/lib/disks/vm1-data.img
    tls_psk: /etc/stm/keys.psk
  register: vm1_receiver

- name: Stop the receiver (whether or not its migration committed)
  stm.migration.stm_recv:
    name: disk0
    state: absent
  register: stopped

- name: Fail unless the destination has the whole disk
  ansible.builtin.assert:
    that: stopped.committed
'''

RETURN = r'''
pid:
  description: The receiver's process id (with C(state=started)), or the
    one that was stopped (with C(state=absent)).
  returned: when a receiver is or was running
  type: int
  sample: 4242
port:
  description: The TCP port the receiver listens on.
  returned: state is started and not in check mode
  type: int
  sample: 10809
host:
  description: The address the receiver listens on, as it reported it.
  returned: state is started and not in check mode
  type: str
  sample: 0.0.0.0
listen:
  description: The address to give stm-send as C(--dest), with the port
    filled in. A host of C(0.0.0.0) or C(::) stands for every address and
    must be replaced by one the source can reach.
  returned: state is started and not in check mode
  type: str
  sample: 0.0.0.0:10809
committed:
  description: Whether the receiver reported a migration final in its event
    file (its C(done) event, sent once stm-send reported that the source
    flipped to it). A C(commit) event alone means only prepared (see
    stm-recv(1), "Destination states").
  returned: always
  type: bool
  sample: true
running:
  description: Whether the receiver is running when the module returns.
  returned: always
  type: bool
  sample: true
last_event:
  description: The last JSON event the receiver printed.
  returned: when it printed one
  type: dict
  sample: {"event": "done", "ts": 1795297603.5}
export_uri:
  description: The NBD URI at which the receiver serves the committed
    image (I(export)), as it reported it; C(nbds://) with TLS.
  returned: when the receiver reported serving an export
  type: str
  sample: nbds://dest1.example.com:10812/
exporting:
  description: Whether the receiver reported serving the image over NBD
    (I(export)) and still runs.
  returned: always
  type: bool
  sample: false
migration_id:
  description: The id of the migration the receiver last accepted (its
    last C(hello) event).
  returned: when the receiver accepted a sender
  type: str
  sample: 3f0c9a1d5e7b2468
resume_mode:
  description: How the receiver took the last sender; C(new) when the
    output held nothing of its migration, C(resume) when it went on from
    the durable position the output's state file recorded.
  returned: when the receiver accepted a sender
  type: str
  sample: new
complete:
  description: True when no receiver was started because the output's
    state file records its migration as complete (see I(once) and
    I(force)); the task then reports no change and returns no I(port).
  returned: state is started and no receiver is running
  type: bool
  sample: false
state_file:
  description: The receiver's state file beside the output
    (C(OUTPUT.stm-state)), which records the migration the output holds;
    for I(outputs), the group's one state file, beside the image of the
    name that sorts first.
  returned: when output or outputs is given
  type: str
  sample: /var/lib/disks/disk0.img.stm-state
error:
  description: The receiver's last C(error) event, for example a sender
    refused with C(mismatch) because the output holds another migration.
  returned: when the receiver printed one
  type: dict
  sample: {"event": "error", "code": "EMISMATCH", "message": "refusing to start: ..."}
cmd:
  description: The command that started the receiver.
  returned: when this task started a receiver, or failed to
  type: list
  elements: str
  sample: ["stm-recv", "--listen", "0.0.0.0:0", "--output", "/var/lib/disks/disk0.img",
           "--tls-psk", "/etc/stm/keys.psk", "--once", "--json"]
pid_file:
  description: The receiver's pid file.
  returned: always
  type: str
  sample: /run/stm/disk0.pid
events_file:
  description: The file with the receiver's JSON events (stdout).
  returned: always
  type: str
  sample: /run/stm/disk0.json
log_file:
  description: The file with the receiver's messages (stderr).
  returned: always
  type: str
  sample: /run/stm/disk0.log
'''

import errno
import os
import re
import signal
import stat
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stm.migration.plugins.module_utils.stm_address import (
    parse_host_port,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_credentials import (
    check_tls_options,
    tls_argument_spec,
    tls_cli_args,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_disks import (
    check_names,
    group_state_output,
    output_args,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_events import (
    last_event,
    read_events,
)

# Names end up in file names: keep them to a safe alphabet.
_NAME = re.compile(r'^[A-Za-z0-9_.-]+$')

# The signals held off while a receiver starts (see start()).
_DEFERRED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

# How often the module looks at the receiver's files while it waits.
_POLL_SECONDS = 0.1

# The line stm-recv writes on stderr once its export serves
# (receiver/export.c, when its gate opens at the commit); it has no JSON
# event of its own, so the URI is taken from here unless an event carries
# one.
_EXPORT_LINE = re.compile(r'exporting .* over NBD at (nbds?://\S+) \(nbdkit pid \d+\)')

# The first lines of the state file formats this module reads (version 3
# holds named outputs), and more than the longest such file (16 disks).
_STATE_HEADERS = ('stm-recv-state 2', 'stm-recv-state 3')
_STATE_FILE_MAX = 8192

# Wildcard addresses: an export there could not be reached by the source.
_WILDCARDS = ('', '0.0.0.0', '::', '[::]', '*')


def run_files(run_dir, name):
    """The pid, events and log file of the receiver called NAME."""
    base = os.path.join(run_dir, name)
    return base + '.pid', base + '.json', base + '.log'


def receiver_pid(pid_file, binary_name):
    """The pid in PID_FILE if that process is alive and is stm-recv.

    The name check keeps a stale pid file, whose number the kernel has
    since given to another process, from making us signal that process.
    """
    try:
        with open(pid_file, 'r') as f:
            pid = int(f.read().strip())
    except (IOError, OSError, ValueError):
        return None
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            argv = f.read().split(b'\0')
    except (IOError, OSError):
        return None
    if not argv or os.path.basename(argv[0]).decode('utf-8', 'replace') != binary_name:
        return None
    return pid


def tail(path, lines=20):
    """The last LINES lines of the file at PATH, for error messages."""
    try:
        with open(path, 'r') as f:
            return ''.join(f.readlines()[-lines:]).strip()
    except (IOError, OSError):
        return ''


def output_paths(p):
    """The images to write: the one output, or those of the group."""
    if p['outputs']:
        return [p['outputs'][name] for name in sorted(p['outputs'])]
    return [p['output']] if p['output'] else []


def state_output(p):
    """The output beside which stm-recv keeps its state file, or None."""
    if p['outputs']:
        return group_state_output(p['outputs'])
    return p['output']


def check_output(path):
    """Why PATH cannot be an output, or None."""
    parent = os.path.dirname(os.path.abspath(path)) or '/'
    if not os.path.isdir(parent):
        return 'the directory of output %s does not exist' % path
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            return ('output %s is neither a regular file nor a block device'
                    % path)
    return None


def check_started_params(module, binary):
    """Problems with the arguments of state=started, as sentences."""
    p = module.params
    problems = []
    if p['outputs'] is not None:
        problems += check_names(list(p['outputs']), 'outputs')
        paths = output_paths(p)
        if len(set(os.path.abspath(path) for path in paths)) != len(paths):
            problems.append('outputs: an image is given for two disks')
    elif not p['output']:
        problems.append('output or outputs is required with state=started')
    for path in output_paths(p):
        why = check_output(path)
        if why is not None:
            problems.append(why)
    try:
        parse_host_port(p['listen'])
    except ValueError as e:
        problems.append('listen: %s' % e)
    problems += check_tls_options(p, 'server')
    if binary is None:
        problems.append('cannot find the program %s (set binary to its path)'
                        % p['binary'])
    if p['export'] is not None:
        try:
            host, port = parse_host_port(p['export'])
        except ValueError as e:
            problems.append('export: %s' % e)
        else:
            if host in _WILDCARDS:
                problems.append('export %s: give a name or address the source '
                                'host reaches this host by, not a wildcard'
                                % p['export'])
            if port == 0:
                problems.append('export %s: give a fixed port, not 0' % p['export'])
    for name in ('start_timeout', 'stop_timeout'):
        if p[name] <= 0:
            problems.append('%s must be positive' % name)
    return problems


def refused_output(path, state_beside):
    """Why stm-recv would refuse PATH without --force, or None.

    Only the case that needs no parsing is predicted (for check mode): a
    non-empty regular file with no state file beside STATE_BESIDE (PATH
    itself, or for a group the output that holds the group's state file).
    Damaged or mismatching state files are left to stm-recv, which says
    which.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) and st.st_size > 0 \
            and not os.path.exists(state_beside + '.stm-state'):
        return ('output %s is a non-empty file that is not an stm-recv output '
                '(no %s.stm-state); set force=true to overwrite it'
                % (path, state_beside))
    return None


def output_complete(path):
    """Whether the state file beside the output records its migration as
    complete, that is final: a stm-recv state file (first line
    "stm-recv-state 2", or 3 for named outputs) with the line "state
    final".  A prepared commit is not complete (the source may not have
    flipped).  Anything unreadable or unexpected counts as not complete,
    so that stm-recv itself judges it."""
    if not path:
        return False
    try:
        with open(path + '.stm-state', 'r') as f:
            text = f.read(_STATE_FILE_MAX)
    except (IOError, OSError):
        return False
    lines = text.split('\n')
    return (len(lines) > 1 and lines[0] in _STATE_HEADERS
            and 'state final' in lines[1:])


def find_binary(module):
    """The full path of the stm-recv program, or None."""
    binary = module.params['binary']
    if os.sep in binary:
        return binary if os.access(binary, os.X_OK) else None
    return module.get_bin_path(binary)


def start(module, binary, files):
    """Start the receiver detached and wait for its listening event.

    Returns (pid, the listening event, the command line).
    """
    p = module.params
    pid_file, events_file, log_file = files
    argv = [binary, '--listen', p['listen']]
    if p['outputs']:
        argv += output_args(p['outputs'])
    else:
        argv += ['--output', p['output']]
    argv += tls_cli_args(p)
    if p['once']:
        argv.append('--once')
    if p['force']:
        argv.append('--force')
    if p['export'] is not None:
        argv += ['--export', p['export']]
    argv += p['extra_args']
    argv.append('--json')

    # Popen rather than module.run_command: the receiver must outlive the
    # module, in a session of its own.  Its files are made afresh: the
    # events of an earlier receiver must not be taken for this one's (its
    # port, above all).
    #
    # Signals that would end this module are held off from the start of the
    # receiver until its pid file is written: a module killed in between
    # would leave a receiver that nothing knows how to stop.  The receiver
    # itself starts with them unblocked.
    with open(os.devnull, 'rb') as devnull, \
            open(events_file, 'wb') as out, open(log_file, 'wb') as err:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED_SIGNALS)
        try:
            try:
                proc = subprocess.Popen(
                    argv, stdin=devnull, stdout=out, stderr=err,
                    close_fds=True, start_new_session=True, cwd='/',
                    preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK,
                                                              old_mask))
            except OSError as e:
                module.fail_json(msg='cannot run %s: %s' % (binary, e.strerror or e),
                                 cmd=argv)
            with open(pid_file, 'w') as f:
                f.write('%d\n' % proc.pid)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    deadline = time.time() + p['start_timeout']
    while True:
        listening = last_event(read_events(events_file), 'listening')
        if listening is not None:
            return proc.pid, listening, argv
        status = proc.poll()
        if status is not None:
            os.unlink(pid_file)
            message = tail(log_file) or 'no message'
            if '--force' in message and not p['force']:
                message += ' (the module option force=true is --force)'
            module.fail_json(msg='stm-recv exited with status %d before '
                             'listening on %s: %s' % (status, p['listen'], message),
                             rc=status, cmd=argv, stderr=message,
                             events_file=events_file, log_file=log_file)
        if time.time() >= deadline:
            stop_process(proc.pid, 5)
            proc.poll()
            os.unlink(pid_file)
            module.fail_json(msg='stm-recv did not listen on %s within %d s; '
                             'it was stopped. Its messages: %s'
                             % (p['listen'], p['start_timeout'],
                                tail(log_file) or 'none'),
                             cmd=argv, events_file=events_file, log_file=log_file)
        time.sleep(_POLL_SECONDS)


def stop_process(pid, timeout):
    """SIGTERM PID's process group, then SIGKILL it after TIMEOUT seconds.

    The receiver leads a session of its own, so its group is its pid.
    Returns whether it had to be killed.
    """
    def signal_group(sig):
        try:
            os.killpg(pid, sig)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise

    def gone():
        # A child of ours (started by this very run) must be reaped to go.
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except OSError:
            pass
        try:
            os.kill(pid, 0)
        except OSError as e:
            return e.errno == errno.ESRCH
        # A zombie whose parent has not reaped it yet has finished too.
        try:
            with open('/proc/%d/stat' % pid, 'r') as f:
                return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
        except (IOError, OSError, IndexError):
            return True

    signal_group(signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if gone():
            return False
        time.sleep(_POLL_SECONDS)
    signal_group(signal.SIGKILL)
    return True


def export_uri(events, log_file):
    """The URI of the receiver's export, if it reported one."""
    for event in reversed(events):
        for key in ('export_uri', 'uri'):
            if event.get(key):
                return str(event[key])
    try:
        with open(log_file, 'r') as f:
            lines = f.readlines()
    except (IOError, OSError):
        return None
    for line in reversed(lines):
        m = _EXPORT_LINE.search(line)
        if m:
            return m.group(1)
    return None


def result_base(files, events, output=None, running=False):
    """The return values every outcome shares."""
    pid_file, events_file, log_file = files
    result = dict(pid_file=pid_file, events_file=events_file, log_file=log_file,
                  committed=last_event(events, 'done') is not None)
    if events:
        result['last_event'] = events[-1]
    hello = last_event(events, 'hello')
    if hello is not None:
        result.update(migration_id=hello.get('migration_id'),
                      resume_mode=hello.get('mode'))
        output = output or hello.get('output')
    if output:
        result['state_file'] = output + '.stm-state'
    error = last_event(events, 'error')
    if error is not None:
        result['error'] = error
    uri = export_uri(events, log_file)
    if uri is not None:
        result['export_uri'] = uri
    result['exporting'] = uri is not None and running
    return result


def listen_address(event):
    """HOST:PORT from a listening event, IPv6 hosts in brackets."""
    host = str(event.get('host', ''))
    if ':' in host:
        host = '[%s]' % host
    return '%s:%d' % (host, int(event['port']))


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['started', 'absent'], default='started'),
        listen=dict(type='str', default='0.0.0.0:10809'),
        output=dict(type='path'),
        outputs=dict(type='dict'),
        force=dict(type='bool', default=False),
        export=dict(type='str'),
        once=dict(type='bool', default=True),
        run_dir=dict(type='path', default='/run/stm'),
        binary=dict(type='path', default='stm-recv'),
        extra_args=dict(type='list', elements='str', default=[]),
        start_timeout=dict(type='int', default=30),
        stop_timeout=dict(type='int', default=10),
    )
    argument_spec.update(tls_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('output', 'outputs')])
    p = module.params
    if p['outputs'] is not None:
        # Paths as type=path would have them, ~ and variables expanded.
        p['outputs'] = dict((str(k), os.path.expanduser(os.path.expandvars(str(v))))
                            for k, v in p['outputs'].items())
    state_path = state_output(p)

    if not _NAME.match(p['name']):
        module.fail_json(msg='name %r may only hold letters, digits, "_", '
                         '"." and "-" (it names files in run_dir)' % p['name'])
    files = run_files(p['run_dir'], p['name'])
    pid_file, events_file = files[0], files[1]
    binary_name = os.path.basename(p['binary'])
    pid = receiver_pid(pid_file, binary_name)

    if p['state'] == 'absent':
        result = result_base(files, read_events(events_file), state_path,
                             running=pid is not None)
        if pid is None:
            if os.path.exists(pid_file) and not module.check_mode:
                os.unlink(pid_file)
            module.exit_json(changed=False, running=False, **result)
        if module.check_mode:
            module.exit_json(changed=True, running=True, pid=pid, **result)
        killed = stop_process(pid, p['stop_timeout'])
        os.unlink(pid_file)
        # Its last events may have been written while it stopped.
        result = result_base(files, read_events(events_file), state_path)
        module.exit_json(changed=True, running=False, pid=pid, killed=killed,
                         **result)

    binary = find_binary(module)
    problems = check_started_params(module, binary)
    if problems:
        module.fail_json(msg='stm_recv: ' + '; '.join(problems), problems=problems)

    if pid is not None:
        # Already running: report it again, idempotently.
        events = read_events(events_file)
        result = result_base(files, events, state_path, running=True)
        listening = last_event(events, 'listening')
        if listening is not None:
            result.update(port=int(listening['port']), host=listening.get('host'),
                          listen=listen_address(listening))
        module.exit_json(changed=False, running=True, pid=pid, **result)

    # The migration into this output is over (the source has flipped to
    # it): a receiver started now would only be stopped again, reporting a
    # change on every run of the playbook.
    if p['once'] and not p['force'] and output_complete(state_path):
        module.exit_json(changed=False, running=False, complete=True,
                         msg='the output%s %s already hold%s a complete '
                             'migration (the state file %s.stm-state says so): '
                             'no receiver started; set force=true to receive '
                             'into %s again'
                             % ('s' if p['outputs'] else '',
                                ', '.join(output_paths(p)),
                                '' if p['outputs'] else 's', state_path,
                                'them' if p['outputs'] else 'it'),
                         **result_base(files, read_events(events_file), state_path))

    if module.check_mode:
        # What stm-recv would refuse at startup, predicted where that needs
        # no parsing; a real start leaves it to stm-recv's own message.
        refused = [] if p['force'] else \
            [why for why in (refused_output(path, state_path)
                             for path in output_paths(p)) if why is not None]
        if refused:
            module.fail_json(msg='stm_recv (check mode): ' + '; '.join(refused),
                             problems=refused)
        module.exit_json(changed=True, running=False,
                         msg='stm-recv would be started',
                         **result_base(files, [], state_path))

    if not os.path.isdir(p['run_dir']):
        try:
            os.makedirs(p['run_dir'], 0o700)
        except OSError as e:
            module.fail_json(msg='cannot create run_dir %s: %s'
                             % (p['run_dir'], e.strerror or e))
    pid, listening, argv = start(module, binary, files)
    result = result_base(files, read_events(events_file), state_path,
                         running=True)
    module.exit_json(changed=True, running=True, complete=False, pid=pid, cmd=argv,
                     port=int(listening['port']), host=listening.get('host'),
                     listen=listen_address(listening), **result)


if __name__ == '__main__':
    main()
