# SPDX-License-Identifier: BSD-3-Clause
# stm integration tests: run the resume tests (sender killed, receiver
# restarted, relay cut) with nbdkit started another way.  Sourced by
# test-resume-daemonized.sh and test-resume-captive.sh after they set
# STM_NBDKIT_MODE (see start_nbdkit_migrate in functions.sh).
#
# The migration id a restarted sender presents must not depend on how
# nbdkit runs: each test below fails (a full recopy, or a receiver that
# refuses the restarted sender as another migration) if it does.  A test
# that fails makes this one fail; it skips only if all of them skip.

export STM_NBDKIT_MODE
here="$(dirname "$0")"
status=77
for t in test-resume-sender-killed.sh test-resume-receiver-restarted.sh test-relay-cut.sh; do
    echo "=== $t with STM_NBDKIT_MODE=$STM_NBDKIT_MODE"
    r=0
    bash "$here/$t" || r=$?
    case "$r" in
        0) [ "$status" -eq 77 ] && status=0 ;;
        77) ;;
        *) echo "$t failed with STM_NBDKIT_MODE=$STM_NBDKIT_MODE (status $r)" >&2
           status=1 ;;
    esac
done
exit "$status"
