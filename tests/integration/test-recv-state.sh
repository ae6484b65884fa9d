#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv's state file (OUTPUT.stm-state) and the
# refusals it makes possible, driven by a scripted sender that speaks the
# wire protocol in the clear (stm-recv --insecure), so every answer can be
# checked byte for byte:
#  - an existing, non-empty file that is not an stm-recv output is refused
#    at startup (exit 1, a message naming it and --force) and left alone;
#    --force lets the first migration overwrite it;
#  - DURABLE is answered only once the state file records the sync;
#  - a receiver killed with -9 and restarted on the same output answers
#    the same migration RESUME with the durable position;
#  - a committed output is only prepared: it answers its migration
#    PREPARED, and a COMMIT sent again (a sender that lost COMMITTED)
#    answers COMMITTED again; OUTCOME flipped makes it final (RECORDED
#    final, then the session ends; HELLO answered FINAL, the same OUTCOME
#    again answered final, writes refused), and an OUTCOME that
#    contradicts the record is refused;
#  - a HELLO of another migration gets ERROR mismatch naming --force, and
#    the receiver keeps serving; restarted with --force it accepts it;
#  - a damaged state file, or an output whose size no longer matches its
#    state file, is refused at startup.

source ./functions.sh
set -eu
requires_built
requires python3 --version

out="$tmp/dst.img"
state="$out.stm-state"

# The scripted sender: a few frame builders and checks.  Each scenario is
# a short Python program run with the receiver's port as argument; it
# exits non-zero with a message when an answer is not the expected one.
{ cat "$abs_top_srcdir/tests/integration/wire_client.py"; cat <<'EOF'; } > "$tmp/wire.py"
Conn.only_disk0 = True
X = bytes(range(16))
Y = bytes(range(16, 32))
SIZE = 1 << 20
EOF

# scenario NAME: run the Python code on stdin against $RECV_PORT.
scenario ()
{
    { cat "$tmp/wire.py"; cat; } > "$tmp/$1.py"
    run_bounded 30 "$1" python3 "$tmp/$1.py" "$RECV_PORT"
    cat "$tmp/$1.out" "$tmp/$1.err"
    [ "$EXIT_STATUS" -eq 0 ] || fail "scenario $1 failed"
}

# state_has KEY VALUE: the state file says KEY VALUE.
state_has () { grep -qx "$1 $2" "$state"; }

# recv_refuses NAME WHY ARGS...: stm-recv exits 1 at startup, naming the
# output and --force, and saying WHY.
recv_refuses ()
{
    local name="$1" why="$2"
    shift 2
    run_bounded 10 "$name" "$STM_RECV" --listen 127.0.0.1:0 --output "$out" \
        --insecure "$@"
    [ "$EXIT_STATUS" -eq 1 ] || fail "$name: stm-recv exited with $EXIT_STATUS, not 1"
    grep -q -- "--force" "$tmp/$name.err" || fail "$name: the message does not mention --force"
    grep -qF "$out" "$tmp/$name.err" || fail "$name: the message does not name $out"
    grep -q "$why" "$tmp/$name.err" || fail "$name: the message does not say '$why'"
    grep -q "listening" "$tmp/$name.err" && fail "$name: stm-recv listened before refusing"
    info "$name: refused: $(grep error "$tmp/$name.err" | head -n 1)"
}

# 1. Somebody's file: refused, untouched; --force takes it.
head -c 300000 /dev/urandom > "$out"
cp "$out" "$tmp/orig.img"
recv_refuses foreign "no state file"
cmp -s "$out" "$tmp/orig.img" || fail "the refused output was changed"
[ ! -e "$state" ] || fail "a refused start wrote a state file"

start_stm_recv --output "$out" --insecure --force
scenario new <<'EOF'
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(0, 0)
c.send(data(0, b"\x11" * 65536), data(SIZE - 4096, b"\x22" * 4096), sync(1))
if struct.unpack(">Q", c.expect(DURABLE))[0] != 1:
    fail("DURABLE is not for sync 1")
c.close()
EOF
state_has migration_id 000102030405060708090a0b0c0d0e0f || fail "state file: $(cat "$state")"
state_has durable_seq 1 && state_has state incomplete && state_has image_size 1048576 ||
    fail "the state file does not record sync 1: $(cat "$state")"
[ "$(stat -c %s "$out")" -eq 1048576 ] || fail "the output was not sized to the image"

# 2. Killed and restarted without --force: the same migration resumes,
#    commits, and a COMMIT sent again answers COMMITTED again.
{ kill -KILL "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
start_stm_recv --output "$out" --insecure --json
grep -q "holds migration 000102030405060708090a0b0c0d0e0f, incomplete" "$tmp/recv.err" ||
    fail "the restarted receiver did not recognise the migration"
scenario resume <<'EOF'
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(1, 1)
c.send(data(65536, b"\x33" * 65536), commit(2))
c.expect(COMMITTED)
c.close()
# A sender that lost COMMITTED comes back: the commit is prepared, and a
# COMMIT again answers COMMITTED again.
c = Conn(port)
c.send(hello(X, SIZE, block=4096))
c.expect_reply(2, 2)
c.send(commit(2))
c.expect(COMMITTED)
c.close()
EOF
state_has state prepared && state_has durable_seq 2 ||
    fail "the state file does not record the commit as prepared: $(cat "$state")"
if grep -q '"event":"done"' "$tmp/recv.out"; then
    fail "stm-recv reported done for a commit that is only prepared"
fi

# 2b. The outcome: one that contradicts the record (another commit) is
#     refused and changes nothing; flipped makes it final, and again is
#     harmless; a final migration answers HELLO final and takes no writes.
scenario outcome <<'EOF'
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(2, 2)
c.send(outcome(7, FLIPPED))
c.expect_error(1, "another commit")
c.expect_closed()
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(2, 2)
c.send(outcome(2, FLIPPED))
c.expect_recorded(2, FINAL)
# A final migration leaves its sender nothing to say: the session ends.
c.expect_closed()
# A sender that lost RECORDED says it again, and hears final again.
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(3, 2)
c.send(outcome(2, FLIPPED))
c.expect_recorded(2, FINAL)
c.expect_closed()
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(3, 2)
c.send(outcome(2, THAWED))
c.expect_error(1, "already final")
c.expect_closed()
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(3, 2)
c.send(data(0, b"\x44" * 65536))
c.expect_error(1, "final")
c.expect_closed()
EOF
state_has state final && state_has durable_seq 2 ||
    fail "the state file does not record the migration final: $(cat "$state")"
grep -q '"event":"outcome".*"outcome":"flipped".*"state":"final"' "$tmp/recv.out" ||
    fail "no outcome event saying final"

# 3. Another migration is refused while the output holds this one, and the
#    receiver keeps serving.
scenario other <<'EOF'
c = Conn(port)
c.send(hello(Y, SIZE))
c.expect_error(5, "--force")
c.expect_closed()
c = Conn(port)
c.send(hello(X, SIZE))
c.expect_reply(3, 2)
c.close()
EOF
alive "$RECV_PID" || fail "stm-recv exited after refusing another migration"
state_has migration_id 000102030405060708090a0b0c0d0e0f || fail "the refusal changed the state file"
python3 - "$out" <<'EOF' || fail "the output does not hold what was sent"
import sys
d = open(sys.argv[1], "rb").read()
want = b"\x11" * 65536 + b"\x33" * 65536 + bytes((1 << 20) - 131072 - 4096) + b"\x22" * 4096
sys.exit(0 if d == want else 1)
EOF
info "the output holds exactly what was sent and committed"

# 4. Restarted with --force, the other migration starts anew.
kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 10
start_stm_recv --output "$out" --insecure --force
scenario forced <<'EOF'
c = Conn(port)
c.send(hello(Y, 2 * SIZE))
c.expect_reply(0, 0)
c.close()
EOF
state_has migration_id 101112131415161718191a1b1c1d1e1f && state_has state incomplete ||
    fail "--force did not record the new migration: $(cat "$state")"
kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 10

# 5. A damaged state file, and an output whose size no longer matches a
#    state file with durable data, are refused.
printf 'stm-recv-state 2\nmigration_id 101112131415161718191a1b1c1d1e1f\n' > "$state"
recv_refuses damaged "not valid"
cat > "$state" <<'EOF'
stm-recv-state 2
migration_id 101112131415161718191a1b1c1d1e1f
image_size 2097152
block_size 65536
durable_seq 3
state incomplete
EOF
truncate -s 1M "$out"
recv_refuses resized "changed outside stm-recv"
# The same, but emptied: its data is gone, nothing else is at stake.
truncate -s 0 "$out"
start_stm_recv --output "$out" --insecure
grep -q "the data it recorded is gone" "$tmp/recv.err" ||
    fail "no warning about a state file whose output was emptied"
scenario stale <<'EOF'
c = Conn(port)
c.send(hello(Y, 2 * SIZE))
c.expect_reply(0, 0)
c.close()
EOF
info "PASS"
