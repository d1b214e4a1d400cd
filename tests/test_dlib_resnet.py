"""Issue 15: dlib's face-recognition ResNet read from its file and run with numpy (inference_server/faces/
dlib_resnet.py) gives dlib's own descriptors (within 1e-6, the order of float32 sums aside) on real faces, is what
the embedded models embed with, lets the server's other threads run meanwhile, and refuses a file that is not
that network with one line (the models then embed in dlib)."""

from __future__ import annotations

import logging
from pathlib import Path

import dlib
import numpy as np
import pytest
from support import load_rgb8, spun_beside

from inference_server.faces.dlib_models import (
    CHIP_PADDING,
    CHIP_SIZE,
    RESNET_FILE,
    DlibFaceModels,
    _read_network,
    landmark_detection,
)
from inference_server.faces import dlib_resnet
from inference_server.faces.dlib_resnet import Conv, ResNet, descriptor, read_resnet

PHOTOS = ("fr_obama.jpg", "fr_biden2.jpg", "fr_two_people.jpg", "if_t1.jpg", "lp_d9.jpg", "cf_lq_whole_01.jpg",
          "dlib_tom_cruise.jpg")


@pytest.fixture(scope="module")
def network(dlib_models: DlibFaceModels) -> ResNet:
    return read_resnet((dlib_models.directory / RESNET_FILE).read_bytes())


@pytest.fixture(scope="module")
def faces(faces_dir: Path, dlib_models: DlibFaceModels) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(photo, rgb8, landmarks) of every face HOG finds on a few real photos (portraits, a group, a low-quality
    one, two of the same man)."""
    found = []
    for name in PHOTOS:
        rgb8 = load_rgb8(faces_dir / name)
        found += [(name, rgb8, face.landmarks) for face in dlib_models.detect(rgb8)]
    assert len(found) >= 9
    return found


def test_descriptors_are_dlib_s(faces: list[tuple[str, np.ndarray, np.ndarray]], network: ResNet,
                                dlib_models: DlibFaceModels) -> None:
    reference = dlib.face_recognition_model_v1(str(dlib_models.directory / RESNET_FILE))
    ours, theirs = [], []
    for _, rgb8, landmarks in faces:
        chip = np.asarray(dlib.get_face_chip(rgb8, landmark_detection(landmarks), size=CHIP_SIZE, padding=CHIP_PADDING))
        mine = descriptor(network, chip)
        dlibs = np.asarray(reference.compute_face_descriptor(rgb8, landmark_detection(landmarks)), np.float64)
        assert mine.dtype == np.float64 and mine.shape == (128,)
        assert np.abs(mine - dlibs).max() < 1e-6, np.abs(mine - dlibs).max()
        ours.append(mine)
        theirs.append(dlibs)
    # the distances the quality checks report, and dlib's "same person below 0.6", come out the same
    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            mine_d, dlib_d = np.linalg.norm(ours[i] - ours[j]), np.linalg.norm(theirs[i] - theirs[j])
            assert abs(mine_d - dlib_d) < 1e-6 and (mine_d < 0.6) == (dlib_d < 0.6)
    biden_obama = [k for k, (name, _, _) in enumerate(faces) if name in ("fr_obama.jpg", "fr_biden2.jpg")]
    assert len(biden_obama) == 2 and np.linalg.norm(ours[biden_obama[0]] - ours[biden_obama[1]]) > 0.6


def test_the_models_embed_with_it(faces: list[tuple[str, np.ndarray, np.ndarray]], network: ResNet,
                                  dlib_models: DlibFaceModels, monkeypatch: pytest.MonkeyPatch) -> None:
    _, rgb8, landmarks = faces[0]
    assert dlib_models._resnet is not None
    chip = np.asarray(dlib.get_face_chip(rgb8, landmark_detection(landmarks), size=CHIP_SIZE, padding=CHIP_PADDING))
    assert np.array_equal(dlib_models.embed(rgb8, landmarks), descriptor(network, chip))
    monkeypatch.setattr(dlib_models, "_resnet", None)  # as when the file cannot be read: dlib's network
    in_dlib = dlib_models.embed(rgb8, landmarks)
    monkeypatch.undo()
    assert np.abs(dlib_models.embed(rgb8, landmarks) - in_dlib).max() < 1e-6


def test_other_threads_run_while_it_embeds(faces: list[tuple[str, np.ndarray, np.ndarray]],
                                           dlib_models: DlibFaceModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """dlib's in-process embedding keeps the GIL (a thread of pure-Python work stops); the numpy network releases
    it in its matrix products. Loop iterations per second of a spinning thread beside each (a ratio in one run)."""

    def rate_beside(work: list[tuple[str, np.ndarray, np.ndarray]]) -> float:
        iterations, seconds = spun_beside(lambda: [dlib_models.embed(rgb8, landmarks) for _, rgb8, landmarks in work])
        return iterations / seconds

    numpy_rate = rate_beside(faces[:4])
    monkeypatch.setattr(dlib_models, "_resnet", None)
    monkeypatch.setattr(dlib_models, "_embedder", None)  # (in-process: the session's models have no child anyway)
    dlib_rate = rate_beside(faces[:4])
    assert numpy_rate > 3 * max(dlib_rate, 1.0), (numpy_rate, dlib_rate)


def test_a_file_that_is_not_the_network_is_refused_in_one_line(dlib_models: DlibFaceModels, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    data = (dlib_models.directory / RESNET_FILE).read_bytes()
    for wrong in (data[:len(data) // 2], data[:1000], b"", (dlib_models.directory / "mmod_human_face_detector.dat")
                  .read_bytes()):
        with pytest.raises(ValueError) as refused:
            read_resnet(wrong)
        assert "\n" not in str(refused.value) and str(refused.value)
    # the same layers with another pooling (the max-pool's window 3 -> 2): the forward pass would be wrong
    at = data.index(b"\x01\nmax_pool_2") + 12
    assert data[at:at + 4] == b"\x01\x03\x01\x03"
    with pytest.raises(ValueError, match="pooling"):
        read_resnet(data[:at] + b"\x01\x02\x01\x02" + data[at + 4:])
    path = tmp_path / RESNET_FILE
    path.write_bytes(data[:len(data) // 2])
    with caplog.at_level(logging.WARNING):
        assert _read_network(path) is None
    assert str(path) in caplog.text and "run in dlib" in caplog.text
    with pytest.raises(ValueError, match=r"\(150, 150, 3\) uint8"):
        descriptor(read_resnet(data), np.zeros((150, 150, 4), np.uint8))


def _window_by_window(x: np.ndarray, conv: Conv) -> np.ndarray:
    """The reference convolution: each window's values copied into its row of one contiguous matrix."""
    k, c, r, s = conv.weights.shape
    if conv.pad:
        x = np.pad(x, ((0, 0), (conv.pad, conv.pad), (conv.pad, conv.pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (r, s), axis=(1, 2))[:, ::conv.stride, ::conv.stride]
    _, h, w = windows.shape[:3]
    columns = np.ascontiguousarray(windows.transpose(1, 2, 0, 3, 4)).reshape(h * w, c * r * s)
    y = columns @ conv.weights.reshape(k, -1).T
    y += conv.bias
    return np.ascontiguousarray(y.T).reshape(k, h, w)


def test_the_convolution_is_the_window_matrix_product_bit_for_bit(faces: list[tuple[str, np.ndarray, np.ndarray]],
                                                                    network: ResNet,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering the windows tap by tap (a transposed view of the matrix) gives the very bits of the contiguous
    window matrix's product: every layer's shape (7x7/2 stem, 3x3 stride 1 and 2) on random inputs, and the
    descriptors of the real faces through the whole network."""
    rng = np.random.default_rng(5)
    convs = [network.stem[0]] + [b.conv1 for b in network.blocks] + [b.conv2 for b in network.blocks]
    for conv in {(c.weights.shape, c.stride, c.pad): c for c in convs}.values():
        side = 150 if conv.weights.shape[2] == 7 else 19
        x = rng.standard_normal((conv.weights.shape[1], side, side)).astype(np.float32)
        assert np.array_equal(dlib_resnet._conv(x, conv).view(np.uint32), _window_by_window(x, conv).view(np.uint32))
    chips = [np.asarray(dlib.get_face_chip(rgb8, landmark_detection(landmarks), size=CHIP_SIZE, padding=CHIP_PADDING))
             for _, rgb8, landmarks in faces]
    ours = [descriptor(network, chip) for chip in chips]
    monkeypatch.setattr(dlib_resnet, "_conv", _window_by_window)
    for chip, mine in zip(chips, ours):
        assert np.array_equal(descriptor(network, chip).view(np.uint64), mine.view(np.uint64))
