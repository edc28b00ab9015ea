#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 / Raspberry Pi OS machine:
# installs what it needs, then formatting, lints, unit and integration tests.
# Integration tests start real nginx-rtmp, srt-live-transmit and mosquitto on
# free loopback ports; nothing else on the machine is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export CARGO_TERM_COLOR=never
# 2 cores: the heavy streaming tests serialize themselves; the rest run in parallel.
cargo fmt --all -- --check
# No import cycle between top-level modules (fails on one; under CI also
# when the tool is missing).
bash scripts/module-graph.sh
cargo clippy --all-targets --locked -- -D warnings
# A box keeps its last known good config in /var/lib/farmcast: no test may
# read or write it (each daemon under test has its own state_dir).
state_before=no
[ -e /var/lib/farmcast ] && state_before=yes
cargo test --locked --all-targets -- --test-threads=2
if [ "$state_before" = no ] && [ -e /var/lib/farmcast ]; then
  echo "test.sh: a test wrote the machine's /var/lib/farmcast; give its daemon a state_dir" >&2
  exit 1
fi
