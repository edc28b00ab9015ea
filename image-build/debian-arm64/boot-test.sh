#!/usr/bin/env bash
# Boots the plain Debian arm64 image in qemu-system-aarch64 (TCG: about 1
# minute on 2 cores; building the image takes about 26) and passes when
# farmcast reached standby with the test sources. Not in CI (too slow); run by hand:
#   PROFILE=dev scripts/cross-arm64.sh --deb    # or make deb-arm64
#   sudo image-build/debian-arm64/build.sh target/debian/farmcast_*_arm64.deb /tmp/fc-img
#   image-build/debian-arm64/boot-test.sh /tmp/fc-img
set -euo pipefail
img=${1:?folder written by build.sh}
log="$img/serial.log"
command -v qemu-system-aarch64 >/dev/null || { echo "apt-get install qemu-system-arm" >&2; exit 1; }
# restrict=on: user-mode networking with no route out of the guest and no
# host port forwarded (everything is installed at build time). romfile=: the
# NIC's option ROM is only for firmware boot (ipxe-qemu), not -kernel.
start=$(date +%s)
timeout 1200 qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 2048 -nographic \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
  -append "root=LABEL=farmcast-root rw console=ttyAMA0 systemd.unit=multi-user.target" \
  -drive "if=virtio,format=raw,file=$img/rootfs.ext4" \
  -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0,romfile= \
  -no-reboot </dev/null >"$log" 2>&1 || true
took=$(($(date +%s) - start))
if grep -aq "FARMCAST-BOOTTEST state=active status=standby" "$log"; then
  echo "boot-test: farmcast reached standby ($(grep -a -o 'FARMCAST-BOOTTEST.*' "$log" | head -n1); qemu ran ${took}s)"
  exit 0
fi
echo "boot-test: farmcast did not reach standby; see $log" >&2
grep -a "FARMCAST-BOOTTEST" -A20 "$log" >&2 || tail -n 40 "$log" >&2
exit 1
