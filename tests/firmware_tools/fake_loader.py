"""A recording stand-in for esptool's loader: an ESP32 cannot run here, so this fake plays the chip.

As esptool's own host tests do (they hand ``write_flash`` a mock loader), esptool's real ``read_flash``,
``write_flash`` and ``reset_chip`` run unchanged and call the loader methods below. The class inherits the
real chip class's constants (bootloader offset, image chip id, sector and block sizes) and keeps a 4 MiB
flash in memory: writes land in it (compressed blocks are inflated as the stub would), MD5 checks and reads
come from it, and every call is recorded so a test can check addresses and bytes.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
from typing import Any

from esptool.targets import CHIP_DEFS
from esptool.util import FatalError

FLASH_BYTES = 4 * 2**20


@dataclass
class Recorder:
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    writes: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes) as written to flash
    resets: int = 0


def fake_loader_class(chip: str) -> type:
    rom = CHIP_DEFS[chip]

    class FakeLoader(rom):  # type: ignore[misc, valid-type]
        IS_STUB = True
        secure_download_mode = False
        stub_is_disabled = False

        def __init__(self, flash: bytearray, recorder: Recorder, fail_at_block: int | None = None) -> None:
            # The real __init__ opens a serial port; nothing here has one.
            self.flash = flash
            self.recorder = recorder
            self.fail_at_block = fail_at_block
            self._write: dict[str, Any] = {}
            self.blocks_written = 0

        def _record(self, name: str, *args: Any) -> None:
            self.recorder.calls.append((name, args))

        # -- what esptool asks about the chip
        def get_secure_boot_enabled(self) -> bool:
            return False

        def get_secure_boot_v1_enabled(self) -> bool:
            return False

        def command(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"the fake loader does not emulate raw command {args[:1]}")

        def get_flash_encryption_enabled(self) -> bool:
            return False

        def get_encrypted_download_disabled(self) -> bool:
            return False

        def get_chip_revision(self) -> int:
            return 0

        def get_major_chip_version(self) -> int:
            return 0

        def get_minor_chip_version(self) -> int:
            return 0

        def flash_id(self, cache: bool = True) -> int:
            return 0x1640EF  # Winbond, 2**0x16 bytes = 4 MiB

        def read_spiflash_sfdp(self, addr: int, read_bits: int) -> int:
            return 0

        def run_spiflash_command(self, *args: Any, **kwargs: Any) -> int:
            return 0

        def flash_set_parameters(self, size: int) -> None:
            self._record("flash_set_parameters", size)

        def trace(self, message: str) -> None:
            pass

        # -- flash
        def _begin(self, offset: int, size: int, compressed: bool) -> None:
            self._write = {"offset": offset, "size": size, "data": bytearray(), "inflate": None}
            if compressed:
                self._write["inflate"] = zlib.decompressobj()
            self.flash[offset : offset + size] = b"\xff" * size  # the stub erases before writing

        def flash_begin(self, size: int, offset: int, begin_rom_encrypted: bool = False, **_: Any) -> int:
            self._record("flash_begin", size, offset)
            self._begin(offset, size, compressed=False)
            return 1

        def flash_defl_begin(self, size: int, compsize: int, offset: int, **_: Any) -> int:
            self._record("flash_defl_begin", size, compsize, offset)
            self._begin(offset, size, compressed=True)
            return 1

        def _block(self, data: bytes) -> None:
            self.blocks_written += 1
            if self.fail_at_block is not None and self.blocks_written >= self.fail_at_block:
                raise FatalError("Failed to write to target RAM (result was 01070000: Operation timed out)")
            inflate = self._write["inflate"]
            chunk = inflate.decompress(data) if inflate is not None else data
            start = self._write["offset"] + len(self._write["data"])
            self._write["data"] += chunk
            self.flash[start : start + len(chunk)] = chunk

        def flash_block(self, data: bytes, seq: int, timeout: float = 0, **_: Any) -> None:
            self._record("flash_block", seq, len(data))
            self._block(data)

        def flash_defl_block(self, data: bytes, seq: int, timeout: float = 0, **_: Any) -> None:
            self._record("flash_defl_block", seq, len(data))
            self._block(data)

        def _finish(self) -> None:
            if self._write:
                self.recorder.writes.append((self._write["offset"], bytes(self._write["data"])))
                self._write = {}

        def flash_finish(self, reboot: bool = False, **_: Any) -> None:
            self._finish()

        def flash_defl_finish(self, reboot: bool = False, **_: Any) -> None:
            self._finish()

        def flash_md5sum(self, addr: int, size: int) -> str:
            self._finish()
            return hashlib.md5(self.flash[addr : addr + size]).hexdigest()

        def read_flash(self, offset: int, length: int, progress_fn: Any = None) -> bytes:
            self._record("read_flash", offset, length)
            if progress_fn is not None:
                progress_fn(length, length, offset)
            return bytes(self.flash[offset : offset + length])

        def hard_reset(self, uses_usb: bool = False) -> None:
            self._record("hard_reset")
            self.recorder.resets += 1

        def __exit__(self, *exc: Any) -> None:
            self._record("close")

    return FakeLoader


def blank_flash() -> bytearray:
    return bytearray(b"\xff" * FLASH_BYTES)
