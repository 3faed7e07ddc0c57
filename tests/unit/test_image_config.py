"""The edge box's /etc/invispose/appliance.yaml as image/build.sh renders it (image/render-config.sh): the
default configuration with the box's data directory, mDNS on the home network and the box's own broker in
place of the default (off) MQTT section, once. Runs the script as the image build does, without building
an image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliance.config import load_config
from tests.conftest import REPO

SCRIPT = REPO / "image" / "render-config.sh"


def test_the_box_configuration_has_one_mqtt_section_the_boxs_broker_and_mdns_on_every_interface(
    tmp_path: Path,
) -> None:
    rendered = tmp_path / "appliance.yaml"
    run = subprocess.run(
        ["bash", str(SCRIPT), str(REPO), str(rendered), sys.executable],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "MQTT to the box's broker over TLS" in run.stdout
    text = rendered.read_text()
    top_level = [line.split(":")[0] for line in text.splitlines() if line and line[0] not in " #"]
    assert top_level.count("mqtt") == 1, "a second mqtt: key would silently replace the first"
    assert sorted(top_level) == sorted(
        line.split(":")[0]
        for line in (REPO / "config" / "appliance.yaml").read_text().splitlines()
        if line and line[0] not in " #"
    ), "every section of the default configuration is kept"

    # As the box reads it: its secrets file and CA (made at first boot) in place.
    (tmp_path / "secrets.yaml").write_text('mqtt_password: "made-at-first-boot"\n')
    ca = tmp_path / "mqtt-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    rendered.write_text(text.replace("/etc/invispose/mqtt-ca.crt", str(ca)))
    config = load_config(rendered)
    assert config.mqtt.enabled and config.mqtt.host == "localhost"  # image/mqtt.yaml: the box's Mosquitto
    assert config.mqtt.port == 8883 and config.mqtt.tls is not None
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "made-at-first-boot"
    assert config.mdns.interfaces == "all"
    assert str(config.data_dir) == "/var/lib/invispose"
