"""Choosing the compute device: CUDA or MPS when present, else the CPU.

``auto`` on a machine that plainly has no GPU driver decides ``cpu`` without importing PyTorch (about two
seconds of a server's start, for nothing: the embedded models never use it); wherever a GPU may be there,
PyTorch is asked as before.

On Linux a driver library is looked up the way the dynamic loader finds it (which is how PyTorch's CUDA or ROCm
runtime loads it): in the loader's cache (``ldconfig -p``, one process) or a folder of ``LD_LIBRARY_PATH``.
``ctypes.util.find_library`` would also try to link against it with ``gcc`` and ``ld`` for every name it does not
find in that cache: nine processes and ~0.2 s of every server's start on a machine without a GPU.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from types import ModuleType

from .errors import InvalidRequest

# Files a GPU driver leaves: NVIDIA's kernel module (/proc, its device nodes), AMD ROCm's compute node (PyTorch's
# ROCm build answers torch.cuda), the WSL2 GPU paravirtualisation node.
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
# Driver libraries a CUDA or ROCm runtime loads (libcuda.so / nvcuda.dll, libamdhip64.so).
GPU_DRIVER_LIBRARIES = ("cuda", "nvcuda", "amdhip64")


def library_in(name: str, ldconfig_listing: str, folders: Iterable[tuple[str, Iterable[str]]]) -> str | None:
    """Where ``lib<name>.so`` (or a versioned ``lib<name>.so.N...``) is: an entry of ``ldconfig_listing`` (the
    output of ``ldconfig -p``: ``\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/.../libcuda.so.1`` per line), else a
    file among ``folders`` (each a folder and the names of the files in it, in search order); None when neither
    has it. ``cuda`` is ``libcuda`` alone, never ``libcudart`` or ``libcuda-stub``."""
    soname = re.compile(rf"lib{re.escape(name)}\.so(?:\.[0-9]+)*")
    for line in ldconfig_listing.splitlines():
        entry, arrow, path = line.partition("=>")
        fields = entry.split()
        if arrow and fields and soname.fullmatch(fields[0]):
            return path.strip()
    for folder, names in folders:
        for file_name in names:
            if soname.fullmatch(file_name):
                return os.path.join(folder, file_name)
    return None


def _ldconfig_listing() -> str:
    """``ldconfig -p`` (the dynamic loader's cache), "" when it cannot be run."""
    ldconfig = shutil.which("ldconfig", path=os.pathsep.join((os.environ.get("PATH", ""), "/sbin", "/usr/sbin")))
    if ldconfig is None:
        return ""
    try:
        done = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, errors="replace", timeout=10,
                              env={**os.environ, "LC_ALL": "C", "LANG": "C"}, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def _library_path_folders() -> list[tuple[str, list[str]]]:
    """The folders of ``LD_LIBRARY_PATH`` (those that can be listed) with their file names, in order."""
    found = []
    for folder in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)):
        try:
            found.append((folder, os.listdir(folder)))
        except OSError:
            continue
    return found


def driver_library_finder(platform: str = sys.platform) -> Callable[[str], str | None]:
    """Where the loader would find a driver library, by name (see the module docstring): on Linux from one listing
    of the loader's cache and of ``LD_LIBRARY_PATH``, made now and shared by the names asked for; elsewhere
    ``ctypes.util.find_library`` (Windows searches ``PATH`` for ``<name>.dll``, no process started)."""
    if not platform.startswith("linux"):
        return ctypes.util.find_library
    listing, folders = _ldconfig_listing(), _library_path_folders()
    return lambda name: library_in(name, listing, folders)


def find_driver_library(name: str, platform: str = sys.platform) -> str | None:
    """Where the loader would find driver library ``name`` (:func:`driver_library_finder`)."""
    return driver_library_finder(platform)(name)


def gpu_driver_present(platform: str = sys.platform, exists: Callable[[str], bool] = os.path.exists,
                       find_library: Callable[[str], str | None] | None = None) -> bool:
    """Whether this machine may have a GPU PyTorch can use: always on macOS (MPS); elsewhere when a GPU
    driver's files (:data:`GPU_DRIVER_FILES`) or a driver library (:data:`GPU_DRIVER_LIBRARIES`, found by
    ``find_library``, default :func:`driver_library_finder`'s, asked only when no such file is there) are present.
    False only when none is: then there is no CUDA device to find."""
    if platform == "darwin":
        return True
    if any(exists(path) for path in GPU_DRIVER_FILES):
        return True
    find = find_library if find_library is not None else driver_library_finder(platform)
    return any(find(name) for name in GPU_DRIVER_LIBRARIES)


def _torch() -> ModuleType | None:
    """PyTorch when it is installed (heavy: imported only when a GPU may be asked for), else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def resolve_device(requested: str, gpu_possible: Callable[[], bool] = gpu_driver_present) -> str:
    """Resolve ``auto | cpu | cuda | cuda:N | mps`` to a concrete device string.

    ``auto`` picks ``cuda:0`` when PyTorch sees a CUDA device, else ``mps`` on Apple silicon, else ``cpu``;
    when ``gpu_possible()`` says the machine has no GPU driver at all it is ``cpu`` without importing PyTorch.
    Asking for a device that is not there raises InvalidRequest naming what is available (PyTorch is asked).
    """
    requested = requested.strip().lower() or "auto"
    if requested == "cpu" or (requested == "auto" and not gpu_possible()):
        return "cpu"
    torch = _torch()
    cuda_count = torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0
    has_mps = bool(torch is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda:0" if cuda_count else ("mps" if has_mps else "cpu")
    if requested == "mps":
        if not has_mps:
            raise InvalidRequest("device 'mps' requested but Metal (MPS) is not available")
        return "mps"
    if requested == "cuda" or requested.startswith("cuda:"):
        index_text = requested.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise InvalidRequest(f"device '{requested}': expected cuda or cuda:N")
        index = int(index_text)
        if index >= cuda_count:
            raise InvalidRequest(f"device '{requested}' requested but {cuda_count} CUDA device(s) are available")
        return f"cuda:{index}"
    raise InvalidRequest(f"unknown device '{requested}' (expected auto, cpu, cuda[:N] or mps)")


def describe_device(device: str) -> str:
    """Human-readable device description, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(int(device.partition(':')[2] or 0))})"
    return device
