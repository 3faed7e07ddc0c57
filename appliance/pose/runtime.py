"""``TfliteModel``: an int8 TFLite file behind a typed, synchronous ``run`` with float inputs and outputs.

The runtime is ``ai_edge_litert`` (LiteRT, the TFLite interpreter's current home) or, failing that,
``tflite_runtime``. A runtime counts as usable only once it has *created an interpreter* for the model:
tflite-runtime 2.14 imports fine under numpy 2 and crashes when an interpreter is built.

Tensors are recognised by shape, not by name (converter-generated names and output order are not stable
across TensorFlow versions): the caller names each role's shape. Inputs are quantized with the model's
own scale and zero point and outputs dequantized likewise, so callers only see floats.

``run`` is synchronous and holds the interpreter; the pipeline calls it from one worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
RuntimeName = Literal["ai_edge_litert", "tflite_runtime"]

RUNTIMES: tuple[RuntimeName, ...] = ("ai_edge_litert", "tflite_runtime")
_DISTRIBUTIONS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}
TRAINED_ON = "SIMULATED data only (appliance.csi.simulator); not validated on real CSI"


class ModelUnavailableError(RuntimeError):
    """No installed runtime could load the model (or the file does not follow the tensor contract)."""


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


@contextlib.contextmanager
def _native_output_logged(runtime: RuntimeName) -> Iterator[None]:
    """What the runtime's C++ prints straight to file descriptor 2 while the block runs ("Created TensorFlow
    Lite XNNPACK delegate for CPU.") goes through the log instead, so that a JSON log stays one object per
    line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                captured.seek(0)
                for line in captured.read().decode(errors="replace").splitlines():
                    if line.strip():
                        log.info("%s", line.strip(), extra={"fields": {"runtime": runtime}})
    finally:
        os.close(saved)


def create_interpreter(path: Path, runtime: RuntimeName, num_threads: int) -> Any:
    """An allocated interpreter of ``runtime`` for ``path``; raises whatever the runtime raises."""
    with _native_output_logged(runtime):
        interpreter = _interpreter_class(runtime)(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    return interpreter


def usable_runtimes(path: Path) -> dict[RuntimeName, str]:
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


def read_provenance(path: Path) -> dict[str, Any]:
    """The JSON sidecar next to the model (same stem, .json) written by the training build; {} if absent."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    data: dict[str, Any] = json.loads(sidecar.read_text())
    return data


class TfliteModel:
    """A model file loaded in one runtime, its tensors found by the shapes given per role.

    ``runtime=None`` takes the first usable of ``RUNTIMES``. ``num_threads`` is handed to the interpreter
    (small models: 1 thread is usually fastest on a Pi-class CPU).
    """

    def __init__(
        self,
        path: Path,
        inputs: Mapping[str, tuple[int, ...]],
        outputs: Mapping[str, tuple[int, ...]],
        *,
        num_threads: int = 1,
        runtime: RuntimeName | None = None,
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
        in_by_shape = {t.shape: t for t in (_tensor(d) for d in self._interpreter.get_input_details())}
        out_by_shape = {t.shape: t for t in (_tensor(d) for d in self._interpreter.get_output_details())}
        try:
            self._in = {role: in_by_shape[shape] for role, shape in inputs.items()}
            self._out = {role: out_by_shape[shape] for role, shape in outputs.items()}
        except KeyError as exc:
            raise ModelUnavailableError(
                f"{self.path} does not follow the tensor contract: no tensor of shape {exc}"
            ) from exc
        self.sha256 = sha256_of(self.path)

    @property
    def version(self) -> str:
        """File stem plus the first 8 hex of its sha256."""
        return f"{self.path.stem}@{self.sha256[:8]}"

    @staticmethod
    def _quantize(values: F32, tensor: _Tensor) -> npt.NDArray[np.int8]:
        q = np.round(values / tensor.scale) + tensor.zero_point
        quantized: npt.NDArray[np.int8] = np.clip(q, -128, 127).astype(np.int8)
        return quantized

    def run(self, inputs: Mapping[str, F32]) -> dict[str, F32]:
        """One example (no batch axis) in, every output dequantized (no batch axis) out."""
        for role, tensor in self._in.items():
            self._interpreter.set_tensor(tensor.index, self._quantize(inputs[role], tensor)[None])
        self._interpreter.invoke()
        out: dict[str, F32] = {}
        for role, tensor in self._out.items():
            raw = self._interpreter.get_tensor(tensor.index)[0]
            out[role] = ((raw.astype(np.float32) - tensor.zero_point) * tensor.scale).astype(np.float32)
        return out

    def info(self) -> dict[str, Any]:
        """What is loaded: file, hash, tensors, runtime, and the provenance the sidecar JSON records."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.path.stat().st_size,
            "version": self.version,
            "runtime": {"name": self.runtime, "version": runtime_version(self.runtime)},
            "num_threads": self.num_threads,
            "inputs": [_describe(t, role) for role, t in self._in.items()],
            "outputs": [_describe(t, role) for role, t in self._out.items()],
            "trained_on": TRAINED_ON,
            "provenance": read_provenance(self.path),
        }

    def benchmark(self, inputs: Mapping[str, F32], *, iterations: int, warmup: int) -> dict[str, float]:
        """Latency of one example in microseconds: the interpreter alone (``invoke`` on already-set int8
        inputs) and the whole ``run`` (plus quantize and dequantize), median and p99."""
        self.run(inputs)
        for _ in range(warmup):
            self._interpreter.invoke()
        invoke = np.empty(iterations)
        for i in range(iterations):
            started = time.perf_counter_ns()
            self._interpreter.invoke()
            invoke[i] = time.perf_counter_ns() - started
        whole = np.empty(iterations)
        for i in range(iterations):
            started = time.perf_counter_ns()
            self.run(inputs)
            whole[i] = time.perf_counter_ns() - started
        return {
            "median_us": round(float(np.median(invoke)) / 1000, 1),
            "p99_us": round(float(np.percentile(invoke, 99)) / 1000, 1),
            "run_median_us": round(float(np.median(whole)) / 1000, 1),
            "run_p99_us": round(float(np.percentile(whole, 99)) / 1000, 1),
        }


def _describe(tensor: _Tensor, role: str) -> dict[str, Any]:
    return {
        "role": role,
        "name": tensor.name,
        "shape": list(tensor.shape),
        "dtype": tensor.dtype,
        "quantization": {"scale": tensor.scale, "zero_point": tensor.zero_point},
    }
