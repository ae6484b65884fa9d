#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-3-Clause
#
# The Ansible module that tells a running stm-send (started with
# --cutover manual --command-socket PATH, typically by an stm_send task
# run with async and poll 0) to cut over or to give up, or asks how far it
# is, through its command socket; the reply is returned parsed, and an ERR
# reply fails the task.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stm_cutover
short_description: Cut over, abort or look at a migration waiting for the word
version_added: "0.3.0"
description:
  - Talks to the command socket of a C(stm-send) started with
    C(cutover=manual) (see M(stm.migration.stm_send)), which has copied
    the disk and keeps the destination within its downtime budget until
    told what to do.
  - C(action=status) asks where the migration stands (changes nothing).
  - C(action=cutover) makes it cut over, and returns once the source has
    flipped, with the downtime.
  - C(action=abort) makes it give up; the source is thawed and stays
    authoritative, and C(stm-send) exits 1 (the C(stm_send) task then
    fails with that message, which the playbook expects).
  - An C(ERR) reply fails the task with the reply's errno-like name and
    message; C(ERR EAGAIN) to a cutover means the copy is not ready yet
    (see I(wait_ready)).
options:
  command_socket:
    description:
      - The Unix socket C(stm-send) serves (its C(--command-socket)), on
        the source host.
    type: path
    required: true
  action:
    description:
      - C(status), C(cutover) or C(abort).
    type: str
    choices: [status, cutover, abort]
    default: status
  wait_ready:
    description:
      - With I(action=cutover), for how many seconds to keep asking again
        (every I(retry_interval) seconds) while the answer is
        C(ERR EAGAIN) (not ready yet). 0 fails at the first such answer.
    type: int
    default: 0
  retry_interval:
    description:
      - Seconds between two attempts under I(wait_ready).
    type: float
    default: 1.0
  timeout:
    description:
      - How many seconds to wait for one reply. The reply to a cutover
        comes when the cutover is over (the final pass sent and durable,
        the commit, the flip), so keep this well above the downtime
        budget.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: >-
      Sends only C(STATUS), whatever the action, and reports whether the
      action would change anything (C(cutover) and C(abort) would).
  diff_mode:
    support: none
    description: The module shows no differences.
seealso:
  - module: stm.migration.stm_send
author:
  - stm developers
'''

EXAMPLES = r'''
- name: Start the migration; it waits for the word once it has converged
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_psk: /etc/stm/keys.psk
    cutover: manual
    command_socket: /run/stm/disk0.cmd
  async: 86400
  poll: 0
  register: migration_job

- name: Wait until it is ready to cut over
  stm.migration.stm_cutover:
    command_socket: /run/stm/disk0.cmd
    action: status
  register: cmd
  until: cmd.status.ready | default(0) == 1
  retries: 600
  delay: 5

- name: Cut over (in the maintenance window)
  stm.migration.stm_cutover:
    command_socket: /run/stm/disk0.cmd
    action: cutover
    wait_ready: 60
  register: cutover

- name: Collect stm-send's result
  ansible.builtin.async_status:
    jid: "{{ migration_job.ansible_job_id }}"
  register: migration
  until: migration.finished
  retries: 120
  delay: 1

- name: Or give up, leaving the guest on the source
  stm.migration.stm_cutover:
    command_socket: /run/stm/disk0.cmd
    action: abort
  when: abandon | default(false)
'''

RETURN = r'''
reply:
  description: The reply line as C(stm-send) sent it.
  returned: when a reply came
  type: str
  sample: OK flipped downtime_ms=41
fields:
  description: The key=value words of an C(OK) reply, numbers as numbers.
  returned: when the reply was OK
  type: dict
  sample: {"downtime_ms": 41}
status:
  description: With I(action=status), and in check mode, the fields of
    the STATUS reply (C(phase), C(pass), C(dirty_bytes),
    C(predicted_downtime_ms), C(ready) and any others).
  returned: action status, and check mode
  type: dict
  sample: {"phase": "ready", "pass": 7, "dirty_bytes": 1048576,
           "predicted_downtime_ms": 12, "ready": 1}
flipped:
  description: Whether the source flipped (a successful cutover).
  returned: action cutover, not in check mode
  type: bool
  sample: true
downtime_ms:
  description: How long guest writes were held at the cutover, in
    milliseconds.
  returned: a successful cutover
  type: float
  sample: 41
errno:
  description: The errno-like name of an C(ERR) reply (C(EAGAIN),
    C(EALREADY), C(EIO), C(EINVAL), ...).
  returned: failure with an ERR reply
  type: str
  sample: EAGAIN
message:
  description: The message of an C(ERR) reply.
  returned: failure with an ERR reply
  type: str
  sample: "not ready: dirty_bytes=5242880"
attempts:
  description: How many times the command was sent (more than 1 only
    under I(wait_ready)).
  returned: when a command was sent
  type: int
  sample: 1
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stm.migration.plugins.module_utils.stm_command import (
    CommandError,
    send_command,
)


def ask(module, command):
    """Send command; fail the task if the socket cannot be asked."""
    try:
        return send_command(module.params['command_socket'], command,
                            module.params['timeout'])
    except CommandError as e:
        module.fail_json(msg=str(e), changed=False)


def send_with_retries(module, command):
    """Send command, again while it is answered EAGAIN and wait_ready lasts.

    Returns (reply, attempts).
    """
    p = module.params
    deadline = time.monotonic() + p['wait_ready']
    attempts = 0
    while True:
        attempts += 1
        reply = ask(module, command)
        if reply['ok'] or reply['errno'] != 'EAGAIN' or p['wait_ready'] <= 0:
            return reply, attempts
        if time.monotonic() + p['retry_interval'] > deadline:
            return reply, attempts
        time.sleep(p['retry_interval'])


def returned(reply):
    """The return values for a parsed reply."""
    if reply['ok']:
        return dict(reply=reply['reply'], fields=reply['fields'])
    return dict(reply=reply['reply'], errno=reply['errno'],
                message=reply['message'])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command_socket=dict(type='path', required=True),
            action=dict(type='str', choices=['status', 'cutover', 'abort'],
                        default='status'),
            wait_ready=dict(type='int', default=0),
            retry_interval=dict(type='float', default=1.0),
            timeout=dict(type='int', default=120),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['timeout'] <= 0:
        module.fail_json(msg='timeout must be positive')
    if p['wait_ready'] < 0 or p['retry_interval'] <= 0:
        module.fail_json(msg='wait_ready must be 0 or more and retry_interval '
                         'positive')
    action = p['action']

    if module.check_mode or action == 'status':
        reply = ask(module, 'STATUS')
        if not reply['ok']:
            module.fail_json(msg='STATUS failed on %s: %s'
                             % (p['command_socket'], reply['reply']),
                             changed=False, attempts=1, **returned(reply))
        module.exit_json(changed=action != 'status', status=reply['fields'],
                         attempts=1, **returned(reply))

    command = action.upper()
    reply, attempts = send_with_retries(module, command)
    result = dict(returned(reply), attempts=attempts)
    if not reply['ok']:
        if action == 'cutover':
            result['flipped'] = False
        module.fail_json(msg='%s refused by stm-send (%s): %s %s'
                         % (command, p['command_socket'], reply['errno'],
                            reply['message']),
                         changed=False, **result)
    if action == 'cutover':
        # "OK flipped downtime_ms=N" (stm-send(1)).
        result['flipped'] = reply['text'].split()[:1] == ['flipped']
        if 'downtime_ms' in reply['fields']:
            result['downtime_ms'] = float(reply['fields']['downtime_ms'])
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()
