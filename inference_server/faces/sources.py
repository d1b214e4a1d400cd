"""Sources: the identity photos a session brings, prepared once (face, landmarks, identity, pose), and the
choice among them per target face. Every model that takes a source (the classical swap, an aligned
swapper) takes a :class:`SourceFace`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .dlib_models import DlibFaceModels
from .errors import NoFaceError
from .geometry import face_size
from .pose import head_pose, pose_distance

# how much context is kept around the source face, x face size on each side
_CROP_MARGIN = 0.8


@dataclass(frozen=True, eq=False)
class SourceFace:
    """One prepared source face.

    Attributes:
        image: (H, W, 3) float32 display-referred sRGB-encoded [0, 1]: a crop of the photo around the face.
        landmarks: (68, 2) float32 in ``image`` pixel coordinates.
        embedding: (128,) float64 dlib identity descriptor.
        pose: (yaw, pitch, roll) degrees, see :mod:`inference_server.faces.pose`.
        label: the caller's name for the photo.
        derived: read-only arrays computed from this source alone by the stages that use them, by name,
            remembered for the source's lifetime (e.g. the classical swap's source with its mouth closed).
    """

    image: np.ndarray
    landmarks: np.ndarray
    embedding: np.ndarray
    pose: tuple[float, float, float]
    label: str
    derived: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def source_digest(source: SourceFace) -> str:
    """sha256 (hex) of what a model may take from a source: its image, landmarks and identity embedding
    (each with its shape and dtype). Equal contents give equal digests, whichever object holds them, so it
    keys what is remembered per source across sessions (an object's ``id`` is reused once it is freed)."""
    digest = hashlib.sha256()
    for array in (source.image, source.landmarks, source.embedding):
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data.cast("B"))
    return digest.hexdigest()


def crop_box(landmarks: np.ndarray, shape_hw: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) of the landmark box grown by ``margin`` x face size per side, clipped."""
    p = np.asarray(landmarks, np.float64)
    s = face_size(p)
    x0, y0 = np.floor(p.min(0) - margin * s).astype(int)
    x1, y1 = np.ceil(p.max(0) + margin * s).astype(int) + 1
    h, w = shape_hw
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))


SOURCE_FACE_FORMAT = "source-face/1"  # what a cached source face holds (see :func:`source_face_key`)


class PayloadStore(Protocol):
    """Where found source faces are kept across sessions and servers (``store.payload_cache.PayloadCache``)."""

    def get_or_compute(self, key: str, compute: Callable[[], dict[str, np.ndarray]]
                       ) -> tuple[Mapping[str, np.ndarray], bool]: ...


def source_face_key(rgb8: np.ndarray, models_id: str) -> str:
    """Cache key of the face found in the photo ``rgb8`` (``(H, W, 3)`` uint8) by the models ``models_id`` (their
    identifier and weights' hash): sha256 of the photo's pixels with its shape, so equal pictures share it
    whatever their file's encoding or name."""
    digest = hashlib.sha256(f"{SOURCE_FACE_FORMAT}|{models_id}|{rgb8.shape}|".encode())
    digest.update(np.ascontiguousarray(rgb8).data.cast("B"))
    return digest.hexdigest()


def find_source_face(label: str, rgb8: np.ndarray, models: DlibFaceModels) -> dict[str, np.ndarray]:
    """The largest face of the photo ``rgb8``: ``landmarks`` ``(68, 2)`` float32 in photo pixels and ``embedding``
    ``(128,)`` float64 (dlib identity). HOG first, HOG on a 2x upsampled photo when that finds nothing.

    Raises:
        NoFaceError: no face (``.label`` is ``label``).
    """
    dets = models.detect(rgb8)
    if not dets:
        dets = models.detect(rgb8, upsample=2)
    if not dets:
        raise NoFaceError(label)
    lm = dets[0].landmarks
    return {"landmarks": lm, "embedding": np.asarray(models.embed(rgb8, lm), np.float64)}


def source_face(label: str, rgb8: np.ndarray, landmarks: np.ndarray, embedding: np.ndarray) -> SourceFace:
    """The prepared source of the photo ``rgb8`` whose face has ``landmarks`` ``(68, 2)`` (photo pixels) and the
    identity ``embedding``: the crop around the face, its landmarks in the crop, the head pose."""
    lm = np.asarray(landmarks, np.float32)
    x0, y0, x1, y1 = crop_box(lm, rgb8.shape[:2], _CROP_MARGIN)
    crop = np.ascontiguousarray(rgb8[y0:y1, x0:x1]).astype(np.float32) / 255.0
    lm_c = (lm - np.array([x0, y0], np.float32)).astype(np.float32)
    return SourceFace(image=crop, landmarks=lm_c, embedding=np.array(embedding, np.float64), pose=head_pose(lm),
                      label=label)


def prepare_sources(images: Sequence[tuple[str, np.ndarray]], models: DlibFaceModels,
                    store: PayloadStore | None = None, models_id: str = "") -> list[SourceFace]:
    """Detect, fit, embed and pose the largest face of each source photo.

    Args:
        images: (label, rgb8) pairs; rgb8 (H, W, 3) uint8 display-referred sRGB.
        models: the loaded dlib models.
        store: where the face found in a photo is kept (landmarks and embedding, by :func:`source_face_key`), so
            a photo seen before, by this server or another on the same cache, is not searched and embedded again
            (the same arrays, so the same source); None: always found anew.
        models_id: what identifies ``models`` and their weights in the key (with ``store``).
    Raises:
        NoFaceError: a photo has no detectable face (``.label`` names it; not kept: asked again, searched again).
    """
    out: list[SourceFace] = []
    for label, rgb8 in images:
        if rgb8.ndim != 3 or rgb8.shape[2] != 3 or rgb8.dtype != np.uint8:
            raise ValueError(f"source {label!r}: expected (H, W, 3) uint8, got {rgb8.shape} {rgb8.dtype}")

        def found(photo: np.ndarray = rgb8, label: str = label) -> dict[str, np.ndarray]:
            return find_source_face(label, photo, models)

        face = found() if store is None else store.get_or_compute(source_face_key(rgb8, models_id), found)[0]
        out.append(source_face(label, rgb8, face["landmarks"], face["embedding"]))
    return out


def choose_source_index(sources: Sequence[SourceFace], target_landmarks: np.ndarray) -> int:
    """Index of the source whose head pose (yaw, pitch) is nearest the target face's; first one on ties."""
    if not sources:
        raise ValueError("no sources given")
    tp = head_pose(target_landmarks)
    return min(range(len(sources)), key=lambda i: (pose_distance(sources[i].pose, tp), i))


def choose_source(sources: Sequence[SourceFace], target_landmarks: np.ndarray) -> SourceFace:
    """The source whose head pose (yaw, pitch) is nearest the target face's; first one on ties."""
    return sources[choose_source_index(sources, target_landmarks)]
