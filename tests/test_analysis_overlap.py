"""Issue 15: AnalyseShot decodes frames ahead of the analysis and stores their plate crops behind it
(server/analysis_stream.py). The order of results, the failures, the bound on frames held, and — on a real
clip — the shot database and the stored plate crops are those of the sequential analysis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import mirrored_head_plates, shot_database_rows

from inference_server.faces.dlib_models import DlibFaceModels
from inference_server.server.analysis_steps import AnalyseResultData
from inference_server.server.analysis_stream import analyse_in_order
from inference_server.server.engine import FaceSwapEngine, FrameRequest
from inference_server.server.sessions import SessionParams
from inference_server.store.payload_cache import PayloadCache
from inference_server.store.shot_db import ShotDatabase


class _Steps:
    """Steps of made-up frames (ints): prepare fails multiples of 7, analyse multiples of 5, store multiples of
    11 (each with its own kind); records the threads and what is held between prepare and store."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.analysed: list[int] = []
        self.analyse_threads: set[int] = set()
        self.held = 0
        self.most_held = 0
        self.lock = threading.Lock()

    def _hold(self, change: int) -> None:
        with self.lock:
            self.held += change
            self.most_held = max(self.most_held, self.held)

    def prepare(self, frame: int) -> tuple[int, str] | AnalyseResultData:
        time.sleep(self.delay)
        if frame % 7 == 0:
            return AnalyseResultData(frame, "failed", "decode")
        self._hold(+1)
        return frame, "prepared"

    def analyse(self, prepared: tuple[int, str]) -> tuple[int, str] | AnalyseResultData:
        self.analyse_threads.add(threading.get_ident())
        self.analysed.append(prepared[0])
        if prepared[0] % 5 == 0:
            self._hold(-1)
            return AnalyseResultData(prepared[0], "failed", "order")
        return prepared[0], "analysed"

    def store(self, analysed: tuple[int, str]) -> AnalyseResultData:
        time.sleep(self.delay)
        self._hold(-1)
        return AnalyseResultData(analysed[0], "failed" if analysed[0] % 11 == 0 else "ok", "store")


def _run(items: list[int | AnalyseResultData], ahead: int, steps: _Steps) -> list[AnalyseResultData]:
    return list(analyse_in_order(items, AnalyseResultData, steps.prepare, steps.analyse, steps.store, ahead))


def test_overlapped_results_come_in_order_as_the_sequential_ones() -> None:
    items: list[int | AnalyseResultData] = list(range(1, 40))
    items.insert(10, AnalyseResultData(-1, "failed", "incomplete"))  # a result already: given in its place
    sequential = _Steps()
    expected = _run(items, 0, sequential)
    assert [r.frame_number for r in expected] == [i if isinstance(i, int) else -1 for i in items]
    assert {r.kind for r in expected} == {"decode", "order", "store", "incomplete"}
    for ahead in (1, 2, 3):
        steps = _Steps(delay=0.002)
        assert _run(items, ahead, steps) == expected
        assert steps.analysed == sequential.analysed  # the analyser sees the same frames in the same order
        assert steps.analyse_threads == {threading.get_ident()}  # ... on the calling thread
        assert steps.held == 0
        assert steps.most_held <= ahead + 3, steps.most_held  # ahead waiting, one analysed, two stores


def test_a_malformed_stream_gives_the_frames_before_it_then_its_error() -> None:
    def items() -> Iterator[int]:
        yield from (1, 2, 3)
        raise ValueError("malformed stream")

    for ahead in (0, 2):
        given: list[int] = []
        with pytest.raises(ValueError, match="malformed stream"):
            steps = _Steps()
            for result in analyse_in_order(items(), AnalyseResultData, steps.prepare, steps.analyse, steps.store,
                                           ahead):
                given.append(result.frame_number)
        assert given == [1, 2, 3]


def test_a_step_that_raises_ends_the_stream_and_stops_the_reader() -> None:
    prepared: list[int] = []

    def prepare(frame: int) -> int:
        prepared.append(frame)
        return frame

    def analyse(frame: int) -> int:
        if frame == 4:
            raise RuntimeError("analyser broke")
        return frame

    results = analyse_in_order(range(1, 1000), AnalyseResultData, prepare, analyse,
                               lambda f: AnalyseResultData(f, "ok"), ahead=2)
    with pytest.raises(RuntimeError, match="analyser broke"):
        list(results)
    assert len(prepared) <= 4 + 3  # read ahead by a bounded number of frames, never the whole stream


def test_closing_the_results_finishes_the_stores_begun_and_reads_no_further() -> None:
    prepared: list[int] = []
    analysed: list[int] = []
    stored: list[int] = []

    def prepare(frame: int) -> int:
        prepared.append(frame)
        return frame

    def analyse(frame: int) -> int:
        analysed.append(frame)
        return frame

    def store(frame: int) -> AnalyseResultData:
        time.sleep(0.05)
        stored.append(frame)
        return AnalyseResultData(frame, "ok")

    results = analyse_in_order(range(1, 1000), AnalyseResultData, prepare, analyse, store, ahead=2)
    assert next(results).frame_number == 1
    results.close()  # (the client left: AnalyseShot closes it before it frees the shot)
    assert stored == analysed and len(analysed) >= 1  # every frame analysed has its crops stored
    assert len(prepared) <= len(analysed) + 3


# -- a real clip through the engine ----------------------------------------------------------------

FRAMES = 12


@pytest.fixture(scope="module")
def plates(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """EXR plates (RGBA half, linear) of lp_d18's first frames, the head twice (the right one mirrored): two
    tracks, two plate crops a frame."""
    return mirrored_head_plates(faces_dir / "lp_d18.mp4", tmp_path_factory.mktemp("overlap-plates"), FRAMES)


def _analysed_engine(root: Path, plates: list[bytes], dlib_models: DlibFaceModels, ahead: int,
                     ) -> tuple[FaceSwapEngine, list[AnalyseResultData]]:
    (root / "scratch").mkdir(parents=True)
    engine = FaceSwapEngine(root / "scratch", root / "cache", models=dlib_models, models_dir=root / "no-models")
    session = engine.open_session("test", "shot", [], SessionParams())
    requests: list[FrameRequest | AnalyseResultData] = [
        FrameRequest(1001 + i, f"plate.{i:04d}.exr", data=(data,)) for i, data in enumerate(plates)]
    requests.insert(5, FrameRequest(1050, "broken.exr", data=(b"not an image",)))  # fails in its first step
    requests.insert(8, AnalyseResultData(1060, "failed", "incomplete"))
    results = list(engine.analyse_frames(session, engine.analyser(session), requests, ahead=ahead))
    assert results[5].message.startswith("broken.exr (frame 1050): cannot open image")
    # the timings differ from run to run, the decoder's message names a temporary file
    return engine, [replace(r, timings_ms={}, message=r.message.partition(":")[0]) for r in results]


def test_overlapped_analysis_of_a_real_clip_stores_what_the_sequential_one_does(
        plates: list[bytes], dlib_models: DlibFaceModels, tmp_path: Path) -> None:
    sequential, sequential_results = _analysed_engine(tmp_path / "sequential", plates, dlib_models, ahead=0)
    overlapped, overlapped_results = _analysed_engine(tmp_path / "overlapped", plates, dlib_models, ahead=2)
    assert overlapped_results == sequential_results
    assert [(r.frame_number, r.status, r.kind) for r in overlapped_results if r.status != "ok"] == \
        [(1050, "failed", "decode"), (1060, "failed", "incomplete")]
    assert {len(r.tracks) for r in overlapped_results if r.status == "ok"} == {2}
    rows = shot_database_rows(sequential.db.path)
    assert shot_database_rows(overlapped.db.path) == rows
    assert len(rows["observations"]) == 2 * FRAMES and len(rows["cache"]) == 2 * FRAMES
    # the plate crops on disk, read back through fresh caches (not the writers' memory)
    fresh = {name: PayloadCache(engine.cache.directory, ShotDatabase(engine.db.path))
             for name, engine in (("sequential", sequential), ("overlapped", overlapped))}
    for key, *_ in rows["cache"]:
        expected, got = fresh["sequential"].get(str(key)), fresh["overlapped"].get(str(key))
        assert expected is not None and got is not None
        assert list(got) == list(expected) == ["rgb_half"]  # (a half plate's crops are stored as half floats)
        assert got["rgb_half"].dtype == expected["rgb_half"].dtype == np.float16
        assert np.array_equal(got["rgb_half"], expected["rgb_half"])
