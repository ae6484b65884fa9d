#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --max-passes N means at most N passes, the final
# pass included, as the summary counts them.  A guest keeps writing and
# --max-downtime 1 cannot be met, so the migration never converges:
# with --max-passes 2 the full pass must be followed directly by the
# final pass (decision max-passes after pass 1), and the summary must
# say 2 passes.  The destination must equal the fenced source.
#
# --converge throttle: the scenario needs a dirty set that does not converge,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=16
start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" 90 100 --rate=,2m

migrate_psk_once 90 --max-passes 2 --max-downtime 1 --converge throttle

out="$tmp/send.out"
passes="$(json_field "$out" done passes)"
info "summary: passes=$passes; decisions: $(grep -o '"decision":"[a-z-]*"' "$out" | tr '\n' ' ')"
[ "$passes" = 2 ] || fail "--max-passes 2 reported passes=$passes in the summary"
[ "$(grep -c '"event":"pass_begin"' "$out")" -eq 2 ] ||
    fail "stm-send began $(grep -c '"event":"pass_begin"' "$out") passes with --max-passes 2"
grep '"event":"pass_end"' "$out" | head -n 1 | grep -q '"decision":"max-passes"' ||
    fail "the full pass was not followed by the final pass: $(grep pass_end "$out" | head -n 1)"
grep -q 'forcing the cutover after pass 1: --max-passes 2 leaves only the final pass' "$tmp/send.err" ||
    fail "stm-send's warning does not say why the cutover was forced: $(cat "$tmp/send.err")"

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "PASS"
