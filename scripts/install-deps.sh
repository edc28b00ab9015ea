#!/usr/bin/env bash
# Installs the Debian packages farmcast needs to build, run a demo show and run its tests.
# Safe to run again: only missing packages are installed. Works as root or through sudo.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config curl ca-certificates
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # runtime: GStreamer elements (see docs/design.md for which element lives where)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-x gstreamer1.0-alsa glib-networking
  fonts-noto-cjk
  # real servers and checkers the demo and the tests use
  nginx libnginx-mod-rtmp ffmpeg mosquitto mosquitto-clients srt-tools
  stunnel4  # the TLS terminator in front of nginx-rtmp (tests/rtmps.rs)
  iproute2 openssl systemd procps netcat-openbsd
  # the phone page's tests: a real headless browser, and promtool for /metrics
  chromium chromium-driver prometheus
  # packaging checks
  lintian dpkg-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: not root and no sudo; install these by hand: ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # nginx's package starts a system nginx on port 80; the tests run their own, so keep it off.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx mosquitto >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no cargo on PATH; install Rust (rustup.rs or Debian's cargo >= 1.92)" >&2
  exit 1
fi

# The Debian package is built with cargo-deb (tests/package.rs, make deb).
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "install-deps: installing cargo-deb"
  cargo install cargo-deb --locked --quiet
fi
