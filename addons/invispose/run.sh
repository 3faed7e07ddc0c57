#!/bin/sh
# The add-on's start script, its container's entry (config.yaml: init: false), so the appliance gets the
# Supervisor's SIGTERM itself and stops in order. appliance.yaml lives in the add-on's config folder
# (/config; /addon_configs/<slug>/ from the Samba or File editor add-ons), where the user edits it.
set -eu
if [ ! -f /config/appliance.yaml ]; then
  cp /opt/invispose/appliance.yaml /config/appliance.yaml
  echo "InvisPose: wrote /config/appliance.yaml, a simulated room; edit it to describe your room and nodes"
fi
exec /opt/invispose/bin/invispose addon --config /config/appliance.yaml
