#!/usr/bin/env bash
# Stop the LocalStack started by localstack/start.sh and remove its data. Safe to run at any time.
#
# SIGTERM first; LocalStack sometimes hangs while shutting down, so after S3QBB_LOCALSTACK_STOP_GRACE
# seconds (default 5) it gets SIGKILL. Never waits longer than that plus 5 s. Uses the same
# S3QBB_LOCALSTACK_VENV and S3QBB_LOCALSTACK_STATE as start.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/.." && pwd)"
state="${S3QBB_LOCALSTACK_STATE:-${repo}/.localstack-run}"
grace="${S3QBB_LOCALSTACK_STOP_GRACE:-5}"
pidfile="${state}/localstack.pid"
portfile="${state}/localstack.port"

log() { printf 'localstack/stop.sh: %s\n' "$*" >&2; }

running() {  # $1 = pid: is the process there (and not a zombie)?
    local stat
    stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [ -n "${stat}" ] && [ "${stat#Z}" = "${stat}" ]
}

is_localstack() {  # $1 = pid: a running LocalStack runtime (not an unrelated process reusing the pid)?
    running "$1" && [[ "$(ps -ww -o args= -p "$1" 2>/dev/null || true)" == *localstack.runtime.main* ]]
}

wait_gone() {  # $1 = pid, $2 = seconds: 0 once the process is gone, 1 if it is still there
    local deadline=$((SECONDS + $2))
    while running "$1"; do
        [ "${SECONDS}" -ge "${deadline}" ] && return 1
        sleep 0.1
    done
    return 0
}

signal() {  # $1 = signal, $2 = pid: its whole process group if it leads one (start.sh uses setsid)
    if [ "$(ps -o pgid= -p "$2" 2>/dev/null | tr -d ' ')" = "$2" ]; then
        kill "-$1" -- "-$2" 2>/dev/null || true
    else
        kill "-$1" "$2" 2>/dev/null || true
    fi
}

pid="$(cat "${pidfile}" 2>/dev/null || true)"
if [ -z "${pid}" ]; then
    log "not running (no ${pidfile})"
elif ! is_localstack "${pid}"; then
    log "not running (stale pid file ${pidfile})"
else
    signal TERM "${pid}"
    if wait_gone "${pid}" "${grace}"; then
        log "stopped LocalStack (pid ${pid})"
    else
        log "LocalStack (pid ${pid}) ignored SIGTERM for ${grace} s: sending SIGKILL"
        signal KILL "${pid}"
        wait_gone "${pid}" 5 || log "warning: pid ${pid} is still there after SIGKILL"
    fi
fi
rm -f "${pidfile}" "${portfile}"
rm -rf "${state}/filesystem" "${state}/tmp"
