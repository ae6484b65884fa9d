#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: what --cutover manual refuses, and the two ways a
# held migration gives up (issue 12, "Cut over when told").
#
# 1. --cutover manual without --command-socket is a usage error (exit 2).
# 2. CUTOVER during the full pass (--rate keeps it long) is refused with
#    ERR EAGAIN not ready, and nothing else happens; STATUS says
#    phase=copying ready=0; a command the server does not know gets
#    ERR EINVAL.
# 3. ABORT while ready: "OK aborted: ...", stm-send exits 1 with an error
#    event saying the source is thawed, the receiver is told (it exits
#    non-zero with the abort in its log), the source stays tracking and
#    serves writes, and the command socket is removed.
# 4. SIGTERM while ready (and a CUTOVER's reply would not be owed): exit
#    1, the source tracking (thawed), never frozen for good.

source ./functions.sh
source "$abs_top_srcdir/tests/integration/command-socket.sh"
set -eu
requires_psk_migration

# 1. The usage error, before anything is touched.
run_bounded 10 usage "$STM_SEND" --source nbd+unix:///?socket=/nonexistent \
    --control /nonexistent --dest 127.0.0.1:9 --insecure --cutover manual
[ "$EXIT_STATUS" -eq 2 ] || fail "--cutover manual without --command-socket exited $EXIT_STATUS, not 2"
grep -q -- '--cutover manual needs --command-socket' "$tmp/usage.err" ||
    fail "the usage error does not say what is missing: $(cat "$tmp/usage.err")"
run_bounded 10 usage2 "$STM_SEND" --source nbd+unix:///?socket=/nonexistent \
    --control /nonexistent --dest 127.0.0.1:9 --insecure --cutover sometime
[ "$EXIT_STATUS" -eq 2 ] || fail "--cutover sometime exited $EXIT_STATUS, not 2"

size_mib=32
cmd_sock="$tmp/send.cmd"
start_psk_source "$size_mib"

# 2. Not ready during the full pass: 32 MiB at 4 MiB/s takes 8 s.
start_psk_recv --once
start_stm_send send --tls-psk "$tmp/keys.psk" --cutover manual \
    --command-socket "$cmd_sock" --rate 4M
wait_for 30 "the command socket $cmd_sock" test -S "$cmd_sock"
wait_for 30 "the full pass to begin" grep -q '"event":"pass_begin"' "$tmp/send.out"
reply="$(send_cmd "$cmd_sock" CUTOVER)" || fail "no reply to CUTOVER"
info "CUTOVER during the full pass: $reply"
case "$reply" in
    'ERR EAGAIN not ready: '*) ;;
    *) fail "CUTOVER during the full pass was answered: $reply" ;;
esac
reply="$(send_cmd "$cmd_sock" STATUS)"
case "$reply" in
    'OK phase=copying pass=1 '*' ready=0 '*) ;;
    *) fail "STATUS during the full pass: $reply" ;;
esac
reply="$(send_cmd "$cmd_sock" 'PIVOT now')"
case "$reply" in
    'ERR EINVAL '*) ;;
    *) fail "an unknown command was answered: $reply" ;;
esac

# 3. ABORT once ready.
wait_ready "$cmd_sock" 60
reply="$(send_cmd "$cmd_sock" ABORT 30)" || fail "no reply to ABORT"
info "ABORT: $reply"
[ "$reply" = "OK aborted: the source is thawed and authoritative" ] ||
    fail "ABORT was answered: $reply"
wait_exit "$SEND_PID" 30
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS after ABORT, not 1"
grep -q 'aborted by the operator' "$tmp/send.err" ||
    fail "stm-send's error does not say it was aborted: $(cat "$tmp/send.err")"
grep '"event":"error"' "$tmp/send.out" | grep -q '"source_state":"thawed"' ||
    fail "no error event with source_state thawed"
[ ! -e "$cmd_sock" ] || fail "the command socket was left behind after ABORT"
wait_exit "$RECV_PID" 30
[ "$EXIT_STATUS" -ne 0 ] || fail "stm-recv --once exited 0 after an aborted migration"
grep -qi 'abort' "$tmp/recv.err" ||
    fail "the receiver does not say the migration was aborted: $(tail -n 5 "$tmp/recv.err")"
state_is tracking || fail "the source is not tracking after ABORT: $(ctl STATUS)"
nbd_write 0 4k 0x5a || fail "the source refused a write after ABORT"
info "after ABORT the source is tracking and serves writes"

# 4. SIGTERM once ready.
mv "$tmp/send.out" "$tmp/send-abort.out"
mv "$tmp/send.err" "$tmp/send-abort.err"
# Another destination: the first holds the aborted migration.
start_stm_recv --output "$tmp/dst2.img" --tls-psk "$tmp/keys.psk" --json --once
start_stm_send send --tls-psk "$tmp/keys.psk" --cutover manual \
    --command-socket "$cmd_sock"
wait_for 30 "the command socket $cmd_sock" test -S "$cmd_sock"
wait_ready "$cmd_sock" 60
kill -TERM "$SEND_PID"
wait_exit "$SEND_PID" 30
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS after SIGTERM, not 1"
grep -q 'interrupted by SIGTERM' "$tmp/send.err" ||
    fail "stm-send does not say SIGTERM ended it: $(cat "$tmp/send.err")"
[ ! -e "$cmd_sock" ] || fail "the command socket was left behind after SIGTERM"
state_is tracking || fail "the source is not tracking after SIGTERM: $(ctl STATUS)"
nbd_write 4096 4k 0x5b || fail "the source refused a write after SIGTERM"
info "PASS"
