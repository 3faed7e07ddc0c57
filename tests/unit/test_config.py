"""Configuration: the shipped default is valid, and every kind of mistake is reported where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import AtherosTcpSourceConfig, ConfigError, load_config
from appliance.csi.sources.tcp import AtherosTcpSource
from tests.conftest import DEFAULT_CONFIG

MINIMAL = """\
room:
  width_m: 4
  depth_m: 3
  nodes:
    - {id: ap, kind: esp32, role: tx, position: [0.1, 0.1, 1.5]}
    - {id: rx1, kind: esp32, role: rx, position: [3.9, 2.9, 1.5]}
sources:
  - type: simulator
"""


def write(tmp_path: Path, text: str, name: str = "appliance.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(i) for i in caught.value.issues]


def test_shipped_default_is_valid_and_simulated() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.server.port == 8099
    assert [s.type for s in config.sources] == ["simulator"]
    assert len(config.room.to_spec().link_ids) == 6


def test_minimal_file_takes_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.server.host == "0.0.0.0"
    assert config.detector.calibration_s > 0
    assert config.room.to_spec().link_ids == ["ap-rx1"]


def test_transceivers_take_turns_and_link_with_every_other_node(tmp_path: Path) -> None:
    text = MINIMAL.replace("role: tx", "role: txrx").replace("role: rx,", "role: txrx,")
    text = text.replace(
        "    - {id: rx1", "    - {id: rx2, kind: esp32, role: rx, position: [2.0, 2.9, 1.5]}\n    - {id: rx1"
    )
    config = load_config(write(tmp_path, text))
    assert config.room.to_spec().link_ids == ["ap-rx2", "ap-rx1", "rx1-ap", "rx1-rx2"]


def test_a_room_without_a_link_is_refused(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL.replace("role: tx", "role: rx")))
    assert "the room needs a link" in issue


def test_unknown_key_names_file_line_path_and_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "server:\n  port: 8099\n  prot: 80\n")
    [issue] = issues_of(path)
    assert issue.startswith(f"{path}:11: server.prot: unknown key; allowed here: host, port, log_level")


def test_unknown_key_inside_a_list_item(tmp_path: Path) -> None:
    text = MINIMAL.replace("[3.9, 2.9, 1.5]}", "[3.9, 2.9, 1.5], colour: red}")
    [issue] = issues_of(write(tmp_path, text))
    assert ":6: room.nodes[1].colour: unknown key; allowed here: id, kind, role, position" in issue


def test_wrong_choice_lists_what_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "server:\n  log_level: loud\n")
    [issue] = issues_of(path)
    assert f"{path}:10: server.log_level:" in issue
    assert "'debug', 'info', 'warning' or 'error'" in issue


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = MINIMAL.replace("width_m: 4", "width_m: -4") + "server:\n  port: 70000\n"
    issues = issues_of(write(tmp_path, text))
    assert len(issues) == 2
    assert any("room.width_m" in i and ":2:" in i for i in issues)
    assert any("server.port" in i and ":10:" in i for i in issues)


def test_unknown_source_type_lists_known_ones(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL.replace("type: simulator", "type: carrier-pigeon")))
    assert ":8: sources[0].type: unknown or missing type; allowed: 'simulator', 'esp32_serial'" in issue


def test_missing_required_section(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, "sources:\n  - type: simulator\n"))
    assert "room: required key is missing" in issue


def test_node_outside_the_room(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL.replace("[3.9, 2.9, 1.5]", "[9.0, 2.9, 1.5]")))
    assert "room: node 'rx1' at [9.0, 2.9, 1.5] is outside the room" in issue


def test_an_unknown_section_lists_the_sections(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL + "weather:\n  city: Oslo\n"))
    assert "weather: unknown key; allowed here: server, data_dir, room, sources" in issue


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL + "server:\n  port: 1\n  port: 2\n"))
    assert ":11: server.port: this key appears twice" in issue


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    [issue] = issues_of(write(tmp_path, MINIMAL + "server: [unclosed\n"))
    assert ":10: (top level): not valid YAML" in issue


def test_missing_file(tmp_path: Path) -> None:
    [issue] = issues_of(tmp_path / "nope.yaml")
    assert issue.endswith("nope.yaml: (top level): file not found")


def test_environment_substitution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL.replace("width_m: 4", "name: ${ROOM_NAME}\n  width_m: 4") + (
        "server:\n  host: ${BIND_HOST:-127.0.0.1}\n"
    )
    monkeypatch.setenv("ROOM_NAME", "Kitchen")
    monkeypatch.delenv("BIND_HOST", raising=False)
    config = load_config(write(tmp_path, text))
    assert config.room.name == "Kitchen"
    assert config.server.host == "127.0.0.1"
    monkeypatch.delenv("ROOM_NAME")
    [issue] = issues_of(write(tmp_path, text))
    assert ":2: room.name: environment variable ROOM_NAME is not set" in issue


def test_secrets_come_from_secrets_yaml(tmp_path: Path) -> None:
    text = MINIMAL.replace("width_m: 4", "name: !secret room_name\n  width_m: 4")
    [issue] = issues_of(write(tmp_path, text))
    assert "!secret room_name needs" in issue and "secrets.yaml, which does not exist" in issue
    write(tmp_path, "other: x\n", "secrets.yaml")
    [issue] = issues_of(tmp_path / "appliance.yaml")
    assert "secret 'room_name' is not in" in issue and "(it has: other)" in issue
    write(tmp_path, "room_name: Attic\n", "secrets.yaml")
    assert load_config(tmp_path / "appliance.yaml").room.name == "Attic"


def test_overrides_from_the_command_line(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), overrides={"server.port": 9000, "data_dir": "/srv/x"})
    assert config.server.port == 9000
    assert config.data_dir == Path("/srv/x")


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(DEFAULT_CONFIG)]) == 0
    assert "valid (7 nodes, 6 links, sources: simulator)" in capsys.readouterr().out
    bad = write(tmp_path, MINIMAL + "server:\n  prot: 1\n")
    assert main(["check-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:10: server.prot: unknown key" in err
    assert "1 problem(s); nothing would start with this file" in err


HARDWARE_SOURCES = """\
  - type: esp32_serial
    url: /dev/ttyUSB0
    link: ap-rx1
  - type: esp32_udp
    port: 5566
    links: {"3": ap-rx1}
  - type: atheros_tcp
    links: {192.0.2.10: router-1}
    max_connections: 4
  - type: replay
    path: recordings/evening.ipr
    speed: null
"""


def test_every_source_type_validates_and_builds(tmp_path: Path) -> None:
    from appliance.app import build_source

    text = MINIMAL.replace("  - type: simulator\n", HARDWARE_SOURCES)
    (tmp_path / "data" / "recordings").mkdir(parents=True)
    (tmp_path / "data" / "recordings" / "evening.ipr").write_bytes(b"")
    config = load_config(write(tmp_path, text), overrides={"data_dir": str(tmp_path / "data")})
    sources = [build_source(config, s) for s in config.sources]
    assert [s.kind for s in sources] == ["esp32", "esp32", "atheros", "replay"]
    assert isinstance(sources[2], AtherosTcpSource)
    assert sources[2].max_connections == 4


def test_source_options_are_checked_per_type(tmp_path: Path) -> None:
    text = MINIMAL.replace("  - type: simulator\n", "  - type: esp32_udp\n    url: /dev/ttyUSB0\n")
    [issue] = issues_of(write(tmp_path, text))
    assert ":9: sources[0].url: unknown key; allowed here: type, name, host, port, links" in issue


def test_atheros_max_connections_must_be_at_least_one(tmp_path: Path) -> None:
    source = "  - type: atheros_tcp\n    max_connections: 0\n"
    [issue] = issues_of(write(tmp_path, MINIMAL.replace("  - type: simulator\n", source)))
    assert ":9: sources[0].max_connections: Input should be greater than or equal to 1" in issue
    default = load_config(write(tmp_path, MINIMAL.replace("type: simulator", "type: atheros_tcp")))
    assert isinstance(default.sources[0], AtherosTcpSourceConfig)
    assert default.sources[0].max_connections == 16


def test_sources_that_could_not_start_are_refused(tmp_path: Path) -> None:
    twice = "  - {type: esp32_udp, port: 5566}\n  - {type: esp32_udp, name: b, port: 5566}\n"
    [issue] = issues_of(write(tmp_path, MINIMAL.replace("  - type: simulator\n", twice)))
    assert "sources[1] (esp32_udp): udp port 5566 is already used by sources[0] (esp32_udp)" in issue
    text = MINIMAL.replace("  - type: simulator\n", "  - {type: replay, path: nowhere.ipr}\n")
    [issue] = issues_of(write(tmp_path, text))
    assert "sources[0] (replay):" in issue and "nowhere.ipr does not exist" in issue


def test_zone_outside_the_room_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + "zones:\n  - {id: porch, name: Porch, polygon: [[0, 0], [6, 0], [6, 1]]}\n"
    [issue] = issues_of(write(tmp_path, text))
    assert "zones[0] (porch): corner [6.0, 0.0] is outside the room (0..4.0 x 0..3.0 m)" in issue
