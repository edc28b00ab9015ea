#!/usr/bin/env bash
# `make image`: the farmcast Raspberry Pi image with rpi-image-gen.
#   RPI_IMAGE_GEN=~/rpi-image-gen image-build/build.sh [extra rpi-image-gen args]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rig=${RPI_IMAGE_GEN:-$HOME/rpi-image-gen}
[ -x "$rig/rpi-image-gen" ] || {
  echo "image: rpi-image-gen not found at $rig; clone github.com/raspberrypi/rpi-image-gen and set RPI_IMAGE_GEN" >&2
  exit 1
}
deb=$(ls -t "$here"/../target/debian/farmcast_*_arm64.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || { echo "image: no arm64 .deb; run make deb-arm64 first" >&2; exit 1; }
export IGTOP_FARMCAST="$here"
exec "$rig/rpi-image-gen" build -S "$here/rpi-image-gen" -c farmcast.yaml \
  -- IGconf_farmcast_deb="$(readlink -f "$deb")" "$@"
