#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-3-Clause
#
# The Ansible module that reports the state of a source disk: it asks the
# migrate filter's control socket for STATUS (which any connection may ask,
# and which changes nothing) and returns the fields.  Playbooks use it to
# wait for a source, and to check after a failed migration that the source
# is still tracking, i.e. serving the guest.

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
options:
  control:
    description:
      - The filter's control socket (its C(migrate-control) parameter).
    type: path
    required: true
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
'''

RETURN = r'''
state:
  description: The filter's state, C(tracking), C(frozen), C(fenced) or
    C(forwarding).
  returned: success
  type: str
  sample: tracking
status:
  description: Every field of the STATUS reply, numbers as integers (size,
    block, generation, dirty and unconfirmed counts, owner, writes, ...);
    C(migration) is the id of the migration the change tracking follows
    (C(none) or C(unknown) otherwise), as stm_send reports it.
  returned: success
  type: dict
  sample: {"size": 67108864, "block": 65536, "generation": 2, "state": "tracking",
           "writes": 1200, "freezes": 1}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stm.migration.plugins.module_utils.stm_control import (
    ControlError,
    query_status,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            control=dict(type='path', required=True),
            timeout=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    if module.params['timeout'] <= 0:
        module.fail_json(msg='timeout must be positive')
    try:
        status = query_status(module.params['control'], module.params['timeout'])
    except ControlError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, state=status['state'], status=status)


if __name__ == '__main__':
    main()
