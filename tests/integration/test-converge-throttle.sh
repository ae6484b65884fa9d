#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: convergence under a guest that writes faster than
# the migration may copy.  fio writes 4k blocks at random, unthrottled,
# while stm-send is held to --rate 16M: without help the dirty set never
# shrinks.  --converge=throttle must slow the guest down
# through the filter's THROTTLE, converge, cut over within --max-downtime,
# and release the throttle at the flip; the destination must equal the
# fenced source byte for byte.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires fio --version
requires psktool --version

size_mib=48
start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" 120 1000

migrate_psk_once 90 --rate 16M --max-downtime 200 --converge throttle

out="$tmp/send.out"
grep -q '"event":"throttle"' "$out" ||
    fail "stm-send never throttled the guest, though it writes faster than --rate"
throttle="$(json_field "$out" throttle bytes_per_second)"
info "last throttle: $throttle bytes/s"
[ "$throttle" -gt 0 ] && [ "$throttle" -lt $(( 16 * 1024 * 1024 )) ] ||
    fail "the throttle ($throttle bytes/s) is not below the --rate cap"
grep '"event":"pass_end"' "$out" | tail -n 1 | grep -q '"decision":"converged"\|"decision":"clean"' ||
    fail "the migration did not cut over because it converged: $(grep pass_end "$out" | tail -n 1)"
downtime="$(json_field "$out" downtime downtime_ms)"
info "downtime ${downtime} ms, passes $(json_field "$out" done passes), $(json_field "$out" done seconds) s"
[ "${downtime%%.*}" -lt 200 ] || fail "downtime ${downtime} ms is above --max-downtime 200"

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
[ "$(status_field throttle)" = 0 ] || fail "the throttle was not released at the flip: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "destination identical to the fenced source"
info "PASS"
