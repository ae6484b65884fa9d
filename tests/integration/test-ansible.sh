#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the Ansible collection (ansible/), driven against
# localhost with connection local.
#
# 1. ansible-doc renders every module (and the install role's arguments)
#    without a warning.
# 2. The install role (stm_install_method=copy) copies the programs and
#    the filter from this build tree into a private prefix; the rest of
#    the test uses those copies.  (Its default method installs the Debian
#    packages into the system: scripts/package-check.sh tests that.)
# 3. With nbdkit serving a 64 MiB random image through the filter and fio
#    writing to it, ansible/tests/failed-migration.yml: check mode finds
#    problems without freezing anything, and a migration with the wrong key
#    fails as a task carrying stm-send's message while the source keeps
#    tracking and serving the writer.
# 4. ansible/tests/live-migration.yml runs the example playbook
#    (ansible/playbooks/migrate.yml) from host "src" to host "dst", both
#    this machine, with X.509 certificates, and checks the returned
#    facts, the fenced source and the byte identity of the destination;
#    running the example playbook again reports no change on either host.
# 5. ansible/tests/forward-migration.yml runs the example playbook again,
#    on a new source, with stm_flip=forward and stm_recv_export: the
#    source forwards, the receiver is left serving its export (URI
#    returned), and stopping it reports the commit.
#
# Skipped (77) when ansible-playbook is not installed.

source ./functions.sh
set -eu
requires ansible-playbook --version
requires ansible-doc --version
requires_built
requires socat -V
requires qemu-io --version
requires fio --version
requires psktool --version

collection="$abs_top_srcdir/ansible"
[ -f "$collection/galaxy.yml" ] || fail "no collection at $collection"

# The receivers the stm_recv module starts lead sessions of their own, not
# children of this shell: stop them by their pid files too, whatever way
# the test ends.  A running ansible-playbook is stopped first, and waited
# for, so that no module can start a receiver after the pid files are read.
# (This runs before functions.sh's cleanup, and keeps the exit status for
# it.)
run_dir="$tmp/run"
PLAYBOOK_PID=
_stop_module_receivers ()
{
    local status=$? f pid i
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
    for f in "$run_dir"/*.pid; do
        [ -s "$f" ] || continue
        pid="$(cat "$f")"
        kill -TERM -- "-$pid" 2>/dev/null || true
        track "$pid"
    done
    return "$status"
}
trap '_stop_module_receivers; _stm_cleanup' EXIT

# Ansible finds the collection as stm.migration through this link, and
# keeps its own files in the temporary directory.
mkdir -p "$tmp/collections/ansible_collections/stm" "$tmp/ansible-home" "$run_dir"
ln -s "$collection" "$tmp/collections/ansible_collections/stm/migration"
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections"
export ANSIBLE_HOME="$tmp/ansible-home"
export ANSIBLE_LOCAL_TEMP="$tmp/ansible-home/tmp"
export ANSIBLE_REMOTE_TEMP="$tmp/ansible-home/remote-tmp"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_PIPELINING=1
export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
# An empty configuration: no ansible.cfg of the user's or the directory's.
: > "$tmp/ansible.cfg"
export ANSIBLE_CONFIG="$tmp/ansible.cfg"

# ----------------------------------------------------------------------
# 1. The documentation renders, without warnings.

for module in stm_send stm_recv stm_source_info stm_cutover; do
    run_bounded 60 "doc-$module" ansible-doc "stm.migration.$module"
    [ "$EXIT_STATUS" -eq 0 ] || fail "ansible-doc stm.migration.$module exited $EXIT_STATUS"
    ! grep -qi 'warning' "$tmp/doc-$module.err" ||
        fail "ansible-doc stm.migration.$module warned: $(cat "$tmp/doc-$module.err")"
    grep -q '^OPTIONS' "$tmp/doc-$module.out" &&
        grep -q '^EXAMPLES' "$tmp/doc-$module.out" &&
        grep -q '^RETURN VALUES' "$tmp/doc-$module.out" ||
        fail "ansible-doc stm.migration.$module lacks a section"
done
run_bounded 60 doc-role ansible-doc -t role stm.migration.install
[ "$EXIT_STATUS" -eq 0 ] && ! grep -qi 'warning' "$tmp/doc-role.err" ||
    fail "ansible-doc -t role stm.migration.install: $(cat "$tmp/doc-role.err")"
info "ansible-doc renders every module and the role without warnings"

# playbook NAME PLAYBOOK [ARGS...]: run an ansible-playbook against the
# test inventory (both hosts local), at most 120 s; fail on failure.
playbook ()
{
    local name="$1" book="$2"
    shift 2
    spawn "$tmp/$name.out" "$tmp/$name.err" ansible-playbook \
        -i "$collection/tests/inventory.yml" "$collection/tests/$book" "$@"
    PLAYBOOK_PID=$SPAWNED_PID
    wait_exit "$PLAYBOOK_PID" 120
    PLAYBOOK_PID=
    info "ansible-playbook $book exited with status $EXIT_STATUS (at $SECONDS s)"
    [ "$EXIT_STATUS" -eq 0 ] || fail "ansible-playbook $book failed (see $name.out)"
}

# ----------------------------------------------------------------------
# 2. The install role.

playbook install install.yml -e stm_install_method=copy -e "stm_build_dir=$abs_top_builddir" \
    -e "stm_bin_dir=$tmp/inst/bin" -e "stm_filter_dir=$tmp/inst/filters"
grep -Eq 'src *: ok=[0-9]+ +changed=[1-9]' "$tmp/install.out" ||
    fail "the install role reported no change on a fresh prefix"
for f in bin/stm-send bin/stm-recv filters/nbdkit-migrate-filter.so; do
    cmp -s "$tmp/inst/$f" "$abs_top_builddir/$(case "$f" in
        bin/stm-send) echo sender/stm-send ;;
        bin/stm-recv) echo receiver/stm-recv ;;
        *) echo nbdkit-plugin/.libs/nbdkit-migrate-filter.so ;;
    esac)" || fail "the install role did not install $f"
done
MIGRATE_FILTER="$tmp/inst/filters/nbdkit-migrate-filter.so"
STM_SEND="$tmp/inst/bin/stm-send"
STM_RECV="$tmp/inst/bin/stm-recv"

# ----------------------------------------------------------------------
# The source, live: nbdkit with the filter, and a writer.

size_mib=64
make_random_image "$tmp/src.img" "$size_mib"
sync "$tmp/src.img"
make_psk "$tmp/keys.psk"
make_psk "$tmp/other.psk"
printf 'this is not a key file\n' > "$tmp/garbage.psk"
make_x509 "$tmp/pki"

start_nbdkit_migrate "$tmp/src.img"
start_writer 32m 120 --rate=,1m
wait_for 30 "the guest writer to start writing" writes_above 0

cat > "$tmp/vars.json" <<EOF
{
  "stm_source_uri": "$NBD_URI",
  "stm_control": "$CTL_SOCK",
  "stm_dest_image": "$tmp/dst.img",
  "stm_psk_file": "$tmp/keys.psk",
  "stm_send_binary": "$STM_SEND",
  "stm_recv_binary": "$STM_RECV",
  "stm_run_dir": "$run_dir",
  "stm_migration_name": "live-migration",
  "test_source_image": "$tmp/src.img",
  "test_image_size": $(( size_mib * 1024 * 1024 )),
  "test_scratch_image": "$tmp/scratch.img",
  "test_bad_psk": "$tmp/other.psk",
  "test_garbage_psk": "$tmp/garbage.psk"
}
EOF

# ----------------------------------------------------------------------
# 3. A failed migration, and check mode.

playbook failed failed-migration.yml -e "@$tmp/vars.json"
state_is tracking || fail "the source is not tracking after the failed migration: $(ctl STATUS)"
alive "$WRITER_PID" || fail "the guest writer stopped after the failed migration"
grep -F 'stm-send: error:' "$tmp/failed.out" >/dev/null ||
    fail "the failed task's output does not show stm-send's message"
info "the failed migration was reported with: $(grep -o 'stm-send: error:[^"]*' "$tmp/failed.out" | head -n 1)"

# ----------------------------------------------------------------------
# 4. The live migration, with the example playbook.

# The failed migration used a pre-shared key; this one X.509.
playbook live live-migration.yml -e "@$tmp/vars.json" \
    -e stm_tls=x509 -e "stm_tls_certs=$tmp/pki"
state_is fenced || fail "the source is not fenced after the migration: $(ctl STATUS)"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "$(grep -o 'stm_migration: [^"]*' "$tmp/live.out" | tail -n 1)"

# Running the example playbook again after the success changes nothing
# (ansible/README.md): the output's state file says complete, so no
# receiver is started (and stopped), and stm-send is not run.  Without
# stm_recv_force, which the test inventory sets for the first run and
# which asks for a receiver that may overwrite the output.
playbook rerun ../playbooks/migrate.yml -e "@$tmp/vars.json" \
    -e stm_tls=x509 -e "stm_tls_certs=$tmp/pki" -e stm_recv_force=false -v
grep -E '^(src|dst) *:' "$tmp/rerun.out" | while read -r line; do
    info "re-run: $line"
done
for h in src dst; do
    grep -Eq "^$h *: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0" "$tmp/rerun.out" ||
        fail "running the playbook again changed something or failed on $h: $(grep -E "^$h *:" "$tmp/rerun.out")"
done
grep -q 'already holds a complete migration' "$tmp/rerun.out" ||
    fail "the re-run did not say why no receiver was started"
[ ! -e "$run_dir/live-migration.pid" ] || fail "the re-run left a receiver's pid file"
state_is fenced || fail "the source is not fenced after the re-run: $(ctl STATUS)"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination changed in the re-run"

# ----------------------------------------------------------------------
# 5. The forward flip to the receiver's export, with the example playbook.

# The fenced source is done with: a new nbdkit serves a new image, with no
# writer, so that the destination can be compared with it afterwards.
if alive "$WRITER_PID"; then
    kill -TERM "$WRITER_PID" 2>/dev/null || true
    wait_exit "$WRITER_PID" 10
fi
stop_nbdkit
make_random_image "$tmp/src-fwd.img" 16
start_nbdkit_migrate "$tmp/src-fwd.img"
# A free port for the export (the kernel's choice, released at once).
export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
playbook forward forward-migration.yml -e "@$tmp/vars.json" \
    -e stm_migration_name=forward -e stm_flip=forward \
    -e "stm_recv_export=127.0.0.1:$export_port" \
    -e "stm_dest_image=$tmp/dst-fwd.img" -e "test_source_image=$tmp/src-fwd.img"
state_is forwarding || fail "the source is not forwarding after the forward migration: $(ctl STATUS)"
[ ! -e "$run_dir/forward.pid" ] || fail "the exporting receiver's pid file is left behind"
info "the forward flip: source forwarding, export served until stopped"
info "PASS"
