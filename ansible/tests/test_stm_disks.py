#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Unit tests of plugins/module_utils/stm_disks.py, the pure decisions about
# a group of disks (names, --disk and --output options, the group's state
# file, the per-disk figures of a done event).  Run by
# tests/integration/test-ansible-group.sh as "python3 test_stm_disks.py",
# with the standard library alone: the file is loaded by its path, without
# Ansible.

import importlib.util
import os
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
_SPEC = importlib.util.spec_from_file_location(
    'stm_disks', os.path.join(_HERE, '..', 'plugins', 'module_utils', 'stm_disks.py'))
stm_disks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(stm_disks)


class Names(unittest.TestCase):
    def test_the_wire_alphabet(self):
        for good in ('sys', 'a', 'vm1-data_0.img', '0', 'x' * 64):
            self.assertIsNone(stm_disks.disk_name_problem(good), good)
        for bad in ('', '.hidden', '-opt', 'a,b', 'a b', 'a/b', 'x' * 65, 'é'):
            self.assertIsNotNone(stm_disks.disk_name_problem(bad), bad)

    def test_a_group(self):
        self.assertEqual(stm_disks.check_names(['sys', 'data'], 'disks'), [])
        self.assertEqual(len(stm_disks.check_names(['sys', 'sys'], 'disks')), 1)
        self.assertIn('twice', stm_disks.check_names(['sys', 'sys'], 'disks')[0])
        self.assertEqual(len(stm_disks.check_names([], 'outputs')), 1)
        names = ['d%d' % i for i in range(17)]
        self.assertIn('at most 16', stm_disks.check_names(names, 'disks')[0])
        self.assertEqual(stm_disks.check_names(names[:16], 'disks'), [])

    def test_disks_need_a_source_and_their_own_filter(self):
        disks = [dict(name='a', source='nbd+unix:///?socket=/a', control='/c'),
                 dict(name='b', source=None, control='/c')]
        problems = stm_disks.check_disks(disks)
        self.assertEqual(len(problems), 2, problems)


class Options(unittest.TestCase):
    def test_commas_are_doubled(self):
        self.assertEqual(stm_disks.qemu_escape('a,b,,c'), 'a,,b,,,,c')
        disk = dict(name='sys', source='nbd+unix:///?socket=/r/s,1.sock',
                    control='/r/c,tl')
        self.assertEqual(stm_disks.disk_option(disk),
                         'name=sys,source=nbd+unix:///?socket=/r/s,,1.sock,'
                         'control=/r/c,,tl')

    def test_disk_args_keep_the_group_order(self):
        disks = [dict(name='z', source='u1', control='c1'),
                 dict(name='a', source='u2', control='c2')]
        self.assertEqual(stm_disks.disk_args(disks),
                         ['--disk', 'name=z,source=u1,control=c1',
                          '--disk', 'name=a,source=u2,control=c2'])

    def test_output_args(self):
        self.assertEqual(stm_disks.output_args({'sys': '/s=1', 'data': '/d'}),
                         ['--output', 'data=/d', '--output', 'sys=/s=1'])

    def test_the_state_file_is_beside_the_first_name(self):
        outputs = {'sys': '/s', 'data': '/d', 'Zed': '/z', '_x': '/x'}
        # strcmp order: upper case before "_" before lower case.
        self.assertEqual(stm_disks.group_state_output(outputs), '/z')
        self.assertEqual(stm_disks.group_state_output({'sys': '/s', 'data': '/d'}), '/d')


class Results(unittest.TestCase):
    def test_done_disks(self):
        done = {'event': 'done', 'bytes_sent': 3, 'disks': [
            {'name': 'sys', 'size': 8, 'bytes_sent': 6, 'bytes_copied': 7,
             'bytes_zeroed': 2, 'flip': 'forward'},
            {'name': 'data', 'size': 4, 'bytes_sent': 5, 'flip': 'fence'}]}
        self.assertEqual(stm_disks.done_disks(done), [
            dict(name='sys', size=8, bytes_copied=7, bytes_zeroed=2, bytes_sent=6,
                 flip='forward', source_state='forwarding'),
            # From a CLI without the counts: 0.
            dict(name='data', size=4, bytes_copied=0, bytes_zeroed=0, bytes_sent=5,
                 flip='fence', source_state='fenced')])
        self.assertEqual(stm_disks.done_disks({'event': 'done'}), [])
        self.assertEqual(stm_disks.done_disks(None), [])

    def test_common_state(self):
        self.assertEqual(stm_disks.common_state(['fenced', 'fenced']), 'fenced')
        self.assertEqual(stm_disks.common_state(['fenced', 'forwarding']), 'mixed')


if __name__ == '__main__':
    unittest.main()
