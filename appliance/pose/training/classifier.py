"""Training the count/activity classifier (``appliance.pose.sensing.classifier``) and its int8 export.

Windows come from the stored episodes' ticks exactly as ``CueHistory`` builds them live: ``STEPS``
readings ``STEP_S`` apart, each link's cue vector with its length and kind, a link missing at a step
repeating its nearest reading. Labels are the truth at the window's last tick: the person count (capped
at ``MAX_COUNT``) and the room's activity (``room_activity``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.sensing.classifier import (
    LENGTH_SCALE_M,
    LINK_INPUTS,
    MAX_COUNT,
    MAX_LINKS,
    STEP_S,
    STEPS,
    room_activity,
)
from appliance.pose.sensing.episodes import TICK_S, EpisodeData

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

STRIDE = round(STEP_S / TICK_S)
# Windows start every this many ticks: neighbours overlap almost wholly, so more would add memory, not data.
WINDOW_EVERY = 3
EMBED = 32


def _filled(cues: F32) -> F32:
    """Per link, NaN ticks take the nearest earlier reading, leading NaNs the first one."""
    out = cues.copy()
    for link in range(out.shape[1]):
        column = out[:, link]
        valid = ~np.isnan(column[:, 0])
        if not valid.any():
            continue
        index = np.where(valid, np.arange(len(column)), -1)
        index = np.maximum.accumulate(index)
        index[index < 0] = int(np.argmax(valid))
        out[:, link] = column[index]
    return out


def windows(data: EpisodeData) -> tuple[F32, F32, I64, I64]:
    """Every window of an episode whose last tick has a ready link: inputs, masks, counts, activities."""
    cues = _filled(data.cues)
    length = np.linalg.norm(data.tx - data.rx, axis=1)[:MAX_LINKS] / LENGTH_SCALE_M
    n_links = min(len(data.links), MAX_LINKS)
    atheros = float(data.setup.startswith("atheros"))
    span = (STEPS - 1) * STRIDE
    xs, masks, counts, activities = [], [], [], []
    for end in range(span, len(data.times), WINDOW_EVERY):
        ready = ~np.isnan(data.cues[end, :n_links, 0])
        if not ready.any():
            continue
        steps = cues[end - span : end + 1 : STRIDE, :n_links]
        x = np.zeros((STEPS, MAX_LINKS, LINK_INPUTS), np.float32)
        x[:, :n_links, : steps.shape[2]] = np.nan_to_num(steps)
        x[:, :n_links, -2] = length
        x[:, :n_links, -1] = atheros
        mask = np.zeros(MAX_LINKS, np.float32)
        mask[:n_links] = ready
        x[:, ~mask.astype(bool)] = 0.0
        present = [int(a) for a in data.activities[end] if a >= 0]
        xs.append(x)
        masks.append(mask)
        counts.append(min(int(data.count[end]), MAX_COUNT))
        activities.append(room_activity(present))
    return (
        np.asarray(xs, np.float32).reshape(-1, STEPS, MAX_LINKS, LINK_INPUTS),
        np.asarray(masks, np.float32).reshape(-1, MAX_LINKS),
        np.asarray(counts, np.int64),
        np.asarray(activities, np.int64),
    )


def dataset(episodes: Sequence[EpisodeData]) -> tuple[F32, F32, I64, I64]:
    parts = [windows(e) for e in episodes]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
    )


def build_model(batch_size: int | None = None) -> Any:
    import keras

    cues = keras.Input((STEPS, MAX_LINKS, LINK_INPUTS), batch_size=batch_size, name="cues")
    mask = keras.Input((MAX_LINKS,), batch_size=batch_size, name="mask")
    x = keras.layers.Dense(EMBED, activation="relu")(cues)
    x = keras.layers.Dense(EMBED, activation="relu")(x)
    weight = keras.ops.reshape(mask, (-1, 1, MAX_LINKS, 1))
    count = keras.ops.maximum(keras.ops.sum(weight, axis=2), 1.0)
    mean = keras.ops.sum(x * weight, axis=2) / count
    # ReLU outputs are >= 0, so zeroing masked links leaves the max of the others.
    peak = keras.ops.max(x * weight, axis=2)
    x = keras.ops.concatenate([mean, peak], axis=-1)  # (B, STEPS, 2 EMBED)
    x = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(x)
    x = keras.ops.concatenate([keras.ops.mean(x, axis=1), x[:, -1]], axis=-1)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    count_out = keras.layers.Dense(MAX_COUNT + 1, activation="softmax", name="count")(x)
    activity_out = keras.layers.Dense(len(ACTIVITIES), activation="softmax", name="activity")(x)
    return keras.Model([cues, mask], [count_out, activity_out])


def fit(
    train: tuple[F32, F32, I64, I64],
    validation: tuple[F32, F32, I64, I64],
    *,
    epochs: int,
    seed: int,
    falling_weight: float,
) -> tuple[Any, dict[str, Any]]:
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=["sparse_categorical_crossentropy", "sparse_categorical_crossentropy"],
        metrics=[["accuracy"], ["accuracy"]],
    )
    x, mask, count, activity = train
    weights = np.where(activity == ACTIVITIES.index("falling"), falling_weight, 1.0)
    best = keras.callbacks.ModelCheckpoint(
        "/tmp/invispose-classifier-best.keras", monitor="val_loss", save_best_only=True
    )
    history = model.fit(
        [x, mask],
        [count, activity],
        sample_weight=[np.ones_like(weights), weights],
        validation_data=([validation[0], validation[1]], [validation[2], validation[3]]),
        epochs=epochs,
        batch_size=256,
        verbose=2,
        callbacks=[best],
    )
    model = keras.models.load_model("/tmp/invispose-classifier-best.keras")
    return model, {k: [round(float(v), 4) for v in vs] for k, vs in history.history.items()}


def representative(x: F32, mask: F32, count: int, seed: int) -> Iterator[list[F32]]:
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(x), size=min(count, len(x)), replace=False):
        yield [x[i : i + 1], mask[i : i + 1]]


def export(model: Any, x: F32, mask: F32, path: Path, seed: int) -> None:
    """int8 TFLite of ``model`` (rebuilt with batch 1, so no dynamic-shape ops), calibrated on ``x``."""
    import tensorflow as tf

    fixed = build_model(batch_size=1)
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative(x, mask, 500, seed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
