#!/bin/sh
# The ring channel beside iceoryx2 and ipc-channel: `ipcx bench`'s 64-byte round-trip
# ping-pong through all three, between two processes pinned to two CPUs, with the
# cache-line and futex floors measured in the same run (benches/peers/README.md).
#
#   scripts/peers.sh                  # 1 s per test, the table
#   scripts/peers.sh --json           # the same as JSON
#   scripts/peers.sh --duration 3 --only ring-busy,iceoryx2-busy
#
# benches/peers is a workspace of its own: the repository's default build never
# compiles iceoryx2. Its first build takes a few minutes.
set -eu
cd "$(dirname "$0")/.."
exec cargo run --release --quiet --manifest-path benches/peers/Cargo.toml -- "$@"
