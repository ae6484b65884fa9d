# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
#
# unit_command UNIT_FILE INSTANCE [ENV_FILE]: the command line systemd
# would run for INSTANCE of the template UNIT_FILE, in the array
# UNIT_ARGV.  The tests source this file to run a unit's ExecStart where
# systemd is not PID 1 and cannot start the unit itself.
#
# It reads the unit's EnvironmentFile= (with %i replaced by INSTANCE; or
# ENV_FILE instead, for a test's own copy) as systemd does for the simple
# files stm uses: VARIABLE=value lines, "#" and ";" comments, blanks
# trimmed, one pair of enclosing quotes removed.  In ExecStart=, a word
# that is "$VARIABLE" becomes the value split at whitespace, "${VARIABLE}"
# becomes the value as one word, and %i and %% are replaced.  No quoting
# inside ExecStart= (stm's unit has none).  Returns 1, with a message on
# stderr, if the unit has no single ExecStart= or the options file cannot
# be read.

unit_command ()
{
    local unit="$1" instance="$2" envfile="${3:-}" line key value word name
    local -A env=()
    # No globbing of the words a value is split into.
    local -
    set -f
    local -a words=() lines=()
    UNIT_ARGV=()

    mapfile -t lines < <(grep -E '^[[:space:]]*ExecStart=' "$unit")
    if [ "${#lines[@]}" -ne 1 ]; then
        echo "unit_command: $unit has ${#lines[@]} ExecStart= lines, not 1" >&2
        return 1
    fi
    if [ -z "$envfile" ]; then
        envfile="$(sed -n 's/^[[:space:]]*EnvironmentFile=-\{0,1\}//p' "$unit" | head -n 1)"
        envfile="${envfile//%i/$instance}"
    fi
    if [ -n "$envfile" ]; then
        [ -r "$envfile" ] || {
            echo "unit_command: cannot read the options file $envfile of $unit" >&2
            return 1
        }
        while IFS= read -r line || [ -n "$line" ]; do
            line="${line#"${line%%[![:space:]]*}"}"
            case "$line" in ''|'#'*|';'*) continue ;; esac
            case "$line" in *=*) ;; *) continue ;; esac
            key="${line%%=*}"; value="${line#*=}"
            key="${key%"${key##*[![:space:]]}"}"
            value="${value#"${value%%[![:space:]]*}"}"
            value="${value%"${value##*[![:space:]]}"}"
            case "$value" in
                \"*\"|\'*\') value="${value:1:${#value}-2}" ;;
            esac
            env[$key]="$value"
        done < "$envfile"
    fi

    line="${lines[0]#*ExecStart=}"
    # The prefixes that change how systemd runs the command, not the words.
    line="${line#"${line%%[!-@:+!]*}"}"
    read -r -a words <<<"$line"
    for word in "${words[@]}"; do
        word="${word//%%/$'\001'}"
        word="${word//%i/$instance}"
        word="${word//$'\001'/%}"
        if [[ "$word" =~ ^\$([A-Za-z_][A-Za-z0-9_]*)$ ]]; then
            name="${BASH_REMATCH[1]}"
            # shellcheck disable=SC2206  # splitting at whitespace is the point
            [ -z "${env[$name]:-}" ] || UNIT_ARGV+=(${env[$name]})
            continue
        fi
        while [[ "$word" =~ \$\{([A-Za-z_][A-Za-z0-9_]*)\} ]]; do
            name="${BASH_REMATCH[1]}"
            word="${word//"\${$name}"/${env[$name]:-}}"
        done
        UNIT_ARGV+=("$word")
    done
}
