"""First render and blend-only re-render of a 12-frame 1080p shot, as ratios measured in the same run.

The shot: the first frames of ``../shared/data/faces/lp_d18.mp4`` (a 480² frontal talking head) scaled to
1080 px high and centred on a 1920x1080 linear half-float RGBA plate (one large face, ~600 px). Measured:

1. the EXR floor: OpenImageIO reading each plate and writing it back (zip, half), the I/O any render pays;
2. the first render: ``facebridge process`` end to end (private server, fresh cache: analysis, swap, QC,
   encode) — printed as a ratio to (1);
3. a blend-only whole re-render (``--blend 0.8``, same cache): printed as the speed-up over (2);
4. the per-stage table (mean ms per frame) of both renders, from their reports;
5. the re-render's own I/O floor: OpenImageIO reading only the rows of each plate that the first render
   changed (whole zip chunks) and writing them as a band, beside a tenth of the first render's time.

With ``--baseline REV`` the same two renders run first with the code of git revision ``REV`` (extracted with
``git archive`` into a temporary folder, run from there), in the same run on the same plates, and the output
is compared pixel for pixel with the current code's: how many frames are bit-identical, and the largest
difference elsewhere. (``5ec326d`` is the code before issue 15's speed work.)

With ``--running-server`` both renders are also measured through one ``facebridge serve`` started beforehand
(``--server``), as the hosts use a server: neither pays a server start, and the re-render finds the first render's
memos in that server's memory.

With ``--runs N`` the floor and the renders are measured N times in turn (each render with a fresh cache), each
round printed, then the medians: on a shared machine one round's figures can move by 10-20%. Each render's CPU
seconds (user + system of ``facebridge process`` and its server) are printed beside its wall time: they move far
less with the machine's speed, so they show a change in the work done that the wall-clock ratios may hide.

Needs ``../shared`` (the clip). Usage:
python benchmarks/first_render.py [--frames 12] [--keep DIR] [--baseline REV] [--runs N] [--running-server]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _plates import astronaut_png, write_half_rgba

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "faces" / "lp_d18.mp4"
PACKAGES = ("facebridge", "inference_server", "protos")  # what a render imports from the repository


def srgb_to_linear(rgb8: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB -> float32 linear (the sRGB EOTF)."""
    v = rgb8.astype(np.float32) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def make_shot(folder: Path, frames: int) -> Path:
    """``plate.####.exr`` frames 1..frames of the clip, 1080 px high, centred on 1920x1080; the pattern."""
    capture = cv2.VideoCapture(str(CLIP))
    for k in range(1, frames + 1):
        ok, bgr = capture.read()
        if not ok:
            raise SystemExit(f"{CLIP}: only {k - 1} frames")
        face = cv2.resize(bgr[..., ::-1], (1080, 1080), interpolation=cv2.INTER_CUBIC)
        rgba = np.zeros((1080, 1920, 4), np.float32)
        rgba[:, 420:1500, :3] = srgb_to_linear(np.ascontiguousarray(face))
        rgba[..., 3] = 1.0
        write_half_rgba(folder / f"plate.{k:04d}.exr", rgba)
    capture.release()
    return folder / "plate.####.exr"


def write_half_zip(out_path: Path, spec: oiio.ImageSpec, pixels: np.ndarray, top: int = 0) -> None:
    """Write ``pixels`` (rows ``top`` on of the image ``spec`` describes) to ``out_path``: same channels, half, zip;
    a band keeps its rows' place in the frame."""
    out_spec = oiio.ImageSpec(spec.width, pixels.shape[0], spec.nchannels, oiio.HALF)
    if pixels.shape[0] != spec.height:
        out_spec.y, out_spec.full_height, out_spec.full_y = spec.y + top, spec.full_height, spec.full_y
    out_spec.channelnames = spec.channelnames
    out_spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(out_path))
    if out is None:
        raise SystemExit(oiio.geterror())
    out.open(str(out_path), out_spec)
    out.write_image(pixels)
    out.close()


def read_rows(plate: Path, rows: tuple[int, int] | None = None) -> tuple[oiio.ImageSpec, np.ndarray]:
    """OpenImageIO's spec of ``plate`` and its pixels as float32: all of them, or only the rows ``[top, bottom)``."""
    src = oiio.ImageInput.open(str(plate))
    if src is None:
        raise SystemExit(oiio.geterror())
    spec = src.spec()
    pixels = src.read_image(oiio.FLOAT) if rows is None else \
        src.read_scanlines(0, 0, spec.y + rows[0], spec.y + rows[1], 0, 0, spec.nchannels, oiio.FLOAT)
    src.close()
    if pixels is None:
        raise SystemExit(f"{plate}: {oiio.geterror()}")
    return spec, pixels


def exr_floor(folder: Path, frames: int) -> float:
    """Seconds OpenImageIO takes to read every plate and write it back (same channels, half, zip)."""
    t = time.perf_counter()
    for k in range(1, frames + 1):
        spec, pixels = read_rows(folder / f"plate.{k:04d}.exr")
        write_half_zip(folder / f"io.{k:04d}.exr", spec, pixels)
    return time.perf_counter() - t


def changed_rows(plate: Path, output: Path) -> tuple[int, int]:
    """The rows ``[top, bottom)`` of ``plate``'s chunks from the first to the last holding a row where ``output``
    differs from it in any bit (the rows a bit-identical re-render must composite and encode again): the server's
    own ``changed_chunks`` over the plate file's chunk layout."""
    from inference_server.plates.exr_chunks import band_rows, scanline_file
    from inference_server.plates.image_file import changed_chunks

    layout = scanline_file(plate.read_bytes())
    if layout is None:
        raise SystemExit(f"{plate}: not a single-part scan-line EXR")
    a = np.asarray(oiio.ImageBuf(str(plate)).get_pixels(oiio.FLOAT), np.float32)
    b = np.asarray(oiio.ImageBuf(str(output)).get_pixels(oiio.FLOAT), np.float32)
    changed = changed_chunks(a, b, layout.lines_per_chunk)
    return band_rows(layout, changed[0], changed[-1]) if changed else (0, 0)


def face_rows_floor(folder: Path, bands: list[tuple[int, int]]) -> float:
    """Seconds OpenImageIO takes to read only the rows ``bands[k - 1]`` of each plate ``k`` and write them as an
    EXR band (same channels, half, zip): the least I/O of a blend-only re-render whose output is bit-identical (the
    face's rows must be decoded, composited again and encoded again; the other rows can be the plate file's own
    bytes, as ``facebridge`` splices them)."""
    t = time.perf_counter()
    for k, (top, bottom) in enumerate(bands, start=1):
        if bottom <= top:
            continue
        spec, pixels = read_rows(folder / f"plate.{k:04d}.exr", (top, bottom))
        write_half_zip(folder / f"band.{k:04d}.exr", spec, pixels, top)
    return time.perf_counter() - t


@dataclass(frozen=True)
class Timed:
    """A render's wall-clock seconds and its CPU seconds (user + system, of ``facebridge process`` and of the
    processes it waited for: its private server and the server's child). On a machine whose speed drifts, the
    CPU time of the same work moves much less than its wall time."""

    wall: float
    cpu: float


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def render(pattern: Path, out: Path, source: Path, cache: Path, report: Path, extra: list[str],
           code: Path = REPO) -> Timed:
    """What ``facebridge process`` takes, end to end, with the code in the folder ``code``."""
    command = [sys.executable, "-m", "facebridge", "process", "--input", str(pattern), "--output", str(out),
               "--source", str(source), "--cache-dir", str(cache), "--report", str(report), "--progress", "none",
               *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(code)}
    cpu, t = _cpu_of_children(), time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=code)
    timed = Timed(time.perf_counter() - t, _cpu_of_children() - cpu)
    if done.returncode != 0:
        raise SystemExit(f"facebridge process failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return timed


def extract(revision: str, folder: Path) -> Path:
    """The repository's code at ``revision``, extracted into ``folder`` (git archive)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def compiled(code: Path) -> Path:
    """``code`` with its packages compiled to bytecode, as an installed package's are (pip compiles at install): with
    PYTHONDONTWRITEBYTECODE set (this development machine) a tree without ``__pycache__`` would compile every module
    on every start (~0.2 s a process), which one code extracted for comparison would pay and the other not."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(code / name) for name in PACKAGES)], check=True,
                   capture_output=True)
    return code


def compare(before: Path, after: Path, frames: int, name: str) -> str:
    """How the two renders' outputs ``before/name.####.exr`` and ``after/...`` differ, in one line."""
    identical, largest = 0, 0.0
    for k in range(1, frames + 1):
        a = np.asarray(oiio.ImageBuf(str(before / f"{name}.{k:04d}.exr")).get_pixels(oiio.FLOAT), np.float32)
        b = np.asarray(oiio.ImageBuf(str(after / f"{name}.{k:04d}.exr")).get_pixels(oiio.FLOAT), np.float32)
        same = (a.view(np.uint32) == b.view(np.uint32)).all()
        identical += int(same)
        if not same:
            largest = max(largest, float(np.nanmax(np.abs(a - b))))
    return f"{identical}/{frames} frames bit-identical" + (f", largest difference {largest:.4g}" if largest else "")


def stage_table(reports: dict[str, Path]) -> None:
    loaded = {name: json.loads(path.read_text())["totals"]["mean_timings_ms"] for name, path in reports.items()}
    stages = sorted({s for t in loaded.values() for s in t})
    print(f"{'stage (mean ms/frame)':24s}" + "".join(f"{name:>16s}" for name in loaded))
    for stage in stages:
        print(f"{stage:24s}" + "".join(f"{loaded[name].get(stage, 0.0):16.1f}" for name in loaded))


def running_server(cache: Path, roots: list[Path], code: Path) -> tuple[subprocess.Popen[str], str]:
    """``facebridge serve`` with the code in ``code`` on a free loopback port, the model cache ``cache``, allowed
    ``roots``, the token of this environment's ``FACEBRIDGE_TOKEN``: the process and its address, once it serves."""
    command = [sys.executable, "-m", "facebridge", "serve", "--port", "0", "--cache-dir", str(cache),
               *(a for root in roots for a in ("--allow-root", str(root)))]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=code,
                              env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(code)})
    assert server.stdout is not None
    line = server.stdout.readline()  # "facebridge serving on HOST:PORT (device ...)"
    if not line.startswith("facebridge serving on "):
        server.kill()
        raise SystemExit(f"facebridge serve did not start: {line!r}")
    # the rest of its output is read as it comes, so the server never waits on a full pipe
    threading.Thread(target=server.stdout.read, daemon=True).start()
    return server, line.split()[3]


def warm_renders(pattern: Path, source: Path, folder: Path, code: Path) -> tuple[float, float]:
    """The first render and the blend-only re-render through one server started beforehand (as the hosts use
    one): no server start in either, and the re-render finds the first's memos in memory. Seconds of each."""
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    server, address = running_server(folder / "cache", [pattern.parent, out], code)
    try:
        extra = ["--server", address]
        first = render(pattern, out / "warm-first.####.exr", source, folder / "cache", folder / "warm-first.json",
                       extra, code).wall
        blend = render(pattern, out / "warm-blend.####.exr", source, folder / "cache", folder / "warm-blend.json",
                       [*extra, "--blend", "0.8"], code).wall
    finally:
        server.terminate()
        server.wait(timeout=30)
    return first, blend


def two_renders(pattern: Path, source: Path, folder: Path, code: Path) -> tuple[Timed, Timed, dict[str, Path]]:
    """The first render and the blend-only re-render (same fresh cache) with the code in ``code``: their
    times and reports; outputs in ``folder/out``."""
    cache = folder / "cache"
    reports = {"first": folder / "first.json", "blend": folder / "blend.json"}
    first = render(pattern, folder / "out" / "first.####.exr", source, cache, reports["first"], [], code)
    blend = render(pattern, folder / "out" / "blend.####.exr", source, cache, reports["blend"], ["--blend", "0.8"],
                   code)
    return first, blend, reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3, help="EXR floor repeats (median)")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    parser.add_argument("--baseline", help="also run the code of this git revision, in the same run")
    parser.add_argument("--runs", type=int, default=1, help="rounds of floor and renders (medians printed)")
    parser.add_argument("--running-server", action="store_true",
                        help="also both renders through one server started beforehand (no server start)")
    args = parser.parse_args()
    if not CLIP.is_file():
        print(f"{CLIP} not found: this benchmark needs ../shared", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fb-first-"))
    try:
        plates = work / "plates"
        plates.mkdir()
        pattern = make_shot(plates, args.frames)
        source = astronaut_png(work / "astronaut.png")
        codes = {"now": compiled(REPO)}
        if args.baseline:
            codes = {"baseline": compiled(extract(args.baseline, work / "baseline")), **codes}
        print(f"{args.frames} frames 1920x1080 half RGBA, one ~600 px face")
        rounds: list[tuple[float, dict[str, tuple[Timed, Timed, dict[str, Path]]]]] = []
        for run in range(max(1, args.runs)):
            floor = statistics.median(exr_floor(plates, args.frames) for _ in range(args.repeats))
            renders = {name: two_renders(pattern, source, work / f"{name}-run{run}", code)
                       for name, code in codes.items()}
            rounds.append((floor, renders))
            print(f"{'round ' + str(run + 1) + ': ' if args.runs > 1 else ''}EXR read+write (OpenImageIO)   "
                  f"{floor:7.2f} s")
            for name, (first, blend, _) in renders.items():
                print(f"[{name}] first render (process)   {first.wall:7.2f} s   {first.wall / floor:5.1f}x the EXR "
                      f"floor (goal <= 6x)   CPU {first.cpu:6.2f} s")
                print(f"[{name}] blend-only re-render     {blend.wall:7.2f} s   {first.wall / blend.wall:5.1f}x faster "
                      f"than the first (goal >= 10x)   CPU {blend.cpu:6.2f} s")
            if args.running_server:
                os.environ.setdefault("FACEBRIDGE_TOKEN", "first-render-benchmark")
                for name, code in codes.items():
                    warm_first, warm_blend = warm_renders(pattern, source, work / f"{name}-warm{run}", code)
                    print(f"[{name}] running server: first render {warm_first:6.2f} s "
                          f"({warm_first / floor:.1f}x the floor), blend-only re-render {warm_blend:6.2f} s "
                          f"({warm_blend / floor:.1f}x the floor, {warm_first / warm_blend:.1f}x faster than its first)")
        if args.runs > 1:
            print(f"medians of {args.runs} rounds: EXR floor {statistics.median(f for f, _ in rounds):.2f} s")
            for name in codes:
                firsts = [r[name][0].wall for _, r in rounds]
                blends = [r[name][1].wall for _, r in rounds]
                ratios = [r[name][0].wall / f for f, r in rounds]
                speedups = [r[name][0].wall / r[name][1].wall for _, r in rounds]
                cpu_first = statistics.median(r[name][0].cpu for _, r in rounds)
                cpu_blend = statistics.median(r[name][1].cpu for _, r in rounds)
                print(f"[{name}] first render {statistics.median(firsts):6.2f} s "
                      f"({min(firsts):.2f}-{max(firsts):.2f}), {statistics.median(ratios):.1f}x the floor; "
                      f"re-render {statistics.median(blends):6.2f} s ({min(blends):.2f}-{max(blends):.2f}), "
                      f"{statistics.median(speedups):.1f}x faster; CPU {cpu_first:.2f} / {cpu_blend:.2f} s")
        renders = rounds[-1][1]
        first_out = work / f"now-run{len(rounds) - 1}" / "out"
        bands = [changed_rows(plates / f"plate.{k:04d}.exr", first_out / f"first.{k:04d}.exr")
                 for k in range(1, args.frames + 1)]
        rows = statistics.median(bottom - top for top, bottom in bands)
        band_floor = statistics.median(face_rows_floor(plates, bands) for _ in range(args.repeats))
        first_now = statistics.median(r["now"][0].wall for _, r in rounds)
        print(f"the face's rows alone (median {rows:.0f} of 1080 a frame), read and written: {band_floor:.2f} s; "
              f"a 10x re-render has {first_now / 10:.2f} s for everything")
        tables = {f"{name}:{kind}": path for name, (_, _, reports) in renders.items() for kind, path in reports.items()}
        stage_table(tables)
        if args.baseline:
            last = len(rounds) - 1
            for kind in ("first", "blend"):
                same = compare(work / f"baseline-run{last}" / "out", work / f"now-run{last}" / "out", args.frames, kind)
                print(f"{kind:5s} output, baseline vs now: {same}")
    finally:
        if args.keep is not None:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
