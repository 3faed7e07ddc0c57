"""The ``mqtt:`` section: refused mistakes name the key, and the device id stays the same across starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config
from appliance.integrations.mqtt import MqttSettings, resolve_device_id
from appliance.integrations.mqtt.settings import DEVICE_ID_FILE, saved_device_id
from tests.conftest import DEFAULT_CONFIG


def mistakes(**mqtt: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(DEFAULT_CONFIG, overrides={"mqtt": {"enabled": True, "host": "broker.lan", **mqtt}})
    return [str(issue) for issue in caught.value.issues]


def test_the_shipped_file_has_mqtt_off_and_documents_every_key() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.mqtt.enabled is False
    text = DEFAULT_CONFIG.read_text()
    for key in MqttSettings.model_fields:
        assert f"\n  {key}:" in text, key


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        ({"tls": {"cert": str(DEFAULT_CONFIG)}}, "tls: give both cert and key, or neither"),
        ({"tls": {"ca": "/nonexistent/ca.pem"}}, "mqtt.tls.ca"),
        ({"device_id": "my box"}, "mqtt.device_id"),
        ({"topic_prefix": "home/+/x"}, "mqtt.topic_prefix"),
        ({"topic_prefix": "/leading"}, "mqtt.topic_prefix"),
        ({"port": 0}, "mqtt.port"),
        ({"reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect_min_s must not exceed reconnect_max_s"),
        ({"colour": "blue"}, "mqtt.colour: unknown key"),
    ],
)
def test_mistakes_are_refused_with_the_key_at_fault(mqtt: dict[str, object], expected: str) -> None:
    assert any(expected in issue for issue in mistakes(**mqtt)), mistakes(**mqtt)


def test_the_port_follows_tls_unless_given() -> None:
    assert MqttSettings().broker_port == 1883
    assert MqttSettings(tls={}).broker_port == 8883  # type: ignore[arg-type]
    assert MqttSettings(tls={}, port=8884).broker_port == 8884  # type: ignore[arg-type]


def test_the_password_never_shows_in_the_settings() -> None:
    settings = MqttSettings(password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()


def test_a_device_id_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = MqttSettings()
    assert saved_device_id(settings, tmp_path) is None
    made = resolve_device_id(settings, tmp_path / "data")
    assert made.startswith("invispose_") and len(made) == len("invispose_") + 8
    assert resolve_device_id(settings, tmp_path / "data") == made
    assert (tmp_path / "data" / DEVICE_ID_FILE).read_text() == made + "\n"
    assert resolve_device_id(MqttSettings(device_id="kitchen_box"), tmp_path / "data") == "kitchen_box"


def test_a_damaged_device_id_file_is_a_clear_error_not_a_new_device(tmp_path: Path) -> None:
    (tmp_path / DEVICE_ID_FILE).write_text("not an id!\n")
    with pytest.raises(ValueError, match=f"{DEVICE_ID_FILE} holds 'not an id!'.*delete it"):
        resolve_device_id(MqttSettings(), tmp_path)
