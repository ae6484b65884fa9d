#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the owner of a freeze vanishes.  stm-send is
# killed (SIGKILL) during its final pass, while the source is frozen.  The
# filter must thaw by itself at once (its owning control connection
# closed): the writes held at the gate complete, the source keeps tracking
# and takes every write.
#
# A large --max-downtime makes stm-send cut over right after the full
# pass, and --rate makes the final pass (the 16 MiB the guest dirtied)
# last seconds, long enough to be hit.
#
# --converge throttle: the scenario needs a final pass long enough to be
# killed in, which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=32
start_psk_source "$size_mib"
start_writer_and_wait 16m 120 0 --rate=,1m

start_psk_recv
start_stm_send send --tls-psk "$tmp/keys.psk" --rate 4M --max-downtime 60s \
    --converge throttle

frozen () { grep -q '"event":"freeze"' "$tmp/send.out" && state_is frozen; }
wait_for 60 "stm-send to freeze the source" frozen
alive "$SEND_PID" || fail "stm-send ended before it could be killed while frozen"
w="$(status_writes)"
info "killing stm-send (pid $SEND_PID) while the source is frozen ($w writes so far)"
{ kill -KILL "$SEND_PID"; wait "$SEND_PID"; } 2>/dev/null || true

wait_for 10 "the filter to thaw after stm-send died" state_is tracking
wait_for 20 "guest writes to complete again" writes_above "$w"
alive "$WRITER_PID" || fail "the guest writer stopped (a write failed?)"
[ "$(status_field owner)" = none ] || fail "the dead stm-send still owns the filter"
nbd_write 20M 64k 0x3c || fail "a write to the source failed after stm-send died"
info "PASS"
