#!/usr/bin/env bash
# Fuzzes with cargo-fuzz / libFuzzer for SECONDS seconds (default 60) one of the targets in
# fuzz/fuzz_targets/ (TARGET):
#   header_parsers   the header parsers and pure policy functions (the default);
#   entry_decode     stored entries decoded from arbitrary bytes, as a disk or Redis store
#                    hands them back (store::codec).
#   layer_exchanges  a CacheLayer driven by sequences of requests and origin responses
#                    (methods, targets, fields, statuses, bodies): no panic, every answer
#                    marked, and no hit serves a body the origin did not send, storably, for
#                    its key.
#
#   scripts/fuzz.sh            # 60 seconds
#   scripts/fuzz.sh 600        # 10 minutes
#   TARGET=entry_decode scripts/fuzz.sh 30 -jobs=2   # extra arguments go to libFuzzer
#
# cargo-fuzz needs nightly-only `-Z` flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them. The corpus is kept in fuzz/corpus/, crashes land in fuzz/artifacts/ (both ignored by
# git); reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run header_parsers fuzz/artifacts/header_parsers/crash-...
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
shift || true
target=${TARGET:-header_parsers}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
dict=()
[ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
# Seed inputs, where a target has some (fuzz/seeds/TARGET/), join the corpus at the start.
corpus=("$PWD/fuzz/corpus/$target")
[ -d "fuzz/seeds/$target" ] && corpus+=("$PWD/fuzz/seeds/$target")
mkdir -p "${corpus[0]}"
exec cargo fuzz run "$target" "${corpus[@]}" -- -max_total_time="$seconds" "${dict[@]}" "$@"
