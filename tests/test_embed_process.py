"""Issue 15: dlib's identity network in a child process (it keeps the GIL for a whole embedding, stalling the
server's other threads). The descriptors must be the in-process ones, bit for bit, and a child that dies must
leave embeddings working in-process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support import load_rgb8

from inference_server.faces.dlib_models import RESNET_FILE, DlibFaceModels
from inference_server.faces.embed_process import EmbeddingProcess

PHOTOS = ("fr_obama.jpg", "fr_two_people.jpg", "if_t1.jpg", "lp_d9.jpg", "cf_lq_whole_01.jpg")


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
    offloaded = DlibFaceModels(embed_in_process=False)
    try:
        assert offloaded._embedder is not None and offloaded._embedder.running
        for rgb8, landmarks in faces:
            here = dlib_models.embed(rgb8, landmarks)
            there = offloaded.embed(rgb8, landmarks)
            assert there.dtype == np.float64 and there.shape == (128,)
            assert np.array_equal(here, there)
        others = [np.linalg.norm(offloaded.embed(*faces[0]) - offloaded.embed(*f)) for f in faces[1:]]
        assert min(others) > 0.1  # different people, different descriptors (not a constant answer)
    finally:
        offloaded.close()
    assert not offloaded._embedder.running
    assert np.array_equal(offloaded.embed(*faces[0]), dlib_models.embed(*faces[0]))  # closed: in-process


def test_a_dead_child_leaves_embeddings_working_in_process(faces: list[tuple[np.ndarray, np.ndarray]],
                                                           dlib_models: DlibFaceModels,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    offloaded = DlibFaceModels(embed_in_process=False)
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
    offloaded = DlibFaceModels(embed_in_process=False)

    def count_while(embed: DlibFaceModels) -> int:
        done, stop = [0], threading.Event()

        def spin() -> None:
            while not stop.is_set():
                done[0] += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        time.sleep(0.01)
        start = done[0]
        for rgb8, landmarks in faces[:4]:
            embed.embed(rgb8, landmarks)
        stop.set()
        spinner.join()
        return done[0] - start

    try:
        offloaded.embed(*faces[0])  # (the child has loaded its model)
        in_process, outside = count_while(dlib_models), count_while(offloaded)
    finally:
        offloaded.close()
    assert outside > 3 * max(in_process, 1), (in_process, outside)  # (6-7x measured on 2 cores)
