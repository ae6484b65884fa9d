#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the migration report.  A real live migration (PSK,
# a guest writing, the rate capped so that the full pass lasts a few
# seconds and several progress events are drawn) with --report; then:
#  - the page is self-contained (no URL but the SVG namespace, no script,
#    no external style or image) and shows the timeline, the passes and
#    the downtime;
#  - stm-report renders the same run's --json output into the same page,
#    byte for byte (one renderer for both paths);
#  - headless Chromium draws the page, and the screenshot has enough
#    pixels of the throughput line's colour and of the downtime marker's;
#  - stm-send run again after the flip, without --json, still writes its
#    report, and a report that cannot be written is reported, naming the
#    file, without changing stm-send's exit status.

source ./functions.sh
set -eu
requires_psk_migration
[ -x "$STM_REPORT" ] || { echo "$(basename "$0"): ERROR: $STM_REPORT has not been built" >&2; exit 99; }
requires chromium --version
/usr/bin/python3 -c 'import PIL' 2>/dev/null ||
    skip "python3 with PIL is not installed (Debian: python3-pil)"

size_mib=96
start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" 120 0 --rate=,256k
migrate_psk_once 180 --max-passes 10 --rate 32M --report "$tmp/send.html"

page="$tmp/send.html"
[ -s "$page" ] || fail "stm-send --report wrote no page"
head -n 1 "$page" | grep -qx '<!DOCTYPE html>' || fail "the report is not an HTML page"
grep -q '<svg' "$page" || fail "the report has no SVG timeline"
grep -q 'class="band' "$page" || fail "the report draws no pass band"
grep -q 'pass 1' "$page" || fail "the report does not label pass 1"
grep -q 'cutover: downtime [0-9.]* ms' "$page" || fail "the report does not label the downtime"
grep -q 'Migrated: the source flipped' "$page" || fail "the report does not say the migration succeeded"
migration_id="$(sed -n 's/.*"migration_id":"\([^"]*\)".*/\1/p' "$tmp/send.out" | head -n 1)"
[ -n "$migration_id" ] && grep -q "migration id $migration_id" "$page" ||
    fail "the report's title does not give the migration id ($migration_id)"
urls="$(grep -o 'https\?://[^" <]*' "$page" | grep -vx 'http://www.w3.org/2000/svg' || true)"
[ -z "$urls" ] || fail "the report refers to URLs: $urls"
if grep -Eqi '<script|<link|<img|<iframe|src=|@import|url\(' "$page"; then
    fail "the report loads something from outside the page"
fi

# The same run's JSON through stm-report: the same page.
run_bounded 30 stm-report sh -c 'exec "$0" < "$1"' "$STM_REPORT" "$tmp/send.out"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-report exited with $EXIT_STATUS: $(cat "$tmp/stm-report.err")"
cmp -s "$tmp/stm-report.out" "$page" ||
    fail "stm-report's page differs from stm-send --report's for the same events"
info "stm-report renders the same page as stm-send --report"

# Draw the page as a browser does, and look at the pixels.
shot="$tmp/shot.png"
run_bounded 120 chromium chromium --headless --no-sandbox --disable-gpu \
    --user-data-dir="$tmp/chromium" --hide-scrollbars \
    --screenshot="$shot" --window-size=1280,1000 "file://$page"
[ "$EXIT_STATUS" -eq 0 ] && [ -s "$shot" ] ||
    fail "chromium did not make a screenshot (status $EXIT_STATUS): $(tail -n 5 "$tmp/chromium.err")"
[ -n "${STM_REPORT_SHOT:-}" ] && cp "$shot" "$STM_REPORT_SHOT"
# Pixels within a small distance of each colour (anti-aliasing blends the
# edges of lines).  The legend and the labels use these colours too, but
# far fewer pixels than the thresholds: below them, the line or the
# marker was not drawn.
counts="$(/usr/bin/python3 - "$shot" <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
want = {"rate": (0x00, 0x72, 0xb2), "downtime": (0xd5, 0x5e, 0x00)}
n = dict.fromkeys(want, 0)
for p in im.getdata():
    for k, c in want.items():
        if abs(p[0] - c[0]) + abs(p[1] - c[1]) + abs(p[2] - c[2]) <= 48:
            n[k] += 1
print(n["rate"], n["downtime"])
EOF
)"
read -r rate_px downtime_px <<< "$counts"
info "screenshot: $rate_px pixels of the throughput line's colour, $downtime_px of the downtime marker's"
[ "$rate_px" -ge 600 ] || fail "the throughput line is missing from the drawn page ($rate_px pixels)"
[ "$downtime_px" -ge 600 ] || fail "the downtime marker is missing from the drawn page ($downtime_px pixels)"

# Again after the flip, with no receiver and no --json: the report is
# still written (the run's own events: it found the source flipped).
run_bounded 60 again "$STM_SEND" --source "$NBD_URI" --control "$CTL_SOCK" \
    --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" --no-progress \
    --retry-timeout 0 --report "$tmp/again.html"
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send after the flip exited with $EXIT_STATUS"
[ -s "$tmp/again.out" ] && fail "stm-send without --json printed on stdout: $(head -n 2 "$tmp/again.out")"
grep -q '<svg' "$tmp/again.html" || fail "stm-send without --json wrote no report"

# A report that cannot be written: said once, naming the file; the exit
# status is still the source's (0: it has flipped).
bad="$tmp/no-such-dir/r.html"
run_bounded 60 unwritable "$STM_SEND" --source "$NBD_URI" --control "$CTL_SOCK" \
    --dest "127.0.0.1:$RECV_PORT" --tls-psk "$tmp/keys.psk" --no-progress \
    --retry-timeout 0 --report "$bad"
[ "$EXIT_STATUS" -eq 0 ] ||
    fail "an unwritable report changed stm-send's exit status to $EXIT_STATUS"
n="$(grep -c "cannot write the report $bad" "$tmp/unwritable.err" || true)"
[ "$n" -eq 1 ] || fail "the unwritable report was reported $n times: $(cat "$tmp/unwritable.err")"
info "PASS"
