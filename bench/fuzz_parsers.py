"""Coverage-guided fuzzing of every parser with atheris, for long runs outside the test suite.

Each input goes to every parser (Atheros stream in two chunks, Intel 5300, esp-csi text, UDP datagram,
ESPectre ``.npz`` through a scratch file). Anything but ``CsiFormatError`` escaping a parser is a bug;
atheris reports it with the input that caused it. Example: ``python bench/fuzz_parsers.py --seconds 600``.

The runs start from ``bench/fuzz_seeds`` (the golden Atheros records of ``tests/golden_atheros.py``, with
noise floors >= 0x80 in both byte orders, and a small ESPectre recording) plus any corpus folders given;
what the fuzzer finds goes to a scratch folder, never into the seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from appliance.csi.formats.atheros import AtherosStreamParser
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import iter_esp_csv
from appliance.csi.formats.esp_udp import parse_datagram
from appliance.csi.formats.espectre_npz import read_espectre_npz
from appliance.csi.formats.intel5300 import iter_intel5300

SEEDS = Path(__file__).resolve().parent / "fuzz_seeds"
_SCRATCH_NPZ = Path(tempfile.mkdtemp(prefix="fuzz-npz-")) / "input.npz"


def one_input(data: bytes) -> None:
    """Run ``data`` through every parser; only ``CsiFormatError`` is an allowed failure."""
    parser = AtherosStreamParser()
    half = len(data) // 2
    parser.feed(data[:half])
    parser.feed(data[half:])
    parser.close()
    for _ in iter_intel5300(data):
        pass
    for _ in iter_esp_csv(data.decode("utf-8", errors="replace").splitlines()):
        pass
    with contextlib.suppress(CsiFormatError):
        parse_datagram(data)
    _SCRATCH_NPZ.write_bytes(data)
    with contextlib.suppress(CsiFormatError):
        read_espectre_npz(_SCRATCH_NPZ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz")
    parser.add_argument("corpus", nargs="*", help="more corpus folders to start from (the real captures)")
    args = parser.parse_args(argv)
    import atheris

    atheris.instrument_all()  # coverage feedback from the already-imported parsers
    found = tempfile.mkdtemp(prefix="fuzz-corpus-")  # libFuzzer writes new inputs to the first folder
    print(f"new inputs go to {found}", file=sys.stderr)
    # libFuzzer's own time limit ends the run cleanly; raising from the target would count as a crash.
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={args.seconds}", found, str(SEEDS), *args.corpus], one_input
    )
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
