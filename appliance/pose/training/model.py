"""The pose network (Keras 3): a per-link temporal encoder shared by every link, then a room-level head.

Inputs: ``csi`` [40, 318], ``geometry`` [51] and ``maps`` [6, 64] (``features.link_maps`` of the
geometry). ``csi`` is reshaped to [40 steps, 6 links, 53 features (52 subcarriers, gain)] and every
link goes through the same temporal convolutions (Conv2D with (k, 1) kernels: time only, weights shared
across links), so a link's evidence means the same whatever slot it sits in. Each link's summary is
joined with its own geometry (normalized tx/rx positions, kind, mask) before the links are combined,
which is what lets the head triangulate: "the link from here to there is shadowed". Each link's evidence
is then back-projected onto an 8 x 8 floor grid through its map (radio tomographic imaging with learnt
per-link evidence) and read by two small convolutions. The room head (dropout 0.3) sees that floor
image, every link's summary and the room
size, and emits, per slot (``MAX_PERSONS``):

- ``presence`` [3] sigmoid;
- ``centre`` [3, 3]: the pelvis (midpoint of the hips) as fractions of the room's width, depth and
  height; (x, y) is the soft-argmax of a per-slot heat map over the floor cells (so position comes from
  where the back-projected evidence is, not from a dense regression), z a sigmoid;
- ``offsets`` [3, 17, 3] metres: keypoints relative to that centre (room axes);
- ``confidence`` [3, 17] sigmoid: the expected closeness of each joint (trained towards
  exp(-(error / 0.1 m)^2));
- ``activity`` [3, 6] softmax over ``appliance.contracts.coco.ACTIVITIES``.

About 0.4 M parameters and ~3 M multiply-adds per window.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from appliance.contracts.coco import ACTIVITIES, N_KEYPOINTS
from appliance.pose.evaluation import MAX_PERSONS
from appliance.pose.features import (
    LINK_FEATURES,
    LINK_GEOMETRY_FEATURES,
    MAP_CELLS,
    MAP_SIDE,
    MAX_LINKS,
    N_GEOMETRY,
    N_STEPS,
)


def build_model(
    batch_size: int | None = None, width: int = 64, hidden: int = 192, dropout: float = 0.3
) -> keras.Model:
    """The network; ``batch_size=1`` for export (a fixed batch keeps shape ops out of the TFLite graph)."""
    csi = keras.Input((N_STEPS, MAX_LINKS * LINK_FEATURES), batch_size=batch_size, name="csi")
    geometry = keras.Input((N_GEOMETRY,), batch_size=batch_size, name="geometry")
    maps = keras.Input((MAX_LINKS, MAP_CELLS), batch_size=batch_size, name="maps")

    x = layers.Reshape((N_STEPS, MAX_LINKS, LINK_FEATURES))(csi)
    x = layers.Conv2D(width, (1, 1), activation="relu", name="subcarrier_mix")(x)
    for i, stride in enumerate((2, 2, 2)):
        x = layers.DepthwiseConv2D((5, 1), strides=(stride, 1), padding="same", name=f"temporal_{i}")(x)
        x = layers.Conv2D(width, (1, 1), activation="relu", name=f"pointwise_{i}")(x)
    steps = N_STEPS // 8
    x = layers.Permute((2, 1, 3))(x)  # [links, steps, width]
    x = layers.Reshape((MAX_LINKS, steps * width))(x)
    link_geometry = layers.Reshape((MAX_LINKS, LINK_GEOMETRY_FEATURES))(
        layers.Lambda(lambda g: g[:, : MAX_LINKS * LINK_GEOMETRY_FEATURES], name="link_geometry")(geometry)
    )
    x = layers.Concatenate(axis=-1)([x, link_geometry])
    links = layers.Dense(64, activation="relu", name="link_summary")(x)
    # Back-projection: every floor cell gathers the evidence of the links whose maps cover it.
    evidence = layers.Dense(24, activation="relu", name="link_evidence")(links)
    image = layers.Dot(axes=(1, 1), name="backproject")([maps, evidence])  # [cells, 24]
    image = layers.Reshape((MAP_SIDE, MAP_SIDE, 24))(image)
    image = layers.Conv2D(24, 3, padding="same", activation="relu", name="floor_0")(image)
    image = layers.Conv2D(24, 3, padding="same", activation="relu", name="floor_1")(image)
    # Soft-argmax per slot: a heat map over the floor cells whose expectation is the slot's (x, y).
    heat = layers.Conv2D(MAX_PERSONS, 1, name="heat")(image)
    heat = layers.Permute((2, 1))(layers.Reshape((MAP_CELLS, MAX_PERSONS))(heat))
    heat = layers.Softmax(axis=-1, name="heat_softmax")(heat)
    floor_xy = layers.Dense(2, use_bias=False, trainable=False, name="cell_centres")(heat)
    image = layers.Conv2D(12, 1, activation="relu", name="floor_2")(image)
    room = layers.Lambda(lambda g: g[:, MAX_LINKS * LINK_GEOMETRY_FEATURES :], name="room_size")(geometry)
    x = layers.Concatenate()([layers.Flatten()(image), layers.Flatten()(links), room])
    x = layers.Dense(hidden, activation="relu", name="room_0")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden, activation="relu", name="room_1")(x)

    presence = layers.Dense(MAX_PERSONS, activation="sigmoid", name="presence")(x)
    height = layers.Reshape((MAX_PERSONS, 1))(
        layers.Dense(MAX_PERSONS, activation="sigmoid", name="centre_height")(x)
    )
    centre = layers.Concatenate(axis=-1, name="centre")([floor_xy, height])
    offsets = layers.Reshape((MAX_PERSONS, N_KEYPOINTS, 3), name="offsets")(
        layers.Dense(MAX_PERSONS * N_KEYPOINTS * 3, name="offsets_dense")(x)
    )
    confidence = layers.Reshape((MAX_PERSONS, N_KEYPOINTS), name="confidence")(
        layers.Dense(MAX_PERSONS * N_KEYPOINTS, activation="sigmoid", name="confidence_dense")(x)
    )
    activity = layers.Softmax(axis=-1, name="activity")(
        layers.Reshape((MAX_PERSONS, len(ACTIVITIES)))(
            layers.Dense(MAX_PERSONS * len(ACTIVITIES), name="activity_dense")(x)
        )
    )
    model = keras.Model(
        [csi, geometry, maps], [presence, centre, offsets, confidence, activity], name="invispose_pose"
    )
    cells = (
        np.stack(np.meshgrid(np.arange(MAP_SIDE), np.arange(MAP_SIDE), indexing="xy"), -1) + 0.5
    ) / MAP_SIDE
    model.get_layer("cell_centres").set_weights([cells.reshape(MAP_CELLS, 2).astype(np.float32)])
    return model
