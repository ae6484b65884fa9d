#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# stm integration test: the systemd template unit stm-recv@.service.
#
# 1. systemd-analyze verify accepts an instance of the built unit without
#    a word (ExecStart pointed at this build's stm-recv, since the unit
#    names the installed one; --man=no, since the man page is not
#    installed yet), and does complain about a unit with a misspelt key,
#    so that its silence means something.
# 2. systemd-analyze security rates the unit's exposure 4.0 or less, so
#    that the hardening cannot be dropped unnoticed.
# 3. The unit's ExecStart, expanded as systemd expands it (with
#    systemd/unit-command.sh) with the example options file
#    (systemd/recv-example.conf, this test's paths put in), receives a
#    real migration: the destination equals the source.
#
# systemd is not PID 1 where the tests run, so the unit itself is never
# started; scripts/package-check.sh does step 3 again with the installed
# unit.  Skipped (77) when systemd-analyze is not installed.

source ./functions.sh
set -eu
requires_built
requires systemd-analyze --version
requires socat -V
requires psktool --version

unit_in="$abs_top_builddir/systemd/stm-recv@.service"
[ -f "$unit_in" ] || fail "the unit $unit_in has not been built"
source "$abs_top_srcdir/systemd/unit-command.sh"

# The instance under test, with ExecStart naming this build's stm-recv.
mkdir "$tmp/units"
unit="$tmp/units/stm-recv@disk0.service"
sed "s|^ExecStart=[^ ]*/stm-recv |ExecStart=$STM_RECV |" "$unit_in" > "$unit"
grep -q "^ExecStart=$STM_RECV " "$unit" || fail "no ExecStart=.../stm-recv line in $unit_in"

# ----------------------------------------------------------------------
# 1. systemd-analyze verify.

verify ()
{
    run_bounded 60 "$1" systemd-analyze verify --man=no "$2"
}
verify verify "$unit"
[ "$EXIT_STATUS" -eq 0 ] && [ ! -s "$tmp/verify.out" ] && [ ! -s "$tmp/verify.err" ] ||
    fail "systemd-analyze verify of $unit (status $EXIT_STATUS): $(cat "$tmp/verify.out" "$tmp/verify.err")"
info "systemd-analyze verify: nothing to report on stm-recv@disk0.service"

mkdir "$tmp/bad"
sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$unit" > "$tmp/bad/stm-recv@disk0.service"
verify verify-bad "$tmp/bad/stm-recv@disk0.service"
grep -q 'NoNewPrivilege' "$tmp/verify-bad.out" "$tmp/verify-bad.err" ||
    fail "systemd-analyze verify did not notice a misspelt key (NoNewPrivilege=): $(cat "$tmp/verify-bad.err")"

# ----------------------------------------------------------------------
# 2. systemd-analyze security (--offline since systemd 250).

if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    run_bounded 60 security systemd-analyze security --offline=true --threshold=40 "$unit"
    [ "$EXIT_STATUS" -eq 0 ] ||
        fail "systemd-analyze security rates $unit worse than 4.0: $(tail -n 1 "$tmp/security.out")"
    info "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$tmp/security.out")"
else
    info "systemd-analyze security --offline is not available: exposure not rated"
fi

# ----------------------------------------------------------------------
# 3. The expanded ExecStart receives a migration.

start_source 16
make_psk "$tmp/keys.psk"
# The options file is the shipped example, with this test's address,
# output and key in place of the example's.
example="$abs_top_srcdir/systemd/recv-example.conf"
sed -e 's|0\.0\.0\.0:10810|127.0.0.1:0|' -e "s|/var/lib/stm/disk0\.img|$tmp/dst.img|" \
    -e "s|/etc/stm/keys\.psk|$tmp/keys.psk|" "$example" > "$tmp/recv-disk0.conf"
grep -q "^STM_RECV_ARGS=--listen 127.0.0.1:0 --output $tmp/dst.img --tls-psk $tmp/keys.psk " \
    "$tmp/recv-disk0.conf" ||
    fail "$example no longer has the STM_RECV_ARGS line this test adapts: $(grep STM_RECV_ARGS "$example")"
unit_command "$unit" disk0 "$tmp/recv-disk0.conf" || fail "cannot expand the ExecStart of $unit"
[ "${UNIT_ARGV[0]}" = "$STM_RECV" ] && [ "${#UNIT_ARGV[@]}" -eq 8 ] ||
    fail "ExecStart expanded to ${UNIT_ARGV[*]}, not $STM_RECV and the 7 options of STM_RECV_ARGS"
info "ExecStart expands to: ${UNIT_ARGV[*]}"

spawn "$tmp/recv.out" "$tmp/recv.err" "${UNIT_ARGV[@]}"
RECV_PID=$SPAWNED_PID
wait_for 30 "the unit's stm-recv to listen (recv.err)" \
    grep -q 'listening on 127\.0\.0\.1:[0-9]' "$tmp/recv.err"
RECV_PORT="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/recv.err" | head -n 1)"
run_stm_send send 60 --tls-psk "$tmp/keys.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send to the unit's stm-recv exited with $EXIT_STATUS"
wait_recv_once_done "after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"
info "PASS"
