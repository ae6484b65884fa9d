#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: BSD-3-Clause
#
# The Ansible module that runs stm-send, the sending end of a live disk
# migration, to completion on the source host.  It parses the CLI's --json
# events: the "done" summary becomes the task's return values and the
# stm_migration fact; an "error" event and the CLI's stderr become the
# task's failure message.  In check mode it only looks: it opens a TCP
# connection to the receiver, reads the credentials files and asks the
# filter's control socket for STATUS, which freezes nothing.  A virtual
# machine's disks migrate as one group (the disks option, stm-send's
# repeated --disk); stm_disks.py builds the options and reads the per-disk
# figures.

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: stm_send
short_description: Migrate a live disk to stm-recv with stm-send
version_added: "0.1.0"
description:
  - Runs C(stm-send) on the source host until the migration ends; a full
    pass, incremental passes while the guest keeps writing, then the
    cutover (freeze, last pass, commit on the destination, flip, thaw).
  - The disk must be served by C(nbdkit --filter=migrate) on the source
    host; the receiver must be running on the destination (see
    M(stm.migration.stm_recv)).
  - On success returns the CLI's summary (bytes sent, passes, downtime,
    seconds), also as the fact C(stm_migration). The task reports a change
    only when the source flipped.
  - On failure the task fails with the CLI's own message. C(stm-send)
    thaws the source before it exits, so the source stays authoritative
    and the guest keeps running on it; I(source_state) says so.
  - A source that has already flipped (its control socket reports the state
    C(fenced) or C(forwarding)) is not migrated again; the task succeeds
    without a change. For a group, only when every disk has flipped.
  - With I(disks), the disks of a virtual machine migrate as one group to
    one receiver started with one output per disk (I(outputs) of
    M(stm.migration.stm_recv)), with one migration id and one cutover,
    every disk flipped or none (see stm-send(1), "A GROUP OF DISKS").
options:
  source:
    description:
      - The source export as a libnbd URI, normally the nbdkit server that
        runs the migrate filter, for example
        C(nbd+unix:///?socket=/run/stm/disk0.sock).
      - One disk; required with I(control) unless I(disks) is given.
    type: str
  control:
    description:
      - The filter's control socket (its C(migrate-control) parameter).
      - One disk; required with I(source) unless I(disks) is given.
    type: path
  disks:
    description:
      - The disks of a group, migrated as one (C(stm-send --disk), once
        per disk, in this order; keep the order when running the same
        migration again, since it is the group's). In place of I(source)
        and I(control).
      - Each name must be one of the receiver's output names (the same
        set), 1 to 64 of C(A-Z a-z 0-9 . _ -), not starting with C(.) or
        C(-); at most 16 disks, each with its own filter.
      - Commas in the values are doubled for C(stm-send)'s QEMU-style
        syntax by the module; give them as they are.
    type: list
    elements: dict
    version_added: "0.4.0"
    suboptions:
      name:
        description:
          - The disk's name in the group.
        type: str
        required: true
      source:
        description:
          - The disk's source export as a libnbd URI (the nbdkit server
            that runs its migrate filter).
          - Required here; the suboption is optional only so that
            M(stm.migration.stm_source_info) takes the same list.
        type: str
      control:
        description:
          - The disk's filter control socket (its C(migrate-control)).
        type: path
        required: true
  dest:
    description:
      - Where C(stm-recv) listens, C(HOST:PORT); IPv6 addresses go in
        brackets.
    type: str
    required: true
  tls_psk:
    description:
      - A TLS pre-shared key file in C(psktool) format (C(user:hexkey)
        lines), the same file the receiver uses.
      - One of I(tls_psk), I(tls_certs) or I(insecure=true) is required.
    type: path
  tls_user:
    description:
      - With I(tls_psk), the identity to use (default the file's first).
    type: str
  tls_certs:
    description:
      - A directory with C(ca-cert.pem), C(client-cert.pem) and
        C(client-key.pem). The receiver's certificate must be signed by
        that CA.
    type: path
  insecure:
    description:
      - No TLS at all; the disk crosses the network in the clear,
        unauthenticated. For trusted networks and tests only.
    type: bool
    default: false
  flip:
    description:
      - What the source does after the cutover. C(fence) makes every further
        request to it fail (the guest must move to the destination).
        C(forward) sends every request to the NBD server at I(forward_uri).
    type: str
    choices: [fence, forward]
    default: fence
  forward_uri:
    description:
      - With I(flip=forward), the destination's NBD URI (default the URI the
        receiver announces, which it does when it runs with I(export), see
        M(stm.migration.stm_recv); C(stm-send) adds its own credentials).
    type: str
  max_downtime:
    description:
      - The longest pause of guest writes allowed, in milliseconds, or
        with a unit such as C(0.5s). C(stm-send) cuts over when the final
        pass is predicted to fit, and calls a cutover off (thawing the
        source, then another pass) when the final pass is not sent and
        durable in time; see the return value C(cutover_overruns). More
        than 0 (the CLI refuses 0).
    type: str
  max_passes:
    description:
      - At most this many passes, the final pass included (at least 2);
        the cutover begins after the one before last even if the copy
        has not converged.
    type: int
  converge:
    description:
      - How the copy catches up with a guest that keeps writing
        (C(--converge)); for C(throttle), C(force) and C(abort), what
        C(stm-send) does when the dirty set stops shrinking for two
        passes.
      - C(throttle) slows guest writes through the filter, step by step,
        until the copy converges; the throttle is released at the flip and
        on every way out.
      - C(force) cuts over at once, with the downtime that takes (the
        I(downtime) return value says how long, and I(forced) is true).
      - C(abort) gives up; the task fails with the source thawed,
        unthrottled and authoritative. With I(max_passes), reaching the
        limit gives up too instead of cutting over.
      - C(mirror) hands every guest write to the destination as it
        happens (the filter's mirror ring), so one pass suffices and the
        guest is not throttled; C(mirror-sync) acknowledges each guest
        write only once the destination has it durable. See
        stm-send(1), MIRRORING.
      - Unset, the CLI's default applies (C(mirror)).
    type: str
    choices: [throttle, force, abort, mirror, mirror-sync]
    version_added: "0.2.0"
  mirror_ring:
    description:
      - With I(converge=mirror) or C(mirror-sync), each disk's mirror ring
        (C(--mirror-ring)), a power of two from C(1M) to C(4G); unset, the
        CLI's default (64M).
    type: str
    version_added: "0.4.0"
  mirror_wait:
    description:
      - With I(converge=mirror) or C(mirror-sync), the longest a guest
        write waits for room in the ring, or for the destination under
        C(mirror-sync), before it is marked dirty instead
        (C(--mirror-wait)), e.g. C(1000) or C(250ms).
    type: str
    version_added: "0.4.0"
    choices: [throttle, force, abort]
  cutover:
    description:
      - When to cut over (C(--cutover)). C(auto) (the CLI's default) cuts
        over as soon as the copy has converged.
      - C(manual) converges, then keeps the destination within the
        downtime budget and waits for the word on I(command_socket), which
        M(stm.migration.stm_cutover) gives. C(CUTOVER) cuts over; C(ABORT)
        gives up with the source thawed and authoritative, and the task
        then fails with C(stm-send)'s message.
      - Since the task lasts until the word is given, run it with
        C(async) set and C(poll) set to 0, give the word from a later
        task, and collect the result with C(ansible.builtin.async_status).
        I(timeout), if set, counts the wait as well.
    type: str
    version_added: "0.3.0"
    choices: [auto, manual]
  command_socket:
    description:
      - The Unix socket on which C(stm-send) takes commands
        (C(--command-socket)), created with mode 0600 and removed when it
        exits; required with I(cutover=manual). Its directory must exist.
    type: path
    version_added: "0.3.0"
  retry_timeout:
    description:
      - After losing the receiver (network cut, receiver restarted), how
        long C(stm-send) keeps reconnecting to resume the same migration
        (C(--retry-timeout)); a bare number is seconds, units such as
        C(90s), C(5m), C(1h) are accepted. C(0) gives up at the first lost
        connection.
      - The source is thawed while C(stm-send) waits; the guest is never
        held. Unset, the CLI's default applies (5 minutes).
      - Keep I(timeout), if set, longer than this, or the module stops
        C(stm-send) while it is still retrying.
    type: str
    version_added: "0.2.0"
  rate:
    description:
      - Cap the average sending rate in bytes per second, for example
        C(100M) (binary multiples).
    type: str
  compress:
    description:
      - Compress the data with zstd on its way to the receiver
        (C(--compress)). C(auto) compresses only while the link is the
        bottleneck and compression speeds the copy up; C(off) never;
        C(zstd) or C(zstd:LEVEL) (LEVEL -5 to -1 or 1 to 19) every message it makes
        at least an eighth smaller. The receiver agrees by itself.
        Unset, the CLI's default applies (C(auto)).
    type: str
    version_added: "0.4.0"
  compare:
    description:
      - Have C(stm-recv) keep what its outputs hold and send only the
        blocks whose hashes differ (C(--compare)), for fail-back or any
        destination that holds an older copy of the disk. The first pass
        compares by itself after C(stm-recv --force) and when resuming.
    type: bool
    default: false
    version_added: "0.4.0"
  verify:
    description:
      - Before the commit, with the source frozen, compare every disk
        with its destination by hashes (C(--verify)); a difference fails
        the task with the source thawed. The guest waits for the whole
        comparison.
    type: bool
    default: false
    version_added: "0.4.0"
  report:
    description:
      - A path on the source host where C(stm-send) writes, when it ends in
        success or failure, a self-contained HTML page picturing the
        migration (C(--report)), with a timeline of throughput, dirty and
        sent bytes over the passes, the cutover and its downtime, and the
        outcome. A page that cannot be written is a warning in the
        module's stderr, not a failure of the migration.
    type: path
    version_added: "0.2.0"
  binary:
    description:
      - The C(stm-send) program, a path or a name looked up in C(PATH).
    type: path
    default: stm-send
  extra_args:
    description:
      - More C(stm-send) options, one list item per word, placed before
        the module's own C(--json --no-progress). For options this module
        does not have yet.
    type: list
    elements: str
    default: []
  timeout:
    description:
      - The longest the migration may take, in seconds. When it is up the
        module stops C(stm-send) (SIGTERM), which thaws the source, and
        fails. 0 waits for as long as it takes.
    type: int
    default: 0
  probe_timeout:
    description:
      - In check mode, and for the look at the control socket before a
        migration, how many seconds to wait for an answer.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: >-
      Checks that the program exists, that the credentials files exist and
      parse, that a TCP connection to I(dest) opens, and that the control
      socket (every disk's, for I(disks)) answers STATUS with the state
      C(tracking). Freezes nothing and sends no data.
  diff_mode:
    support: none
    description: The module shows no differences.
notes:
  - The sender shows no progress bar here; its JSON events are parsed, and
    the number of events of each kind is returned.
  - A migration that lost its receiver and resumed is still one task;
    I(reconnects) and I(reconnect_attempts) say how bumpy the road was.
  - To resume a migration whose C(stm-send) was stopped, run the task again
    with the same I(source), I(control) and I(dest) (the same text), while
    the same nbdkit process serves the source; the migration id is derived
    from them, so the receiver resumes it instead of copying everything
    again. For a group, the same I(disks) in the same order (the id is
    derived from every disk's name, its filter and size, and I(dest)).
seealso:
  - module: stm.migration.stm_recv
author:
  - stm developers
'''

EXAMPLES = r'''
- name: Migrate disk0 to the destination over TLS with a pre-shared key
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_psk: /etc/stm/keys.psk
    max_downtime: 200
  register: migration

- name: Report the cutover
  ansible.builtin.debug:
    msg: >-
      {{ stm_migration.passes }} passes, {{ stm_migration.bytes_copied }} bytes
      copied, {{ stm_migration.bytes_zeroed }} zeroed, {{ stm_migration.wire_bytes }}
      on the wire, downtime {{ stm_migration.downtime_ms }} ms

- name: Migrate a busy disk; keep the guest on the destination's export
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_psk: /etc/stm/keys.psk
    flip: forward           # to the URI the receiver announces (its export)
    converge: force         # never throttle the guest; accept the downtime
    retry_timeout: 10m      # ride out a network outage of up to 10 minutes
    timeout: 3600
  register: migration

- name: Say whether the network got in the way
  ansible.builtin.debug:
    msg: >-
      resumed {{ migration.reconnects }} times, downtime
      {{ migration.downtime_ms }} ms (forced: {{ migration.forced }})

- name: Start a migration that waits for the word before cutting over
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_psk: /etc/stm/keys.psk
    cutover: manual
    command_socket: /run/stm/disk0.cmd
  async: 86400              # the task runs in the background ...
  poll: 0                   # ... and the play goes on at once
  register: migration_job

- name: Later, in the maintenance window, cut over
  stm.migration.stm_cutover:
    command_socket: /run/stm/disk0.cmd
    action: cutover
    wait_ready: 300

- name: Collect the migration's result
  ansible.builtin.async_status:
    jid: "{{ migration_job.ansible_job_id }}"
  register: migration
  until: migration.finished
  retries: 60
  delay: 1

- name: Migrate a VM's two disks as one group; cut over when told
  stm.migration.stm_send:
    disks:
      - name: sys
        source: "nbd+unix:///?socket=/run/stm/vm1-sys.sock"
        control: /run/stm/vm1-sys.ctl
      - name: data
        source: "nbd+unix:///?socket=/run/stm/vm1-data.sock"
        control: /run/stm/vm1-data.ctl
    dest: "dest1.example.com:10809"   # stm_recv with outputs sys and data
    tls_psk: /etc/stm/keys.psk
    cutover: manual
    command_socket: /run/stm/vm1.cmd
  async: 86400
  poll: 0
  register: vm_job

- name: Only check that a migration could start (connectivity, keys, source)
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_certs: /etc/stm/pki
  check_mode: true

- name: Try, and keep going on the source if the migration fails
  stm.migration.stm_send:
    source: "nbd+unix:///?socket=/run/stm/disk0.sock"
    control: /run/stm/disk0.ctl
    dest: "dest1.example.com:10809"
    tls_psk: /etc/stm/keys.psk
  register: attempt
  ignore_errors: true

- name: Say why
  ansible.builtin.debug:
    msg: "{{ attempt.msg }} (source {{ attempt.source_state }})"
  when: attempt is failed
'''

RETURN = r'''
bytes_copied:
  description: Data copied to the receiver over the whole migration, in
    bytes - the payload of its DATA messages, before compression (see
    BYTE COUNTS in stm-send(1)).
  returned: success, not in check mode
  type: int
  sample: 67239936
bytes_zeroed:
  description: Bytes of the ranges sent as zeroes (holes and zero blocks),
    which cost a few bytes each on the link, not their length.
  returned: success, not in check mode
  type: int
  sample: 1006632960
bytes_sent:
  description: The data's payload as sent, after compression; the same as
    I(bytes_copied) while DATA is not compressed.
  returned: success, not in check mode
  type: int
  sample: 67239936
bytes_compared:
  description: Bytes whose hashes were compared with the destination's
    instead of being copied outright (a first pass that compared); of
    these, only the differing units are in I(bytes_copied).
  returned: success, not in check mode
  type: int
  sample: 2147483648
wire_bytes:
  description: Every byte stm-send wrote to its connections to stm-recv
    (message headers, and under TLS the handshake and records), over
    every connection of the run.
  returned: success, not in check mode
  type: int
  sample: 67355120
passes:
  description: How many passes the migration took, the final one included.
  returned: success, not in check mode
  type: int
  sample: 3
mirror_records:
  description: Guest writes and zeroes the mirror rings carried to the
    destination (I(converge=mirror) or C(mirror-sync)).
  returned: success with I(converge=mirror) or C(mirror-sync)
  type: int
  sample: 55635
mirror_bytes:
  description: Write data the mirror rings carried, in bytes (included in
    I(bytes_copied) and I(bytes_sent)).
  returned: success with I(converge=mirror) or C(mirror-sync)
  type: int
  sample: 227872768
downtime_ms:
  description: How long guest writes were paused at the cutover, in
    milliseconds, as the filter measured it (from the C(downtime) event,
    fractional, else the C(done) event's whole milliseconds).
  returned: success, not in check mode
  type: float
  sample: 41.5
downtime:
  description: The CLI's C(downtime) event, the cutover as the filter
    measured it, with C(downtime_ms), C(predicted_ms), C(forced),
    C(freeze_ms) and C(preflush_ms).
  returned: success, not in check mode, when the CLI printed one
  type: dict
  sample: {"event": "downtime", "downtime_ms": 41.5, "predicted_ms": 38.0,
           "forced": false, "freeze_ms": 3.2, "preflush_ms": 1}
forced:
  description: Whether the cutover was forced (I(converge=force),
    I(max_passes) reached, or the budget found too small for a cutover)
    rather than converged within I(max_downtime).
  returned: success, not in check mode
  type: bool
  sample: false
reconnects:
  description: How many times C(stm-send) reconnected to the receiver and
    went on with the migration (its C(resumed) events).
  returned: when the CLI ran
  type: int
  sample: 0
reconnect_attempts:
  description: How many times C(stm-send) waited to reconnect after losing
    the receiver (its C(reconnecting) events), successful or not.
  returned: when the CLI ran
  type: int
  sample: 0
migration_id:
  description: The migration's id (32 hexadecimal digits), from the CLI's
    C(start) event; the source's C(stm_source_info) reports it as
    C(status.migration) once the migration has begun.
  returned: when the CLI started migrating
  type: str
  sample: 0960f0b71d9b77fbcf5891c7e0e66dc3
mode:
  description: C(new) when the receiver held nothing of this migration,
    C(resume) when it held part of it and the run went on from there.
  returned: when the CLI started migrating
  type: str
  sample: new
resumed:
  description: The CLI's C(resumed) events, one a reconnection; C(mode) is
    C(resume) when the receiver still held the migration, C(new) when it
    held nothing of it and everything was sent again.
  returned: when the CLI ran and reconnected
  type: list
  elements: dict
  sample: [{"event": "resumed", "dest": "dest1:10809", "mode": "resume",
            "durable_seq": 12, "confirmed_bytes": 0}]
throttle_bytes_per_second:
  description: The lowest guest write throttle C(stm-send) set to make the
    copy converge (I(converge=throttle)), in bytes per second; absent when
    it never throttled.
  returned: when the CLI ran and throttled
  type: int
  sample: 8388608
cutover_overruns:
  description: The CLI's C(cutover_overrun) events, one for each cutover it
    called off because the final pass would have held guest writes past
    I(max_downtime) (the source was thawed and another pass followed);
    C(held_ms) is how long the guest was held that time,
    C(final_pass_budget_ms) what the final pass had (the budget less
    C(reserved_ms) kept back for the steps after it).
  returned: when the CLI ran and called a cutover off
  type: list
  elements: dict
  sample: [{"event": "cutover_overrun", "attempt": 1, "held_ms": 93.5,
            "final_pass_budget_ms": 92.8, "reserved_ms": 7.2,
            "predicted_ms": 12.6, "max_downtime_ms": 100.0,
            "sent_bytes": 1048576, "pass_bytes": 2097152}]
disks:
  description: For a group (I(disks)), each disk's figures from the CLI's
    C(done) event, in the group's order - C(name), C(size),
    C(bytes_copied), C(bytes_zeroed), C(bytes_sent) (see I(bytes_copied)
    and the others above; a disk has no I(wire_bytes), one connection
    carries them all), C(flip) (C(fence) or C(forward); a disk whose
    forward flip failed after the group commit is fenced instead) and
    C(source_state) (C(fenced) or C(forwarding)).
  returned: success of a group, not in check mode
  type: list
  elements: dict
  sample: [{"name": "sys", "size": 100663296, "bytes_copied": 102760448,
            "bytes_zeroed": 0, "bytes_sent": 102760448,
            "flip": "fence", "source_state": "fenced"},
           {"name": "data", "size": 50331648, "bytes_copied": 31457280,
            "bytes_zeroed": 19922944, "bytes_sent": 31457280,
            "flip": "fence", "source_state": "fenced"}]
disk_states:
  description: For a group, each disk's filter state by name, asked from
    its control socket (STATUS, read-only) after a failure, in check mode,
    and when every disk had already flipped; C(unknown) when it could not
    be asked. After a failure before the group commit every disk is
    C(tracking) (thawed); a C(split) failure (exit 3) says here which
    disk is in which state.
  returned: for a group, when not a success
  type: dict
  sample: {"sys": "tracking", "data": "tracking"}
seconds:
  description: How long the migration took.
  returned: success, not in check mode
  type: float
  sample: 2.31
flipped:
  description: Whether the source flipped (the migration completed). The
    task's C(changed) is the same.
  returned: always
  type: bool
  sample: true
source_state:
  description: The state the source is left in. After a failure C(stm-send)
    thaws the source, which stays authoritative (C(thawed) or
    C(unchanged)); in check mode, and for a source that had already
    flipped, the state its control socket reports. For a group after a
    success, the disks' common state, or C(mixed) when they differ (see
    I(disks)); after a failure, the CLI's C(source_state) (C(split) when
    the disks could not all be flipped or fenced, see I(disk_states)).
  returned: when known
  type: str
  sample: thawed
source_status:
  description: The fields of the control socket's STATUS reply (numbers as
    integers).
  returned: in check mode, and when the source had already flipped; one
    disk
  type: dict
  sample: {"size": 67108864, "block": 65536, "state": "tracking", "writes": 1200}
disk_status:
  description: For a group, the fields of each disk's STATUS reply by
    name, as I(source_status) has them for one disk.
  returned: for a group, in check mode and when every disk had already
    flipped
  type: dict
  sample: {"sys": {"size": 100663296, "state": "tracking"},
           "data": {"size": 50331648, "state": "tracking"}}
summary:
  description: The CLI's final C(done) event, as it printed it.
  returned: success, not in check mode
  type: dict
  sample: {"event": "done", "bytes_sent": 67239936, "bytes_copied": 67239936,
           "bytes_zeroed": 1006632960, "wire_bytes": 67355120, "passes": 3,
           "downtime_ms": 41.5, "seconds": 2.31}
error:
  description: The CLI's C(error) event.
  returned: failure, when the CLI printed one
  type: dict
  sample: {"event": "error", "message": "cannot connect to 10.0.0.2:10809: Connection refused",
           "source_state": "thawed"}
event_counts:
  description: How many JSON events of each kind the CLI printed.
  returned: when the CLI ran
  type: dict
  sample: {"start": 1, "pass_begin": 3, "pass_end": 3, "freeze": 1, "commit": 1, "flip": 1, "done": 1}
rc:
  description: The CLI's exit status (0 success, 1 failure with the source
    thawed, 2 usage error, 3 the source does not serve the guest and the
    migration could not be completed; see stm-send(1)).
  returned: when the CLI ran
  type: int
  sample: 0
stderr:
  description: The CLI's messages.
  returned: when the CLI ran
  type: str
  sample: ""
cmd:
  description: The command that was run.
  returned: when the CLI ran
  type: list
  elements: str
  sample: ["stm-send", "--source", "nbd+unix:///?socket=/run/stm/disk0.sock", "--json"]
ansible_facts:
  description: Facts set on the source host.
  returned: success, not in check mode
  type: complex
  contains:
    stm_migration:
      description: The summary of the migration (I(bytes_copied),
        I(bytes_zeroed), I(bytes_sent), I(wire_bytes), I(passes),
        I(downtime_ms), I(seconds), I(flipped), I(dest), I(forced),
        I(reconnects), I(migration_id), and for a group I(disks)).
      returned: success, not in check mode
      type: dict
      sample: {"bytes_copied": 67239936, "bytes_zeroed": 1006632960,
               "bytes_sent": 67239936, "wire_bytes": 67355120,
               "passes": 3, "downtime_ms": 41.5,
               "seconds": 2.31, "flipped": true, "dest": "dest1:10809",
               "forced": false, "reconnects": 0}
'''

import os
import re
import signal
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stm.migration.plugins.module_utils.stm_address import (
    parse_host_port,
    probe_tcp,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_control import (
    ControlError,
    query_status,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_credentials import (
    check_tls_options,
    tls_argument_spec,
    tls_cli_args,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_disks import (
    DISK_OPTIONS,
    check_disks,
    common_state,
    disk_args,
    done_disks,
)
from ansible_collections.stm.migration.plugins.module_utils.stm_events import (
    count_events,
    last_event,
    parse_events,
    reconnect_results,
    start_results,
)

# States of a source that has flipped: a flip is final for the life of the
# nbdkit process, so there is nothing left to migrate.
_FLIPPED_STATES = ('fenced', 'forwarding')

# The socket path in an nbd+unix URI, to check it exists in check mode.
_UNIX_SOCKET = re.compile(r'[?&]socket=([^&]+)')

# How the CLIs mark their messages on stderr (common/log.c): "PROG: error:
# ..." and "PROG: warning: ...".
_ERROR_LINE = re.compile(r'^[\w.-]+: error: ')
_WARNING_LINE = re.compile(r'^[\w.-]+: warning: ')


def find_binary(module):
    """The full path of the stm-send program, or None."""
    binary = module.params['binary']
    if os.sep in binary:
        return binary if os.access(binary, os.X_OK) else None
    return module.get_bin_path(binary)


def check_params(module, binary):
    """Problems with the arguments that need no network, as sentences."""
    p = module.params
    problems = []
    if binary is None:
        problems.append('cannot find the program %s (set binary to its path)'
                        % p['binary'])
    try:
        parse_host_port(p['dest'])
    except ValueError as e:
        problems.append('dest: %s' % e)
    problems += check_tls_options(p, 'client')
    if p['disks'] is not None:
        problems += check_disks(p['disks'])
    if p['forward_uri'] and p['flip'] != 'forward':
        problems.append('forward_uri goes with flip=forward')
    if p['cutover'] == 'manual' and not p['command_socket']:
        problems.append('cutover=manual needs command_socket, the socket on '
                        'which stm-send waits for the word')
    if p['command_socket']:
        parent = os.path.dirname(os.path.abspath(p['command_socket']))
        if not os.path.isdir(parent):
            problems.append('command_socket: the directory %s does not exist'
                            % parent)
    if p['timeout'] < 0:
        problems.append('timeout must be 0 (no limit) or positive')
    if p['probe_timeout'] <= 0:
        problems.append('probe_timeout must be positive')
    return problems


def source_disks(p):
    """The disks to migrate as dicts with name, source and control; one
    disk without a name in the one-disk form."""
    if p['disks'] is not None:
        return p['disks']
    return [dict(name=None, source=p['source'], control=p['control'])]


def disk_statuses(p, disks):
    """Each disk's STATUS fields, or None where the control socket could
    not be asked; and the problems met, as sentences."""
    statuses, problems = [], []
    for d in disks:
        try:
            statuses.append(query_status(d['control'], p['probe_timeout']))
        except ControlError as e:
            statuses.append(None)
            problems.append(('disk %s: %s' % (d['name'], e)) if d['name']
                            else str(e))
    return statuses, problems


def group_status_results(disks, statuses):
    """disk_states and disk_status of a group, by disk name."""
    return dict(
        disk_states=dict((d['name'], s['state'] if s else 'unknown')
                         for d, s in zip(disks, statuses)),
        disk_status=dict((d['name'], s) for d, s in zip(disks, statuses)
                         if s is not None))


def check_connectivity(module):
    """Problems a migration would meet at once: receiver, sources, controls.

    Returns the problems and each disk's STATUS (None where unknown)."""
    p = module.params
    problems = []
    host, port = parse_host_port(p['dest'])
    reason = probe_tcp(host, port, p['probe_timeout'])
    if reason is not None:
        problems.append('the receiver at %s: %s' % (p['dest'], reason))
    disks = source_disks(p)
    for d in disks:
        m = _UNIX_SOCKET.search(d['source'] or '')
        if (d['source'] or '').startswith('nbd+unix') and m and not os.path.exists(m.group(1)):
            problems.append('the source socket %s does not exist' % m.group(1))
    statuses, more = disk_statuses(p, disks)
    problems += more
    for d, status in zip(disks, statuses):
        if status is not None and status['state'] != 'tracking':
            problems.append('the source%s is %s, not tracking (control socket %s)'
                            % (' of disk %s' % d['name'] if d['name'] else '',
                               status['state'], d['control']))
    return problems, statuses


def build_argv(module, binary):
    """The stm-send command line for the module's parameters."""
    p = module.params
    if p['disks'] is not None:
        argv = [binary] + disk_args(p['disks'])
    else:
        argv = [binary, '--source', p['source'], '--control', p['control']]
    argv += ['--dest', p['dest']]
    argv += tls_cli_args(p)
    flip = p['flip']
    if flip == 'forward' and p['forward_uri']:
        flip = 'forward=' + p['forward_uri']
    argv += ['--flip', flip]
    if p['max_downtime'] is not None:
        argv += ['--max-downtime', str(p['max_downtime'])]
    if p['max_passes'] is not None:
        argv += ['--max-passes', str(p['max_passes'])]
    if p['converge'] is not None:
        argv += ['--converge', p['converge']]
    if p['mirror_ring'] is not None:
        argv += ['--mirror-ring', p['mirror_ring']]
    if p['mirror_wait'] is not None:
        argv += ['--mirror-wait', p['mirror_wait']]
    if p['cutover'] is not None:
        argv += ['--cutover', p['cutover']]
    if p['command_socket']:
        argv += ['--command-socket', p['command_socket']]
    if p['retry_timeout'] is not None:
        argv += ['--retry-timeout', str(p['retry_timeout'])]
    if p['rate'] is not None:
        argv += ['--rate', str(p['rate'])]
    if p['compress'] is not None:
        argv += ['--compress', p['compress']]
    if p['compare']:
        argv += ['--compare']
    if p['verify']:
        argv += ['--verify']
    if p['report'] is not None:
        argv += ['--report', p['report']]
    argv += p['extra_args']
    argv += ['--json', '--no-progress']
    return argv


def run_sender(module, argv):
    """Run stm-send to the end; (rc, stdout, stderr, timed_out).

    Popen rather than module.run_command: the timeout needs to stop the
    sender with SIGTERM (so it thaws the source), which run_command cannot.
    """
    timeout = module.params['timeout'] or None
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                close_fds=True)
    except OSError as e:
        module.fail_json(msg='cannot run %s: %s' % (argv[0], e.strerror or e),
                         cmd=argv, flipped=False, source_state='unchanged')
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        # SIGTERM lets stm-send thaw the source before it exits; the filter
        # would thaw by itself anyway once the control connection closes.
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        timed_out = True
    return (proc.returncode, out.decode('utf-8', 'replace'),
            err.decode('utf-8', 'replace'), timed_out)


def error_text(stderr, error):
    """The CLI's own words for a failure: its error lines, else the event.

    The lines the CLI marks as errors come first; only without any is a
    line that merely mentions an error taken, because the warnings about
    a lost receiver that was retried often name the error that was
    overcome, and would bury the one that ended the migration.
    """
    lines = [line.strip() for line in stderr.splitlines()
             if _ERROR_LINE.match(line.strip())]
    if not lines:
        lines = [line.strip() for line in stderr.splitlines()
                 if 'error' in line.lower() and line.strip()
                 and not _WARNING_LINE.match(line.strip())]
    if lines:
        return ' / '.join(lines)
    if error is not None and error.get('message'):
        return 'stm-send: error: %s' % error['message']
    return stderr.strip()


def check_only(module, problems):
    """Check mode: report every problem at once, the network's too, so that
    one check run says all that would stop a migration.  Does not return."""
    p = module.params
    statuses = []
    if not any(problem.startswith(('dest:', 'disks:')) for problem in problems):
        more, statuses = check_connectivity(module)
        problems += more
    result = dict(flipped=False)
    if p['disks'] is not None and statuses:
        result.update(group_status_results(p['disks'], statuses))
        result['source_state'] = common_state(result['disk_states'].values())
    elif statuses and statuses[0] is not None:
        result.update(source_status=statuses[0],
                      source_state=statuses[0]['state'])
    if problems:
        module.fail_json(msg='stm_send (check mode): ' + '; '.join(problems),
                         problems=problems, **result)
    module.exit_json(changed=True, msg='a migration to %s could start'
                     % p['dest'], **result)


def exit_if_flipped(module, disks):
    """End the task without a change if every disk has flipped already.

    A source that flipped has been migrated: nothing to do.  For a group
    stopped with only some disks flipped, stm-send itself completes the
    migration or reports the split.  If a control socket cannot be asked,
    stm-send will say why itself.
    """
    statuses = disk_statuses(module.params, disks)[0]
    if not all(s is not None and s['state'] in _FLIPPED_STATES for s in statuses):
        return
    states = [s['state'] for s in statuses]
    if module.params['disks'] is not None:
        extra = group_status_results(disks, statuses)
    else:
        extra = dict(source_status=statuses[0])
    module.exit_json(changed=False, flipped=False,
                     source_state=common_state(states),
                     msg='the source has already flipped (state %s): '
                     'nothing to migrate' % ', '.join(sorted(set(states))),
                     **extra)


def fail_run(module, disks, events, common, timed_out):
    """Fail the task after a run of stm-send that did not flip the source,
    with the CLI's own message.  Does not return."""
    p = module.params
    rc, err = common['rc'], common['stderr']
    error = last_event(events, 'error')
    # A usage error (2) stops stm-send before it touches the source.
    source_state = (error or {}).get('source_state',
                                     'unchanged' if rc == 2 else 'thawed')
    if timed_out:
        message = ('stm-send did not finish within %d s and was stopped; '
                   '%s' % (p['timeout'], error_text(err, error)))
    elif rc == 0:
        message = 'stm-send exited 0 without its summary (done event)'
    else:
        message = error_text(err, error)
    if error is not None:
        common['error'] = error
    if p['disks'] is not None:
        # Where each disk stands is the first thing an operator of a group
        # needs after a failure, above all after a split (exit 3).
        common['disk_states'] = group_status_results(
            disks, disk_statuses(p, disks)[0])['disk_states']
    module.fail_json(msg=message, flipped=False, source_state=source_state,
                     **common)


def succeed(module, events, done, common):
    """End the task with the summary of a run that flipped the source."""
    p = module.params
    # The downtime event has the filter's measure to the microsecond; the
    # done event rounds it to whole milliseconds.  Older CLIs print only
    # the latter.
    downtime = last_event(events, 'downtime')
    downtime_ms = float(done.get('downtime_ms', 0))
    forced = False
    if downtime is not None:
        try:
            downtime_ms = float(downtime.get('downtime_ms', downtime_ms))
        except (TypeError, ValueError):
            pass
        forced = bool(downtime.get('forced', False))
        common['downtime'] = downtime
    summary = dict(
        bytes_copied=int(done.get('bytes_copied', 0)),
        bytes_zeroed=int(done.get('bytes_zeroed', 0)),
        bytes_sent=int(done.get('bytes_sent', 0)),
        bytes_compared=int(done.get('bytes_compared', 0)),
        wire_bytes=int(done.get('wire_bytes', 0)),
        passes=int(done.get('passes', 0)),
        downtime_ms=downtime_ms,
        seconds=float(done.get('seconds', 0)),
    )
    if 'mirror_records' in done:
        summary['mirror_records'] = int(done['mirror_records'])
        summary['mirror_bytes'] = int(done.get('mirror_bytes', 0))
    flipped = last_event(events, 'flip') is not None
    fact = dict(summary, flipped=flipped, dest=p['dest'], forced=forced,
                reconnects=common['reconnects'],
                migration_id=common.get('migration_id'))
    source_state = 'fenced' if p['flip'] == 'fence' else 'forwarding'
    if p['disks'] is not None:
        per_disk = done_disks(done)
        fact['disks'] = common['disks'] = per_disk
        if per_disk:
            source_state = common_state([d['source_state'] for d in per_disk])
    module.exit_json(changed=flipped, flipped=flipped, forced=forced,
                     source_state=source_state,
                     summary=done, ansible_facts=dict(stm_migration=fact),
                     **dict(summary, **common))


def main():
    argument_spec = dict(
        source=dict(type='str'),
        control=dict(type='path'),
        disks=dict(type='list', elements='dict', options=DISK_OPTIONS),
        dest=dict(type='str', required=True),
        flip=dict(type='str', choices=['fence', 'forward'], default='fence'),
        forward_uri=dict(type='str'),
        max_downtime=dict(type='str'),
        # Not a secret (a count of passes), whatever its name suggests.
        max_passes=dict(type='int', no_log=False),
        converge=dict(type='str', choices=['throttle', 'force', 'abort',
                                           'mirror', 'mirror-sync']),
        mirror_ring=dict(type='str'),
        mirror_wait=dict(type='str'),
        cutover=dict(type='str', choices=['auto', 'manual']),
        command_socket=dict(type='path'),
        retry_timeout=dict(type='str'),
        rate=dict(type='str'),
        compress=dict(type='str'),
        compare=dict(type='bool', default=False),
        verify=dict(type='bool', default=False),
        report=dict(type='path'),
        binary=dict(type='path', default='stm-send'),
        extra_args=dict(type='list', elements='str', default=[]),
        timeout=dict(type='int', default=0),
        probe_timeout=dict(type='int', default=5),
    )
    argument_spec.update(tls_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[('disks', 'source'),
                                               ('disks', 'control')],
                           required_together=[('source', 'control')],
                           required_one_of=[('disks', 'source')])
    p = module.params

    binary = find_binary(module)
    problems = check_params(module, binary)
    if module.check_mode:
        check_only(module, problems)
    if problems:
        module.fail_json(msg='stm_send: ' + '; '.join(problems),
                         problems=problems, flipped=False,
                         source_state='unchanged')
    disks = source_disks(p)
    exit_if_flipped(module, disks)

    argv = build_argv(module, binary)
    rc, out, err, timed_out = run_sender(module, argv)
    events = parse_events(out)
    done = last_event(events, 'done')
    common = dict(rc=rc, stderr=err, cmd=argv, event_counts=count_events(events))
    common.update(start_results(events))
    common.update(reconnect_results(events))
    if rc != 0 or done is None:
        fail_run(module, disks, events, common, timed_out)
    succeed(module, events, done, common)


if __name__ == '__main__':
    main()
