"""The simulator's frames go out through the test encoders and back through the real parsers unchanged.

This ties the simulator's idea of each chip (column layout, first_word_invalid, value ranges) to what the
parsers read off real hardware.
"""

from __future__ import annotations

import numpy as np

from appliance.csi.formats.atheros import AtherosStreamParser
from appliance.csi.formats.esp_csv import parse_csi_line
from appliance.csi.formats.esp_udp import parse_datagram
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import NodeSpec, RoomSimulator, RoomSpec, Scenario, default_room
from tests.encoders import adr018_datagram, atheros_record, classic_csv_line, espressif_buffer

# A classic chip's LLTF buffer in FFT order, subcarriers 0..31 then -32..-1 (ESP-IDF Wi-Fi guide, "Wi-Fi
# Channel State Information"), written here rather than taken from the parser it checks.
LLTF_FFT_ORDER = [*range(32), *range(-32, 0)]
# What a classic ESP32 leaves in the first word when it flags it invalid: any bytes at all.
GARBAGE_FIRST_WORD = np.array([127 + 3j, -90 + 41j])


def simulated_frames(room: RoomSpec, seconds: float = 0.2) -> list[CsiFrame]:
    scenario = Scenario(room)
    return RoomSimulator(room, scenario, seed=11).advance(seconds).frames


def lltf_buffer(frame: CsiFrame) -> np.ndarray:
    """A simulated ESP32 frame back in the chip's FFT order, garbage in the invalid first word."""
    values = np.zeros(64, dtype=np.complex128)
    position = {k: i for i, k in enumerate(LLTF_FFT_ORDER)}
    for column, k in enumerate(frame.subcarriers):
        values[position[int(k)]] = frame.csi[0, 0, column]
    if frame.meta.get("first_word_invalid"):
        values[:2] = GARBAGE_FIRST_WORD
    return espressif_buffer(values)


def test_esp32_frames_survive_the_serial_line_format() -> None:
    for frame in simulated_frames(default_room()):
        first_word = 1 if frame.meta.get("first_word_invalid") else 0
        line = classic_csv_line(lltf_buffer(frame), seq=frame.seq, first_word=first_word)
        parsed = parse_csi_line(line)
        np.testing.assert_array_equal(parsed.subcarriers, frame.subcarriers)
        np.testing.assert_array_equal(parsed.csi, frame.csi)
        assert parsed.seq == frame.seq


def test_esp32_frames_survive_adr018_datagrams() -> None:
    for frame in simulated_frames(default_room()):
        parsed = parse_datagram(adr018_datagram(lltf_buffer(frame), seq=frame.seq))
        kept = np.isin(parsed.subcarriers, frame.subcarriers)
        np.testing.assert_array_equal(parsed.subcarriers[kept], frame.subcarriers)
        np.testing.assert_array_equal(parsed.csi[..., kept], frame.csi)


def test_atheros_frames_survive_the_recv_csi_log() -> None:
    room = RoomSpec(
        6.0,
        5.0,
        2.7,
        (
            NodeSpec("client", "atheros", "tx", (0.3, 2.5, 1.2), antennas=2),
            NodeSpec("router", "atheros", "rx", (5.7, 2.5, 1.8), antennas=3),
        ),
    )
    frames = simulated_frames(room)
    assert frames
    log = b"".join(
        atheros_record(f.csi.astype(np.complex128), timestamp=f.device_ts_us, endian=">") for f in frames
    )
    parser = AtherosStreamParser(link="router")
    parsed = parser.feed(log[:1000]) + parser.feed(log[1000:])
    assert len(parsed) == len(frames)
    for original, back in zip(frames, parsed, strict=True):
        assert back.csi.shape == (3, 2, 56)
        np.testing.assert_array_equal(back.subcarriers, original.subcarriers)
        np.testing.assert_array_equal(back.csi, original.csi)
        assert back.device_ts_us == original.device_ts_us
