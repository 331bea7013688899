#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo fuzz, libFuzzer, AddressSanitizer) for a bounded
# time and prints, per target, the executions run and the crashes found.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Installs cargo-fuzz from crates.io if it is missing. libFuzzer needs unstable compiler
# flags: the script uses the default (stable) toolchain with RUSTC_BOOTSTRAP=1, or
# `cargo +$FUZZ_TOOLCHAIN` when FUZZ_TOOLCHAIN is set (e.g. FUZZ_TOOLCHAIN=nightly).
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and from what earlier
# runs found (fuzz/corpus/TARGET, not committed); a crash is written to
# fuzz/artifacts/TARGET and the script exits 1. Logs: $FUZZ_LOGS (default
# /tmp/ipcx-fuzz-logs).
set -euo pipefail

secs=${1:-60}
shift || true
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
    ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
logs=${FUZZ_LOGS:-/tmp/ipcx-fuzz-logs}
mkdir -p "$logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi
echo "== $("${fuzz[@]}" --version), $(rustc ${FUZZ_TOOLCHAIN:++$FUZZ_TOOLCHAIN} --version)"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi
echo "== building ${#targets[@]} targets (release, debug assertions, AddressSanitizer)"
"${fuzz[@]}" build

failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    log="$logs/$t.log"
    echo "== $t: ${secs}s"
    status=0
    "${fuzz[@]}" run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # A crash ends the run before the final stats: take the last progress line.
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    crashes=$(($(find "artifacts/$t" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # it failed without writing an artifact: count it, and show the log
    fi
    if [ "$crashes" -ne 0 ]; then
        failed=1
        echo "-- $t FAILED (exit $status); the end of $log:"
        tail -40 "$log"
    fi
    summary+=("$(printf '%-18s %8s %12s %10s %8s' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$crashes")")
done

echo
printf '%-18s %8s %12s %10s %8s\n' target seconds executions exec/s crashes
printf '%s\n' "${summary[@]}"
exit $failed
