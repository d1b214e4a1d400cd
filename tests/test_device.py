"""Issue 15: ``--device auto`` decides ``cpu`` without importing PyTorch where the machine has no GPU driver
(a server's start no longer pays ~2 s for it); wherever a GPU may be, and for explicit devices, PyTorch is
asked as before."""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

import pytest

from inference_server.server.device import (
    GPU_DRIVER_FILES,
    GPU_DRIVER_LIBRARIES,
    _ldconfig_listing,
    find_driver_library,
    gpu_driver_present,
    library_in,
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


LISTING = """1302 libs found in cache `/etc/ld.so.cache'
\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12
\tlibcuda-stub.so (libc6,x86-64) => /opt/stubs/libcuda-stub.so
\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
\tlibamdhip64.so.6 (libc6,x86-64) => /opt/rocm/lib/libamdhip64.so.6
"""


def test_a_driver_library_is_found_in_the_loader_cache_or_the_library_path_by_its_exact_name() -> None:
    assert library_in("cuda", LISTING, []) == "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    assert library_in("amdhip64", LISTING, []) == "/opt/rocm/lib/libamdhip64.so.6"
    runtime_only = LISTING.replace("libcuda.so.1 ", "libcudaX.so.1 ")  # only libcudart and a stub are left
    assert library_in("cuda", runtime_only, []) is None
    assert library_in("nvcuda", LISTING, []) is None
    folders = [("/opt/a", ["libcudart.so", "libcuda.so.550.54.15.x"]), ("/opt/b", ["notes.txt", "libcuda.so"])]
    assert library_in("cuda", "", folders) == "/opt/b/libcuda.so"   # the first folder has only look-alikes
    assert library_in("cuda", "", folders[:1]) is None
    assert library_in("cuda", "garbage => without an entry\n\n", []) is None


def test_the_loader_lookup_answers_as_ctypes_does_on_this_machine(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same found / not found as ``ctypes.util.find_library`` for the driver names and for a sample of the
    libraries this machine's loader cache holds; and a library put in a folder of ``LD_LIBRARY_PATH`` is found."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the loader lookup is Linux's")
    listing = _ldconfig_listing()
    names = sorted({line.split()[0].split(".so")[0][3:] for line in listing.splitlines()
                    if "=>" in line and line.split()[0].startswith("lib")})
    assert names, "ldconfig -p listed no library"
    for name in [*GPU_DRIVER_LIBRARIES, *names[::max(1, len(names) // 25)]]:
        assert (find_driver_library(name) is None) == (ctypes.util.find_library(name) is None), name
    (tmp_path / "libamdhip64.so.6").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", os.pathsep.join(["/nonexistent-folder", str(tmp_path)]))
    assert find_driver_library("amdhip64") == str(tmp_path / "libamdhip64.so.6")


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
