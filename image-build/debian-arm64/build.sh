#!/usr/bin/env bash
# Plain Debian 12 arm64 farmcast image from Debian's archive, with mmdebstrap
# (no Raspberry Pi firmware: for qemu-system-aarch64 `virt` and generic arm64
# boards). Needs root, mmdebstrap, arch-test, qemu-user-static + binfmt-support,
# e2fsprogs; about 26 min on 2 cores (docs/appliance.md has the figures).
#   image-build/debian-arm64/build.sh FARMCAST_DEB OUT_DIR
# Writes OUT_DIR/rootfs.ext4, OUT_DIR/vmlinuz, OUT_DIR/initrd.img.
set -euo pipefail
deb=$(readlink -f "${1:?arm64 farmcast .deb}")
out=$(readlink -m "${2:?output folder}")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
rm -rf "$out/root"

# The arm64 maintainer scripts run under qemu-user through binfmt_misc. In a
# container binfmt_misc is often not mounted, and binfmt-support does not
# register the handler until it is.
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64
fi

# --variant=important: Debian's base system with systemd, ssh added; the
# package's Depends bring GStreamer. The customize hook is the one the Pi
# image uses too.
mmdebstrap --architectures=arm64 --variant=important \
  --include=linux-image-arm64,openssh-server,systemd-sysv,e2fsprogs \
  --customize-hook="FARMCAST_DEB='$deb' BOOT_MOUNT=/boot/firmware '$here/../customize.sh' \"\$1\"" \
  --customize-hook="'$here/boot-test-setup.sh' \"\$1\"" \
  --customize-hook="cp \"\$1\"/boot/vmlinuz-* '$out/vmlinuz'; cp \"\$1\"/boot/initrd.img-* '$out/initrd.img'" \
  bookworm "$out/root"

truncate -s 3G "$out/rootfs.ext4"
mkfs.ext4 -q -F -L farmcast-root -d "$out/root" "$out/rootfs.ext4"
rm -rf "$out/root"
echo "debian-arm64: $out/rootfs.ext4" >&2
