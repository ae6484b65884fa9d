#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the resume tests with nbdkit captive, serving
# under nbdkit --run until its command ends.
STM_NBDKIT_MODE=run
source "$(dirname "$0")/resume-under-mode.sh"
