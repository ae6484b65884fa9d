#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the Ansible collection's manual cutover with the
# real programs (issue 12, "Cut over when told"), against localhost with
# connection local.
#
# Two sources (nbdkit with the migrate filter; fio writing to the first)
# and two receivers (stm-recv --once).  ansible/tests/manual-live.yml
# starts stm_send with cutover=manual under async and poll 0, waits with
# stm_cutover until STATUS says ready, cuts over in a later task (the
# source flips within the budget), then starts a second migration and
# aborts it (stm-send exits 1, the source stays tracking).  Afterwards the
# first destination must equal its fenced source byte for byte, and the
# second source must serve writes.
#
# Skipped (77) when ansible-playbook or a tool of the migration tests is
# not installed.

: "${STM_TEST_TIMEOUT:=300}"
source ./functions.sh
set -eu
requires ansible-playbook --version
requires_psk_migration

collection="$abs_top_srcdir/ansible"
[ -f "$collection/galaxy.yml" ] || fail "no collection at $collection"

# stm-send runs under Ansible's async wrapper, in a session of its own: a
# running ansible-playbook is stopped first (and waited for), then any
# stm-send still serving a command socket here is told to ABORT on it
# (it thaws its source and exits).
PLAYBOOK_PID=
_stop_playbook ()
{
    local status=$? i sock
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
    for sock in "$tmp"/*.cmd; do
        [ -S "$sock" ] || continue
        printf 'ABORT\n' | timeout 20 socat -t 15 - "UNIX-CONNECT:$sock" >/dev/null 2>&1
    done
    return "$status"
}
trap '_stop_playbook; _stm_cleanup' EXIT

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

# The second source first (start_nbdkit_migrate names its sockets alike):
# its paths are moved aside by a private directory.
size_mib=32
make_psk "$tmp/keys.psk"
make_random_image "$tmp/src2.img" 16
tmp_main="$tmp"
mkdir "$tmp/two"
tmp="$tmp_main/two"
start_nbdkit_migrate "$tmp_main/src2.img"
source2_uri="$NBD_URI" control2="$CTL_SOCK"
start_stm_recv --output "$tmp_main/dst2.img" --tls-psk "$tmp_main/keys.psk" --json --once
recv2_pid="$RECV_PID" recv2_port="$RECV_PORT"
tmp="$tmp_main"

start_source "$size_mib"
start_writer_and_wait "${size_mib}m" 200 0 --rate=,1m
start_psk_recv --once

cat > "$tmp/vars.json" <<EOF2
{
  "test_dir": "$tmp",
  "test_source_uri": "$NBD_URI",
  "test_control": "$CTL_SOCK",
  "test_recv_port": $RECV_PORT,
  "test_source2_uri": "$source2_uri",
  "test_control2": "$control2",
  "test_recv2_port": $recv2_port,
  "test_psk": "$tmp/keys.psk",
  "test_stm_send": "$STM_SEND"
}
EOF2

spawn "$tmp/playbook.out" "$tmp/playbook.err" ansible-playbook \
    -i "$collection/tests/inventory.yml" "$collection/tests/manual-live.yml" \
    -e "@$tmp/vars.json"
PLAYBOOK_PID=$SPAWNED_PID
wait_exit "$PLAYBOOK_PID" 240
PLAYBOOK_PID=
info "ansible-playbook manual-live.yml exited with status $EXIT_STATUS (at $SECONDS s)"
grep -E '^src *:' "$tmp/playbook.out" | while read -r line; do info "$line"; done
[ "$EXIT_STATUS" -eq 0 ] || fail "ansible-playbook manual-live.yml failed (see playbook.out)"

state_is fenced || fail "the first source is not fenced after the cutover: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
wait_recv_once_done "after the manual cutover"
info "the manual cutover: destination identical to the fenced source"

wait_exit "$recv2_pid" 30
[ "$EXIT_STATUS" -ne 0 ] || fail "the second receiver exited 0 after an aborted migration"
NBD_URI="$source2_uri" CTL_SOCK="$control2"
state_is tracking || fail "the second source is not tracking after ABORT: $(ctl STATUS)"
nbd_write 0 4k 0x6c || fail "the second source refused a write after ABORT"
info "the aborted migration: the second source is tracking and serves writes"
info "PASS"
