# SPDX-License-Identifier: BSD-3-Clause
# -*- coding: utf-8 -*-
"""Reading the CLIs' --json output: one JSON object per line.

stm-send and stm-recv print events (start, progress, commit, done, error,
listening, ...) each as a line holding an object with an "event" key.  This
file turns such output into a list of dicts and picks events out of it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json


def parse_events(text):
    """The event objects in TEXT, in order; other lines are skipped.

    A last line cut short (the process still writing, or killed) is not
    an event yet, so it is skipped like any line that does not parse.
    """
    events = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith('{'):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and 'event' in obj:
            events.append(obj)
    return events


def last_event(events, name):
    """The last event called NAME, or None."""
    for event in reversed(events):
        if event.get('event') == name:
            return event
    return None


def read_events(path):
    """The events in the file at PATH ([] if it does not exist yet)."""
    try:
        with open(path, 'r') as f:
            return parse_events(f.read())
    except (IOError, OSError):
        return []
