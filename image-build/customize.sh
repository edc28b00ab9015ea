#!/bin/sh
# Shared by both recipes (rpi-image-gen layer, Debian mmdebstrap): runs on the
# build host with the image root as $1 (mmdebstrap customize hook). Installs
# the farmcast package from $FARMCAST_DEB, the overlay files, the recordings
# mount, and tightens the boot partition's mount.
set -eu
root="$1"
here=$(dirname "$0")
: "${FARMCAST_DEB:?set FARMCAST_DEB to the arm64 .deb (make deb-arm64)}"
: "${BOOT_MOUNT:=/boot/firmware}"

cp "$FARMCAST_DEB" "$root/tmp/farmcast.deb"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/farmcast.deb
rm -f "$root/tmp/farmcast.deb"
# mDNS: the phone finds the page at http://farmcast.local/ (docs/web.md).
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends avahi-daemon
cp -r "$here/overlay/." "$root/"

# TLS and a login by default (docs/security.md): the technicians' broker is
# reached over mqtts:// with the CA and the box's own password, both
# delivered by first-boot provisioning into /etc/farmcast/keys/. The broker
# name is a placeholder the provisioned farmcast.toml replaces.
conf="$root/etc/farmcast/farmcast.toml"
"$here/mqtt-tls.sh" "$conf"

# The package enables both units; make sure (a preset could have undone it).
chroot "$root" systemctl enable farmcast.service farmcast-provision.service avahi-daemon.service

# Recordings on their own partition (label FARMCAST-REC, made by the image
# layout) so a full disk of video never fills the root file system. nofail:
# without the partition the box still boots, and the daemon's disk budget
# (recording.max_gb, min_free_mb) still bounds what it writes to the root.
mkdir -p "$root/var/lib/farmcast/recordings"
grep -q FARMCAST-REC "$root/etc/fstab" 2>/dev/null ||
  echo "LABEL=FARMCAST-REC /var/lib/farmcast/recordings ext4 defaults,noatime,nosuid,nodev,noexec,nofail,x-systemd.device-timeout=10s 0 2" >>"$root/etc/fstab"

# FAT has no owners: without these masks every user on the box can read a
# provisioning file (stream keys) in the moments before it is wiped.
if grep -qE "[[:space:]]$BOOT_MOUNT[[:space:]]+vfat" "$root/etc/fstab" 2>/dev/null; then
  sed -i -E "s#([[:space:]]$BOOT_MOUNT[[:space:]]+vfat[[:space:]]+)([^[:space:]]+)#\1\2,fmask=0077,dmask=0077#" "$root/etc/fstab"
fi
