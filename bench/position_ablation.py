"""What each realism switch of the simulator costs the trackers: the same SIMULATED training rooms
simulated with every switch on, with one switched off at a time, and with none, then replayed through the
trackers with the true person count (``tracker_replay``).

Printed per variant: the median position error of moving and still people beside the room-centre guess,
and how many readings each rests on. Training rooms (3-8 m, outside the held-out size band) of
``--setup``, ``--episodes`` moving and a quarter as many still ones: for finding where position is lost,
never for claims (those come from ``invispose eval sensing``, every switch on). About 5 s of simulation per
episode and variant on one core.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm
from tracker_replay import replay_data

from appliance.csi.simulator import Impairments
from appliance.pose.sensing.episodes import collect, episode
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood

VARIANTS: dict[str, Impairments] = {
    "every switch on": Impairments(),
    "no background drift": Impairments(background_drift=0.0),
    "no RSSI noise or node offsets": Impairments(rssi_noise_db=0.0, rssi_offset_db=0.0),
    "single-bounce body echoes": Impairments(body_bounces=False),
    "no AGC": Impairments(agc_power_driven=False, agc_step_db=0.0, agc_steps_per_minute=0.0),
    "none (ideal radio and room)": Impairments.none(),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--setup", default="esp32-1x6", help="an ESP32 setup (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=8, help="moving episodes (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=40.0, help="per episode (default: %(default)s)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS)
    )
    args = parser.parse_args()
    likelihood = LinkLikelihood.load()
    plan = [("moving", i) for i in range(args.episodes)] + [
        ("still", i) for i in range(max(1, args.episodes // 4))
    ]
    print(f"*** SIMULATED training rooms of {args.setup}, true count ***")
    for name in [v for v in args.variants.split(",") if v]:
        impairments = VARIANTS[name]
        errors: dict[str, list[float]] = {k: [] for k in ("moving", "moving centre", "still", "still centre")}
        for kind, index in tqdm(plan, desc=name, leave=False):
            ep = episode("train", args.setup, "moving" if kind == "moving" else "still", index, args.seconds)
            data = collect(ep, impairments)
            replay_data(data, RoomGeometry.from_room_spec(ep.room), likelihood, errors, index)
        print(
            f"{name:30} "
            + ", ".join(
                f"{state} {np.median(errors[state]):.2f} m "
                f"(centre {np.median(errors[f'{state} centre']):.2f}, {len(errors[state])} readings)"
                for state in ("moving", "still")
                if errors[state]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
