#!/bin/sh
# Copy the web UI's browser libraries from npm (exact versions and hashes from package-lock.json) into
# appliance/web/vendor/. The copies are committed: installing or running the appliance needs no npm and
# nothing is downloaded at run time. Run after changing package.json (`make vendor-web`).
set -eu
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
npm ci --prefix "$work" --ignore-scripts --no-audit --no-fund --silent
out=appliance/web/vendor/uplot
rm -rf "$out"
mkdir -p "$out"
cp "$work/node_modules/uplot/dist/uPlot.esm.js" "$work/node_modules/uplot/dist/uPlot.min.css" \
   "$work/node_modules/uplot/LICENSE" "$out/"
echo "vendored uplot $(node -p "require('$work/node_modules/uplot/package.json').version") into $out"
