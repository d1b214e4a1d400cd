"""benchmarks/gpu.py runs on the CPU as a smoke test (issue 15): its table has every row and no memory grows."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from types import ModuleType

from support import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"
NUMBER = r"\d+\.\d+"


def test_gpu_benchmark_runs_on_the_cpu() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--frames", "4"], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "device cpu;" in out and "4 frames per row" in out and "batches 1,4" in out
    for mode in ("swap", "restore", "swap+restore"):  # measured: frames/s, no GPU peak on a CPU, RSS samples
        assert re.search(rf"^{re.escape(mode)} +fp32 +1 +{NUMBER} +n/a +\d+/\d+/\d+ +n/a +RSS [+-]\d+",
                         out, re.MULTILINE), (mode, out)
    for mode in ("restore", "swap+restore"):  # faces of 4 frames in one GPEN call
        assert re.search(rf"^{re.escape(mode)} +fp32 +4 +{NUMBER} ", out, re.MULTILINE), (mode, out)
    assert re.search(r"^swap +fp32 +4 +skipped: no batch API", out, re.MULTILINE), out
    for precision in ("fp16", "bf16"):  # said, with the reason
        assert re.search(rf"^\(all\) +{precision} +- +skipped: \S", out, re.MULTILINE), (precision, out)
    assert "no memory growth over the second half of any row" in out


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def test_growth_over_the_second_half_is_what_fails_a_row() -> None:
    gpu = _benchmark()
    mib = gpu.MIB
    steady = gpu.Row("restore", "fp32", 1, 1.0, gpu.Memory("cpu", [100 * mib, 900 * mib, 930 * mib], [None] * 3))
    assert steady.growth_failure(64 * mib) == ""  # the first half may grow (caches filling)
    leaking = gpu.Row("restore", "fp32", 1, 1.0, gpu.Memory("cpu", [100 * mib, 200 * mib, 300 * mib],
                                                            [1000 * mib, 1000 * mib, 1100 * mib]))
    assert leaking.growth_failure(64 * mib) == "RSS +100 MiB, VRAM +100 MiB"
    single_call = gpu.Row("restore", "fp32", 4, 1.0, gpu.Memory("cpu", [100 * mib], [None]))
    assert single_call.growth_failure(0) == ""
