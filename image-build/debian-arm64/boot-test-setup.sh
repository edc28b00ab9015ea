#!/bin/sh
# Test-only additions for the qemu boot test (never in a shipped image): a
# config with the test sources and the simulated GPIO, no MQTT, and a unit
# that reports on the serial console whether farmcast reached standby.
set -eu
root="$1"
cat >"$root/etc/farmcast/farmcast.toml" <<'TOML'
device_id = "qemu-boot-test"
[video]
source = "test"
width = 320
height = 240
framerate = 15
encoder = "x264enc"
[audio]
source = "test"
[recording]
enabled = false
[gpio]
backend = "sim"
[mqtt]
enabled = false
TOML
chroot "$root" chown root:farmcast /etc/farmcast/farmcast.toml
chmod 0640 "$root/etc/farmcast/farmcast.toml"
sed -i 's#^LABEL=farmcast-root.*##' "$root/etc/fstab"
echo "LABEL=farmcast-root / ext4 defaults 0 1" >>"$root/etc/fstab"
# Under TCG (no KVM) the first GStreamer registry scan of every installed
# plugin takes minutes; the shipped TimeoutStartSec=90 would kill the daemon
# mid-scan, and the restart would start the scan again. Test image only.
mkdir -p "$root/etc/systemd/system/farmcast.service.d"
cat >"$root/etc/systemd/system/farmcast.service.d/50-boottest.conf" <<'UNIT'
[Service]
TimeoutStartSec=15min
UNIT
cat >"$root/etc/systemd/system/farmcast-boottest.service" <<'UNIT'
[Unit]
Description=farmcast boot test: report standby on the console, then power off
After=farmcast.service
[Service]
Type=oneshot
# The kernel console is the serial port (console=ttyAMA0): the report lands
# in the serial log that boot-test.sh reads, and in the journal.
StandardOutput=journal+console
TimeoutStartSec=20min
# Type=notify: "active" only after READY=1, which the daemon sends in standby.
ExecStart=/bin/sh -c 'for i in $(seq 1 900); do s=$(systemctl is-active farmcast); [ "$s" = active ] && break; sleep 1; done; echo "FARMCAST-BOOTTEST state=$s status=$(systemctl show -P StatusText farmcast) uptime=$(cut -d" " -f1 /proc/uptime)"; journalctl -u farmcast -b --no-pager | tail -n 20'
ExecStartPost=/bin/systemctl poweroff
[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable farmcast-boottest.service
