#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm: run one libFuzzer harness for a bounded time over its seed corpus.
#
#   run-fuzzer.sh [--merge] FUZZER CORPUS SECONDS [libFuzzer options...]
#
# The committed corpus (CORPUS) is only read: libFuzzer writes the inputs
# it finds interesting into the first corpus directory it is given, so that
# is a fresh temporary directory, removed afterwards.  With --merge the
# inputs of the run that add coverage are merged into CORPUS at the end
# ("make fuzz-merge"), which is the only way the committed corpus changes.
# A crash, a leak, a sanitizer report or a broken invariant fails the run;
# the input that caused it is kept as fuzz-artifacts/crash-* (or leak-*,
# timeout-*) in the current directory, ready to be added to the corpus as
# a regression seed once the bug is fixed.

set -euo pipefail

merge=no
if [ "${1:-}" = --merge ]; then
    merge=yes
    shift
fi
if [ $# -lt 3 ]; then
    echo "usage: run-fuzzer.sh [--merge] FUZZER CORPUS SECONDS [options...]" >&2
    exit 2
fi
fuzzer="$1" corpus="$2" seconds="$3"
shift 3
name="$(basename "$fuzzer")"

[ -x "$fuzzer" ] || { echo "$name: $fuzzer is not built" >&2; exit 1; }
[ -d "$corpus" ] || { echo "$name: no corpus directory $corpus" >&2; exit 1; }
case "$seconds" in
    ''|*[!0-9]*) echo "$name: FUZZ_SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac

artifacts="$PWD/fuzz-artifacts"
mkdir -p "$artifacts"
new="$(mktemp -d "${TMPDIR:-/tmp}/stm-$name.XXXXXX")"
log="$artifacts/$name.log"
trap 'rm -rf "$new"' EXIT

# libFuzzer reads -max_total_time=0 as "no limit": 0 seconds here means
# replaying the corpus only, a quick regression check.
if [ "$seconds" -eq 0 ]; then
    limit=(-runs=0)
    echo "$name: replaying the $(ls "$corpus" | wc -l) inputs of $corpus"
else
    limit=(-max_total_time="$seconds")
    echo "$name: fuzzing for $seconds s from $(ls "$corpus" | wc -l) seeds in $corpus"
fi
status=0
# -timeout: one input must not take 10 s; -rss_limit_mb: nor 1 GiB, since
# the decoders allocate nothing and the harnesses little.
"$fuzzer" "${limit[@]}" -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" \
    "$new" "$corpus" >"$log" 2>&1 || status=$?

if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "$name: FAILED (exit status $status); full log: $log;" \
         "reproduce with: $fuzzer $artifacts/<crash-file>" >&2
    ls -1 "$artifacts" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
    exit 1
fi

runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
cov="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*/\1 \2/')"
echo "$name: ok: ${runs:-?} inputs, ${cov:-no coverage line}," \
     "$(ls "$new" | wc -l) new interesting inputs (kept only by make fuzz-merge)"

if [ "$merge" = yes ]; then
    before="$(ls "$corpus" | wc -l)"
    "$fuzzer" -merge=1 "$@" "$corpus" "$new" >>"$log" 2>&1 || {
        tail -n 20 "$log" >&2
        echo "$name: merging into $corpus FAILED; full log: $log" >&2
        exit 1
    }
    echo "$name: merged $(( $(ls "$corpus" | wc -l) - before )) inputs into $corpus"
fi
