"""The one place that talks to esptool: connect to a node's ROM bootloader, read, write and reset its flash.

Every flash operation goes through esptool's own Python API (``esptool.cmds``), which erases, compresses,
writes and then checks each region's MD5 against the flash. esptool reports progress through esp-pylib's
logger; ``TqdmLog`` is installed in its place, so reads and writes show tqdm bars (on stderr, leaving stdout
to ``--json``) and esptool's chatter goes to the ``firmware_tools.esptool`` logger (``-v`` shows it).

``connect_loader`` is the seam a test replaces: an ESP32 cannot run here, so the tests hand ``Device`` a
recording fake with the loader's methods, and esptool's real ``write_flash``/``read_flash`` drive it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Final

import serial
from esp_pylib.logger import EspLog, EspLogBase
from esptool.cmds import attach_flash, connect_esp, read_flash, reset_chip, run_stub, write_flash
from esptool.util import FatalError
from tqdm import tqdm

from firmware_tools.chips import esptool_name

log = logging.getLogger(__name__)
esptool_messages = logging.getLogger("firmware_tools.esptool")

ROM_BAUD: Final = 115200
DEFAULT_FLASH_BAUD: Final = 460800
PARTITION_TABLE_OFFSET: Final = 0x8000
PARTITION_TABLE_SIZE: Final = 0xC00


class DeviceError(RuntimeError):
    """Talking to the node failed; the message says what to try."""


class _TqdmTask:
    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def update(self, advance: int = 1, description: str | None = None) -> None:
        if description is not None:
            self._bar.set_description_str(description, refresh=False)
        self._bar.update(advance)


class TqdmLog(EspLogBase):
    """esptool's logger, redirected: progress to tqdm bars, messages to Python logging."""

    def print(self, *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(a) for a in args).strip()
        if text:
            esptool_messages.info("%s", text)

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        esptool_messages.error("%s", " ".join(str(a) for a in args))

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        esptool_messages.warning("%s", " ".join(str(a) for a in args))

    def note(self, *args: Any) -> None:
        esptool_messages.info("%s", " ".join(str(a) for a in args))

    def hint(self, *args: Any) -> None:
        esptool_messages.info("%s", " ".join(str(a) for a in args))

    def debug(self, *args: Any) -> None:
        esptool_messages.debug("%s", " ".join(str(a) for a in args))

    def set_verbosity(self, mode: int | str) -> None:
        """Verbosity is Python logging's level here."""

    def progress_bar(
        self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "", bar_length: int = 30
    ) -> None:
        """Unused: ``progress`` draws with tqdm instead."""

    @contextlib.contextmanager
    def progress(  # type: ignore[override]
        self,
        total: int,
        description: str = "",
        bar_length: int = 30,
        *,
        file: Any = None,
        disable: bool = False,
        unit: str | None = None,
    ) -> Iterator[_TqdmTask]:
        byte_units = unit == "B"
        with tqdm(
            total=total,
            desc=description or None,
            unit="B" if byte_units else "it",
            unit_scale=byte_units,
            unit_divisor=1024,
            disable=disable,
            leave=False,
        ) as bar:
            yield _TqdmTask(bar)


def connect_loader(port: str, chip: str, baud: int) -> Any:
    """A connected esptool loader running the flasher stub, with its SPI flash attached."""
    esp = connect_esp(port=port, chip=chip, initial_baud=ROM_BAUD)
    try:
        esp = run_stub(esp)
        if baud != ROM_BAUD:
            esp.change_baud(baud)
        attach_flash(esp)
    except BaseException:
        esp.__exit__(None, None, None)
        raise
    return esp


def _explain(exc: BaseException, port: str) -> DeviceError:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, serial.SerialException | OSError) and not isinstance(exc, FatalError):
        return DeviceError(
            f"cannot use serial port {port}: {text}. Is the board plugged in, is the port right "
            "('invispose-node ports' lists them), and is no other program (a serial monitor, the appliance) "
            "holding it? On Linux your user needs the 'dialout' group."
        )
    if "connect" in text.lower() or "timed out" in text.lower():
        return DeviceError(
            f"no answer from an ESP bootloader on {port}: {text}. Hold the board's BOOT button while "
            "pressing RESET (EN), then try again; a charge-only USB cable also looks like this."
        )
    return DeviceError(f"{port}: {text}")


class Device:
    """A node in its ROM bootloader (stub flasher running), while the ``with`` block lasts."""

    def __init__(self, esp: Any, port: str) -> None:
        self._esp = esp
        self.port = port

    @classmethod
    @contextlib.contextmanager
    def open(cls, port: str, *, chip: str = "auto", baud: int = DEFAULT_FLASH_BAUD) -> Iterator[Device]:
        EspLog.set_logger(TqdmLog())  # esptool logs through esp-pylib's singleton
        try:
            esp = connect_loader(port, chip, baud)
        except (FatalError, serial.SerialException, OSError) as exc:
            raise _explain(exc, port) from exc
        try:
            yield cls(esp, port)
        finally:
            with contextlib.suppress(Exception):
                esp.__exit__(None, None, None)

    @property
    def chip(self) -> str:
        """esptool's name of the connected chip (``esp32s3``)."""
        return esptool_name(str(self._esp.CHIP_NAME))

    @property
    def bootloader_offset(self) -> int:
        offset: int = self._esp.BOOTLOADER_FLASH_OFFSET
        return offset

    def read(self, offset: int, size: int) -> bytes:
        try:
            data: bytes = read_flash(self._esp, offset, size)
        except (FatalError, serial.SerialException, OSError) as exc:
            raise DeviceError(f"reading {size} bytes at {offset:#x} from {self.port} failed: {exc}") from exc
        return data

    def write(self, regions: list[tuple[int, bytes]]) -> None:
        """Write each ``(offset, data)``; esptool erases first and checks every region's MD5 afterwards."""
        try:
            write_flash(self._esp, list(regions))
        except (FatalError, serial.SerialException, OSError) as exc:
            raise DeviceError(
                f"writing to {self.port} failed: {exc}. The node may hold a half-written image: run the "
                "same command again (check the cable, or lower --baud)."
            ) from exc

    def reset(self) -> None:
        try:
            reset_chip(self._esp, "hard-reset")
        except (FatalError, serial.SerialException, OSError) as exc:
            raise DeviceError(
                f"resetting {self.port} failed ({exc}); press the board's RESET button"
            ) from exc
