"""The model stage of a session, and its face finder: its mode and model choices resolved against the server's
model pool.

The neural model modules (ONNX Runtime, onnx) are imported only where a loaded model is one of theirs: a server
that runs the embedded models starts without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..faces.dlib_models import DlibFaceModels
from ..faces.finder import FaceFinder
from ..models.errors import ModelError
from ..models.pool import Loaded, ModelPool
from ..pipeline.stages import (AlignedSwapper, AlignedSwapStage, ClassicalSwapStage, FaceParser, Occluder, Restorer,
                               RestoreStage, Stage)
from ..swap import ALGORITHM_ID, SwapParams
from .errors import ModelUnavailable
from .sessions import SessionParams


def _adapter(loaded: Loaded | None) -> object | None:
    return loaded.adapter if loaded is not None else None


def choose_stage(pool: ModelPool, params: SessionParams) -> tuple[Stage, tuple[str, ...]]:
    """The model stage for the session's mode and model choices (loaded from ``pool``, shared by every
    session asking for the same model), and notes about the models chosen.

    Raises:
        ModelUnavailable: a chosen model is missing, does not verify or cannot be loaded (one line).
    """
    try:
        restorer = swapper = parser = occluder = None
        if params.parser.strip().lower() != "none":
            parser = pool.load("parser", params.parser, params.allow_unverified)
        if params.occluder.strip().lower() != "none":
            occluder = pool.load("occluder", params.occluder, params.allow_unverified)
        if "restore" in params.mode:
            restorer = pool.load("restorer", params.restorer, params.allow_unverified, params.precision)
        if "swap" in params.mode:
            swapper = pool.load("swapper", params.swapper, params.allow_unverified, params.precision)
    except (ModelError, ValueError, OSError) as exc:
        raise ModelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    notes = tuple(n for loaded in (swapper, restorer, parser) if loaded is not None for n in loaded.notes)
    occlude = _adapter(occluder)
    if occluder is not None and (occlude is not None or any("not used" in n for n in occluder.notes)):
        notes += occluder.notes  # (the default 'none' says nothing unless an occluder file was passed over)
    assert occlude is None or isinstance(occlude, Occluder)
    restore = _adapter(restorer)
    with_weight = getattr(restore, "with_weight", None)  # restorers that may take a fidelity weight
    if with_weight is not None:
        restore = with_weight(params.restore_weight)  # the session's weight (a no-op without a weight input)
    labels = _adapter(parser)
    assert restore is None or isinstance(restore, Restorer)
    assert labels is None or isinstance(labels, FaceParser)
    if swapper is None:
        assert restore is not None
        return RestoreStage(restore, labels, occluder=occlude), notes
    if swapper.adapter is None:
        return ClassicalSwapStage(SwapParams(), ALGORITHM_ID, restore, labels, occluder=occlude), notes
    assert isinstance(swapper.adapter, AlignedSwapper)
    from ..models.swappers import pixel_boosted  # (a neural swapper is loaded: its modules are)

    try:  # the session's pixel boost (0: the model's own size)
        swap = pixel_boosted(swapper.adapter, params.pixel_boost, swapper.choice.record.name)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from exc
    return AlignedSwapStage(swap, restore, labels, occluder=occlude), notes


DEFAULT_DETECTOR = "dlib-hog"
DEFAULT_LANDMARKER = "dlib-68"
CNN_DETECTOR = "dlib-cnn"


@dataclass(frozen=True)
class FinderChoice:
    """A session's face finder and what picked it.

    Attributes:
        finder: the embedded dlib models themselves when both choices are dlib's defaults (HOG with its CNN
            fallback, the 68-point shape predictor), else a :class:`ModelFaceFinder`.
        detector_id: the detector's model id (``name@sha256[:16]``, or ``dlib-cnn``); "" for the default.
        landmarker_id: the landmarker's model id; "" for the default.
        notes: one line per chosen model.
    """

    finder: FaceFinder
    detector_id: str = ""
    landmarker_id: str = ""
    notes: tuple[str, ...] = ()

    @property
    def model_ids(self) -> tuple[str, ...]:
        """The non-default models' ids (none for the dlib defaults, so default sessions keep their hashes)."""
        return tuple(i for i in (self.detector_id, self.landmarker_id) if i)


def choose_finder(pool: ModelPool, params: SessionParams, dlib: DlibFaceModels) -> FinderChoice:
    """The face finder of the session's ``detector`` and ``landmarker`` settings (empty: the best verified file
    in the models folder, else dlib's), loaded once in ``pool`` and shared.

    Raises:
        ModelUnavailable: a chosen model is missing, does not verify or cannot be loaded (one line).
    """
    try:
        detector = pool.load("detector", params.detector, params.allow_unverified)
        landmarker = pool.load("landmarker", params.landmarker, params.allow_unverified)
    except (ModelError, ValueError, OSError) as exc:
        raise ModelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    neural_detector = neural_landmarker = None
    if detector.adapter is not None or landmarker.adapter is not None:  # a neural model was loaded
        from ..models.onnx_detector import OnnxFaceDetector
        from ..models.onnx_landmarker import OnnxLandmarker

        neural_detector = detector.adapter if isinstance(detector.adapter, OnnxFaceDetector) else None
        neural_landmarker = landmarker.adapter if isinstance(landmarker.adapter, OnnxLandmarker) else None
    cnn_only = neural_detector is None and detector.choice.record.name == CNN_DETECTOR
    detector_id = "" if neural_detector is None and not cnn_only else detector.model_id
    landmarker_id = "" if neural_landmarker is None else landmarker.model_id
    if not detector_id and not landmarker_id:  # (default notes only where a file was passed over)
        return FinderChoice(dlib, notes=tuple(n for n in detector.notes + landmarker.notes if "not used" in n))
    notes = detector.notes + landmarker.notes
    identifier = "+".join([dlib.identifier, *(i for i in (detector_id, landmarker_id) if i)])
    from ..models.face_finder import ModelFaceFinder

    finder = ModelFaceFinder(dlib, neural_detector, neural_landmarker, cnn_only, identifier)
    return FinderChoice(finder, detector_id, landmarker_id, notes)
