"""``PoseModel``: the shipped int8 TFLite pose model behind a typed, synchronous ``infer``.

The runtime is ``ai_edge_litert`` (LiteRT, the TFLite interpreter's current home) or, failing that,
``tflite_runtime``. A runtime counts as usable only once it has *created an interpreter* for the model:
tflite-runtime 2.14 imports fine under numpy 2 and crashes when an interpreter is built.

Tensors are recognised by shape, not by name (converter-generated names and output order are not stable
across TensorFlow versions); the contract is in ``models/MODEL_CARD.md``. Inputs are quantized with the
model's own scale and zero point and outputs dequantized likewise, so callers only see floats. The model
emits each slot's pelvis as fractions of the room and keypoints relative to it; ``infer`` composes them
into room metres with the window's room size.

``infer`` is synchronous and holds the interpreter; the pipeline calls it from one worker thread.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES, N_KEYPOINTS
from appliance.pose.features import (
    LINK_FEATURES,
    MAP_CELLS,
    MAX_LINKS,
    N_GEOMETRY,
    N_STEPS,
    ModelInputs,
    link_maps,
)

F32 = npt.NDArray[np.float32]
RuntimeName = Literal["ai_edge_litert", "tflite_runtime"]

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "invispose-pose-v1.tflite"
RUNTIMES: tuple[RuntimeName, ...] = ("ai_edge_litert", "tflite_runtime")
_DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
MAX_SLOTS = 3
TRAINED_ON = "SIMULATED data only (appliance.csi.simulator); not validated on real CSI"

CSI_SHAPE = (1, N_STEPS, MAX_LINKS * LINK_FEATURES)
GEOMETRY_SHAPE = (1, N_GEOMETRY)
MAPS_SHAPE = (1, MAX_LINKS, MAP_CELLS)
INPUT_SHAPES: dict[str, tuple[int, ...]] = {"csi": CSI_SHAPE, "geometry": GEOMETRY_SHAPE, "maps": MAPS_SHAPE}
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "presence": (1, MAX_SLOTS),
    "centre": (1, MAX_SLOTS, 3),
    "offsets": (1, MAX_SLOTS, N_KEYPOINTS, 3),
    "confidence": (1, MAX_SLOTS, N_KEYPOINTS),
    "activity": (1, MAX_SLOTS, len(ACTIVITIES)),
}


class ModelUnavailableError(RuntimeError):
    """No installed runtime could load the model (or the file does not follow the tensor contract)."""


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """One window's estimate for every slot (``MAX_SLOTS``), floats, slot order arbitrary.

    ``presence`` [S] probability that the slot holds a person; ``keypoints`` [S, 17, 3] metres in room
    coordinates (COCO order); ``confidence`` [S, 17] per joint, 0..1; ``activity`` [S, 6] probabilities
    over ``appliance.contracts.coco.ACTIVITIES``; ``centre`` [S, 3] the pelvis in metres.
    """

    presence: F32
    keypoints: F32
    confidence: F32
    activity: F32
    centre: F32

    def present_slots(self, threshold: float = 0.5) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.presence >= threshold)]

    def person_count(self, threshold: float = 0.5) -> int:
        return len(self.present_slots(threshold))


@dataclass(frozen=True, slots=True)
class _Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


def _tensor(detail: dict[str, Any]) -> _Tensor:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return _Tensor(
        int(detail["index"]),
        str(detail["name"]),
        tuple(int(v) for v in detail["shape"]),
        np.dtype(detail["dtype"]).name,
        float(scale),
        int(zero_point),
    )


def _interpreter_class(runtime: RuntimeName) -> Any:
    module = importlib.import_module(f"{runtime}.interpreter")
    return module.Interpreter


def runtime_version(runtime: RuntimeName) -> str:
    try:
        return importlib.metadata.version(_DISTRIBUTIONS[runtime])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def create_interpreter(path: Path, runtime: RuntimeName, num_threads: int) -> Any:
    """An allocated interpreter of ``runtime`` for ``path``; raises whatever the runtime raises."""
    interpreter = _interpreter_class(runtime)(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def usable_runtimes(path: Path = DEFAULT_MODEL) -> dict[RuntimeName, str]:
    """Each runtime that imports *and* builds an interpreter for ``path``, or why it cannot (by name)."""
    verdicts: dict[RuntimeName, str] = {}
    for runtime in RUNTIMES:
        try:
            create_interpreter(path, runtime, 1)
            verdicts[runtime] = "ok"
        except Exception as exc:  # an ImportError, or a runtime that fails to build an interpreter
            verdicts[runtime] = f"{type(exc).__name__}: {exc}"
    return verdicts


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PoseModel:
    """The pose model loaded in one runtime; see the module docstring.

    ``runtime=None`` takes the first usable of ``RUNTIMES``. ``num_threads`` is handed to the interpreter
    (the model is small: 1 thread is usually fastest on a Pi-class CPU; ``invispose bench model`` says).
    """

    def __init__(
        self, path: Path = DEFAULT_MODEL, *, num_threads: int = 1, runtime: RuntimeName | None = None
    ) -> None:
        self.path = Path(path)
        self.num_threads = num_threads
        if not self.path.is_file():
            raise ModelUnavailableError(f"model file {self.path} not found")
        failures = []
        for name in (runtime,) if runtime else RUNTIMES:
            try:
                self._interpreter = create_interpreter(self.path, name, num_threads)
                self.runtime: RuntimeName = name
                break
            except Exception as exc:  # see usable_runtimes
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            raise ModelUnavailableError("no usable TFLite runtime: " + "; ".join(failures))
        self._inputs = [_tensor(d) for d in self._interpreter.get_input_details()]
        self._outputs = [_tensor(d) for d in self._interpreter.get_output_details()]
        by_shape = {t.shape: t for t in self._inputs}
        try:
            self._in = {name: by_shape[shape] for name, shape in INPUT_SHAPES.items()}
            out_by_shape = {t.shape: t for t in self._outputs}
            self._out = {name: out_by_shape[shape] for name, shape in OUTPUT_SHAPES.items()}
        except KeyError as exc:
            raise ModelUnavailableError(
                f"{self.path} does not follow the tensor contract: no {exc} tensor"
            ) from exc
        self.sha256 = sha256_of(self.path)
        self._maps_key = b""
        self._maps: F32 = np.zeros(MAPS_SHAPE[1:], np.float32)

    @property
    def version(self) -> str:
        """Model version for ``PoseFrame.model_version``: file stem plus the first 8 hex of its sha256."""
        return f"{self.path.stem}@{self.sha256[:8]}"

    @staticmethod
    def _quantize(values: F32, tensor: _Tensor) -> npt.NDArray[np.int8]:
        q = np.round(values / tensor.scale) + tensor.zero_point
        quantized: npt.NDArray[np.int8] = np.clip(q, -128, 127).astype(np.int8)
        return quantized

    def _dequantize(self, name: str) -> F32:
        tensor = self._out[name]
        raw = self._interpreter.get_tensor(tensor.index)[0]
        values: F32 = ((raw.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)
        return values

    def infer_raw(self, csi: F32, geometry: F32) -> dict[str, F32]:
        """Run one window (no batch axis) and return every output dequantized, as the model emits it.
        The third input, the link maps, is computed here from the geometry (``features.link_maps``)."""
        key = geometry.tobytes()
        if key != self._maps_key:
            # The geometry changes only when links come or go: reuse the maps until it does.
            self._maps_key, self._maps = key, link_maps(geometry)
        values = {"csi": csi, "geometry": geometry, "maps": self._maps}
        for name, tensor in self._in.items():
            self._interpreter.set_tensor(tensor.index, self._quantize(values[name], tensor)[None])
        self._interpreter.invoke()
        return {name: self._dequantize(name) for name in OUTPUT_SHAPES}

    def infer(self, inputs: ModelInputs) -> ModelOutput:
        raw = self.infer_raw(inputs.csi, inputs.geometry)
        size = np.asarray(inputs.room_size_m, np.float32)
        centre = raw["centre"] * size
        return ModelOutput(
            presence=raw["presence"],
            keypoints=(centre[:, None, :] + raw["offsets"]).astype(np.float32),
            confidence=raw["confidence"],
            activity=raw["activity"],
            centre=centre.astype(np.float32),
        )

    def info(self) -> dict[str, Any]:
        """What is loaded: file, hash, tensors, runtime, and the provenance the sidecar JSON records."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.path.stat().st_size,
            "version": self.version,
            "runtime": {"name": self.runtime, "version": runtime_version(self.runtime)},
            "num_threads": self.num_threads,
            "inputs": [_describe(t, name) for name, t in self._in.items()],
            "outputs": [_describe(t, name) for name, t in self._out.items()],
            "trained_on": TRAINED_ON,
            "provenance": read_provenance(self.path),
        }


def _describe(tensor: _Tensor, role: str) -> dict[str, Any]:
    return {
        "role": role,
        "name": tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "quantization": {"scale": tensor.scale, "zero_point": tensor.zero_point},
    }


def read_provenance(path: Path) -> dict[str, Any]:
    """The JSON sidecar next to the model (same stem, .json) written by the training build; {} if absent."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    data: dict[str, Any] = json.loads(sidecar.read_text())
    return data


def benchmark(model: PoseModel, inputs: ModelInputs, *, iterations: int, warmup: int) -> dict[str, float]:
    """Latency of one window in microseconds: the interpreter alone (``invoke`` on already-set int8
    inputs) and the whole ``infer`` (plus quantize, dequantize and composing keypoints), median and p99."""
    interpreter = model._interpreter
    model.infer(inputs)
    for _ in range(warmup):
        interpreter.invoke()
    invoke = np.empty(iterations)
    for i in range(iterations):
        started = time.perf_counter_ns()
        interpreter.invoke()
        invoke[i] = time.perf_counter_ns() - started
    whole = np.empty(iterations)
    for i in range(iterations):
        started = time.perf_counter_ns()
        model.infer(inputs)
        whole[i] = time.perf_counter_ns() - started
    return {
        "median_us": round(float(np.median(invoke)) / 1000, 1),
        "p99_us": round(float(np.percentile(invoke, 99)) / 1000, 1),
        "infer_median_us": round(float(np.median(whole)) / 1000, 1),
        "infer_p99_us": round(float(np.percentile(whole, 99)) / 1000, 1),
    }


def example_inputs(seed: int = 0) -> ModelInputs:
    """A plausible window (six links in a 5 x 4 x 2.7 m room, small random changes) for benchmarks/tests."""
    rng = np.random.default_rng(seed)
    csi = np.clip(rng.normal(0.0, 0.05, (N_STEPS, MAX_LINKS * LINK_FEATURES)), -1, 1).astype(np.float32)
    geometry = np.zeros(N_GEOMETRY, np.float32)
    for slot in range(MAX_LINKS):
        row = slot * 8
        geometry[row : row + 6] = rng.uniform(0.0, 1.0, 6)
        geometry[row + 7] = 1.0
    geometry[-3:] = (0.5, 0.4, 0.675)
    return ModelInputs(csi, geometry, tuple(f"link{i}" for i in range(MAX_LINKS)), (5.0, 4.0, 2.7))
