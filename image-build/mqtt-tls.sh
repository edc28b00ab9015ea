#!/bin/sh
# Turns the packaged config's [mqtt] table (a cleartext broker on localhost)
# into the image's default: TLS with the provisioned CA and the box's own
# login. Fails the image build when the packaged line is not where it was,
# rather than ship a box that talks in cleartext.
# Usage: mqtt-tls.sh /path/to/etc/farmcast/farmcast.toml
set -eu
conf="$1"
plain='^url = "mqtt://127.0.0.1:1883"$'
if ! grep -q "$plain" "$conf"; then
  echo "mqtt-tls.sh: no [mqtt] url = \"mqtt://127.0.0.1:1883\" in $conf; update image-build/mqtt-tls.sh" >&2
  exit 1
fi
sed -i "s#$plain#url = \"mqtts://mqtt.farm.example:8883\"\\
ca_file = \"/etc/farmcast/keys/mqtt-ca.pem\"\\
password_file = \"/etc/farmcast/keys/mqtt-password\"#" "$conf"
