"""``invispose-node flash`` without hardware: esptool's own write_flash drives a recording fake loader (as
esptool's host tests hand write_flash a mock; an ESP32 cannot run here). Offsets come from ESP-IDF's
``flasher_args.json``, the chip's bootloader offset (esptool's chip definitions) or the node's partition
table; bytes are checked in the fake's flash after esptool's own MD5 verification passed."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.firmware_tools.conftest import FakeNode, run_cli

# ESP image header (ESP-IDF esp_image_format.h): magic 0xE9, segment count, flash mode, size/freq, entry
# point; then the extended header, whose bytes 4..5 (file offset 12) are the chip id.
CHIP_IDS = {"esp32": 0, "esp32s3": 9, "esp32c3": 5}


def esp_image(chip: str, body: bytes) -> bytes:
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)
    extended = struct.pack("<B3sHBHH4sB", 0xEE, b"\x00\x00\x00", CHIP_IDS[chip], 0, 0, 0xFFFF, b"\x00" * 4, 0)
    return header + extended + body


def build_folder(tmp_path: Path, chip: str = "esp32s3") -> dict[int, bytes]:
    files = {
        0x0: ("bootloader/bootloader.bin", esp_image(chip, b"\x11" * 3000)),
        0x8000: ("partition_table/partition-table.bin", b"\xaa\x50" + b"\x22" * 3070),
        0x10000: ("csi_recv.bin", esp_image(chip, bytes(range(256)) * 300)),
    }
    for name, data in files.values():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "flasher_args.json").write_text(
        json.dumps(
            {
                "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "80m"],
                "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "80m"},
                "flash_files": {hex(offset): name for offset, (name, _) in files.items()},
                "extra_esptool_args": {
                    "after": "hard_reset",
                    "before": "default_reset",
                    "stub": True,
                    "chip": chip,
                },
            }
        )
    )
    return {offset: data for offset, (_, data) in files.items()}


def test_build_folder_goes_to_its_offsets_and_is_verified(tmp_path: Path, fake_node: FakeNode) -> None:
    expected = build_folder(tmp_path)
    code, out, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path), "--json")
    assert code == 0, err
    assert [(offset, len(data)) for offset, data in fake_node.recorder.writes] == [
        (offset, len(data)) for offset, data in sorted(expected.items())
    ]
    for offset, data in expected.items():
        assert bytes(fake_node.flash[offset : offset + len(data)]) == data
    assert fake_node.recorder.resets == 1
    report = json.loads(out)
    assert report["chip"] == "esp32s3" and report["verified"] is True
    assert [r["offset"] for r in report["regions"]] == [0x0, 0x8000, 0x10000]


def test_app_binary_goes_to_the_nodes_factory_partition(tmp_path: Path, fake_node: FakeNode) -> None:
    app = esp_image("esp32s3", b"\x5a" * 5000)
    (tmp_path / "app.bin").write_bytes(app)
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path / "app.bin"))
    assert code == 0, err
    # conftest's partition table puts the factory app at 0x10000
    assert [(o, d) for o, d in fake_node.recorder.writes] == [(0x10000, app)]


def test_merged_image_goes_to_zero(tmp_path: Path, fake_node: FakeNode) -> None:
    fake_node.chip = "esp32"
    merged = bytearray(b"\xff" * 0x10100)
    boot = esp_image("esp32", b"\x33" * 100)
    merged[0x1000 : 0x1000 + len(boot)] = boot  # classic ESP32: bootloader at 0x1000
    merged[0x8000:0x8002] = b"\xaa\x50"
    (tmp_path / "merged.bin").write_bytes(bytes(merged))
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path / "merged.bin"))
    assert code == 0, err
    assert [(o, len(d)) for o, d in fake_node.recorder.writes] == [(0, len(merged))]
    assert bytes(fake_node.flash[: len(merged)]) == bytes(merged)


def test_firmware_for_another_chip_is_refused(tmp_path: Path, fake_node: FakeNode) -> None:
    build_folder(tmp_path, chip="esp32c3")
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path))
    assert code == 1
    assert "built for esp32c3 but the board on /dev/ttyFAKE is a esp32s3" in err
    assert fake_node.recorder.writes == []


def test_a_failing_write_stops_with_a_clear_error(tmp_path: Path, fake_node: FakeNode) -> None:
    build_folder(tmp_path)
    fake_node.fail_at_block = 2
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path))
    assert code == 1
    assert "error: writing to /dev/ttyFAKE failed" in err
    assert "Operation timed out" in err
    assert "run the same command again" in err
    assert fake_node.recorder.resets == 0  # not reset into a half-written image


def test_not_an_image_is_refused(tmp_path: Path, fake_node: FakeNode) -> None:
    (tmp_path / "notes.bin").write_bytes(b"hello")
    (tmp_path / "fw.elf").write_bytes(b"\x7fELF" + b"\x00" * 60)
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path / "notes.bin"))
    assert code == 1 and "is not an ESP image (first byte 68, expected e9)" in err
    code, _, err = run_cli("flash", "--port", "/dev/ttyFAKE", "--firmware", str(tmp_path / "fw.elf"))
    assert code == 1 and "is an ELF file" in err
    assert fake_node.recorder.calls == []
