#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the Ansible collection migrating a virtual
# machine's two disks as one group with the real programs (issue 12),
# against localhost with connection local.
#
# Four sources, each nbdkit with the migrate filter: the first group
# (sys, data) with fio writing to both, the second (sys2, data2) idle.
# ansible/tests/group-live.yml starts one stm-recv per group through
# stm_recv (outputs), checks every disk with stm_source_info (disks),
# starts stm_send with disks and cutover=manual under async and poll 0,
# pivots the first group with a later stm_cutover task and collects the
# per-disk figures with async_status, then aborts the second group.  Its
# check mode of stm_recv refuses a group whose output is somebody's data.  The
# first group's sys source and data control socket are given through
# paths holding a comma, which the module must double for --disk.
# Afterwards both destinations of the first group must equal their fenced
# sources byte for byte, and both sources of the second must be tracking
# and serve writes.
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

# The pure decisions about a group first (names, --disk escaping, the
# group's state file, per-disk results).
run_bounded 60 unit /usr/bin/python3 "$collection/tests/test_stm_disks.py"
[ "$EXIT_STATUS" -eq 0 ] || fail "test_stm_disks.py failed: $(tail -n 20 "$tmp/unit.err")"

# stm-send runs under Ansible's async wrapper and stm-recv under the
# stm_recv module, each in a session of its own: a running
# ansible-playbook is stopped first (and waited for), then any stm-send
# still serving a command socket here is told to ABORT on it (it thaws
# its sources and exits), then the receivers the module started are
# stopped by the pids in their pid files.
PLAYBOOK_PID=
_stop_playbook ()
{
    local status=$? i sock pidfile pid
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
    for pidfile in "$tmp"/run/*.pid; do
        [ -f "$pidfile" ] || continue
        pid="$(cat "$pidfile")"
        case "$pid" in
            ''|*[!0-9]*) continue ;;
        esac
        grep -qa stm-recv "/proc/$pid/cmdline" 2>/dev/null || continue
        kill -TERM -- "-$pid" 2>/dev/null
        for (( i = 0; i < 50; i++ )); do
            alive "$pid" || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null
    done
    return "$status"
}
trap '_stop_playbook; _stm_cleanup' EXIT

mkdir -p "$tmp/collections/ansible_collections/stm" "$tmp/ansible-home" "$tmp/run"
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

make_psk "$tmp/keys.psk"
# Somebody's data where a group's output would go: refused without force.
make_random_image "$tmp/old-data.img" 1
start_disk sys 32
start_disk data 16
start_disk sys2 8
start_disk data2 8
# Until an NBD client has connected, a filter does not know its size.
for d in data sys2 data2; do
    NBD_URI="$(disk_uri "$d")" nbd_touch
done
start_disk_writer sys 32m 200 --rate=,1m
start_disk_writer data 16m 200 --rate=,1m
wait_for 30 "the writer of sys to start" disk_writes_above sys 0
wait_for 30 "the writer of data to start" disk_writes_above data 0

# Paths with a comma: stm-send's --disk needs it doubled.
ln -s "$tmp/sys.sock" "$tmp/sys,vm.sock"
ln -s "$(disk_ctl data)" "$tmp/data,vm-ctl.sock"
sys_uri="nbd+unix:///?socket=$tmp/sys,vm.sock"
data_control="$tmp/data,vm-ctl.sock"
sys_disk_arg="name=sys,source=${sys_uri//,/,,},control=$(disk_ctl sys)"
data_disk_arg="name=data,source=$(disk_uri data),control=${data_control//,/,,}"

cat > "$tmp/vars.json" <<EOF2
{
  "test_dir": "$tmp",
  "test_psk": "$tmp/keys.psk",
  "test_stm_send": "$STM_SEND",
  "test_stm_recv": "$STM_RECV",
  "test_sys_uri": "$sys_uri",
  "test_sys_control": "$(disk_ctl sys)",
  "test_sys_size": $(( 32 * 1024 * 1024 )),
  "test_sys_disk_arg": "$sys_disk_arg",
  "test_data_uri": "$(disk_uri data)",
  "test_data_control": "$data_control",
  "test_data_size": $(( 16 * 1024 * 1024 )),
  "test_data_disk_arg": "$data_disk_arg",
  "test_sys2_uri": "$(disk_uri sys2)",
  "test_sys2_control": "$(disk_ctl sys2)",
  "test_data2_uri": "$(disk_uri data2)",
  "test_data2_control": "$(disk_ctl data2)"
}
EOF2

spawn "$tmp/playbook.out" "$tmp/playbook.err" ansible-playbook \
    -i "$collection/tests/inventory.yml" "$collection/tests/group-live.yml" \
    -e "@$tmp/vars.json"
PLAYBOOK_PID=$SPAWNED_PID
wait_exit "$PLAYBOOK_PID" 240
PLAYBOOK_PID=
info "ansible-playbook group-live.yml exited with status $EXIT_STATUS (at $SECONDS s)"
grep -E '^(src|dst) *:' "$tmp/playbook.out" | while read -r line; do info "$line"; done
[ "$EXIT_STATUS" -eq 0 ] || fail "ansible-playbook group-live.yml failed (see playbook.out)"

for d in sys data; do
    [ "$(disk_status "$d" state)" = fenced ] ||
        fail "disk $d is not fenced after the cutover: $(disk_status "$d" state)"
    [ "$(disk_status "$d" writes)" -gt 0 ] || fail "no guest write reached disk $d"
done
wait_exit "$WRITER_PID_sys" 30
wait_exit "$WRITER_PID_data" 30
for d in sys data; do
    cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
        fail "disk $d: the destination differs from the fenced source"
done
grep -qx 'state final' "$tmp/data-dst.img.stm-state" ||
    fail "the group is not recorded final: $(cat "$tmp/data-dst.img.stm-state")"
info "the group's cutover: both destinations identical to their fenced sources"

for d in sys2 data2; do
    [ "$(disk_status "$d" state)" = tracking ] ||
        fail "disk $d is not tracking after ABORT: $(disk_status "$d" state)"
    NBD_URI="$(disk_uri "$d")" nbd_write 0 4k 0x6c ||
        fail "disk $d refused a write after ABORT"
done
info "the aborted group: both sources are tracking and serve writes"
info "PASS"
