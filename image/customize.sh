#!/bin/bash
# mmdebstrap's customize hook: puts the appliance and the box's settings into the fresh root filesystem.
#
#   image/customize.sh ROOT BUILD_DIR VERSION
set -euo pipefail
root=$1 build=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)
release=/opt/invispose/releases/$version
# A clean environment: nothing of the build machine (its pip settings, its locale) leaks into the image.
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

echo "customize: the box's files, user and services"
cp -a "$here/rootfs/." "$root/"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tinvispose\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
in_root useradd --system --user-group --home-dir /var/lib/invispose --no-create-home \
  --shell /usr/sbin/nologin --comment "InvisPose appliance" invispose
gid=$(in_root getent group invispose | cut -d: -f3)
install -o root -g "$gid" -m 0640 "$build/appliance.yaml" "$root/etc/invispose/appliance.yaml"
chown root:root "$root/etc/invispose" && chmod 0755 "$root/etc/invispose"

echo "customize: the appliance $version in its venv ($release)"
mkdir -p "$root/opt/invispose/wheelhouse"
cp "$build"/wheelhouse/*.whl "$root/opt/invispose/wheelhouse/"
in_root python3 -m venv "$release"
in_root "$release/bin/pip" install --quiet --no-cache-dir --no-index \
  --find-links /opt/invispose/wheelhouse "invispose==$version"
ln -sfn "releases/$version" "$root/opt/invispose/current"
# The configuration was checked by render-config.sh; here, that the installed command is the one built.
installed=$(in_root /opt/invispose/current/bin/invispose --version)
[ "$installed" = "invispose $version" ] || { echo "customize: installed '$installed', not $version" >&2; exit 1; }

echo "customize: enabling the services"
in_root systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  invispose-firstboot.service invispose.service mosquitto.service
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
