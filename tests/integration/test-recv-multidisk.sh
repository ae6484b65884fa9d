#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv assembling a group of two named disks
# (--output NAME=IMAGE) in one migration, driven in the clear (--insecure)
# by a scripted sender that speaks the HELLO disk table
# (WIRE_FEATURE_DISKS), until stm-send does:
#  - a HELLO whose disk names are not the outputs' is refused with ERROR
#    mismatch naming the extra and the missing disks, and so is an unnamed
#    HELLO; nothing is written, and the receiver keeps serving;
#  - DATA and ZERO for each disk land in that disk's image (the HELLO lists
#    the disks in another order than the options: indexes are the HELLO's);
#  - the group is recorded in one state file, version 3, beside the output
#    whose name sorts first, and nowhere else;
#  - killed with -9 after a SYNC and more unsynced DATA, a restarted
#    receiver answers RESUME with the group's durable sync (the HELLO
#    listing the disks in yet another order), and the group commits and
#    becomes final;
#  - under strace, every rename stm-recv makes in a whole group migration,
#    its commit included, is of that one state file, each after the
#    fdatasync of both images: the group commit is one atomic step;
#  - a state file beside another output of the group, or a record whose
#    disk names are not the outputs', is refused at startup (and --force
#    removes the stray one);
#  - with --export, one nbdkit serves each disk as the NBD export of its
#    name: EXPORT announces each disk's URI after HELLO_REPLY, before any
#    commit; reads are refused until the group commit; COMMITTED carries
#    the URI of the HELLO's disk 0; then both exports serve their images.

source ./functions.sh
set -eu
requires_built
requires python3 --version

root="$tmp/root.img"
data="$tmp/data.img"
state="$data.stm-state"          # "data" sorts before "root"

{ cat "$abs_top_srcdir/tests/integration/wire_client.py"; cat <<'EOF'; } > "$tmp/wire.py"
X = bytes(range(16))
ROOT = ("root", 1 << 20, 65536)
DATA_DISK = ("data", 512 << 10, 4096)
EOF

scenario ()
{
    { cat "$tmp/wire.py"; cat; } > "$tmp/$1.py"
    run_bounded 30 "$1" python3 "$tmp/$1.py" "$RECV_PORT"
    cat "$tmp/$1.out" "$tmp/$1.err"
    [ "$EXIT_STATUS" -eq 0 ] || fail "scenario $1 failed"
}

recv_args=(--output "root=$root" --output "data=$data" --insecure)

# 1. Names that are not the outputs': refused, nothing written.
start_stm_recv "${recv_args[@]}"
scenario names <<'EOF'
c = Conn(port)
c.send(group_hello(X, [ROOT, ("swap", 1 << 20, 4096)]))
c.expect_error(5, "[swap] that have no --output", "lacks [data]")
c.expect_closed()
c = Conn(port)
c.send(hello(X, 1 << 20))
c.expect_error(5, "unnamed")
c.expect_closed()
EOF
alive "$RECV_PID" || fail "stm-recv exited after refusing a HELLO"
[ ! -e "$state" ] && [ ! -e "$root.stm-state" ] ||
    fail "a refused HELLO wrote a state file"
[ "$(stat -c %s "$root")" -eq 0 ] && [ "$(stat -c %s "$data")" -eq 0 ] ||
    fail "a refused HELLO changed an output"

# 2. A new group: data for both disks, a SYNC, then more data that is
#    never synced, and the receiver is killed.
scenario group_new <<'EOF'
c = Conn(port)
c.send(group_hello(X, [DATA_DISK, ROOT]))        # disk 0 = data, 1 = root
c.expect_reply(0, 0)
c.send(data(0, b"\x11" * 65536, 1), data(4096, b"\x22" * 4096, 0),
       data((1 << 20) - 4096, b"\x33" * 4096, 1), zero(8192, 8192, 0), sync(1))
if struct.unpack(">Q", c.expect(DURABLE))[0] != 1:
    fail("DURABLE is not for sync 1")
c.send(data(0, b"\x44" * 4096, 0))
c.s.close()
EOF
grep -qx "stm-recv-state 3" "$state" && grep -qx "disks 2" "$state" &&
    grep -qx "disk data 524288 4096" "$state" && grep -qx "disk root 1048576 65536" "$state" &&
    grep -qx "durable_seq 1" "$state" ||
    fail "the group's state file is not as expected: $(cat "$state")"
[ ! -e "$root.stm-state" ] || fail "a second state file beside $root"
[ "$(stat -c %s "$root")" -eq 1048576 ] && [ "$(stat -c %s "$data")" -eq 524288 ] ||
    fail "the outputs were not sized to their disks"
{ kill -KILL "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true

# 3. Restarted: the group resumes at sync 1, commits, and becomes final.
start_stm_recv "${recv_args[@]}" --json
grep -qF "the group of disks root ($root), data ($data) holds migration 000102030405060708090a0b0c0d0e0f, incomplete" \
    "$tmp/recv.err" || fail "the restarted receiver did not recognise the group"
scenario group_resume <<'EOF'
c = Conn(port)
c.send(group_hello(X, [ROOT, DATA_DISK]))        # disk 0 = root, 1 = data
c.expect_reply(1, 1)
c.send(data(0, b"\x55" * 4096, 1), data(65536, b"\x66" * 4096, 0), commit(2))
c.expect(COMMITTED)
c.send(outcome(2, FLIPPED))
s, st = struct.unpack(">QI", c.expect(RECORDED))
if (s, st) != (2, FINAL):
    fail("RECORDED %d %d" % (s, st))
c.expect_closed()
EOF
grep -qx "state final" "$state" && grep -qx "durable_seq 2" "$state" ||
    fail "the group is not recorded final: $(cat "$state")"
python3 - "$root" "$data" <<'EOF' || fail "the images do not hold what was sent"
import sys
root = open(sys.argv[1], "rb").read()
data = open(sys.argv[2], "rb").read()
want_root = bytearray(1 << 20)
want_root[0:65536] = b"\x11" * 65536
want_root[65536:65536 + 4096] = b"\x66" * 4096
want_root[(1 << 20) - 4096:] = b"\x33" * 4096
want_data = bytearray(512 << 10)
want_data[0:4096] = b"\x55" * 4096       # the unsynced \x44 was overwritten
want_data[4096:8192] = b"\x22" * 4096
if root != bytes(want_root):
    sys.exit("root.img differs")
if data != bytes(want_data):
    sys.exit("data.img differs")
EOF
{ kill -TERM "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true

# 4. The group commit is one rename: a whole migration under strace.
if command -v strace >/dev/null 2>&1; then
    rm -f "$root" "$data" "$state"
    cat > "$tmp/recv-strace.sh" <<EOF
#!/bin/sh
exec strace -f -o "$tmp/strace.log" -e trace=rename,renameat,renameat2,fdatasync,openat "$STM_RECV" "\$@"
EOF
    chmod +x "$tmp/recv-strace.sh"
    saved_recv="$STM_RECV"
    STM_RECV="$tmp/recv-strace.sh"
    start_stm_recv "${recv_args[@]}" --once
    STM_RECV="$saved_recv"
    scenario group_traced <<'EOF'
c = Conn(port)
c.send(group_hello(X, [ROOT, DATA_DISK]))
c.expect_reply(0, 0)
c.send(data(0, b"\x77" * 4096, 0), data(0, b"\x88" * 4096, 1), sync(1))
c.expect(DURABLE)
c.send(data(4096, b"\x99" * 4096, 1), commit(2))
c.expect(COMMITTED)
c.send(outcome(2, FLIPPED))
c.expect(RECORDED)
c.expect_closed()
EOF
    wait_exit "$RECV_PID" 20
    [ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --once exited with $EXIT_STATUS"
    python3 - "$tmp/strace.log" "$root" "$data" "$state" <<'EOF' ||
import re, sys
log, root, data, state = sys.argv[1:]
fds, synced, renames = {}, set(), 0
for line in open(log):
    m = re.search(r'openat\(.*"([^"]+)".*\) = (\d+)$', line)
    if m:
        fds[m.group(2)] = m.group(1)
        continue
    m = re.search(r'fdatasync\((\d+)\)\s+= 0', line)
    if m:
        synced.add(fds.get(m.group(1)))
        continue
    m = re.search(r'rename(?:at2?)?\(.*"([^"]+)",.*"([^"]+)"', line)
    if m:
        renames += 1
        if m.group(2) != state or m.group(1) != state + ".tmp":
            sys.exit("a rename of another file: " + line.strip())
        # The records of SYNC 1 and of the commit (renames 2 and 3) follow
        # an fdatasync of both images since the rename before; the first
        # (the new migration) and the last (the outcome) promise no data.
        if renames in (2, 3) and synced != {root, data}:
            sys.exit("rename %d without an fdatasync of both images since the "
                     "last (%r): %s" % (renames, synced, line.strip()))
        synced = set()
if renames != 4:         # new, sync 1, commit (prepared), outcome (final)
    sys.exit("%d renames, expected 4" % renames)
print("strace: 4 renames, all of %s; those of the sync and the commit "
      "each after the fdatasync of both images" % state)
EOF
        fail "the group was not recorded by single renames of one state file"
    grep -qx "state final" "$state" || fail "the traced group is not final"
else
    info "strace is not installed: the one-rename check is skipped"
fi

# 5. Stray state files and foreign records are refused at startup.
echo "stm-recv-state 2" > "$root.stm-state"
run_bounded 10 stray "$STM_RECV" --listen 127.0.0.1:0 "${recv_args[@]}"
[ "$EXIT_STATUS" -eq 1 ] || fail "a stray state file beside $root was not refused"
grep -q "has a state file of its own" "$tmp/stray.err" || fail "stray: $(cat "$tmp/stray.err")"
start_stm_recv "${recv_args[@]}" --force
[ ! -e "$root.stm-state" ] || fail "--force did not remove the stray state file"
{ kill -TERM "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
run_bounded 10 renamed "$STM_RECV" --listen 127.0.0.1:0 --insecure \
    --output "data=$data" --output "zz=$tmp/zz.img"
[ "$EXIT_STATUS" -eq 1 ] || fail "a record of other disk names was not refused"
grep -qF "$state records the disks [root data], not the --output names" "$tmp/renamed.err" ||
    fail "renamed: $(cat "$tmp/renamed.err")"
[ ! -e "$tmp/zz.img" ] || fail "a refused start left a new output behind"
# 6. --export: a group served by one nbdkit, one export per disk.
if command -v nbdkit >/dev/null 2>&1 && command -v nbdcopy >/dev/null 2>&1; then
    rm -f "$root" "$data" "$state"
    export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    start_stm_recv "${recv_args[@]}" --export "127.0.0.1:$export_port"
    export EXPORT_PORT="$export_port" TMPD="$tmp"
    scenario group_export <<'EOF'
import subprocess
EXPORT = 16
base = "nbd://127.0.0.1:%s/" % os.environ["EXPORT_PORT"]
tmpd = os.environ["TMPD"]
c = Conn(port)
c.send(group_hello(X, [DATA_DISK, ROOT]))        # disk 0 = data, 1 = root
c.expect_reply(0, 0)
uris = {}
for _ in range(2):
    p = c.expect(EXPORT)
    n = struct.unpack(">I", p[:4])[0]
    uris[c.disk] = p[4:4 + n].decode()
if uris != {0: base + "data", 1: base + "root"}:
    fail("EXPORT announced %r" % uris)
print("wire.py: EXPORT %r" % uris)
# Behind the gate until the commit: a read is refused.
r = subprocess.run(["nbdcopy", uris[1], tmpd + "/early.img"], capture_output=True)
if r.returncode == 0:
    fail("a read of the export before the commit succeeded")
c.send(data(0, b"\xaa" * 65536, 1), data(4096, b"\xbb" * 4096, 0), sync(1), commit(2))
c.expect(DURABLE)
p = c.expect(COMMITTED)
n = struct.unpack(">I", p[:4])[0]
if p[4:4 + n].decode() != uris[0]:
    fail("COMMITTED carries %r, not disk 0's %r" % (p[4:4 + n], uris[0]))
for disk, name, size, byte, off, length in ((1, "root", 1 << 20, b"\xaa", 0, 65536),
                                            (0, "data", 512 << 10, b"\xbb", 4096, 4096)):
    out = "%s/%s.copy" % (tmpd, name)
    subprocess.run(["nbdcopy", uris[disk], out], check=True)
    want = bytearray(size)
    want[off:off + length] = byte * length
    if open(out, "rb").read() != bytes(want):
        fail("the export of %s does not serve its image" % name)
print("wire.py: both exports serve their images after the commit")
c.send(outcome(2, FLIPPED))
c.expect(RECORDED)
c.expect_closed()
EOF
    { kill -TERM "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
else
    info "nbdkit or nbdcopy is not installed: the group export is not tested"
fi
info "ok"
