#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-3-Clause
#
# The Ansible module that reports the state of a source disk: it asks the
# migrate filter's control socket for STATUS (which any connection may ask,
# and which changes nothing) and returns the fields.  Playbooks use it to
# wait for a source, and to check after a failed migration that the source
# is still tracking, i.e. serving the guest.  For a virtual machine's disks
# (the disks option, the list stm_send takes) it asks every disk's filter,
# so that a playbook can check a whole VM before migrating it as a group.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stm_source_info
short_description: Report the state of a disk served through the migrate filter
version_added: "0.1.0"
description:
  - Asks the control socket of C(nbdkit --filter=migrate) for C(STATUS) and
    returns its fields. This changes nothing on the source.
  - C(state) is C(tracking) while the source serves the guest (also after a
    failed migration), C(frozen) during a cutover, C(fenced) or
    C(forwarding) after a completed one.
  - With I(disks), asks every disk's filter and returns each disk's state;
    I(state) is then the disks' common state, or C(mixed), and
    I(tracking) says whether every disk serves its guest from its source
    (what a group migration needs to start, and what a failed one leaves).
options:
  control:
    description:
      - The filter's control socket (its C(migrate-control) parameter).
      - One disk; required unless I(disks) is given.
    type: path
  disks:
    description:
      - The disks of a virtual machine, in place of I(control); the same
        list as M(stm.migration.stm_send)'s I(disks) (I(source) is
        accepted and not used).
      - The task fails, naming every disk whose filter does not answer,
        if any does not.
    type: list
    elements: dict
    version_added: "0.4.0"
    suboptions:
      name:
        description:
          - The disk's name.
        type: str
        required: true
      control:
        description:
          - The disk's filter control socket.
        type: path
        required: true
      source:
        description:
          - The disk's source URI; not used here.
        type: str
  timeout:
    description:
      - How many seconds to wait for the answer.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: >-
      Runs as usual, since the module only reads.
  diff_mode:
    support: none
    description: The module shows no differences.
seealso:
  - module: stm.migration.stm_send
author:
  - stm developers
'''

EXAMPLES = r'''
- name: Look at the source
  stm.migration.stm_source_info:
    control: /run/stm/disk0.ctl
  register: source

- name: The guest must still be served by the source
  ansible.builtin.assert:
    that: source.state == 'tracking'

- name: Look at every disk of a VM before migrating it as a group
  stm.migration.stm_source_info:
    disks:
      - name: sys
        control: /run/stm/vm1-sys.ctl
      - name: data
        control: /run/stm/vm1-data.ctl
  register: vm

- name: Every disk must be tracking (none frozen, none flipped)
  ansible.builtin.assert:
    that: vm.tracking
    fail_msg: "not every disk is tracking: {{ vm.states }}"
'''

RETURN = r'''
state:
  description: The filter's state, C(tracking), C(frozen), C(fenced) or
    C(forwarding); with I(disks), the disks' common state, or C(mixed)
    when they differ.
  returned: success
  type: str
  sample: tracking
tracking:
  description: Whether the state is C(tracking), with I(disks) every
    disk's.
  returned: success
  type: bool
  sample: true
states:
  description: Each disk's state by name.
  returned: success, with I(disks)
  type: dict
  sample: {"sys": "tracking", "data": "tracking"}
disks:
  description: Each disk's C(name), C(control), C(state) and C(status)
    (the fields of its STATUS reply, as I(status) has them), in the given
    order.
  returned: success, with I(disks)
  type: list
  elements: dict
  sample: [{"name": "sys", "control": "/run/stm/vm1-sys.ctl", "state": "tracking",
            "status": {"size": 100663296, "state": "tracking"}}]
status:
  description: Every field of the STATUS reply, numbers as integers (size,
    block, generation, dirty and unconfirmed counts, owner, writes, ...);
    C(migration) is the id of the migration the change tracking follows
    (C(none) or C(unknown) otherwise), as stm_send reports it.
  returned: success, without I(disks)
  type: dict
  sample: {"size": 67108864, "block": 65536, "generation": 2, "state": "tracking",
           "writes": 1200, "freezes": 1}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stm.migration.plugins.module_utils.stm_control import (
    ControlError,
    query_status,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_disks import (
    DISK_OPTIONS,
    check_names,
    common_state,
)


def group_info(module):
    """Every disk's STATUS; fails the task naming each disk that does not
    answer, after asking them all."""
    p = module.params
    problems = check_names([d['name'] for d in p['disks']], 'disks')
    if problems:
        module.fail_json(msg='; '.join(problems), problems=problems)
    disks, problems = [], []
    for d in p['disks']:
        try:
            status = query_status(d['control'], p['timeout'])
        except ControlError as e:
            problems.append('disk %s: %s' % (d['name'], e))
            continue
        disks.append(dict(name=d['name'], control=d['control'],
                          state=status['state'], status=status))
    states = dict((d['name'], d['state']) for d in disks)
    if problems:
        module.fail_json(msg='; '.join(problems), problems=problems,
                         states=states, disks=disks)
    state = common_state(states.values())
    module.exit_json(changed=False, state=state, tracking=state == 'tracking',
                     states=states, disks=disks)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            control=dict(type='path'),
            disks=dict(type='list', elements='dict', options=DISK_OPTIONS),
            timeout=dict(type='int', default=5),
        ),
        mutually_exclusive=[('control', 'disks')],
        required_one_of=[('control', 'disks')],
        supports_check_mode=True,
    )
    if module.params['timeout'] <= 0:
        module.fail_json(msg='timeout must be positive')
    if module.params['disks'] is not None:
        group_info(module)
    try:
        status = query_status(module.params['control'], module.params['timeout'])
    except ControlError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, state=status['state'],
                     tracking=status['state'] == 'tracking', status=status)


if __name__ == '__main__':
    main()
