"""The raw CSI buffer that every Espressif chip hands to its ``wifi_csi_info_t`` callback.

The buffer is a sequence of int8 pairs, imaginary byte first, made of up to three long-training-field blocks
(LLTF, HT-LTF, STBC-HT-LTF) one after another. Which subcarrier each pair belongs to depends on the chip, the
secondary channel, the packet's signal mode, bandwidth and STBC, and on which blocks the firmware enabled
(Espressif's "Wi-Fi Channel State Information" guide, ESP-IDF ``wifi.rst``; esp-radar's
``sub_carrier_table``). Reading it takes three rules worth stating:

- Classic chips (ESP32, S2, S3, C3), secondary channel none: each block is in FFT order, ``0..31, -32..-1``
  (``0..63, -64..-1`` for 40 MHz).
- Classic chips with a secondary channel: the guide labels 20 MHz blocks ``0~63`` (below) or ``-64~-1``
  (above), i.e. indices on the 40 MHz grid, where the primary channel is centred on +32 or -32. Both read as
  the primary channel's subcarriers ``-32..31`` in ascending order, so we report them relative to the
  packet's own centre; 40 MHz blocks are relative to the 40 MHz centre. Indices always describe the packet
  as sent, so frames from different configurations land on one grid.
- ESP32-C5/C6 (the 15-column serial layout): the buffer is in ascending order (``-32..31``, ``-64..63``,
  ``-128..127``) despite labels such as ``0~63, -64~-1``: in the esp-csi README's C6 line the nulls sit at
  -64..-59, -1..1 and 59..63 exactly where HT40's guard and DC tones are, and esp-radar's valid-byte ranges
  agree. Their layout is chosen by length alone because that line carries no signal mode or bandwidth;
  256 bytes is HT40 rather than STBC HT20, and 512 bytes HE20 rather than STBC HT40 (the common cases).

A frame never mixes blocks (that would repeat indices): it carries the HT-LTF when the buffer holds one,
else the LLTF (else the HE-LTF on C5/C6); ``BufferLayout.name`` says which, for ``meta``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.errors import CsiFormatError

Indices = npt.NDArray[np.int16]


def _span(*ranges: tuple[int, int]) -> Indices:
    """Concatenated inclusive ranges, in the order given (buffer order)."""
    return np.concatenate([np.arange(lo, hi + 1) for lo, hi in ranges]).astype(np.int16)


LLTF_64_INDICES: Indices = _span((0, 31), (-32, -1))
_FFT_20 = LLTF_64_INDICES
_FFT_40 = _span((0, 63), (-64, -1))
_FFT_40_STBC = _span((0, 60), (-60, -1))
_ASCENDING_64 = _span((-32, 31))
# STBC HT-LTF on a 20 MHz packet with a secondary channel: 0~62 (below) / -62~-1 (above) on the 40 MHz
# grid, shifted by the primary channel's centre (+32 / -32).
_STBC_20_BELOW = _span((0, 62)) - 32
_STBC_20_ABOVE = _span((-62, -1)) + 32

SECONDARY_NONE, SECONDARY_ABOVE, SECONDARY_BELOW = 0, 1, 2
SIG_MODE_NON_HT = 0


@dataclass(frozen=True, slots=True)
class Block:
    """One long-training-field block: its name and the subcarrier index of each pair, in buffer order."""

    name: str
    indices: Indices
    bandwidth_mhz: int

    @property
    def n_bytes(self) -> int:
        return 2 * len(self.indices)


@dataclass(frozen=True, slots=True)
class BufferLayout:
    """Which blocks a buffer holds, and the one a frame reports (HT-LTF > LLTF > HE-LTF)."""

    blocks: tuple[Block, ...]

    @property
    def n_bytes(self) -> int:
        return sum(b.n_bytes for b in self.blocks)

    @property
    def chosen(self) -> tuple[int, Block]:
        """Byte offset and block of the block a frame carries."""
        offsets = np.cumsum([0] + [b.n_bytes for b in self.blocks])
        for preferred in ("ht-ltf", "lltf", "he-ltf"):
            for offset, block in zip(offsets, self.blocks, strict=False):
                if block.name == preferred:
                    return int(offset), block
        return 0, self.blocks[0]

    @property
    def name(self) -> str:
        return self.chosen[1].name


def _block(name: str, indices: Indices, bandwidth_mhz: int = 20) -> Block:
    return Block(name, indices, bandwidth_mhz)


def _classic_blocks(secondary: int, sig_mode: int, cwb: int, stbc: int) -> tuple[Block, ...]:
    """All blocks of the guide's table row for this packet, in buffer order."""
    ht = sig_mode != SIG_MODE_NON_HT
    if secondary == SECONDARY_NONE:
        lltf = _block("lltf", _FFT_20)
        if not ht:
            return (lltf,)
        if not stbc:
            return (lltf, _block("ht-ltf", _FFT_20))
        return (lltf, _block("ht-ltf", _FFT_20), _block("stbc-ht-ltf", _FFT_20))
    lltf = _block("lltf", _ASCENDING_64)
    if not ht:
        return (lltf,)
    if cwb:
        ht_idx = _FFT_40_STBC if stbc else _FFT_40
        if not stbc:
            return (lltf, _block("ht-ltf", ht_idx, 40))
        return (lltf, _block("ht-ltf", ht_idx, 40), _block("stbc-ht-ltf", ht_idx, 40))
    if not stbc:
        return (lltf, _block("ht-ltf", _ASCENDING_64))
    stbc_idx = _STBC_20_BELOW if secondary == SECONDARY_BELOW else _STBC_20_ABOVE
    return (lltf, _block("ht-ltf", stbc_idx), _block("stbc-ht-ltf", stbc_idx))


def classic_layout(*, secondary: int, sig_mode: int, cwb: int, stbc: int, length: int) -> BufferLayout:
    """Layout of a classic-chip buffer, allowing for LTFs the firmware disabled.

    esp-csi's get-started receiver enables only the LLTF, so an HT40 STBC packet arrives as 128 bytes: the
    blocks present are the subset of the table row whose sizes add up to ``length``, tried from the
    fullest.
    """
    if secondary not in (SECONDARY_NONE, SECONDARY_ABOVE, SECONDARY_BELOW):
        raise CsiFormatError(f"secondary channel must be 0, 1 or 2, got {secondary}")
    row = _classic_blocks(secondary, sig_mode, cwb, stbc)
    for subset in (row, row[:2], row[:1], row[1:], row[1:2]):
        if subset and sum(b.n_bytes for b in subset) == length:
            return BufferLayout(subset)
    sizes = "+".join(f"{b.name}:{b.n_bytes}" for b in row)
    raise CsiFormatError(f"a {length}-byte buffer fits no subset of this packet's blocks ({sizes})")


_C5C6_BY_LENGTH: dict[int, tuple[Block, ...]] = {
    106: (_block("lltf", _span((-26, 26))),),
    114: (_block("ht-ltf", _span((-28, 28))),),
    128: (_block("ht-ltf", _ASCENDING_64),),
    228: (_block("ht-ltf", _span((-28, 28))), _block("stbc-ht-ltf", _span((-28, 28)))),
    234: (_block("ht-ltf", _span((-58, 58)), 40),),
    256: (_block("ht-ltf", _span((-64, 63)), 40),),
    468: (_block("ht-ltf", _span((-58, 58)), 40), _block("stbc-ht-ltf", _span((-58, 58)), 40)),
    490: (_block("he-ltf", _span((-122, 122))),),
    512: (_block("he-ltf", _span((-128, 127))),),
}


def c5c6_layout(length: int) -> BufferLayout:
    """Layout of an ESP32-C5/C6 buffer from its length (see the module docstring for 256 and 512)."""
    blocks = _C5C6_BY_LENGTH.get(length)
    if blocks is None:
        raise CsiFormatError(f"no known ESP32-C5/C6 buffer is {length} bytes long")
    return BufferLayout(blocks)


# esp-radar hands its callback only the valid (non-null) subcarriers, block after block, each block in
# ascending order (its sub_carrier_table's valid-byte ranges); classic HT40 also leaves out +-30.
_RADAR_LLTF = _block("lltf", _span((-26, -1), (1, 26)))
_RADAR_HT20 = _block("ht-ltf", _span((-28, -1), (1, 28)))
_RADAR_HT40_CLASSIC = _block("ht-ltf", _span((-58, -31), (-29, -2), (2, 29), (31, 58)), 40)
_RADAR_HT40 = _block("ht-ltf", _span((-58, -2), (2, 58)), 40)
_RADAR_HE20 = _block("he-ltf", _span((-122, -2), (2, 122)))


def _stbc_of(block: Block) -> Block:
    return Block("stbc-ht-ltf", block.indices, block.bandwidth_mhz)


def radar_filtered_layout(*, length: int, cwb: int) -> BufferLayout:
    """Layout of esp-radar's filtered ``valid_data`` (console_test's 30-column lines)."""
    candidates: Sequence[tuple[Block, ...]] = (
        (_RADAR_LLTF,),
        (_RADAR_LLTF, _RADAR_HT40_CLASSIC) if cwb else (_RADAR_LLTF, _RADAR_HT20),
        (_RADAR_LLTF, _RADAR_HT40_CLASSIC, _stbc_of(_RADAR_HT40_CLASSIC))
        if cwb
        else (_RADAR_LLTF, _RADAR_HT20, _stbc_of(_RADAR_HT20)),
        (_RADAR_HT40,) if cwb else (_RADAR_HT20,),
        (_RADAR_HT40, _stbc_of(_RADAR_HT40)) if cwb else (_RADAR_HT20, _stbc_of(_RADAR_HT20)),
        (_RADAR_HE20,),
    )
    for blocks in candidates:
        if sum(b.n_bytes for b in blocks) == length:
            return BufferLayout(blocks)
    raise CsiFormatError(f"no esp-radar filtered layout is {length} bytes long (bandwidth flag {cwb})")


def decode_pairs(buffer: npt.NDArray[np.int8]) -> npt.NDArray[np.complex64]:
    """(imaginary, real) int8 pairs -> complex values, in buffer order."""
    if buffer.shape[-1] % 2:
        raise CsiFormatError(f"CSI buffer has an odd length {buffer.shape[-1]}; it must hold byte pairs")
    pairs = buffer.astype(np.float32)
    return (pairs[..., 1::2] + 1j * pairs[..., 0::2]).astype(np.complex64)


def _sorted(values: npt.NDArray[np.complex64], indices: Indices) -> tuple[npt.NDArray[np.complex64], Indices]:
    order = np.argsort(indices, kind="stable")
    return values[..., order], indices[order]


def decode_buffer(
    buffer: npt.NDArray[np.int8], layout: BufferLayout, *, first_word_invalid: bool
) -> tuple[npt.NDArray[np.complex64], Indices]:
    """The chosen block of ``buffer`` as (values, indices) sorted by ascending subcarrier index.

    With ``first_word_invalid`` the first 4 bytes (two pairs) hold garbage, so those columns are left out
    when they fall in the chosen block rather than reported as measurements.
    """
    if buffer.shape[-1] != layout.n_bytes:
        raise CsiFormatError(f"buffer is {buffer.shape[-1]} bytes but its layout needs {layout.n_bytes}")
    offset, block = layout.chosen
    values = decode_pairs(buffer[..., offset : offset + block.n_bytes])
    indices = block.indices
    if first_word_invalid and offset == 0:
        values, indices = values[..., 2:], indices[2:]
    return _sorted(values, indices)


def lltf64_to_sorted(
    values: npt.NDArray[np.complex64], *, first_word_invalid: bool
) -> tuple[npt.NDArray[np.complex64], Indices]:
    """Map a 64-subcarrier LLTF block from FFT order to ascending subcarrier index.

    With ``first_word_invalid`` the first 4 bytes (subcarriers 0 and 1) hold garbage, so those two
    columns are left out rather than reported as measurements.
    """
    if values.shape[-1] != 64:
        raise CsiFormatError(f"an LLTF block has 64 subcarriers, got {values.shape[-1]}")
    indices = LLTF_64_INDICES
    if first_word_invalid:
        values, indices = values[..., 2:], indices[2:]
    return _sorted(values, indices)


def channel_to_mhz(channel: int) -> int:
    """Centre frequency of a primary channel number (2.4 and 5 GHz bands); 0 when unknown."""
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    if channel == 14:
        return 2484
    if 32 <= channel <= 177:
        return 5000 + 5 * channel
    return 0
