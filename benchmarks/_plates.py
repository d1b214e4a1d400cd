"""Benchmark plates built from package-shipped photos (no test data needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio


def write_half_rgba(path: Path, rgba: np.ndarray) -> Path:
    h, w, _ = rgba.shape
    spec = oiio.ImageSpec(w, h, 4, oiio.HALF)
    spec.channelnames = ("R", "G", "B", "A")
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    if out is None or not out.open(str(path), spec) or not out.write_image(np.ascontiguousarray(rgba, np.float32)):
        raise OSError(f"cannot write {path}: {oiio.geterror()}")
    out.close()
    return path


def noise_plate(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """Grain-like linear RGBA plate without faces (compresses like real footage, not like a flat card)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((height // 16, width // 16, 3), dtype=np.float32), (width, height))
    rgb = base * 0.4 + rng.normal(0.0, 0.02, (height, width, 3)).astype(np.float32)
    return write_half_rgba(path, np.concatenate([rgb, np.ones((height, width, 1), np.float32)], axis=2))


def one_face_1080p(path: Path) -> Path:
    """1920x1080 linear plate with matplotlib's Grace Hopper photo (one face) on a graded backdrop."""
    import matplotlib

    photo_path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    photo = cv2.imread(str(photo_path))
    if photo is None:
        raise FileNotFoundError(f"cannot read {photo_path}")
    photo = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (int(photo.shape[1] * 1.6), int(photo.shape[0] * 1.6)), interpolation=cv2.INTER_CUBIC)
    frame = np.full((1080, 1920, 3), 60, np.uint8)
    y, x = (1080 - photo.shape[0]) // 2, (1920 - photo.shape[1]) // 2
    frame[max(0, y):max(0, y) + min(1080, photo.shape[0]), x:x + photo.shape[1]] = photo[max(0, -y):max(0, -y) + 1080]
    lin = frame.astype(np.float32) / 255.0
    lin = np.where(lin <= 0.04045, lin / 12.92, ((lin + 0.055) / 1.055) ** 2.4).astype(np.float32)
    return write_half_rgba(path, np.concatenate([lin, np.ones((1080, 1920, 1), np.float32)], axis=2))


def astronaut_png(path: Path) -> Path:
    from skimage import data

    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def moving_shot(folder: Path, frames: int) -> list[Path]:
    """``frames`` 1080p plates of ``one_face_1080p`` under a slow push-in and drift (shot.1001.exr, ...)."""
    from inference_server.plates.image_file import read_plate

    base = read_plate(one_face_1080p(folder / "base.exr")).pixels
    paths = []
    for k in range(frames):
        matrix = cv2.getRotationMatrix2D((960.0, 540.0), 0.0, 1.0 + 0.004 * k)
        matrix[0, 2] += 1.5 * k
        paths.append(write_half_rgba(folder / f"shot.{1001 + k:04d}.exr",
                                     cv2.warpAffine(base, matrix, (1920, 1080), flags=cv2.INTER_LINEAR)))
    return paths
