"""Training data: simulated episodes through the serving path, one ``.npz`` per episode in a cache folder.

A file is named by what fixes its content (split, setup, kind, index, duration and the versions of the
cue features and of the episodes), so a cache never mixes data built differently, and any process can
rebuild any file from its name. Simulation runs in worker processes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np

from appliance.pose.sensing.episodes import EpisodeData, Kind, Split, collect, episode

# Bump when the cue features or the episodes change: cached files carry it in their names.
DATA_VERSION = 3


def episode_path(cache: Path, split: Split, setup: str, kind: str, index: int, duration_s: float) -> Path:
    return cache / f"v{DATA_VERSION}-{split}-{setup}-{kind}-{duration_s:g}s-{index:05d}.npz"


def _build(job: tuple[str, Split, str, str, int, float]) -> str:
    cache, split, setup, kind, index, duration_s = job
    path = episode_path(Path(cache), split, setup, kind, index, duration_s)
    if not path.exists():
        data = collect(episode(split, setup, cast(Kind, kind), index, duration_s))
        fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
        fields["links"] = np.asarray(fields["links"])
        partial = path.with_suffix(".partial.npz")
        np.savez_compressed(partial, **fields)
        partial.rename(path)
    return str(path)


def build_jobs(
    cache: Path, split: Split, jobs: Sequence[tuple[str, str, int, float]], workers: int
) -> list[Path]:
    """Every (setup, kind, index, seconds) episode, simulated where not cached yet, with a progress bar."""
    from tqdm import tqdm

    cache.mkdir(parents=True, exist_ok=True)
    work = [(str(cache), split, setup, kind, index, seconds) for setup, kind, index, seconds in jobs]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            paths = list(tqdm(pool.imap_unordered(_build, work), total=len(work), desc="episodes"))
    else:
        paths = [_build(job) for job in tqdm(work, desc="episodes")]
    return [Path(p) for p in paths]


def load(path: Path) -> EpisodeData:
    with np.load(path) as arrays:
        values = {name: arrays[name] for name in arrays.files}
    values["links"] = tuple(str(x) for x in values["links"])
    for name in ("seed",):
        values[name] = int(values[name])
    for name in ("setup", "kind"):
        values[name] = str(values[name])
    return EpisodeData(**values)
