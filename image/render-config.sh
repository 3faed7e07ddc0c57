#!/bin/bash
# The box's /etc/invispose/appliance.yaml: the project's default configuration (the simulated demo room,
# labelled simulated everywhere, until the user configures nodes) with the box's data directory, mDNS on
# every interface (the default file keeps it on loopback for development machines: a box must be found on
# the home network) and, when the appliance being installed has an mqtt: section, the box's own broker in
# place of the default (off) one.
#
#   image/render-config.sh REPO OUTPUT PYTHON
set -euo pipefail
repo=$1 output=$2 python=$3
here=$(cd "$(dirname "$0")" && pwd)
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT

# A top-level section runs from the comment lines above its key to the next section; mqtt's is left out.
awk '
  /^#/ { pending = pending $0 "\n"; next }
  /^[^ ]/ { section = $0; sub(/:.*/, "", section); if (section != "mqtt") printf "%s", pending; pending = "" }
  section == "mqtt" { next }
  /^data_dir:/ { print "data_dir: /var/lib/invispose   # on its own path: updates never touch it"; next }
  section == "mdns" && /^  interfaces:/ { print "  interfaces: all        # found on the home network"; skip = 1; next }
  skip && /^ +#/ { next }
  { skip = 0; printf "%s", pending; pending = ""; print }
  END { printf "%s", pending }
' "$repo/config/appliance.yaml" > "$output"
cat "$output" "$here/mqtt.yaml" > "$check/appliance.yaml"
printf 'mqtt_password: "checked-at-build-time"\n' > "$check/secrets.yaml"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check \
  -keyout "$check/ca.key" -out "$check/ca.crt" 2>/dev/null
sed -i "s|/etc/invispose/mqtt-ca.crt|$check/ca.crt|" "$check/appliance.yaml"
if "$python" -m appliance check-config "$check/appliance.yaml" --data-dir "$check/data" >/dev/null 2>"$check/err"; then
  cat "$here/mqtt.yaml" >> "$output"
  echo "configuration: the demo room, data in /var/lib/invispose, MQTT to the box's broker over TLS"
elif grep -q "^.*: mqtt: unknown key" "$check/err"; then
  echo "WARNING: this version of the appliance has no mqtt: section; the box's broker runs, but the" >&2
  echo "         appliance does not publish to it until a version with MQTT is installed" >&2
else
  cat "$check/err" >&2
  exit 1
fi
