"""Issue 15: ``--device auto`` decides ``cpu`` without importing PyTorch where the machine has no GPU driver
(a server's start no longer pays ~2 s for it); wherever a GPU may be, and for explicit devices, PyTorch is
asked as before."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Collection

import pytest

from inference_server.server.device import (
    GPU_DRIVER_FILES,
    gpu_driver_present,
    resolve_device,
)
from inference_server.server.errors import InvalidRequest


def _probe(platform: str, files: Collection[str] = (), libraries: Collection[str] = ()) -> bool:
    """The probe on a made-up machine: ``files`` exist, ``libraries`` load."""
    return gpu_driver_present(platform, files.__contains__,
                              lambda name: f"lib{name}.so" if name in libraries else None)


def test_a_gpu_may_be_there_when_any_driver_leaves_a_trace() -> None:
    assert not _probe("linux")
    assert not _probe("win32")
    for path in GPU_DRIVER_FILES:
        assert _probe("linux", {path}), path
    assert _probe("linux", {"/proc/driver/nvidia/version"})
    assert _probe("linux", libraries={"cuda"})       # e.g. WSL2's libcuda without /proc/driver/nvidia
    assert _probe("win32", libraries={"nvcuda"})
    assert _probe("linux", libraries={"amdhip64"})   # ROCm: PyTorch answers torch.cuda there too
    assert not _probe("linux", {"/dev/null", "/proc/cpuinfo"}, {"m", "c"})
    assert _probe("darwin")                          # MPS is PyTorch's to tell


def _in_fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_auto_without_a_driver_is_cpu_without_importing_torch() -> None:
    code = ("import sys; from inference_server.server.device import resolve_device; "
            "print(resolve_device('auto', lambda: False), resolve_device(' AUTO ', lambda: False), "
            "resolve_device('', lambda: False), 'torch' in sys.modules)")
    assert _in_fresh_python(code) == "cpu cpu cpu False"


def test_auto_with_a_driver_asks_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed")
    code = ("import sys; from inference_server.server.device import resolve_device; "
            "device = resolve_device('auto', lambda: True); imported = 'torch' in sys.modules; import torch; "
            "mps = getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available(); "
            "expected = 'cuda:0' if torch.cuda.is_available() and torch.cuda.device_count() else "
            "('mps' if mps else 'cpu'); print(device == expected, imported)")
    assert _in_fresh_python(code) == "True True"


def test_explicit_devices_keep_their_answers_and_errors_whatever_the_probe_says() -> None:
    for probe in (lambda: False, lambda: True):
        assert resolve_device("cpu", probe) == "cpu"
        with pytest.raises(InvalidRequest, match=r"cuda:99.*CUDA device\(s\) are available"):
            resolve_device("cuda:99", probe)
        with pytest.raises(InvalidRequest, match="expected cuda or cuda:N"):
            resolve_device("cuda:x", probe)
        with pytest.raises(InvalidRequest, match="unknown device"):
            resolve_device("tpu", probe)
    if sys.platform != "darwin":
        with pytest.raises(InvalidRequest, match="MPS"):
            resolve_device("mps", lambda: False)
