#!/usr/bin/env bash
# Re-records every committed trace: builds the scenario programs in release mode and runs each
# one with this directory as its output directory. Run from anywhere:
#
#     traces/record-all.sh
#
# Scenarios are the binaries in traces/src/bin/; each writes traces/<scenario>.trace (or
# traces/<scenario>/*.trace for a multi-process scenario).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."
cargo build --release -p hindsight-scenarios --bins
# A scenario that panics (panic_holding_async_lock) must not spend its poll printing a backtrace.
export RUST_BACKTRACE=0
for source in "$here"/src/bin/*.rs; do
    scenario="$(basename "$source" .rs)"
    echo "recording $scenario"
    "target/release/$scenario" "$here"
done
