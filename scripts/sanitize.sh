#!/usr/bin/env bash
# Runs the ring, shared-memory and decoder code under the checkers the toolchain allows,
# each step bounded in time, and says what ran and what it found.
#
#   scripts/sanitize.sh [asan] [miri]          (default: both)
#
# asan  AddressSanitizer (with LeakSanitizer) on the stable toolchain, through
#       RUSTC_BOOTSTRAP=1 (or `+$SANITIZE_TOOLCHAIN`): the integration tests of the ring
#       (real memfd and POSIX rings, killed peers), of shared memory (POSIX, memfd,
#       System V, file mappings, the Region type), of the frame decoder, of Unix sockets
#       and descriptor passing, and the library's unit tests. Built in
#       $CARGO_TARGET_DIR/asan (default target/asan), apart from the normal build.
# miri  miri on nightly (`rustup component add miri rust-src --toolchain nightly` if it is
#       missing; skipped, and said so, when there is no nightly): tests/ring_miri.rs, the
#       ring's protocol between two threads over heap memory with plain payload copies,
#       under miri's data-race detector, and the pure-memory unit tests (frame decoder,
#       mailbox wire header, address grammar). miri cannot map shared memory or make the
#       futex, socket and lock calls the rest of the code makes.
#
# Exits 1 if any step that ran found a problem.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan miri)
limit=${SANITIZE_TIMEOUT:-1800}
target_dir=${CARGO_TARGET_DIR:-$root/target}
host=$(rustc -vV | sed -n 's/^host: //p')
failed=0
report=()

run_step() { # NAME COMMAND...
    local name=$1 log=/tmp/ipcx-sanitize-$1.log status
    shift
    echo "== $name: $*"
    timeout "$limit" "$@" >"$log" 2>&1
    status=$?
    local passed
    passed=$(grep -h '^test result:' "$log" | awk '{p += $4; f += $6} END {printf "%d passed, %d failed", p, f}')
    if [ $status -eq 0 ]; then
        report+=("$name: ok ($passed)")
    else
        failed=1
        [ $status -eq 124 ] && passed="timed out after ${limit}s; $passed"
        report+=("$name: FAILED, exit $status ($passed); log $log")
        grep -E -A15 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|Undefined Behavior|panicked|^error' "$log" | head -60
    fi
}

for step in "${steps[@]}"; do
    case $step in
    asan)
        tc=()
        [ -n "${SANITIZE_TOOLCHAIN:-}" ] && tc=("+$SANITIZE_TOOLCHAIN")
        # shellcheck disable=SC2054
        run_step asan env RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" \
            ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" CARGO_TARGET_DIR="$target_dir/asan" \
            cargo "${tc[@]}" test -p ipcx --target "$host" \
            --lib --test ring --test ring_miri --test shm --test frame --test unix
        ;;
    miri)
        if ! rustup run nightly rustc --version >/dev/null 2>&1; then
            report+=("miri: SKIPPED (no nightly toolchain)")
            continue
        fi
        if ! cargo +nightly miri --version >/dev/null 2>&1; then
            echo "== installing miri and rust-src for nightly"
            if ! rustup component add miri rust-src --toolchain nightly; then
                report+=("miri: SKIPPED (the miri component could not be installed)")
                continue
            fi
        fi
        # Weak-memory emulation is off: with it, this miri (2026-05 nightly) crashes
        # (an internal error in weak_memory.rs) on atomic words that are also copied
        # byte-wise, as the ring's payload is. The data-race detector stays on.
        run_step miri-ring env MIRIFLAGS="-Zmiri-disable-weak-memory-emulation" \
            cargo +nightly miri test -p ipcx --test ring_miri
        # Isolation off: proptest looks up the working directory for its failure files.
        run_step miri-unit env PROPTEST_CASES=4 MIRIFLAGS="-Zmiri-disable-isolation" \
            cargo +nightly miri test -p ipcx --lib -- channel::frame mailbox::wire addr::
        ;;
    *)
        echo "unknown step $step (asan, miri)" >&2
        exit 2
        ;;
    esac
done

echo
printf '%s\n' "${report[@]}"
exit $failed
