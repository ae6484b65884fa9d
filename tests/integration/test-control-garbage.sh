#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the migrate filter's control socket answers every
# malformed request (garbage, over-long lines, bad numbers, out-of-range
# or misaligned CONFIRM, FLIP without a freeze) with ERR and changes
# nothing; a connection survives its errors; ownership is exclusive;
# THAW says when nothing was frozen; after a flip, nothing that would
# change the tracking or the throttle is accepted.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version

size_mib=64
size=$(( size_mib * 1024 * 1024 ))
start_source "$size_mib" migrate-block=64K
nbd_touch

before="$(ctl STATUS | head -n 1)"
info "STATUS before: $before"
case "$before" in
    "OK "*"size=$size "*"block=65536 "*"state=tracking"*) ;;
    *) fail "unexpected STATUS reply: $before" ;;
esac
# The filter's instance id: what stm-send derives its migration id from.
instance="$(status_field instance)"
[[ "$instance" =~ ^[0-9a-f]{32}$ ]] || fail "STATUS has no instance id: $before"

long="$(head -c 5000 /dev/zero | tr '\0' A)"
bad_requests=(
    "garbage"
    "HELLO WORLD"
    "$(printf 'STATUS\001\177')"
    "$long"
    "CONFIRM"
    "CONFIRM 0"
    "CONFIRM abc 65536"
    "CONFIRM 0 65536x"
    "CONFIRM -65536 65536"
    "CONFIRM 0 99999999999999999999999999"
    "CONFIRM 18446744073709486080 65536"
    "CONFIRM 4096 65536"
    "CONFIRM 0 4096"
    "CONFIRM $size 65536"
    "CONFIRM 0 $(( size * 2 ))"
    "THROTTLE"
    "THROTTLE fast"
    "THROTTLE -1"
    "THROTTLE 99999999999999999999999999"
    "FLIP"
    "FLIP sideways"
    "FLIP fence"
)

for req in "${bad_requests[@]}"; do
    reply="$(ctl "$req" | head -n 1)"
    info "'${req:0:40}' -> ${reply:0:80}"
    case "$reply" in
        "ERR E"*) ;;
        *) fail "request '${req:0:60}' was answered '$reply', not ERR" ;;
    esac
done

after="$(ctl STATUS | head -n 1)"
[ "$after" = "$before" ] ||
    fail "STATUS changed after bad requests: before '$before', after '$after'"

# One connection keeps working after its errors, and commands are
# case-insensitive.
ctl_open keep
r="$(ctl_send keep "nonsense")"
case "$r" in "ERR E"*) ;; *) fail "nonsense answered '$r'" ;; esac
r="$(ctl_send keep "CONFIRM 1 2")"
case "$r" in "ERR E"*) ;; *) fail "CONFIRM 1 2 answered '$r'" ;; esac
r="$(ctl_send keep "status" | head -n 1)"
case "$r" in "OK "*"state=tracking"*) ;; *) fail "status after errors answered '$r'" ;; esac
ctl_close keep

# Ownership: the first connection to use an owner command holds it;
# another gets EBUSY; STATUS stays open to all.
ctl_open owner
r="$(ctl_send owner "THROTTLE 0")"
case "$r" in "OK"*) ;; *) fail "THROTTLE 0 answered '$r'" ;; esac
r="$(ctl_send owner "STATUS")"
case "$r" in *"owner=you"*) ;; *) fail "owner's STATUS does not say owner=you: '$r'" ;; esac
r="$(ctl "THROTTLE 0")"
case "$r" in "ERR EBUSY"*) ;; *) fail "a second connection's THROTTLE answered '$r', not ERR EBUSY" ;; esac
r="$(ctl "FREEZE")"
case "$r" in "ERR EBUSY"*) ;; *) fail "a second connection's FREEZE answered '$r', not ERR EBUSY" ;; esac
r="$(ctl STATUS)"
case "$r" in "OK "*"owner=other"*"state=tracking"*|"OK "*"state=tracking"*"owner=other"*) ;;
    *) fail "STATUS from a non-owner: '$r'" ;; esac
ctl_close owner

# Once the owner has gone, ownership is free again.
owner_is_none () { [ "$(status_field owner)" = none ]; }
wait_for 5 "ownership to be released" owner_is_none
r="$(ctl "THROTTLE 0")"
case "$r" in "OK"*) ;; *) fail "THROTTLE after the owner left answered '$r'" ;; esac
# A THAW with nothing frozen does not claim to have ended a freeze.
r="$(ctl THAW)"
case "$r" in "OK not-frozen frozen_us=0"*) ;; *) fail "THAW when never frozen answered '$r'" ;; esac

after="$(ctl STATUS | head -n 1)"
[ "$after" = "$before" ] ||
    fail "STATUS changed: before '$before', after '$after'"

# FLIP is the one step that cannot be undone: the filter refuses it while
# any block is dirty, or handed out and not confirmed, and stays frozen.
# (This ends the test: the source is fenced at the end.)
ctl_open flip
r="$(ctl_send flip FREEZE)"
case "$r" in "OK frozen"*) ;; *) fail "FREEZE answered '$r'" ;; esac
r="$(ctl_send flip "FLIP fence")"
info "FLIP with every block dirty -> $r"
case "$r" in "ERR EBUSY"*"1024 blocks ($size bytes) are dirty"*"stays frozen"*) ;;
    *) fail "FLIP with every block dirty answered '$r'" ;; esac
state_is frozen || fail "the source is not frozen after a refused FLIP: $(ctl STATUS)"
r="$(ctl_send flip SNAPSHOT | head -n 1)"
case "$r" in "OK generation="*"bytes=$size"*) ;; *) fail "SNAPSHOT answered '$r'" ;; esac
r="$(ctl_send flip "FLIP fence")"
case "$r" in "ERR EBUSY"*"1024 blocks ($size bytes) are not confirmed"*) ;;
    *) fail "FLIP with every block unconfirmed answered '$r'" ;; esac
r="$(ctl_send flip "CONFIRM 0 $(( size - 65536 ))")"
case "$r" in "OK confirmed"*) ;; *) fail "CONFIRM answered '$r'" ;; esac
r="$(ctl_send flip "FLIP fence")"
case "$r" in "ERR EBUSY"*"1 blocks (65536 bytes) are not confirmed"*) ;;
    *) fail "FLIP with one block unconfirmed answered '$r'" ;; esac
r="$(ctl_send flip "CONFIRM $(( size - 65536 )) 65536")"
case "$r" in "OK confirmed"*) ;; *) fail "CONFIRM answered '$r'" ;; esac
r="$(ctl_send flip "RESET 0123456789abcdef0123456789abcdef")"
case "$r" in "OK dirty_blocks"*) ;; *) fail "RESET answered '$r'" ;; esac
r="$(ctl_send flip SNAPSHOT | head -n 1)"
r="$(ctl_send flip "CONFIRM 0 $size")"
case "$r" in "OK confirmed"*) ;; *) fail "CONFIRM answered '$r'" ;; esac
r="$(ctl_send flip "FLIP fence")"
case "$r" in "OK fenced"*) ;; *) fail "FLIP with every block confirmed answered '$r'" ;; esac

# A flip is final: nothing may change the tracking, the migration it was
# for, or the throttle afterwards.
fenced="$(ctl STATUS | head -n 1)"
case "$fenced" in *"migration=0123456789abcdef0123456789abcdef"*) ;;
    *) fail "STATUS after the flip does not name the migration: $fenced" ;; esac
for req in "RESET fedcba9876543210fedcba9876543210" "RESUME" "THROTTLE 1000" \
           SNAPSHOT "CONFIRM 0 65536"; do
    r="$(ctl_send flip "$req" | head -n 1)"
    info "after the flip: '$req' -> ${r:0:80}"
    case "$r" in "ERR EPERM the source has flipped"*) ;;
        *) fail "'$req' after the flip answered '$r'" ;; esac
done
r="$(ctl STATUS | head -n 1)"
[ "$r" = "$fenced" ] || fail "STATUS changed after the flip: '$fenced' then '$r'"
ctl_close flip
info "PASS"
