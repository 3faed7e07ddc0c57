"""Fitting the pose network: permutation-invariant slot matching, masked keypoint loss, activity CE.

Slots have no order: for each window the loss is evaluated for all 3! assignments of ground-truth slots
(persons and empty slots) to output slots and the cheapest one is trained (permutation-invariant
training). Per assignment and slot:

- presence: binary cross-entropy;
- centre: Huber (0.1 m) on the pelvis error in metres (room fractions times the room's size), present
  slots only;
- keypoints: Huber (0.1 m) on the composed keypoints (centre + offsets) in metres, present slots only;
- confidence: MSE towards exp(-(error / 0.1 m)^2) of each joint (the error is not back-propagated);
- activity: cross-entropy, for empty slots towards ``empty`` with a lower weight.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from appliance.contracts.coco import KEYPOINT_INDEX
from appliance.pose.evaluation import FALLING, MAX_PERSONS
from appliance.pose.features import link_maps
from appliance.pose.training.model import build_model

Arrays = dict[str, npt.NDArray[np.generic]]
HIPS = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])
PERMUTATIONS = np.array(list(itertools.permutations(range(MAX_PERSONS))), np.int32)
HUBER_M = 0.1
CONFIDENCE_SCALE_M = 0.1
WEIGHTS = {"presence": 1.0, "centre": 4.0, "keypoints": 4.0, "confidence": 0.5, "activity": 0.5}
EMPTY_ACTIVITY_WEIGHT = 0.2
# Augmentation: Gaussian noise on the features (fraction of their -1..1 range).
FEATURE_NOISE = 0.01


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 4e-3
    seed: int = 20260101
    validation_episodes: float = 0.1
    # Weight of "falling" in the activity loss (falls are ~3 % of person-windows); the shipped v1 used 1.
    falling_weight: float = 1.0


def targets(arrays: Arrays) -> dict[str, npt.NDArray[np.float32]]:
    """Per-window training targets derived from the dataset arrays."""
    keypoints = arrays["keypoints"].astype(np.float32)
    room = arrays["room"].astype(np.float32)
    pelvis = keypoints[:, :, list(HIPS)].mean(axis=2)
    return {
        "present": arrays["present"].astype(np.float32),
        "centre": np.clip(pelvis / room[:, None, :], 0.0, 1.0),
        "offsets": keypoints - pelvis[:, :, None, :],
        "activity": arrays["activity"].astype(np.int32),
        "room": room,
    }


def _huber(error: tf.Tensor) -> tf.Tensor:
    a = tf.abs(error)
    return tf.where(a < HUBER_M, 0.5 * a * a / HUBER_M, a - 0.5 * HUBER_M)


def pit_loss(
    outputs: list[tf.Tensor], truth: dict[str, tf.Tensor], falling_weight: float = 1.0
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The loss of the cheapest slot assignment per window, averaged; also its parts for the log.
    ``falling_weight`` scales the activity loss of persons who are falling."""
    presence, centre, offsets, confidence, activity = outputs
    room = truth["room"][:, None, :]  # [B, 1, 3]
    pred_kp = centre[:, :, None, :] * room[:, :, None, :] + offsets  # [B, S, 17, 3]
    parts_per_perm = []
    for perm in PERMUTATIONS:
        t_present = tf.gather(truth["present"], perm, axis=1)
        t_centre = tf.gather(truth["centre"], perm, axis=1)
        t_offsets = tf.gather(truth["offsets"], perm, axis=1)
        t_activity = tf.gather(truth["activity"], perm, axis=1)
        t_kp = t_centre[:, :, None, :] * room[:, :, None, :] + t_offsets
        centre_err = tf.reduce_sum(_huber((centre - t_centre) * room), axis=-1)
        joint_err = tf.norm(pred_kp - t_kp + 1e-9, axis=-1)  # [B, S, 17]
        kp_loss = tf.reduce_mean(tf.reduce_sum(_huber(pred_kp - t_kp), axis=-1), axis=-1)
        conf_target = tf.stop_gradient(tf.exp(-tf.square(joint_err / CONFIDENCE_SCALE_M)))
        conf_loss = tf.reduce_mean(tf.square(confidence - conf_target), axis=-1)
        presence_loss = keras.losses.binary_crossentropy(t_present[..., None], presence[..., None])
        act_ce = keras.losses.sparse_categorical_crossentropy(t_activity, activity)
        act_weight = t_present + (1.0 - t_present) * EMPTY_ACTIVITY_WEIGHT
        act_weight = act_weight * tf.where(t_activity == FALLING, falling_weight, 1.0)
        parts = {
            "presence": tf.reduce_sum(presence_loss, axis=1),
            "centre": tf.reduce_sum(t_present * centre_err, axis=1),
            "keypoints": tf.reduce_sum(t_present * kp_loss, axis=1),
            "confidence": tf.reduce_sum(t_present * conf_loss, axis=1),
            "activity": tf.reduce_sum(act_weight * act_ce, axis=1),
        }
        parts_per_perm.append(parts)
    totals = tf.stack([sum(WEIGHTS[k] * p[k] for k in WEIGHTS) for p in parts_per_perm], axis=1)  # [B, P]
    best = tf.argmin(totals, axis=1)
    loss = tf.reduce_mean(tf.reduce_min(totals, axis=1))
    log = {
        k: tf.reduce_mean(
            tf.gather(tf.stack([p[k] for p in parts_per_perm], axis=1), best, axis=1, batch_dims=1)
        )
        for k in WEIGHTS
    }
    return loss, log


def split_episodes(arrays: Arrays, fraction: float, seed: int) -> tuple[npt.NDArray[np.intp], ...]:
    """Window indices for training and validation, whole episodes on either side."""
    episodes = np.unique(arrays["episode"])
    rng = np.random.default_rng(seed)
    held = rng.choice(episodes, size=max(1, round(fraction * episodes.size)), replace=False)
    is_val = np.isin(arrays["episode"], held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def fit(arrays: Arrays, settings: TrainSettings) -> keras.Model:
    """Train a fresh model on ``arrays``; prints one line per epoch (losses and validation centre error)."""
    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = build_model()
    train_idx, val_idx = split_episodes(arrays, settings.validation_episodes, settings.seed)
    truth = targets(arrays)
    csi = arrays["csi"].astype(np.float32)
    geometry = arrays["geometry"].astype(np.float32)
    maps = link_maps(geometry)
    steps = max(1, train_idx.size // settings.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, settings.epochs * steps)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay)
    print(
        f"model: {model.count_params()} parameters; "
        f"{train_idx.size} training windows, {val_idx.size} validation"
    )

    @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]
    def train_step(
        x_csi: tf.Tensor, x_geo: tf.Tensor, x_maps: tf.Tensor, t: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss, log = pit_loss(model([x_csi, x_geo, x_maps], training=True), t, settings.falling_weight)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return {"loss": loss, **log}

    @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]
    def eval_step(
        x_csi: tf.Tensor, x_geo: tf.Tensor, x_maps: tf.Tensor, t: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        loss, log = pit_loss(model([x_csi, x_geo, x_maps], training=False), t, settings.falling_weight)
        return {"loss": loss, **log}

    def batch(
        idx: npt.NDArray[np.intp], noise: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        x = csi[idx]
        if noise:
            x = np.clip(x + rng.normal(0, FEATURE_NOISE, x.shape).astype(np.float32), -1, 1)
        return (
            tf.constant(x),
            tf.constant(geometry[idx]),
            tf.constant(maps[idx]),
            {k: tf.constant(v[idx]) for k, v in truth.items()},
        )

    best_loss, best_weights, best_epoch = float("inf"), model.get_weights(), 0
    for epoch in range(settings.epochs):
        started = time.monotonic()
        order = rng.permutation(train_idx)
        sums: dict[str, float] = {}
        for i in range(steps):
            out = train_step(*batch(order[i * settings.batch_size : (i + 1) * settings.batch_size], True))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        val: dict[str, float] = {}
        for i in range(0, val_idx.size, 512):
            out = eval_step(*batch(val_idx[i : i + 512], False))
            n = min(512, val_idx.size - i)
            for k, v in out.items():
                val[k] = val.get(k, 0.0) + float(v) * n
        text = " ".join(f"{k}={v / steps:.3f}" for k, v in sums.items())
        vtext = " ".join(f"{k}={v / max(1, val_idx.size):.3f}" for k, v in val.items())
        print(
            f"epoch {epoch + 1}/{settings.epochs} ({time.monotonic() - started:.0f} s): {text} | val {vtext}",
            flush=True,
        )
        val_loss = val.get("loss", 0.0) / max(1, val_idx.size)
        if val_loss < best_loss:
            best_loss, best_weights, best_epoch = val_loss, model.get_weights(), epoch + 1
    # Windows of one episode are alike, so the model soon starts to learn episodes rather than rooms:
    # keep the weights of the epoch with the lowest loss on the held-back episodes.
    model.set_weights(best_weights)
    print(f"kept the weights of epoch {best_epoch} (validation loss {best_loss:.3f})", flush=True)
    return model
