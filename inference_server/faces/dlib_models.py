"""The embedded face models: dlib HOG detector, 68-point landmarks and the ResNet identity embedding.

The weights come from the ``face-recognition-models`` pip package. That package's ``__init__`` imports
``pkg_resources`` (absent from current setuptools), so its directory is located with
``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import cv2
import dlib
import numpy as np

from ..file_digests import FileDigests, remembered_content_digest
from .dlib_resnet import ResNet, descriptor, read_resnet
from .embed_process import CHIP_PADDING, CHIP_SIZE, EmbeddingProcess, detector_from_state
from .errors import ModelFilesMissingError
from .types import FaceDetection

LANDMARKS_68_FILE = "shape_predictor_68_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CNN_DETECTOR_FILE = "mmod_human_face_detector.dat"
REQUIRED_FILES: tuple[str, ...] = (LANDMARKS_68_FILE, RESNET_FILE)

# The CNN fallback runs on a proxy whose long side is at most this many pixels. Measured on the 2-core dev
# machine (dlib-bin CPU build): ~0.4 s on a 1080p frame (proxy 320x180), ~0.7 s on a square one (320x320);
# 400 px already costs ~1 s square. The MMOD detector's smallest face is ~80 px at the proxy's scale, so on a
# 1080p frame the fallback finds faces from ~480 px across (~250 px on a 720x720 portrait); smaller faces are
# HOG's (which runs at up to 1280 px with one upsampling).
CNN_PROXY_SIDE = 320
# MMOD confidence below which a CNN box is not taken (dlib's own detector threshold is 0).
CNN_MIN_CONFIDENCE = 0.5

_LOG = logging.getLogger(__name__)


def landmark_detection(landmarks: np.ndarray) -> dlib.full_object_detection:
    """dlib's detection of a face with these ``(68, 2)`` landmarks (pixels, rounded) in their bounding box: what
    the identity network's face chip is cut around."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    ipts = [dlib.point(int(round(x)), int(round(y))) for x, y in pts]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return dlib.full_object_detection(dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))),
                                      ipts)


def _read_network(path: Path) -> ResNet | None:
    """dlib's identity network read from ``path`` for :func:`~.dlib_resnet.descriptor`, or None (logged) when the
    file is not that network: embeddings then run in dlib."""
    try:
        return read_resnet(path.read_bytes())
    except (OSError, ValueError) as exc:
        _LOG.warning("%s: %s; identity embeddings run in dlib (slower)", path, exc)
        return None


def model_dir() -> Path:
    """Directory holding the dlib ``.dat`` files of the ``face-recognition-models`` package.

    Raises:
        ModelFilesMissingError: the package is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesMissingError(
            "the 'face-recognition-models' package is not installed "
            "(pip install face-recognition-models); it carries the dlib landmark and identity weights"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _check_files(directory: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelFilesMissingError(f"dlib model files missing in {directory}: {', '.join(missing)}")


def _proxy(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``img`` (``(H, W, 3)`` uint8) reduced so its long side is at most ``max_side`` (INTER_AREA, deterministic),
    and the factor that maps proxy coordinates back (1.0 when it was small enough already)."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img, 1.0
    scale = max(h, w) / float(max_side)
    return cv2.resize(img, (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=cv2.INTER_AREA), scale


def _rect_tuple(r: "dlib.rectangle", scale: float) -> tuple[float, float, float, float]:
    return (r.left() * scale, r.top() * scale, (r.right() + 1) * scale, (r.bottom() + 1) * scale)


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class DlibFaceModels:
    """Loads the dlib models once and runs them.

    Methods may be called from several threads: each call into dlib holds the instance's lock (dlib's
    detector and predictor objects are not documented as re-entrant).

    Identity embeddings run dlib's network read from its file with numpy (:mod:`.dlib_resnet`: the descriptor of
    ``compute_face_descriptor`` within 1e-6, ~5x faster, the GIL released in its matrix products). Only when the
    file cannot be read so (another network in its place: one warning) do they run in dlib: with
    ``embed_in_process=False`` (the server's choice) in a child process (:mod:`.embed_process`: dlib keeps the
    GIL during an embedding, which would stall the server's other threads; the same bits as in-process).
    :meth:`close` stops the child. That child also builds the HOG detector (0.4-0.6 s holding the GIL in
    ``dlib.get_frontal_face_detector()``) while this process loads the landmark model, and hands it over for
    the first detection (the same detections).

    Built on first use, under the lock: the landmark model (~1.1 s to load; the child, when wanted, is started
    just before it, so the HOG detector is built meanwhile), the HOG detector (from the child, or in-process
    without one) and dlib's in-process identity network (only needed when the file is not read by
    :mod:`.dlib_resnet` and there is no child, or it has died). A render that replays a shot analysis detects
    nothing and fits no landmarks (its quality checks embed at the analysed landmarks), so it loads neither the
    landmark model nor starts the child: only the identity network is read here (~0.08 s).

    Attributes:
        directory: where the ``.dat`` files were read from.
        identifier: short provenance id of the model set.
    """

    identifier: str = "dlib-hog+sp68+resnet-v1"

    def __init__(self, directory: Path | None = None, embed_in_process: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else model_dir()
        _check_files(self.directory)
        self._lock = threading.Lock()
        self._offload = not embed_in_process  # a child for the HOG build and dlib's embeddings, started when needed
        self._closed = False
        self._embedder: EmbeddingProcess | None = None  # started on first need (_child)
        self._predictor: dlib.shape_predictor | None = None  # loaded on first use (_landmark_model)
        self._resnet = _read_network(self.directory / RESNET_FILE)
        self._detector: dlib.fhog_object_detector | None = None  # built on first use (_hog)
        self._encoder: dlib.face_recognition_model_v1 | None = None  # loaded on first in-process embedding
        self._cnn: "dlib.cnn_face_detection_model_v1 | None" = None  # loaded on first use
        self._weights_hash: str | None = None

    def close(self) -> None:
        """Stop the embedding process, if any (later embeddings, and a HOG detector built later, run in-process)."""
        with self._lock:
            self._closed = True
            embedder = self._embedder
        if embedder is not None:
            embedder.close()

    def _child(self) -> EmbeddingProcess | None:
        """The embedding process (the lock held): started by the first call when this instance offloads to one and
        was not closed; None without one."""
        if self._embedder is None and self._offload and not self._closed:
            self._embedder = EmbeddingProcess(self.directory / RESNET_FILE)
        return self._embedder

    def _landmark_model(self) -> dlib.shape_predictor:
        """dlib's 68-landmark model (the lock held), loaded on first use; the child is started first, so it builds
        the HOG detector while the model loads here (a detection needs both)."""
        if self._predictor is None:
            self._child()
            self._predictor = dlib.shape_predictor(str(self.directory / LANDMARKS_68_FILE))
        return self._predictor

    # -- provenance -------------------------------------------------------------------------------
    def weights_hash(self, digests: FileDigests | None = None) -> str:
        """sha256 over the used ``.dat`` files (name + content), hex; computed once and cached. With ``digests``
        (the shot database), the digest recorded there for the files' present state is taken instead of reading
        ~120 MB (~0.2 s a server start), and one computed is recorded (``inference_server.file_digests``)."""
        with self._lock:
            if self._weights_hash is None:
                self._weights_hash = remembered_content_digest([self.directory / n for n in REQUIRED_FILES], digests)
            return self._weights_hash

    # -- inference --------------------------------------------------------------------------------
    def _hog(self) -> dlib.fhog_object_detector:
        """dlib's HOG frontal face detector (the lock held): the child's, or built here without one."""
        if self._detector is None:
            self._landmark_model()  # (loaded while the child builds the detector: the detections need it next)
            child = self._child()
            state = child.detector_state() if child is not None else None
            self._detector = dlib.get_frontal_face_detector() if state is None else detector_from_state(state)
        return self._detector

    @staticmethod
    def _check_rgb8(rgb8: np.ndarray) -> np.ndarray:
        if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb8.shape} {rgb8.dtype}")
        return np.ascontiguousarray(rgb8)

    def detect(self, rgb8: np.ndarray, max_side: int = 1280, upsample: int = 1) -> list[FaceDetection]:
        """Find faces and fit 68 landmarks to each.

        Args:
            rgb8: ``(H, W, 3)`` uint8, display-referred sRGB.
            max_side: the HOG detector runs on a copy downscaled (INTER_AREA) so that its long side is at
                most this; landmarks are fitted on the full-resolution image.
            upsample: dlib's pyramid upsampling count for the detector (finds faces down to ~40/2**n px).

        Returns:
            Detections sorted largest box first (ties broken by position), deterministic.
        """
        img = self._check_rgb8(rgb8)
        small, scale = _proxy(img, max_side)
        with self._lock:
            rects, scores, _ = self._hog().run(small, upsample, 0.0)
        out: list[FaceDetection] = []
        for r, s in zip(rects, scores):
            box = _rect_tuple(r, scale)
            out.append(FaceDetection(rect=box, score=float(s), landmarks=self.landmarks(img, box)))
        out.sort(key=lambda d: (-d.area, d.rect[1], d.rect[0]))
        return out

    def has_cnn(self) -> bool:
        """Whether dlib's CNN face detector weights are present (they come with ``face-recognition-models``)."""
        return (self.directory / CNN_DETECTOR_FILE).is_file()

    def detect_cnn(self, rgb8: np.ndarray, max_side: int = CNN_PROXY_SIDE,
                   min_confidence: float = CNN_MIN_CONFIDENCE) -> list[FaceDetection]:
        """Find faces with dlib's MMOD CNN detector on a reduced proxy; landmarks fitted at full resolution.

        The fallback for faces HOG misses (tilted or turned heads, glasses, expressions, blur, low light).
        Deterministic: the proxy is an INTER_AREA resize and dlib's CPU CNN gives the same boxes for the same
        input. Returns ``[]`` when the weights are absent.

        Args:
            rgb8: ``(H, W, 3)`` uint8, display-referred sRGB.
            max_side: long side of the proxy the CNN runs on (its cost grows with the proxy's area).
            min_confidence: MMOD confidence below which a box is dropped.

        Returns:
            Detections (``detector="cnn"``, ``score`` the MMOD confidence) sorted largest box first.
        """
        if not self.has_cnn():
            return []
        img = self._check_rgb8(rgb8)
        small, scale = _proxy(img, max_side)
        with self._lock:
            if self._cnn is None:
                self._cnn = dlib.cnn_face_detection_model_v1(str(self.directory / CNN_DETECTOR_FILE))
            found = self._cnn(np.ascontiguousarray(small), 0)
            boxes = [(_rect_tuple(d.rect, scale), float(d.confidence)) for d in found]
        h, w = img.shape[:2]
        out: list[FaceDetection] = []
        for box, confidence in boxes:
            if confidence < min_confidence:
                continue
            x0, y0, x1, y1 = box
            box = (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
            out.append(FaceDetection(rect=box, score=confidence, landmarks=self.landmarks(img, box), detector="cnn"))
        out.sort(key=lambda d: (-d.area, d.rect[1], d.rect[0]))
        return out

    def detect_with_fallback(self, rgb8: np.ndarray, min_score: float, expected: int = 1) -> list[FaceDetection]:
        """HOG detections with a score of at least ``min_score``; when they are fewer than ``expected``, the CNN
        detector's faces that overlap none of them are added (``detector="cnn"``).

        Where HOG finds at least ``expected`` faces the CNN never runs, so such frames give exactly HOG's result.
        """
        found = [d for d in self.detect(rgb8) if d.score >= min_score]
        if len(found) >= max(1, expected):
            return found
        extra = [d for d in self.detect_cnn(rgb8) if all(_iou(d.rect, f.rect) < 0.3 for f in found)]
        if not extra:
            return found
        out = found + extra
        out.sort(key=lambda d: (-d.area, d.rect[1], d.rect[0]))
        return out

    def landmarks(self, rgb8: np.ndarray, rect: tuple[float, float, float, float]) -> np.ndarray:
        """Fit the 68 iBUG landmarks inside ``rect`` (x0, y0, x1, y1 pixels). Returns (68, 2) float32."""
        img = self._check_rgb8(rgb8)
        x0, y0, x1, y1 = rect
        r = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)
        with self._lock:
            shape = self._landmark_model()(img, r)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def embed(self, rgb8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib ResNet identity descriptor (128,) float64 of the face with the given (68, 2) landmarks.

        Euclidean distance < 0.6 between two descriptors means "same person" in dlib's convention.
        """
        img = self._check_rgb8(rgb8)
        det = landmark_detection(landmarks)
        if self._resnet is not None:
            return descriptor(self._resnet, np.asarray(dlib.get_face_chip(img, det, size=CHIP_SIZE,
                                                                           padding=CHIP_PADDING)))
        with self._lock:
            child = self._child()
        if child is not None:
            chip = dlib.get_face_chip(img, det, size=CHIP_SIZE, padding=CHIP_PADDING)
            outside = child.descriptor(chip)
            if outside is not None:
                return outside
        with self._lock:
            if self._encoder is None:
                self._encoder = dlib.face_recognition_model_v1(str(self.directory / RESNET_FILE))
            desc = self._encoder.compute_face_descriptor(img, det)
        return np.array(desc, dtype=np.float64)
