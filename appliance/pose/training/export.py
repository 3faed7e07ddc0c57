"""Full-integer int8 TFLite export (the recipe of the project's field notes).

The trained weights are copied into the same network built with ``batch_size=1`` (a dynamic batch adds
SHAPE/STRIDED_SLICE/PACK ops), converted with ``TFLITE_BUILTINS_INT8`` only, int8 inputs and outputs, and
calibrated on a representative sample of training windows (fed as a dict keyed by input name).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from appliance.pose.features import link_maps
from appliance.pose.training.model import build_model

REPRESENTATIVE_WINDOWS = 400


def export_int8(
    model: keras.Model,
    csi: npt.NDArray[np.float32],
    geometry: npt.NDArray[np.float32],
    out: Path,
    seed: int,
) -> bytes:
    """Write ``out`` (.tflite) and return its bytes."""
    fixed = build_model(batch_size=1)
    fixed.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    picks = rng.choice(csi.shape[0], size=min(REPRESENTATIVE_WINDOWS, csi.shape[0]), replace=False)

    def representative() -> Iterator[dict[str, npt.NDArray[np.float32]]]:
        # Keyed by input name: the converter's positional input order is not the Keras model's.
        for i in picks:
            yield {
                "csi": csi[i : i + 1].astype(np.float32),
                "geometry": geometry[i : i + 1].astype(np.float32),
                "maps": link_maps(geometry[i : i + 1]),
            }

    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    data: bytes = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return data
