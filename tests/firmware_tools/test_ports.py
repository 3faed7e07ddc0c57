"""``invispose-node ports``: USB ids become chip guesses. The machine running the tests has no USB serial
devices, so pyserial's port list is replaced by ListPortInfo entries like the ones Linux reports."""

from __future__ import annotations

import json

import pytest
from serial.tools import list_ports, list_ports_common

from tests.firmware_tools.conftest import run_cli


def usb_port(device: str, vid: int, pid: int, description: str) -> list_ports_common.ListPortInfo:
    info = list_ports_common.ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.description, info.serial_number = vid, pid, description, "0001"
    return info


def test_ports_names_espressif_and_bridge_chips(monkeypatch: pytest.MonkeyPatch) -> None:
    ports = [
        usb_port("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller"),
        usb_port("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG/serial debug unit"),
    ]
    monkeypatch.setattr(list_ports, "comports", lambda: ports)
    code, out, err = run_cli("ports", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [p["device"] for p in listed] == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    assert listed[0]["usb_id"] == "303a:1001"
    assert listed[0]["usb"] == "Espressif USB Serial/JTAG (in the chip)"
    assert listed[1]["usb"] == "Silicon Labs CP210x USB-UART bridge"
    assert listed[1]["detected_chip"] is None  # only --detect asks the chips


def test_no_ports_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    code, out, _ = run_cli("ports")
    assert code == 0
    assert "no serial ports found: plug the node in with a data (not charge-only) USB cable" in out


@pytest.mark.parametrize(
    "command",
    ["ports", "flash", "provision", "monitor", "console", "router", "router script", "router check"],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(*command.split(), "--help")
    assert exit_info.value.code == 0
    assert "usage: invispose-node" in capsys.readouterr().out
