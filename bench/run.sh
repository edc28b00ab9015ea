#!/usr/bin/env bash
# farmcast vs gst-launch-1.0 vs ffmpeg on the same clip and encoder settings;
# writes BENCHMARKS.md. Options (or env): --runs N (BENCH_RUNS, default 3),
# --seconds S (BENCH_SECONDS, 20), --presses P (BENCH_PRESSES, 5),
# --farmcast PATH (FARMCAST, default target/release/farmcast),
# --peers farmcast,gst-launch-1.0,ffmpeg. See bench/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
