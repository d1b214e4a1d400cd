"""Test helpers: linear EXR plates built from real photos, EXR reading, and the face zone.

Written for the tests (independent of the project's code paths they check).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio

REPO = Path(__file__).resolve().parents[1]
FACES_DIR = REPO.parent / "shared" / "data" / "faces"


def load_rgb8(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))


def srgb8_to_linear(rgb8: np.ndarray) -> np.ndarray:
    x = rgb8.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    x = np.clip(np.nan_to_num(linear, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return (np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055) * 255 + 0.5).astype(np.uint8)


def write_exr(path: Path, pixels: np.ndarray, names: tuple[str, ...],
              formats: tuple[oiio.TypeDesc | oiio.BASETYPE | str, ...] | None = None,
              compression: str = "zip", attributes: dict[str, object] | None = None,
              origin: tuple[int, int] = (0, 0), display: tuple[int, int] | None = None) -> Path:
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, oiio.HALF)
    spec.channelnames = names
    if formats is not None and len(set(map(str, formats))) == 1:
        spec.set_format(formats[0])
    elif formats is not None:
        spec.channelformats = formats
    spec.x, spec.y = origin
    if display is not None:
        spec.full_x, spec.full_y = 0, 0
        spec.full_width, spec.full_height = display
    spec.attribute("compression", compression)
    for key, value in (attributes or {}).items():
        spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, dtype=np.float32)), out.geterror()
    out.close()
    return path


def read_exr(path: Path) -> tuple[np.ndarray, oiio.ImageSpec]:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(format=oiio.FLOAT)
    assert pixels is not None, inp.geterror()
    inp.close()
    return pixels.reshape(spec.height, spec.width, spec.nchannels), spec


def face_landmarks(models, rgb8: np.ndarray) -> list[np.ndarray]:
    return [d.landmarks for d in models.detect(rgb8)]


def face_zone(shape_hw: tuple[int, int], landmarks: np.ndarray, grow: float = 0.35) -> np.ndarray:
    """Pixels a face process may touch: landmark hull plus forehead, dilated by ``grow`` x face size."""
    h, w = shape_hw
    lo, hi = landmarks.min(0), landmarks.max(0)
    size = float(max(hi - lo))
    top = landmarks[17:27].copy()
    top[:, 1] -= 0.45 * size
    zone = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(zone, cv2.convexHull(np.concatenate([landmarks, top]).astype(np.int32)), 1)
    k = int(2 * grow * size) | 1
    return cv2.dilate(zone, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


def make_plate(photo: Path, out: Path, models, aovs: bool = True, compression: str = "zip") -> tuple[Path, np.ndarray]:
    """Linear half EXR (R,G,B,A,Z[,N.x]) from an sRGB photo, with HDR spots, a NaN and an Inf far from faces.

    Returns the path and the union of the plate's face zones (grown by 0.8 x face size, which is where no
    special pixel is placed).
    """
    rgb8 = load_rgb8(photo)
    h, w = rgb8.shape[:2]
    linear = srgb8_to_linear(rgb8)
    zone = np.zeros((h, w), bool)
    for landmarks in face_landmarks(models, rgb8):
        zone |= face_zone((h, w), landmarks, grow=0.8)
    free = np.argwhere(~zone)
    assert len(free) > 100, f"{photo.name}: no room away from the face for test pixels"
    rng = np.random.default_rng(3)
    for y, x in free[rng.choice(len(free), size=30, replace=False)]:
        linear[y, x] = linear[y, x] * 5.0 + 3.0  # HDR highlights
    y0, x0 = free[0]
    y1, x1 = free[-1]
    linear[y0, x0, 0] = np.nan
    linear[y1, x1, 1] = np.inf
    alpha = np.ones((h, w, 1), np.float32)
    z = np.fromfunction(lambda yy, xx: 5.0 + 0.01 * xx + 0.03 * yy, (h, w), dtype=np.float32)[..., None]
    channels = [linear, alpha, z]
    names: tuple[str, ...] = ("R", "G", "B", "A", "Z")
    formats: tuple[oiio.BASETYPE, ...] = (oiio.HALF,) * 4 + (oiio.FLOAT,)
    if aovs:
        channels.append(rng.normal(0.0, 1.0, (h, w, 1)).astype(np.float32))
        names += ("N.x",)
        formats += (oiio.FLOAT,)
    write_exr(out, np.concatenate(channels, axis=2), names, formats, compression)
    return out, zone


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality that treats NaN as equal to NaN."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def make_sequence(video: Path, folder: Path, count: int, start: int = 0, first: int = 1001) -> str:
    """Frames ``start .. start+count-1`` of ``video`` as linear half EXR (R,G,B,A); returns the #### pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    index = written = 0
    while written < count:
        ok, frame = capture.read()
        assert ok, f"{video.name}: ran out of frames"
        if index >= start:
            linear = srgb8_to_linear(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            alpha = np.ones(linear.shape[:2] + (1,), np.float32)
            write_exr(folder / f"plate.{first + written:04d}.exr", np.concatenate([linear, alpha], axis=2),
                      ("R", "G", "B", "A"))
            written += 1
        index += 1
    return str(folder / "plate.####.exr")


def face_photo(name: str) -> np.ndarray:
    """A photo of ../shared/data/faces as ``(H, W, 3)`` uint8 RGB (alpha dropped)."""
    return load_rgb8(FACES_DIR / name)


def crop_target(rgb8: np.ndarray, landmarks: np.ndarray, grow: float = 0.6) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Like the server: landmark box grown by ``grow`` per side, as float32 sRGB-encoded [0, 1].

    Returns the crop, the landmarks in crop pixels and the box ``(x0, y0, x1, y1)``.
    """
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    bw, bh = x1 - x0, y1 - y0
    h, w = rgb8.shape[:2]
    box = (max(0, int(x0 - grow * bw)), max(0, int(y0 - grow * bh)),
           min(w, int(x1 + grow * bw) + 1), min(h, int(y1 + grow * bh) + 1))
    crop = rgb8[box[1]:box[3], box[0]:box[2]].astype(np.float32) / 255.0
    return crop, (landmarks - np.array(box[:2], np.float32)).astype(np.float32), box


@dataclass(frozen=True)
class DarkeningSwapper:
    """An aligned swapper (the protocol of ``models.aligned_result.AlignedSwapper``) whose 'swap' darkens the
    aligned face: stands in for inswapper's arithmetic where only the pasting around it is tested."""

    model_id: str = "darken"
    template: str = "arcface_128"
    size: int = 128

    def source_vector(self, sources: Sequence[object]) -> np.ndarray:
        return np.full((1, 512), 0.7, np.float32)

    def run(self, aligned: np.ndarray, source_vector: np.ndarray) -> np.ndarray:
        return aligned * float(source_vector[0, 0])


def mirrored_head_plates(video: Path, folder: Path, count: int) -> list[bytes]:
    """The first ``count`` frames of ``video`` (a talking head) as EXR files' bytes (RGBA half, linear) with the head
    twice, the right one mirrored (two tracks, two plate crops a frame); the files are written into ``folder``."""
    capture = cv2.VideoCapture(str(video))
    encoded: list[bytes] = []
    for index in range(count):
        ok, bgr = capture.read()
        assert ok, f"{video.name} decodes frame {index}"
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb8 = np.ascontiguousarray(np.concatenate([rgb, rgb[:, ::-1]], axis=1))
        rgba = np.ones((*rgb8.shape[:2], 4), np.float32)
        rgba[..., :3] = srgb8_to_linear(rgb8)
        encoded.append(write_exr(folder / f"plate.{index:04d}.exr", rgba, ("R", "G", "B", "A")).read_bytes())
    capture.release()
    return encoded


def shot_database_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of a shot database (SQLite file ``path``) that an analysis writes, by table, in a fixed order;
    the payload cache's entries with their size and sha256."""
    with sqlite3.connect(path) as con:
        return {
            "shots": con.execute("SELECT shot, config FROM shots ORDER BY shot").fetchall(),
            "frames": con.execute("SELECT * FROM frames ORDER BY shot, frame").fetchall(),
            "observations": con.execute("SELECT * FROM observations ORDER BY shot, frame, track").fetchall(),
            "tracks": con.execute("SELECT * FROM tracks ORDER BY shot, track").fetchall(),
            "cache": con.execute("SELECT key, relpath, size, sha256 FROM cache_entries ORDER BY key").fetchall(),
            "plate_files": con.execute("SELECT digest, decoder, facts FROM plate_files ORDER BY digest, decoder")
                              .fetchall(),
        }


def spun_beside(work: Callable[[], object]) -> tuple[int, float]:
    """How many loop iterations a thread of pure-Python work does while ``work`` runs, and ``work``'s seconds."""
    done, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            done[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    time.sleep(0.01)
    start, t0 = done[0], time.perf_counter()
    try:
        work()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        spinner.join()
    return done[0] - start, seconds
