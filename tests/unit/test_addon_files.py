"""The Home Assistant add-on repository (addons/): its files, checked against the add-on linter's JSON schema
(../shared/ref, from frenck/action-addon-linter) and, independently written here, the linter's extra rules;
the version and the options against what the appliance reads."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

import appliance
from appliance.addon import AddonOptions
from tests.conftest import REPO

ADDONS = REPO / "addons"
ADDON = ADDONS / "invispose"
LINTER_SCHEMA = REPO.parent / "shared" / "ref" / "addon-config.schema.json"
# What the issue lists, and nothing the current Supervisor no longer reads (build.yaml).
FILES = [
    "config.yaml",
    "Dockerfile",
    "DOCS.md",
    "README.md",
    "CHANGELOG.md",
    "translations/en.yaml",
    "icon.png",
    "logo.png",
    "run.sh",
]


def addon_config() -> dict[str, Any]:
    data = yaml.safe_load((ADDON / "config.yaml").read_text())
    assert isinstance(data, dict)
    return data


def linter_schema() -> dict[str, Any]:
    if not LINTER_SCHEMA.is_file():
        pytest.fail(f"{LINTER_SCHEMA} is missing: the shared reference files travel with the checkout")
    data = json.loads(LINTER_SCHEMA.read_text())
    assert isinstance(data, dict)
    return data


def linter_problems(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The add-on linter's checks: its schema, then its rules on top of the schema."""
    problems = [error.message for error in Draft7Validator(schema).iter_errors(config)]
    for key, rule in schema["properties"].items():
        if "default" in rule and key in config and config[key] == rule["default"]:
            problems.append(f"{key!r} is set to its default ({rule['default']!r}); leave it out")
    if config.get("ingress"):
        if config.get("webui"):
            problems.append("'webui' with ingress")
        if config.get("ingress_port", 8099) == 0 and not config.get("host_network"):
            problems.append("'ingress_port' 0 without host_network")
    if config.get("full_access") and any(k in config for k in ("devices", "gpio", "uart", "usb")):
        problems.append("'full_access' with devices, gpio, uart or usb")
    for obsolete in ("watchdog", "codenotary", "auto_uart"):
        if obsolete in config:
            problems.append(f"{obsolete!r} is obsolete")
    if any(":" in device for device in config.get("devices", [])):
        problems.append("'devices' in the old host:container format")
    problems += [f"deprecated arch {a}" for a in config.get("arch", []) if a in ("armhf", "armv7", "i386")]
    mapped = {m if isinstance(m, str) else m["type"] for m in config.get("map", [])}
    mapped = {m.split(":")[0] for m in mapped}
    if "config" in mapped and mapped & {"homeassistant_config", "addon_config"}:
        problems.append("'map' has config beside homeassistant_config or addon_config")
    return problems


def test_the_repository_has_the_files_the_supervisor_and_the_store_read() -> None:
    repository = yaml.safe_load((ADDONS / "repository.yaml").read_text())
    assert repository["name"] and repository["maintainer"]
    missing = [name for name in FILES if not (ADDON / name).is_file()]
    assert not missing
    assert not list(ADDON.glob("build.*")), (
        "build.yaml is no longer read; name the base image in the Dockerfile"
    )


def test_the_config_passes_the_add_on_linter() -> None:
    assert linter_problems(addon_config(), linter_schema()) == []


def test_the_linter_checks_catch_what_they_should() -> None:
    """The checks above are this file's own code: each must refuse what the linter refuses."""
    schema, good = linter_schema(), addon_config()
    for bad, why in [
        ({**good, "init": True}, "default"),
        ({**good, "ingress_port": 8099}, "default"),
        ({**good, "webui": "http://[HOST]:[PORT:8099]/"}, "webui"),
        ({**good, "services": ["mqtt:maybe"]}, "does not match"),
        ({**good, "watchdog": "tcp://[HOST]:8099"}, "obsolete"),
        ({**good, "arch": ["amd64", "armv7"]}, "deprecated arch"),
        ({**good, "map": ["config:rw", "addon_config"]}, "'map'"),
        ({**good, "full_access": True}, "full_access"),
        ({k: v for k, v in good.items() if k != "slug"}, "'slug' is a required property"),
    ]:
        assert any(why in problem for problem in linter_problems(bad, schema)), (why, bad)


def test_the_config_says_what_the_issue_asks() -> None:
    config = addon_config()
    assert config["version"] == appliance.__version__
    assert set(config["arch"]) == {"aarch64", "amd64"}
    assert config["ingress"] is True and config["ingress_stream"] is True and config["init"] is False
    assert "ingress_port" not in config  # 8099, the appliance's port, is the default
    assert config["services"] == ["mqtt:want"]
    assert config["map"] == [{"type": "addon_config", "read_only": False}]
    assert config["uart"] is True and config["panel_icon"].startswith("mdi:") and config["panel_title"]
    assert set(config["ports"]) == set(config["ports_description"]) == {"5566/udp", "5567/tcp", "8099/tcp"}


def test_the_options_schema_is_what_the_appliance_reads() -> None:
    config = addon_config()
    options, schema = config["options"], config["schema"]
    AddonOptions.model_validate(options)
    assert set(schema) == set(AddonOptions.model_fields) == set(options)
    hints = typing.get_type_hints(AddonOptions)
    for key, rule in schema.items():
        hint = hints[key]
        choices = re.fullmatch(r"list\((.*)\)", rule)
        if choices:
            assert typing.get_origin(hint) is typing.Literal, key
            assert choices.group(1).split("|") == list(typing.get_args(hint)), key
        else:
            assert (rule, hint) == ("bool", bool), key
        assert AddonOptions.model_fields[key].default == options[key], key
    with pytest.raises(ValueError, match="log_level"):
        AddonOptions.model_validate({**options, "log_level": "verbose"})


def test_every_option_and_port_has_words_in_the_translation() -> None:
    config = addon_config()
    words = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    assert set(words["configuration"]) == set(config["schema"])
    assert all(entry["name"] and entry["description"] for entry in words["configuration"].values())
    assert set(words["network"]) == set(config["ports"])


def test_the_dockerfile_names_a_pinned_base_image_and_runs_the_start_script() -> None:
    dockerfile = (ADDON / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert len(bases) == 1
    _, _, tag = bases[0].partition(":")
    assert "$" not in bases[0] and not re.search(r"^ARG\s+BUILD_FROM", dockerfile, flags=re.MULTILINE)
    assert re.search(r"\d", tag) and tag != "latest", f"{bases[0]} is not pinned to a release"
    assert re.search(r'^CMD \["/run.sh"\]', dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile  # the linter's replacement for 'watchdog'
    assert "invispose addon" in (ADDON / "run.sh").read_text()


def test_the_start_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: `make test` installs it")
    result = subprocess.run([shellcheck, str(ADDON / "run.sh")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_icon_and_logo_have_the_store_s_sizes() -> None:
    assert png_size(ADDON / "icon.png") == (128, 128)
    width, height = png_size(ADDON / "logo.png")
    assert width <= 250 and height <= 100


def test_no_other_file_is_named_like_an_add_on_config() -> None:
    """The Supervisor takes every config.yaml/.yml/.json in the repository for an add-on."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    found = [p for p in listed if Path(p).name in ("config.yaml", "config.yml", "config.json")]
    assert found == ["addons/invispose/config.yaml"]


def test_the_addon_options_model_is_typed_as_the_schema_needs() -> None:
    # The schema check above reads Literal and bool hints; a union or a plain str would slip past it.
    for key, hint in typing.get_type_hints(AddonOptions).items():
        assert hint is bool or typing.get_origin(hint) is typing.Literal, key
        assert not isinstance(hint, types.UnionType), key
