"""Issue 15: the face found in a source photo (landmarks and identity embedding) is kept in the payload cache, so
a session that brings a photo seen before, on this server or on a new one over the same cache (a re-render, every
task of a farm job), does not search and embed it again; the prepared source is the same, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.faces.sources import SourceFace
from inference_server.server.engine import FaceSwapEngine
from inference_server.server.errors import SourceError
from inference_server.server.sessions import SessionParams


class Searches:
    """Counts the detections and identity embeddings of the shared dlib models while a test runs."""

    def __init__(self, models: DlibFaceModels, monkeypatch: pytest.MonkeyPatch) -> None:
        self.detected = self.embedded = 0
        detect, embed = models.detect, models.embed

        def counted_detect(*args: Any, **kwargs: Any) -> Any:
            self.detected += 1
            return detect(*args, **kwargs)

        def counted_embed(*args: Any, **kwargs: Any) -> Any:
            self.embedded += 1
            return embed(*args, **kwargs)

        monkeypatch.setattr(models, "detect", counted_detect)
        monkeypatch.setattr(models, "embed", counted_embed)

    def take(self) -> tuple[int, int]:
        """(detections, embeddings) since the last call."""
        counts = (self.detected, self.embedded)
        self.detected = self.embedded = 0
        return counts


def _source(engine: FaceSwapEngine, label: str, data: bytes) -> tuple[SourceFace, str]:
    session = engine.open_session("test", "shot", [(label, data)], SessionParams())
    return session.sources[0], session.params_hash


def _same(a: SourceFace, b: SourceFace) -> bool:
    return all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
               for x, y in ((a.image, b.image), (a.landmarks, b.landmarks), (a.embedding, b.embedding))) \
        and a.pose == b.pose


def test_a_photo_is_searched_once_across_servers_and_prepared_the_same(
        faces_dir: Path, dlib_models: DlibFaceModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    searches = Searches(dlib_models, monkeypatch)
    jpeg = (faces_dir / "fr_rose_leslie.jpg").read_bytes()

    (tmp_path / "scratch").mkdir()

    def engine(cache: str) -> FaceSwapEngine:
        return FaceSwapEngine(tmp_path / "scratch", tmp_path / cache, models=dlib_models,
                              models_dir=tmp_path / "no-models")

    first, first_hash = _source(engine("cache"), "rose.jpg", jpeg)
    assert searches.take() == (1, 1)
    again, again_hash = _source(engine("cache"), "rose.jpg", jpeg)  # a new server on the same cache
    assert searches.take() == (0, 0)
    elsewhere, _ = _source(engine("other-cache"), "rose.jpg", jpeg)  # another cache: searched again
    assert searches.take() == (1, 1)
    assert _same(first, again) and _same(first, elsewhere) and again_hash == first_hash
    assert again.label == "rose.jpg" and again.pose == first.pose and np.isfinite(first.embedding).all()

    # the same pixels in another file (PNG, another name) are the same photo; one pixel changed is another
    rgb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert rgb is not None
    png = cv2.imencode(".png", rgb)[1].tobytes()
    as_png, _ = _source(engine("cache"), "rose.png", png)
    assert searches.take() == (0, 0) and _same(as_png, first) and as_png.label == "rose.png"
    rgb[0, 0] = rgb[0, 0] ^ 1
    changed, _ = _source(engine("cache"), "rose-changed.png", cv2.imencode(".png", rgb)[1].tobytes())
    assert searches.take() == (1, 1) and changed.embedding.shape == (128,)

    # a prepared source does not share the cache's arrays: changing one leaves the next session's as found
    again.embedding[:] = 0.0
    later, _ = _source(engine("cache"), "rose.jpg", jpeg)
    assert _same(later, first)


def test_a_photo_without_a_face_is_refused_every_time(dlib_models: DlibFaceModels, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    searches = Searches(dlib_models, monkeypatch)
    grey = cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
    (tmp_path / "scratch").mkdir()
    engine = FaceSwapEngine(tmp_path / "scratch", tmp_path / "cache", models=dlib_models,
                            models_dir=tmp_path / "no-models")
    for _ in range(2):  # nothing is kept of a failed search: asked again, searched again, refused again
        with pytest.raises(SourceError, match="source 'grey.png': no face found"):
            engine.open_session("test", "shot", [("grey.png", grey)], SessionParams())
        assert searches.take() == (2, 0)  # as found, then 2x upsampled
