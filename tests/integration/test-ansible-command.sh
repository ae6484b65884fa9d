#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the Ansible side of the manual cutover, against
# ansible/tests/fake-stm-send.py, a stand-in for stm-send's command socket
# (stm-send(1), "COMMAND SOCKET PROTOCOL"), driven against localhost with
# connection local.  Needs no nbdkit and no built programs.
#
# 1. ansible-doc renders stm_cutover and stm_send (with its cutover and
#    command_socket options) without a warning.
# 2. ansible/tests/manual-cutover.yml: stm_cutover's status, cutover (a
#    refusal while not ready, waiting until ready, check mode), abort and
#    its failures (no socket, something else answering), against a fake
#    in server mode; then stm_send with cutover=manual under async and
#    poll 0, pivoted by a later stm_cutover task, and another aborted.
# 3. What the fakes received: check mode sent STATUS only, and stm_send
#    passed --cutover manual --command-socket PATH.
#
# Skipped (77) when ansible-playbook or ansible-doc is not installed.

source ./functions.sh
set -eu
requires ansible-playbook --version
requires ansible-doc --version
requires /usr/bin/python3 --version

collection="$abs_top_srcdir/ansible"
fake="$collection/tests/fake-stm-send.py"
[ -f "$collection/galaxy.yml" ] || fail "no collection at $collection"
[ -x "$fake" ] || fail "$fake is missing or not executable"

# The fakes that stm_send starts run under Ansible's async wrapper, in a
# session of their own: stop them by their pid files (send.cmd.pid) too,
# whatever way the test ends.  A running ansible-playbook is stopped
# first, and waited for, so that it can start no other.
PLAYBOOK_PID=
_stop_async_fakes ()
{
    local status=$? f i
    set +e
    if [ -n "$PLAYBOOK_PID" ] && alive "$PLAYBOOK_PID"; then
        kill -TERM -- "-$PLAYBOOK_PID" 2>/dev/null
        for (( i = 0; i < 50; i++ )); do
            alive "$PLAYBOOK_PID" || break
            sleep 0.1
        done
        kill -KILL -- "-$PLAYBOOK_PID" 2>/dev/null
        wait "$PLAYBOOK_PID" 2>/dev/null
    fi
    for f in "$tmp"/*.cmd.pid; do
        [ -s "$f" ] || continue
        kill -TERM "$(cat "$f")" 2>/dev/null
    done
    return "$status"
}
trap '_stop_async_fakes; _stm_cleanup' EXIT

mkdir -p "$tmp/collections/ansible_collections/stm" "$tmp/ansible-home"
ln -s "$collection" "$tmp/collections/ansible_collections/stm/migration"
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
export ANSIBLE_HOME="$tmp/ansible-home"
export ANSIBLE_LOCAL_TEMP="$tmp/ansible-home/tmp"
export ANSIBLE_REMOTE_TEMP="$tmp/ansible-home/remote-tmp"
export ANSIBLE_ASYNC_DIR="$tmp/ansible-home/async"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_PIPELINING=1
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
: > "$tmp/ansible.cfg"
export ANSIBLE_CONFIG="$tmp/ansible.cfg"

# ----------------------------------------------------------------------
# 1. The documentation.

for module in stm_cutover stm_send; do
    run_bounded 60 "doc-$module" ansible-doc "stm.migration.$module"
    [ "$EXIT_STATUS" -eq 0 ] || fail "ansible-doc stm.migration.$module exited $EXIT_STATUS"
    ! grep -qi 'warning' "$tmp/doc-$module.err" ||
        fail "ansible-doc stm.migration.$module warned: $(cat "$tmp/doc-$module.err")"
    grep -q '^OPTIONS' "$tmp/doc-$module.out" &&
        grep -q '^EXAMPLES' "$tmp/doc-$module.out" &&
        grep -q '^RETURN VALUES' "$tmp/doc-$module.out" ||
        fail "ansible-doc stm.migration.$module lacks a section"
done
grep -q 'command_socket' "$tmp/doc-stm_send.out" &&
    grep -q 'cutover' "$tmp/doc-stm_send.out" ||
    fail "ansible-doc stm.migration.stm_send does not show cutover and command_socket"
info "ansible-doc renders stm_cutover and stm_send without warnings"

# ----------------------------------------------------------------------
# 2. The playbook, with two fakes serving: one as a command server that
# becomes ready once it has refused two CUTOVERs, one answering garbage.

start_fake ()
{
    local mode="$1" sock="$2"
    spawn "$tmp/fake-$mode.out" "$tmp/fake-$mode.err" env FAKE_MODE="$mode" \
        FAKE_LOG="$tmp/fake-$mode.log" FAKE_READY_AFTER_CUTOVERS=2 FAKE_LIFETIME=100 \
        "$fake" --command-socket "$sock"
    wait_for 10 "the $mode fake to listen on $sock" test -S "$sock"
}
start_fake server "$tmp/server.cmd"
start_fake garbage "$tmp/garbage.cmd"

spawn "$tmp/playbook.out" "$tmp/playbook.err" ansible-playbook \
    -i "$collection/tests/inventory.yml" "$collection/tests/manual-cutover.yml" \
    -e "test_dir=$tmp" -e "test_fake=$fake" \
    -e "test_server_socket=$tmp/server.cmd" \
    -e "test_garbage_socket=$tmp/garbage.cmd"
PLAYBOOK_PID=$SPAWNED_PID
wait_exit "$PLAYBOOK_PID" 150
PLAYBOOK_PID=
info "ansible-playbook manual-cutover.yml exited with status $EXIT_STATUS (at $SECONDS s)"
[ "$EXIT_STATUS" -eq 0 ] || fail "ansible-playbook manual-cutover.yml failed (see playbook.out)"

# ----------------------------------------------------------------------
# 3. What the fakes were sent.

# The server fake saw, in order: STATUS; CUTOVER (refused); STATUS (check
# mode, no CUTOVER); CUTOVER refused, then accepted (wait_ready); ABORT.
commands="$(sed -n 's/^command //p' "$tmp/fake-server.log" | tr '\n' ' ')"
info "the command server received: $commands"
[[ "$commands" =~ ^"STATUS CUTOVER STATUS CUTOVER CUTOVER ABORT "$ ]] ||
    fail "unexpected commands on the command server: $commands"

grep -q "^argv .*--cutover manual --command-socket $tmp/send.cmd .*--json --no-progress" \
    "$tmp/fake-send.log" ||
    fail "stm_send did not pass --cutover manual --command-socket: $(grep '^argv' "$tmp/fake-send.log")"
[ "$(grep -c '^argv' "$tmp/fake-send.log")" -eq 2 ] ||
    fail "stm_send ran the program $(grep -c '^argv' "$tmp/fake-send.log") times, not 2"
[ ! -e "$tmp/send.cmd" ] || fail "the fake stm-send left its socket behind"
info "PASS"
