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


def count_events(events):
    """How many events of each kind EVENTS holds."""
    counts = {}
    for event in events:
        counts[event['event']] = counts.get(event['event'], 0) + 1
    return counts


def start_results(events):
    """The migration the run was, from its start event: its id (what the
    source's stm_source_info reports as status.migration while it runs)
    and whether the receiver resumed it."""
    start = next((e for e in events if e.get('event') == 'start'), None)
    if start is None:
        return {}
    return dict(migration_id=start.get('migration_id'), mode=start.get('mode'))


def reconnect_results(events):
    """What the events say about lost receivers, guest throttling and
    cutovers called off.

    Returned whether or not the migration succeeded: a failure after
    retries is best understood with the number of attempts beside it.
    """
    resumed = [e for e in events if e.get('event') == 'resumed']
    result = dict(reconnects=len(resumed),
                  reconnect_attempts=sum(1 for e in events
                                         if e.get('event') == 'reconnecting'))
    if resumed:
        result['resumed'] = resumed
    # A throttle event of 0 bytes per second is the release, not a limit.
    limits = [int(e['bytes_per_second']) for e in events
              if e.get('event') == 'throttle'
              and int(e.get('bytes_per_second', 0)) > 0]
    if limits:
        result['throttle_bytes_per_second'] = min(limits)
    overruns = [e for e in events if e.get('event') == 'cutover_overrun']
    if overruns:
        result['cutover_overruns'] = overruns
    return result
