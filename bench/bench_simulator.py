"""How much faster than real time the room simulator runs on one core.

Simulates the demo scenario of the default room (6 ESP32 links at 100 packets/s, impairments on) in the
0.1 s chunks the live source uses, and a one-link room as the baseline, and prints the median wall time per
simulated second and the real-time factor.
"""

from __future__ import annotations

import os

# One core, as on the edge box: pin the BLAS/OpenMP pools before numpy is imported.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from appliance.csi.simulator import RoomSimulator, RoomSpec, Scenario, default_room  # noqa: E402
from appliance.csi.sources.simulated import CHUNK_S  # noqa: E402

PACKET_RATE_HZ = 100.0
SEED = 0
# Start well into the demo loop, when people are in the room (an empty room is the cheap case).
WARM_UP_S = 60.0


def wall_seconds_per_simulated_second(room: RoomSpec, seconds: float) -> float:
    simulator = RoomSimulator(room, Scenario.demo(room, seed=SEED), seed=SEED, packet_rate_hz=PACKET_RATE_HZ)
    simulator.advance(WARM_UP_S)
    chunks = round(seconds / CHUNK_S)
    started = time.perf_counter()
    for _ in range(chunks):
        simulator.advance(CHUNK_S)
    return (time.perf_counter() - started) / (chunks * CHUNK_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per run (default 20)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per case; the median is reported (default 5)"
    )
    args = parser.parse_args()

    six_links = default_room()
    one_link = dataclasses.replace(six_links, nodes=six_links.nodes[:2])
    results = {}
    for label, room in (("6 links", six_links), ("1 link", one_link)):
        runs = [wall_seconds_per_simulated_second(room, args.seconds) for _ in range(args.repeats)]
        per_second = results[label] = statistics.median(runs)
        print(
            f"{label} at {PACKET_RATE_HZ:g} pkt/s, median of {args.repeats} runs of {args.seconds:g} s: "
            f"{per_second * 1e3:.1f} ms wall per simulated second, real-time factor {1 / per_second:.0f}x"
        )
    print(f"6 links cost {results['6 links'] / results['1 link']:.1f}x one link")


if __name__ == "__main__":
    main()
