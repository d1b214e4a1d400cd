"""Issue 15: stabilisation computes the plate's flow only where the two neighbouring faces can change pixels.

A rendered face's mask is 0 outside its *reach* (the model output's work box at frame size), whatever the
compositing controls: nothing of it reaches the frame there, and stabilisation only ever looks at a neighbour's
face where its mask is live (and at this frame's where this one's is). So the flow between two frames is computed
over the union of both faces' reach plus a margin of context (:func:`~inference_server.pipeline.neighbours.flow_area`)
instead of over both whole crops. These tests hold the property that makes this safe on real faces, for the
classical swap, an aligned swap and a restoration, under the controls that widen a mask most; and that the area is
the same from either frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support import DarkeningSwapper, load_rgb8, srgb8_to_linear

from inference_server.compositing.controls import CompositeControls
from inference_server.faces.geometry import face_size
from inference_server.faces.sources import prepare_sources
from inference_server.models.adapters import EnhancerAdapter
from inference_server.pipeline.crops import Box, contains, face_crop_box, union
from inference_server.pipeline.face_render import FaceRenderer
from inference_server.pipeline.neighbours import FLOW_CONTEXT, flow_area
from inference_server.pipeline.settings import RenderSettings
from inference_server.pipeline.stages import AlignedSwapStage, RestoreStage, Stage
from inference_server.restore.enhancer import EnhancerSettings

PHOTOS = ("fr_obama.jpg", "lp_d9.jpg", "if_t1.jpg", "dlib_lfw_john_salley.jpg")
SOURCE = "fr_rose_leslie.jpg"
# the defaults and the controls that reach furthest: the widest feather, a grown mask, a partial blend
CONTROLS = (CompositeControls(), CompositeControls(feather=0.5, erode=-0.1), CompositeControls(blend=0.5, feather=0.2))


@pytest.fixture(scope="module")
def faces(faces_dir: Path, dlib_models) -> list[tuple[np.ndarray, np.ndarray]]:
    """(linear plate, landmarks) of the largest face of each photo; one also cut so the face touches the edge."""
    out = []
    for name in PHOTOS:
        rgb8 = load_rgb8(faces_dir / name)
        found = dlib_models.detect_with_fallback(rgb8, 0.25)
        assert found, name
        out.append((srgb8_to_linear(rgb8), found[0].landmarks.astype(np.float32)))
    plate, landmarks = out[0]
    x0 = int(landmarks[:, 0].min()) + 10  # the face's left side beyond the frame
    out.append((np.ascontiguousarray(plate[:, x0:]), landmarks - np.array([x0, 0], np.float32)))
    return out


@pytest.fixture(scope="module")
def source(faces_dir: Path, dlib_models):
    return prepare_sources([(SOURCE, load_rgb8(faces_dir / SOURCE))], dlib_models)


def _stages() -> dict[str, Stage | None]:
    return {"classical swap": None,
            "aligned swap": AlignedSwapStage(DarkeningSwapper()),  # a stand-in swapper
            "restoration": RestoreStage(EnhancerAdapter(EnhancerSettings(), "enhancer"))}


def test_a_rendered_face_changes_nothing_outside_its_reach(faces, source) -> None:
    checked = 0
    for name, stage in _stages().items():
        for plate, landmarks in faces:
            box = face_crop_box(landmarks, plate.shape[:2])
            crop = plate[box.slices]
            for controls in CONTROLS:
                settings = RenderSettings(stage=stage, controls=controls, quality_checks=False)
                sources = source if settings.model_stage.needs_source else []
                done = FaceRenderer(sources, [SOURCE] * len(sources), settings, "reach", None, None).render(
                    crop, box, landmarks, "plate")
                reach = done.reach
                assert contains(box, reach) and not reach.is_empty, name
                inside = np.zeros(crop.shape[:2], bool)
                inside[reach.y0 - box.y0:reach.y1 - box.y0, reach.x0 - box.x0:reach.x1 - box.x0] = True
                assert (done.mask > 0).any(), name
                assert not (done.mask[~inside] > 0).any(), (name, controls)
                unclipped = box.x0 > 0 and box.y0 > 0 and box.x1 < plate.shape[1] and box.y1 < plate.shape[0]
                if unclipped:  # the reach is a box around the face, not the whole crop
                    assert reach.width * reach.height < 0.6 * box.width * box.height, name
                checked += 1
    assert checked == 3 * len(CONTROLS) * (len(PHOTOS) + 1)


def test_the_flow_area_is_the_same_from_either_frame_and_holds_both_reaches() -> None:
    bounds = Box(0, 0, 1920, 1080)
    pairs = [(Box(700, 200, 1300, 900), Box(712, 190, 1310, 905)),   # a face moving a little
             (Box(0, 0, 300, 400), Box(5, 0, 320, 410)),             # against the frame's corner
             (Box(900, 300, 900, 300), Box(880, 280, 1400, 960))]    # one face changes nothing
    for a, b in pairs:
        area = flow_area(a, b, bounds)
        assert area == flow_area(b, a, bounds)
        u = union(a, b)
        assert contains(area, u) and contains(bounds, area)
        grow = max(16, int(np.ceil(FLOW_CONTEXT * max(u.width, u.height))))
        assert area.x1 - u.x1 == min(grow, bounds.x1 - u.x1) and u.y0 - area.y0 == min(grow, u.y0)
    # never more than the crops the flow used to cover (a restoration's reach is its whole crop)
    assert flow_area(Box(100, 100, 900, 900), Box(90, 110, 910, 905), Box(90, 100, 910, 905)) == \
        Box(90, 100, 910, 905)


def test_flow_area_on_a_1080p_face_is_well_under_the_crops(faces, source) -> None:
    """What the change saves: for the classical swap of a 600 px face the area is well under the union of the
    two crops it replaced."""
    plate, landmarks = faces[0]
    scale = 600.0 / face_size(landmarks)
    big = cv2.resize(plate, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    lm = (landmarks + 0.5) * scale - 0.5
    box = face_crop_box(lm, big.shape[:2])
    done = FaceRenderer(source, [SOURCE], RenderSettings(quality_checks=False), "reach", None, None).render(
        big[box.slices], box, lm, "plate")
    area = flow_area(done.reach, done.reach, box)
    assert contains(area, done.reach) and area.width * area.height < 0.5 * box.width * box.height
