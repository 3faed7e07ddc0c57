"""Labelled training windows from simulated episodes, generated in parallel and cached as .npz.

Each episode (``appliance.pose.evaluation.episode``: a random room, node layout, bodies, motions, SNR and
impairments) runs through ``simulated_windows``, the same serving path the evaluation uses. Arrays per
window: ``csi`` [40, 318] float16, ``geometry`` [51], ``present`` [3], ``keypoints`` [3, 17, 3] metres,
``activity`` [3] (``empty`` for absent slots), ``room`` [3] metres and ``episode`` (its index, so that
validation can hold out whole episodes). Persons fill slots in id order; training matches slots to
persons without regard to order (see ``train``).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from appliance.contracts.coco import N_KEYPOINTS
from appliance.pose.evaluation import EMPTY, EPISODES_VERSION, MAX_PERSONS, Split, episode, simulated_windows
from appliance.pose.features import FEATURES_VERSION

Arrays = dict[str, npt.NDArray[np.generic]]
ARRAY_KEYS = ("csi", "geometry", "present", "keypoints", "activity", "room", "episode")


def episode_arrays(split: Split, index: int, duration_s: float) -> Arrays:
    """Every window of one episode as stacked arrays."""
    csi, geometry, present, keypoints, activity, room = [], [], [], [], [], []
    for window in simulated_windows(episode(split, index, duration_s)):
        n = min(len(window.person_ids), MAX_PERSONS)
        slot_present = np.zeros(MAX_PERSONS, bool)
        slot_present[:n] = True
        slot_keypoints = np.zeros((MAX_PERSONS, N_KEYPOINTS, 3), np.float32)
        slot_keypoints[:n] = window.keypoints[:n]
        slot_activity = np.full(MAX_PERSONS, EMPTY, np.int8)
        slot_activity[:n] = window.activities[:n]
        csi.append(window.inputs.csi.astype(np.float16))
        geometry.append(window.inputs.geometry)
        present.append(slot_present)
        keypoints.append(slot_keypoints)
        activity.append(slot_activity)
        room.append(np.asarray(window.inputs.room_size_m, np.float32))
    count = len(csi)
    return {
        "csi": np.stack(csi),
        "geometry": np.stack(geometry),
        "present": np.stack(present),
        "keypoints": np.stack(keypoints),
        "activity": np.stack(activity),
        "room": np.stack(room),
        "episode": np.full(count, index, np.int32),
    }


def _job(args: tuple[Split, int, float]) -> Arrays:
    return episode_arrays(*args)


BLOCK_EPISODES = 50


def cache_path(cache_dir: Path, split: Split, first: int, duration_s: float) -> Path:
    """The cache file of the block of ``BLOCK_EPISODES`` episodes starting at ``first``. The name carries
    ``features.FEATURES_VERSION`` and ``evaluation.EPISODES_VERSION``, so a cache built by other window or
    episode code is never used (bump them when changing what a window holds or how episodes are drawn)."""
    tag = f"f{FEATURES_VERSION}e{EPISODES_VERSION}"
    return cache_dir / f"{split}_{first}_{BLOCK_EPISODES}_{duration_s:g}s_{tag}.npz"


def generate(split: Split, count: int, duration_s: float, cache_dir: Path, workers: int = 2) -> Arrays:
    """Episodes ``0 .. count - 1`` of a split (rounded up to whole blocks), cached per block so that a
    larger request reuses what a smaller one simulated."""
    blocks = list(range(0, count, BLOCK_EPISODES))
    missing = [b for b in blocks if not cache_path(cache_dir, split, b, duration_s).is_file()]
    if missing:
        jobs = [(split, i, duration_s) for b in missing for i in range(b, b + BLOCK_EPISODES)]
        parts: dict[int, list[Arrays]] = {b: [] for b in missing}
        cache_dir.mkdir(parents=True, exist_ok=True)
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            progress = tqdm(total=len(jobs), desc=f"simulating {split} episodes", unit="ep")
            for (_, index, _), part in zip(jobs, pool.imap(_job, jobs, chunksize=1), strict=True):
                progress.update()
                block = index - index % BLOCK_EPISODES
                parts[block].append(part)
                if len(parts[block]) == BLOCK_EPISODES:
                    _save(cache_path(cache_dir, split, block, duration_s), _concat(parts.pop(block)))
            progress.close()
    loaded = []
    for b in blocks:
        with np.load(cache_path(cache_dir, split, b, duration_s)) as data:
            loaded.append({key: data[key] for key in ARRAY_KEYS})
    return _concat(loaded)


def _concat(parts: list[Arrays]) -> Arrays:
    return {key: np.concatenate([p[key] for p in parts]) for key in ARRAY_KEYS}


def _save(path: Path, arrays: Arrays) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
