#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-send --converge mirror for a group of named
# disks, each with its own guest stand-in (fio, unthrottled 4k random
# writes, iodepth 8) writing throughout.  Each disk's filter has a ring
# of its own and its own clock; the group cuts over as one.  For a group
# of two disks, then of three: stm-send exits 0, every destination is
# byte-identical to its fenced source, no throttle event appears (the
# mirror keeps up without slowing the guests), stm-send says it sent
# mirrored records, and every disk's filter counts records in its ring.

source ./functions.sh
set -eu
requires_psk_migration

make_psk "$tmp/keys.psk"

# run_group NAME DISK:MIB...: migrate a fresh group of the named disks
# while a writer writes to each, and check the outcome.
run_group ()
{
    local name="$1" spec d mib disks=() outputs=() pid
    shift
    for spec in "$@"; do
        d="${spec%%:*}"
        mib="${spec#*:}"
        start_disk "$d" "$mib"
        disks+=("$d")
        outputs+=(--output "$d=$tmp/$d-dst.img")
        start_disk_writer "$d" "${mib}m" 120
    done
    for d in "${disks[@]}"; do
        wait_for 30 "$name: the writer of disk $d to start" disk_writes_above "$d" 0
    done

    start_stm_recv "${outputs[@]}" --tls-psk "$tmp/keys.psk" --json --once
    run_group_send "$name" 40 "${disks[@]}" -- --tls-psk "$tmp/keys.psk" \
        --converge mirror --max-passes 10
    [ "$EXIT_STATUS" -eq 0 ] ||
        fail "$name: stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/$name.err")"
    wait_recv_once_done "after the group migration $name"

    local out="$tmp/$name.out"
    for d in "${disks[@]}"; do
        [ "$(disk_status "$d" state)" = fenced ] ||
            fail "$name: disk $d is not fenced: $(CTL_SOCK="$(disk_ctl "$d")" ctl STATUS)"
        # The writer stops with EIO at the fence; wait so the file is final.
        pid="WRITER_PID_$d"
        wait_exit "${!pid}" 30
        cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
            fail "$name: disk $d: the destination differs from the fenced source"
        info "$name: disk $d: $(CTL_SOCK="$(disk_ctl "$d")" ctl STATUS | tr ' ' '\n' |
            grep -E '^(writes|mirror_(entries|fallbacks|requeued)|write_overlaps)=' | tr '\n' ' ')"
    done
    info "$name: every destination identical to its fenced source"

    info "$name: $(grep '"event":"pass_end"' "$out" |
        sed 's/.*"pass":\([0-9]*\),"bytes":\([0-9]*\).*"dirty_bytes":\([0-9]*\),.*"decision":"\([a-z-]*\)".*/[pass \1: \2 bytes, dirty after \3, \4]/' |
        tr '\n' ' ')"
    if grep -q '"event":"throttle"' "$out"; then
        fail "$name: the guests were throttled under --converge mirror: $(grep '"event":"throttle"' "$out" | head -n 1)"
    fi
    local records
    records="$(json_field "$out" done mirror_records)"
    [ -n "$records" ] && [ "$records" -gt 0 ] ||
        fail "$name: stm-send sent no mirrored write: $(tail -n 1 "$out")"
    grep '"event":"done"' "$out" | grep -q '"mirror":"mirror"' ||
        fail "$name: the summary does not say mode mirror: $(tail -n 1 "$out")"
    local entries
    for d in "${disks[@]}"; do
        entries="$(disk_status "$d" mirror_entries)"
        [ -n "$entries" ] && [ "$entries" -gt 0 ] ||
            fail "$name: disk $d's filter mirrored no write (mirror_entries=$entries)"
    done
    info "$name: $records records mirrored; no throttle"
}

run_group two a:48 b:32
run_group three c:32 d:16 e:16
info "PASS"
