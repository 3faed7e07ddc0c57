"""``monitor``, ``console`` and ``provision --improv`` against a pseudo-terminal: the tool opens the pty as
its serial port, and a thread on the other side plays the node (an ESP32 cannot run here). The node
prints the real esp-csi ``CSI_DATA`` lines from ../shared/captures; Improv packets are built and checked
here from the published Improv Serial spec, not with the code under test."""

from __future__ import annotations

import json
import random
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.captures import capture
from tests.firmware_tools.conftest import Pty, run_cli

# Before the node starts talking: opening a serial port flushes what was already waiting in it.
PORT_OPEN_GRACE_S = 0.3


def esp_csi_lines() -> tuple[str, str]:
    classic, c6 = Path(capture("esp32/esp-csi-readme-lines.csv")).read_text().splitlines()
    return classic, c6


def with_sequence(line: str, seq: int) -> str:
    """The capture's line with its sequence column (the second) set to ``seq``; other bytes as printed."""
    tag, _, rest = line.split(",", 2)
    return f"{tag},{seq},{rest}"


@pytest.fixture
def play(serial_pty: Pty) -> Iterator[Callable[[Callable[[Pty], None]], None]]:
    threads: list[threading.Thread] = []

    def start(script: Callable[[Pty], None]) -> None:
        thread = threading.Thread(target=script, args=(serial_pty,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()


def monitor(serial_pty: Pty, *extra: str) -> tuple[int, dict[str, object]]:
    code, out, _ = run_cli("monitor", "--port", serial_pty.path, "--json", *extra)
    return code, json.loads(out)


def test_monitor_fine_with_real_esp_csi_lines(serial_pty: Pty, play: Callable[..., None]) -> None:
    classic, _ = esp_csi_lines()
    sent = [s for s in range(60) if s % 12 != 5]  # five packets the node "lost"

    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        p.write(b"I (312) wifi:connected with HomeNet, aid = 1, channel 6\r\n")
        for seq in sent:
            p.write(with_sequence(classic, seq).encode() + b"\r\n")
            time.sleep(0.02)

    play(node_prints)
    code, report = monitor(serial_pty, "--duration", "2.5")
    assert report["verdict"] == "fine", report
    assert code == 0
    assert report["frames"] == report["csi_lines"] == len(sent)
    assert report["bad_lines"] == 0
    assert report["lost_packets"] == 5
    assert report["log_lines"] == 1
    assert report["rssi_dbm"] == {"min": -30.0, "mean": -30.0, "max": -30.0}  # the capture line's RSSI
    assert 20 < report["packets_per_s"] < 100  # the node paces ~50 lines/s; scheduling jitter allowed


def test_monitor_reads_the_c6_layout(serial_pty: Pty, play: Callable[..., None]) -> None:
    _, c6 = esp_csi_lines()

    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        for seq in range(30):
            p.write(with_sequence(c6, seq).encode() + b"\n")
            time.sleep(0.02)

    play(node_prints)
    _, report = monitor(serial_pty, "--duration", "1.5")
    assert report["frames"] == 30
    assert report["rssi_dbm"]["max"] == -23.0  # the C6 line's RSSI column


def test_monitor_without_csi_says_how_to_start_it(serial_pty: Pty, play: Callable[..., None]) -> None:
    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        for i in range(10):
            p.write(f"I ({1000 + i}) app: waiting for wifi\r\n".encode())

    play(node_prints)
    code, report = monitor(serial_pty, "--duration", "1")
    assert (code, report["verdict"]) == (1, "no-csi")
    assert "radar --csi_start" in report["advice"]
    assert report["last_log_lines"][-1] == "I (1009) app: waiting for wifi"


def test_monitor_wrong_format(serial_pty: Pty, play: Callable[..., None]) -> None:
    classic, _ = esp_csi_lines()
    head, _, data = classic.partition(',"')
    shortened = ",".join(head.split(",")[:20]) + ',"' + data  # 21 columns: no esp-csi layout

    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        for _ in range(10):
            p.write(shortened.encode() + b"\n")

    play(node_prints)
    code, report = monitor(serial_pty, "--duration", "1")
    assert (code, report["verdict"]) == (1, "wrong-format")
    assert "known layouts have 25 (classic), 15 (C5/C6) or 30 (esp-radar)" in report["advice"]


def test_monitor_wrong_baud_rate(serial_pty: Pty, play: Callable[..., None]) -> None:
    noise = random.Random(7).randbytes(3000)  # what 921600-baud output looks like read at 115200

    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        p.write(noise)

    play(node_prints)
    code, report = monitor(serial_pty, "--duration", "1")
    assert (code, report["verdict"]) == (1, "garbled")
    assert "baud rate is wrong" in report["advice"]


def test_monitor_serial_link_too_slow(serial_pty: Pty, play: Callable[..., None]) -> None:
    classic, _ = esp_csi_lines()

    def node_prints(p: Pty) -> None:
        time.sleep(PORT_OPEN_GRACE_S)
        for seq in range(40):  # ~26 KB in a second: far more than 9600 baud (960 bytes/s) carries
            p.write(with_sequence(classic, seq).encode() + b"\n")
            time.sleep(0.02)

    play(node_prints)
    code, report = monitor(serial_pty, "--duration", "1.5", "--baud", "9600")
    assert (code, report["verdict"]) == (1, "serial-saturated")
    assert "raise the console baud rate" in report["advice"]


def test_monitor_silent_port(serial_pty: Pty) -> None:
    code, report = monitor(serial_pty, "--duration", "0.5")
    assert (code, report["verdict"]) == (1, "silent")


def read_until(p: Pty, marker: bytes, timeout_s: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while marker not in data and time.monotonic() < deadline:
        if select.select([p.fd], [], [], 0.05)[0]:
            data += p.read()
    return data


def test_console_sends_the_command_and_shows_the_answer(serial_pty: Pty, play: Callable[..., None]) -> None:
    classic, _ = esp_csi_lines()
    received: list[bytes] = []

    def esp_csi_console(p: Pty) -> None:
        received.append(read_until(p, b"\r\n"))
        p.write(b"csi> radar --csi_start\r\n")  # the REPL echoes the line
        p.write(with_sequence(classic, 1).encode() + b"\r\n")
        p.write(b"I (5123) app_main: CSI collection started\r\n")
        p.write(with_sequence(classic, 2).encode() + b"\r\n")
        p.write(b"csi> ")

    play(esp_csi_console)
    code, out, err = run_cli("console", "--port", serial_pty.path, "--json", "--", "radar", "--csi_start")
    assert code == 0, err
    assert received == [b"radar --csi_start\r\n"]
    assert json.loads(out) == {
        "command": "radar --csi_start",
        "answer": ["I (5123) app_main: CSI collection started"],
        "prompt_seen": True,
        "csi_lines_skipped": 2,
    }


# --- Improv Serial, from https://www.improv-wifi.com/serial/ -------------------------------------------


def improv_packet(ptype: int, data: bytes) -> bytes:
    body = b"IMPROV" + bytes([1, ptype, len(data)]) + data
    return body + bytes([sum(body) & 0xFF])


def rpc_result(command: int, strings: list[str]) -> bytes:
    payload = b"".join(bytes([len(s.encode())]) + s.encode() for s in strings)
    return improv_packet(0x04, bytes([command, len(payload)]) + payload)


class ImprovDevice:
    """Plays an ESPHome node speaking Improv Serial; checks every packet the client sends."""

    def __init__(self, *, join_ok: bool = True) -> None:
        self.join_ok = join_ok
        self.commands: list[tuple[int, bytes]] = []
        self.wifi: tuple[str, str] | None = None

    def _packets(self, p: Pty, deadline: float) -> Iterator[tuple[int, bytes]]:
        buffer = b""
        while time.monotonic() < deadline:
            if not select.select([p.fd], [], [], 0.05)[0]:
                continue
            buffer += p.read()
            while (start := buffer.find(b"IMPROV")) >= 0 and len(buffer) >= start + 9:
                size = buffer[start + 8]
                end = start + 9 + size + 1
                if len(buffer) < end:
                    break
                raw, buffer = buffer[start:end], buffer[end:]
                assert raw[6] == 1, "Improv version must be 1"
                assert raw[-1] == sum(raw[:-1]) & 0xFF, f"bad checksum from the client: {raw.hex()}"
                yield raw[7], raw[9:-1]

    def __call__(self, p: Pty) -> None:
        p.write(b"[I][app:100]: Running through setup()...\n")
        p.write(improv_packet(0x01, b"\x02")[:-1] + b"\x00\n")  # a damaged packet the client must ignore
        for ptype, data in self._packets(p, time.monotonic() + 10):
            assert ptype == 0x03  # clients only send RPC commands
            command, size, payload = data[0], data[1], data[2:]
            assert size == len(payload)
            self.commands.append((command, payload))
            if command == 0x02:
                p.write(improv_packet(0x01, b"\x02") + b"\n")  # ready
            elif command == 0x03:
                p.write(rpc_result(0x03, ["ESPHome", "2025.4.0", "ESP32-S3", "espectre-hall"]) + b"\n")
            elif command == 0x01:
                n = payload[0]
                ssid = payload[1 : 1 + n].decode()
                m = payload[1 + n]
                self.wifi = (ssid, payload[2 + n : 2 + n + m].decode())
                p.write(improv_packet(0x01, b"\x03") + b"\n[D][wifi:290]: Connecting to 'Home Net'\n")
                if self.join_ok:
                    p.write(improv_packet(0x01, b"\x04") + rpc_result(0x01, ["http://192.168.1.50"]) + b"\n")
                else:
                    p.write(improv_packet(0x02, b"\x03") + b"\n")
                return


def test_improv_provisions_wifi(serial_pty: Pty, play: Callable[..., None]) -> None:
    device = ImprovDevice()
    play(device)
    code, out, err = run_cli(
        "provision", "--improv", "--port", serial_pty.path, "--ssid", "Home Net", "--password", "pässwörd-1",
        "--improv-timeout", "5", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert device.wifi == ("Home Net", "pässwörd-1")
    assert [c for c, _ in device.commands] == [0x02, 0x03, 0x01]
    assert json.loads(out) == {
        "state": "provisioned",
        "device_info": ["ESPHome", "2025.4.0", "ESP32-S3", "espectre-hall"],
        "urls": ["http://192.168.1.50"],
    }


def test_improv_failed_join_is_reported(serial_pty: Pty, play: Callable[..., None]) -> None:
    play(ImprovDevice(join_ok=False))
    code, _, err = run_cli(
        "provision", "--firmware-keys", "espectre", "--port", serial_pty.path, "--ssid", "Home Net",
        "--password", "wrong-password", "--improv-timeout", "5",
    )  # fmt: skip
    assert code == 1
    assert "could not join the network: check the SSID and password" in err


def test_improv_silence_says_the_firmware_does_not_speak_it(serial_pty: Pty) -> None:
    code, _, err = run_cli(
        "provision", "--improv", "--port", serial_pty.path, "--ssid", "N", "--improv-timeout", "1.5"
    )
    assert code == 1
    assert "does not speak Improv Serial" in err


def test_console_needs_a_command(serial_pty: Pty) -> None:
    code, _, err = run_cli("console", "--port", serial_pty.path)
    assert code == 1 and "give the console command after --" in err
