#!/usr/bin/env bash
# Start LocalStack's S3 service on 127.0.0.1 without Docker, for s3qbb's integration tests.
#
#   localstack/start.sh               build the virtual environment if needed, start, print the endpoint URL
#   localstack/start.sh --venv-only   only build (or check) the virtual environment
#   localstack/start.sh --print-venv  print where the virtual environment is (or would be)
#
# The endpoint URL is the only thing written to stdout, so `url="$(localstack/start.sh)"` works;
# progress goes to stderr. Running it again while the server runs prints the same URL.
# Stop the server with localstack/stop.sh. Settings (environment variables):
#
#   S3QBB_LOCALSTACK_VENV     virtual environment       (default: <user cache>/s3qbb/localstack-venv)
#   S3QBB_LOCALSTACK_PYTHON   interpreter that builds it (default: python3.11)
#   S3QBB_LOCALSTACK_STATE    pid/port files, log, data  (default: <repo>/.localstack-run)
#   S3QBB_LOCALSTACK_PORT     port to listen on          (default: a free port)
#   S3QBB_LOCALSTACK_TIMEOUT  seconds to wait for S3     (default: 90)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/.." && pwd)"
# The user's cache directory, as platformdirs.user_cache_dir("s3qbb") gives it to the pytest fixtures
# (s3qbb.testing.localstack.default_localstack_venv): one environment per user, none in the project.
if [ "$(uname -s)" = Darwin ]; then
    cache="${HOME}/Library/Caches/s3qbb"
else
    cache="${XDG_CACHE_HOME:-${HOME}/.cache}/s3qbb"
fi
venv="${S3QBB_LOCALSTACK_VENV:-${cache}/localstack-venv}"
python="${S3QBB_LOCALSTACK_PYTHON:-python3.11}"
state="${S3QBB_LOCALSTACK_STATE:-${repo}/.localstack-run}"
want_port="${S3QBB_LOCALSTACK_PORT:-}"
timeout="${S3QBB_LOCALSTACK_TIMEOUT:-90}"

# Must match s3qbb/testing/localstack.py, which builds the same environment for pytest.
stamp="${venv}/.s3qbb-localstack"
failed="${venv}/.s3qbb-localstack-failed"
pidfile="${state}/localstack.pid"
portfile="${state}/localstack.port"
logfile="${state}/localstack.log"

log() { printf 'localstack/start.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

venv_only=0
case "${1:-}" in
    "") ;;
    --venv-only) venv_only=1 ;;
    --print-venv) echo "${venv}"; exit 0 ;;
    -h | --help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

# The pinned requirements and constraints, one per line, comments and blank lines dropped.
wanted_stamp() {
    cat "${here}/requirements.txt" "${here}/constraints.txt" \
        | sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' | grep -v '^$'
}

venv_ready() {
    [ -x "${venv}/bin/python" ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "$(wanted_stamp)" ] \
        && "${venv}/bin/python" -c 'import localstack.runtime.main' >/dev/null 2>&1
}

build_venv() {
    command -v "${python}" >/dev/null 2>&1 \
        || die "${python} not found: LocalStack ${venv##*/} needs Python 3.11 (set S3QBB_LOCALSTACK_PYTHON)"
    "${python}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
        || die "${python} is not Python >= 3.11 (set S3QBB_LOCALSTACK_PYTHON to a Python 3.11)"
    log "building ${venv} with $("${python}" -V 2>&1) (takes about a minute the first time)"
    local started=${SECONDS}
    "${python}" -m venv --clear "${venv}"
    local install_log="${venv}/.s3qbb-localstack-install.log"
    # --timeout/--retries: without a network, give up in about a minute rather than a quarter hour.
    if ! "${venv}/bin/python" -m pip install --disable-pip-version-check --no-input --timeout 60 --retries 2 \
        -r "${here}/requirements.txt" -c "${here}/constraints.txt" >"${install_log}" 2>&1; then
        tail -n 20 "${install_log}" >&2
        wanted_stamp >"${failed}"
        die "pip could not install LocalStack into ${venv} (full log: ${install_log})"
    fi
    # Warm plux's entry-point cache (in the venv's own HOME) now, under the lock: every start
    # reads it instead of rebuilding it (saves ~2.5 s per start, and no two starts write it at once).
    HOME="${venv}/home" "${venv}/bin/python" -P -c \
        'from plux.runtime.cache import EntryPointsCache; EntryPointsCache.instance().get_entry_points()'
    rm -f "${failed}"
    wanted_stamp >"${stamp}"
    log "built ${venv} in $((SECONDS - started)) s"
}

ensure_venv() {
    mkdir -p "$(dirname "${venv}")"
    if command -v flock >/dev/null 2>&1; then
        # One builder at a time (pytest workers use the same lock file through fcntl.flock).
        exec 9>"${venv}.lock"
        flock 9
    fi
    venv_ready || build_venv
    if command -v flock >/dev/null 2>&1; then
        exec 9>&-
    fi
}

health_ok() {  # $1 = port: does /_localstack/health report S3 as running?
    "${venv}/bin/python" - "$1" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_localstack/health", timeout=2) as r:
    sys.exit(json.load(r).get("services", {}).get("s3") != "running")
EOF
}

running() {  # $1 = pid: is the process there (and not a zombie)?
    local stat
    stat="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [ -n "${stat}" ] && [ "${stat#Z}" = "${stat}" ]
}

is_localstack() {  # $1 = pid: a running LocalStack runtime (not an unrelated process reusing the pid)?
    running "$1" && [[ "$(ps -ww -o args= -p "$1" 2>/dev/null || true)" == *localstack.runtime.main* ]]
}

# LocalStack 4.13 keeps S3 data in a fixed /tmp/localstack-s3-storage, shared by every LocalStack on
# the machine (they then delete each other's bucket folders): point it into our private folder.
# (Same launcher as s3qbb/testing/localstack.py.)
launch='import os
import localstack.services.s3.provider as s3
s3.DEFAULT_S3_TMP_DIR = os.environ["S3QBB_LOCALSTACK_S3_DIR"]
from localstack.runtime.main import main
main()'

free_port() {
    "${venv}/bin/python" -c \
        'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_venv
if [ "${venv_only}" = 1 ]; then
    log "${venv} is ready"
    exit 0
fi

# Already running?
if [ -f "${pidfile}" ] && [ -f "${portfile}" ] && is_localstack "$(cat "${pidfile}")"; then
    port="$(cat "${portfile}")"
    if health_ok "${port}"; then
        log "already running (pid $(cat "${pidfile}"))"
        echo "http://127.0.0.1:${port}"
        exit 0
    fi
    die "LocalStack (pid $(cat "${pidfile}")) runs but does not answer on port ${port}: run localstack/stop.sh"
fi
rm -f "${pidfile}" "${portfile}"

attempts=3
[ -n "${want_port}" ] && attempts=1
for attempt in $(seq 1 "${attempts}"); do
    port="${want_port:-$(free_port)}"
    # A private, empty data directory for each start (nothing persists between runs).
    rm -rf "${state}/filesystem" "${state}/tmp"
    mkdir -p "${state}/filesystem" "${state}/tmp/s3-storage"
    started=${SECONDS}
    # From another directory and with -P, so no local `localstack` folder shadows the package;
    # a clean environment, so no AWS_* or LocalStack setting of the caller leaks in; in its own
    # session (setsid, when available) so a Ctrl-C in this terminal does not reach it.
    launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    (
        cd "${state}"
        exec ${launcher[@]+"${launcher[@]}"} env -i \
            PATH="${PATH}" HOME="${venv}/home" LANG=C.UTF-8 TMP="${state}/tmp" \
            GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:${port}" SERVICES=s3 \
            EAGER_SERVICE_LOADING=1 DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
            FILESYSTEM_ROOT="${state}/filesystem" CONFIG_DIR="${state}/filesystem/config" \
            S3QBB_LOCALSTACK_S3_DIR="${state}/tmp/s3-storage" \
            "${venv}/bin/python" -P -c "${launch}"
    ) </dev/null >"${logfile}" 2>&1 &
    pid=$!
    echo "${pid}" >"${pidfile}"
    echo "${port}" >"${portfile}"
    log "started LocalStack (pid ${pid}) on 127.0.0.1:${port}; log ${logfile}"
    while :; do
        if health_ok "${port}"; then
            log "S3 ready after $((SECONDS - started)) s; stop it with localstack/stop.sh"
            echo "http://127.0.0.1:${port}"
            exit 0
        fi
        if ! running "${pid}"; then
            tail -n 20 "${logfile}" >&2
            rm -f "${pidfile}" "${portfile}"
            if [ "${attempt}" -lt "${attempts}" ] && grep -qi 'address already in use' "${logfile}"; then
                log "port ${port} was taken meanwhile: trying another one"
                continue 2
            fi
            die "LocalStack exited while starting (log ${logfile})"
        fi
        if [ $((SECONDS - started)) -ge "${timeout}" ]; then
            tail -n 20 "${logfile}" >&2
            "${here}/stop.sh" >&2 || true
            die "LocalStack S3 was not ready within ${timeout} s (log ${logfile})"
        fi
        sleep 0.2
    done
done
