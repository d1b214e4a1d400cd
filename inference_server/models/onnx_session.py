"""Opening ONNX Runtime sessions for a compute device, and checking a model file's inputs.

Device strings are the server's: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

- ``cpu``: the CPU provider only.
- ``cuda`` / ``cuda:N``: TensorRT (when this onnxruntime build has it and ``use_tensorrt``), then CUDA,
  both on device N, then the CPU for any node the GPU providers do not take. If this onnxruntime build
  has no CUDA provider (the plain ``onnxruntime`` wheel instead of ``onnxruntime-gpu``) an explicit
  ``cuda`` request raises :class:`ExecutionProviderError`; it never silently runs on the CPU.
- ``mps``: CoreML then CPU when the build has CoreML, else the CPU (logged): Metal is a PyTorch
  device, and ONNX Runtime reaches Apple GPUs only through CoreML.
- ``auto``: the first of CUDA device 0, CoreML, CPU that this build offers.

Every failure to use a file raises :class:`OnnxModelError` with a one-line message that starts with
the file's path.

On a GPU, :func:`session_runner` runs a session through IO binding (:class:`BoundRunner`): its inputs and
outputs stay allocated on the device as OrtValues and are reused while their shapes stay the same, instead
of ONNX Runtime allocating and copying them for every frame.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import ModelInvalid, ModelNotFound

_LOGGER = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
COREML = "CoreMLExecutionProvider"

ProviderSpec = str | tuple[str, dict[str, Any]]
"""A provider as ONNX Runtime takes it: its name, or ``(name, options)``."""

Shape = Sequence[int | None]
"""An expected input shape; ``None`` marks a dimension that may have any size."""

_FLOAT_TYPES: Mapping[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}


class OnnxModelError(ModelInvalid):
    """An ONNX model file is unreadable or does not have the inputs a backend needs."""


class OnnxModelMissing(OnnxModelError, ModelNotFound):
    """An ONNX model file is not where it was looked for."""


class ExecutionProviderError(RuntimeError):
    """The requested device cannot be used by this onnxruntime installation."""


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _provider_name(provider: ProviderSpec) -> str:
    return provider if isinstance(provider, str) else provider[0]


def _cuda_index(device: str) -> int | None:
    """``N`` of ``cuda`` / ``cuda:N``; None when ``device`` is not a CUDA device string."""
    if device == "cuda":
        return 0
    if device.startswith("cuda:"):
        text = device.partition(":")[2]
        if not text.isdigit():
            raise ExecutionProviderError(f"device {device!r}: expected cuda or cuda:N")
        return int(text)
    return None


def providers_for(device: str, *, use_tensorrt: bool = True, deterministic: bool = True) -> list[ProviderSpec]:
    """ONNX Runtime providers, in priority order, for a device string (rules in the module docstring).

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (case and surrounding blanks ignored).
        use_tensorrt: put TensorRT before CUDA when available. TensorRT builds an engine per model on
            first use, which can take minutes.
        deterministic: ask cuDNN for its heuristic convolution choice instead of timing every algorithm
            (the timed choice may differ between runs, and with it the last bits of the result).

    Returns:
        A list for ``InferenceSession(providers=...)``; ``["CPUExecutionProvider"]`` for ``cpu``.

    Raises:
        ExecutionProviderError: unknown device string, or an explicit CUDA request on a build without
            the CUDA provider.
    """
    requested = device.strip().lower() or "auto"
    available = set(ort.get_available_providers())
    if requested == "cpu":
        return [CPU]
    index = _cuda_index(requested)
    if requested == "auto":
        if CUDA in available:
            index = 0
        elif COREML in available:
            return [COREML, CPU]
        else:
            return [CPU]
    if index is not None:
        if CUDA not in available:
            raise ExecutionProviderError(
                f"device {device!r} requested but this onnxruntime {ort.__version__} has no CUDA provider "
                f"(available: {', '.join(sorted(available))}); install onnxruntime-gpu or use device 'cpu'")
        cuda_options: dict[str, Any] = {"device_id": index}
        if deterministic:
            cuda_options["cudnn_conv_algo_search"] = "HEURISTIC"
        providers: list[ProviderSpec] = []
        if use_tensorrt and TENSORRT in available:
            providers.append((TENSORRT, {"device_id": index}))
        providers += [(CUDA, cuda_options), CPU]
        return providers
    if requested == "mps":
        if COREML in available:
            return [COREML, CPU]
        _LOGGER.info("device 'mps': this onnxruntime has no CoreML provider, ONNX models run on the CPU")
        return [CPU]
    raise ExecutionProviderError(f"unknown device {device!r} (expected auto, cpu, cuda[:N] or mps)")


def session_options(*, deterministic: bool = True, threads: int | None = None) -> ort.SessionOptions:
    """Session options: sequential graph execution and, by default, deterministic kernels.

    ``threads`` fixes the intra-op thread count (None: onnxruntime's default, one per physical core).
    The CPU kernels give the same result on every run for a fixed thread count.
    """
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.use_deterministic_compute = deterministic
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return options


def open_session(path: str | Path, device: str, *, expected_inputs: Mapping[str, Shape] | None = None,
                 use_tensorrt: bool = True, deterministic: bool = True,
                 threads: int | None = None) -> ort.InferenceSession:
    """Open an ONNX model file on a device, optionally checking its inputs (:func:`check_io`).

    Args:
        path: the ``.onnx`` file.
        device: see :func:`providers_for`.
        expected_inputs: input name -> shape with None for free dimensions; None skips the check.
        use_tensorrt, deterministic: see :func:`providers_for`.
        threads: see :func:`session_options`.

    Raises:
        OnnxModelError: not a loadable ONNX model, or inputs that do not match
            (:class:`OnnxModelMissing`, also a ``ModelNotFound``, for a missing file).
        ExecutionProviderError: the device cannot be used (including a CUDA request whose CUDA provider
            failed to start).
    """
    file = Path(path)
    if not file.is_file():
        raise OnnxModelMissing(f"{file}: ONNX model file not found")
    providers = providers_for(device, use_tensorrt=use_tensorrt, deterministic=deterministic)
    try:
        session = ort.InferenceSession(str(file), sess_options=session_options(deterministic=deterministic,
                                                                                threads=threads),
                                       providers=providers)
    except Exception as error:  # onnxruntime raises its own pybind exception types
        raise OnnxModelError(f"{file}: not a loadable ONNX model ({_one_line(error)})") from error
    wanted = {_provider_name(p) for p in providers} - {CPU}
    active = set(session.get_providers())
    if wanted and not wanted & active:
        message = (f"{file}: providers {', '.join(sorted(wanted))} for device {device!r} failed to start "
                   f"(running on: {', '.join(session.get_providers())})")
        if _cuda_index(device.strip().lower()) is not None:
            raise ExecutionProviderError(message)
        _LOGGER.warning(message)
    if expected_inputs is not None:
        check_io(session, expected_inputs, file)
    return session


def _shape_text(shape: Sequence[object]) -> str:
    return "[" + ", ".join("?" if not isinstance(d, int) else str(d) for d in shape) + "]"


def check_io(session: ort.InferenceSession, expected_inputs: Mapping[str, Shape], path: str | Path) -> None:
    """Check that a session's inputs are exactly ``expected_inputs``, as float tensors of those shapes.

    A dimension matches when either side leaves it free (``None`` here, a symbolic or missing size in
    the model) or both give the same size.

    Raises:
        OnnxModelError: one line naming ``path``, the model's inputs and what was expected.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    expected_text = ", ".join(f"{name} {_shape_text(shape)}" for name, shape in expected_inputs.items())
    found_text = ", ".join(f"{i.name} {_shape_text(i.shape)}" for i in inputs.values())
    if set(inputs) != set(expected_inputs):
        raise OnnxModelError(f"{path}: model inputs are ({found_text}); expected ({expected_text})")
    for name, shape in expected_inputs.items():
        model_shape = list(inputs[name].shape)
        same_rank = len(model_shape) == len(shape)
        if not same_rank or any(isinstance(m, int) and e is not None and m != e
                                for m, e in zip(model_shape, shape, strict=True)):
            raise OnnxModelError(f"{path}: input {name!r} has shape {_shape_text(model_shape)}; "
                                 f"expected {_shape_text(list(shape))}")
        if inputs[name].type not in _FLOAT_TYPES:
            raise OnnxModelError(f"{path}: input {name!r} is {inputs[name].type}; expected a float tensor")


def run_session(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run a session, casting each feed to its input's float type and float outputs to float32.

    This lets fp16 exports (e.g. ``inswapper_128_fp16``) take the same float32 arrays as fp32 ones.
    """
    types = {i.name: i.type for i in session.get_inputs()}
    cast: dict[str, np.ndarray] = {name: np.ascontiguousarray(value, dtype=_FLOAT_TYPES.get(types.get(name, ""), np.float32))
            for name, value in feeds.items()}
    outputs = session.run(None, cast)
    return [np.asarray(o, dtype=np.float32) if np.issubdtype(np.asarray(o).dtype, np.floating) else np.asarray(o)
            for o in outputs]


Runner = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]
"""Feeds -> outputs, as :func:`run_session`."""


class BoundRunner:
    """:func:`run_session` through IO binding, with inputs and outputs kept on ``device`` and reused.

    Each input is an OrtValue on the device, refilled in place (``update_inplace``: one host-to-device copy
    into the same memory) while its shape stays the same; each output is bound to the OrtValue ONNX Runtime
    allocated on the first run of those input shapes, so later runs write into the same device memory. A
    change of shape rebinds (the old values are freed). Results are copied to new float32 host arrays (never
    the bound memory). Calls are serialised by a lock (one binding per session).

    Args:
        session: an open session.
        device: ONNX Runtime's device name for the bound values: ``cuda`` (or ``cpu``, which runs the same
            path on the CPU, for tests).
        device_id: the device's index.
    """

    def __init__(self, session: ort.InferenceSession, device: str = "cuda", device_id: int = 0) -> None:
        self.session = session
        self.device = device
        self.device_id = int(device_id)
        self._types = {i.name: _FLOAT_TYPES.get(i.type, np.float32) for i in session.get_inputs()}
        self._output_names = [o.name for o in session.get_outputs()]
        self._binding = session.io_binding()
        self._inputs: dict[str, ort.OrtValue] = {}
        self._bound_for: tuple[tuple[str, tuple[int, ...]], ...] | None = None  # the input shapes outputs fit
        self._lock = threading.Lock()

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            shapes = []
            for name, value in feeds.items():
                array: np.ndarray = np.ascontiguousarray(value, dtype=self._types.get(name, np.float32))
                held = self._inputs.get(name)
                if held is not None and tuple(held.shape()) == array.shape:
                    held.update_inplace(array)
                else:
                    # memory of its own (from_numpy would wrap the caller's array on the CPU)
                    held = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, array.dtype, self.device,
                                                                     self.device_id)
                    held.update_inplace(array)
                    self._inputs[name] = held
                    self._binding.bind_ortvalue_input(name, held)
                shapes.append((name, array.shape))
            key = tuple(sorted(shapes))
            fresh = key != self._bound_for
            if fresh:  # let ONNX Runtime allocate the outputs on the device for these shapes
                self._binding.clear_binding_outputs()
                for name in self._output_names:
                    self._binding.bind_output(name, self.device, self.device_id)
            self.session.run_with_iobinding(self._binding)
            values = self._binding.get_outputs()
            if fresh:  # keep those outputs bound: the next runs of these shapes write into them
                self._binding.clear_binding_outputs()
                for name, value in zip(self._output_names, values, strict=True):
                    self._binding.bind_ortvalue_output(name, value)
                self._bound_for = key
            results = [value.numpy() for value in values]
        return [np.array(r, dtype=np.float32) if np.issubdtype(r.dtype, np.floating) else np.array(r)
                for r in results]


def session_runner(session: ort.InferenceSession) -> Runner:
    """How to run ``session``: a :class:`BoundRunner` on its CUDA device when CUDA runs it (TensorRT with
    it), else :func:`run_session` (the CPU and CoreML take the host arrays directly)."""
    if CUDA in session.get_providers():
        options = session.get_provider_options().get(CUDA, {})
        return BoundRunner(session, "cuda", int(options.get("device_id", 0)))
    return lambda feeds: run_session(session, feeds)
