#!/usr/bin/env bash
# Cross-builds farmcast for 64-bit Raspberry Pi OS / Debian arm64 on an x86_64
# Debian 12 machine, then checks the binary under qemu-aarch64:
#   scripts/cross-arm64.sh            # release binary + checks
#   scripts/cross-arm64.sh --deb      # ... and the arm64 .deb (cargo deb)
#   PROFILE=dev scripts/cross-arm64.sh   # quicker debug build, for trying it
#   PROFILE=dev scripts/cross-arm64.sh --deb   # ... packaged (boot tests)
#
# The arm64 GStreamer development files come from Debian's arm64 archive
# through multiarch (`dpkg --add-architecture arm64`), but are unpacked into a
# sysroot under target/ instead of being installed: on bookworm,
# libgstreamer-plugins-base1.0-dev is not co-installable across
# architectures, and installing the :arm64 one would remove the host's and
# break the native build. pkg-config is pointed at the sysroot.
# Needs root (or sudo) only for the apt steps.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
PROFILE=${PROFILE:-release}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-target}
SYSROOT=${SYSROOT:-$TARGET_DIR/sysroot-arm64}
MAKE_DEB=0
[ "${1:-}" = "--deb" ] && MAKE_DEB=1

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
say() { echo "cross-arm64: $*" >&2; }

# 1. Rust's target and the cross toolchain.
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "adding Rust target $TARGET"
  rustup target add "$TARGET"
fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || command -v qemu-aarch64 >/dev/null || need+=(qemu-user-static)
command -v pkg-config >/dev/null || need+=(pkg-config)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  say "enabling the arm64 architecture (multiarch)"
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# 2. The arm64 sysroot: the -dev packages the gstreamer-rs crates link
#    against and everything they depend on, unpacked (not installed).
DEV_PKGS=(libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64)
if [ ! -f "$SYSROOT/.complete" ]; then
  say "building the arm64 sysroot in $SYSROOT"
  debs="$SYSROOT.debs"
  rm -rf "$debs" "$SYSROOT"
  mkdir -p "$debs" "$SYSROOT"
  # Every package in the dependency closure: apt-cache names the arm64 ones
  # `name:arm64` and arch:all ones plainly. Virtual packages (<...>) and
  # the basic tools no sysroot needs are skipped.
  # The C library comes from the cross toolchain (libc6-dev-arm64-cross, same
  # glibc version): the sysroot's libc.so linker script names absolute paths
  # that only resolve with --sysroot, which would change RUSTFLAGS.
  TOOLCHAIN_OWN='^(libc6|libc6-dev|libgcc-s1|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev)(:arm64)?$'
  mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests \
      --no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
      "${DEV_PKGS[@]}" | grep -v '^ ' | grep -v '^<' | sort -u |
      grep -vE '^(debconf|dpkg|perl-base|install-info|base-files|sensible-utils|libc-bin|tar|coreutils|dpkg-dev|perl|python3.*)(:arm64)?$' |
      grep -vE "$TOOLCHAIN_OWN")
  (cd "$debs" && apt-get download "${pkgs[@]}" >/dev/null)
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
  # Absolute symlinks inside the sysroot (libfoo.so -> /lib/...) must point
  # into it, or the linker picks the host's x86_64 libraries.
  find "$SYSROOT" -type l -lname '/*' | while read -r l; do
    ln -sfn "$SYSROOT$(readlink "$l")" "$l"
  done
  touch "$SYSROOT/.complete"
fi
SYSROOT=$(cd "$SYSROOT" && pwd)

# 3. Cargo and pkg-config for the target.
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
export PKG_CONFIG_LIBDIR="$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig"
export PKG_CONFIG_PATH=""
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# The linker must find the NEEDED libraries of libgstreamer & co. (glib,
# libunwind, liborc, ...) in the sysroot, not on the host.
LIBS="$SYSROOT/usr/lib/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$LIBS -C link-arg=-Wl,-rpath-link,$SYSROOT/lib/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"

say "cargo build --profile $PROFILE --target $TARGET"
cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin farmcast
dir=$PROFILE
[ "$PROFILE" = dev ] && dir=debug
BIN="$TARGET_DIR/$TARGET/$dir/farmcast"
file "$BIN" 2>/dev/null || true

# 4. Does it run? qemu-user with the sysroot as its library root.
QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64)
# The sysroot has no libc's loader unless libc6:arm64 is in it; the cross
# toolchain's is always there.
LROOT="$SYSROOT"
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || LROOT=/usr/aarch64-linux-gnu
say "checking the arm64 binary under $(basename "$QEMU")"
export GST_PLUGIN_SYSTEM_PATH_1_0="$SYSROOT/usr/lib/aarch64-linux-gnu/gstreamer-1.0"
export GST_REGISTRY_1_0="$TARGET_DIR/$TARGET/gst-registry.bin"
# The loader comes from the toolchain's root; GStreamer & co. from the sysroot.
run_arm64() {
  "$QEMU" -L "$LROOT" \
    -E "LD_LIBRARY_PATH=$SYSROOT/usr/lib/aarch64-linux-gnu:$SYSROOT/lib/aarch64-linux-gnu" \
    "$BIN" "$@"
}
run_arm64 --version
run_arm64 check-config configs/demo.toml
say "ok: $BIN runs under qemu-aarch64"

if [ "$MAKE_DEB" = 1 ]; then
  command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
  # cargo-deb takes `<target dir>/$TARGET/release/farmcast` and refuses the
  # dev profile, so the binary (either profile) is staged, stripped with the
  # cross binutils (the host's strip cannot read arm64), under a throwaway
  # target dir; --no-build --no-strip then package it as is. $auto
  # (dpkg-shlibdeps) finds nothing for a cross binary whose libraries are
  # only in the sysroot; the listed plugin packages pull libgstreamer in.
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/$TARGET/release"
  aarch64-linux-gnu-strip -o "$stage/$TARGET/release/farmcast" "$BIN"
  mkdir -p "$TARGET_DIR/debian"
  CARGO_TARGET_DIR="$stage" cargo deb --no-build --target "$TARGET" --no-strip \
    -o "$TARGET_DIR/debian/"
  [ "$PROFILE" = release ] || say "note: the .deb holds the $PROFILE build (unoptimised)"
fi
