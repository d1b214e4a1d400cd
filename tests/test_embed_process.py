"""Issue 15: dlib's identity network in a child process (it keeps the GIL for a whole embedding, stalling the
server's other threads), the path embeddings take when the network file cannot be read by ``dlib_resnet`` (here
made so by setting the models' ``_resnet`` to None). The descriptors must be the in-process ones, bit for bit, and a child that dies must
leave embeddings working in-process. The same child builds the HOG detector while the server starts (dlib's
``get_frontal_face_detector`` holds the GIL for 0.4-0.6 s) and hands it over: the same detections, bit for bit."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
from support import FACES_DIR, load_rgb8, spun_beside

from inference_server.faces.dlib_models import RESNET_FILE, DlibFaceModels
from inference_server.faces.embed_process import EmbeddingProcess
from inference_server.faces.types import FaceDetection

PHOTOS = ("fr_obama.jpg", "fr_two_people.jpg", "if_t1.jpg", "lp_d9.jpg", "cf_lq_whole_01.jpg")


@pytest.fixture(autouse=True)
def _embeddings_in_dlib(dlib_models: DlibFaceModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared models embed in dlib in these tests (as they do when dlib_resnet cannot read the file)."""
    monkeypatch.setattr(dlib_models, "_resnet", None)


def _in_dlib(models: DlibFaceModels) -> DlibFaceModels:
    """``models`` embedding in dlib (its child, or in-process) rather than with dlib_resnet."""
    models._resnet = None
    return models


@pytest.fixture(scope="module")
def faces(faces_dir: Path, dlib_models: DlibFaceModels) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rgb8, landmarks) of every face HOG finds on a few real photos (single faces, groups, a low-quality one)."""
    found = []
    for name in PHOTOS:
        rgb8 = load_rgb8(faces_dir / name)
        found += [(rgb8, face.landmarks) for face in dlib_models.detect(rgb8)]
    assert len(found) >= 8
    return found


def test_descriptors_from_the_child_process_are_the_in_process_ones(
        faces: list[tuple[np.ndarray, np.ndarray]], dlib_models: DlibFaceModels) -> None:
    offloaded = _in_dlib(DlibFaceModels(embed_in_process=False))
    try:
        assert offloaded._embedder is None  # started when first needed
        for rgb8, landmarks in faces:
            here = dlib_models.embed(rgb8, landmarks)
            there = offloaded.embed(rgb8, landmarks)
            assert there.dtype == np.float64 and there.shape == (128,)
            assert np.array_equal(here, there)
        others = [np.linalg.norm(offloaded.embed(*faces[0]) - offloaded.embed(*f)) for f in faces[1:]]
        assert min(others) > 0.1  # different people, different descriptors (not a constant answer)
        assert offloaded._embedder is not None and offloaded._embedder.running
        assert offloaded._encoder is None  # the server never loaded the identity network itself
        assert offloaded._predictor is None  # nor the landmark model: embedding needs none
    finally:
        offloaded.close()
    assert not offloaded._embedder.running
    assert np.array_equal(offloaded.embed(*faces[0]), dlib_models.embed(*faces[0]))  # closed: in-process
    assert offloaded._encoder is not None  # loaded when an in-process embedding was needed


def test_a_dead_child_leaves_embeddings_working_in_process(faces: list[tuple[np.ndarray, np.ndarray]],
                                                           dlib_models: DlibFaceModels,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    offloaded = _in_dlib(DlibFaceModels(embed_in_process=False))
    try:
        rgb8, landmarks = faces[1]
        assert np.array_equal(offloaded.embed(rgb8, landmarks), dlib_models.embed(rgb8, landmarks))
        assert offloaded._embedder is not None and offloaded._embedder._process is not None
        offloaded._embedder._process.kill()
        offloaded._embedder._process.wait()
        with caplog.at_level("WARNING"):
            assert np.array_equal(offloaded.embed(rgb8, landmarks), dlib_models.embed(rgb8, landmarks))
        assert "embedding process" in caplog.text and not offloaded._embedder.running
    finally:
        offloaded.close()


def test_a_chip_of_the_wrong_shape_is_refused(dlib_models: DlibFaceModels) -> None:
    process = EmbeddingProcess(dlib_models.directory / RESNET_FILE)
    try:
        with pytest.raises(ValueError, match=r"\(150, 150, 3\)"):
            process.descriptor(np.zeros((112, 112, 3), np.uint8))
        assert process.running  # nothing was sent
    finally:
        process.close()
    assert process.descriptor(np.zeros((150, 150, 3), np.uint8)) is None  # closed


def test_other_threads_run_while_the_child_embeds(faces: list[tuple[np.ndarray, np.ndarray]],
                                                  dlib_models: DlibFaceModels) -> None:
    """In-process, a thread of pure-Python work stops while dlib embeds; offloaded, it goes on. Counted as
    loop iterations done during four embeddings (a ratio in the same run, not a time)."""
    offloaded = _in_dlib(DlibFaceModels(embed_in_process=False))

    def count_while(embed: DlibFaceModels) -> int:
        return spun_beside(lambda: [embed.embed(rgb8, landmarks) for rgb8, landmarks in faces[:4]])[0]

    try:
        offloaded.embed(*faces[0])  # (the child has loaded its model)
        in_process, outside = count_while(dlib_models), count_while(offloaded)
    finally:
        offloaded.close()
    assert outside > 3 * max(in_process, 1), (in_process, outside)  # (6-7x measured on 2 cores)


@pytest.fixture(scope="module")
def plates(faces_dir: Path) -> list[np.ndarray]:
    """``(H, W, 3)`` uint8 RGB frames to detect on: the photos, and a 1080p plate as the benchmark's (the first
    frame of lp_d18.mp4 scaled to 1080 px high, centred on 1920x1080 black)."""
    capture = cv2.VideoCapture(str(faces_dir / "lp_d18.mp4"))
    ok, bgr = capture.read()
    capture.release()
    assert ok, "cannot read lp_d18.mp4"
    plate = np.zeros((1080, 1920, 3), np.uint8)
    plate[:, 420:1500] = cv2.resize(bgr[..., ::-1], (1080, 1080), interpolation=cv2.INTER_CUBIC)
    return [load_rgb8(faces_dir / name) for name in PHOTOS] + [plate]


def _same_detections(a: list[FaceDetection], b: list[FaceDetection]) -> bool:
    return len(a) == len(b) and all(
        x.rect == y.rect and x.score == y.score and x.detector == y.detector and np.array_equal(x.landmarks, y.landmarks)
        for x, y in zip(a, b))


def test_the_hog_detector_from_the_child_finds_the_in_process_detections(
        plates: list[np.ndarray], dlib_models: DlibFaceModels) -> None:
    reference = dlib.get_frontal_face_detector()  # what the server built in its own process before
    offloaded = _in_dlib(DlibFaceModels(embed_in_process=False))
    try:
        assert offloaded._detector is None  # not built in the server's process at start
        assert offloaded._embedder is None and offloaded._predictor is None  # nor anything else: the first detection
        total = 0
        for rgb8 in plates:
            for upsample in (1, 2) if max(rgb8.shape[:2]) <= 720 else (1,):  # (2: as for small source photos)
                here, there = dlib_models.detect(rgb8, upsample=upsample), offloaded.detect(rgb8, upsample=upsample)
                assert _same_detections(here, there), (rgb8.shape, upsample)
                total += len(there)
            # raw detector output, below the server's score threshold included
            small = np.ascontiguousarray(rgb8[::2, ::2])
            assert offloaded._detector is not None
            raw_here, raw_there = reference.run(small, 1, -0.5), offloaded._detector.run(small, 1, -0.5)
            assert [(r.left(), r.top(), r.right(), r.bottom()) for r in raw_here[0]] == \
                   [(r.left(), r.top(), r.right(), r.bottom()) for r in raw_there[0]]
            assert raw_here[1] == raw_there[1] and raw_here[2] == raw_there[2]
        assert total >= 10  # (faces on every photo and the plate)
        assert offloaded._embedder is not None and offloaded._embedder._detector_state is not None  # the child's
    finally:
        offloaded.close()


def test_a_child_dead_before_the_first_detection_leaves_detection_and_embeddings_in_process(
        plates: list[np.ndarray], dlib_models: DlibFaceModels, caplog: pytest.LogCaptureFixture) -> None:
    offloaded = _in_dlib(DlibFaceModels(embed_in_process=False))
    try:
        with offloaded._lock:
            child = offloaded._child()  # (started, as a first detection would start it)
        assert child is not None and child is offloaded._embedder
        process = child._process
        assert process is not None
        process.kill()
        process.wait()
        with caplog.at_level("WARNING"):
            for rgb8 in plates[:3]:
                here, there = dlib_models.detect(rgb8), offloaded.detect(rgb8)
                assert there and _same_detections(here, there)
                assert np.array_equal(offloaded.embed(rgb8, there[0].landmarks), dlib_models.embed(rgb8, here[0].landmarks))
        assert caplog.text.count("embedding process") == 1, caplog.text  # one warning
        assert not offloaded._embedder.running and offloaded._embedder._detector_state is None
    finally:
        offloaded.close()


def test_other_threads_run_while_the_server_detects(plates: list[np.ndarray], dlib_models: DlibFaceModels,
                                                     faces: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Why HOG detection stays in the server's process: dlib releases the GIL while it scans, so a thread of
    pure-Python work goes on beside a detection, where it stops beside an in-process embedding. Counted as loop
    iterations per second of each (a ratio in the same run, not a time)."""

    def rate_while(work: Callable[[], object]) -> float:
        iterations, seconds = spun_beside(work)
        return iterations / seconds

    plate = plates[-1]
    dlib_models.detect(plate)  # (built)
    detecting = rate_while(lambda: dlib_models.detect(plate))
    embedding = rate_while(lambda: [dlib_models.embed(*face) for face in faces[:4]])
    assert detecting > 3 * max(embedding, 1.0), (detecting, embedding)  # (~9x measured on 2 loaded cores)


def _stop_and_continue(pid: int, until: threading.Event) -> None:
    """SIGSTOP then SIGCONT to ``pid`` every 20 ms until ``until`` is set (job control, a farm's suspend/resume)."""
    while not until.is_set():
        try:
            os.kill(pid, signal.SIGSTOP)
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def test_stopping_and_continuing_the_child_loses_no_bytes(dlib_models: DlibFaceModels) -> None:
    """The child's first message (~155 kB) fills the pipe before the server reads it; stopped and continued while
    it waits in that write, a buffered write lost bytes and the server waited for them forever (2 of 3 runs hung
    before the fix). Now the detector's serialization and the descriptors arrive whole, the same bits as
    in-process, with the child stopped and continued all along."""
    process = EmbeddingProcess(dlib_models.directory / RESNET_FILE)
    assert process._process is not None
    done, stop = threading.Event(), threading.Event()
    storm = threading.Thread(target=_stop_and_continue, args=(process._process.pid, stop))
    results: dict[str, object] = {}

    chip = np.ascontiguousarray(cv2.resize(load_rgb8(FACES_DIR / "fr_obama.jpg"), (150, 150),
                                           interpolation=cv2.INTER_AREA))  # 67.5 kB: more than a pipe holds too

    def use() -> None:
        results["state"] = process.detector_state()
        results["descriptors"] = [process.descriptor(chip) for _ in range(3)]
        done.set()

    try:
        storm.start()
        time.sleep(1.5)  # the child has built the detector and waits in its write into the full pipe
        user = threading.Thread(target=use, daemon=True)
        user.start()
        user.join(timeout=60)
    finally:
        stop.set()
        storm.join()
        if not done.is_set():  # (a reader waiting for lost bytes holds the lock: end the child to free it)
            process._process.kill()
        process.close()
    assert done.is_set(), "the server waited for bytes that never came"
    (expected,) = dlib.get_frontal_face_detector().__getstate__()
    assert results["state"] == expected
    in_process = np.asarray(dlib.face_recognition_model_v1(str(dlib_models.directory / RESNET_FILE))
                            .compute_face_descriptor(chip), np.float64)
    descriptors = results["descriptors"]
    assert isinstance(descriptors, list) and len(descriptors) == 3
    assert all(d is not None and np.array_equal(d, in_process) for d in descriptors)


@pytest.mark.parametrize("when", ["before its first message", "during an embedding"])
def test_a_child_that_stops_answering_is_given_up_after_the_timeout(dlib_models: DlibFaceModels, when: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A child stopped for good (SIGSTOP and never SIGCONT) would keep the server waiting for ever, holding the lock
    every embedding needs: after ``timeout`` seconds it is killed, with one warning, and the caller works
    in-process from then on."""
    process = EmbeddingProcess(dlib_models.directory / RESNET_FILE, timeout=2.0)
    assert process._process is not None
    chip = np.zeros((150, 150, 3), np.uint8)
    try:
        if when == "during an embedding":
            assert process.descriptor(chip) is not None  # (the child has answered once)
        child = process._process
        os.kill(child.pid, signal.SIGSTOP)
        answers: list[object] = []
        start = time.monotonic()
        with caplog.at_level("WARNING"):
            asking = threading.Thread(target=lambda: answers.append(
                process.descriptor(chip) if when == "during an embedding" else process.detector_state()), daemon=True)
            asking.start()
            asking.join(timeout=15)
            if asking.is_alive():  # (no watchdog: end the child so the stuck reader lets go, then fail)
                child.kill()
                asking.join()
        waited = time.monotonic() - start
        assert answers == [None] and 1.5 < waited < 10.0, waited
        assert "did not answer within 2 s" in caplog.text and caplog.text.count("embedding process") == 1
        assert not process.running and process.descriptor(chip) is None and process.detector_state() is None
    finally:
        process.close()
