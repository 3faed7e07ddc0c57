"""The Espressif CSI buffer: which long-training-field blocks a buffer of a given length holds, and the
errors a wrong buffer gets. Sizes are the ESP-IDF Wi-Fi guide's ("Wi-Fi Channel State Information" table:
for a secondary channel below, HT20 with STBC holds LLTF 0~63, HT-LTF 0~62 and STBC-HT-LTF 0~62, 380 bytes;
HT40 with STBC holds LLTF 0~63, HT-LTF and STBC-HT-LTF 0~60, -60~-1, 612 bytes). Channel frequencies are
IEEE 802.11's: 2407 + 5n MHz for 2.4 GHz channels 1-13, 2484 MHz for channel 14, 5000 + 5n MHz at 5 GHz."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espressif import (
    SECONDARY_BELOW,
    SECONDARY_NONE,
    c5c6_layout,
    channel_to_mhz,
    classic_layout,
    decode_buffer,
    decode_pairs,
    lltf64_to_sorted,
)

HT = 1


@pytest.mark.parametrize(
    ("channel", "mhz"),
    [
        *[(1, 2412), (6, 2437), (13, 2472), (14, 2484), (32, 5160), (36, 5180), (165, 5825), (177, 5885)],
        *[(0, 0), (15, 0), (31, 0), (178, 0)],  # no channel of either band
    ],
)
def test_channel_numbers_map_to_their_centre_frequency_and_unknown_ones_to_zero(
    channel: int, mhz: int
) -> None:
    assert channel_to_mhz(channel) == mhz


@pytest.mark.parametrize(
    ("length", "offset", "block"),
    [
        (380, 128, "ht-ltf"),  # every block
        (254, 128, "ht-ltf"),  # STBC-HT-LTF disabled
        (128, 0, "lltf"),  # only the LLTF (esp-csi's get-started receiver)
        (252, 0, "ht-ltf"),  # LLTF disabled
        (126, 0, "ht-ltf"),  # only the HT-LTF
    ],
)
def test_a_buffer_holds_the_blocks_whose_sizes_add_up_to_its_length(
    length: int, offset: int, block: str
) -> None:
    """Firmware may disable any LTF: the blocks present are those of the packet's row that fill the buffer."""
    layout = classic_layout(secondary=SECONDARY_BELOW, sig_mode=HT, cwb=0, stbc=1, length=length)
    assert (layout.chosen[0], layout.name, layout.chosen[1].bandwidth_mhz) == (offset, block, 20)


@pytest.mark.parametrize("length", [612, 370, 242])
def test_an_ht40_stbc_buffer_reports_a_40_mhz_ht_ltf(length: int) -> None:
    layout = classic_layout(secondary=SECONDARY_BELOW, sig_mode=HT, cwb=1, stbc=1, length=length)
    assert (layout.name, layout.chosen[1].bandwidth_mhz, len(layout.chosen[1].indices)) == ("ht-ltf", 40, 121)


@pytest.mark.parametrize(
    ("secondary", "cwb", "sizes"),
    [
        (SECONDARY_NONE, 0, "lltf:128+ht-ltf:128+stbc-ht-ltf:128"),
        (SECONDARY_BELOW, 0, "lltf:128+ht-ltf:126+stbc-ht-ltf:126"),
        (SECONDARY_BELOW, 1, "lltf:128+ht-ltf:242+stbc-ht-ltf:242"),
    ],
)
def test_a_buffer_that_fits_no_layout_is_told_the_sizes_that_would(
    secondary: int, cwb: int, sizes: str
) -> None:
    with pytest.raises(CsiFormatError) as caught:
        classic_layout(secondary=secondary, sig_mode=HT, cwb=cwb, stbc=1, length=100)
    assert str(caught.value) == f"a 100-byte buffer fits no subset of this packet's blocks ({sizes})"


def test_wrong_buffers_get_errors_that_say_what_is_wrong() -> None:
    cases = [
        (
            lambda: classic_layout(secondary=3, sig_mode=HT, cwb=0, stbc=0, length=128),
            "secondary channel must be 0, 1 or 2, got 3",
        ),
        (
            lambda: decode_pairs(np.zeros(5, np.int8)),
            "CSI buffer has an odd length 5; it must hold byte pairs",
        ),
        (
            lambda: decode_buffer(np.zeros(10, np.int8), c5c6_layout(128), first_word_invalid=False),
            "buffer is 10 bytes but its layout needs 128",
        ),
        (
            lambda: lltf64_to_sorted(np.zeros(10, np.complex64), first_word_invalid=False),
            "an LLTF block has 64 subcarriers, got 10",
        ),
    ]
    for call, message in cases:
        with pytest.raises(CsiFormatError) as caught:
            call()
        assert str(caught.value) == message


def test_one_lltf_block_in_fft_order_is_sorted_by_subcarrier() -> None:
    """FFT order is 0..31 then -32..-1: value k of the block belongs to subcarrier k, or k - 64 from 32."""
    values = np.arange(64, dtype=np.complex64)
    sorted_values, indices = lltf64_to_sorted(values, first_word_invalid=False)
    assert indices.tolist() == list(range(-32, 32))
    assert sorted_values.real.tolist() == [k % 64 for k in range(-32, 32)]
    without_first_word, indices = lltf64_to_sorted(values, first_word_invalid=True)
    assert 0 not in indices and 1 not in indices and len(without_first_word) == 62
