"""Run a PyTorch image model on one device at a chosen precision, with a float32 retry for broken items.

Reduced precision (fp16 especially) can overflow inside a GAN and give an image full of NaN/Inf, the
"black face". :class:`TorchImageModel` checks each output item and recomputes only the broken ones in
float32, saying so in the result. The caller's module is kept in float32 on the CPU as the reference
for those retries; the copy that does the normal work lives on the device in the chosen precision.

On a CPU without native reduced-precision convolutions (oneDNN needs AVX-512 BF16/FP16 or AMX), PyTorch
runs bf16/fp16 convolutions on a reference path about a hundred times slower than float32; there the
runner uses float32 instead and says so (``precision``, ``note``), unless told to go ahead anyway.

Convention: batches are ``(N, C, H, W)`` float32 numpy arrays in, ``(N, C', H', W')`` float32 out;
value ranges are the model's own (GPEN: RGB in ``[-1, 1]``).

Buffers: on a GPU the runner keeps, per batch shape (the last :data:`STAGED_SHAPES` shapes), its input
tensors (float32 and the run precision) and its float32 output tensor on the device, and page-locked
(pinned) host copies of both on CUDA, and reuses them on every call instead of allocating per frame; the
host-device copies are asynchronous from and to the pinned copies. Only the module's own intermediate
tensors come from PyTorch's caching allocator on each call (reused blocks, no growth). On the CPU the
batch is used in place (no copy), as before.
"""

from __future__ import annotations

import copy
import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

__all__ = ["PRECISIONS", "STAGED_SHAPES", "Precision", "RunResult", "TorchImageModel", "cpu_has_native"]

_LOG = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
STAGED_SHAPES = 4
"""Batch shapes whose buffers a runner keeps (least recently used dropped first)."""


@dataclass(frozen=True)
class RunResult:
    """One batch's output.

    ``output`` is ``(N, C, H, W)`` float32. ``precision_used`` is the precision of the main pass;
    ``fell_back`` is true when some items came out non-finite in it and were recomputed in float32,
    ``fallback_items`` lists their indices in the batch.
    """

    output: np.ndarray
    precision_used: str
    fell_back: bool
    fallback_items: tuple[int, ...] = ()


@dataclass
class _Staging:
    """The reused tensors of one input shape ``(N, C, H, W)``.

    ``device_in32``: float32 input on the device (also the fp32 retry's input); ``device_in``: the same in the
    run precision (``device_in32`` itself for fp32); ``host_in``: pinned float32 host copy (CUDA only, else
    None); ``device_out`` / ``host_out``: float32 output on the device / pinned on the host, made on the first
    call (the output shape is the module's).
    """

    device_in32: torch.Tensor
    device_in: torch.Tensor
    host_in: torch.Tensor | None
    device_out: torch.Tensor | None = None
    host_out: torch.Tensor | None = None


class TorchImageModel:
    """A torch module held on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) at ``precision``.

    The object takes ownership of ``module`` (float32, as loaded): with ``fp32`` it is moved to the
    device and used directly; with ``fp16``/``bf16`` a converted copy goes to the device and ``module``
    stays on the CPU as the float32 reference for retries (moved to the device only while retrying).
    ``requested_precision`` is what was asked, ``precision`` what runs: fp32 instead of a reduced
    precision this CPU cannot run natively (see :func:`cpu_has_native`), unless ``allow_slow_cpu``;
    ``note`` then says why. Calls are serialised by a lock. Raises ``ValueError`` for an unknown
    precision or a device that is absent.

    ``staged``: run through the reused buffers of the module docstring (None: on every device but the CPU;
    True on the CPU exercises the same path without pinned memory, for tests).
    """

    def __init__(self, module: nn.Module, device: str = "cpu", precision: str = "fp32",
                 allow_slow_cpu: bool = False, staged: bool | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = _checked_device(device)
        self.requested_precision = precision
        self.note: str | None = None
        if self.device.type == "cpu" and not allow_slow_cpu and not cpu_has_native(precision):
            self.note = (f"{precision} asked for, but this CPU has no native {precision} convolutions "
                         "(PyTorch would run them far slower than fp32): running fp32")
            _LOG.warning(self.note)
            precision = "fp32"
        self.precision = precision
        self._dtype = PRECISIONS[precision]
        self._lock = threading.Lock()
        self.staged = self.device.type != "cpu" if staged is None else bool(staged)
        self._staging: OrderedDict[tuple[int, ...], _Staging] = OrderedDict()
        reference = module.float().eval().requires_grad_(False)
        if self._dtype == torch.float32:
            self._reference: nn.Module | None = None
            self._module: nn.Module | None = reference.to(self.device)
        else:
            self._reference = reference.cpu()
            self._module = copy.deepcopy(reference).to(self.device, self._dtype)

    def __call__(self, batch: np.ndarray) -> RunResult:
        """Run ``batch`` ``(N, C, H, W)`` (float32) and return float32 outputs, retrying broken items in fp32.

        The returned array is the caller's own (never a reused buffer)."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"expected an (N, C, H, W) batch, got shape {x.shape}")
        with self._lock, torch.inference_mode():
            module = self._require()
            if self.staged:
                return self._run_staged(module, x)
            inputs = torch.from_numpy(x).to(self.device)
            out = module(inputs.to(self._dtype)).float()
            broken = self._retry_broken(out, inputs)
            result = out.cpu().numpy()
        return RunResult(result, self.precision, bool(broken), broken)

    def _run_staged(self, module: nn.Module, x: np.ndarray) -> RunResult:
        """:meth:`__call__` through the reused buffers of ``x``'s shape (lock held)."""
        staging = self._buffers(x.shape)
        source = torch.from_numpy(x)
        if staging.host_in is not None:
            staging.host_in.copy_(source)
            staging.device_in32.copy_(staging.host_in, non_blocking=True)
        else:
            staging.device_in32.copy_(source)
        if staging.device_in is not staging.device_in32:
            staging.device_in.copy_(staging.device_in32)
        raw = module(staging.device_in)
        if staging.device_out is None or staging.device_out.shape != raw.shape:
            staging.device_out = torch.empty(raw.shape, dtype=torch.float32, device=self.device)
            staging.host_out = (torch.empty(raw.shape, dtype=torch.float32, pin_memory=True)
                                if staging.host_in is not None else None)
        out = staging.device_out
        out.copy_(raw)
        del raw
        broken = self._retry_broken(out, staging.device_in32)
        if staging.host_out is not None:
            staging.host_out.copy_(out, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            result = staging.host_out.numpy().copy()
        else:
            result = out.cpu().numpy().copy()
        return RunResult(result, self.precision, bool(broken), broken)

    def _retry_broken(self, out: torch.Tensor, inputs32: torch.Tensor) -> tuple[int, ...]:
        """Recompute in float32 (in place in ``out``) the items of ``out`` that are not finite; their indices."""
        if self._dtype == torch.float32:
            return ()
        bad = ~torch.isfinite(out).flatten(1).all(dim=1)
        if not bool(bad.any()):
            return ()
        index = bad.nonzero().flatten()
        with self._reference_on_device() as reference:
            out[index] = reference(inputs32[index]).float()
        return tuple(int(i) for i in index.tolist())

    def _buffers(self, shape: tuple[int, ...]) -> _Staging:
        """The reused tensors of ``shape`` (made on first use; beyond :data:`STAGED_SHAPES` shapes the least
        recently used are dropped)."""
        key = tuple(int(d) for d in shape)
        staging = self._staging.get(key)
        if staging is not None:
            self._staging.move_to_end(key)
            return staging
        while len(self._staging) >= STAGED_SHAPES:
            self._staging.popitem(last=False)
        device_in32 = torch.empty(key, dtype=torch.float32, device=self.device)
        device_in = device_in32 if self._dtype == torch.float32 else torch.empty(key, dtype=self._dtype,
                                                                                 device=self.device)
        host_in = torch.empty(key, dtype=torch.float32, pin_memory=True) if self.device.type == "cuda" else None
        staging = self._staging[key] = _Staging(device_in32, device_in, host_in)
        return staging

    def warm_up(self, size: int, channels: int = 3, batch: int = 1) -> None:
        """One pass on a ``(batch, channels, size, size)`` zero batch: kernels chosen, memory reserved (the
        buffers of that shape too, when staged)."""
        with self._lock, torch.inference_mode():
            module = self._require()
            if self.staged:
                self._run_staged(module, np.zeros((batch, channels, size, size), np.float32))
            else:
                module(torch.zeros(batch, channels, size, size, device=self.device, dtype=self._dtype))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

    def unload(self) -> None:
        """Drop the module (and the reference), then return cached GPU memory to the driver."""
        with self._lock:
            for module in (self._module, self._reference):
                if module is not None:
                    module.to("cpu")
            self._module = self._reference = None
            self._staging.clear()
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            elif self.device.type == "mps":
                torch.mps.empty_cache()

    def _require(self) -> nn.Module:
        if self._module is None:
            raise RuntimeError("this TorchImageModel was unloaded")
        return self._module

    @contextmanager
    def _reference_on_device(self) -> Iterator[nn.Module]:
        reference = self._reference
        if reference is None:
            raise RuntimeError("this TorchImageModel was unloaded")
        if self.device.type == "cpu":
            yield reference
            return
        try:
            yield reference.to(self.device)
        finally:
            reference.to("cpu")


def cpu_has_native(precision: str) -> bool:
    """Whether this CPU runs ``precision`` convolutions natively (oneDNN); always true for ``fp32``."""
    if precision == "fp32":
        return True
    probe = {"bf16": "_is_mkldnn_bf16_supported", "fp16": "_is_mkldnn_fp16_supported"}[precision]
    try:
        return torch.backends.mkldnn.is_available() and bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):  # an older or stripped build: assume not
        return False


def _checked_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown torch device {name!r}") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"device {name!r} asked for, but this machine has {count} CUDA device(s)")
        if device.index is None:
            device = torch.device("cuda", 0)
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {name!r} asked for, but MPS is not available here")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use cpu, cuda[:N] or mps")
    return device
