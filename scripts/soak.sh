#!/bin/sh
# Soak ipcx beside stress-ng's IPC stressors, and print both reports.
#
#   scripts/soak.sh [DURATION]        (default 60s; e.g. 10s, 5m)
#
# Runs `ipcx bench --soak DURATION` (every ipcx mechanism at once, several producer
# processes each, every message checked) while stress-ng loads the same kernel IPC paths
# for the same DURATION. Exits with ipcx's status: 0 when no message was lost, torn,
# duplicated or reordered, 1 otherwise; 2 when stress-ng cannot be had.
#
# stress-ng comes from Debian's packages: when it is missing the script runs
# `apt-get install stress-ng`, which needs root. That is the only step that does:
# as a normal user, the script uses sudo for it if sudo is there, or says what to run.
# IPCX=/path/to/ipcx uses that binary; otherwise the script builds a release one with
# cargo (CARGO_TARGET_DIR is honoured).
set -eu

DURATION=${1:-60s}
here=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v stress-ng >/dev/null 2>&1; then
    echo "soak.sh: stress-ng is missing; installing it from Debian's packages (needs root)" >&2
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "soak.sh: run as root: apt-get update && apt-get install stress-ng" >&2
        exit 2
    fi
    $as_root apt-get install -y --no-install-recommends stress-ng ||
        { $as_root apt-get update && $as_root apt-get install -y --no-install-recommends stress-ng; } ||
        { echo "soak.sh: could not install stress-ng" >&2; exit 2; }
fi

if [ -z "${IPCX:-}" ]; then
    (cd "$here" && cargo build --release --quiet -p ipcx-cli)
    IPCX="${CARGO_TARGET_DIR:-$here/target}/release/ipcx"
fi

# Newer stress-ng has an `ipc` class; older ones (Debian 12 ships 0.15) spread the IPC
# stressors over other classes, so name them: the list of reliability.md's external
# checks, plus socketpair, UDP and futex.
if stress-ng --class 'ipc?' >/dev/null 2>&1; then
    set -- --class ipc --all 1
else
    set --
    for s in pipe fifo mq msg sem sem-sysv shm shm-sysv sock sockfd sockpair eventfd sigfd udp futex; do
        set -- "$@" "--$s" 1
    done
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/ipcx-soak-sh.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM

echo "== stress-ng $(stress-ng --version | awk '{print $3}') $* --timeout $DURATION --metrics-brief"
stress-ng "$@" --timeout "$DURATION" --metrics-brief >"$out/stress-ng.log" 2>&1 &
stress_pid=$!

echo "== $IPCX bench --soak $DURATION (beside stress-ng)"
status=0
"$IPCX" bench --soak "$DURATION" || status=$?

stress_status=0
wait "$stress_pid" || stress_status=$?
echo
echo "== stress-ng (exit status $stress_status)"
cat "$out/stress-ng.log"
echo
if [ "$status" -eq 0 ]; then
    echo "soak.sh: ipcx: no message lost, torn, duplicated or reordered"
else
    echo "soak.sh: ipcx bench --soak FAILED (exit status $status)"
fi
exit "$status"
