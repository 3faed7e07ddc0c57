"""``invispose-node provision``: NVS images read back with an independent reader (tests/.../nvs_reader.py,
from ESP-IDF's documented page format), merging, and refusals that write nothing.

The node is a recording fake behind esptool's real read/write code (an ESP32 cannot run here). Existing
NVS contents are made by esp-idf-nvs-partition-gen's own command line from a CSV, not by the code tested.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware_tools import nvs_reader
from tests.firmware_tools.conftest import FakeNode, partition_table, run_cli

NVS_OFFSET, NVS_SIZE = 0x9000, 0x6000


def generated_nvs(tmp_path: Path, csv_rows: str, *, version: int = 2) -> bytes:
    """An NVS image made by Espressif's generator CLI from CSV rows (key,type,encoding,value)."""
    csv = tmp_path / "existing.csv"
    csv.write_text("key,type,encoding,value\n" + csv_rows)
    out = tmp_path / "existing.bin"
    subprocess.run(
        [sys.executable, "-m", "esp_idf_nvs_partition_gen", "generate", str(csv), str(out), hex(NVS_SIZE),
         "--version", str(version)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


def node_nvs(node: FakeNode) -> dict[str, dict[str, tuple[str, object]]]:
    return nvs_reader.read(bytes(node.flash[NVS_OFFSET : NVS_OFFSET + NVS_SIZE]))


EXISTING = """\
nvs.net80211,namespace,,
sta.ssid,data,hex2bin,0a000000486f6d654e6574310000000000000000000000000000000000000000000000
phy,namespace,,
cal_data,data,hex2bin,{cal}
invispose,namespace,,
ssid,data,string,OldNet
password,data,string,old-password
sink_host,data,string,10.0.0.9
sink_port,data,u16,5000
node_id,data,u8,9
fw_extra,data,i32,-42
""".format(cal="a5" * 1500)  # a calibration blob longer than a page: a multi-page v2 blob


def test_output_file_holds_the_keys_as_typed(tmp_path: Path) -> None:
    out = tmp_path / "nvs.bin"
    code, stdout, err = run_cli(
        "provision", "--output", str(out), "--ssid", "Home Net", "--password", "correct horse",
        "--sink", "192.168.1.20:5566", "--node-id", "3", "--channel", "6", "--rate", "100",
    )  # fmt: skip
    assert code == 0, err
    image = out.read_bytes()
    assert len(image) == NVS_SIZE
    assert nvs_reader.read(image) == {
        "invispose": {
            "ssid": ("string", "Home Net"),
            "password": ("string", "correct horse"),
            "sink_host": ("string", "192.168.1.20"),
            "sink_port": ("u16", 5566),
            "node_id": ("u8", 3),
            "channel": ("u8", 6),
            "rate_hz": ("u16", 100),
        }
    }
    assert "0x9000" in stdout


def test_ruview_keys_are_the_ones_its_firmware_reads(tmp_path: Path) -> None:
    out = tmp_path / "ruview.bin"
    code, _, err = run_cli(
        "provision", "--output", str(out), "--firmware-keys", "ruview", "--ssid", "Home", "--password",
        "12345678", "--sink", "192.168.1.20:5005", "--node-id", "2", "--channel", "11",
        "--set", "tdm_slot=u8:1", "--set", "tdm_nodes=u8:3",
    )  # fmt: skip
    assert code == 0, err
    # RuView firmware/esp32-csi-node/main/nvs_config.c: nvs_get_str ssid/password/target_ip,
    # nvs_get_u16 target_port, nvs_get_u8 node_id/csi_channel/tdm_slot/tdm_nodes in namespace "csi_cfg".
    assert nvs_reader.read(out.read_bytes()) == {
        "csi_cfg": {
            "ssid": ("string", "Home"),
            "password": ("string", "12345678"),
            "target_ip": ("string", "192.168.1.20"),
            "target_port": ("u16", 5005),
            "node_id": ("u8", 2),
            "csi_channel": ("u8", 11),
            "tdm_slot": ("u8", 1),
            "tdm_nodes": ("u8", 3),
        }
    }


def test_merge_on_the_node_keeps_every_key_it_does_not_set(tmp_path: Path, fake_node: FakeNode) -> None:
    existing = generated_nvs(tmp_path, EXISTING)
    fake_node.put(NVS_OFFSET, existing)
    before = nvs_reader.read(existing)
    code, _, err = run_cli(
        "provision", "--port", "/dev/ttyFAKE", "--ssid", "NewNet", "--password", "new-password",
        "--sink", "192.168.1.20:5566", "--node-id", "4",
    )  # fmt: skip
    assert code == 0, err
    after = node_nvs(fake_node)
    assert after["nvs.net80211"] == before["nvs.net80211"]
    assert after["phy"] == before["phy"] == {"cal_data": ("blob", b"\xa5" * 1500)}
    assert after["invispose"] == {
        "ssid": ("string", "NewNet"),
        "password": ("string", "new-password"),
        "sink_host": ("string", "192.168.1.20"),
        "sink_port": ("u16", 5566),
        "node_id": ("u8", 4),
        "fw_extra": ("i32", -42),
    }
    # One write of the whole partition at the NVS offset, then a reset into the firmware.
    assert [(offset, len(data)) for offset, data in fake_node.recorder.writes] == [(NVS_OFFSET, NVS_SIZE)]
    assert fake_node.recorder.resets == 1


def test_keep_wifi_leaves_the_nodes_wifi_settings(tmp_path: Path, fake_node: FakeNode) -> None:
    fake_node.put(NVS_OFFSET, generated_nvs(tmp_path, EXISTING))
    code, _, err = run_cli(
        "provision", "--port", "/dev/ttyFAKE", "--keep-wifi", "--sink", "10.1.1.1:6000", "--node-id", "7"
    )
    assert code == 0, err
    ours = node_nvs(fake_node)["invispose"]
    assert ours["ssid"] == ("string", "OldNet")
    assert ours["password"] == ("string", "old-password")
    assert ours["sink_host"] == ("string", "10.1.1.1")
    assert ours["node_id"] == ("u8", 7)


def test_keep_wifi_without_wifi_on_the_node_is_refused(fake_node: FakeNode) -> None:
    code, _, err = run_cli(
        "provision", "--port", "/dev/ttyFAKE", "--keep-wifi", "--sink", "10.1.1.1:1", "--node-id", "1"
    )
    assert code == 1
    assert "--keep-wifi: the node has no ssid, password" in err
    assert fake_node.recorder.writes == []


def test_version_1_nvs_stays_version_1(tmp_path: Path, fake_node: FakeNode) -> None:
    fake_node.put(NVS_OFFSET, generated_nvs(tmp_path, "other,namespace,,\nk,data,u32,7\n", version=1))
    code, _, err = run_cli(
        "provision", "--port", "/dev/ttyFAKE", "--ssid", "N", "--sink", "10.1.1.1:1", "--node-id", "1"
    )
    assert code == 0, err
    assert fake_node.flash[NVS_OFFSET + 8] == 0xFF  # page header version byte: 0xFF is format version 1
    assert node_nvs(fake_node)["other"] == {"k": ("u32", 7)}


BAD_INPUT = {
    "ssid over 32 bytes": (["--ssid", "x" * 33], "the SSID is 33 bytes long; Wi-Fi allows 1 to 32 bytes"),
    "key over 15 characters": (
        ["--ssid", "Net", "--set", "a_sixteen_chars_=u8:1"],
        "NVS key 'a_sixteen_chars_' is 16 bytes long; NVS allows 1 to 15",
    ),
    "short passphrase": (["--ssid", "Net", "--password", "short"], "a WPA2 passphrase has 8 to 63"),
    "ruview with a host name": (
        ["--ssid", "Net", "--firmware-keys", "ruview", "--sink", "box.local:5005"],
        "RuView's firmware needs the sink as a dotted IPv4 address",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_before_anything_is_written(
    case: str, tmp_path: Path, fake_node: FakeNode
) -> None:
    extra, message = BAD_INPUT[case]
    args = ["provision", "--port", "/dev/ttyFAKE", "--sink", "10.0.0.2:5566", "--node-id", "1", *extra]
    code, _, err = run_cli(*args)
    assert code == 1
    assert message in err
    assert fake_node.recorder.writes == []
    assert not any(name == "connect" for name, _ in fake_node.recorder.calls)
    out = tmp_path / "nvs.bin"
    code, _, err = run_cli(*[a for a in args if a not in ("--port", "/dev/ttyFAKE")], "--output", str(out))
    assert code == 1
    assert not out.exists()


def test_unknown_chip_is_a_usage_error(fake_node: FakeNode, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(
            "provision",
            "--port",
            "/dev/ttyFAKE",
            "--chip",
            "esp33",
            "--ssid",
            "N",
            "--sink",
            "1.2.3.4:1",
            "--node-id",
            "1",
        )
    assert exit_info.value.code == 2
    assert "unknown chip 'esp33'; known: auto, esp32," in capsys.readouterr().err
    assert fake_node.recorder.calls == []


def test_partition_table_without_nvs_is_refused(fake_node: FakeNode, tmp_path: Path) -> None:
    fake_node.put(
        0x8000, partition_table(("factory", 0, 0, 0x10000, 0x100000), ("spiffs", 1, 0x82, 0x110000, 0x10000))
    )
    out = tmp_path / "nvs.bin"
    for extra in ([], ["--output", str(out)]):
        code, _, err = run_cli(
            "provision",
            "--port",
            "/dev/ttyFAKE",
            "--ssid",
            "N",
            "--sink",
            "10.0.0.2:1",
            "--node-id",
            "1",
            *extra,
        )
        assert code == 1
        assert (
            "the partition table has no NVS partition (type data, subtype nvs); it lists: factory, spiffs"
            in err
        )
    assert fake_node.recorder.writes == []
    assert not out.exists()


def test_damaged_nvs_is_not_rewritten(tmp_path: Path, fake_node: FakeNode) -> None:
    image = bytearray(generated_nvs(tmp_path, EXISTING))
    image[4] ^= 0xFF  # the first page's sequence number no longer matches its header CRC
    fake_node.put(NVS_OFFSET, bytes(image))
    code, _, err = run_cli(
        "provision", "--port", "/dev/ttyFAKE", "--ssid", "N", "--sink", "10.0.0.2:1", "--node-id", "1"
    )
    assert code == 1
    assert "NVS page 0 fails its header CRC" in err
    assert fake_node.recorder.writes == []
