#!/bin/bash
# Build the InvisPose edge box image: Debian bookworm from Debian's packages (mmdebstrap), the appliance in
# a venv from the wheel built from this checkout, Mosquitto as the box's broker, hardened systemd units.
#
#   image/build.sh --arch amd64|arm64 [--out DIR] [--mirror URL]
#
# Leaves in DIR (default build/image/ARCH): rootfs/ (the root filesystem, what `make test-image` boots),
# wheelhouse/ (every wheel installed) and invispose-VERSION-bookworm-ARCH.tar.gz (the root filesystem as
# one file). Needs root, mmdebstrap, and for arm64 on another machine qemu-user-static with binfmt_misc.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
arch=""
out=""
mirror="http://deb.debian.org/debian"
python=${PYTHON:-$repo/.venv/bin/python}

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64) wheel_arch=x86_64 ;;
  arm64) wheel_arch=aarch64 ;;
  *) echo "build.sh: --arch must be amd64 or arm64" >&2; exit 2 ;;
esac
out=${out:-$repo/build/image/$arch}
[ "$(id -u)" -eq 0 ] || { echo "build.sh: needs root (mmdebstrap --mode=root, chroot)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "build.sh: install mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "build.sh: arm64 on $(dpkg --print-architecture) needs qemu-user-static registered with binfmt_misc" >&2
  echo "          (apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc none /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)" >&2
  exit 1
fi

steps=5
started=$SECONDS
step() { printf '\n\033[1m[%d/%d] %s\033[0m (%ds)\n' "$1" "$steps" "$2" $((SECONDS - started)); }

step 1 "building the appliance's wheel"
version=$("$python" -c 'import appliance; print(appliance.__version__)')
rm -rf "$out/wheelhouse" "$out/pure"
mkdir -p "$out/wheelhouse" "$out/pure"
(cd "$repo" && "$python" -m pip wheel --quiet --no-deps --wheel-dir "$out/wheelhouse" .)
wheel="$out/wheelhouse/invispose-$version-py3-none-any.whl"

step 2 "collecting its dependencies as $wheel_arch wheels for Python 3.11"
# Dependencies published only as source (esptool, ...) are pure Python: build them here once, so that the
# target's binary wheels can be chosen by platform alone.
"$python" -m pip wheel --quiet --wheel-dir "$out/pure" "$wheel" 2>&1 | grep -v "is ignored" || true
find "$out/pure" -name '*.whl' ! -name '*-none-any.whl' -delete
platforms=(--platform "manylinux2014_$wheel_arch")
for glibc in $(seq 17 36); do platforms+=(--platform "manylinux_2_${glibc}_$wheel_arch"); done
"$python" -m pip download --quiet --dest "$out/wheelhouse" --find-links "$out/pure" \
  --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" "$wheel" \
  2>&1 | grep -v "is ignored" || true
rm -rf "$out/pure"
[ "$(find "$out/wheelhouse" -name 'numpy-*.whl' | wc -l)" -eq 1 ] || {
  echo "build.sh: the dependencies could not all be downloaded (see above)" >&2; exit 1; }
echo "$(find "$out/wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$out/wheelhouse" | cut -f1)"

step 3 "writing the box's configuration"
"$here/render-config.sh" "$repo" "$out/appliance.yaml" "$python"

step 4 "installing Debian bookworm ($arch) with mmdebstrap"
packages=$(cat "$here/packages.list" "$here/packages-$arch.list" | sed 's/#.*//' | xargs | tr ' ' ',')
rm -rf "$out/rootfs"
mmdebstrap --mode=root --variant=apt --architectures="$arch" \
  --components="main non-free-firmware" --include="$packages" \
  --customize-hook="'$here/customize.sh' \"\$1\" '$out' '$version'" \
  bookworm "$out/rootfs" "$mirror"

step 5 "packing the root filesystem"
tar --numeric-owner --xattrs -C "$out/rootfs" -czf "$out/invispose-$version-bookworm-$arch.tar.gz" .
echo "done in $((SECONDS - started))s: $out/rootfs and $out/invispose-$version-bookworm-$arch.tar.gz ($(du -sh "$out/invispose-$version-bookworm-$arch.tar.gz" | cut -f1))"
