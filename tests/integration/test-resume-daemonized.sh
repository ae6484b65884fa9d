#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the resume tests with nbdkit started exactly as
# the README starts it: without -f, so it forks into the background and is
# known only by its pidfile (-P), as under most service managers.  Before
# the filter reported an instance id, the sender took the migration's
# identity from the process that created the control socket, which a
# daemonized nbdkit has already left: a restarted sender was refused.
STM_NBDKIT_MODE=daemon
source "$(dirname "$0")/resume-under-mode.sh"
