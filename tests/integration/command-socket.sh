# SPDX-License-Identifier: BSD-3-Clause
# stm integration tests: helpers for stm-send's command socket
# (--command-socket, stm-send(1) "COMMAND SOCKET PROTOCOL"), sourced
# after functions.sh by the tests of --cutover manual.

# send_cmd SOCKET COMMAND [SECONDS]: send one command line with socat,
# as an operator would, and print the reply line; waits at most SECONDS
# (default 10) for it.  Returns 1 when no reply came.
send_cmd ()
{
    local sock="$1" command="$2" secs="${3:-10}" reply
    reply="$(printf '%s\n' "$command" |
        timeout "$(( secs + 5 ))" socat -t "$secs" - "UNIX-CONNECT:$sock" 2>/dev/null)" ||
        true
    [ -n "$reply" ] || return 1
    printf '%s\n' "$reply" | head -n 1
}

# cmd_field SOCKET KEY: the value of KEY in a STATUS reply on SOCKET.
cmd_field ()
{
    send_cmd "$1" STATUS | sed -n "1s/.*[ ]$2=\\([^ ]*\\).*/\\1/p"
}

# cmd_ready SOCKET: does STATUS on SOCKET say ready=1?
cmd_ready () { [ "$(cmd_field "$1" ready)" = 1 ]; }

# wait_ready SOCKET SECONDS: wait until STATUS says ready=1, while the
# stm-send $SEND_PID lives.
wait_ready ()
{
    local sock="$1" secs="$2" i
    for (( i = 0; i < secs * 2; i++ )); do
        cmd_ready "$sock" && return 0
        alive "$SEND_PID" || fail "stm-send exited before it was ready"
        sleep 0.5
    done
    fail "stm-send was not ready within $secs s: $(send_cmd "$sock" STATUS)"
}
