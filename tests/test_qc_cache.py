"""Issue 15: the plate face's identity embedding (quality checks) is kept in the payload cache, so a
re-render in a new server computes only the output's embedding, with the same report values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support import load_rgb8

from facebridge.srgb import srgb_decode
from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.sources import SourceFace
from inference_server.pipeline.crops import face_crop_box
from inference_server.pipeline.frames import FaceReport, FramePlate
from inference_server.pipeline.quality import with_identity
from inference_server.pipeline.targets import FaceTarget
from inference_server.plates.colour import LINEAR_REC709, ColourSpace
from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import ShotDatabase


class CountingModels:
    """The real dlib models, counting identity embeddings."""

    def __init__(self, models: DlibFaceModels) -> None:
        self.models, self.embedded = models, 0
        self.identifier = models.identifier

    def landmarks(self, rgb8: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        return self.models.landmarks(rgb8, rect)

    def embed(self, rgb8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        self.embedded += 1
        return self.models.embed(rgb8, landmarks)


def test_the_plate_embedding_is_computed_once_across_servers(faces_dir: Path, dlib_models: DlibFaceModels,
                                                             tmp_path: Path) -> None:
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    face = dlib_models.detect(rgb8)[0]
    plate = np.concatenate([srgb_decode(rgb8.astype(np.float32) / 255.0),
                            np.ones(rgb8.shape[:2] + (1,), np.float32)], axis=2)  # R, G, B, A
    frame = FramePlate(plate, [0, 1, 2], "frame-hash")
    target = FaceTarget(face.landmarks, face.rect)
    box = face_crop_box(face.landmarks, plate.shape[:2])
    out = plate.copy()
    out[box.slices][..., :3] *= np.float32(0.9)  # a rendered frame: the face darker
    source = dlib_models.embed(load_rgb8(faces_dir / "fr_rose_leslie.jpg"),
                               dlib_models.detect(load_rgb8(faces_dir / "fr_rose_leslie.jpg"))[0].landmarks)
    src = SourceFace(image=rgb8.astype(np.float32) / 255.0, landmarks=face.landmarks, embedding=np.asarray(source),
                     pose=(0.0, 0.0, 0.0), label="rose")
    report = FaceReport(0, True, "rose", face.rect, (0.0, 0.0, 0.0))
    colourspace = ColourSpace.named(LINEAR_REC709)

    def render_qc(cache_dir: Path, count: CountingModels) -> FaceReport:
        cache = PayloadCache(cache_dir / "payloads", ShotDatabase(cache_dir / "shots.sqlite"))
        return with_identity(report, frame, out, box, target, src, count, colourspace, None, cache)  # type: ignore[arg-type]

    first_models, again_models, other_models = (CountingModels(dlib_models) for _ in range(3))
    first = render_qc(tmp_path / "a", first_models)
    again = render_qc(tmp_path / "a", again_models)       # a new server on the same cache folder
    elsewhere = render_qc(tmp_path / "b", other_models)   # another cache: computed again
    assert (first_models.embedded, again_models.embedded, other_models.embedded) == (2, 1, 2)
    assert first.identity_distance_plate == again.identity_distance_plate == elsewhere.identity_distance_plate
    assert first.identity_distance == again.identity_distance
    assert 0.0 < first.identity_distance_plate < 2.0 and np.isfinite(first.identity_distance)
