"""Issue 16 item 3: small faces never look broken.

Group photos of ../shared/data/faces scaled so their faces are 40-60 px (the 1927 Solvay photo's size): a
swap leaves faces below ``min_face`` as the plate with a warning that says why, unless the artist picks
them; a picked small face is swapped without the forehead band (nothing of the source above the target's
brow line); ``min_face`` 0 swaps every face as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import FACES_DIR, load_rgb8, read_exr, srgb8_to_linear, write_exr

from inference_server.faces.geometry import face_size
from inference_server.faces.sources import prepare_sources
from inference_server.pipeline.crops import face_crop_box
from inference_server.pipeline.face_render import FaceRenderer
from inference_server.pipeline.frames import FramePlate
from inference_server.pipeline.render import (
    FrameOutcome,
    RenderRequest,
    RenderServices,
    render_faces,
)
from inference_server.pipeline.settings import RenderSettings
from inference_server.pipeline.small_faces import SMALL_FACE_RAMP, small_face_strength
from inference_server.pipeline.targets import FaceTarget
from inference_server.pipeline.timing import Stopwatch
from inference_server.server.engine import frame_status

MIN_FACE = 48.0  # the schema's default
SOURCE = "fr_obama.jpg"
# group photos and the scale that brings their faces to about 40-60 px
GROUPS = (("if_t1.jpg", 0.45), ("fr_two_people.jpg", 0.3), ("gfpgan_10045.png", 0.65), ("cf_lq_whole_01.jpg", 1.0))


def scaled(name: str, scale: float) -> np.ndarray:
    rgb8 = load_rgb8(FACES_DIR / name)
    if scale != 1.0:
        rgb8 = cv2.resize(rgb8, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb8)


def above_brow_line(shape_hw: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """(h, w) bool: pixels whose centre is above the line through the brow landmarks 17..26, per column
    (held level beyond the outermost brow points)."""
    brows = np.asarray(landmarks, np.float64)[17:27]
    order = np.argsort(brows[:, 0])
    line = np.interp(np.arange(shape_hw[1]), brows[order, 0], brows[order, 1])
    return np.arange(shape_hw[0])[:, None] < line[None, :] - 1e-3


@pytest.fixture(scope="module")
def source(faces_dir: Path, dlib_models):
    return prepare_sources([(SOURCE, load_rgb8(faces_dir / SOURCE))], dlib_models)


@pytest.fixture(scope="module")
def groups(faces_dir: Path, dlib_models) -> dict[str, tuple[np.ndarray, list]]:
    """Each group photo at its scale: the linear plate and the faces found on it."""
    out = {}
    for name, scale in GROUPS:
        rgb8 = scaled(name, scale)
        out[name] = (srgb8_to_linear(rgb8), dlib_models.detect_with_fallback(rgb8, 0.25))
    return out


def render(plate: np.ndarray, targets: list[FaceTarget], source, dlib_models, min_face: float) -> FrameOutcome:
    request = RenderRequest(targets, source, [SOURCE], RenderSettings(min_face=min_face, quality_checks=False),
                            "small-faces")
    return render_faces(FramePlate(plate, [0, 1, 2], "plate"), request, RenderServices(dlib_models, None, None),
                        Stopwatch())


def test_faces_below_min_face_are_left_as_the_plate_with_a_warning(groups, source, dlib_models) -> None:
    below_seen = above_seen = 0
    for name, (plate, found) in groups.items():
        targets = [FaceTarget(d.landmarks, d.rect) for d in found]
        sizes = [face_size(t.landmarks) for t in targets]
        small = [i for i, s in enumerate(sizes) if s < MIN_FACE]
        below_seen += len(small)
        above_seen += len(targets) - len(small)
        outcome = render(plate, targets, source, dlib_models, MIN_FACE)
        for i, face in enumerate(outcome.faces):
            if i in small:
                assert not face.swapped and f"face {i} is {int(sizes[i])} px, below min_face 48" in face.skipped
            else:
                assert face.swapped and not face.skipped, (name, i, sizes[i])
        # the skipped faces contributed nothing: the frame is bit for bit the render of the others alone
        others = render(plate, [t for i, t in enumerate(targets) if i not in small], source, dlib_models, MIN_FACE)
        assert np.array_equal(outcome.pixels, others.pixels), name
        if small:
            status, kind, message = frame_status(outcome, f"{name} (frame 1)", "unchanged")
            assert (status, kind) == ("warning", "small_face")
            assert message.startswith(f"{name} (frame 1): face {small[0]} is ")
            assert message.count("below min_face 48: left as the plate") == len(small)
            # and their own pixels are the plate's wherever no swapped face's crop reaches
            reach = np.zeros(plate.shape[:2], bool)
            for i, t in enumerate(targets):
                if i not in small:
                    reach[face_crop_box(t.landmarks, plate.shape[:2]).slices] = True
            for i in small:
                zone = np.zeros(plate.shape[:2], bool)
                zone[face_crop_box(targets[i].landmarks, plate.shape[:2]).slices] = True
                zone &= ~reach
                assert zone.any() and np.array_equal(outcome.pixels[zone], plate[zone]), (name, i)
    assert below_seen >= 6 and above_seen >= 3  # the photos at these scales do exercise both sides


def test_a_picked_small_face_is_swapped_with_nothing_above_its_brow_line(groups, source, dlib_models) -> None:
    """The final mask and the changed pixels of a picked face below ``min_face`` stop at its brow line; with
    the old behaviour (``min_face`` 0: the forehead band and the source's hairline on) they do not."""
    checked = 0
    for name, (plate, found) in groups.items():
        for d in found:
            if face_size(d.landmarks) >= MIN_FACE:
                continue
            target = FaceTarget(d.landmarks, d.rect, picked=True)
            box = face_crop_box(target.landmarks, plate.shape[:2])
            above = above_brow_line(plate.shape[:2], target.landmarks)
            spill = {}
            for min_face in (MIN_FACE, 0.0):
                outcome = render(plate, [target], source, dlib_models, min_face)
                assert outcome.faces[0].swapped and not outcome.faces[0].skipped
                changed = (outcome.pixels != plate).any(axis=2)
                renderer = FaceRenderer(source, [SOURCE], RenderSettings(min_face=min_face), "small-faces",
                                        None, None)
                mask = np.zeros(plate.shape[:2], np.float32)
                mask[box.slices] = renderer.render(plate[box.slices], box, target.landmarks, "plate").mask
                spill[min_face] = int(((mask > 0) & above).sum()), int((changed & above).sum())
                assert changed.sum() > 0.25 * face_size(target.landmarks) ** 2  # a face, swapped
            assert spill[MIN_FACE] == (0, 0), (name, spill)
            assert min(spill[0.0]) > 0, (name, spill)  # the old behaviour pastes the source above the brows
            checked += 1
    assert checked >= 6


def test_min_face_zero_swaps_every_face(groups, source, dlib_models) -> None:
    for name, (plate, found) in groups.items():
        outcome = render(plate, [FaceTarget(d.landmarks, d.rect) for d in found], source, dlib_models, 0.0)
        assert outcome.faces and all(f.swapped and not f.skipped for f in outcome.faces), name
        assert frame_status(outcome, name, "unchanged")[0] == "ok"


def test_faces_comfortably_above_min_face_render_as_without_it(groups, source, dlib_models) -> None:
    """From ``SMALL_FACE_RAMP`` x ``min_face`` up a face's pixels do not depend on ``min_face``; in between the
    forehead band shrinks gradually (nothing pops at the threshold)."""
    plate, found = groups["gfpgan_10045.png"]
    target = max((FaceTarget(d.landmarks, d.rect) for d in found), key=lambda t: face_size(t.landmarks))
    size = face_size(target.landmarks)
    assert small_face_strength(size, size / SMALL_FACE_RAMP) == 0.0
    assert 0.0 < small_face_strength(size, size / 1.2) < 1.0 and small_face_strength(size, size + 1) == 1.0
    base = render(plate, [target], source, dlib_models, 0.0).pixels
    assert np.array_equal(render(plate, [target], source, dlib_models, size / SMALL_FACE_RAMP).pixels, base)
    above = above_brow_line(plate.shape[:2], target.landmarks)
    spills = [int(((render(plate, [target], source, dlib_models, size / f).pixels != plate).any(axis=2)
                   & above).sum()) for f in (1.4, 1.2, 1.05)]
    assert spills[0] >= spills[1] >= spills[2] and spills[0] > spills[2]


def _process(args: list[str], tmp_path: Path) -> dict:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "facebridge", "process", "--source", str(FACES_DIR / SOURCE),
         "--input", str(tmp_path / "plate.####.exr"), "--frames", "1001-1001", "--report", str(report), *args],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    return json.loads(report.read_text())


def test_process_reports_the_skipped_faces_and_swaps_one_picked_by_track(faces_dir: Path, tmp_path: Path) -> None:
    """``facebridge process`` on an EXR plate of a group photo: the small faces are left as the plate and the
    report names them; ``--face track:N`` swaps one of them."""
    rgb8 = scaled("if_t1.jpg", 0.45)
    plate = srgb8_to_linear(rgb8)
    write_exr(tmp_path / "plate.1001.exr", np.concatenate([plate, np.ones(plate.shape[:2] + (1,), np.float32)], 2),
              ("R", "G", "B", "A"))
    data = _process(["--output", str(tmp_path / "out" / "swap.%04d.exr")], tmp_path)
    (entry,) = data["frames"]
    faces = entry["faces"]
    skipped = [f for f in faces if f["skipped"]]
    assert skipped and len(skipped) < len(faces) and entry["faces_skipped"] == len(skipped)
    assert entry["status"] == "warning" and entry["kind"] == "small_face"
    for face in skipped:
        assert not face["swapped"] and face["track"] >= 0 and face["size"] < MIN_FACE
        assert (f"face track {face['track']} is {int(face['size'])} px, below min_face 48: left as the plate "
                f"(pick it with --face track:{face['track']} to swap it)") in entry["message"]
    assert all(f["swapped"] and f["size"] >= MIN_FACE for f in faces if not f["skipped"])
    assert data["totals"]["faces_skipped"] == len(skipped)
    out, _ = read_exr(tmp_path / "out" / "swap.1001.exr")
    written, _ = read_exr(tmp_path / "plate.1001.exr")
    for face in skipped:  # the skipped faces' boxes are the plate's bits
        x0, y0, x1, y1 = (round(v) for v in face["box"])
        assert np.array_equal(out[y0:y1, x0:x1], written[y0:y1, x0:x1]), face

    pick = skipped[0]
    data = _process(["--output", str(tmp_path / "picked" / "swap.%04d.exr"), "--face", f"track:{pick['track']}"],
                    tmp_path)
    (entry,) = data["frames"]
    assert entry["status"] == "ok" and [f["track"] for f in entry["faces"]] == [pick["track"]]
    assert entry["faces"][0]["swapped"] and not entry["faces"][0]["skipped"]
    out, _ = read_exr(tmp_path / "picked" / "swap.1001.exr")
    changed = (out != written).any(axis=2)
    x0, y0, x1, y1 = (float(v) for v in pick["box"])
    assert changed.sum() > 0.25 * pick["size"] ** 2
    ys, xs = np.nonzero(changed)
    assert x0 - pick["size"] < xs.mean() < x1 + pick["size"] and y0 - pick["size"] < ys.mean() < y1 + pick["size"]


class _GlassesParser:
    """A face parser that labels a band over the eyes as eyeglasses (CelebAMask-HQ ``eye_g``) and the rest of
    the landmark hull as skin."""

    model_id = "test-glasses-parser"

    def labels(self, crop_model: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from inference_server.models.onnx_parser import BISENET_LABELS

        out = np.zeros(crop_model.shape[:2], np.uint8)
        cv2.fillConvexPoly(out, cv2.convexHull(np.round(landmarks).astype(np.int32)), BISENET_LABELS.index("skin"))
        eyes = landmarks[36:48]
        x0, y0 = np.floor(eyes.min(0) - 2).astype(int)
        x1, y1 = np.ceil(eyes.max(0) + 2).astype(int)
        out[y0:y1 + 1, x0:x1 + 1] = BISENET_LABELS.index("eye_g")
        return out


def test_a_picked_small_face_keeps_the_glasses_a_parser_finds(groups, source) -> None:
    """Where a face parser ran, a small face's glasses stay the plate's (no ghosted, half-removed rims);
    a large face's mask is not touched by them."""
    from inference_server.models.onnx_parser import BISENET_LABELS
    from inference_server.pipeline.stages import ClassicalSwapStage
    from inference_server.swap import ALGORITHM_ID, SwapParams

    plate, found = groups["gfpgan_10045.png"]
    d = min(found, key=lambda f: face_size(f.landmarks))
    box = face_crop_box(d.landmarks, plate.shape[:2])
    crop = np.clip(plate[box.slices] ** (1 / 2.2), 0.0, 1.0).astype(np.float32)
    landmarks = (d.landmarks - np.array([box.x0, box.y0], np.float32)).astype(np.float32)
    stage = ClassicalSwapStage(SwapParams(), ALGORITHM_ID, parser=_GlassesParser())
    plain = ClassicalSwapStage(SwapParams(), ALGORITHM_ID)
    for small in (0.0, 1.0):
        with_parser, without = stage.run(crop, landmarks, source[0], small), plain.run(crop, landmarks, source[0], small)
        y0, x0, y1, x1 = (int(v) for v in with_parser["box"])
        glasses = with_parser["parser_labels"][y0:y1, x0:x1] == BISENET_LABELS.index("eye_g")
        assert glasses.any()
        if small == 0.0:
            assert np.array_equal(with_parser["keep"], without["keep"])
        else:
            assert np.all(with_parser["keep"][glasses] == 0) and np.any(without["keep"][glasses] > 0.5)
            assert (with_parser["keep"] <= without["keep"]).all()  # elsewhere only the glasses' soft edge
