"""Issue 15: a frame the shot analysis replays (committed with the same content) makes no display proxy, and
frames are prepared on several reader threads; the shot database, the stored plate crops and the per-frame
results stay those of the formulation replaced (every frame's proxy made when it is decoded and given to the
analyser, one frame after the other) — for a first analysis, a full replay, a resumed analysis (the first new
frame compares with the last replayed one, whose proxy is then made) and a replay whose plate changed in the
middle (the analysis is truncated there and goes on from the replayed frames: the shot then equals a fresh
analysis of the changed plates). A replaying frame whose file the shot database has seen decoded (its sha256) is
not decoded at all, unless a step needs its pixels after all (a proxy, a plate crop to store again). Real EXR
frames of lp_d18, real payload cache and SQLite database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import OpenImageIO as oiio
import pytest
from support import mirrored_head_plates, shot_database_rows

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.server import analysis_steps
from inference_server.server.analysis_steps import AnalyseResultData, FrameAnalysisSteps
from inference_server.server.analysis_stream import analyse_in_order, analysis_readers
from inference_server.plates.image_file import Plate, RgbPlate, read_plate
from inference_server.server.engine import FaceSwapEngine, FrameRequest
from inference_server.server.frame_io import EncodedFrame
from inference_server.server.sessions import SessionParams
from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import ShotDatabase
from inference_server.temporal.analyse import FrameAnalysis, ShotAnalyser

FRAMES = 12
CHANGED = 6  # the frame whose plate is replaced by another frame of the clip


@pytest.fixture(scope="module")
def clip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes]:
    """EXR plates (RGBA half, linear) of lp_d18's first 12 frames, the head twice (the right one mirrored: two
    tracks, two plate crops a frame), and the clip's 13th frame the same way (frame 6's replacement)."""
    encoded = mirrored_head_plates(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("replay-plates"), FRAMES + 1)
    return encoded[:FRAMES], encoded[FRAMES]


class _EagerAnalyser:
    """The formulation replaced, around a shot analyser: no frame is ever known beforehand (every frame's proxy
    is made when it is decoded) and the analyser gets the proxy itself."""

    def __init__(self, analyser: ShotAnalyser) -> None:
        self.analyser = analyser

    def is_known(self, frame: int, content_hash: str) -> bool:
        return False

    def analyse(self, frame: int, rgb8: np.ndarray | Callable[[], np.ndarray], content_hash: str) -> FrameAnalysis:
        # (the steps give the prepared frame's proxy as a function: here the proxy made in prepare, as an array)
        return self.analyser.analyse(frame, rgb8() if callable(rgb8) else rgb8, content_hash)


@dataclass(frozen=True)
class _Snapshot:
    results: list[AnalyseResultData]
    rows: dict[str, list[tuple[object, ...]]]
    crops: dict[str, np.ndarray]
    proxies: int  # display proxies made in the pass
    new_frames: int = 0  # calls of the steps' on_new_frame (the engine's warm-up of the render's imports)
    decodes: int = 0  # frames decoded in the pass
    whole_decodes: int = 0  # of them, with every channel (the analysis needs R, G, B only)


def _pass(root: Path, plates: Sequence[bytes], dlib_models: DlibFaceModels, eager: bool,
          monkeypatch: pytest.MonkeyPatch) -> _Snapshot:
    """One AnalyseShot pass over ``plates`` (frames 1001...) by a new engine (a new private server) on the
    cache folder ``root/cache``: the new formulation (overlapped, 3 readers) or the one replaced (eager,
    sequential)."""
    made: list[int] = []
    original = analysis_steps.display_proxy

    def counted(*args: object) -> np.ndarray:
        made.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(analysis_steps, "display_proxy", counted)
    (root / "scratch").mkdir(parents=True, exist_ok=True)
    engine = FaceSwapEngine(root / "scratch", root / "cache", models=dlib_models, models_dir=root / "no-models")
    decoded: list[int] = []
    whole: list[int] = []  # of them, decoded with every channel
    decode, decode_rgb = engine.frames.decode, engine.frames.decode_rgb

    def counted_decode(encoded: EncodedFrame) -> Plate:
        decoded.append(1)
        whole.append(1)
        return decode(encoded)

    def counted_decode_rgb(encoded: EncodedFrame) -> RgbPlate:
        decoded.append(1)
        return decode_rgb(encoded)

    monkeypatch.setattr(engine.frames, "decode", counted_decode)  # (the analysis decodes R, G, B only: the next)
    monkeypatch.setattr(engine.frames, "decode_rgb", counted_decode_rgb)
    session = engine.open_session("test", "shot", [], SessionParams())
    analyser = engine.analyser(session)
    news: list[int] = []
    steps = FrameAnalysisSteps(engine.frames, engine.shots,
                               cast(ShotAnalyser, _EagerAnalyser(analyser)) if eager else analyser, "",
                               on_new_frame=lambda: news.append(1))
    requests = [FrameRequest(1001 + i, f"plate.{i:04d}.exr", data=(data,)) for i, data in enumerate(plates)]
    results = list(analyse_in_order(requests, AnalyseResultData, steps.prepare, steps.analyse, steps.store,
                                    ahead=0 if eager else 4, readers=3))
    monkeypatch.setattr(analysis_steps, "display_proxy", original)
    rows = shot_database_rows(engine.db.path)
    fresh = PayloadCache(engine.cache.directory, ShotDatabase(engine.db.path))  # the files, not the memory
    crops = {}
    for key, *_ in rows["cache"]:
        payload = fresh.get(str(key))
        assert payload is not None and list(payload) == ["rgb_half"]
        crops[str(key)] = payload["rgb_half"]
    return _Snapshot([replace(r, timings_ms={}) for r in results], rows, crops, len(made), len(news), len(decoded),
                     len(whole))


def _assert_same(new: _Snapshot, old: _Snapshot) -> None:
    assert new.results == old.results
    assert new.rows == old.rows
    assert list(new.crops) == list(old.crops)
    for key, crop in old.crops.items():
        assert new.crops[key].dtype == crop.dtype == np.float16
        assert np.array_equal(new.crops[key], crop)


def test_first_analysis_full_replay_and_changed_plate_store_what_the_eager_analysis_does(
        clip: tuple[list[bytes], bytes], dlib_models: DlibFaceModels, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plates, replacement = clip
    changed = [*plates[:CHANGED], replacement, *plates[CHANGED + 1:]]
    chains = {}
    for name, eager in (("old", True), ("new", False)):
        root = tmp_path / name
        chains[name] = [_pass(root, frames, dlib_models, eager, monkeypatch)
                        for frames in (plates, plates, changed)]
    (first, replay, restart), (old_first, old_replay, old_restart) = chains["new"], chains["old"]
    for new, old in ((first, old_first), (replay, old_replay), (restart, old_restart)):
        _assert_same(new, old)
    assert all(r.status == "ok" and len(r.tracks) == 2 for s in (first, replay, restart) for r in s.results)
    assert len(first.rows["observations"]) == 2 * FRAMES and len(first.crops) == 2 * FRAMES
    # the replay: every frame replayed, nothing written, no proxy made (the eager one made twelve)
    assert all(r.replayed for r in replay.results) and replay.rows == first.rows
    assert (first.proxies, replay.proxies, old_replay.proxies) == (FRAMES, 0, FRAMES)
    # ... and no frame decoded: the new server knows every file by its digest from the shot database
    assert (first.decodes, replay.decodes, old_replay.decodes) == (FRAMES, 0, FRAMES)
    assert first.whole_decodes == replay.whole_decodes == 0
    assert len(first.rows["plate_files"]) == FRAMES
    # the render's imports are warmed for a first analysis, never for a replay (a re-render needs none of them)
    assert (first.new_frames, replay.new_frames, restart.new_frames) == (FRAMES, 0, FRAMES - CHANGED)
    # the changed plate: frames before it replay and stay analysed; the analysis is truncated there and goes on
    # from the replayed state (proxies of the new frames and of the last replayed one, which the first new
    # frame compares with), so the shot is what a fresh analysis of the changed plates gives
    assert [r.replayed for r in restart.results] == [True] * CHANGED + [False] * (FRAMES - CHANGED)
    assert [f[1] for f in restart.rows["frames"]] == list(range(1001, 1001 + FRAMES))
    assert restart.rows["frames"][:CHANGED] == first.rows["frames"][:CHANGED]
    assert restart.rows["frames"][CHANGED][2] != first.rows["frames"][CHANGED][2]  # the new content hash
    assert restart.proxies == FRAMES - CHANGED + 1
    assert restart.decodes == FRAMES - CHANGED + 1  # decoded only where a proxy was needed
    assert len(restart.rows["plate_files"]) == FRAMES + 1  # the replacement's file beside the twelve
    fresh = _pass(tmp_path / "fresh", changed, dlib_models, False, monkeypatch)
    analysis_rows = ("shots", "frames", "observations", "tracks")
    assert {k: restart.rows[k] for k in analysis_rows} == {k: fresh.rows[k] for k in analysis_rows}
    assert [replace(r, replayed=False) for r in restart.results] == fresh.results
    assert set(fresh.crops) <= set(restart.crops)  # (beside the crops of the frames analysed before the change)
    assert all(np.array_equal(restart.crops[key], crop) for key, crop in fresh.crops.items())


def test_a_resumed_analysis_makes_the_last_replayed_frames_proxy_for_the_first_new_one(
        clip: tuple[list[bytes], bytes], dlib_models: DlibFaceModels, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plates, _ = clip
    chains = {}
    for name, eager in (("old", True), ("new", False)):
        root = tmp_path / name
        chains[name] = [_pass(root, frames, dlib_models, eager, monkeypatch) for frames in (plates[:CHANGED], plates)]
    for new, old in zip(chains["new"], chains["old"], strict=True):
        _assert_same(new, old)
    resumed = chains["new"][1]
    assert [r.replayed for r in resumed.results] == [True] * CHANGED + [False] * (FRAMES - CHANGED)
    assert resumed.proxies == FRAMES - CHANGED + 1  # the new frames' and the last replayed one's
    # and an uninterrupted analysis gives the same (the module's promise, kept without the eager proxies)
    whole = _pass(tmp_path / "whole", plates, dlib_models, False, monkeypatch)
    assert resumed.rows == whole.rows
    assert [replace(r, replayed=False) for r in resumed.results] == whole.results


def test_a_replay_whose_plate_crops_are_gone_decodes_the_frames_to_store_them_again(
        clip: tuple[list[bytes], bytes], dlib_models: DlibFaceModels, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A replaying frame known by its file is decoded after all when its stored plate crops are missing (a
    cleared payload cache): they are stored again, the same bits; a re-encoded file (another digest, the same
    pixels) is decoded once and replays."""
    plates, _ = clip
    first = _pass(tmp_path, plates, dlib_models, False, monkeypatch)
    for payload in (tmp_path / "cache" / "payloads").rglob("*"):
        if payload.is_file():
            payload.unlink()
    again = _pass(tmp_path, plates, dlib_models, False, monkeypatch)
    assert all(r.replayed for r in again.results) and again.proxies == 0
    assert again.decodes == FRAMES
    assert list(again.crops) == list(first.crops)
    assert all(np.array_equal(again.crops[key], crop) for key, crop in first.crops.items())
    recoded = [_recoded(data, tmp_path / f"recoded.{i}.exr") for i, data in enumerate(plates[:3])]
    assert all(r != p for r, p in zip(recoded, plates))
    third = _pass(tmp_path, [*recoded, *plates[3:]], dlib_models, False, monkeypatch)
    assert all(r.replayed for r in third.results) and third.proxies == 0 and third.decodes == 3
    assert third.rows["frames"] == first.rows["frames"]


def _recoded(data: bytes, path: Path) -> bytes:
    """The EXR ``data`` written again with another compression (piz): other bytes, the same half pixels."""
    path.with_suffix(".src.exr").write_bytes(data)
    plate = read_plate(path.with_suffix(".src.exr"))
    spec = plate.spec
    spec.attribute("compression", "piz")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None and out.open(str(path), spec)
    assert out.write_image(plate.pixels)
    out.close()
    return path.read_bytes()


def test_the_readers_are_a_small_function_of_the_cores() -> None:
    assert [analysis_readers(n) for n in (None, 1, 2, 3, 4, 16, 128)] == [1, 1, 2, 3, 3, 3, 3]
