"""GPU readiness: swap, restore and swap+restore frames/s per precision on a 1080p shot, faces batched across
frames, peak GPU memory, and RSS/VRAM over the run (no growth).

Models: a synthetic inswapper-format ONNX (tests/onnx_fixtures.py: pass-through, the real file's inputs) and a
GPEN with random weights saved as an official-layout ``.pth`` (GPEN-512 at full width on a GPU; on the CPU by
default a 128 px, 1/16-width GPEN, since a full GPEN-512 forward takes about 10 s on two cores), loaded the way the
server loads them (:class:`~inference_server.models.pool.ModelPool`, unverified files allowed, as
``--allow-unverified``). ``--models-dir DIR`` adds a second table with the real files found there
(``--swapper`` / ``--restorer``, registry names or file names in DIR).

Shot: matplotlib's Grace Hopper photo on a 1080p plate (benchmarks/_plates.py) under a slow push-in and
drift; her 68 landmarks are found once by dlib on the first frame and carried by the known camera move, so
detection (CPU work, not GPU) is not timed. Timed per frame: the face crop's conversion to model space and
the session's model stage (align, model(s), paste back into the crop), as the server's pipeline runs it
(:func:`~inference_server.server.model_stages.choose_stage`); not timed: making the frame's crop, and the
compositing into the plate (CPU work after the stage).

Batching: the server renders frame by frame, one face per model call. The ``batch`` column B > 1 measures
the stages' cross-frame batch API (``RestoreStage.run_many`` / ``AlignedSwapStage.run_many``): the faces of B
consecutive frames restored in one model call (the swap itself stays one face per call: inswapper files
have a fixed batch of 1). Only a PyTorch restorer (GPEN ``.pth``) has a batch API; ONNX restorers run face
by face, so their batched rows are skipped.

Precisions: fp16/bf16 apply to PyTorch models only (ONNX files run at the precision they were saved in, so
swap-only rows and ONNX restorers run once, at fp32). On the CPU the reduced precisions are skipped: without
native support (oneDNN AVX-512 BF16/FP16 or AMX) the runner would run fp32 anyway, and with it torch's CPU
reduced-precision path is not what a GPU server runs.

Memory: RSS (this process) and VRAM (device memory in use, every allocator: PyTorch's and ONNX Runtime's
arena) after frame 1, the middle frame and the last frame; peak = ``torch.cuda.max_memory_allocated``
during the row (PyTorch only: ONNX Runtime's CUDA arena is not measurable from Python; it shows in VRAM).
The run fails (exit 1) when RSS or VRAM grows by more than the tolerance over the second half of any row.

Usage: python benchmarks/gpu.py [--device auto|cpu|cuda[:N]] [--frames N] [--batches 1,4,8]
       [--models-dir DIR] [--precisions fp32,fp16,bf16] [--growth-mib 64]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _plates import one_face_1080p

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.sources import SourceFace, prepare_sources
from inference_server.models.pool import ModelPool
from inference_server.pipeline.crops import face_crop_box
from inference_server.plates.colour import ColourSpace
from inference_server.plates.image_file import read_plate
from inference_server.server.device import describe_device, resolve_device
from inference_server.server.errors import ModelUnavailable
from inference_server.server.model_stages import choose_stage
from inference_server.server.sessions import SessionParams

MODES = ("swap", "restore", "swap+restore")
PRECISIONS = ("fp32", "fp16", "bf16")
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------------------
# The shot
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shot:
    """A 1080p plate ``base`` (H, W, 3) float32 linear and its face's (68, 2) landmarks; frame k is the base
    under :func:`camera` (k)."""

    base: np.ndarray
    landmarks: np.ndarray

    def face(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``k``'s face crop (the pipeline's box, :func:`~inference_server.pipeline.crops.face_crop_box`),
        (h, w, 3) float32 linear, and its landmarks (68, 2) in crop pixels. Only the box is warped (the frame's
        warp with its origin moved to the box), not 2 M pixels per frame."""
        matrix = camera(k)
        points = (self.landmarks @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
        box = face_crop_box(points, self.base.shape[:2])
        shifted = matrix.copy()
        shifted[:, 2] -= (box.x0, box.y0)
        crop = cv2.warpAffine(self.base, shifted, (box.x1 - box.x0, box.y1 - box.y0), flags=cv2.INTER_LINEAR)
        return crop, points - np.array([box.x0, box.y0], np.float32)


def camera(k: int) -> np.ndarray:
    """(2, 3) affine of frame ``k``: a slow push-in (0.04 % per frame) and a drift (0.15 px per frame), so a
    500-frame shot stays well inside the plate."""
    matrix = cv2.getRotationMatrix2D((960.0, 540.0), 0.0, 1.0 + 0.0004 * k)
    matrix[0, 2] += 0.15 * k
    return matrix


def build_shot(work: Path, dlib: DlibFaceModels, colour: ColourSpace) -> tuple[Shot, list[SourceFace]]:
    base = read_plate(one_face_1080p(work / "base.exr"))
    rgb = np.ascontiguousarray(base.pixels[..., base.channel_index(("R", "G", "B"))], np.float32)
    faces = dlib.detect(colour.to_proxy8(rgb))
    if not faces:
        raise SystemExit("no face found on the benchmark plate")
    face = max(faces, key=lambda f: (f.rect[2] - f.rect[0]) * (f.rect[3] - f.rect[1]))
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[..., :3], np.uint8)  # (512, 512, 3) sRGB
    return Shot(rgb, np.asarray(face.landmarks, np.float32)), prepare_sources([("astronaut", photo)], dlib)


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------

def synthetic_models(folder: Path, gpen_size: int, gpen_narrow: float) -> tuple[str, str, str]:
    """Write the synthetic swapper and GPEN into ``folder``; (swapper file, restorer file, description)."""
    import torch
    from onnx_fixtures import make_inswapper

    from inference_server.models.gpen import GpenConfig, GpenGenerator

    folder.mkdir(parents=True, exist_ok=True)
    make_inswapper(folder)  # inswapper_128.onnx: the registry's record (size, template), its digest unverified
    torch.manual_seed(0)
    config = GpenConfig(size=gpen_size, narrow=gpen_narrow)
    gpen = folder / f"synthetic_gpen_{gpen_size}.pth"
    torch.save(GpenGenerator(config).state_dict(), gpen)
    return "inswapper_128", gpen.name, (f"synthetic inswapper-format ONNX + GPEN-{gpen_size} .pth "
                                     f"(width x{gpen_narrow:g}, random weights)")


# ---------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------

def rss_bytes() -> int | None:
    """This process's resident set (Linux /proc, else psutil when installed, else None)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]  # (optional, and it ships no type hints)
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


@dataclass
class Memory:
    """RSS and VRAM samples of one row (bytes; None where not measurable) and the torch peak."""

    device: str
    rss: list[int | None] = field(default_factory=list)
    vram: list[int | None] = field(default_factory=list)

    def reset(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def sample(self) -> None:
        gc.collect()
        self.rss.append(rss_bytes())
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)
            free, total = torch.cuda.mem_get_info(self.device)
            self.vram.append(total - free)
        else:
            self.vram.append(None)

    def peak(self) -> int | None:
        if not self.device.startswith("cuda"):
            return None
        import torch

        return int(torch.cuda.max_memory_allocated(self.device))


def growth(samples: Sequence[int | None]) -> int | None:
    """Growth from the middle sample to the last (bytes); None without three samples."""
    if len(samples) < 3 or samples[1] is None or samples[2] is None:
        return None
    return samples[2] - samples[1]


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f}"


# ---------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Row:
    mode: str
    precision: str
    batch: int
    fps: float | None = None
    memory: Memory | None = None
    skipped: str = ""
    ran: str = ""  # the precision that ran, when it differs (the runner's note)
    frames: int = 0
    retried: int = 0  # faces recomputed in fp32

    def growth_failure(self, tolerance: int) -> str:
        if self.memory is None:
            return ""
        bad = [f"{name} +{g / MIB:.0f} MiB" for name, samples in (("RSS", self.memory.rss), ("VRAM", self.memory.vram))
               if (g := growth(samples)) is not None and g > tolerance]
        return ", ".join(bad)


def run_row(stage: Any, shot: Shot, sources: list[SourceFace], frames: int, batch: int, device: str,
            colour: ColourSpace) -> tuple[float, int, int, Memory]:
    """Run the stage's model path over whole batches of ``batch`` frames (``frames`` rounded down to a
    multiple of ``batch``, at least one batch), each call taking the faces of ``batch`` consecutive frames.

    Timed per call: each face's conversion to model space and the stage. Returns frames/s, the frames run,
    the faces recomputed in fp32 (reduced precision gave non-finite values) and the memory sampled after the
    first call, after the call that reaches the middle frame and after the last (fewer samples when the
    calls are fewer than three)."""
    synchronise = _synchroniser(device)
    total = max(batch, frames - frames % batch)

    def call(first: int) -> tuple[float, int]:
        faces = [shot.face(first + i) for i in range(batch)]
        start = time.perf_counter()
        crops = [colour.to_model(crop) for crop, _ in faces]
        if batch == 1:
            payloads = [stage.run(crops[0], faces[0][1], sources[0], identity=sources)]
        else:
            payloads = stage.run_many(crops, [p for _, p in faces], identity=sources)  # (batched stages only)
        synchronise()
        elapsed = time.perf_counter() - start
        return elapsed, sum(int(p.get("fp32_fallback", np.zeros(1))[0]) for p in payloads)

    call(0)  # warm-up, not timed: this batch shape's kernels and buffers
    memory = Memory(device)
    memory.reset()
    elapsed = 0.0
    retried = 0
    done = 0
    while done < total:
        seconds, broken = call(done)
        elapsed += seconds
        retried += broken
        first = done == 0
        done += batch
        if first or done == total or (len(memory.rss) == 1 and done >= total / 2):
            memory.sample()
    return total / elapsed, total, retried, memory


def _synchroniser(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def table(models: Path, cache: Path, swapper: str, restorer: str, device: str, frames: int,
          batches: Sequence[int], precisions: Sequence[str], shot: Shot, sources: list[SourceFace],
          colour: ColourSpace, cpu_reduced: bool) -> list[Row]:
    """Every (mode, precision, batch) row for one set of model files (``cache``: the digest memo's folder)."""
    from inference_server.models.torch_runner import cpu_has_native

    rows: list[Row] = []
    for precision in precisions:
        reduced_skip = ""
        if device == "cpu" and precision != "fp32" and not cpu_reduced:
            reduced_skip = ("no native CPU support: the runner would run fp32" if not cpu_has_native(precision)
                            else "torch's CPU reduced-precision path is not what a GPU runs (--cpu-reduced)")
        pool = ModelPool(models, cache, device, allow_unverified=True)
        stage: object = None
        try:
            for mode in MODES:
                if reduced_skip:
                    rows.append(Row("(all)", precision, 0, skipped=reduced_skip))
                    break
                params = SessionParams(mode=mode, swapper=swapper, restorer=restorer, precision=precision,
                                       allow_unverified=True, parser="none", occluder="none",
                                       pixel_boost=0)
                try:
                    stage, notes = choose_stage(pool, params)
                except ModelUnavailable as exc:  # e.g. an onnxruntime without the CUDA provider
                    rows.append(Row(mode, precision, 0, skipped=f"cannot load: {exc}"))
                    continue
                torch_restorer = hasattr(getattr(stage, "restorer", None), "restore_many")
                if precision != "fp32" and not (torch_restorer and "restore" in mode):
                    rows.append(Row(mode, precision, 0, skipped="ONNX runs at its file's precision: see fp32"))
                    continue
                ran = next((n.split("running ")[-1] for n in notes if "running fp32" in n), "")
                for b in batches:
                    if b > 1 and not (torch_restorer and "restore" in mode):
                        rows.append(Row(mode, precision, b, skipped="no batch API (one face per ONNX call)"))
                        continue
                    fps, done, retried, memory = run_row(stage, shot, sources, frames, b, device, colour)
                    rows.append(Row(mode, precision, b, fps, memory, ran=ran, frames=done, retried=retried))
        finally:
            stage = None  # (its ONNX sessions go with it)
            pool.unload()
            gc.collect()
    return rows


def print_table(title: str, rows: list[Row], frames: int) -> None:
    print(title)
    head = (f"{'mode':<13} {'prec':<5} {'batch':>5} {'frames/s':>9} {'peak GPU MiB':>12} "
            f"{'RSS MiB f1/mid/end':>20} {'VRAM MiB f1/mid/end':>21} {'growth 2nd half':>16}")
    print(head)
    print("-" * len(head))
    for row in rows:
        if row.skipped:
            print(f"{row.mode:<13} {row.precision:<5} {row.batch or '-':>5}  skipped: {row.skipped}")
            continue
        assert row.memory is not None and row.fps is not None
        m = row.memory
        rss = "/".join(mib(v) for v in m.rss)
        vram = "/".join(mib(v) for v in m.vram) if any(v is not None for v in m.vram) else "n/a"
        grow = ", ".join(f"{name} {'n/a' if g is None else f'{g / MIB:+.0f}'}"
                         for name, g in (("RSS", growth(m.rss)), ("VRAM", growth(m.vram))))
        ran = f"  (ran {row.ran})" if row.ran else ""
        if row.frames != frames:
            ran += f"  ({row.frames} frames: whole batches)"
        if row.retried:
            ran += f"  ({row.retried} faces recomputed in fp32)"
        print(f"{row.mode:<13} {row.precision:<5} {row.batch:>5} {row.fps:>9.2f} {mib(m.peak()):>12} "
              f"{rss:>20} {vram:>21} {grow:>16}{ran}")
    print(f"({frames} frames per row after one untimed warm-up call; memory after the first call, the middle and "
          "the last; peak = torch.cuda.max_memory_allocated, ONNX Runtime's arena shows in VRAM only)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--frames", type=int, default=None, help="frames per row (default: 500 on CUDA, else 4)")
    parser.add_argument("--batches", default="1,4,8", help="faces per call across frames (those <= frames run)")
    parser.add_argument("--precisions", default="fp32,fp16,bf16")
    parser.add_argument("--models-dir", type=Path, default=None, help="also run the real files found here")
    parser.add_argument("--swapper", default="inswapper_128", help="with --models-dir: registry name or file")
    parser.add_argument("--restorer", default="GPEN-BFR-512", help="with --models-dir: registry name or file")
    parser.add_argument("--gpen-size", type=int, default=None, help="synthetic GPEN size (default 512; CPU 128)")
    parser.add_argument("--gpen-narrow", type=float, default=None,
                        help="synthetic GPEN width factor (default 1; CPU 0.0625)")
    parser.add_argument("--growth-mib", type=float, default=64.0,
                        help="largest RSS or VRAM growth allowed over a row's second half")
    parser.add_argument("--cpu-reduced", action="store_true", help="run fp16/bf16 rows on the CPU too")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    on_gpu = device.startswith("cuda")
    frames = args.frames if args.frames is not None else (500 if on_gpu else 4)
    if frames < 1:
        parser.error("--frames must be at least 1")
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if any(p not in PRECISIONS for p in precisions):
        parser.error(f"--precisions: choose among {', '.join(PRECISIONS)}")
    wanted = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    batches = [b for b in wanted if 1 <= b <= frames] or [1]
    gpen_size = args.gpen_size or (512 if device != "cpu" else 128)
    gpen_narrow = args.gpen_narrow or (1.0 if device != "cpu" else 0.0625)

    import torch

    with tempfile.TemporaryDirectory(prefix="fb-gpu-bench-") as temporary:
        work = Path(temporary)
        colour = ColourSpace()
        dlib = DlibFaceModels()
        shot, sources = build_shot(work, dlib, colour)
        swapper, restorer, synthetic = synthetic_models(work / "models", gpen_size, gpen_narrow)
        print(f"device {describe_device(device)}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
              f"1080p shot, {frames} frames per row; batches {','.join(map(str, batches))}"
              + (f" (dropped: {','.join(str(b) for b in wanted if b not in batches)} > frames)"
                 if len(batches) < len(wanted) else ""))
        sets = [(synthetic, work / "models", swapper, restorer)]
        if args.models_dir is not None:
            sets.append((f"models in {args.models_dir}", args.models_dir, args.swapper, args.restorer))
        failures = []
        for title, folder, swap_name, restore_name in sets:
            rows = table(folder, work / "digests", swap_name, restore_name, device, frames, batches, precisions, shot,
                         sources, colour, args.cpu_reduced)
            print()
            print_table(title, rows, frames)
            failures += [f"{title}: {r.mode} {r.precision} batch {r.batch}: {bad}" for r in rows
                         if (bad := r.growth_failure(int(args.growth_mib * MIB)))]
    if failures:
        print(f"\nmemory grew over the second half by more than {args.growth_mib:g} MiB:")
        print("\n".join(f"  {f}" for f in failures))
        return 1
    print(f"\nno memory growth over the second half of any row beyond {args.growth_mib:g} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
