#!/usr/bin/env bash
# Builds the farmcast Debian package for this machine (`make deb`):
#   scripts/build-deb.sh                # release build + target/debian/farmcast_*.deb
#   scripts/build-deb.sh --lintian      # ... and run lintian on it
# For the boards (arm64) use scripts/cross-arm64.sh --deb (`make deb-arm64`).
# Installs cargo-deb from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "build-deb: installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked
fi
out=$(cargo deb --locked 2>&1 | tee /dev/stderr | grep -E '\.deb$' | tail -n1)
echo "build-deb: $out" >&2
if [ "${1:-}" = "--lintian" ]; then
  command -v lintian >/dev/null || { echo "build-deb: apt-get install lintian" >&2; exit 1; }
  # Overrides with their reasons: packaging/lintian/farmcast.
  lintian --info --display-info "$out"
fi
