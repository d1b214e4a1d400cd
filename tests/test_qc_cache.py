"""Issue 15: the plate face's identity embedding (quality checks) is kept in the payload cache, so a
re-render in a new server computes only the output's embedding, with the same report values; a tracked face's
plate identity (with a source) is its track's, so a first render embeds only the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    """The real dlib models, counting identity embeddings (and keeping the landmarks each was given) and landmark
    fits."""

    def __init__(self, models: DlibFaceModels) -> None:
        self.models, self.embedded, self.fitted = models, 0, 0
        self.identifier = models.identifier
        self.at: list[np.ndarray] = []

    def landmarks(self, rgb8: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        self.fitted += 1
        return self.models.landmarks(rgb8, rect)

    def embed(self, rgb8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        self.embedded += 1
        self.at.append(np.array(landmarks, np.float32))
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


def test_a_tracked_face_s_plate_identity_is_its_track_s_and_a_restoration_still_embeds_the_plate(
        faces_dir: Path, dlib_models: DlibFaceModels) -> None:
    """With a source, a face the shot analysis tracks is measured against its track's plate identity (what the
    analysis embedded where it first detected it): only the output is embedded on the frame. A restoration
    (no source) compares the output with the plate's face on the same frame, so it embeds both, track or not."""
    rgb8 = load_rgb8(faces_dir / "fr_obama.jpg")
    face = dlib_models.detect(rgb8)[0]
    plate = np.concatenate([srgb_decode(rgb8.astype(np.float32) / 255.0),
                            np.ones(rgb8.shape[:2] + (1,), np.float32)], axis=2)
    frame = FramePlate(plate, [0, 1, 2], "frame-hash")
    box = face_crop_box(face.landmarks, plate.shape[:2])
    out = plate.copy()
    out[box.slices][..., :3] *= np.float32(0.9)
    rose = load_rgb8(faces_dir / "fr_rose_leslie.jpg")
    source = SourceFace(image=rose.astype(np.float32) / 255.0, landmarks=face.landmarks,
                        embedding=np.asarray(dlib_models.embed(rose, dlib_models.detect(rose)[0].landmarks)),
                        pose=(0.0, 0.0, 0.0), label="rose")
    # the track's identity as the analysis stores it (float32): here the same face on the mirrored photo
    other = np.ascontiguousarray(rgb8[:, ::-1])
    track_identity = dlib_models.embed(other, dlib_models.detect(other)[0].landmarks).astype(np.float32)
    tracked = FaceTarget(face.landmarks, face.rect, track=3, identity=track_identity)
    untracked = FaceTarget(face.landmarks, face.rect)
    report = FaceReport(0, True, "rose", face.rect, (0.0, 0.0, 0.0))
    colourspace = ColourSpace.named(LINEAR_REC709)

    def qc(target: FaceTarget, src: SourceFace | None) -> tuple[FaceReport, int]:
        count = CountingModels(dlib_models)
        done = with_identity(report, frame, out, box, target, src, count, colourspace, None)  # type: ignore[arg-type]
        # the output (and the plate) embedded at the face's landmarks on the crop: no landmarks fitted again
        assert count.fitted == 0
        offset = np.array([box.x0, box.y0], np.float32)
        assert all(np.array_equal(at, face.landmarks - offset) for at in count.at)
        return done, count.embedded

    swapped, embedded = qc(tracked, source)
    assert embedded == 1  # the output only
    assert swapped.identity_distance_plate == pytest.approx(
        float(np.linalg.norm(track_identity.astype(np.float64) - source.embedding)), abs=1e-9)
    per_frame, embedded_untracked = qc(untracked, source)
    assert embedded_untracked == 2
    assert swapped.identity_distance == per_frame.identity_distance  # the output's side is unchanged
    assert swapped.identity_distance_plate != per_frame.identity_distance_plate  # another photo, another value
    assert abs(swapped.identity_distance_plate - per_frame.identity_distance_plate) < 0.3  # the same person
    restored_tracked, embedded_restore = qc(tracked, None)
    restored, _ = qc(untracked, None)
    assert embedded_restore == 2 and restored_tracked.identity_distance == restored.identity_distance


def test_the_targets_of_an_analysed_shot_carry_their_tracks_identities(
        faces_dir: Path, dlib_models: DlibFaceModels, tmp_path: Path) -> None:
    """What the render's quality checks measure the plate against: each analysed face's target carries the
    identity its track has in the shot database (two heads on real EXR frames of lp_d18: two tracks)."""
    import OpenImageIO as oiio
    from support import mirrored_head_plates

    from inference_server.server.analysis_steps import AnalyseResultData
    from inference_server.server.engine import FaceSwapEngine, FrameRequest
    from inference_server.server.sessions import SessionParams
    from inference_server.temporal.tracks import FaceSelection

    (tmp_path / "plates").mkdir()
    (tmp_path / "scratch").mkdir()
    plates = mirrored_head_plates(faces_dir / "lp_d18.mp4", tmp_path / "plates", 3)
    spec = oiio.ImageBuf(str(min((tmp_path / "plates").iterdir()))).spec()
    hw = (spec.height, spec.width)
    engine = FaceSwapEngine(tmp_path / "scratch", tmp_path / "cache", models=dlib_models,
                            models_dir=tmp_path / "no-models")
    session = engine.open_session("test", "shot", [], SessionParams())
    requests: list[FrameRequest | AnalyseResultData] = [
        FrameRequest(1 + i, f"plate.{i:04d}.exr", data=(data,)) for i, data in enumerate(plates)]
    assert [r.status for r in engine.analyse_frames(session, engine.analyser(session), requests)] == ["ok"] * 3
    tracks = engine.db.tracks("shot")
    assert len(tracks) == 2
    for frame in (1, 3):
        targets = engine.shots.targets("shot", frame, hw, FaceSelection(), 2.0, stabilise=False)
        assert sorted(t.track for t in targets) == sorted(tracks)
        for target in targets:
            assert target.identity is not None and target.identity.shape == (128,)
            assert np.array_equal(target.identity, tracks[target.track][1])


def test_a_replayed_render_on_a_new_server_loads_no_landmark_model(faces_dir: Path, dlib_models: DlibFaceModels,
                                                                   tmp_path: Path) -> None:
    """A re-render on a new server over the same cache (a render task of a farm job, a private server's re-render):
    the analysis replays, the source photo's face is cached and the quality checks embed at the analysed landmarks,
    so the server's embedded models never load the landmark model, build the HOG detector or start their child
    process; the frames and their quality values are the first render's, bit for bit."""
    from facebridge.client.sequence import parse_pattern
    from inference_server.server.engine import FaceSwapEngine, FrameResultData
    from inference_server.server.frame_io import FrameRequest
    from inference_server.server.sessions import SessionParams
    from support import make_sequence

    pattern = parse_pattern(make_sequence(faces_dir / "lp_d18.mp4", tmp_path / "clip", 3, start=40))
    requests = [FrameRequest(1001 + i, f"plate.{1001 + i}.exr", data=(Path(pattern.path(1001 + i)).read_bytes(),))
                for i in range(3)]
    source = ("rose.jpg", (faces_dir / "fr_rose_leslie.jpg").read_bytes())
    (tmp_path / "scratch").mkdir()

    def render(models: DlibFaceModels) -> list[FrameResultData]:
        engine = FaceSwapEngine(tmp_path / "scratch", tmp_path / "cache", models=models,
                                models_dir=tmp_path / "no-models")
        session = engine.open_session("test", "shot", [source], SessionParams())
        assert all(a.status == "ok" for a in engine.analyse_frames(session, engine.analyser(session), requests))
        return [engine.process_frame(session, request) for request in requests]

    first = render(dlib_models)
    fresh = DlibFaceModels(embed_in_process=False)
    try:
        again = render(fresh)
        assert fresh._predictor is None and fresh._detector is None and fresh._embedder is None
    finally:
        fresh.close()
    for a, b in zip(first, again):
        assert a.status == b.status == "ok" and len(a.faces) == len(b.faces) == 1 and b.analysed
        assert np.isfinite(a.faces[0].identity_distance)
        assert b.faces[0].identity_distance == a.faces[0].identity_distance
        assert b.faces[0].identity_distance_plate == a.faces[0].identity_distance_plate
        assert a.output is not None and b.output is not None and a.output.join() == b.output.join()
