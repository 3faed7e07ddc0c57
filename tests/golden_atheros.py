"""Atheros CSI Tool records written out byte by byte from the tool's own definition, not from our encoder.

The layout is the one ``../shared/captures/README.md`` states for the real capture (its "Atheros" facts),
checked here against the tool's source (xieyaxiongfly/Atheros-CSI-Tool, the ath9k driver, and
xieyaxiongfly/Atheros-CSI-Tool-UserSpace-APP, ``recv_csi``):

- ``recv_csi`` (``recvCSI/main.c``) logs each read of ``/dev/CSI_dev`` as ``fwrite(&buf_len, 1, 2, fp)``
  then ``fwrite(buf_addr, 1, buf_len, fp)``: a host-order u16 length, then that many bytes.
- The driver (``ar9003_csi.c``, ``csi_read``) fills those bytes with the first 23 bytes of
  ``struct csi_pkt_status`` (``ar9003_csi.h``: u64 tstamp, u16 csi_len, u16 channel, u8 phyerr, noise,
  rate, ChanBW, num_tones, nr, nc, rssi, rssi_ctl0..2), the u16 payload_len, the CSI, then the payload.
  ``recvCSI/csi_fun.c`` (``record_status``) reads them back at the same offsets: noise is byte 13.
- CSI values (``csi_fun.c``, ``fill_csi_matrix``): 10-bit two's complement, imaginary then real, taken
  LSB-first from little-endian 16-bit words, looping tone, then tx, then rx fastest.
- The 802.11 header at the start of the payload is the frame as received (little-endian on every host):
  addr2 at bytes 10..15, sequence control at 22..23 (sequence number in its upper 12 bits).

The stock driver writes ``noise = 0`` ("to be updated"); a driver that reports the floor writes it as the
byte of a negative dBm value, -95 dBm being 0xA1. Absent receive chains report ath9k's "bad RSSI", -128
(0x80). Both are bytes >= 0x80, which the records below carry on purpose.

Each record is one receive chain and one transmit stream (nr = nc = 1) at 20 MHz: 56 tones, so
csi_len = 56 x 20 bits = 140 bytes. Its CSI holds two non-zero tones, worked out by hand:
tone 0 is imag +1 (0x001), real -1 (0x3FF): bits 0..19 = 0x001 | 0x3FF << 10 = 0xFFC01, bytes 01 FC 0F;
tone 1 is imag -512 (0x200), real +511 (0x1FF): bits 20..39 = 0x200 | 0x1FF << 10 = 0x7FE00, so byte 2's
upper nibble is 0 and bytes 3, 4 are E0 7F. Every other tone is zero.
"""

from __future__ import annotations

CSI_LEN = 140
PAYLOAD_LEN = 24
CSI_BYTES = bytes.fromhex("01FC0FE07F") + bytes(CSI_LEN - 5)
# The 802.11 header of a data frame, as received.
MAC_HEADER = bytes.fromhex(
    "0801"  # frame control: data, to the AP
    "0000"  # duration
    "001122334455"  # addr1: receiver
    "66778899AABB"  # addr2: transmitter
    "001122334455"  # addr3: BSSID
    "C0AB"  # sequence control: sequence 0xABC, fragment 0
)

# Little-endian router (x86, ARM), noise floor -95 dBm.
NOISE_A1_LITTLE_ENDIAN = (
    bytes.fromhex(
        "BD00"  # buf_len: 25 + 140 + 24 = 189
        "40420F0000000000"  # tstamp: 1_000_000 us
        "8C00"  # csi_len: 140
        "8509"  # channel: 2437 MHz
        "00"  # phyerr
        "A1"  # noise: -95 dBm
        "8F"  # rate
        "00"  # ChanBW: 20 MHz
        "38"  # num_tones: 56
        "01"  # nr
        "01"  # nc
        "28"  # rssi: 40 dB above the floor
        "28"  # rssi_ctl0: 40
        "80"  # rssi_ctl1: -128, no such chain
        "80"  # rssi_ctl2: -128, no such chain
        "1800"  # payload_len: 24
    )
    + CSI_BYTES
    + MAC_HEADER
)

# Big-endian router (OpenWrt on MIPS), noise floor -100 dBm: the same fields in the writer's byte order;
# the CSI bit-stream and the 802.11 header are the same bytes on every host.
NOISE_9C_BIG_ENDIAN = (
    bytes.fromhex(
        "00BD"  # buf_len: 189
        "00000000000F4240"  # tstamp: 1_000_000 us
        "008C"  # csi_len: 140
        "0985"  # channel: 2437 MHz
        "00"  # phyerr
        "9C"  # noise: -100 dBm
        "8F"  # rate
        "00"  # ChanBW: 20 MHz
        "38"  # num_tones: 56
        "01"  # nr
        "01"  # nc
        "28"  # rssi: 40 dB above the floor
        "28"  # rssi_ctl0
        "80"  # rssi_ctl1
        "80"  # rssi_ctl2
        "0018"  # payload_len: 24
    )
    + CSI_BYTES
    + MAC_HEADER
)

# What each record says, as the definition above reads it.
TIMESTAMP_US = 1_000_000
CHANNEL_MHZ = 2437
RSSI_ABOVE_FLOOR_DB = 40
SEQUENCE = 0xABC
TRANSMITTER_MAC = "66:77:88:99:aa:bb"
TONE_0 = complex(-1, 1)
TONE_1 = complex(511, -512)
NOISE_DBM = {NOISE_A1_LITTLE_ENDIAN: -95.0, NOISE_9C_BIG_ENDIAN: -100.0}
