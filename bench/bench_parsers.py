"""Parse throughput of the Atheros log and of esp-csi lines, against csiread on the same bytes.

The Atheros capture is repeated to ~50 MB and written once to a temporary file. ``arrays`` compares like
with like: our bulk reader and csiread's ``Atheros.read`` each go from that file to header and CSI arrays
(ours reads it with ``np.fromfile``; csiread reads it in C). ``frames`` is the appliance's path, the stream
parser building one ``CsiFrame`` per record from bytes in memory; its ratio is against the same csiread
figure, so it shows what the per-record objects cost, not a like-for-like race. esp-csi lines are
generated. Each figure is the median of ``--runs`` timed runs after one untimed warm-up, the contenders'
runs interleaved so that a slow spell of the machine hits both. Ratios > 1 mean faster than csiread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from captures import CAPTURES

from appliance.csi.formats.atheros import AtherosStreamParser, read_atheros_batches
from appliance.csi.formats.esp_csv import iter_esp_csv

CAPTURE = CAPTURES / "atheros" / "ath_csi_1.dat"


def _median_s(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median seconds of each function, one run of each in turn per round."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def _esp_lines(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        data = ",".join(map(str, rng.integers(-40, 40, 128).tolist()))
        lines.append(
            f"CSI_DATA,{i},94:d9:b3:80:8c:81,-30,11,1,6,1,0,1,0,1,0,0,-93,0,13,2,{1000 * i},0,67,0,128,1,"
            f'"[{data}]"\n'
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capture", type=Path, default=CAPTURE, help="Atheros log to repeat")
    parser.add_argument("--megabytes", type=float, default=50.0, help="size of the repeated log")
    parser.add_argument("--lines", type=int, default=20000, help="esp-csi lines to generate")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median), at least 5")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5: a median of fewer runs is too noisy to compare")
    try:
        import csiread
    except ImportError:
        csiread = None
        print("csiread is not installed (pip install csiread): no ratios, only our throughput")
    rows: list[tuple[str, float, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.capture.is_file():
            one = args.capture.read_bytes()
            data = one * max(1, int(args.megabytes * 1e6 / len(one)))
            ath_path = Path(tmp) / "ath.dat"
            ath_path.write_bytes(data)
            mb = len(data) / 1e6
            n_records = sum(len(b.offsets) for b in read_atheros_batches(data))

            def arrays() -> None:
                read_atheros_batches(np.fromfile(ath_path, dtype=np.uint8))

            def frames() -> None:
                AtherosStreamParser().feed(data)

            contenders: list[Callable[[], object]] = [arrays, frames]
            if csiread is not None:

                def csiread_ath() -> None:
                    c = csiread.Atheros(str(ath_path), nrxnum=3, ntxnum=2, tones=56, if_report=False)
                    c.read(endian="little")

                contenders.append(csiread_ath)
            ours_arrays, ours_frames, *rest = _median_s(contenders, args.runs)
            theirs = rest[0] if rest else None
            rows.append((f"atheros {mb:.0f} MB, {n_records} records: arrays", mb, ours_arrays, theirs))
            rows.append((f"atheros {mb:.0f} MB, {n_records} records: frames", mb, ours_frames, theirs))
        else:
            print(f"Atheros capture not found at {args.capture}: skipped")
        lines = _esp_lines(args.lines)
        esp_path = Path(tmp) / "esp.csv"
        esp_path.write_text("".join(lines))
        mb = esp_path.stat().st_size / 1e6
        (ours,) = _median_s([lambda: sum(1 for _ in iter_esp_csv(lines))], args.runs)
        theirs = None
        if csiread is not None:

            def csiread_esp() -> None:
                csiread.ESP32(str(esp_path), if_report=False, csi_only=False).read()

            try:
                (theirs,) = _median_s([csiread_esp], args.runs)
            except ValueError as exc:
                print(f"csiread.ESP32 cannot read esp-csi lines with this numpy ({exc}): no esp ratio")
        rows.append((f"esp-csi {args.lines} lines: frames", mb, ours, theirs))
    print(f"{'case':<46} {'ours MB/s':>10} {'csiread MB/s':>13} {'ratio':>7}")
    for name, size, ours_s, theirs_s in rows:
        theirs_rate = f"{size / theirs_s:13.1f}" if theirs_s else f"{'n/a':>13}"
        ratio = f"{theirs_s / ours_s:7.2f}" if theirs_s else f"{'n/a':>7}"
        print(f"{name:<46} {size / ours_s:10.1f} {theirs_rate} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
