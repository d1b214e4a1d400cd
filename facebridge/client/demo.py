"""``facebridge demo``: a 24-frame linear EXR plate from package-shipped photos, through the whole pipeline.

Target: scikit-image's ``astronaut`` under a slow synthetic camera move (push-in plus drift).
Source: matplotlib's ``grace_hopper.jpg``. Writes ``plate/``, ``swapped/``, ``report.json`` and a
before/after ``contact_sheet.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio

from facebridge.srgb import linear_to_srgb8, srgb_decode

from .options import add_process_arguments
from .process_cmd import run as run_process

FRAME_SIZE = 480


def astronaut_rgb8() -> np.ndarray:
    """``(512, 512, 3)`` uint8 sRGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def grace_hopper_path() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def camera_move(t: float, image_size: int, frame_size: int) -> np.ndarray:
    """2x3 affine (frame pixels <- image pixels) at time ``t`` in [0, 1]: slow push-in with a drift."""
    zoom = (frame_size / (0.92 * image_size)) * (1.0 + 0.08 * t)
    centre = np.array([image_size * (0.47 + 0.03 * t), image_size * (0.40 + 0.02 * np.sin(np.pi * t))])
    offset = frame_size / 2.0 - zoom * centre
    return np.array([[zoom, 0.0, offset[0]], [0.0, zoom, offset[1]]], np.float64)


def write_demo_plate(folder: Path, frames: int, first: int = 1001) -> str:
    """Write ``plate.####.exr`` (half R,G,B,A, scene-linear Rec.709) and return the pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    linear = srgb_decode(astronaut_rgb8().astype(np.float32) / 255.0)
    size = linear.shape[0]
    for k in range(frames):
        matrix = camera_move(k / max(1, frames - 1), size, FRAME_SIZE)
        rgb = cv2.warpAffine(linear, matrix, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT)
        rgba = np.concatenate([np.clip(rgb, 0.0, None), np.ones((FRAME_SIZE, FRAME_SIZE, 1), np.float32)], axis=2)
        spec = oiio.ImageSpec(FRAME_SIZE, FRAME_SIZE, 4, oiio.HALF)
        spec.channelnames = ("R", "G", "B", "A")
        spec.attribute("compression", "zip")
        path = folder / f"plate.{first + k:04d}.exr"
        out = oiio.ImageOutput.create(str(path))
        if out is None or not out.open(str(path), spec) or not out.write_image(rgba):
            raise OSError(f"cannot write {path}: {oiio.geterror()}")
        out.close()
    return str(folder / "plate.####.exr")


def _display(path: str) -> np.ndarray:
    """sRGB uint8 view of a linear EXR's RGB."""
    return linear_to_srgb8(np.asarray(oiio.ImageBuf(path).get_pixels(oiio.FLOAT))[..., :3])


def contact_sheet(pairs: list[tuple[str, str]], path: Path, thumb: int = 240) -> None:
    """Top row: plates; bottom row: results, sRGB PNG."""
    tops = [cv2.resize(_display(a), (thumb, thumb), interpolation=cv2.INTER_AREA) for a, _ in pairs]
    bottoms = [cv2.resize(_display(b), (thumb, thumb), interpolation=cv2.INTER_AREA) for _, b in pairs]
    sheet = np.concatenate([np.concatenate(tops, axis=1), np.concatenate(bottoms, axis=1)], axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    frames = int(args.frames)
    plate_pattern = write_demo_plate(out / "plate", frames)
    result_pattern = str(out / "swapped" / "swapped.####.exr")
    parser = argparse.ArgumentParser(prog="facebridge process")
    add_process_arguments(parser)
    code = run_process(parser.parse_args([
        "--source", str(grace_hopper_path()), "--input", plate_pattern, "--output", result_pattern,
        "--frames", f"1001-{1000 + frames}", "--report", str(out / "report.json"), "--progress", args.progress,
        "--shot", "demo",
    ]))
    picks = sorted({1001, 1000 + frames, *np.linspace(1001, 1000 + frames, 6).round().astype(int).tolist()})
    pairs = [(plate_pattern.replace("####", f"{f:04d}"), result_pattern.replace("####", f"{f:04d}")) for f in picks]
    if all(Path(b).exists() for _, b in pairs):
        contact_sheet(pairs, out / "contact_sheet.png")
        print(f"facebridge demo: {frames} frames in {out}; contact sheet {out / 'contact_sheet.png'}")
    return code
