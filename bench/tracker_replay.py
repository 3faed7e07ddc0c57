"""The trackers alone, replayed over the SIMULATED training episodes' cues: a quick bench for the tracker
and the likelihood (seconds, not the minutes a simulation takes).

Every moving and still training episode of ``--setup`` in the cache runs through ``MultiTracker`` with the
true person count (so the count model's mistakes are left out), and the shipped likelihood. Printed: the
median position error of moving (faster than 0.2 m/s) and still people, beside the room-centre guess for
the same people, and how many readings each rests on. ``--temperature`` replaces the tracker's likelihood
temperature. These are training rooms (3-8 m, outside the held-out size band): for tuning only; claims
come from ``invispose eval sensing``. Multi-antenna links' angle term needs the live cues and is left
out, so this is for ESP32 setups. ``--terms`` keeps only some of the likelihood's terms (what each
alone gives the trackers). Needs the cache: ``python -m appliance.pose.training data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from appliance.pose.sensing import tracker
from appliance.pose.sensing.cues import RoomCues
from appliance.pose.sensing.episodes import EpisodeData, Kind, episode
from appliance.pose.sensing.evaluation import MOVING_M_S
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.training.data import load

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
_NAME = re.compile(r"-train-(.+)-(moving|still)-([\d.]+)s-(\d+)\.npz$")


TERMS = ("shadow", "echo", "doppler")


@dataclass(frozen=True)
class SomeTerms(LinkLikelihood):
    """The likelihood with only ``kept`` of its terms."""

    kept: tuple[str, ...] = TERMS

    def score(self, cue_vectors: F32, state_features: F32) -> F64:
        terms = dict(zip(TERMS, self.terms(cue_vectors, state_features), strict=True))
        total: F64 = sum((terms[name] for name in self.kept), np.zeros(state_features.shape[0]))
        return total


def replay(path: Path, likelihood: LinkLikelihood, errors: dict[str, list[float]]) -> None:
    match = _NAME.search(path.name)
    assert match is not None
    setup, kind, seconds, index = match.group(1), match.group(2), float(match.group(3)), int(match.group(4))
    kind_name: Kind = "moving" if kind == "moving" else "still"
    geometry = RoomGeometry.from_room_spec(episode("train", setup, kind_name, index, seconds).room)
    replay_data(load(path), geometry, likelihood, errors, index)


def replay_data(
    data: EpisodeData,
    geometry: RoomGeometry,
    likelihood: LinkLikelihood,
    errors: dict[str, list[float]],
    index: int,
) -> None:
    """The trackers over one episode's cues with the true count; each person's error into ``errors``
    under "moving" or "still", and the room centre's under "moving centre" and "still centre"."""
    trackers = tracker.MultiTracker(geometry, likelihood, seed=index)
    centre = geometry.centre
    for i, t in enumerate(data.times):
        ready = ~np.isnan(data.cues[i, :, 0])
        links = tuple(link for link, ok in zip(data.links, ready, strict=True) if ok)
        count = int(data.count[i])
        estimates = trackers.update(RoomCues(float(t), links, data.cues[i, ready], ()), count)
        if not count:
            continue
        truth = data.positions[i, :count]
        guesses = np.array([e.position for e in estimates])
        cost = np.linalg.norm(truth[:, None] - guesses[None], axis=2)
        for person, estimate in zip(*linear_sum_assignment(cost), strict=True):
            state = "moving" if np.linalg.norm(data.velocities[i, person]) > MOVING_M_S else "still"
            errors[state].append(float(cost[person, estimate]))
            errors[f"{state} centre"].append(float(np.linalg.norm(truth[person] - centre)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--setup", default="esp32-1x6", help="an ESP32 setup (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/sensing-training-cache"))
    parser.add_argument(
        "--temperature",
        type=float,
        default=tracker.LIKELIHOOD_TEMPERATURE,
        help="the trackers' likelihood temperature (default: the shipped %(default)s)",
    )
    parser.add_argument(
        "--terms", default=",".join(TERMS), help="likelihood terms to keep (default: %(default)s)"
    )
    args = parser.parse_args()
    paths = sorted(p for p in args.cache_dir.glob(f"*-train-{args.setup}-*.npz") if _NAME.search(p.name))
    if not paths:
        print(
            f"error: no {args.setup} training episodes in {args.cache_dir}; run: "
            "python -m appliance.pose.training data",
            file=sys.stderr,
        )
        return 1
    tracker.LIKELIHOOD_TEMPERATURE = args.temperature
    shipped = LinkLikelihood.load()
    kept = tuple(t for t in args.terms.split(",") if t)
    if set(kept) - set(TERMS):
        print(f"error: unknown terms in {args.terms!r}; known: {', '.join(TERMS)}", file=sys.stderr)
        return 2
    likelihood = SomeTerms(**{**dataclasses.asdict(shipped), "provenance": shipped.provenance}, kept=kept)
    errors: dict[str, list[float]] = {k: [] for k in ("moving", "moving centre", "still", "still centre")}
    for path in tqdm(paths, desc="replaying episodes"):
        replay(path, likelihood, errors)
    print(
        f"*** SIMULATED training rooms, true count, temperature {args.temperature:g}, "
        f"terms {','.join(kept)} ***"
    )
    print(f"{args.setup}: {len(paths)} episodes")
    for state in ("moving", "still"):
        print(
            f"  {state:6} median {np.median(errors[state]):.3f} m, room centre "
            f"{np.median(errors[f'{state} centre']):.3f} m ({len(errors[state])} readings)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
